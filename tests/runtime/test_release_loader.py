"""The release loader: every blob verified, runtimes picked from config, components parsed,
fault injection; and the runtimes themselves against real files and a real upstream."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from airlock.config import Settings
from airlock.core.prompting import DecodingParams
from airlock.errors import IntegrityError, InvalidInput
from airlock.runtime.base import GenerationRequest, RuntimeFailure
from airlock.runtime.builtin_model import train
from airlock.runtime.faults import FaultSpec
from airlock.runtime.loader import ReleaseLoader
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace
from airlock.store.local import LocalStore

CORPUS = """The moon is bright tonight. The moon orbits the earth.

Stars shine over the quiet sea. The sea is calm and dark."""
ALICE = Actor("alice")


@pytest.fixture
def registry(tmp_path: Path) -> Any:
    ws = Workspace.open(Settings(home=tmp_path / ".airlock", user="alice"), create=True)
    try:
        yield Registry(ws)
    finally:
        ws.close()


def _loader(registry: Registry) -> ReleaseLoader:
    def resolve(ref: str) -> tuple[str, Any]:
        row = registry.resolve(ref)
        return row.ref, row.digest

    return ReleaseLoader(registry.store, resolve)


def _push_builtin(registry: Registry, tmp_path: Path, version: str, **files: Any) -> str:
    folder = tmp_path / f"rel-{version}"
    train(CORPUS).save(folder)
    for name, content in files.items():
        (folder / name.replace("__", ".")).write_text(content)
    return registry.push(folder, name="chat", version=version, actor=ALICE).ref


def _request(prompt: str = "The moon", **params: Any) -> GenerationRequest:
    p = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 8, "stop": (), "seed": 1, **params}
    return GenerationRequest(kind="completion", prompt=prompt, params=DecodingParams(**p))


def test_a_builtin_release_loads_and_generates(registry: Registry, tmp_path: Path) -> None:
    ref = _push_builtin(
        registry,
        tmp_path,
        "1.0.0",
        safety_policy__yaml="pii: [email]\n",
        decoding__yaml="temperature: 0.3\nmax_tokens: 5\n",
        prompt_template__yaml="system: be brief\n",
    )
    loaded = _loader(registry).load(ref)
    assert loaded.runtime_kind == "builtin"
    assert loaded.safety is not None and loaded.safety.pii[0].type == "email"
    assert loaded.decoding is not None and loaded.decoding.max_tokens == 5
    assert loaded.template is not None and loaded.template.system == "be brief"

    async def run() -> tuple[str, str]:
        whole = await loaded.runtime.generate(_request())
        streamed = "".join([d.text async for d in loaded.runtime.stream(_request())])
        await loaded.aclose()
        return whole.text, streamed

    whole, streamed = asyncio.run(run())
    assert whole
    assert whole == streamed


def test_a_tampered_blob_is_refused_at_load(registry: Registry, tmp_path: Path) -> None:
    ref = _push_builtin(registry, tmp_path, "1.0.0")
    manifest = registry.manifest(ref)
    entry = manifest.file("model.safetensors")
    assert entry is not None
    store = registry.store
    assert isinstance(store, LocalStore)
    blob = store.path_of(entry.digest)
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0x01  # one flipped bit
    blob.write_bytes(bytes(data))
    with pytest.raises(IntegrityError) as info:
        _loader(registry).load(ref)
    assert "model.safetensors" in info.value.message
    assert "airlock verify" in info.value.hint


def test_a_damaged_manifest_blob_is_refused(registry: Registry, tmp_path: Path) -> None:
    ref = _push_builtin(registry, tmp_path, "1.0.0")
    row = registry.resolve(ref)
    store = registry.store
    assert isinstance(store, LocalStore)
    path = store.path_of(row.digest)
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes().replace(b'"1.0.0"', b'"6.6.6"'))
    with pytest.raises(IntegrityError, match="manifest"):
        _loader(registry).load(ref)


def test_a_component_only_release_serves_its_base_with_its_own_policy(
    registry: Registry, tmp_path: Path
) -> None:
    base = _push_builtin(registry, tmp_path, "1.0.0")
    folder = tmp_path / "policy-only"
    folder.mkdir()
    (folder / "safety_policy.yaml").write_text("blocked_terms: [moon]\n")
    ref = registry.push(
        folder, name="chat", version="1.0.1", actor=ALICE, components={"base_model": base}
    ).ref
    loaded = _loader(registry).load(ref)
    assert loaded.runtime_kind == "builtin"
    assert loaded.safety is not None and loaded.safety.blocked_terms == ("moon",)
    assert loaded.ref == "chat@1.0.1"
    asyncio.run(loaded.aclose())


def test_bad_configs_name_the_problem(registry: Registry, tmp_path: Path) -> None:
    for version, config, words in [
        ("1.0.0", {"runtime": "upstream", "base_url": "ftp://x"}, "base_url"),
        ("1.0.1", {"runtime": "quantum"}, "unknown runtime"),
        (
            "1.0.2",
            {"runtime": "upstream", "base_url": "http://x/v1", "api_key_env": "NOPE_X"},
            "NOPE_X",
        ),
        ("1.0.3", {"runtime": "builtin"}, "model.safetensors"),
    ]:
        folder = tmp_path / version
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(config))
        ref = registry.push(folder, name="bad", version=version, actor=ALICE).ref
        with pytest.raises(InvalidInput, match=words):
            _loader(registry).load(ref)


def test_fault_injection_from_the_release_config(registry: Registry, tmp_path: Path) -> None:
    faults = {"faults": {"error_rate": 1.0}}
    folder = tmp_path / "faulty"
    train(CORPUS).save(folder)
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, **faults}))
    ref = registry.push(folder, name="chat", version="9.0.0", actor=ALICE).ref
    loaded = _loader(registry).load(ref)
    assert loaded.faults == FaultSpec(error_rate=1.0)

    async def run() -> None:
        with pytest.raises(RuntimeFailure) as info:
            await loaded.runtime.generate(_request())
        assert info.value.kind == "injected"
        await loaded.aclose()

    asyncio.run(run())
    with pytest.raises(InvalidInput):
        FaultSpec.from_config({"faults": {"error_rate": 2}})
    unsafe = FaultSpec.from_config({"faults": {"unsafe_rate": 1, "unsafe_text": "bad words"}})
    assert unsafe.active and unsafe.unsafe_text == "bad words"
