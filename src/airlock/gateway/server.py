"""Wire a gateway to a workspace and run it: ``airlock gateway`` and embedding apps use this."""

from __future__ import annotations

import gc

from starlette.applications import Starlette

from airlock.assembly import Assembly, AssemblySettings, build
from airlock.gateway.app import create_app
from airlock.gateway.engine import Gateway, GatewaySettings
from airlock.gateway.sync import CatalogSync
from airlock.services.workspace import Workspace


def workspace_app(
    workspace: Workspace,
    *,
    settings: GatewaySettings | None = None,
    services: tuple[str, ...] | None = None,
    interval: float = 1.0,
) -> tuple[Starlette, Gateway, CatalogSync]:
    """An ASGI app serving the workspace's services, synced with its catalog every ``interval``."""
    parts = build(
        workspace,
        AssemblySettings(
            gateway=settings or GatewaySettings(), sync_seconds=interval, services=services
        ),
    )
    return gateway_app(parts), parts.gateway, parts.sync


def gateway_app(parts: Assembly) -> Starlette:
    """The ASGI app of ``parts.gateway``; its lifespan runs the catalog sync beside it."""
    app = create_app(
        parts.gateway,
        on_startup=[parts.sync.start],
        on_shutdown=[parts.sync.stop],
        sync=parts.sync,
    )
    app.state.sync = parts.sync
    return app


def settle_heap() -> None:
    """Move everything built so far (imported modules, the app) out of the collector's sight.

    A server process keeps ~100,000 objects from its imports alive for good; each full
    collection walked them all and stalled the event loop ~50 ms, so every request in
    flight then waited as long. ``gc.freeze`` leaves those to reference counting, and
    later collections walk only what the requests allocate (~0 ms).
    """
    gc.collect()
    gc.freeze()


def run(
    workspace: Workspace,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    settings: GatewaySettings | None = None,
    services: tuple[str, ...] | None = None,
    log_level: str = "warning",
) -> None:
    """Serve until interrupted (uvicorn with uvloop and httptools when installed)."""
    import uvicorn

    app, _, _ = workspace_app(workspace, settings=settings, services=services)
    settle_heap()
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        loop="auto",
        http="auto",
        timeout_graceful_shutdown=10,
    )


__all__ = ["gateway_app", "run", "settle_heap", "workspace_app"]
