"""The migrations and ``catalog/schema.py`` describe the same schema.

A fresh SQLite file and a fresh PostgreSQL database are migrated to the heads
(``alembic upgrade heads``, as ``Workspace.open`` does), then Alembic's
autogenerate compares what the database holds with the SQLAlchemy metadata the
code queries through: tables, columns, types, nullability, server defaults,
indexes, unique and foreign-key constraints. Any difference fails with the list of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from airlock.catalog import migrate
from airlock.catalog.engine import Database, make_engine
from airlock.catalog.schema import metadata

OPTS = {"compare_type": True, "compare_server_default": True}


def _differences(url: str) -> list[Any]:
    db = Database(make_engine(url))
    try:
        assert migrate.upgrade(db)
        assert migrate.current_revisions(db) == migrate.head_revisions()
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts=OPTS)
            return list(compare_metadata(context, metadata))
    finally:
        db.dispose()


def test_migrated_sqlite_matches_the_schema(tmp_path: Path) -> None:
    assert _differences(f"sqlite:///{tmp_path / 'catalog.db'}") == []


@pytest.mark.postgres
def test_migrated_postgresql_matches_the_schema(pg_url: str) -> None:
    assert _differences(pg_url) == []


def test_a_difference_is_seen(tmp_path: Path) -> None:
    """The comparison is not blind: a column the schema lacks is reported."""
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    _differences(url)
    db = Database(make_engine(url))
    try:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE models ADD COLUMN stray TEXT")
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts=OPTS)
            diff = compare_metadata(context, metadata)
    finally:
        db.dispose()
    assert [(d[0], d[2], d[3].name) for d in diff] == [("remove_column", "models", "stray")]
