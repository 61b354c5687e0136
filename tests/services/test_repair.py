"""repair_store: damaged and missing blobs come back from good copies, and only from them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from airlock import audit
from airlock.core.digest import Digest
from airlock.errors import Forbidden
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.repair import repair_store
from airlock.services.workspace import Workspace
from airlock.store import LocalStore, MemoryStore

MakeModel = Callable[..., Path]


def _damage(ws: Workspace, digest: Digest) -> None:
    store = ws.store
    if isinstance(store, MemoryStore):
        store.blobs[digest] = b"X" + store.blobs[digest][1:]
        return
    assert isinstance(store, LocalStore)
    path = store.path_of(digest)
    os.chmod(path, 0o644)
    raw = bytearray(path.read_bytes())
    raw[0] ^= 1
    path.write_bytes(bytes(raw))


def test_damaged_missing_and_manifest_blobs_are_repaired(
    workspace: Workspace, registry: Registry, alice: Actor, make_model: MakeModel
) -> None:
    folder = make_model(seed=31)
    pushed = registry.push(folder, name="chat", version="1.0.0", actor=alice)
    shard_digest = next(f.digest for f in pushed.manifest.files if f.path != "config.json")
    config = next(f.digest for f in pushed.manifest.files if f.path == "config.json")
    _damage(workspace, shard_digest)
    workspace.store.delete(config)
    _damage(workspace, pushed.digest)  # the manifest blob
    before = registry.verify()
    assert set(before.damaged) == {shard_digest, pushed.digest} and set(before.missing) == {config}

    report = repair_store(workspace, folder, actor=alice)
    assert set(report.repaired) == {shard_digest, config, pushed.digest} and report.ok
    assert registry.verify().ok
    assert registry.pull("chat@1.0.0", workspace.home / "copy").files == pushed.files
    with workspace.db.read() as conn:
        [event] = [e for e in audit.entries(conn) if e.action == "store.repair"]
        assert audit.verify(conn).ok
    assert sorted(event.details["blobs"]) == sorted([shard_digest, config, pushed.digest])
    assert event.seq == report.event_seq

    # nothing left to do: no second event
    again = repair_store(workspace, folder, actor=alice)
    assert again.repaired == {} and again.ok and again.event_seq is None


def test_without_a_good_copy_nothing_is_written(
    workspace: Workspace, registry: Registry, alice: Actor, make_model: MakeModel
) -> None:
    pushed = registry.push(make_model(seed=32), name="chat", version="1.0.0", actor=alice)
    shard = next(f.digest for f in pushed.manifest.files if f.path != "config.json")
    _damage(workspace, shard)
    report = repair_store(workspace, make_model(seed=33), actor=alice)
    assert not report.ok and set(report.unrepaired) == {shard} and report.event_seq is None
    assert not workspace.store.verify(shard)


def test_a_viewer_may_not_repair(
    workspace: Workspace, registry: Registry, alice: Actor, make_model: MakeModel
) -> None:
    folder = make_model(seed=34)
    registry.push(folder, name="chat", version="1.0.0", actor=alice)
    with pytest.raises(Forbidden):
        repair_store(workspace, folder, actor=Actor("val", "viewer"))
