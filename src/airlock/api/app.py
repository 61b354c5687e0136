"""The REST API application (FastAPI): ``create_app(workspace, authenticate=...)``.

Routers for each area are included here; the error tree is mapped to HTTP once
(``api/errors.py``). The gateway and the dashboard mount next to it in
``airlock serve``.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI

from airlock import __version__
from airlock.api import (
    audit_routes,
    gateway_key_routes,
    governance_routes,
    registry_routes,
    rollout_routes,
    serving_routes,
    token_routes,
)
from airlock.api.deps import Authenticator
from airlock.api.errors import install_error_handlers
from airlock.services.workspace import Workspace


def create_app(
    workspace: Workspace,
    *,
    authenticate: Authenticator,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    app = FastAPI(
        title="Airlock",
        version=__version__,
        description="Version, gate, roll out and roll back generative models.",
        openapi_url="/openapi.json",
    )
    app.state.workspace = workspace
    app.state.authenticate = authenticate
    install_error_handlers(app)
    app.include_router(registry_routes.router)
    app.include_router(audit_routes.router)
    app.include_router(governance_routes.router)
    app.include_router(token_routes.router)
    app.include_router(serving_routes.router)
    app.include_router(rollout_routes.router)
    app.include_router(gateway_key_routes.router)
    for router in routers:
        app.include_router(router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
