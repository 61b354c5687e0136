"""`airlock export --push`: a real OCI registry (Debian's docker-registry) on a loopback port.

skopeo, a tool Airlock did not write, reads the pushed image back from the registry and
copies it into a layout, which Airlock imports.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from airlock.config import Settings
from airlock.core.digest import digest_bytes
from airlock.errors import InvalidInput, ServiceUnavailable
from airlock.services.identity import Actor
from airlock.services.oci_layout import export_oci, import_oci
from airlock.services.oci_push import parse_target, push_image
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace
from airlock_testkit import Cli

pytest.importorskip("oras", reason="the oci extra is not installed")

MakeModel = Callable[..., Path]


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        reason = f"{tool} is not installed (apt-get install {tool}; .ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def registry_host(tmp_path: Path) -> Iterator[str]:
    """docker-registry serving plain HTTP on a free loopback port, storing under tmp_path."""
    binary = need("docker-registry")
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nlog: {level: error}\n"
        f"storage: {{filesystem: {{rootdirectory: {tmp_path / 'registry'}}}}}\n"
        f"http: {{addr: 127.0.0.1:{port}}}\n"
    )
    proc = subprocess.Popen(
        [binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    host = f"127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"http://{host}/v2/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                raise AssertionError(
                    f"docker-registry exited: {proc.stderr.read() if proc.stderr else ''}"
                )
            time.sleep(0.05)
        else:
            raise AssertionError("docker-registry did not answer within 10 s")
        yield host
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture
def ws(sqlite_settings: Settings) -> Iterator[Workspace]:
    with Workspace.open(sqlite_settings, create=True) as w:
        yield w


def test_push_to_a_registry_then_copy_back_and_import(
    ws: Workspace,
    registry_host: str,
    alice: Actor,
    make_model: MakeModel,
    tmp_path: Path,
) -> None:
    skopeo = need("skopeo")
    pushed_release = Registry(ws).push(
        make_model(seed=7), name="chat", version="1.0.0", actor=alice, metrics={"acc": 0.9}
    )
    layout = tmp_path / "oci"
    exported = export_oci(ws, "chat@1.0.0", layout)
    pushed = push_image(layout, f"{registry_host}/models/chat", tag="1.0.0", insecure=True)
    assert pushed.digest == exported.image_digest and pushed.target.endswith("chat:1.0.0")

    raw = subprocess.run(
        [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{pushed.target}"],
        check=True,
        capture_output=True,
    ).stdout
    assert digest_bytes(raw) == exported.image_digest  # the very bytes of the layout
    assert json.loads(raw)["artifactType"] == "application/vnd.cncf.model.manifest.v1+json"

    back = tmp_path / "back"
    subprocess.run(
        [skopeo, "copy", "--quiet", "--src-tls-verify=false",
         f"docker://{pushed.target}", f"oci:{back}:1.0.0"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    other = Settings(home=tmp_path / "other" / ".airlock", user="bob")
    with Workspace.open(other, create=True) as there:
        result = import_oci(there, back, actor=Actor("bob"))
        theirs = Registry(there).show("chat@1.0.0").manifest
    assert result.created and result.source_digest == pushed_release.digest
    assert theirs.content_key() == pushed_release.manifest.content_key()

    again = push_image(layout, f"{registry_host}/models/chat:stable", tag="1.0.0", insecure=True)
    assert again.digest == pushed.digest and again.target.endswith(":stable")


def test_cli_export_push_without_a_layout_folder(
    cli: Cli, registry_host: str, make_model: MakeModel
) -> None:
    cli("init")
    cli("push", make_model(seed=8), "--name", "chat", "--version", "2.0.0")
    out = cli("export", "chat@2.0.0", "--push", f"{registry_host}/chat", "--insecure").output
    assert "a temporary layout" in out and f"pushed {registry_host}/chat:2.0.0" in out
    tags = httpx.get(f"http://{registry_host}/v2/chat/tags/list", timeout=5).json()
    assert tags["tags"] == ["2.0.0"]
    nowhere = cli("export", "chat@2.0.0", ok=False)
    assert nowhere.exit_code == 1 and "say where to export to" in nowhere.output


def test_bad_targets_and_unreachable_registries(
    ws: Workspace, alice: Actor, make_model: MakeModel, tmp_path: Path
) -> None:
    assert parse_target("127.0.0.1:5000/a/b", "1.0.0") == ("127.0.0.1:5000", "a/b", "1.0.0")
    for bad in ("chat", "host/Chat", "host/chat:bad tag", "/chat"):
        with pytest.raises(InvalidInput, match="invalid registry target"):
            parse_target(bad, "1.0.0")
    Registry(ws).push(make_model(seed=9), name="chat", version="1.0.0", actor=alice)
    layout = tmp_path / "oci"
    export_oci(ws, "chat@1.0.0", layout)
    closed = f"127.0.0.1:{free_port()}"
    with pytest.raises(ServiceUnavailable, match=f"cannot push to {closed}/chat:1.0.0"):
        push_image(layout, f"{closed}/chat", tag="1.0.0", insecure=True)
