"""What the API tests share: the roles of the test users and the Lumen workspace handle."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from airlock.services.workspace import Workspace

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


class Server:
    """A real uvicorn server on a free loopback port, run in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            self.thread.join(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    @property
    def url(self) -> str:
        sock = self.server.servers[0].sockets[0]
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


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
