"""REST routes over gateway keys (clients' keys to ``/v1``): list, create, show, revoke.

Under ``/api/v1/gateway-keys`` (``/api/v1/keys`` lists the trusted signing keys).
The same rules as the CLI (:mod:`airlock.services.gateway_keys`): operators and
admins create and revoke; the secret is in the creating response only.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from airlock.api.bodies import ReasonIn
from airlock.api.deps import ActorDep, WorkspaceDep
from airlock.api.derive import From, Out
from airlock.api.paging import DEFAULT, CursorQuery, LimitQuery, link_next
from airlock.core.gateway_keys import MAX_LIMIT, GatewayKey, KeyScopes
from airlock.services.gateway_keys import GatewayKeys, KeyInfo

router = APIRouter(prefix="/api/v1/gateway-keys", tags=["gateway keys"])


class GatewayKeyIn(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    service: str = Field(min_length=1, max_length=128)
    name: str = Field(min_length=1, max_length=128)
    rpm: int | None = Field(default=None, ge=1, le=MAX_LIMIT, description="requests per minute")
    tpm: int | None = Field(default=None, ge=1, le=MAX_LIMIT, description="tokens per minute")
    can_pin: bool = False
    can_opt_out: bool = False
    can_feedback: bool = True
    expires: str | None = Field(
        default=None, max_length=64, description="90m, 12h, 30d, 8w or an ISO date/time"
    )
    reason: str = Field(default="", max_length=4000)


class GatewayKeyOut(Out):
    __value__ = From(GatewayKey, exclude={"secret_hash"}, first=("id", "service", "name", "state"))
    state: str
    scopes: list[str]


class IssuedGatewayKeyOut(GatewayKeyOut):
    secret: str = Field(description="shown once; only its hash is stored")


def key_out(info: KeyInfo) -> GatewayKeyOut:
    return GatewayKeyOut.model_validate(info.to_dict())


@router.get("", response_model=list[GatewayKeyOut])
def list_gateway_keys(
    request: Request,
    response: Response,
    ws: WorkspaceDep,
    who: ActorDep,
    service: str | None = Query(None, max_length=128),
    all_: bool = Query(False, alias="all", description="include revoked and expired keys"),
    limit: LimitQuery = DEFAULT,
    cursor: CursorQuery = None,
) -> list[GatewayKeyOut]:
    """Gateway keys (never their secrets), by service then creation, a page at a time (the
    next page: the ``Link``/``X-Next-Cursor`` headers)."""
    page = GatewayKeys(ws).page(service=service, include_inactive=all_, limit=limit, cursor=cursor)
    link_next(request, response, page.next_cursor)
    return [key_out(i) for i in page.items]


@router.post("", response_model=IssuedGatewayKeyOut, status_code=201)
def create_gateway_key(body: GatewayKeyIn, ws: WorkspaceDep, who: ActorDep) -> IssuedGatewayKeyOut:
    """Create a key for one service (operators, admins). The secret is in this response only."""
    issued = GatewayKeys(ws).create(
        service=body.service,
        name=body.name,
        actor=who,
        scopes=KeyScopes(body.can_pin, body.can_opt_out, body.can_feedback),
        rpm=body.rpm,
        tpm=body.tpm,
        expires=body.expires,
        reason=body.reason,
    )
    info = KeyInfo(issued.key, "active")
    return IssuedGatewayKeyOut.model_validate({**info.to_dict(), "secret": issued.secret})


@router.get("/{key_id}", response_model=GatewayKeyOut)
def show_gateway_key(key_id: str, ws: WorkspaceDep, who: ActorDep) -> GatewayKeyOut:
    return key_out(GatewayKeys(ws).get(key_id))


@router.post("/{key_id}/revoke", response_model=GatewayKeyOut)
def revoke_gateway_key(
    key_id: str, body: ReasonIn, ws: WorkspaceDep, who: ActorDep
) -> GatewayKeyOut:
    """Revoke a key (operators, admins): gateways refuse it within a sync period."""
    return key_out(GatewayKeys(ws).revoke(key_id, actor=who, reason=body.reason))
