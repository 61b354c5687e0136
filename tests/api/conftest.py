"""A real workspace for API tests: API tokens per role, the Lumen releases, one service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from api_support import ROLES, Lumen

from airlock.api.app import create_app
from airlock.api.auth import token_authenticator
from airlock.demo import scenario
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.serving import Serving
from airlock.services.tokens import Tokens
from airlock.services.workspace import Workspace


@pytest.fixture
def lumen(workspace: Workspace, tmp_path: Path) -> Lumen:
    """lumen@1.0.0 and lumen@1.1.0 pushed by carol; service lumen-support on 1.0.0."""
    tokens = Tokens(workspace)
    boot = tokens.bootstrap("alice")
    assert boot is not None
    secrets = {"alice": boot.secret}
    admin = Actor("alice", "admin")
    for user, role in ROLES.items():
        if user != "alice":
            secrets[user] = tokens.create(user=user, role=role, actor=admin).secret
    reg = Registry(workspace)
    carol = Actor("carol", "author")
    for plan in scenario.RELEASES[:2]:
        reg.push(
            scenario.build_folder(tmp_path / "build", plan),
            name=scenario.MODEL,
            version=plan.version,
            actor=carol,
            notes=plan.notes,
            parent=plan.parent,
            datasets=scenario.datasets_of(plan),
        )
    Serving(workspace).create(scenario.SERVICE, "lumen@1.0.0", actor=admin, reason="launch")
    return Lumen(workspace, secrets)


@pytest.fixture
async def api(lumen: Lumen) -> AsyncIterator[httpx.AsyncClient]:
    """The real API app over ASGI, acting as alice (admin) unless a request says otherwise."""
    app = create_app(lumen.ws, authenticate=token_authenticator(lumen.ws))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://airlock",
        headers=lumen.auth("alice"),
    ) as client:
        yield client
