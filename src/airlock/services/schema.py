"""The catalog's schema for operators: where it stands, and ``airlock db upgrade``.

Opened without :class:`~airlock.services.workspace.Workspace` (which refuses a schema that
is not current on PostgreSQL): these are the commands that fix that.
"""

from __future__ import annotations

from dataclasses import dataclass

from airlock.catalog import migrate
from airlock.catalog.engine import Database
from airlock.config import Settings


@dataclass(frozen=True, slots=True)
class SchemaReport:
    """Where a catalog's schema stands (``airlock db current``) or what an upgrade did."""

    database: str
    """The catalog URL without credentials."""
    dialect: str
    state: str
    """current, behind, newer or empty."""
    current: tuple[str, ...]
    heads: tuple[str, ...]
    pending: tuple[str, ...]
    unknown: tuple[str, ...]
    applied: tuple[str, ...] = ()
    """What this call migrated (``upgrade``), in order."""


def _where(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{rest.rsplit('@', 1)[-1]}" if sep else url


def _report(settings: Settings, db: Database, applied: tuple[str, ...] = ()) -> SchemaReport:
    status = migrate.schema_status(db)
    return SchemaReport(
        database=_where(settings.catalog_url),
        dialect=db.dialect,
        state=status.state,
        current=tuple(sorted(status.current)),
        heads=tuple(sorted(status.heads)),
        pending=status.pending,
        unknown=tuple(sorted(status.unknown)),
        applied=applied,
    )


def _open(settings: Settings) -> Database:
    if settings.database_url is None and not settings.home.is_dir():
        from airlock.errors import NotFound

        raise NotFound(
            f"no Airlock workspace at {settings.home}",
            hint="run `airlock init` here, or set AIRLOCK_HOME / AIRLOCK_DATABASE_URL",
        )
    return Database.open(settings.catalog_url)


def schema_report(settings: Settings) -> SchemaReport:
    """Where the catalog's schema stands against this code's migrations."""
    db = _open(settings)
    try:
        return _report(settings, db)
    finally:
        db.dispose()


def upgrade_schema(settings: Settings, *, dry_run: bool = False) -> SchemaReport:
    """Apply every pending migration (``alembic upgrade heads``); refuse a newer schema.

    With ``dry_run``, only say what would run."""
    db = _open(settings)
    try:
        before = migrate.schema_status(db)
        migrate.refuse_newer(before)
        if dry_run or not before.pending:
            return _report(settings, db)
        migrate.upgrade(db)
        return _report(settings, db, applied=before.pending)
    finally:
        db.dispose()


__all__ = ["SchemaReport", "schema_report", "upgrade_schema"]
