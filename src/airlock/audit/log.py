"""Append to and read the audit log, inside the caller's transaction."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from airlock.audit.chain import (
    GENESIS,
    ChainProblem,
    ChainReport,
    ChainWalk,
    Checkpoint,
    event_hash,
)
from airlock.catalog import events as sql
from airlock.catalog.events import StoredEvent
from airlock.core.digest import canonical_json


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    at: str
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    prev_hash: str
    hash: str

    @classmethod
    def from_row(cls, row: StoredEvent) -> Event:
        return cls(
            row.seq,
            row.at,
            row.actor,
            row.action,
            row.subject,
            json.loads(row.details),
            row.prev_hash,
            row.hash,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "details": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def append(
    conn: Connection,
    *,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any] | None = None,
) -> Event:
    """Append one event in the caller's transaction; it commits or rolls back with the change."""
    sql.lock_head(conn)
    head = sql.head(conn)
    seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
    at = now_text()
    details_text = canonical_json(dict(details or {})).decode("utf-8")
    digest = event_hash(
        seq=seq,
        at=at,
        actor=actor,
        action=action,
        subject=subject,
        details=details_text,
        prev_hash=prev,
    )
    row = StoredEvent(seq, at, actor, action, subject, details_text, prev, digest)
    sql.insert_event(conn, row)
    return Event.from_row(row)


def verify(
    conn: Connection,
    *,
    expected_head: str | None = None,
    checkpoints: Sequence[Checkpoint] = (),
    start: Checkpoint | None = None,
    batch: int = 20_000,
) -> ChainReport:
    """Verify the chain, streamed in batches of ``batch`` events (memory stays flat; the next
    batch is read while this one is checked).

    ``start``: a checkpoint already trusted (its signature checked by the caller): the
    stored event at its sequence must have its hash, and only the events after it are
    walked.
    """
    if start is not None:
        stored = sql.at_seq(conn, start.seq)
        if stored is None or stored.hash != start.hash:
            found = "is missing" if stored is None else f"has hash {stored.hash[:16]}…"
            problem = ChainProblem(
                start.seq,
                "rewritten",
                f"the checkpoint records event {start.seq} with hash {start.hash[:16]}…, but "
                f"the stored event {found}: the chain was rewritten or cut at or before it",
            )
            return ChainReport(0, start.seq, start.hash, problem)
    walk = ChainWalk(
        expected_head=expected_head,
        checkpoints=[c for c in checkpoints if start is None or c.seq > start.seq],
        start=start,
        remember_hashes=False,
    )
    with sql.raw_batches(conn, after_seq=start.seq if start else 0, batch=batch) as batches:
        for rows in batches:
            if not walk.feed(rows):
                break
    return walk.report(find_seq=lambda digest: sql.seq_of_hash(conn, digest))


def entries(
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
) -> Iterator[Event]:
    for row in sql.scan(
        conn,
        action=action,
        actor=actor,
        subject_prefix=subject_prefix,
        subject=subject,
        since=since,
        after_seq=after_seq,
        before_seq=before_seq,
        limit=limit,
        newest_first=newest_first,
    ):
        yield Event.from_row(row)
