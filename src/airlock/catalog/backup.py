"""A consistent copy of a SQLite catalog while processes use it (SQLite's online backup)."""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from airlock.errors import InvalidInput, ServiceUnavailable


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` catalog URL (None for any other database)."""
    if not url.startswith("sqlite:///"):
        return None
    raw = url.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(raw) if raw and raw != ":memory:" else None


def copy_sqlite(source: Path, target: Path) -> None:
    """Copy the catalog ``source`` to the new file ``target`` (0600), page by page, under
    SQLite's backup API: readers and writers of ``source`` may carry on meanwhile, and the
    copy is one consistent snapshot."""
    if not source.is_file():
        raise InvalidInput(f"no SQLite catalog at {source}", hint="check AIRLOCK_HOME")
    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    try:
        with (
            contextlib.closing(sqlite3.connect(source)) as src,
            contextlib.closing(sqlite3.connect(target)) as dst,
        ):
            src.backup(dst)
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    except sqlite3.Error as exc:
        target.unlink(missing_ok=True)
        raise ServiceUnavailable(
            f"could not copy the catalog {source}: {exc}",
            hint="retry; another process may hold the catalog busy for a long time",
        ) from exc


__all__ = ["copy_sqlite", "sqlite_path"]
