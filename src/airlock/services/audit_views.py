"""Reading the audit log: filtered pages of events, the chain's verification, its head.

The CLI (``airlock audit log|head|verify``), the REST API (``/api/v1/audit``) and
the dashboard (``/audit``) read the log through :class:`AuditLog`; none of them
touches the catalog or the :mod:`airlock.audit` package. What they get back are
frozen values: :class:`~airlock.audit.log.Event`, :class:`EventPage`,
:class:`~airlock.audit.chain.ChainReport`. :class:`Checkpoint` (``SEQ:HASH``, as
``airlock audit head`` prints it) is re-exported here for the edges that parse one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

from sqlalchemy import Connection

from airlock import audit
from airlock.audit.chain import GENESIS, ChainProblem, ChainReport, Checkpoint
from airlock.audit.log import Event
from airlock.catalog import events as event_sql
from airlock.services.audit_chain import ChainEvent, ChainHead
from airlock.services.workspace import Workspace

CHAIN_BATCH = 5000


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events: an exact action (or a prefix ending in '.'), an actor, a subject prefix,
    events at or after an ISO-8601 time."""

    action: str | None = None
    actor: str | None = None
    subject: str | None = None
    since: str | None = None


@dataclass(frozen=True, slots=True)
class EventPage:
    """At most ``limit`` events in the order asked for; ``more`` when the log holds further
    ones past the last of them (then ``cursor`` is that last event's sequence)."""

    events: tuple[Event, ...]
    more: bool

    @property
    def cursor(self) -> int | None:
        return self.events[-1].seq if self.more and self.events else None


class AuditLog:
    """Read-only access to the workspace's audit log."""

    def __init__(self, workspace: Workspace) -> None:
        self.db = workspace.db

    def events(
        self,
        where: EventFilter = EventFilter(),
        *,
        after_seq: int = 0,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> tuple[Event, ...]:
        """Matching events, oldest first (or newest first), at most ``limit`` (None: all)."""
        with self.db.read() as conn:
            return tuple(_entries(conn, where, after_seq, limit, newest_first))

    def page(
        self,
        where: EventFilter = EventFilter(),
        *,
        limit: int,
        after_seq: int = 0,
        before_seq: int | None = None,
        newest_first: bool = False,
    ) -> EventPage:
        """One page of matching events: those after ``after_seq`` and before ``before_seq``."""
        with self.db.read() as conn:
            events = tuple(_entries(conn, where, after_seq, limit + 1, newest_first, before_seq))
        return EventPage(events[:limit], len(events) > limit)

    def head(self) -> ChainHead:
        """The newest event's sequence and hash, as stored (nothing is recomputed)."""
        with self.db.read() as conn:
            found = event_sql.head(conn)
        return ChainHead(*found) if found else ChainHead(0, GENESIS)

    def stored(self, *, after_seq: int = 0, limit: int | None = None) -> Iterator[ChainEvent]:
        """The events after ``after_seq`` exactly as stored (``details`` as the hashed text),
        ascending, at most ``limit``: what a client recomputes the chain from. Read in
        batches by sequence, each in its own short read, so a long download holds no
        transaction open and memory stays flat."""
        last, left = after_seq, limit
        while left is None or left > 0:
            size = CHAIN_BATCH if left is None else min(CHAIN_BATCH, left)
            with self.db.read() as conn:
                rows = list(islice(event_sql.stream(conn, after_seq=last, batch=size), size))
            for r in rows:
                yield ChainEvent(
                    r.seq, r.at, r.actor, r.action, r.subject, r.details, r.prev_hash, r.hash
                )
            if len(rows) < size:
                return
            last = rows[-1].seq
            left = None if left is None else left - len(rows)

    def verify(
        self, *, expected_head: str | None = None, checkpoints: Sequence[Checkpoint] = ()
    ) -> ChainReport:
        """Recompute the whole chain; the first edited, missing or reordered event, if any,
        and whether the chain still contains ``expected_head`` and every checkpoint."""
        with self.db.read() as conn:
            return audit.verify(conn, expected_head=expected_head, checkpoints=checkpoints)


def _entries(
    conn: Connection,
    where: EventFilter,
    after_seq: int,
    limit: int | None,
    newest_first: bool,
    before_seq: int | None = None,
) -> Iterator[Event]:
    return audit.entries(
        conn,
        action=where.action or None,
        actor=where.actor or None,
        subject_prefix=where.subject or None,
        since=where.since,
        after_seq=after_seq,
        before_seq=before_seq,
        limit=limit,
        newest_first=newest_first,
    )


__all__ = [
    "AuditLog",
    "ChainEvent",
    "ChainHead",
    "ChainProblem",
    "ChainReport",
    "Checkpoint",
    "Event",
    "EventFilter",
    "EventPage",
]
