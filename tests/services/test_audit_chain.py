"""The chain as a client gets it (``AuditLog.stored``) and its verification away from the
catalog (``check_chain``): for every kind of tampering, the client's report is the
catalog's own, word for word, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Connection, delete, update

from airlock import audit
from airlock.audit.chain import Checkpoint
from airlock.catalog.schema import events
from airlock.errors import IntegrityError
from airlock.services.audit_chain import ChainEvent, ChainHead, check_chain
from airlock.services.audit_views import AuditLog
from airlock.services.workspace import Workspace
from airlock_testkit import rewrite_chain

N = 12


@pytest.fixture
def log(workspace: Workspace) -> AuditLog:
    for i in range(N):
        with workspace.db.write() as conn:
            audit.append(
                conn, actor="alice", action="note.add", subject=f"n{i}", details={"i": i, "é": "ü"}
            )
    return AuditLog(workspace)


def _checkpoint(log: AuditLog, seq: int) -> Checkpoint:
    found = next(log.stored(after_seq=seq - 1, limit=1))
    return Checkpoint(found.seq, found.hash)


def _edit(column: str, value: str) -> Callable[[Connection], None]:
    def run(conn: Connection) -> None:
        conn.execute(update(events).where(events.c.seq == 5).values({column: value}))

    return run


def _delete(*seqs: int) -> Callable[[Connection], None]:
    def run(conn: Connection) -> None:
        conn.execute(delete(events).where(events.c.seq.in_(seqs)))

    return run


def _swap(conn: Connection) -> None:
    """Events 4 and 5 change places (contents swapped, sequences kept)."""
    rows = {r.seq: r for r in conn.execute(events.select().where(events.c.seq.in_([4, 5])))}
    unique = {"prev_hash": "p" * 64, "hash": "h" * 64}  # the hashes are unique columns
    conn.execute(update(events).where(events.c.seq == 4).values(unique))
    for here, there in ((5, 4), (4, 5)):
        values = {k: v for k, v in rows[there]._asdict().items() if k != "seq"}
        conn.execute(update(events).where(events.c.seq == here).values(values))


def _rewrite(conn: Connection) -> None:
    """Event 6 edited and every later hash recomputed: the chain alone still verifies."""
    rewrite_chain(conn, 6, actor="mallory")


TAMPERING = {
    "nothing": lambda conn: None,
    "actor edited": _edit("actor", "mallory"),
    "details edited": _edit("details", '{"i":4,"é":"u"}'),
    "details re-encoded": _edit("details", '{"i": 4, "é": "ü"}'),  # same JSON, other text
    "hash replaced": _edit("hash", "0" * 64),
    "event removed": _delete(5),
    "tail cut": _delete(11, 12),
    "events swapped": _swap,
    "rewritten from 6": _rewrite,
}


@pytest.mark.parametrize("tampering", list(TAMPERING))
def test_the_client_finds_what_the_catalog_finds(log: AuditLog, tampering: str) -> None:
    held = [_checkpoint(log, 8), _checkpoint(log, N)]
    head = log.head()
    with log.db.write() as conn:
        TAMPERING[tampering](conn)
    for kwargs in ({}, {"checkpoints": held}, {"expected_head": held[0].hash}):
        catalog = log.verify(**kwargs)  # type: ignore[arg-type]
        client = check_chain(log.stored(), **kwargs)  # type: ignore[arg-type]
        assert client == catalog, (tampering, kwargs)
    assert (tampering == "nothing") == log.verify(checkpoints=held).ok
    # the server named its head before the tail went: what is sent must reach it
    if tampering == "tail cut":
        cut = check_chain(log.stored(), reaches=head)
        assert cut.problem is not None and cut.problem.kind == "cut"
        assert "the server's head is event 12" in cut.problem.message


def test_the_chain_sent_must_hold_the_head_the_server_named(log: AuditLog) -> None:
    head = log.head()
    assert check_chain(log.stored(), reaches=head).ok
    # a server that names one head and then sends a chain (whole and valid) through another
    other = ChainHead(head.seq, "f" * 64)
    told = check_chain(log.stored(), reaches=other)
    assert told.problem is not None and told.problem.kind == "head_mismatch"
    assert f"event {head.seq}" in told.problem.message and head.hash[:16] in told.problem.message


@pytest.mark.parametrize("tampering", ["nothing", "actor edited", "rewritten from 6"])
def test_from_a_checkpoint_the_client_finds_what_the_catalog_finds(
    log: AuditLog, tampering: str
) -> None:
    start = _checkpoint(log, 7)
    with log.db.write() as conn:
        TAMPERING[tampering](conn)
        catalog = audit.verify(conn, start=start)
    client = check_chain(log.stored(after_seq=start.seq - 1), start=start)
    assert client == catalog
    assert client.ok == (tampering != "rewritten from 6")  # event 5 is before the checkpoint


def test_stored_events_page_by_sequence_exactly_as_stored(log: AuditLog) -> None:
    every = list(log.stored())
    assert [e.seq for e in every] == list(range(1, N + 1))
    assert list(log.stored(after_seq=3, limit=4)) == every[3:7]
    assert ChainEvent.from_dict(_as_dict(every[0])) == every[0]  # the download round-trips
    assert log.head() == ChainHead(N, every[-1].hash)
    line = every[0].to_json()
    assert '"details":"{\\"i\\":0,\\"é\\":\\"ü\\"}"' in line  # the hashed text, unescaped


def _as_dict(ev: ChainEvent) -> dict[str, object]:
    import json

    return dict(json.loads(ev.to_json()))


@pytest.mark.parametrize(
    "broken",
    [{"seq": "1"}, {"seq": True}, {"details": {"i": 0}}, {"hash": None}, {"actor": 3}],
)
def test_a_malformed_event_from_a_server_is_an_integrity_error(
    log: AuditLog, broken: dict[str, object]
) -> None:
    good = _as_dict(next(log.stored()))
    with pytest.raises(IntegrityError, match="not one"):
        ChainEvent.from_dict({**good, **broken})
    missing = {k: v for k, v in good.items() if k != "prev_hash"}
    with pytest.raises(IntegrityError):
        ChainEvent.from_dict(missing)
