"""A workspace: settings + catalog database + blob store, opened once and passed around."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from airlock.catalog import migrate
from airlock.catalog.engine import Database
from airlock.config import Settings
from airlock.errors import NotFound
from airlock.store import BlobStore, open_store


@dataclass
class Workspace:
    settings: Settings
    db: Database
    store: BlobStore

    @classmethod
    def open(cls, settings: Settings, *, create: bool = False) -> Workspace:
        home = settings.home
        if not home.is_dir():
            if not create:
                raise NotFound(
                    f"no Airlock workspace at {home}",
                    hint="run `airlock init` here, or set AIRLOCK_HOME to an existing workspace",
                )
            home.mkdir(parents=True, mode=0o700)
        _owner_only(home, settings.catalog_url, tighten=create)
        db = Database.open(settings.catalog_url)
        try:
            migrate.ensure_schema(db, auto_migrate=settings.auto_migrate)
        except BaseException:
            db.dispose()
            raise
        store = open_store(settings.store_url or "", default_root=home)
        return cls(settings, db, store)

    @property
    def home(self) -> Path:
        return self.settings.home

    @property
    def cache_dir(self) -> Path:
        path = self.home / "cache"
        path.mkdir(exist_ok=True)
        return path

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _owner_only(home: Path, catalog_url: str, *, tighten: bool) -> None:
    """A new SQLite catalog file is created 0600, whatever the umask; with ``tighten``
    (``airlock init``) the workspace folder becomes 0700 and an existing catalog 0600.

    The catalog holds token hashes and the audit log; the folder holds the
    owner's token. SQLite creates its -wal and -shm files with the mode of
    the database file, so creating that file first, 0600, covers them too.
    """
    if tighten:
        with contextlib.suppress(OSError):  # not ours to change (a shared folder): leave it
            os.chmod(home, 0o700)
    path = _sqlite_path(catalog_url)
    if path is None:
        return
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        if tighten:
            with contextlib.suppress(OSError):
                os.chmod(path, 0o600)
    except OSError:
        return  # the database layer reports an unusable path with its own message


def _sqlite_path(url: str) -> Path | None:
    if not url.startswith("sqlite:///"):
        return None
    raw = url.removeprefix("sqlite:///").split("?", 1)[0]
    if not raw or raw == ":memory:":
        return None
    return Path(raw)
