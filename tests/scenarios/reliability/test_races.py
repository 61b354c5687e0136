"""50-way races through the real services layer, on a SQLite file and on PostgreSQL.

Each caller runs in its own thread on its own catalog connection; a barrier
starts them together. Whatever the interleaving, there is no server error, every
recorded change is one link of a chain (alias history, audit events), and
``audit verify`` passes.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select

from airlock import audit
from airlock.catalog.engine import Database, make_engine
from airlock.catalog.schema import approvals, events
from airlock.errors import Conflict
from airlock.services.governance import Governance
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace

T = TypeVar("T")
CALLERS = 50
ALICE = Actor("alice", "admin")
OPS = Actor("olga", "operator")
MakeModel = Callable[..., Path]


@pytest.fixture
def racing(workspace: Workspace) -> Iterator[Workspace]:
    """The same workspace with a pool wide enough that every running caller has its own
    connection (SQLite: a new connection per use already)."""
    url = workspace.settings.catalog_url
    extra: dict[str, Any] = {}
    if not url.startswith("sqlite"):
        extra = {"pool_size": 20, "max_overflow": 0, "pool_timeout": 120}
    db = Database(make_engine(url, **extra))
    try:
        yield Workspace(workspace.settings, db, workspace.store)
    finally:
        db.dispose()


def race(n: int, call: Callable[[int], T]) -> list[T | BaseException]:
    """Run ``call(i)`` for i in 0..n-1 in n threads started together; results or errors."""
    barrier = threading.Barrier(n)

    def one(i: int) -> T | BaseException:
        barrier.wait()
        try:
            return call(i)
        except BaseException as exc:
            return exc

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def _unexpected(results: list[Any], allowed: type[BaseException] | None = None) -> list[Any]:
    return [
        r
        for r in results
        if isinstance(r, BaseException) and not (allowed and isinstance(r, allowed))
    ]


def _push(ws: Workspace, make_model: MakeModel, versions: int) -> list[str]:
    reg = Registry(ws)
    return [
        reg.push(make_model(f"v{i}", seed=i), name="chat", version=f"1.0.{i}", actor=ALICE).ref
        for i in range(versions)
    ]


def _assert_chain_ok(ws: Workspace) -> list[audit.Event]:
    with ws.db.read() as conn:
        report = audit.verify(conn)
        assert report.ok, report.problem
        rows = list(audit.entries(conn))
        forks = conn.execute(
            select(events.c.prev_hash).group_by(events.c.prev_hash).having(func.count() > 1)
        ).all()
    assert [e.seq for e in rows] == list(range(1, len(rows) + 1))
    assert forks == []
    return rows


def test_concurrent_alias_moves_chain_their_history(
    racing: Workspace, make_model: MakeModel
) -> None:
    refs = _push(racing, make_model, 3)
    reg = Registry(racing)
    results = race(
        CALLERS,
        lambda i: reg.set_alias("candidate", refs[i % 3], actor=OPS, reason=f"move {i}"),
    )
    assert _unexpected(results) == []
    moved = [r for r in results if not isinstance(r, BaseException) and r.moved]
    history = reg.alias_history("chat", "candidate")
    assert len(history) == len(moved) >= 1
    assert history[0].from_version is None
    for before, after in itertools.pairwise(history):
        assert after.from_version == before.to_version, (before, after)
    final = {a.name: a.version for a in reg.aliases("chat")}["candidate"]
    assert history[-1].to_version == final
    # The audit events tell the same story, in the same order.
    moves = [e for e in _assert_chain_ok(racing) if e.action == "alias.move"]
    assert [m.seq for m in moves] == [h.event_seq for h in history]
    assert [(m.details["from"], m.details["to"]) for m in moves] == [
        (f"chat@{h.from_version}" if h.from_version else None, f"chat@{h.to_version}")
        for h in history
    ]


def test_concurrent_approvals_by_one_approver_are_recorded_once(
    racing: Workspace, make_model: MakeModel
) -> None:
    (ref,) = _push(racing, make_model, 1)
    gov = Governance(racing)
    bob = Actor("bob", "approver")
    results = race(CALLERS, lambda i: gov.approve(ref, stage="production", actor=bob))
    assert _unexpected(results, Conflict) == []
    recorded = [r for r in results if not isinstance(r, BaseException)]
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(recorded) == 1 and len(conflicts) == CALLERS - 1
    assert all("bob already approved chat@1.0.0 for production" in c.message for c in conflicts)
    with racing.db.read() as conn:
        count = conn.execute(select(func.count()).select_from(approvals)).scalar_one()
    assert count == 1
    assert len([e for e in _assert_chain_ok(racing) if e.action == "release.approve"]) == 1


def test_a_repeated_decision_is_a_conflict_and_a_changed_mind_is_recorded(
    workspace: Workspace, make_model: MakeModel
) -> None:
    (ref,) = _push(workspace, make_model, 1)
    gov = Governance(workspace)
    bob = Actor("bob", "approver")
    gov.approve(ref, stage="production", actor=bob)
    with pytest.raises(Conflict, match="bob already approved") as caught:
        gov.approve(ref, stage="production", actor=bob)
    assert caught.value.status == 409
    gov.reject(ref, stage="production", actor=bob, comment="found a problem")
    gov.approve(ref, stage="production", actor=bob, comment="fixed")
    assert [a.decision for a in gov.approvals(ref)] == ["approve", "reject", "approve"]


def test_mixed_concurrent_writers_never_fork_the_audit_chain(
    racing: Workspace, make_model: MakeModel
) -> None:
    refs = _push(racing, make_model, 2)
    reg, gov = Registry(racing), Governance(racing)

    def act(i: int) -> object:
        kind = i % 5
        if kind == 0:
            return reg.set_alias("stable", refs[i % 2], actor=OPS, reason=f"r{i}")
        if kind == 1:
            return gov.approve(refs[1], stage="production", actor=Actor(f"ap{i}", "approver"))
        if kind == 2:
            return gov.reject(refs[0], stage="prod", actor=Actor(f"rj{i}", "approver"), comment="x")
        if kind == 3:
            doc = f"stages:\n  s{i}:\n    allow_pickle: false\n"
            return gov.set_policy("chat", doc, actor=ALICE, reason=f"p{i}")
        with racing.db.write() as conn:
            return audit.append(conn, actor="bot", action="note.add", subject=f"n{i}")

    results = race(CALLERS, act)
    assert _unexpected(results) == []
    rows = _assert_chain_ok(racing)
    assert len([e for e in rows if e.action == "policy.set"]) == CALLERS // 5
    assert len([e for e in rows if e.action == "note.add"]) == CALLERS // 5
