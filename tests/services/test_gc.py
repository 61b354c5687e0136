"""Garbage collection: plan, then execute; orphans go, anything a release uses stays."""

from __future__ import annotations

import io
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlock import audit
from airlock.config import Settings
from airlock.core.digest import Digest, digest_bytes
from airlock.errors import Forbidden, InvalidInput, ServiceUnavailable
from airlock.services.gc import DEFAULT_MIN_AGE, GcPlan, plan_gc
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace
from airlock.store import LocalStore, MemoryStore

MakeModel = Callable[..., Path]


def chain_ok(ws: Workspace) -> bool:
    with ws.db.read() as conn:
        return audit.verify(conn).ok


def gc_events(ws: Workspace) -> list[audit.Event]:
    with ws.db.read() as conn:
        return list(audit.entries(conn, action="store.gc"))


def abandon_push(
    registry: Registry, folder: Path, monkeypatch: pytest.MonkeyPatch, alice: Actor
) -> None:
    """A push whose process died after storing its blobs and before recording the release."""
    with monkeypatch.context() as m:
        m.setattr(registry, "_discard", lambda digests: None)  # the clean-up never ran

        def crash(*args: Any, **kwargs: Any) -> bool:
            raise KeyboardInterrupt

        m.setattr(registry, "_record_push", crash)
        with pytest.raises(KeyboardInterrupt):
            registry.push(folder, name="chat", version="9.9.9", actor=alice)


def test_blobs_of_an_abandoned_push_are_collected(
    workspace: Workspace,
    registry: Registry,
    alice: Actor,
    make_model: MakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kept = registry.push(make_model(seed=1), name="chat", version="1.0.0", actor=alice)
    used = set(workspace.store.digests())
    abandon_push(registry, make_model(seed=2, rows=32), monkeypatch, alice)
    stray = set(workspace.store.digests()) - used
    assert stray  # the shards and config of the abandoned push, and its manifest

    plan = plan_gc(workspace, min_age=0)
    assert {o.digest for o in plan.orphans} == stray
    assert plan.in_use == len(used) and plan.young == ()
    sizes = {d: workspace.store.size(Digest(d)) for d in stray}
    assert all(o.size == sizes[o.digest] for o in plan.orphans)
    assert plan.total_bytes == sum(sizes.values()) and plan.count == len(stray)

    result = plan.execute(workspace, alice)
    assert {o.digest for o in result.deleted} == stray and result.spared == ()
    assert set(workspace.store.digests()) == used
    assert registry.verify().ok
    assert registry.pull(kept.ref, workspace.home / "copy").files == kept.files
    [event] = gc_events(workspace)
    assert event.seq == result.event_seq and event.actor == "alice"
    assert event.subject == workspace.store.url
    assert event.details == {"count": len(stray), "bytes": sum(sizes.values())}
    assert chain_ok(workspace)
    # Nothing left to collect: a second run deletes nothing and writes no event.
    again = plan_gc(workspace, min_age=0)
    assert again.orphans == () and again.execute(workspace, alice).event_seq is None
    assert len(gc_events(workspace)) == 1


def test_a_plan_deletes_nothing_until_executed(
    workspace: Workspace, registry: Registry, alice: Actor, make_model: MakeModel
) -> None:
    registry.push(make_model(seed=3), name="chat", version="1.0.0", actor=alice)
    orphan = workspace.store.put_bytes(b"left behind")
    before = set(workspace.store.digests())
    plan = plan_gc(workspace, min_age=0)
    assert [o.digest for o in plan.orphans] == [orphan]
    assert set(workspace.store.digests()) == before
    assert gc_events(workspace) == []


def test_every_blob_a_release_names_is_kept(
    workspace: Workspace, registry: Registry, alice: Actor, make_model: MakeModel
) -> None:
    """Files, manifests, and blobs named only as a component are all in use."""
    policy = workspace.store.put_bytes(b"refuse: medical dosage advice\n")
    pushed = registry.push(
        make_model(seed=4),
        name="chat",
        version="1.0.0",
        actor=alice,
        components={"safety_policy": policy},
    )
    plan = plan_gc(workspace, min_age=0)
    assert plan.orphans == ()
    assert plan.in_use == len(set(workspace.store.digests()))
    assert workspace.store.has(pushed.digest) and workspace.store.has(policy)


def test_young_orphans_are_spared_until_they_are_old(
    sqlite_settings: Settings, alice: Actor
) -> None:
    with Workspace.open(sqlite_settings, create=True) as ws:
        assert isinstance(ws.store, LocalStore)
        fresh = ws.store.put_bytes(b"a push in flight")
        plan = plan_gc(ws)  # the default min-age: one hour
        assert plan.min_age == DEFAULT_MIN_AGE
        assert plan.orphans == () and [o.digest for o in plan.young] == [fresh]
        assert plan.execute(ws, alice).deleted == ()
        assert ws.store.has(fresh)
        two_hours_ago = time.time() - 7200
        os.utime(ws.store.path_of(fresh), (two_hours_ago, two_hours_ago))
        plan = plan_gc(ws)
        assert [o.digest for o in plan.orphans] == [fresh] and plan.young == ()
        assert plan.orphans[0].age_seconds >= 7200
        plan.execute(ws, alice)
        assert not ws.store.has(fresh)


def test_a_blob_a_release_starts_using_after_the_plan_is_spared(
    workspace: Workspace, registry: Registry, alice: Actor, make_model: MakeModel
) -> None:
    folder = make_model(seed=5)
    config = (folder / "config.json").read_bytes()
    early = workspace.store.put_bytes(config)  # e.g. stored by a push still running
    other = workspace.store.put_bytes(b"truly unused")
    plan = plan_gc(workspace, min_age=0)
    assert {o.digest for o in plan.orphans} == {early, other}
    registry.push(folder, name="chat", version="1.0.0", actor=alice)  # now early is used
    result = plan.execute(workspace, alice)
    assert result.spared == (early,) and [o.digest for o in result.deleted] == [other]
    assert workspace.store.has(early) and not workspace.store.has(other)
    assert registry.verify().ok and chain_ok(workspace)


def test_only_an_admin_collects_and_a_refusal_is_audited(
    workspace: Workspace, alice: Actor
) -> None:
    orphan = workspace.store.put_bytes(b"unused")
    plan = plan_gc(workspace, min_age=0)
    with pytest.raises(Forbidden, match=r"store\.gc"):
        plan.execute(workspace, Actor("bob", "operator"))
    assert workspace.store.has(orphan)
    with workspace.db.read() as conn:
        [denial] = list(audit.entries(conn, action="access.denied"))
    assert denial.actor == "bob" and denial.details["action"] == "store.gc"
    assert chain_ok(workspace)


def test_bad_input_is_refused(workspace: Workspace, alice: Actor, tmp_path: Path) -> None:
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(InvalidInput, match="min-age"):
            plan_gc(workspace, min_age=bad)
    foreign = GcPlan("file:///somewhere/else", 0.0, (), (), 0)
    with pytest.raises(InvalidInput, match="not"):
        foreign.execute(workspace, alice)


class FlakyStore(MemoryStore):
    """Deletes ``ok`` blobs, then the network goes away."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self.ok = ok

    def delete(self, digest: Digest) -> None:
        if self.ok <= 0:
            raise ServiceUnavailable("the store went away", hint="check the store")
        self.ok -= 1
        super().delete(digest)


def test_a_store_failure_midway_is_recorded_and_raised(
    sqlite_settings: Settings, alice: Actor
) -> None:
    with Workspace.open(sqlite_settings, create=True) as ws:
        ws.store = FlakyStore(ok=1)
        blobs = [ws.store.put_bytes(b"one"), ws.store.put_bytes(b"two")]
        plan = plan_gc(ws, min_age=0)
        with pytest.raises(ServiceUnavailable, match="after deleting 1 of 2") as info:
            plan.execute(ws, alice)
        assert info.value.hint == "check the store"
        assert sum(ws.store.has(b) for b in blobs) == 1
        [event] = gc_events(ws)
        assert event.details["count"] == 1
        assert chain_ok(ws)


# -- the invariant ----------------------------------------------------------------------

contents = st.binary(min_size=0, max_size=6).map(lambda b: b"blob:" + b)
releases = st.lists(
    st.dictionaries(st.sampled_from(["a.txt", "b.txt", "sub/c.txt"]), contents, min_size=1),
    max_size=4,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(pushes=releases, orphans=st.lists(contents, max_size=5))
def test_gc_removes_exactly_the_orphans(
    pushes: list[dict[str, bytes]], orphans: list[bytes], tmp_path: Path
) -> None:
    alice = Actor("alice", "admin")
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        root = Path(tmp)
        settings = Settings(home=root / ".airlock", store_url="memory://", user="alice")
        with Workspace.open(settings, create=True) as ws:
            registry = Registry(ws)
            for i, files in enumerate(pushes):
                folder = root / f"release{i}"
                for rel, data in files.items():
                    (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                    (folder / rel).write_bytes(data)
                registry.push(folder, name="m", version=f"1.0.{i}", actor=alice)
            used = set(ws.store.digests())
            for data in orphans:
                ws.store.put(io.BytesIO(data))
            expected = {digest_bytes(d) for d in orphans} - used

            plan = plan_gc(ws, min_age=0)
            assert {o.digest for o in plan.orphans} == expected
            result = plan.execute(ws, alice)
            assert {o.digest for o in result.deleted} == expected
            assert set(ws.store.digests()) == used
            assert registry.verify().ok and chain_ok(ws)


# -- the command line -----------------------------------------------------------------------


def test_cli_shows_the_plan_and_collects_unless_dry_run(cli: Any, tmp_path: Path) -> None:
    cli("init")
    store = LocalStore(tmp_path / ".airlock")
    orphan = store.put_bytes(b"abandoned by a crashed push")
    shown = cli("gc", "--dry-run", "--min-age", "0")
    assert "unused: delete" in shown.output and "dry run" in shown.output
    assert store.has(orphan)
    kept = cli("gc")  # the default min-age spares a blob this young
    assert "nothing to delete" in kept.output and store.has(orphan)
    done = cli("gc", "--min-age", "0")
    assert "deleted 1 blob" in done.output and not store.has(orphan)
    assert "store.gc" in cli("audit", "log").output
    cli("audit", "verify")
    assert cli("gc", "--min-age", "-5", ok=False).exit_code == 1


def test_cli_default_min_age_is_the_library_default() -> None:
    import inspect

    from airlock.cli.gc_cmd import gc

    default = inspect.signature(gc).parameters["min_age"].default
    assert default == DEFAULT_MIN_AGE


# -- temporary files of killed pushes ---------------------------------------------------------


def _staging_file(store: LocalStore, name: str, size: int, age: float) -> Path:
    path = store.staging / name
    path.write_bytes(b"\0" * size)
    when = time.time() - age
    os.utime(path, (when, when))
    return path


def test_gc_removes_old_staging_files_and_keeps_fresh_ones(
    workspace: Workspace, alice: Actor
) -> None:
    store = workspace.store
    if not isinstance(store, LocalStore):
        pytest.skip("only a local store stages through files")
    old = _staging_file(store, "put-killed", 3000, age=3600)
    fresh = _staging_file(store, "put-in-flight", 1000, age=5)
    plan = plan_gc(workspace)  # default: ten minutes without a write
    assert [f.name for f in plan.staging] == ["put-killed"]
    assert [f.name for f in plan.staging_live] == ["put-in-flight"]
    assert old.exists()  # planning deletes nothing
    result = plan.execute(workspace, alice)
    assert not old.exists() and fresh.exists()
    assert [f.name for f in result.staging_removed] == ["put-killed"]
    [event] = gc_events(workspace)
    assert event.details == {"count": 0, "bytes": 0, "staging_files": 1, "staging_bytes": 3000}
    assert chain_ok(workspace)
    # the fresh one goes once it has been idle long enough
    plan_gc(workspace, staging_min_age=0).execute(workspace, alice)
    assert not fresh.exists()


def test_a_staging_file_written_to_after_the_plan_is_kept(
    workspace: Workspace, alice: Actor
) -> None:
    store = workspace.store
    if not isinstance(store, LocalStore):
        pytest.skip("only a local store stages through files")
    path = _staging_file(store, "put-resumed", 10, age=3600)
    plan = plan_gc(workspace)
    os.utime(path)  # the write goes on
    assert plan.execute(workspace, alice).staging_removed == ()
    assert path.exists()


def test_a_push_that_fails_midway_leaves_no_staging_file(
    workspace: Workspace,
    registry: Registry,
    alice: Actor,
    make_model: MakeModel,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = workspace.store
    if not isinstance(store, LocalStore):
        pytest.skip("only a local store stages through files")
    import airlock.store.local as local

    real = local._read_into
    calls = iter(range(1000))

    def failing(stream: Any, view: memoryview) -> int:
        if next(calls) == 2:  # the first file's bytes and EOF went through; then the disk fails
            raise OSError(5, "Input/output error")
        return real(stream, view)

    monkeypatch.setattr(local, "_read_into", failing)
    with pytest.raises(InvalidInput, match="Input/output error"):
        registry.push(
            make_model(seed=40),
            name="chat",
            version="1.0.0",
            actor=alice,
        )
    assert list(store.staging.iterdir()) == []
    assert list(store.digests()) == []  # the blob stored before the failure was removed again


def test_cli_gc_removes_staging_files_of_killed_pushes(cli: Any, tmp_path: Path) -> None:
    cli("init")
    store = LocalStore(tmp_path / ".airlock")
    old = _staging_file(store, "put-x", 100, age=7200)
    shown = cli("gc", "--dry-run").output
    assert "temporary files idle for 600s: delete" in shown and old.exists()
    done = cli("gc").output
    assert "1 temporary file(s)" in done and not old.exists()
