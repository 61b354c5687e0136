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
