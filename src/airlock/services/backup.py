"""Back up and restore a one-machine workspace: the SQLite catalog and the local blob store.

::

    backup_workspace(ws, DIR)     DIR/catalog.db   a consistent copy (SQLite online backup),
                                                   taken while ``airlock serve`` runs
                                  DIR/blobs/       every blob (content-addressed: immutable)
                                  DIR/<files>      the workspace's own files (token, keys)
                                  DIR/backup.json  when, which schema, how many blobs
    restore_workspace(DIR, HOME)  into a workspace folder that is absent or empty; then
                                  ``airlock verify`` and ``airlock audit verify`` check it

The catalog is copied before the blobs: a blob is written before the catalog names it and
never changes after, so every blob the copied catalog names is in the copy. A team's
PostgreSQL catalog and S3 bucket are backed up with their own tools (``pg_dump``, bucket
versioning or replication): see docs/deploy.md.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from airlock.catalog import migrate
from airlock.catalog.backup import copy_sqlite, sqlite_path
from airlock.errors import Conflict, InvalidInput, NotFound
from airlock.services.workspace import Workspace
from airlock.store import LocalStore

MANIFEST = "backup.json"
_SKIP = {"catalog.db", "catalog.db-wal", "catalog.db-shm", "blobs", "cache", MANIFEST}


@dataclass(frozen=True, slots=True)
class BackupReport:
    folder: Path
    blobs: int
    files: tuple[str, ...]
    """The workspace's own files copied beside the catalog (token, keys...)."""
    schema: tuple[str, ...]
    at: datetime


def _empty_or_absent(folder: Path, what: str) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise Conflict(
            f"{what} {folder} is not empty", hint="choose a new folder; nothing is overwritten"
        )


def backup_workspace(ws: Workspace, folder: Path) -> BackupReport:
    """Copy ``ws``'s SQLite catalog, local blobs and own files into the new ``folder``."""
    source = sqlite_path(ws.settings.catalog_url)
    if source is None:
        raise InvalidInput(
            "this workspace's catalog is not SQLite: back PostgreSQL up with pg_dump",
            hint='pg_dump --format=custom --file airlock.dump "$AIRLOCK_DATABASE_URL" '
            "(docs/deploy.md#backups)",
        )
    if not isinstance(ws.store, LocalStore):
        raise InvalidInput(
            f"this workspace's blobs are in {ws.store.url}, not in a local folder",
            hint="back the bucket up with its own tools (versioning, replication); "
            "docs/deploy.md#backups",
        )
    _empty_or_absent(folder, "backup folder")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    at = datetime.now(UTC)
    copy_sqlite(source, folder / "catalog.db")  # first: every blob it names already exists
    blobs = 0
    target_blobs = folder / "blobs" / "sha256"
    if ws.store.blobs.is_dir():
        shutil.copytree(ws.store.blobs, target_blobs)
        blobs = sum(1 for p in target_blobs.glob("*/*") if p.is_file())
    files = []
    for path in sorted(ws.home.iterdir()):
        if path.name in _SKIP or path.name.startswith("."):
            continue
        if path.is_dir():
            shutil.copytree(path, folder / path.name)
        else:
            shutil.copy2(path, folder / path.name)
        files.append(path.name)
    schema = tuple(sorted(migrate.current_revisions(ws.db)))
    manifest = {
        "at": at.isoformat(),
        "home": str(ws.home),
        "schema": list(schema),
        "blobs": blobs,
        "files": files,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return BackupReport(folder, blobs, tuple(files), schema, at)


def restore_workspace(folder: Path, home: Path) -> BackupReport:
    """Rebuild a workspace at ``home`` (absent or empty) from the backup ``folder``."""
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file() or not (folder / "catalog.db").is_file():
        raise NotFound(
            f"no Airlock backup in {folder} (no {MANIFEST} or catalog.db)",
            hint="pass the folder `airlock db backup` wrote",
        )
    _empty_or_absent(home, "workspace")
    manifest = json.loads(manifest_path.read_text())
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)
    copy_sqlite(folder / "catalog.db", home / "catalog.db")
    if (folder / "blobs").is_dir():
        shutil.copytree(folder / "blobs", home / "blobs")
    for name in manifest.get("files", []):
        path = folder / name
        if path.is_dir():
            shutil.copytree(path, home / name)
        elif path.is_file():
            shutil.copy2(path, home / name)
    return BackupReport(
        home,
        int(manifest.get("blobs", 0)),
        tuple(manifest.get("files", [])),
        tuple(manifest.get("schema", [])),
        datetime.fromisoformat(manifest["at"]),
    )


__all__ = ["BackupReport", "backup_workspace", "restore_workspace"]
