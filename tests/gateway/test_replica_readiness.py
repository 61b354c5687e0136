"""A replica's ``/readyz`` and ``/metrics`` show the plan generation it serves against the
catalog's, and its last sync: a replica that lags is visible (SQLite: the poll alone)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from airlock.config import Settings
from airlock.gateway.app import create_app
from airlock.gateway.sync import CatalogSync
from airlock.services.identity import Actor
from airlock.services.serving import Serving
from airlock.services.workspace import Workspace
from airlock_testkit import PG_ADMIN_URL
from gateway.support import Releases

pytestmark = pytest.mark.anyio
ALICE = Actor("alice")


def _gauge(text: str, name: str, labels: str = "") -> float | None:
    found = re.search(rf"^{name}{re.escape(labels)} (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


async def test_a_lagging_replica_shows_on_readyz_and_metrics(tmp_path: Path) -> None:
    home = tmp_path / ".airlock"
    ours = Workspace.open(Settings(home=home), create=True)
    theirs = Workspace.open(Settings(home=home))  # another process's Serving: no publish to us
    try:
        releases = Releases(ours, tmp_path / "folders")
        stable = releases.builtin("chat", "1.0.0")
        candidate = releases.builtin("chat", "1.1.0", "The sun is hot.\n\nIt burns.")
        releases.serving.create("chat", stable, actor=ALICE, reason="launch")
        gateway = releases.gateway()
        sync = CatalogSync(gateway, releases.serving, interval=3600)  # the tick never comes
        app = create_app(gateway, on_startup=[sync.start], on_shutdown=[sync.stop], sync=sync)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
        ):
            ready = await client.get("/readyz")
            assert ready.status_code == 200, ready.text
            body = ready.json()
            assert body["services"]["chat"] == {"status": "serving", "catalog": 0, "served": 0}
            assert body["replica"] == gateway.settings.gateway_id and body["lagging"] == []
            assert body["last_sync_age_s"] >= 0

            other = Serving(theirs)
            canary = other.plan("chat").with_weights({candidate: 1000})
            await asyncio.to_thread(other.set_plan, canary, actor=ALICE, reason="canary")

            lagging = (await client.get("/readyz")).json()
            assert lagging["services"]["chat"] == {
                "status": "lagging",
                "catalog": 1,
                "served": 0,
            }
            assert lagging["lagging"] == ["chat"]
            metrics = (await client.get("/metrics")).text
            assert _gauge(metrics, "airlock_plan_generation", '{service="chat"}') == 0
            assert _gauge(metrics, "airlock_plan_catalog_generation", '{service="chat"}') == 0
            synced = _gauge(metrics, "airlock_plan_last_sync_timestamp_seconds")
            assert synced is not None and synced > 0

            await sync.refresh()  # the poll's tick: the replica catches up
            caught_up = (await client.get("/readyz")).json()
            assert caught_up["services"]["chat"]["status"] == "serving"
            assert caught_up["services"]["chat"]["served"] == 1
            metrics = (await client.get("/metrics")).text
            assert _gauge(metrics, "airlock_plan_generation", '{service="chat"}') == 1
            assert _gauge(metrics, "airlock_plan_catalog_generation", '{service="chat"}') == 1
    finally:
        theirs.close()
        ours.close()


def _connections(name: str, *, allowed: bool) -> None:
    """Let clients connect to database ``name`` or not; refusing also ends its sessions
    (as a PostgreSQL restart or a network cut does to a replica's pooled connections)."""
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )


async def test_readyz_is_not_ready_while_the_catalog_is_unreachable(
    pg_url: str, tmp_path: Path
) -> None:
    ws = Workspace.open(Settings(home=tmp_path / ".airlock", database_url=pg_url), create=True)
    name = pg_url.rsplit("/", 1)[1]
    try:
        releases = Releases(ws, tmp_path / "folders")
        releases.serving.create("chat", releases.builtin("chat", "1.0.0"), actor=ALICE)
        gateway = releases.gateway()
        sync = CatalogSync(gateway, releases.serving, interval=3600)
        app = create_app(gateway, on_startup=[sync.start], on_shutdown=[sync.stop], sync=sync)
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://gw") as client,
        ):
            assert (await client.get("/readyz")).status_code == 200
            _connections(name, allowed=False)  # the catalog is gone, pooled connections too
            try:
                down = await client.get("/readyz")
                assert down.status_code == 503
                assert down.json()["catalog"]["ok"] is False
                assert down.json()["status"] == "not ready"
                # still serving what it holds: a replica without its catalog keeps answering
                chat = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
                assert (await client.post("/v1/chat/completions", json=chat)).status_code == 200
            finally:
                _connections(name, allowed=True)
            assert (await client.get("/readyz")).status_code == 200  # back once it answers
    finally:
        ws.close()
