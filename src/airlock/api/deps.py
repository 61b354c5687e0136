"""Request-scoped dependencies: the workspace, the registry, and who is calling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from airlock.errors import Unauthorized
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace

Authenticator = Callable[[str | None], Actor]


def workspace(request: Request) -> Workspace:
    ws: Workspace = request.app.state.workspace
    return ws


def registry(ws: Annotated[Workspace, Depends(workspace)]) -> Registry:
    return Registry(ws)


def bearer_token(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "the Authorization header must be 'Bearer <token>'",
            hint="create a token with `airlock token create`",
        )
    return token.strip()


# Declares the bearer-token scheme in the OpenAPI document (the /docs page's "Authorize");
# the header itself is read and checked below, with Airlock's own messages.
_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="An Airlock API token: `airlock token create` (the owner's is in .airlock/token).",
)


def actor(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
) -> Actor:
    """The caller, from ``Authorization: Bearer <token>``; reads need a valid token too."""
    authenticate: Authenticator = request.app.state.authenticate
    return authenticate(bearer_token(request.headers.get("authorization")))


# Integers from a path or query string fit the catalog's columns on every database: row
# ids and policy versions are SQL INTEGER (32-bit on PostgreSQL), event sequences BIGINT.
# A larger number is a 400 naming the parameter, never a database overflow and a 500.
ID_MAX = (1 << 31) - 1
SEQ_MAX = (1 << 63) - 1
IdPath = Annotated[int, Path(ge=1, le=ID_MAX, description=f"an id (1 to {ID_MAX})")]


def seq_query(default: int, *, description: str = "") -> Any:
    """A ``Query`` for an audit event sequence number (0 to 2^63-1)."""
    return Query(default, ge=0, le=SEQ_MAX, description=description)


WorkspaceDep = Annotated[Workspace, Depends(workspace)]
RegistryDep = Annotated[Registry, Depends(registry)]
ActorDep = Annotated[Actor, Depends(actor)]
