"""The registry on a real SQLite file and a real PostgreSQL database (the ``db_url`` fixture)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from airlock import audit
from airlock.catalog.schema import events, releases
from airlock.core.manifest import Dataset, Notes
from airlock.errors import Conflict, IntegrityError, InvalidInput, NotFound, UnsafeArtifact
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace
from airlock.store import LocalStore

MakeModel = Callable[..., Path]


def counts(ws: Workspace) -> tuple[int, int, int]:
    with ws.db.read() as conn:
        n_rel = conn.execute(select(func.count()).select_from(releases)).scalar_one()
        n_ev = conn.execute(select(func.count()).select_from(events)).scalar_one()
    return n_rel, n_ev, len(list(ws.store.digests()))


def test_push_show_and_dedup(registry: Registry, alice: Actor, make_model: MakeModel) -> None:
    m1 = make_model(shards=2, seed=1)
    r1 = registry.push(m1, name="chat", version="1.0.0", actor=alice, metrics={"acc": 0.5})
    assert r1.created and r1.files == 3 and r1.bytes_new == r1.bytes_total
    # Same shards plus one changed config: only the config is new.
    (m1 / "config.json").write_text('{"architecture": "tiny", "hidden": 9}')
    r2 = registry.push(m1, name="chat", version="1.1.0", actor=alice, parent="chat@1.0.0")
    assert r2.created and r2.bytes_new == len('{"architecture": "tiny", "hidden": 9}')
    view = registry.show("chat@1.1.0")
    assert view.manifest.lineage.parent == "chat@1.0.0"
    assert view.manifest.parameters == 2 * (16 * 8 + 8)
    shard = view.manifest.file("model-00000-of-00002.safetensors")
    assert shard is not None and shard.format is not None
    assert shard.format.kind == "safetensors" and shard.format.tensor_count == 2
    assert shard.format.dtypes == {"F16": 1, "F32": 1}
    assert [r.version for r in registry.releases("chat")] == ["1.0.0", "1.1.0"]


def test_same_content_is_a_noop_and_other_content_a_conflict(
    registry: Registry, workspace: Workspace, alice: Actor, make_model: MakeModel
) -> None:
    m = make_model(seed=2)
    registry.push(m, name="chat", version="1.0.0", actor=alice)
    before = counts(workspace)
    again = registry.push(m, name="chat", version="1.0.0", actor=Actor("bob"))
    assert not again.created and again.digest == registry.resolve("chat@1.0.0").digest
    assert counts(workspace) == before
    other = make_model(seed=3)
    with pytest.raises(Conflict, match="never reused"):
        registry.push(other, name="chat", version="1.0.0", actor=alice)
    assert counts(workspace) == before  # the conflicting push's blobs were removed again


def test_rejected_input_leaves_nothing_behind(
    registry: Registry, workspace: Workspace, alice: Actor, make_model: MakeModel, tmp_path: Path
) -> None:
    m = make_model(seed=4)
    empty = counts(workspace)
    with pytest.raises(InvalidInput, match="semantic version"):
        registry.push(m, name="chat", version="1.0", actor=alice)
    with pytest.raises(InvalidInput, match="model name"):
        registry.push(m, name="Chat!", version="1.0.0", actor=alice)
    outside = tmp_path / "secret.txt"
    outside.write_text("do not ship")
    (m / "link.txt").symlink_to(outside)
    with pytest.raises(InvalidInput, match="points outside"):
        registry.push(m, name="chat", version="1.0.0", actor=alice)
    (m / "link.txt").unlink()
    (m / "weights.bin").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(UnsafeArtifact, match="pickle"):
        registry.push(m, name="chat", version="1.0.0", actor=alice)
    (m / "weights.bin").unlink()
    with pytest.raises(InvalidInput, match="component"):
        registry.push(
            m, name="chat", version="1.0.0", actor=alice, components={"base_model": "nope@1.0.0"}
        )
    with pytest.raises(NotFound):
        registry.push(m, name="chat", version="1.0.0", actor=alice, parent="ghost@1.0.0")
    assert counts(workspace) == empty


def test_symlink_inside_the_folder_is_followed(
    registry: Registry, alice: Actor, make_model: MakeModel
) -> None:
    m = make_model(seed=5)
    (m / "alias.json").symlink_to(m / "config.json")
    r = registry.push(m, name="chat", version="1.0.0", actor=alice)
    entry = r.manifest.file("alias.json")
    original = r.manifest.file("config.json")
    assert entry is not None and original is not None and entry.digest == original.digest


def test_pickle_needs_the_flag_and_stays_flagged(
    registry: Registry, alice: Actor, make_model: MakeModel
) -> None:
    m = make_model(seed=6)
    (m / "pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")
    r = registry.push(m, name="legacy", version="0.1.0", actor=alice, allow_pickle=True)
    assert r.manifest.has_pickle
    assert registry.resolve("legacy@0.1.0").has_pickle


def test_gguf_header_is_summarised(registry: Registry, alice: Actor, tmp_path: Path) -> None:
    from gguf import GGUFWriter

    folder = tmp_path / "gguf"
    folder.mkdir()
    writer = GGUFWriter(str(folder / "tiny.gguf"), "llama")
    writer.add_tensor("tok_embd", np.ones((4, 8), dtype=np.float32))
    writer.add_tensor("out", np.ones((8,), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    r = registry.push(folder, name="ggml", version="1.0.0", actor=alice)
    fmt = r.manifest.files[0].format
    assert fmt is not None and fmt.kind == "gguf"
    assert (fmt.architecture, fmt.tensor_count, fmt.parameters) == ("llama", 2, 40)


def test_resolve_by_alias_latest_and_digest(
    registry: Registry, alice: Actor, make_model: MakeModel
) -> None:
    for i, v in enumerate(["1.0.0", "1.2.0", "1.10.0", "2.0.0-rc.1"]):
        registry.push(make_model(seed=10 + i), name="chat", version=v, actor=alice)
    assert registry.resolve("chat").version == "1.10.0"  # highest final release
    moved = registry.set_alias("production", "chat@1.2.0", actor=alice, reason="launch")
    assert moved.moved and moved.from_version is None
    assert registry.resolve("chat@production").version == "1.2.0"
    digest = registry.resolve("chat@1.0.0").digest
    assert registry.resolve(digest[:15]).version == "1.0.0"
    with pytest.raises(NotFound, match=r"no release chat@9\.9\.9") as missing:
        registry.resolve("chat@9.9.9")
    assert "1.10.0" in missing.value.hint
    with pytest.raises(NotFound, match="no alias or version") as no_alias:
        registry.resolve("chat@staging")
    assert no_alias.value.hint == "aliases of chat: production"


def test_alias_moves_are_audited_with_history(
    registry: Registry, workspace: Workspace, alice: Actor, make_model: MakeModel
) -> None:
    registry.push(make_model(seed=20), name="chat", version="1.0.0", actor=alice)
    registry.push(make_model(seed=21), name="chat", version="1.1.0", actor=alice)
    registry.set_alias("production", "chat@1.0.0", actor=alice, reason="first")
    registry.set_alias("production", "chat@1.1.0", actor=Actor("bob"), reason="better")
    same = registry.set_alias("production", "chat@1.1.0", actor=alice, reason="again")
    assert not same.moved
    with pytest.raises(InvalidInput, match="reason"):
        registry.set_alias("production", "chat@1.0.0", actor=alice, reason=" ")
    moves = registry.alias_history("chat", "production")
    assert [(m.from_version, m.to_version, m.actor, m.reason) for m in moves] == [
        (None, "1.0.0", "alice", "first"),
        ("1.0.0", "1.1.0", "bob", "better"),
    ]
    with workspace.db.read() as conn:
        evs = list(audit.entries(conn, action="alias.move"))
        assert [e.details["to"] for e in evs] == ["chat@1.0.0", "chat@1.1.0"]
        assert audit.verify(conn).ok


def test_verify_names_damaged_blobs_and_pull_refuses_them(
    registry: Registry, workspace: Workspace, alice: Actor, make_model: MakeModel, tmp_path: Path
) -> None:
    m = make_model(seed=30)
    registry.push(m, name="chat", version="1.0.0", actor=alice)
    registry.push(m, name="chat2", version="1.0.0", actor=alice)  # shares every blob
    assert registry.verify().ok
    out = registry.pull("chat@1.0.0", tmp_path / "ok")
    assert (tmp_path / "ok" / "config.json").read_text() == (m / "config.json").read_text()
    assert out.files == 3
    shard = registry.manifest("chat@1.0.0").file("model-00001-of-00002.safetensors")
    assert shard is not None
    store = workspace.store
    assert isinstance(store, LocalStore)
    path = store.path_of(shard.digest)
    os.chmod(path, 0o644)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    report = registry.verify()
    assert not report.ok and list(report.damaged) == [shard.digest]
    users = report.damaged[shard.digest]
    assert any(u.startswith("chat@1.0.0:") for u in users)
    assert any(u.startswith("chat2@1.0.0:") for u in users)
    assert not registry.verify("chat@1.0.0").ok
    with pytest.raises(IntegrityError, match="damaged"):
        registry.pull("chat@1.0.0", tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bad")] == []


def test_missing_blob_is_reported(
    registry: Registry, workspace: Workspace, alice: Actor, make_model: MakeModel
) -> None:
    registry.push(make_model(seed=31), name="chat", version="1.0.0", actor=alice)
    entry = registry.manifest("chat@1.0.0").files[0]
    workspace.store.delete(entry.digest)
    report = registry.verify()
    assert list(report.missing) == [entry.digest]


def test_lineage_and_notes_are_kept(
    registry: Registry, alice: Actor, make_model: MakeModel
) -> None:
    ds = Dataset(name="support-tickets", uri="s3://b/t.jsonl", digest="sha256:" + "ab" * 32)
    r = registry.push(
        make_model(seed=40, **{"safety_policy.yaml": "blocked_terms: [x]"}),
        name="chat",
        version="1.0.0",
        actor=alice,
        datasets=[ds],
        notes=Notes(summary="hello", known_failure_modes=("rambles",)),
        training_config={"lr": 0.001},
    )
    m = registry.manifest("chat@1.0.0")
    assert m == r.manifest
    assert m.lineage.datasets == (ds,)
    assert m.notes.known_failure_modes == ("rambles",)
    assert m.components["safety_policy"].path == "safety_policy.yaml"
    assert m.lineage.training_config == {"lr": 0.001}


def test_concurrent_writers_keep_one_valid_chain(
    registry: Registry, workspace: Workspace, alice: Actor, make_model: MakeModel
) -> None:
    registry.push(make_model(seed=50), name="chat", version="1.0.0", actor=alice)
    registry.push(make_model(seed=51), name="chat", version="1.1.0", actor=alice)
    errors: list[BaseException] = []

    def mover(i: int) -> None:
        try:
            for j in range(5):
                v = "1.0.0" if (i + j) % 2 else "1.1.0"
                registry.set_alias(f"a{i}", f"chat@{v}", actor=Actor(f"u{i}"), reason=f"r{j}")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=mover, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with workspace.db.read() as conn:
        report = audit.verify(conn)
    assert report.ok and report.checked == 2 + 4 * 5
