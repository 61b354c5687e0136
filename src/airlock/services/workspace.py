"""A workspace: settings + catalog database + blob store, opened once and passed around."""

from __future__ import annotations

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
            home.mkdir(parents=True)
        db = Database.open(settings.catalog_url)
        migrate.upgrade(db)
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
