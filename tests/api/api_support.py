"""What the API tests share: the roles of the test users and the Lumen workspace handle."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airlock.services.workspace import Workspace
from airlock_testkit import Server

__all__ = ["ROLES", "BodyCounter", "Lumen", "Server"]

ROLES = {
    "alice": "admin",
    "bob": "approver",
    "carol": "author",
    "olga": "operator",
    "vic": "viewer",
}


@dataclass(frozen=True)
class Lumen:
    ws: Workspace
    tokens: dict[str, str]  # user -> secret

    def auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}


class BodyCounter:
    """ASGI middleware: counts the request-body bytes the server receives on blob uploads."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.upload_bytes = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "PUT":
            await self.app(scope, receive, send)
            return

        async def counted() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                self.upload_bytes += len(message.get("body", b""))
            return message

        await self.app(scope, counted, send)
