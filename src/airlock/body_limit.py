"""``BodyLimit``: a pure ASGI middleware that refuses request bodies over a size limit.

Used by every HTTP edge (the gateway, the REST API, the dashboard). It never buffers:

* a ``Content-Length`` over the limit is answered ``413`` at once, before a byte of the
  body is read (the server then closes the connection instead of reading the rest);
* a chunked body (no length) is counted as it arrives, through a wrapped ``receive``;
  the message that crosses the limit raises :class:`BodyTooLarge` inside the app, the
  app's own reaction (whatever it answers or raises) is discarded, and the middleware
  answers ``413`` itself.

The answer's shape is the edge's own (OpenAI's on ``/v1``, Airlock's elsewhere): the
caller passes ``render(error) -> (status, body bytes)``. ``limit_for(scope)`` picks
the limit per request; ``None`` means no limit here (an endpoint that streams a large
upload to the store and bounds it itself).

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airlock.core.request_limits import check_body_size
from airlock.errors import AirlockError, InvalidInput, PayloadTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Render = Callable[[AirlockError], tuple[int, bytes]]
LimitFor = Callable[[Scope], "int | None"]


class BodyTooLarge(PayloadTooLarge):
    """Raised from ``receive`` once a streamed body has crossed the limit."""


def json_render(body: Callable[[AirlockError], bytes]) -> Render:
    """A ``render`` from a function that serialises an error in the edge's shape."""

    def render(exc: AirlockError) -> tuple[int, bytes]:
        return exc.status, body(exc)

    return render


class BodyLimit:
    """See the module docstring. ``limit`` is a fixed limit; ``limit_for`` one per request."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        render: Render,
        limit: int | None = None,
        limit_for: LimitFor | None = None,
    ) -> None:
        if (limit is None) == (limit_for is None):
            raise ValueError("give exactly one of limit or limit_for")
        self.app = app
        self.render = render
        self.limit_for: LimitFor = limit_for or (lambda _scope: limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared == -1:
            await self._answer(send, InvalidInput("the Content-Length header is not a number"))
            return
        if declared is not None:
            try:
                check_body_size(declared, limit)
            except PayloadTooLarge as exc:
                await self._answer(send, exc)
                return

        received = 0
        exceeded: BodyTooLarge | None = None
        started = False

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            if exceeded is not None:
                raise exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = BodyTooLarge(
                        f"the request body is over the limit of {limit} bytes (max_body_bytes)",
                        hint="send a smaller request, or ask the operator to raise max_body_bytes",
                    )
                    raise exceeded
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded is not None:
                return  # the app reacting to BodyTooLarge: the middleware answers instead
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if exceeded is None:
                raise
        if exceeded is not None and not started:
            await self._answer(send, exceeded)

    async def _answer(self, send: Send, exc: AirlockError) -> None:
        status, body = self.render(exc)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    """The declared length; None when absent (chunked), -1 when not a number."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else -1
    return None


__all__ = [
    "ASGIApp",
    "BodyLimit",
    "BodyTooLarge",
    "Message",
    "Receive",
    "Render",
    "Scope",
    "Send",
    "json_render",
]
