"""Bearer-token authentication for the REST API: API tokens checked against the catalog.

``token_authenticator(ws)`` is what ``airlock serve`` passes to
:func:`airlock.api.app.create_app`; tests may pass any ``(secret) -> Actor``.
Every request is checked against the catalog, so a revoked token stops working
at once. A missing, unknown, revoked or expired token is ``Unauthorized`` (401); a
valid token whose role does not allow the action is ``Forbidden`` (403), raised by
the services.
"""

from __future__ import annotations

from airlock.api.deps import Authenticator
from airlock.errors import Forbidden, Unauthorized
from airlock.services.identity import Actor
from airlock.services.tokens import Tokens
from airlock.services.workspace import Workspace


def token_authenticator(ws: Workspace) -> Authenticator:
    tokens = Tokens(ws)

    def authenticate(secret: str | None) -> Actor:
        if secret is None:
            raise Unauthorized(
                "this endpoint needs an API token: send 'Authorization: Bearer <token>'",
                hint="create one with `airlock token create`; `airlock init` wrote the "
                "owner's admin token to .airlock/token",
            )
        try:
            return tokens.authenticate(secret)
        except Unauthorized:
            raise
        except Forbidden as exc:  # unknown, revoked or expired: who calls is not known
            raise Unauthorized(exc.message, hint=exc.hint) from None

    return authenticate
