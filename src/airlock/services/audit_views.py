"""Reading the audit log: filtered pages of events, the chain's verification, its head.

The CLI (``airlock audit log|head|verify``), the REST API (``/api/v1/audit``) and
the dashboard (``/audit``) read the log through :class:`AuditLog`; none of them
touches the catalog or the :mod:`airlock.audit` package. What they get back are
frozen values: :class:`~airlock.audit.log.Event`, :class:`EventPage`,
:class:`~airlock.audit.chain.ChainReport`. :class:`Checkpoint` (``SEQ:HASH``, as
``airlock audit head`` prints it) is re-exported here for the edges that parse one.

:class:`ChainMonitor` is the dashboard's view of the chain: a page view must not cost a walk
of millions of events, so the whole chain is walked once (on its own when it is short, else
when asked), and each later view verifies only the events appended since (after checking the
last verified event still has its hash) plus the events the page shows, each against the
one before it. ``airlock audit verify`` still walks everything.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import astuple, dataclass
from itertools import islice

from sqlalchemy import Connection

from airlock import audit
from airlock.audit.chain import GENESIS, ChainProblem, ChainReport, ChainWalk, Checkpoint
from airlock.audit.log import Event, now_text
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


@dataclass(frozen=True, slots=True)
class ChainStatus:
    """What a view of the log can say about the chain without walking all of it.

    ``complete``: the whole chain was walked (at ``walked_at``) and every event since then
    verified now, so ``checked`` covers events 1..``head_seq``; otherwise only the events
    shown were checked (``checked`` of them) and the whole chain awaits a walk.
    ``problem``: the first one found, by the walk or among the events shown.
    """

    complete: bool
    checked: int
    head_seq: int
    head_hash: str
    walked_at: str | None
    problem: ChainProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


class ChainMonitor:
    """The chain's verification for repeated views, kept between them (one per process)."""

    # A chain this short (or this many events appended since the last walk) is walked on a
    # view; a longer one waits for ``status(walk=True)`` (a fraction of a second at most).
    AUTO_WALK = 50_000

    def __init__(self, workspace: Workspace) -> None:
        self.db = workspace.db
        self._lock = threading.Lock()
        self._verified: Checkpoint | None = None  # events 1..seq verified, head had hash
        self._walked_at: str | None = None
        self._problem: ChainProblem | None = None

    def status(self, shown: Sequence[int] = (), *, walk: bool = False) -> ChainStatus:
        """Verify what is new since the last view, and the events ``shown`` (their sequence
        numbers); ``walk``: walk the whole chain again from its first event."""
        with self._lock, self.db.read() as conn:
            head = event_sql.head(conn)
            head_seq, head_hash = head if head else (0, "")
            if walk:  # a problem found stays shown until the chain is walked again
                self._verified, self._problem = None, None
            seen = self._verified.seq if self._verified else 0
            if self._problem is None and head_seq < seen:
                self._problem = ChainProblem(
                    head_seq,
                    "cut",
                    f"the chain ends at event {head_seq}, but an earlier view verified it up to "
                    f"event {seen}: events {head_seq + 1}–{seen} were removed from the end",
                )
            unwalked = head_seq - seen
            if self._problem is None and (walk or 0 < unwalked <= self.AUTO_WALK):
                report = audit.verify(conn, start=self._verified)
                if self._verified is None:
                    self._walked_at = now_text()
                if report.ok:
                    self._verified = Checkpoint(report.head_seq, report.head_hash)
                else:
                    self._problem = report.problem
            elif head_seq == 0:
                self._walked_at = self._walked_at or now_text()
            complete = self._problem is None and (
                head_seq == 0 or (self._verified is not None and self._verified.seq >= head_seq)
            )
            problem = self._problem or _check_shown(conn, shown)
            verified = self._verified
            return ChainStatus(
                complete=complete,
                checked=verified.seq if complete and verified else len(shown),
                head_seq=head_seq,
                head_hash=verified.hash if complete and verified else head_hash,
                walked_at=self._walked_at,
                problem=problem,
            )


def _check_shown(conn: Connection, shown: Sequence[int]) -> ChainProblem | None:
    """Each shown event recomputed from its stored fields and linked to the one before it:
    an edit to an event on the page shows however long ago the chain was walked."""
    wanted = sorted({s for s in shown if s >= 1})
    stored = {e.seq: e for e in event_sql.at_seqs(conn, [*wanted, *(s - 1 for s in wanted)])}
    for seq in wanted:
        event, before = stored.get(seq), stored.get(seq - 1)
        if event is None:
            continue  # not shown after all (the page was read before a removal: the walk says)
        if seq > 1 and before is None:
            return ChainProblem(seq - 1, "missing", f"event {seq - 1} is missing")
        walk = ChainWalk(start=Checkpoint(seq - 1, before.hash) if before else None)
        walk.feed([astuple(event)])
        report = walk.report()
        if report.problem is not None:
            return report.problem
    return None


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
    "ChainMonitor",
    "ChainProblem",
    "ChainReport",
    "ChainStatus",
    "Checkpoint",
    "Event",
    "EventFilter",
    "EventPage",
]
