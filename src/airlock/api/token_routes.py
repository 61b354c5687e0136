"""REST routes over API tokens: who am I, list, issue (admin), revoke.

A token's secret is returned once, by the request that issues it; the catalog
keeps only its hash. Non-admins see and revoke only their own tokens.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response

from airlock.api.bodies import IssuedTokenOut, ReasonIn, TokenIn, TokenOut, WhoAmIOut
from airlock.api.deps import ActorDep, WorkspaceDep
from airlock.api.paging import DEFAULT, CursorQuery, LimitQuery, link_next
from airlock.core.roles import actions_of
from airlock.services.tokens import TokenInfo, Tokens, parse_duration

router = APIRouter(prefix="/api/v1", tags=["tokens"])


def token_out(t: TokenInfo) -> TokenOut:
    return TokenOut.of(t)


@router.get("/whoami", response_model=WhoAmIOut)
def whoami(who: ActorDep) -> WhoAmIOut:
    """Who the bearer token stands for and what that role may do."""
    return WhoAmIOut.of(who, may=[a.value for a in actions_of(who.role)])


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(
    request: Request,
    response: Response,
    ws: WorkspaceDep,
    who: ActorDep,
    all_: bool = Query(False, alias="all", description="include revoked and expired tokens"),
    user: str | None = Query(None, max_length=64, description="only this user's (admins only)"),
    limit: LimitQuery = DEFAULT,
    cursor: CursorQuery = None,
) -> list[TokenOut]:
    """Tokens (never their secrets): every token (or one user's) for an admin, one's own
    otherwise; in creation order, a page at a time (the next page: the ``Link``/
    ``X-Next-Cursor`` headers)."""
    page = Tokens(ws).page(who, user=user, include_inactive=all_, limit=limit, cursor=cursor)
    link_next(request, response, page.next_cursor)
    return [token_out(t) for t in page.items]


@router.post("/tokens", response_model=IssuedTokenOut, status_code=201)
def create_token(body: TokenIn, ws: WorkspaceDep, who: ActorDep) -> IssuedTokenOut:
    """Issue a token (admin). The secret is in this response only."""
    expires = parse_duration(body.expires_in) if body.expires_in else None
    issued = Tokens(ws).create(
        user=body.user, role=body.role, actor=who, expires_in=expires, note=body.note
    )
    return IssuedTokenOut.of(issued)


@router.post("/tokens/{token_id}/revoke", response_model=TokenOut)
def revoke_token(token_id: str, body: ReasonIn, ws: WorkspaceDep, who: ActorDep) -> TokenOut:
    """Revoke a token at once (admins: any; everyone: their own)."""
    return token_out(Tokens(ws).revoke(token_id, actor=who, reason=body.reason))
