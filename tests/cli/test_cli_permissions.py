"""What `airlock init` writes is readable by its owner only, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from airlock_testkit import Cli


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the usual default: files 0644, folders 0755
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_creates_the_catalog_and_token_0600_in_a_0700_folder(
    cli: Cli, tmp_path: Path, open_umask: None
) -> None:
    cli("init")
    home = tmp_path / ".airlock"
    assert _mode(home) == 0o700
    assert _mode(home / "catalog.db") == 0o600
    assert _mode(home / "token") == 0o600
    for extra in ("catalog.db-wal", "catalog.db-shm"):
        if (home / extra).exists():
            assert _mode(home / extra) == 0o600


def test_init_tightens_an_existing_workspace(cli: Cli, tmp_path: Path, open_umask: None) -> None:
    cli("init")
    home = tmp_path / ".airlock"
    os.chmod(home, 0o755)
    os.chmod(home / "catalog.db", 0o644)
    cli("init")
    assert _mode(home) == 0o700 and _mode(home / "catalog.db") == 0o600
