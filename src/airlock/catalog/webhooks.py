"""SQL for webhook subscriptions, their deliveries and attempts, and the dispatcher's cursor.

The rules (what matches, when to retry, how to sign) live in ``airlock.services.webhooks``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, insert, select, text, update

from airlock.catalog.keyset import past
from airlock.catalog.schema import webhook_attempts, webhook_cursor, webhook_deliveries, webhooks
from airlock.core.webhooks import Webhook, WebhookAttempt, WebhookDelivery

CURSOR = "events"
CURSOR_LOCK_KEY = 0x57_48_4B_53  # "WHKS": serialises queuing across dispatchers (PostgreSQL)


def _delivery(r: Any) -> WebhookDelivery:
    return WebhookDelivery(*r)


def _webhook(r: Sequence[object]) -> Webhook:
    values = list(r)
    values[2] = tuple(json.loads(str(values[2])))
    return Webhook(*values)  # type: ignore[arg-type]


_WEBHOOK_COLUMNS = (
    webhooks.c.id,
    webhooks.c.url,
    webhooks.c.events,
    webhooks.c.format,
    webhooks.c.secret,
    webhooks.c.after_seq,
    webhooks.c.created_at,
    webhooks.c.created_by,
    webhooks.c.removed_at,
    webhooks.c.removed_by,
)
_DELIVERY_COLUMNS = (
    webhook_deliveries.c.id,
    webhook_deliveries.c.webhook_id,
    webhook_deliveries.c.event_seq,
    webhook_deliveries.c.action,
    webhook_deliveries.c.state,
    webhook_deliveries.c.attempts,
    webhook_deliveries.c.next_attempt_at,
    webhook_deliveries.c.created_at,
    webhook_deliveries.c.finished_at,
    webhook_deliveries.c.last_status,
    webhook_deliveries.c.last_error,
    webhook_deliveries.c.payload,
)


# -- subscriptions ------------------------------------------------------------------------


def insert_webhook(
    conn: Connection,
    *,
    id: str,
    url: str,
    events: Sequence[str],
    format: str,
    secret: str,
    after_seq: int,
    at: datetime,
    by: str,
) -> None:
    conn.execute(
        insert(webhooks).values(
            id=id,
            url=url,
            events=json.dumps(list(events)),
            format=format,
            secret=secret,
            after_seq=after_seq,
            created_at=at,
            created_by=by,
        )
    )


def webhook(conn: Connection, id: str) -> Webhook | None:
    r = conn.execute(select(*_WEBHOOK_COLUMNS).where(webhooks.c.id == id)).first()
    return _webhook(r) if r else None


def all_webhooks(
    conn: Connection,
    *,
    include_removed: bool = False,
    after: tuple[datetime, str] | None = None,
    limit: int | None = None,
) -> list[Webhook]:
    """Subscriptions in creation order, after the (created_at, id) ``after``, at most
    ``limit`` (through ix_webhooks_created_at)."""
    w = webhooks.c
    q = select(*_WEBHOOK_COLUMNS).order_by(w.created_at, w.id).limit(limit)
    if not include_removed:
        q = q.where(w.removed_at.is_(None))
    if after is not None:
        q = q.where(past([w.created_at, w.id], after))
    return [_webhook(r) for r in conn.execute(q)]


def remove_webhook(conn: Connection, id: str, *, at: datetime, by: str) -> bool:
    r = conn.execute(
        update(webhooks)
        .where(webhooks.c.id == id, webhooks.c.removed_at.is_(None))
        .values(removed_at=at, removed_by=by)
    )
    return bool(r.rowcount)


# -- the cursor -----------------------------------------------------------------------------


def lock_cursor(conn: Connection) -> int | None:
    """Take the queuing lock (held until commit) and read the cursor (None: never set)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CURSOR_LOCK_KEY})
    r = conn.execute(select(webhook_cursor.c.seq).where(webhook_cursor.c.name == CURSOR)).first()
    return int(r[0]) if r else None


def set_cursor(conn: Connection, seq: int, *, exists: bool) -> None:
    if exists:
        conn.execute(update(webhook_cursor).where(webhook_cursor.c.name == CURSOR).values(seq=seq))
    else:
        conn.execute(insert(webhook_cursor).values(name=CURSOR, seq=seq))


# -- deliveries -------------------------------------------------------------------------------


def insert_delivery(
    conn: Connection,
    *,
    id: str,
    webhook_id: str,
    event_seq: int,
    action: str,
    at: datetime,
    payload: str | None = None,
) -> bool:
    """Queue one delivery; False when this subscription already has one for the event.

    A test delivery has a negative ``event_seq`` of its own (no audit event).
    """
    if event_seq > 0:
        exists = conn.execute(
            select(webhook_deliveries.c.id).where(
                webhook_deliveries.c.webhook_id == webhook_id,
                webhook_deliveries.c.event_seq == event_seq,
            )
        ).first()
        if exists:
            return False
    values = {
        "id": id,
        "webhook_id": webhook_id,
        "event_seq": event_seq,
        "action": action,
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": at,
        "created_at": at,
        "payload": payload,
    }
    conn.execute(insert(webhook_deliveries).values(**values))
    return True


def due(conn: Connection, now: datetime, limit: int) -> list[WebhookDelivery]:
    q = (
        select(*_DELIVERY_COLUMNS)
        .where(webhook_deliveries.c.state == "pending", webhook_deliveries.c.next_attempt_at <= now)
        .order_by(webhook_deliveries.c.next_attempt_at, webhook_deliveries.c.event_seq)
        .limit(limit)
    )
    return [_delivery(r) for r in conn.execute(q)]


def claim(conn: Connection, d: WebhookDelivery, *, until: datetime) -> bool:
    """Lease a due delivery to this dispatcher (compare-and-set on its next attempt time)."""
    r = conn.execute(
        update(webhook_deliveries)
        .where(
            and_(
                webhook_deliveries.c.id == d.id,
                webhook_deliveries.c.state == "pending",
                webhook_deliveries.c.next_attempt_at == d.next_attempt_at,
            )
        )
        .values(next_attempt_at=until)
    )
    return bool(r.rowcount)


def finish_attempt(
    conn: Connection,
    delivery_id: str,
    *,
    attempt: int,
    at: datetime,
    status: int | None,
    error: str | None,
    duration_ms: float,
    state: str,
    next_attempt_at: datetime,
) -> None:
    conn.execute(
        insert(webhook_attempts).values(
            delivery_id=delivery_id,
            attempt=attempt,
            at=at,
            status=status,
            error=error,
            duration_ms=duration_ms,
        )
    )
    conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery_id)
        .values(
            attempts=attempt,
            state=state,
            next_attempt_at=next_attempt_at,
            last_status=status,
            last_error=error,
            finished_at=at if state != "pending" else None,
        )
    )


def deliveries(
    conn: Connection,
    *,
    webhook_id: str | None = None,
    limit: int | None = None,
    before: tuple[datetime, int, str] | None = None,
) -> list[WebhookDelivery]:
    """The delivery log newest first, (created_at, event_seq, id) below ``before``, at most
    ``limit`` (through ix_webhook_deliveries_created / ix_webhook_deliveries_webhook)."""
    d = webhook_deliveries.c
    order = [d.created_at, d.event_seq, d.id]
    q = select(*_DELIVERY_COLUMNS).order_by(*(c.desc() for c in order))
    if webhook_id is not None:
        q = q.where(d.webhook_id == webhook_id)
    if before is not None:
        q = q.where(past(order, before, descending=True))
    if limit:
        q = q.limit(limit)
    return [_delivery(r) for r in conn.execute(q)]


def delivery(conn: Connection, id: str) -> WebhookDelivery | None:
    r = conn.execute(select(*_DELIVERY_COLUMNS).where(webhook_deliveries.c.id == id)).first()
    return _delivery(r) if r else None


def attempts(conn: Connection, delivery_id: str) -> list[WebhookAttempt]:
    q = (
        select(
            webhook_attempts.c.delivery_id,
            webhook_attempts.c.attempt,
            webhook_attempts.c.at,
            webhook_attempts.c.status,
            webhook_attempts.c.error,
            webhook_attempts.c.duration_ms,
        )
        .where(webhook_attempts.c.delivery_id == delivery_id)
        .order_by(webhook_attempts.c.attempt)
    )
    return [WebhookAttempt(*r) for r in conn.execute(q)]
