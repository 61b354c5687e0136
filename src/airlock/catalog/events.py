"""SQL for the audit events table; the chain's rules live in ``airlock.audit``."""

from __future__ import annotations

from collections.abc import Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, text
from sqlalchemy.exc import DBAPIError

from airlock.catalog.schema import events

AUDIT_LOCK_KEY = 0x41_49_52_4C  # "AIRL": PostgreSQL advisory lock that serialises appends


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    at: str
    actor: str
    action: str
    subject: str
    details: str
    prev_hash: str
    hash: str


def lock_head(conn: Connection) -> None:
    """Serialise appends across processes (SQLite already holds its write lock)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": AUDIT_LOCK_KEY})


def head(conn: Connection) -> tuple[int, str] | None:
    r = conn.execute(
        select(events.c.seq, events.c.hash).order_by(events.c.seq.desc()).limit(1)
    ).first()
    return (int(r[0]), str(r[1])) if r else None


def stream(conn: Connection, *, after_seq: int = 0, batch: int = 5000) -> Iterator[StoredEvent]:
    """Every event after ``after_seq`` in sequence order, ``batch`` rows per query (keyset on
    the primary key): memory stays flat however long the log is."""
    last = after_seq
    while True:
        rows = conn.execute(
            select(events).where(events.c.seq > last).order_by(events.c.seq).limit(batch)
        ).all()
        for r in rows:
            yield StoredEvent(*r)
        if len(rows) < batch:
            return
        last = int(rows[-1][0])


# Raw rows for the chain walk: (seq, at, actor, action, subject, details, prev_hash, hash).
RawEvent = tuple[int, str, str, str, str, str, str, str]
_RAW_COLUMNS = "seq, at, actor, action, subject, details, prev_hash, hash"


@contextmanager
def raw_batches(
    conn: Connection, *, after_seq: int = 0, batch: int = 20_000
) -> Iterator[Iterator[list[RawEvent]]]:
    """Every event after ``after_seq`` in sequence order, as lists of plain row tuples straight
    from the driver (``audit verify`` walks millions: no per-row objects), ``batch`` rows per
    query (keyset on the primary key: memory stays flat).

    While the caller checks one batch, the next one is fetched on a worker thread, so the
    database's work and the caller's overlap. The worker owns the connection until the block
    is left: only then may the caller use ``conn`` again (the block waits for the worker).
    """
    driver: Any = conn.connection.driver_connection
    dialect = conn.dialect

    def fetch(last: int) -> list[RawEvent]:
        # Both values are ints by construction (int() below): nothing to quote.
        sql = (
            f"SELECT {_RAW_COLUMNS} FROM events WHERE seq > {int(last)} "
            f"ORDER BY seq LIMIT {int(batch)}"
        )
        cur = driver.cursor()
        try:
            cur.execute(sql)
            return list(cur.fetchall())
        except dialect.loaded_dbapi.Error as exc:
            raise DBAPIError.instance(sql, None, exc, dialect.loaded_dbapi.Error) from exc
        finally:
            cur.close()

    with ThreadPoolExecutor(1, thread_name_prefix="airlock-events") as worker:

        def batches() -> Generator[list[RawEvent]]:
            pending: Future[list[RawEvent]] | None = worker.submit(fetch, after_seq)
            while pending is not None:
                rows = pending.result()
                pending = worker.submit(fetch, rows[-1][0]) if len(rows) == batch else None
                yield rows

        walk = batches()
        try:
            yield walk
        finally:
            walk.close()  # the with waits for a fetch still running


def at_seq(conn: Connection, seq: int) -> StoredEvent | None:
    r = conn.execute(select(events).where(events.c.seq == seq)).first()
    return StoredEvent(*r) if r else None


def at_seqs(conn: Connection, seqs: list[int]) -> list[StoredEvent]:
    """The stored events with these sequence numbers (those that exist), by primary key."""
    if not seqs:
        return []
    rows = conn.execute(select(events).where(events.c.seq.in_(sorted(set(seqs))))).all()
    return [StoredEvent(*r) for r in rows]


def seq_of_hash(conn: Connection, digest: str) -> int | None:
    """The first event whose hash is ``digest`` (a scan: only asked when a chain is broken)."""
    r = conn.execute(
        select(events.c.seq).where(events.c.hash == digest).order_by(events.c.seq).limit(1)
    ).first()
    return int(r[0]) if r else None


def insert_event(conn: Connection, row: StoredEvent) -> None:
    conn.execute(
        insert(events).values(
            seq=row.seq,
            at=row.at,
            actor=row.actor,
            action=row.action,
            subject=row.subject,
            details=row.details,
            prev_hash=row.prev_hash,
            hash=row.hash,
        )
    )


def scan(
    conn: Connection,
    *,
    action: str | None = None,
    actor: str | None = None,
    subject_prefix: str | None = None,
    subject: str | None = None,
    since: str | None = None,
    after_seq: int = 0,
    before_seq: int | None = None,
    limit: int | None = None,
    newest_first: bool = False,
) -> Iterator[StoredEvent]:
    q = select(events).where(events.c.seq > after_seq)
    if before_seq is not None:  # keyset: a deep page starts at its place in the index
        q = q.where(events.c.seq < before_seq)
    if action is not None:
        q = q.where(
            events.c.action.startswith(action)
            if action.endswith(".")
            else events.c.action == action
        )
    if actor is not None:
        q = q.where(events.c.actor == actor)
    if subject_prefix is not None:
        q = q.where(events.c.subject.startswith(subject_prefix))
    if subject is not None:  # exact: walks ix_events_subject_seq
        q = q.where(events.c.subject == subject)
    if since is not None:
        q = q.where(events.c.at >= since)
    q = q.order_by(events.c.seq.desc() if newest_first else events.c.seq)
    if limit is not None:
        q = q.limit(limit)
    for r in conn.execute(q):
        yield StoredEvent(*r)
