"""REST routes over webhooks: subscriptions, the delivery log, a test, one delivery pass.

The same rules as ``airlock webhook`` on the server's workspace
(:mod:`airlock.services.webhooks`): admins add, remove and test; a secret is never
returned except the generated one, once, in the answer to ``POST /webhooks``; URLs come
back without their path and query (they often hold a credential). Deliveries go out
from the server (``airlock serve`` delivers by itself; ``POST /webhooks/deliver`` runs one
pass now).
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from airlock.api.bodies import ReasonIn
from airlock.api.deps import ActorDep, WorkspaceDep
from airlock.api.derive import From, Out
from airlock.api.paging import DEFAULT, CursorQuery, LimitQuery, link_next
from airlock.core.webhooks import Webhook, WebhookAttempt, WebhookDelivery, redacted_url
from airlock.services.webhooks import AttemptResult, Webhooks, WebhookSettings

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])


class WebhookIn(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str = Field(min_length=1, max_length=2048)
    events: str = Field(
        min_length=1, max_length=4000, description="rollout.rollback,alias.move; rollout.*; *"
    )
    secret: str | None = Field(
        default=None, max_length=256, description="the HMAC secret (default: generated)"
    )
    format: str = Field(default="json", description="json or slack")


class DeliverIn(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout: float = Field(default=5.0, gt=0, le=60, description="seconds for one POST")


class WebhookOut(Out):
    __value__ = From(Webhook, exclude={"secret"})


class NewWebhookOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    webhook: WebhookOut
    secret: str | None = Field(description="the generated secret, shown once (null: given)")


class AttemptOut(Out):
    __value__ = From(WebhookAttempt)


class DeliveryOut(Out):
    __value__ = From(WebhookDelivery)
    attempt_log: list[AttemptOut]


class AttemptResultOut(Out):
    __value__ = From(AttemptResult)


class DispatchOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    queued: int
    attempts: list[AttemptResultOut]


def webhook_out(row: Webhook) -> WebhookOut:
    return WebhookOut.of(row, url=redacted_url(row.url))


@router.get("", response_model=list[WebhookOut])
def list_webhooks(
    request: Request,
    response: Response,
    ws: WorkspaceDep,
    _: ActorDep,
    all_: bool = Query(False, alias="all", description="include removed webhooks"),
    limit: LimitQuery = DEFAULT,
    cursor: CursorQuery = None,
) -> list[WebhookOut]:
    """Subscriptions (never their secrets; URLs without their path) in creation order,
    a page at a time (the next page: the ``Link``/``X-Next-Cursor`` headers)."""
    page = Webhooks(ws).subscription_page(include_removed=all_, limit=limit, cursor=cursor)
    link_next(request, response, page.next_cursor)
    return [webhook_out(r) for r in page.items]


@router.post("", response_model=NewWebhookOut)
def add_webhook(body: WebhookIn, ws: WorkspaceDep, who: ActorDep) -> NewWebhookOut:
    """Subscribe a URL to audit actions (admins); a generated secret is in this answer only."""
    new = Webhooks(ws).add(
        body.url, events=body.events, actor=who, secret=body.secret, fmt=body.format
    )
    return NewWebhookOut(webhook=webhook_out(new.row), secret=new.secret)


@router.get("/deliveries", response_model=list[DeliveryOut])
def deliveries(
    request: Request,
    response: Response,
    ws: WorkspaceDep,
    _: ActorDep,
    webhook: str | None = Query(None, max_length=64, description="only this webhook's"),
    attempts: bool = Query(False, description="with every attempt"),
    limit: LimitQuery = DEFAULT,
    cursor: CursorQuery = None,
) -> list[DeliveryOut]:
    """The delivery log, newest first: each delivery's state, attempts, last status or
    error; a page at a time (the next page: the ``Link``/``X-Next-Cursor`` headers)."""
    hooks = Webhooks(ws)
    page = hooks.delivery_page(webhook_id=webhook, limit=limit, cursor=cursor)
    link_next(request, response, page.next_cursor)
    return [
        DeliveryOut.of(
            d, attempt_log=[AttemptOut.of(a) for a in hooks.attempts(d.id)] if attempts else []
        )
        for d in page.items
    ]


@router.post("/deliver", response_model=DispatchOut)
def deliver(body: DeliverIn, ws: WorkspaceDep, who: ActorDep) -> DispatchOut:
    """One pass now (admins): queue deliveries for new events, attempt the due ones."""
    report = Webhooks(ws).deliver_pass(actor=who, settings=WebhookSettings(timeout=body.timeout))
    return DispatchOut(
        queued=report.queued, attempts=[AttemptResultOut.of(a) for a in report.attempts]
    )


@router.post("/{webhook_id}/remove", response_model=WebhookOut)
def remove_webhook(webhook_id: str, body: ReasonIn, ws: WorkspaceDep, who: ActorDep) -> WebhookOut:
    """Remove a subscription (admins); its pending deliveries are not sent."""
    return webhook_out(Webhooks(ws).remove(webhook_id, actor=who, reason=body.reason))


@router.post("/{webhook_id}/test", response_model=list[AttemptResultOut])
def test_webhook(webhook_id: str, ws: WorkspaceDep, who: ActorDep) -> list[AttemptResultOut]:
    """Send a ``webhook.test`` delivery to one subscription now, from the server (admins)."""
    return [AttemptResultOut.of(r) for r in Webhooks(ws).send_test(webhook_id, actor=who)]
