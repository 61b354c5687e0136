"""Fixtures for gateway tests: a real SQLite workspace and a fake upstream on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airlock.config import Settings
from airlock.services.workspace import Workspace
from gateway.support import Releases, Server, fake_upstream_app


@pytest.fixture
def upstream() -> Iterator[tuple[Server, list[dict[str, Any]]]]:
    calls: list[dict[str, Any]] = []
    with Server(fake_upstream_app(calls)) as server:
        yield server, calls


@pytest.fixture
def releases(tmp_path: Path) -> Iterator[Releases]:
    settings = Settings(home=tmp_path / ".airlock", user="alice")
    ws = Workspace.open(settings, create=True)
    try:
        yield Releases(ws, tmp_path / "folders")
    finally:
        ws.close()
