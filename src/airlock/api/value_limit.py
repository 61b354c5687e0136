"""``ValueLimit``: refuse a REST body of more JSON values than any request needs, before
FastAPI parses it and pydantic validates it.

Within the 1 MiB body limit a body can still hold 500,000 numbers; pydantic validates
such a list (one error per element) in one call that holds the GIL, so the event loop
and every other request wait for hundreds of milliseconds. A body with more than
:data:`MAX_VALUES` array elements and object members in all (commas outside strings,
counted by C-speed byte operations: :func:`~airlock.core.request_limits.values_exceed`)
is a ``400`` naming the limit. The largest real bodies (a batch of blob digests, a
release's files) hold a few values per entry and far fewer entries than fit in 1 MiB.

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from __future__ import annotations

from collections.abc import Callable

from airlock.body_limit import ASGIApp, Message, Receive, Render, Scope, Send
from airlock.core.request_limits import values_exceed
from airlock.errors import InvalidInput

MAX_VALUES = 100_000
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class ValueLimit:
    """See the module docstring. ``exempt(scope)``: a request whose body is not JSON to
    check (a blob upload, streamed to the store)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        render: Render,
        exempt: Callable[[Scope], bool],
        limit: int = MAX_VALUES,
    ) -> None:
        self.app = app
        self.render = render
        self.exempt = exempt
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope.get("method") not in _BODY_METHODS
            or self.exempt(scope)
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:  # the body is bounded by the BodyLimit in front of this middleware
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if values_exceed(body, self.limit):
            status, payload = self.render(
                InvalidInput(
                    f"the request body holds more than {self.limit} JSON values",
                    hint="send fewer items per request (e.g. split a batch)",
                )
            )
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: a disconnect, as the server says

        await self.app(scope, replay, send)


__all__ = ["MAX_VALUES", "ValueLimit"]
