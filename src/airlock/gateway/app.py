"""The gateway as an ASGI app (Starlette), run by ``airlock gateway`` or any ASGI server.

Why Starlette and not FastAPI: FastAPI's per-request dependency resolution and
pydantic validation of bodies and responses cost more than everything else the
gateway does for a request (roughly 100-300 µs against ~50 µs); the OpenAI
bodies are parsed by hand in :mod:`airlock.gateway.openai_wire` instead, with
errors that still name the field. Starlette adds only its router.

=========================  ==========================================================
``POST /v1/chat/completions``  OpenAI chat (``stream: true`` -> SSE)
``POST /v1/completions``       OpenAI completions (``stream: true`` -> SSE)
``POST /v1/responses``         OpenAI Responses, text (:mod:`airlock.gateway.responses_wire`)
``GET  /v1/models``            services and the ``service@version`` pins they serve
``GET  /v1/models/{id}``       one of them (an OpenAI-shaped 404 for any other)
``POST /v1/feedback``          ``{"id": "<response id>", "score": 0..1, "metrics": {"name": 0..1}}``
``GET  /metrics``              Prometheus, per-release labels
``GET  /healthz``              served services and their plan generations
``GET  /readyz``               readiness of this replica: catalog reachable, last sync, and per
                               service the catalog's and the served generation (given a sync)
=========================  ==========================================================

Responses name the release that answered in ``X-Airlock-Release`` (and
``X-Airlock-Route``: plan, pinned, opt_out or fallback; ``X-Airlock-Fallback-From``;
``X-Airlock-Guardrail``: flagged, redacted or blocked). Errors use OpenAI's shape
``{"error": {"message", "type", "param", "code"}}`` with the status of the Airlock error;
a parameter a release that may answer cannot honour is a 400 naming it, before any
generation (:mod:`airlock.gateway.parameters`).

Access (:mod:`airlock.gateway.access`): a service with gateway keys needs
``Authorization: Bearer ak-...`` (401 with ``WWW-Authenticate: Bearer``; 429 with
``Retry-After`` over a key's limits); pins, routing and opt-out headers need the
key's scopes (403 naming the scope), and only pinning keys see ``X-Airlock-Release``.
Callers in this process mark their ASGI scope with :data:`TRUSTED_SCOPE_KEY`
(:func:`trusted`) and pass as :data:`~airlock.gateway.access.TRUSTED`.
"""

from __future__ import annotations

import asyncio
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
from airlock.core.request_limits import loads_json
from airlock.errors import (
    AirlockError,
    Forbidden,
    InvalidInput,
    NotFound,
    RateLimited,
    Unauthorized,
)
from airlock.gateway import openai_wire as wire
from airlock.gateway import responses_wire
from airlock.gateway.access import TRUSTED, Principal
from airlock.gateway.body_parse import parse_completion, parse_responses
from airlock.gateway.engine import Gateway
from airlock.gateway.feedback import FeedbackPost
from airlock.gateway.metrics import (
    CONTENT_TYPE,
    AccessCollector,
    GatewayCollector,
    QualityCollector,
    make_registry,
    render,
)
from airlock.gateway.parameters import check_request
from airlock.gateway.readiness import replica_readiness
from airlock.gateway.sync import CatalogSync
from airlock.runtime.base import RequestKind

log = logging.getLogger("airlock.gateway")

Hook = Callable[[], Awaitable[None]]
_JSON = "application/json"
FEEDBACK_MAX_BYTES = 64 << 10  # a feedback body: an id, a score and at most 16 metrics
TRUSTED_SCOPE_KEY = "airlock.trusted"


def create_app(
    gateway: Gateway,
    *,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    sync: CatalogSync | None = None,
) -> Starlette:
    """An ASGI app serving ``gateway``; its lifespan starts and closes the gateway.

    Given the ``sync`` that keeps it in step with the catalog, ``/readyz`` and ``/metrics``
    show the plan generation per service against the catalog's, and the last sync."""
    in_flight = _InFlight()
    limits = gateway.settings.limits
    parser = gateway.body_parser  # large bodies are parsed in a worker process, off the loop

    def sync_state() -> tuple[float | None, dict[str, int]]:
        assert sync is not None
        return sync.last_sync, dict(sync.catalog_generations)

    registry = make_registry(
        GatewayCollector(
            gateway.telemetry,
            gateway.plans,
            lambda: gateway.shadows.depth,
            in_flight=lambda: in_flight.count,
            sync_state=sync_state if sync is not None else None,
        ),
        AccessCollector(gateway.access, gateway.feedback_ledger),
        QualityCollector(gateway.quality),
    )

    def caller(request: Request, service: str, *, admit: bool = True) -> Principal:
        if request.scope.get(TRUSTED_SCOPE_KEY) is True:
            return TRUSTED
        auth = request.headers.get("authorization")
        if admit:
            return gateway.access.admit(service, auth)
        return gateway.access.authenticate(service, auth)

    async def completion(request: Request, kind: RequestKind | None) -> Response:
        """``kind`` None: a Responses request, served as a chat completion."""
        try:
            asked: object = None
            body = await request.body()
            if kind is None:
                asked, req = await parser.run(body, parse_responses, limits)
            else:
                req = await parser.run(body, parse_completion, kind, limits)
            del body
            principal = caller(request, req.service)
            check_request(gateway, req, request.headers, principal)
            if req.stream:
                headers, stream = await gateway.stream(req, request.headers, principal)
                if isinstance(asked, dict):
                    events = responses_wire.ResponseEvents(asked, headers["x-request-id"])
                    stream = events.translate(stream)
                headers["cache-control"] = "no-cache"
                return StreamingResponse(stream, media_type="text/event-stream", headers=headers)
            answer = await gateway.complete(req, request.headers, principal)
            if isinstance(asked, dict):
                out = responses_wire.response_body(asked, answer.body)
                return Response(out, media_type=_JSON, headers=answer.headers)
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

    async def responses(request: Request) -> Response:
        return await completion(request, None)

    chat_app, completions_app = in_flight.counted(chat), in_flight.counted(completions)
    responses_app = in_flight.counted(responses)

    async def models(request: Request) -> Response:
        data = gateway.models()
        if request.scope.get(TRUSTED_SCOPE_KEY) is not True:
            auth = request.headers.get("authorization")
            shown = [m for m in data if gateway.access.visible(m["id"], auth)]
            if not shown and data:
                return _error(
                    Unauthorized(
                        "no service of this gateway is open to a caller without a valid key",
                        hint="send 'Authorization: Bearer ak-...' (`airlock gateway-key create`)",
                    )
                )
            data = shown
        return Response(wire.dumps({"object": "list", "data": data}), media_type=_JSON)

    async def model(request: Request) -> Response:
        model_id = request.path_params["model_id"]
        found = [m for m in gateway.models() if m["id"] == model_id]
        shown = request.scope.get(TRUSTED_SCOPE_KEY) is True or gateway.access.visible(
            model_id, request.headers.get("authorization")
        )
        if not found or not shown:  # one answer for both: no probing for hidden services
            return _error(
                NotFound(
                    f"the model {model_id[:256]!r} does not exist",
                    hint="GET /v1/models lists the models this gateway serves to you",
                )
            )
        return Response(wire.dumps(found[0]), media_type=_JSON)

    async def feedback(request: Request) -> Response:
        try:
            data = loads_json(await request.body(), max_depth=limits.default.max_json_depth)
            try:
                post = FeedbackPost.parse(data)
            except InvalidInput:
                gateway.feedback_ledger.reject("invalid")
                raise
            ticket = gateway.response_ticket(post.response_id)
            try:
                principal = caller(request, ticket.service, admit=False)
            except Unauthorized:
                gateway.feedback_ledger.reject("unauthenticated")
                raise
            except Forbidden:
                gateway.feedback_ledger.reject("wrong_key")
                raise
            result = gateway.feedback(post.response_id, post.score, principal, post.metrics)
        except AirlockError as exc:
            return _error(exc)
        out: dict[str, object] = {"ok": True, "id": post.response_id, "service": result.service}
        if principal.may("can_pin"):
            out["release"] = result.release
        if result.replaced is not None:
            out["replaced"] = result.replaced
        return Response(wire.dumps(out), media_type=_JSON)

    async def metrics(request: Request) -> Response:
        return Response(render(registry), media_type=CONTENT_TYPE)

    async def health(request: Request) -> Response:
        plans = {name: plan.generation for name, plan in gateway.plans().items()}
        return Response(wire.dumps({"status": "ok", "services": plans}), media_type=_JSON)

    async def ready(request: Request) -> Response:
        if sync is None:
            plans = {name: plan.generation for name, plan in gateway.plans().items()}
            return Response(wire.dumps({"status": "ready", "services": plans}), media_type=_JSON)
        state = await asyncio.to_thread(replica_readiness, gateway, sync)
        return Response(
            wire.dumps(state.body),
            status_code=200 if state.ready else 503,
            media_type=_JSON,
            headers={"cache-control": "no-store"},
        )

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
        Route("/v1/responses", responses_app, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model_id}", model, methods=["GET"]),
        Route("/v1/feedback", feedback, methods=["POST"]),
        Route("/chat/completions", chat_app, methods=["POST"]),
        Route("/completions", completions_app, methods=["POST"]),
        Route("/responses", responses_app, methods=["POST"]),
        Route("/models", models, methods=["GET"]),
        Route("/models/{model_id}", model, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
        Route("/readyz", ready, methods=["GET"]),
    ]
    largest = limits.largest_body

    def body_limit_for(scope: Scope) -> int:
        if str(scope.get("path", "")).endswith("/feedback"):
            return min(FEEDBACK_MAX_BYTES, largest)  # an id, a score, a few metrics
        return largest

    body_limit = Middleware(
        BodyLimit, render=json_render(wire.error_body), limit_for=body_limit_for
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
    headers = {}
    if isinstance(exc, Unauthorized):
        headers["www-authenticate"] = 'Bearer realm="airlock-gateway"'
    elif isinstance(exc, RateLimited):
        headers["retry-after"] = exc.retry_after_header
    return Response(wire.error_body(exc), status_code=exc.status, media_type=_JSON, headers=headers)


def trusted(app: ASGIApp) -> ASGIApp:
    """``app`` for callers inside this process: requests pass as the TRUSTED principal.

    No HTTP server puts this key into a scope, so only code holding the app can."""

    async def marked(scope: Scope, receive: Receive, send: Send) -> None:
        scope[TRUSTED_SCOPE_KEY] = True
        await app(scope, receive, send)

    return marked


__all__ = ["TRUSTED_SCOPE_KEY", "create_app", "trusted"]
