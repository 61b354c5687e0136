"""Request-scoped dependencies: the workspace, the registry, and who is calling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, Request

from airlock.errors import Forbidden
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
        raise Forbidden(
            "the Authorization header must be 'Bearer <token>'",
            hint="create a token with `airlock token create`",
        )
    return token.strip()


def actor(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
) -> Actor:
    """The caller, from ``Authorization: Bearer <token>``; reads need a valid token too."""
    authenticate: Authenticator = request.app.state.authenticate
    return authenticate(bearer_token(authorization))


WorkspaceDep = Annotated[Workspace, Depends(workspace)]
RegistryDep = Annotated[Registry, Depends(registry)]
ActorDep = Annotated[Actor, Depends(actor)]
