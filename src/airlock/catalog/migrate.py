"""Bring a catalog database to the newest schema with Alembic (re-runnable)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text

from airlock.catalog.engine import Database

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


@functools.cache
def head_revisions() -> frozenset[str]:
    """The newest revision of every branch (features add their tables on their own branch).

    Read from the migration files' ``revision``/``down_revision``/``depends_on`` assignments
    (Alembic counts a revision another depends on as no head of its own) without
    importing Alembic, so that opening an up-to-date catalog stays fast for the CLI.
    """
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        for node in ast.parse(path.read_text("utf-8")).body:
            if not isinstance(node, ast.Assign) or len(node.targets) != 1:
                continue
            target = node.targets[0]
            names = ("revision", "down_revision", "depends_on")
            if not isinstance(target, ast.Name) or target.id not in names:
                continue
            value = ast.literal_eval(node.value)
            values = value if isinstance(value, tuple | list) else (value,)
            bucket = revisions if target.id == "revision" else parents
            bucket.update(v for v in values if v)
    return frozenset(revisions - parents)


def current_revisions(db: Database) -> frozenset[str]:
    with db.read() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return frozenset()
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        return frozenset(str(r[0]) for r in rows)


def upgrade(db: Database) -> bool:
    """Apply pending migrations; returns True when anything was applied."""
    if current_revisions(db) == head_revisions():
        return False
    from alembic import command

    with db.write() as conn:
        cfg = _config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
    return True
