"""``audit verify`` streams the chain in batches and can start from a signed checkpoint."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import update

from airlock import audit
from airlock.audit.chain import Checkpoint
from airlock.catalog.schema import events
from airlock.config import Settings
from airlock.services.workspace import Workspace
from airlock_testkit import Cli


@pytest.fixture
def ws(sqlite_settings: Settings) -> Iterator[Workspace]:
    workspace = Workspace.open(sqlite_settings, create=True)
    try:
        _events(workspace, 12)
        yield workspace
    finally:
        workspace.close()


def _events(ws: Workspace, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        with ws.db.write() as conn:
            audit.append(conn, actor="alice", action="note.add", subject=f"n{i}", details={"i": i})


def test_small_batches_verify_the_same_chain_and_find_the_same_edit(ws: Workspace) -> None:
    with ws.db.read() as conn:
        whole = audit.verify(conn)
        batched = audit.verify(conn, batch=5)  # 12 events: three queries
    assert whole == batched and whole.ok and whole.checked == 12
    with ws.db.write() as conn:
        conn.execute(update(events).where(events.c.seq == 7).values(subject="edited"))
    with ws.db.read() as conn:
        report = audit.verify(conn, batch=5)
    assert report.problem is not None and report.problem.seq == 7
    assert report.problem.kind == "edited" and report.checked == 6


def test_verify_from_a_checkpoint_walks_only_the_events_after_it(
    ws: Workspace, cli: Cli, tmp_path: Path
) -> None:
    kept = tmp_path / "cp.jsonl"
    signed = json.loads(cli("audit", "checkpoint", "--out", kept).output)
    assert signed["seq"] == 12
    _events(ws, 4, start=12)
    out = cli("audit", "verify", "--from-checkpoint", kept).output
    assert "from checkpoint 12" in out and "4 event(s) verified; head 16" in out

    # an edit after the checkpoint is found
    with ws.db.write() as conn:
        conn.execute(update(events).where(events.c.seq == 14).values(actor="mallory"))
    result = cli("audit", "verify", "--from-checkpoint", kept, ok=False)
    assert result.exit_code == 1 and "event 14" in result.output


def test_a_checkpoint_that_no_longer_matches_the_stored_event_fails(
    ws: Workspace, cli: Cli, tmp_path: Path
) -> None:
    kept = tmp_path / "cp.json"
    cli("audit", "checkpoint", "--out", kept)
    with ws.db.write() as conn:
        conn.execute(update(events).where(events.c.seq == 12).values(hash="0" * 64))
    result = cli("audit", "verify", "--from-checkpoint", kept, ok=False)
    assert result.exit_code == 1 and "rewritten or cut at or before it" in result.output
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps({**json.loads(kept.read_text()), "seq": 11}))
    result = cli("audit", "verify", "--from-checkpoint", forged, ok=False)
    assert result.exit_code != 0 and "signature does not verify" in result.output


def test_start_checkpoint_in_the_pure_walk() -> None:
    from airlock.audit.chain import verify_chain

    report = verify_chain([], start=Checkpoint(3, "a" * 64))
    assert report.ok and report.head_seq == 3 and report.head_hash == "a" * 64


@given(
    seq=st.integers(min_value=1, max_value=2**62),
    texts=st.lists(st.text(), min_size=6, max_size=6),
)
def test_the_fast_event_body_is_the_canonical_json(seq: int, texts: list[str]) -> None:
    from airlock.audit.chain import event_body
    from airlock.core.digest import canonical_json

    at, actor, action, subject, details, prev = texts
    body = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": details,
        "prev": prev,
    }
    try:
        expected = canonical_json(body)
    except UnicodeEncodeError:  # a lone surrogate: neither path can encode it
        with pytest.raises(UnicodeEncodeError):
            event_body(seq, at, actor, action, subject, details, prev)
        return
    assert event_body(seq, at, actor, action, subject, details, prev) == expected


def test_a_replaced_event_is_found_across_a_batch_boundary_on_each_database(
    settings: Settings,
) -> None:
    """Event 6 swapped for a self-consistent forgery (its hash recomputed): event 7 no longer
    links to it. With batches of 6 the break is the first row of a batch, read ahead on the
    worker thread; the diagnosis (a lookup of the missing link) runs once the worker stopped."""
    from airlock.audit.chain import event_hash, verify_chain
    from airlock.catalog import events as event_sql

    workspace = Workspace.open(settings, create=True)
    try:
        _events(workspace, 12)
        with workspace.db.read() as conn:
            assert audit.verify(conn, batch=6).ok
            six = event_sql.at_seq(conn, 6)
        assert six is not None
        forged = event_hash(
            seq=6,
            at=six.at,
            actor="mallory",
            action=six.action,
            subject=six.subject,
            details=six.details,
            prev_hash=six.prev_hash,
        )
        with workspace.db.write() as conn:
            conn.execute(
                update(events).where(events.c.seq == 6).values(actor="mallory", hash=forged)
            )
        with workspace.db.read() as conn:
            streamed = audit.verify(conn, batch=6)
            whole = verify_chain(list(event_sql.stream(conn)))
        assert streamed == whole
        assert streamed.problem is not None and streamed.problem.kind == "broken_link"
        assert streamed.problem.seq == 7 and streamed.checked == 6
    finally:
        workspace.close()


def test_the_walk_fed_in_batches_reports_what_the_whole_walk_reports() -> None:
    from airlock.audit.chain import GENESIS, ChainWalk, EventRow, event_hash, verify_chain

    rows: list[EventRow] = []
    prev = GENESIS
    for seq in range(1, 11):
        fields = ("2026-01-01T00:00:00", "alice", "note.add", f"n{seq}", '{"i":1}')
        digest = event_hash(
            seq=seq,
            at=fields[0],
            actor=fields[1],
            action=fields[2],
            subject=fields[3],
            details=fields[4],
            prev_hash=prev,
        )
        rows.append(EventRow(seq, *fields, prev, digest))
        prev = digest
    swapped = [*rows[:4], rows[5], rows[4], *rows[6:]]
    edited = [*rows[:7], rows[7]._replace(details='{"i":2}'), *rows[8:]]
    for chain in (rows, swapped, edited, rows[:5] + rows[6:]):
        walk = ChainWalk(checkpoints=[Checkpoint(10, rows[-1].hash)])
        for start in range(0, len(chain), 3):
            if not walk.feed(chain[start : start + 3]):
                break
        assert walk.report() == verify_chain(chain, checkpoints=[Checkpoint(10, rows[-1].hash)])
    kinds = []
    for chain in (swapped, edited):
        problem = verify_chain(chain).problem
        assert problem is not None
        kinds.append((problem.kind, problem.seq))
    assert kinds == [("missing", 5), ("edited", 8)]
