"""Backups that restore: the documented commands (docs/deploy.md#backups), run for real.

A SQLite workspace is backed up with ``airlock db backup`` (while the catalog is open),
wiped, restored with ``airlock db restore``; a PostgreSQL catalog is dumped with
``pg_dump`` and restored with ``pg_restore`` into a new database. Afterwards the release
pulls back byte for byte, ``airlock verify`` and ``airlock audit verify`` pass, and the
restored workspace keeps working (a new release is pushed)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from airlock_testkit import PG_ADMIN_URL, Cli, write_model


def _tree(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _populate(cli: Cli, tmp_path: Path) -> Path:
    model = write_model(tmp_path / "model", shards=2, rows=256)
    cli("push", str(model), "--name", "chat", "--version", "1.0.0")
    cli("alias", "set", "chat@stable", "1.0.0", "--reason", "launch", ok=False)
    return model


def _checks(cli: Cli, model: Path, out: Path) -> None:
    assert cli("verify").exit_code == 0
    audit = cli("audit", "verify")
    assert audit.exit_code == 0, audit.output
    cli("pull", "chat@1.0.0", str(out))
    assert _tree(out) == _tree(model)
    again = write_model(out.parent / "model-2", shards=1, rows=128)
    cli("push", str(again), "--name", "chat", "--version", "1.1.0")  # it keeps working
    assert cli("audit", "verify").exit_code == 0


def test_a_sqlite_workspace_restores_from_airlock_db_backup(tmp_path: Path) -> None:
    home = tmp_path / ".airlock"
    cli = Cli(home, {})
    cli("init")
    model = _populate(cli, tmp_path)
    backup = tmp_path / "backup"
    done = cli("db", "backup", str(backup))
    assert "2 blobs" in done.output or "blobs" in done.output
    assert (backup / "catalog.db").is_file() and (backup / "token").is_file()
    refused = cli("db", "backup", str(backup), ok=False)
    assert refused.exit_code == 1 and "not empty" in refused.output

    shutil.rmtree(home)  # the disk is lost
    restored = cli("db", "restore", str(backup))
    assert "airlock verify" in restored.output
    _checks(cli, model, tmp_path / "pulled")
    again = cli("db", "restore", str(backup), ok=False)
    assert again.exit_code == 1 and "not empty" in again.output  # never overwrites


def test_a_damaged_restore_is_caught_by_verify(tmp_path: Path) -> None:
    home = tmp_path / ".airlock"
    cli = Cli(home, {})
    cli("init")
    _populate(cli, tmp_path)
    backup = tmp_path / "backup"
    cli("db", "backup", str(backup))
    blob = next(p for p in sorted((backup / "blobs" / "sha256").glob("*/*")))
    blob.write_bytes(blob.read_bytes() + b"x")  # a backup damaged in storage
    shutil.rmtree(home)
    cli("db", "restore", str(backup))
    assert cli("verify", ok=False).exit_code != 0


@pytest.mark.postgres
def test_a_postgres_catalog_restores_from_pg_dump(tmp_path: Path, pg_url: str) -> None:
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip("pg_dump and pg_restore are not installed")
    home = tmp_path / ".airlock"
    store = tmp_path / "store"  # the blob store lives apart from the catalog, as a bucket would
    cli = Cli(home, {"AIRLOCK_DATABASE_URL": pg_url, "AIRLOCK_STORE_URL": f"file://{store}"})
    cli("init")
    model = _populate(cli, tmp_path)
    dump = tmp_path / "airlock.dump"
    subprocess.run(["pg_dump", "--format=custom", "--file", str(dump), pg_url], check=True)

    import psycopg

    name = f"airlock_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    restored_url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    try:
        subprocess.run(
            ["pg_restore", "--no-owner", "--dbname", restored_url, str(dump)], check=True
        )
        restored = Cli(
            home, {"AIRLOCK_DATABASE_URL": restored_url, "AIRLOCK_STORE_URL": f"file://{store}"}
        )
        assert "current" in restored("db", "current").output
        _checks(restored, model, tmp_path / "pulled")
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
