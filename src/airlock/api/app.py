"""The REST API application (FastAPI): ``create_app(workspace, authenticate=...)``.

Routers for each area are included here; the error tree is mapped to HTTP once
(``api/errors.py``). The gateway and the dashboard mount next to it in
``airlock serve``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.staticfiles import StaticFiles

from airlock import __version__
from airlock.api import (
    audit_routes,
    blob_routes,
    feedback_routes,
    gateway_key_routes,
    governance_routes,
    registry_routes,
    rollout_routes,
    serving_routes,
    token_routes,
    webhook_routes,
)
from airlock.api.deps import Authenticator
from airlock.api.errors import error_json, install_error_handlers
from airlock.api.value_limit import ValueLimit
from airlock.body_limit import BodyLimit, Scope, json_render
from airlock.core.request_limits import MiB
from airlock.errors import ServiceUnavailable
from airlock.services.workspace import Workspace

DOCS_ASSETS = "/docs/assets"


def create_app(
    workspace: Workspace,
    *,
    authenticate: Authenticator,
    routers: Sequence[APIRouter] = (),
    max_body_bytes: int = MiB,
    unlimited_paths: Sequence[str] = (),
) -> FastAPI:
    """The API app. Request bodies are refused over ``max_body_bytes`` (413) as they
    arrive, except on paths starting with one of ``unlimited_paths`` (uploads that
    stream to the store and bound themselves)."""
    app = FastAPI(
        title="Airlock",
        version=__version__,
        description="Version, gate, roll out and roll back generative models. "
        "Authorize with an API token (`airlock token create`).",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.state.workspace = workspace
    app.state.authenticate = authenticate
    install_error_handlers(app)
    exempt = tuple(unlimited_paths)

    def limit_for(scope: Scope) -> int | None:
        path = str(scope.get("path", ""))
        if blob_routes.streams_upload(scope) or (exempt and path.startswith(exempt)):
            return None
        return max_body_bytes

    # (the last added runs first: the size is bounded before the values are counted)
    app.add_middleware(
        ValueLimit,
        render=json_render(error_json),
        exempt=lambda scope: limit_for(scope) is None,  # streamed uploads: no body to count
    )
    app.add_middleware(BodyLimit, render=json_render(error_json), limit_for=limit_for)
    _offline_docs(app)
    app.include_router(registry_routes.router)
    app.include_router(blob_routes.router)
    app.include_router(audit_routes.router)
    app.include_router(governance_routes.router)
    app.include_router(token_routes.router)
    app.include_router(serving_routes.router)
    app.include_router(rollout_routes.router)
    app.include_router(gateway_key_routes.router)
    app.include_router(feedback_routes.router)
    app.include_router(webhook_routes.router)
    for router in routers:
        app.include_router(router)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def _offline_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI served from the installed ``swagger-ui-bundle-v2`` package,
    so the page renders with no internet; ``/redoc`` leads there too."""
    assets = _swagger_ui_dir()
    if assets is not None:
        app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if assets is None:
            raise ServiceUnavailable(
                "the API page needs the swagger-ui-bundle-v2 package",
                hint="pip install swagger-ui-bundle-v2 (or read /openapi.json)",
            )
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="Airlock API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
            swagger_ui_parameters={"persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> RedirectResponse:
        return RedirectResponse("/docs", status_code=307)


def _swagger_ui_dir() -> Path | None:
    try:
        bundle = importlib.import_module("swagger_ui_bundle")
    except ImportError:
        return None
    path = Path(str(bundle.swagger_ui_path))
    return path if (path / "swagger-ui-bundle.js").is_file() else None
