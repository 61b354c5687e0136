"""The gateway as an ASGI app (Starlette), run by ``airlock gateway`` or any ASGI server.

Why Starlette and not FastAPI: FastAPI's per-request dependency resolution and
pydantic validation of bodies and responses cost more than everything else the
gateway does for a request (roughly 100-300 µs against ~50 µs); the OpenAI
bodies are parsed by hand in :mod:`airlock.gateway.openai_wire` instead, with
errors that still name the field. Starlette adds only its router.

=========================  ==========================================================
``POST /v1/chat/completions``  OpenAI chat (``stream: true`` -> SSE)
``POST /v1/completions``       OpenAI completions (``stream: true`` -> SSE)
``GET  /v1/models``            services and the ``service@version`` pins they serve
``POST /v1/feedback``          ``{"id": "<response id>", "score": 0..1}``
``GET  /metrics``              Prometheus, per-release labels
``GET  /healthz``              served services and their plan generations
=========================  ==========================================================

Responses name the release that answered in ``X-Airlock-Release`` (and
``X-Airlock-Route``: plan, pinned, opt_out or fallback; ``X-Airlock-Fallback-From``;
``X-Airlock-Guardrail``: flagged, redacted or blocked). Errors use OpenAI's shape
``{"error": {"message", "type", "code"}}`` with the status of the Airlock error.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, request_response
from starlette.types import ASGIApp, Receive, Scope, Send

from airlock.body_limit import BodyLimit, json_render
from airlock.core.limits import loads_json
from airlock.errors import AirlockError, InvalidInput
from airlock.gateway import openai_wire as wire
from airlock.gateway.core import Gateway
from airlock.gateway.metrics import CONTENT_TYPE, GatewayCollector, make_registry, render
from airlock.runtime.base import RequestKind

log = logging.getLogger("airlock.gateway")

Hook = Callable[[], Awaitable[None]]
_JSON = "application/json"


def create_app(
    gateway: Gateway,
    *,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
) -> Starlette:
    """An ASGI app serving ``gateway``; its lifespan starts and closes the gateway."""
    in_flight = _InFlight()
    limits = gateway.settings.limits
    registry = make_registry(
        GatewayCollector(
            gateway.telemetry,
            gateway.plans,
            lambda: gateway.shadows.depth,
            in_flight=lambda: in_flight.count,
        )
    )

    async def completion(request: Request, kind: RequestKind) -> Response:
        try:
            req = wire.parse_request(await request.body(), kind, limits=limits)
            if req.stream:
                headers, body = await gateway.stream(req, request.headers)
                headers["cache-control"] = "no-cache"
                return StreamingResponse(body, media_type="text/event-stream", headers=headers)
            answer = await gateway.complete(req, request.headers)
            return Response(answer.body, media_type=_JSON, headers=answer.headers)
        except AirlockError as exc:
            return _error(exc)
        except Exception:
            log.exception("unexpected error serving %s", request.url.path)
            return _error(AirlockError("internal gateway error; see the gateway's log"))

    async def chat(request: Request) -> Response:
        return await completion(request, "chat")

    async def completions(request: Request) -> Response:
        return await completion(request, "completion")

    chat_app, completions_app = in_flight.counted(chat), in_flight.counted(completions)

    async def models(request: Request) -> Response:
        return Response(wire.dumps({"object": "list", "data": gateway.models()}), media_type=_JSON)

    async def feedback(request: Request) -> Response:
        try:
            data = loads_json(await request.body(), max_depth=limits.default.max_json_depth)
            if not isinstance(data, dict):
                raise InvalidInput('send {"id": "<response id>", "score": 0..1}')
            rid = data.get("id") or data.get("response_id")
            if not isinstance(rid, str) or len(rid) > 256:
                raise InvalidInput("'id' must be the id of a response, e.g. chatcmpl-...")
            if "score" not in data:
                raise InvalidInput("'score' is required: a number in [0, 1]")
            service, release = gateway.feedback(rid, data["score"])
        except AirlockError as exc:
            return _error(exc)
        return Response(
            wire.dumps({"ok": True, "id": rid, "service": service, "release": release}),
            media_type=_JSON,
        )

    async def metrics(request: Request) -> Response:
        return Response(render(registry), media_type=CONTENT_TYPE)

    async def health(request: Request) -> Response:
        plans = {name: plan.generation for name, plan in gateway.plans().items()}
        return Response(wire.dumps({"status": "ok", "services": plans}), media_type=_JSON)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            for hook in on_startup:
                await hook()
            yield
        finally:
            try:
                for hook in on_shutdown:
                    await hook()
            finally:
                await gateway.aclose()

    routes = [
        Route("/v1/chat/completions", chat_app, methods=["POST"]),
        Route("/v1/completions", completions_app, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/feedback", feedback, methods=["POST"]),
        Route("/chat/completions", chat_app, methods=["POST"]),
        Route("/completions", completions_app, methods=["POST"]),
        Route("/models", models, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
    ]
    body_limit = Middleware(
        BodyLimit, render=json_render(wire.error_body), limit=limits.largest_body
    )
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[body_limit])
    app.state.gateway = gateway
    return app


class _InFlight:
    """Completion requests received and not yet answered to the last byte (one event loop)."""

    def __init__(self) -> None:
        self.count = 0

    def counted(self, endpoint: Callable[[Request], Awaitable[Response]]) -> ASGIApp:
        return _Counted(request_response(endpoint), self)


class _Counted:
    """An ASGI app counted in flight until its last byte is sent (a stream included) or the
    client goes away. A class, so that Starlette's ``Route`` takes it as an ASGI app rather
    than as a request handler."""

    def __init__(self, app: ASGIApp, in_flight: _InFlight) -> None:
        self._app = app
        self._in_flight = in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._in_flight.count += 1
        try:
            await self._app(scope, receive, send)
        finally:
            self._in_flight.count -= 1


def _error(exc: AirlockError) -> Response:
    return Response(wire.error_body(exc), status_code=exc.status, media_type=_JSON)


__all__ = ["create_app"]
