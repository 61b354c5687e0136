"""``airlock serve``: the REST API, the dashboard, the gateway and the controller in one process.

::

    one uvicorn server, one ASGI app (:class:`AirlockApp`), routed by path:

      /v1/...  /metrics            the OpenAI-compatible gateway (airlock.gateway)
      /api/v1/...  /openapi.json   the REST API (airlock.api)
      /docs  /redoc
      /readyz  /healthz            readiness (catalog reachable, plans loaded) and liveness
      everything else              the dashboard (airlock.web)

    beside it, on the same event loop:
      CatalogSync          plans in, telemetry out, every second
      RolloutController    judges every live rollout each tick and acts

Every part is wired by :func:`airlock.assembly.build`. The three apps share one
:class:`~airlock.services.serving.Serving` object, so a rollback made through the
API or the dashboard reaches the in-process gateway the moment its transaction
commits (``Serving.publish`` -> ``CatalogSync``); the controller swaps the
gateway's plan directly and publishes nothing more (one route per change).

Shutdown (SIGINT/SIGTERM): uvicorn stops accepting connections and lets the
requests in flight finish (up to ``graceful_seconds``); then the controller
stops after its current tick and gives up its lease (every decision it took is
already in the catalog, so a restart resumes each rollout where it was), the
last telemetry is flushed to the catalog, and the gateway closes its runtimes.

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airlock.assembly import AssemblySettings, build
from airlock.errors import AirlockError, ServiceUnavailable
from airlock.gateway.engine import GatewaySettings
from airlock.services.checkpoints import CheckpointPublisher
from airlock.services.controller import ControllerSettings
from airlock.services.identity import Actor
from airlock.services.workspace import Workspace

log = logging.getLogger("airlock.serve")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_API_PATHS = ("/openapi.json", "/docs", "/redoc")


@dataclass(frozen=True, slots=True)
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    sync_seconds: float = 1.0
    """How often telemetry is flushed and the catalog's plans are polled."""
    controller: ControllerSettings = field(default_factory=ControllerSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    run_controller: bool = True
    log_level: str = "warning"
    graceful_seconds: float = 10.0
    """How long requests in flight may take to finish at shutdown."""
    retry_failed_seconds: float = 30.0
    """A plan that failed to load (a damaged release) is retried after this, then backs off."""
    checkpoint_every: int = 0
    """Append a signed audit checkpoint to ``checkpoint_file`` every N events (0: off)."""
    checkpoint_file: Path | None = None
    checkpoint_key: Path | None = None
    """The key that signs checkpoints (default: the workspace's audit key)."""
    webhooks: bool = True
    """Deliver webhook subscriptions from this process (``airlock webhook add``)."""

    def assembly(self) -> AssemblySettings:
        """What :func:`airlock.assembly.build` wires for this server."""
        return AssemblySettings(
            gateway=self.gateway,
            controller=self.controller,
            sync_seconds=self.sync_seconds,
            retry_failed_seconds=self.retry_failed_seconds,
        )


class AirlockApp:
    """The one ASGI app of ``airlock serve`` (see the module docstring)."""

    def __init__(self, workspace: Workspace, settings: ServeSettings | None = None) -> None:
        from airlock.api.app import create_app as create_api
        from airlock.api.auth import token_authenticator
        from airlock.gateway.app import create_app as create_gateway_app
        from airlock.web.app import create_dashboard

        self.ws = workspace
        self.settings = settings or ServeSettings()
        self.parts = build(workspace, self.settings.assembly())
        self.serving = self.parts.serving
        self.gateway = self.parts.gateway
        self.sync = self.parts.sync
        self.rollouts = self.parts.rollouts
        self.controller = self.parts.controller
        authenticate = token_authenticator(workspace)
        self.api = create_api(workspace, authenticate=authenticate)
        self.api.state.serving = self.serving
        self.api.state.drill_runner = self.start_drill
        self.gateway_app = create_gateway_app(self.gateway, sync=self.sync)
        self.web = create_dashboard(workspace, serving=self.serving, authenticate=authenticate)
        self.started = False
        self.stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drills: set[asyncio.Task[Any]] = set()
        self.checkpoints = _publisher(workspace, self.settings)
        self._checkpointing: asyncio.Task[None] | None = None

    # -- ASGI ----------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        path: str = scope.get("path", "")
        if path.startswith("/v1/") or path in ("/v1", "/metrics"):
            await self.gateway_app(scope, receive, send)
        elif path.startswith("/api/") or path in _API_PATHS or path.startswith("/docs"):
            await self.api(scope, receive, send)
        elif path in ("/readyz", "/healthz") and kind == "http":
            if scope.get("method") in ("GET", "HEAD"):
                await self._health(path, send)
            else:
                await _method_not_allowed(send)
        else:
            await self.web(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("airlock serve could not start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.gateway.start()
        await self.sync.start()
        if self.settings.run_controller:
            await self.controller.start()
        if self.settings.webhooks:
            self.parts.webhooks.start()  # a thread: a slow subscriber never blocks an action
        if self.checkpoints is not None:
            self._checkpointing = asyncio.create_task(
                self._publish_checkpoints(), name="airlock-audit-checkpoints"
            )
        self.started = True

    async def _publish_checkpoints(self) -> None:
        assert self.checkpoints is not None
        while True:
            try:
                await asyncio.to_thread(self.checkpoints.poll)
            except AirlockError as exc:
                log.error("audit checkpoint not written: %s (%s)", exc.message, exc.hint)
            await asyncio.sleep(self.settings.sync_seconds)

    async def shutdown(self) -> None:
        """Controller first (no new decisions), then the last telemetry flush, then runtimes."""
        self.stopping = True
        if self._checkpointing is not None:
            self._checkpointing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointing
        for task in list(self._drills):
            task.cancel()
        for task in list(self._drills):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        try:
            await self.controller.stop()
            await asyncio.to_thread(self.parts.webhooks.stop)
        finally:
            try:
                await self.sync.stop()
            finally:
                await self.gateway.aclose()

    # -- drills --------------------------------------------------------------------------
    def start_drill(
        self,
        service: str,
        faults: dict[str, float],
        actor: Actor,
        rps: float,
        spec: dict[str, Any] | None,
    ) -> None:
        """Run a rollback drill on this server's loop, against its own gateway (any thread)."""
        loop = self._loop
        if loop is None or self.stopping:
            raise ServiceUnavailable("the server is not running", hint="wait for /readyz")

        async def run() -> None:
            import httpx

            from airlock.gateway.app import trusted
            from airlock.services.drills import DrillSettings, run_drill

            transport = httpx.ASGITransport(app=trusted(self.gateway_app))
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
                try:
                    await run_drill(
                        self.parts.drills,
                        service,
                        faults,
                        actor=actor,
                        client=client,
                        spec=spec,
                        settings=DrillSettings(rps=rps),
                        on_progress=lambda text: log.info("drill of %s: %s", service, text),
                    )
                except AirlockError as exc:
                    log.error("drill of %s failed: %s (%s)", service, exc.message, exc.hint)

        def schedule() -> None:
            task = loop.create_task(run(), name=f"airlock-drill-{service}")
            self._drills.add(task)
            task.add_done_callback(self._drills.discard)

        loop.call_soon_threadsafe(schedule)

    # -- health --------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready when the catalog answers and every service's current plan is served."""
        checks: dict[str, Any] = {}
        ok = self.started and not self.stopping
        if not self.started:
            checks["startup"] = "starting"
        if self.stopping:
            checks["shutdown"] = "shutting down"
        try:
            began = time.perf_counter()
            catalog = self.serving.generations()
            checks["catalog"] = {"ok": True, "ms": round((time.perf_counter() - began) * 1000, 2)}
        except (AirlockError, OSError, RuntimeError) as exc:
            checks["catalog"] = {"ok": False, "error": str(exc)}
            return False, checks
        except Exception as exc:  # a database driver's own error: not ready, say why
            checks["catalog"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            return False, checks
        services = self._service_checks(catalog)
        lagging = {
            name: {"catalog": c["catalog"], "served": c["served"]}
            for name, c in services.items()
            if c["status"] != "serving"
        }
        loading = [name for name, c in services.items() if c["status"] == "loading"]
        can_serve = not catalog or any(c["served"] is not None for c in services.values())
        checks["plans"] = {"ok": not lagging, "services": len(catalog), "lagging": lagging}
        checks["services"] = services
        # Ready while any service serves: one damaged release makes its own service answer
        # 503 (and shows here), not the whole server. Plans still loading hold readiness.
        ok = ok and not loading and can_serve
        checks["controller"] = {
            "running": self.settings.run_controller,
            "leader": self.controller.is_leader,
        }
        return ok, checks

    def _service_checks(self, catalog: dict[str, int]) -> dict[str, dict[str, Any]]:
        """Per service: serving, degraded (an older plan: the newest failed), failed, loading."""
        served = {name: plan.generation for name, plan in self.gateway.plans().items()}
        out: dict[str, dict[str, Any]] = {}
        for name, generation in sorted(catalog.items()):
            now = served.get(name)
            error = self.gateway.unservable.get(name)
            if now == generation:
                status = "serving"
            elif error is not None:
                status = "degraded" if now is not None else "failed"
            else:
                status = "loading"
            entry: dict[str, Any] = {"status": status, "catalog": generation, "served": now}
            if error is not None and status != "serving":
                entry["error"] = error
            out[name] = entry
        return out

    async def _health(self, path: str, send: Send) -> None:
        body: dict[str, Any]
        if path == "/healthz":
            status, body = 200, {"status": "ok"}
        else:
            ok, checks = await asyncio.to_thread(self.readiness)
            status, body = (
                (200 if ok else 503),
                {
                    "status": "ready" if ok else "not ready",
                    "checks": checks,
                },
            )
        payload = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def _publisher(workspace: Workspace, settings: ServeSettings) -> CheckpointPublisher | None:
    if not settings.checkpoint_every or settings.checkpoint_file is None:
        return None
    from airlock.services.checkpoints import CheckpointPublisher, audit_key

    key = audit_key(workspace, settings.checkpoint_key)
    return CheckpointPublisher(workspace, settings.checkpoint_file, settings.checkpoint_every, key)


async def _method_not_allowed(send: Send) -> None:
    body = b'{"error":{"code":"method_not_allowed","message":"use GET","hint":""}}'
    await send(
        {
            "type": "http.response.start",
            "status": 405,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"allow", b"GET, HEAD"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# -- running it ------------------------------------------------------------------------------


class RunningServer:
    """``airlock serve`` on a uvicorn server in a background thread (the demo, tests)."""

    def __init__(self, app: AirlockApp) -> None:
        import uvicorn

        self.app = app
        s = app.settings
        config = uvicorn.Config(
            app,
            host=s.host,
            port=s.port,
            log_level=s.log_level,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=max(1, round(s.graceful_seconds)),
        )
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        for server in getattr(self.server, "servers", []):
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return self.app.settings.port

    @property
    def url(self) -> str:
        return f"http://{self.app.settings.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> RunningServer:
        self._thread = threading.Thread(target=self.server.run, name="airlock-serve", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"airlock serve did not start on {self.app.settings.host}:"
                    f"{self.app.settings.port}",
                    hint="is the port in use? pass --port",
                )
            time.sleep(0.02)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            ok, checks = self.app.readiness()
            if ok:
                return
            if time.monotonic() > deadline:
                raise ServiceUnavailable(f"airlock serve is not ready: {checks}")
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful: requests in flight finish, telemetry is flushed, the controller resigns."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wait(self) -> None:
        """Block until the server stops (Ctrl-C in the foreground thread stops it)."""
        try:
            while self._thread is not None and self._thread.is_alive():
                self._thread.join(0.5)
        except KeyboardInterrupt:
            self.stop()

    def __enter__(self) -> RunningServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(workspace: Workspace, settings: ServeSettings) -> None:
    """Serve in the foreground until SIGINT/SIGTERM (uvicorn's signal handling)."""
    import uvicorn

    app = AirlockApp(workspace, settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, round(settings.graceful_seconds)),
    )
    from airlock.gateway.server import settle_heap

    settle_heap()
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(config).run()


__all__ = ["AirlockApp", "RunningServer", "ServeSettings", "serve"]
