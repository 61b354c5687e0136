"""Reads the edges share through services: the lineage walk, audit pages, token visibility,
the controller's authorisation, the drill start checks (on SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from airlock.errors import Conflict, Forbidden, NotFound
from airlock.services.access import authorize_controller
from airlock.services.audit_views import AuditLog, EventFilter
from airlock.services.drills import Drills
from airlock.services.identity import Actor
from airlock.services.lineage import lineage
from airlock.services.registry import Registry
from airlock.services.tokens import Tokens
from airlock.services.workspace import Workspace

MakeModel = Callable[..., Path]


def _chain(workspace: Workspace, alice: Actor, make_model: MakeModel, n: int) -> Registry:
    reg = Registry(workspace)
    parent = None
    for i in range(n):
        reg.push(make_model(seed=i), name="chat", version=f"1.{i}.0", actor=alice, parent=parent)
        parent = f"chat@1.{i}.0"
    return reg


def test_lineage_walks_the_parents_once_for_graph_and_chain(
    workspace: Workspace, alice: Actor, make_model: MakeModel
) -> None:
    reg = _chain(workspace, alice, make_model, 3)
    walk = lineage(reg, "chat@1.2.0")
    assert walk.release.ref == "chat@1.2.0" and not walk.truncated
    assert [p.ref for p in walk.parents] == ["chat@1.1.0", "chat@1.0.0"]
    assert all(p.found and p.digest.startswith("sha256:") for p in walk.chain)
    nodes, edges = walk.graph()
    ids = {n.id for n in nodes}
    assert {e.source for e in edges} | {e.target for e in edges} <= ids
    parents = [(e.source, e.target) for e in edges if e.label == "parent"]
    assert parents == [
        ("release:chat@1.2.0", "release:chat@1.1.0"),
        ("release:chat@1.1.0", "release:chat@1.0.0"),
    ]


def test_a_long_chain_is_cut_at_the_limit_and_still_a_whole_graph(
    workspace: Workspace, alice: Actor, make_model: MakeModel
) -> None:
    reg = _chain(workspace, alice, make_model, 4)
    walk = lineage(reg, "chat@1.3.0", limit=2)
    assert walk.truncated
    assert [p.ref for p in walk.parents] == ["chat@1.2.0", "chat@1.1.0"]
    nodes, edges = walk.graph()
    ids = {n.id for n in nodes}
    assert "release:chat@1.0.0" in ids  # the cut parent is named, not followed
    assert {e.source for e in edges} | {e.target for e in edges} <= ids


def test_audit_pages_both_ways_and_verifies(
    workspace: Workspace, alice: Actor, make_model: MakeModel
) -> None:
    _chain(workspace, alice, make_model, 3)
    log = AuditLog(workspace)
    pushes = log.events(EventFilter(action="release.push"))
    assert [e.subject for e in pushes] == ["chat@1.0.0", "chat@1.1.0", "chat@1.2.0"]
    first = log.page(EventFilter(action="release."), limit=2)
    assert first.more and first.cursor == first.events[-1].seq and len(first.events) == 2
    rest = log.page(EventFilter(action="release."), limit=2, after_seq=first.cursor or 0)
    assert [e.subject for e in rest.events] == ["chat@1.2.0"] and rest.cursor is None
    newest = log.page(EventFilter(subject="chat@"), limit=1, newest_first=True)
    older = log.page(
        EventFilter(subject="chat@"), limit=5, before_seq=newest.cursor, newest_first=True
    )
    assert [e.seq for e in older.events] == sorted((e.seq for e in older.events), reverse=True)
    assert all(e.seq < newest.events[0].seq for e in older.events)
    report = log.verify()
    assert report.ok and report.head_seq == log.events(newest_first=True, limit=1)[0].seq


def test_token_visibility_is_one_rule(workspace: Workspace, alice: Actor) -> None:
    tokens = Tokens(workspace)
    tokens.create(user="vera", role="viewer", actor=alice)
    tokens.create(user="carl", role="author", actor=alice)
    vera = Actor("vera", "viewer")
    assert {t.user for t in tokens.visible(vera)} == {"vera"}
    assert {t.user for t in tokens.visible(alice)} == {"vera", "carl"}
    assert {t.user for t in tokens.visible(alice, user="carl")} == {"carl"}
    with pytest.raises(Forbidden, match="only list their own tokens"):
        tokens.visible(vera, user="carl")


def test_only_an_operator_or_admin_may_run_the_controller(
    workspace: Workspace, alice: Actor
) -> None:
    authorize_controller(workspace, alice)
    authorize_controller(workspace, Actor("otto", "operator"))
    with pytest.raises(Forbidden, match="the rollout controller"):
        authorize_controller(workspace, Actor("carl", "author"))
    denied = AuditLog(workspace).events(EventFilter(action="access.denied"))
    assert [e.actor for e in denied] == ["carl"]


def test_a_drill_starts_only_on_a_known_idle_service_by_an_admin(
    workspace: Workspace, alice: Actor, make_model: MakeModel
) -> None:
    _chain(workspace, alice, make_model, 2)
    drills = Drills(workspace)
    with pytest.raises(NotFound):
        drills.check_start("chat", alice)
    drills.serving.create("chat", "chat@1.0.0", actor=alice)
    drills.check_start("chat", alice)
    with pytest.raises(Forbidden, match="drill"):
        drills.check_start("chat", Actor("otto", "operator"))  # may start, may not push
    drills.rollouts.start(
        "chat",
        "chat@1.1.0",
        {"strategy": "shadow", "duration_seconds": 60},
        actor=alice,
        kind="drill",
    )
    with pytest.raises(Conflict, match="already has rollout"):
        drills.check_start("chat", alice)
