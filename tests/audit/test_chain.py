"""The audit chain verifies after any sequence of actions and fails after any edit."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, update

from airlock import audit
from airlock.audit.chain import GENESIS, verify_chain
from airlock.catalog.engine import Database
from airlock.catalog.events import StoredEvent
from airlock.catalog.migrate import upgrade
from airlock.catalog.schema import events


def chain(n: int) -> list[StoredEvent]:
    rows: list[StoredEvent] = []
    prev = GENESIS
    for i in range(1, n + 1):
        at = f"2026-01-01T00:00:{i:02d}.000000+00:00"
        details = f'{{"i":{i}}}'
        h = audit.chain.event_hash(
            seq=i, at=at, actor="a", action="x.y", subject=f"s{i}", details=details, prev_hash=prev
        )
        rows.append(StoredEvent(i, at, "a", "x.y", f"s{i}", details, prev, h))
        prev = h
    return rows


def test_intact_chain_verifies() -> None:
    report = verify_chain(chain(5))
    assert report.ok and report.checked == 5 and report.head_seq == 5


def test_edited_event_is_named() -> None:
    rows = chain(5)
    rows[2] = replace(rows[2], actor="mallory")
    report = verify_chain(rows)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (3, "edited")


def test_removed_event_is_named() -> None:
    rows = chain(5)
    del rows[1]
    report = verify_chain(rows)
    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (2, "missing")


def test_swapped_events_are_reported_as_reordered() -> None:
    rows = chain(5)
    a, b = rows[1], rows[2]
    rows[1], rows[2] = replace(b, seq=2), replace(a, seq=3)
    report = verify_chain(rows)
    assert report.problem is not None and report.problem.seq == 2
    assert report.problem.kind in {"reordered", "edited"}


def test_cut_tail_is_found_with_the_expected_head() -> None:
    rows = chain(5)
    head = rows[-1].hash
    assert verify_chain(rows[:4]).ok  # undetectable from the chain alone
    report = verify_chain(rows[:4], expected_head=head)
    assert report.problem is not None and report.problem.kind == "head_mismatch"


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    actions=st.lists(
        st.tuples(st.sampled_from(["release.push", "alias.move", "x"]), st.text(max_size=20)),
        min_size=1,
        max_size=12,
    ),
    data=st.data(),
)
def test_any_sequence_verifies_and_any_flipped_byte_breaks_it(
    tmp_path_factory: pytest.TempPathFactory, actions: list[tuple[str, str]], data: st.DataObject
) -> None:
    db = Database.open(f"sqlite:///{tmp_path_factory.mktemp('a') / 'c.db'}")
    upgrade(db)
    try:
        for action, subject in actions:
            with db.write() as conn:
                audit.append(
                    conn, actor="alice", action=action, subject=subject, details={"s": subject}
                )
        with db.read() as conn:
            assert audit.verify(conn).ok
            rows = list(audit.entries(conn))
        victim = data.draw(st.sampled_from(rows))
        column = data.draw(
            st.sampled_from(["at", "actor", "action", "subject", "details", "prev_hash", "hash"])
        )
        original = getattr(victim, column) if column != "details" else _details_text(db, victim.seq)
        pos = data.draw(st.integers(0, max(0, len(original) - 1)))
        tampered = _flip(original, pos)
        with db.write() as conn:
            conn.execute(
                update(events).where(events.c.seq == victim.seq).values({column: tampered})
            )
        with db.read() as conn:
            report = audit.verify(conn)
        assert not report.ok
        assert report.problem is not None and report.problem.seq <= victim.seq + 1
    finally:
        db.dispose()


def _details_text(db: Database, seq: int) -> str:
    with db.read() as conn:
        return str(conn.execute(events.select().where(events.c.seq == seq)).one().details)


def _flip(text: str, pos: int) -> str:
    if not text:
        return "x"
    ch = text[pos]
    return text[:pos] + ("a" if ch != "a" else "b") + text[pos + 1 :]


def test_deleting_a_row_in_the_database_is_found(tmp_path: Path) -> None:
    db = Database.open(f"sqlite:///{tmp_path / 'c.db'}")
    upgrade(db)
    for i in range(4):
        with db.write() as conn:
            audit.append(conn, actor="a", action="x", subject=str(i))
    with db.write() as conn:
        conn.execute(delete(events).where(events.c.seq == 2))
    with db.read() as conn:
        report = audit.verify(conn)
    db.dispose()
    assert (
        report.problem is not None and report.problem.kind == "missing" and report.problem.seq == 2
    )
