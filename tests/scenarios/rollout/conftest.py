"""Fixtures for rollout tests: a lab (workspace, releases, rollouts) on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock.config import Settings
from airlock.services.workspace import Workspace
from gateway.support import Releases
from rollout.support import Lab


@pytest.fixture
def lab(workspace: Workspace, tmp_path: Path) -> Lab:
    """On SQLite and on PostgreSQL (the ``workspace`` fixture is parametrised)."""
    return Lab(workspace, Releases(workspace, tmp_path / "folders"))


@pytest.fixture
def sqlite_lab(tmp_path: Path) -> Iterator[Lab]:
    """SQLite only: for tests that run the gateway, where the back end does not matter."""
    ws = Workspace.open(Settings(home=tmp_path / ".airlock", user="alice"), create=True)
    try:
        yield Lab(ws, Releases(ws, tmp_path / "folders"))
    finally:
        ws.close()
