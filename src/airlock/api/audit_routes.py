"""REST routes over the audit log: filter, page, verify."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from airlock.api.deps import ActorDep, WorkspaceDep, seq_query
from airlock.api.schemas import ChainHeadOut, ChainOut, EventOut, EventPage
from airlock.core.times import since_text
from airlock.errors import InvalidInput
from airlock.services.audit_views import AuditLog, ChainEvent, Checkpoint, EventFilter

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("/events", response_model=EventPage)
def list_events(
    ws: WorkspaceDep,
    _: ActorDep,
    action: str | None = Query(None, description="exact action, or a prefix ending in '.'"),
    actor: str | None = None,
    subject: str | None = Query(None, description="subject prefix, e.g. chat@"),
    since: str | None = Query(
        None, max_length=64, description="ISO-8601 time (no zone: UTC), or a duration: 30m, 1h, 2d"
    ),
    after_seq: int = seq_query(0, description="page cursor: events after this sequence"),
    limit: int = Query(100, ge=1, le=1000),
) -> EventPage:
    """Events oldest first, a page at a time."""
    after = since_text(since, datetime.now(UTC))
    where = EventFilter(action=action, actor=actor, subject=subject, since=after)
    page = AuditLog(ws).page(where, after_seq=after_seq, limit=limit)
    return EventPage(
        events=[EventOut.of(e) for e in page.events],
        next_after_seq=page.cursor,
    )


@router.get("/verify", response_model=ChainOut)
def verify_chain(
    ws: WorkspaceDep,
    _: ActorDep,
    expected_head: str | None = Query(
        None, description="a head hash recorded earlier: the chain must still contain it"
    ),
    expect: list[str] = Query(
        [], description="checkpoints SEQ:HASH the chain must still contain (repeatable)"
    ),
) -> ChainOut:
    """Recompute the hash chain; report the first edited, missing or reordered event, and
    whether the chain still contains every checkpoint given."""
    checkpoints: list[Checkpoint] = []
    for text in expect:
        try:
            checkpoints.append(Checkpoint.parse(text))
        except ValueError as exc:
            raise InvalidInput(f"expect: {exc}") from None
    report = AuditLog(ws).verify(expected_head=expected_head, checkpoints=checkpoints)
    return ChainOut(
        ok=report.ok,
        checked=report.checked,
        head_seq=report.head_seq,
        head_hash=report.head_hash,
        problem=dataclasses.asdict(report.problem) if report.problem else None,
    )


CHAIN_PAGE_MAX = 100_000


@router.get("/head", response_model=ChainHeadOut)
def chain_head(ws: WorkspaceDep, _: ActorDep) -> ChainHeadOut:
    """The newest event's sequence and hash as stored (0 and 64 zeros: an empty log)."""
    return ChainHeadOut.of(AuditLog(ws).head())


@router.get(
    "/chain",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
def chain(
    ws: WorkspaceDep,
    _: ActorDep,
    after_seq: int = seq_query(0, description="page cursor: events after this sequence"),
    limit: int = Query(10_000, ge=1, le=CHAIN_PAGE_MAX),
) -> StreamingResponse:
    """Events exactly as stored, ascending, as JSON Lines (seq, at, actor, action, subject,
    details as the hashed text, prev_hash, hash): what `airlock audit verify` against a
    server recomputes the chain from, on the client. Fewer than ``limit`` lines: the end."""
    events = AuditLog(ws).stored(after_seq=after_seq, limit=limit)

    def lines(found: Iterator[ChainEvent]) -> Iterator[bytes]:
        chunk: list[str] = []
        for ev in found:
            chunk.append(ev.to_json())
            if len(chunk) == 1000:  # one write per thousand events, not per event
                yield ("\n".join(chunk) + "\n").encode("utf-8")
                chunk = []
        if chunk:
            yield ("\n".join(chunk) + "\n").encode("utf-8")

    return StreamingResponse(lines(events), media_type="application/x-ndjson")
