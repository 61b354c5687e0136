"""Which schema a process serves: a newer one is refused, an older PostgreSQL catalog waits
for ``airlock db upgrade`` (SQLite upgrades on open), and the commands say what ran."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from airlock.catalog import migrate
from airlock.catalog.engine import Database
from airlock.config import Settings
from airlock.errors import Conflict
from airlock.services.workspace import Workspace
from airlock_testkit import Cli


def _at(url: str, *revisions: str) -> None:
    db = Database.open(url)
    try:
        with db.write() as conn:
            cfg = migrate._config()
            cfg.attributes["connection"] = conn
            for rev in revisions:
                command.upgrade(cfg, rev)
    finally:
        db.dispose()


def _cli(settings: Settings, **env: str) -> Cli:
    extra = {"AIRLOCK_DATABASE_URL": settings.catalog_url, **env}
    return Cli(settings.home, extra)


def _future(url: str) -> None:
    """As if a newer Airlock had migrated the database past what this code knows."""
    db = Database.open(url)
    try:
        with db.write() as conn:
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES ('0099_future')"))
    finally:
        db.dispose()


def test_an_older_sqlite_catalog_is_upgraded_on_open(sqlite_settings: Settings) -> None:
    sqlite_settings.home.mkdir(parents=True)
    _at(sqlite_settings.catalog_url, "0004_rollouts")
    with Workspace.open(sqlite_settings) as ws:
        assert migrate.current_revisions(ws.db) == migrate.head_revisions()


@pytest.mark.postgres
def test_an_older_postgres_catalog_waits_for_db_upgrade(tmp_path: Path, pg_url: str) -> None:
    settings = Settings(home=tmp_path / ".airlock", database_url=pg_url, user="alice")
    settings.home.mkdir()
    _at(pg_url, "0004_rollouts")
    with pytest.raises(Conflict) as refused:
        Workspace.open(settings)
    assert "airlock db upgrade" in refused.value.hint
    assert "0005_integrity" in refused.value.message

    cli = _cli(settings)
    current = cli("db", "current", "--json", ok=False)
    assert current.exit_code == 1
    report = json.loads(current.stdout)
    assert report["state"] == "behind" and report["current"] == ["0004_rollouts"]
    assert "0003_governance" in report["pending"] and report["dialect"] == "postgresql"
    served = cli("service", "ls", ok=False)
    assert served.exit_code == 1 and "airlock db upgrade" in served.output

    dry = cli("db", "upgrade", "--dry-run")
    assert "dry run" in dry.output and "0005_integrity" in dry.output
    assert json.loads(cli("db", "current", "--json", ok=False).stdout)["state"] == "behind"

    done = cli("db", "upgrade")
    assert "applied" in done.output and "0009_transcripts" in done.output
    assert json.loads(cli("db", "current", "--json").stdout)["state"] == "current"
    assert "already current" in cli("db", "upgrade").output
    with Workspace.open(settings) as ws:
        assert migrate.current_revisions(ws.db) == migrate.head_revisions()


@pytest.mark.postgres
def test_auto_migrate_lets_a_process_upgrade_postgres(tmp_path: Path, pg_url: str) -> None:
    settings = Settings(home=tmp_path / ".airlock", database_url=pg_url, user="alice")
    settings.home.mkdir()
    _at(pg_url, "0004_rollouts")
    assert Settings.from_env({"AIRLOCK_AUTO_MIGRATE": "1", "AIRLOCK_HOME": "x"}).auto_migrate
    with Workspace.open(replace(settings, auto_migrate=True)) as ws:
        assert migrate.current_revisions(ws.db) == migrate.head_revisions()


def test_a_newer_schema_is_refused_by_name(settings: Settings) -> None:
    Workspace.open(settings, create=True).close()
    _future(settings.catalog_url)
    with pytest.raises(Conflict) as refused:
        Workspace.open(settings)
    assert "0099_future" in refused.value.message
    assert "newer Airlock" in refused.value.message

    cli = _cli(settings)
    upgrade = cli("db", "upgrade", ok=False)
    assert upgrade.exit_code == 1 and "0099_future" in upgrade.output
    current = cli("db", "current", "--json", ok=False)
    assert json.loads(current.stdout)["unknown"] == ["0099_future"]
    gateway = cli("gateway", "--port", "1", ok=False)
    assert gateway.exit_code == 1 and "0099_future" in gateway.output
    controller = cli("controller", "--ticks", "1", ok=False)
    assert controller.exit_code == 1 and "0099_future" in controller.output
