"""The catalog's connections: pooled reads that cost one round trip, still safe.

On PostgreSQL a read runs in autocommit on a read-only session, so a write slipped into
``read()`` fails instead of committing; a pooled connection the server closed (restart,
``pg_terminate_backend``) is replaced on checkout instead of failing the next read.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import DBAPIError

from airlock.catalog.engine import Database
from airlock.catalog.migrate import upgrade
from airlock.catalog.schema import models


@pytest.fixture
def db(db_url: str) -> Database:
    database = Database.open(db_url)
    upgrade(database)
    yield database  # type: ignore[misc]
    database.dispose()


def _names(db: Database) -> list[str]:
    with db.read() as conn:
        return [r[0] for r in conn.execute(select(models.c.name).order_by(models.c.name))]


def test_a_write_commits_and_every_later_read_sees_it(db: Database) -> None:
    for name in ("a", "b"):
        with db.write() as conn:
            conn.execute(insert(models).values(name=name, created_at=datetime.now(UTC)))
        assert name in _names(db)
    assert _names(db) == ["a", "b"]


@pytest.mark.postgres
def test_a_write_inside_a_read_fails_on_postgresql_instead_of_committing(pg_url: str) -> None:
    db = Database.open(pg_url)
    try:
        upgrade(db)
        with pytest.raises(DBAPIError, match="read-only transaction"), db.read() as conn:
            conn.execute(insert(models).values(name="sneaky", created_at=datetime.now(UTC)))
        assert _names(db) == []
    finally:
        db.dispose()


@pytest.mark.postgres
def test_a_pooled_connection_the_server_closed_is_replaced_before_the_next_read(
    pg_url: str,
) -> None:
    db = Database.open(pg_url)
    try:
        upgrade(db)
        with db.read() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        admin_url = pg_url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(0.2)  # the server's goodbye reaches the idle socket
        with db.read() as conn:
            again = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        assert again != pid
        assert _names(db) == []
    finally:
        db.dispose()


def test_sqlite_reads_reuse_a_pooled_connection(tmp_path: Path) -> None:
    db = Database.open(f"sqlite:///{tmp_path / 'catalog.db'}")
    try:
        upgrade(db)
        with db.read() as conn:
            first = conn.connection.driver_connection
        with db.read() as conn:
            assert conn.connection.driver_connection is first
            # the pragmas set on connect still hold on the reused connection
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
    finally:
        db.dispose()


def _is_open(raw: object) -> bool:
    if isinstance(raw, psycopg.Connection):
        return not raw.closed
    try:
        raw.execute("SELECT 1")  # type: ignore[attr-defined]
    except sqlite3.ProgrammingError:  # "Cannot operate on a closed database."
        return False
    return True


def test_a_connection_in_use_at_dispose_is_closed_when_it_comes_back(db_url: str) -> None:
    db = Database.open(db_url)
    kept = db.engine.connect()  # e.g. a request still running while the server shuts down
    kept.execute(text("SELECT 1"))
    raw = kept.connection.dbapi_connection
    pooled = db.engine.connect()
    pooled_raw = pooled.connection.dbapi_connection
    pooled.close()
    assert _is_open(pooled_raw)  # returned before the dispose: kept in the pool for reuse
    db.dispose()
    assert _is_open(raw)  # in use: the dispose does not pull it from under its user
    kept.close()
    assert not _is_open(raw)  # back after the dispose: closed, not left to the GC
