"""Across processes on PostgreSQL: a plan committed elsewhere reaches a gateway through
LISTEN/NOTIFY, without waiting for the poll tick."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from airlock.config import Settings
from airlock.gateway.sync import CatalogSync
from airlock.services.identity import Actor
from airlock.services.serving import Serving
from airlock.services.workspace import Workspace
from gateway.support import Releases

pytestmark = pytest.mark.anyio
ALICE = Actor("alice")


async def test_a_plan_committed_by_another_process_is_applied_on_notify(
    pg_url: str, tmp_path: Path
) -> None:
    home = tmp_path / ".airlock"
    ours = Workspace.open(Settings(home=home, database_url=pg_url), create=True)
    theirs = Workspace.open(Settings(home=home, database_url=pg_url))  # own engine, own Serving
    try:
        releases = Releases(ours, tmp_path / "folders")
        stable = releases.builtin("chat", "1.0.0")
        candidate = releases.builtin("chat", "1.1.0", "The sun is hot.\n\nIt burns.")
        releases.serving.create("chat", stable, actor=ALICE, reason="launch")
        gateway = releases.gateway()
        await gateway.start()
        sync = CatalogSync(gateway, releases.serving, interval=3600)  # the tick never comes
        await sync.start()
        try:
            assert gateway.plan("chat").generation == 0
            other = Serving(theirs)
            canary = other.plan("chat").with_weights({candidate: 1000})
            await asyncio.to_thread(other.set_plan, canary, actor=ALICE, reason="10 % canary")
            for _ in range(200):  # bounded wait for the notification, not a timing assertion
                if gateway.plan("chat").generation == 1:
                    break
                await asyncio.sleep(0.05)
            assert gateway.plan("chat").generation == 1
            assert gateway.plan("chat").weight_of(candidate) == 1000
            assert sync.notifications >= 1
        finally:
            await sync.stop()
            await gateway.aclose()
    finally:
        theirs.close()
        ours.close()
