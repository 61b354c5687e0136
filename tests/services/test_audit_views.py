"""The dashboard's chain status: walked once, then each view verifies only what is new and
what it shows; an edit anywhere is still found by a walk, and a found problem stays shown."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import update

from airlock import audit
from airlock.catalog.schema import events
from airlock.config import Settings
from airlock.services.audit_views import ChainMonitor
from airlock.services.workspace import Workspace


@pytest.fixture
def ws(sqlite_settings: Settings) -> Iterator[Workspace]:
    workspace = Workspace.open(sqlite_settings, create=True)
    try:
        _events(workspace, 10)
        yield workspace
    finally:
        workspace.close()


def _events(ws: Workspace, n: int) -> None:
    for i in range(n):
        with ws.db.write() as conn:
            audit.append(conn, actor="alice", action="note.add", subject=f"n{i}", details={"i": i})


def _edit(ws: Workspace, seq: int, **values: str) -> None:
    with ws.db.write() as conn:
        conn.execute(update(events).where(events.c.seq == seq).values(**values))


def test_a_short_chain_is_walked_on_the_first_view_and_then_only_new_events(
    ws: Workspace,
) -> None:
    chain = ChainMonitor(ws)
    first = chain.status()
    assert first.ok and first.complete and first.checked == 10 and first.walked_at
    _events(ws, 3)
    _edit(ws, 4, actor="mallory")  # old, not shown: a view does not walk back to it
    second = chain.status()
    assert second.ok and second.complete and second.checked == 13
    assert second.walked_at == first.walked_at
    walked = chain.status(walk=True)
    assert walked.problem is not None and (walked.problem.seq, walked.problem.kind) == (
        4,
        "edited",
    )
    again = chain.status()  # stays shown until the chain is walked again
    assert again.problem == walked.problem


def test_an_edited_event_on_the_page_shows_however_long_ago_the_walk_was(
    ws: Workspace,
) -> None:
    chain = ChainMonitor(ws)
    assert chain.status(shown=[10, 9, 8]).ok
    _edit(ws, 9, subject="forged")
    status = chain.status(shown=[10, 9, 8])
    assert status.problem is not None and (status.problem.seq, status.problem.kind) == (
        9,
        "edited",
    )
    assert chain.status(shown=[3, 2]).ok  # not on this page


def test_a_rewritten_last_verified_event_is_found_by_the_next_view(ws: Workspace) -> None:
    chain = ChainMonitor(ws)
    assert chain.status().ok
    _edit(ws, 10, hash="f" * 64)
    _events(ws, 1)
    status = chain.status()
    assert status.problem is not None and status.problem.kind == "rewritten"


def test_a_long_chain_waits_for_a_walk_asked_for(ws: Workspace) -> None:
    chain = ChainMonitor(ws)
    chain.AUTO_WALK = 5
    status = chain.status(shown=[10, 9])
    assert status.ok and not status.complete and status.walked_at is None
    assert status.head_seq == 10 and status.checked == 2
    walked = chain.status(walk=True)
    assert walked.ok and walked.complete and walked.checked == 10


def test_events_removed_from_the_end_after_a_view_are_a_cut(ws: Workspace) -> None:
    from sqlalchemy import delete

    chain = ChainMonitor(ws)
    assert chain.status().checked == 10
    with ws.db.write() as conn:
        conn.execute(delete(events).where(events.c.seq > 8))
    status = chain.status()
    assert status.problem is not None and (status.problem.kind, status.problem.seq) == ("cut", 8)
