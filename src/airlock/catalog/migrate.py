"""Bring a catalog database to the newest schema with Alembic (re-runnable), and check that
the schema it has is one this code knows.

::

    schema_status(db)        which revisions the database is at, which are pending,
                             which it has that this code does not know (a newer Airlock)
    ensure_schema(db, ...)   on opening a workspace: refuse a newer schema; create an empty
                             database; upgrade an older SQLite catalog (zero set-up); on
                             PostgreSQL an older schema waits for ``airlock db upgrade``
                             unless ``AIRLOCK_AUTO_MIGRATE=1``
    upgrade(db)              ``alembic upgrade heads`` (``airlock db upgrade``)

Why PostgreSQL waits: several processes (gateway replicas, controllers, the API) share one
database; a migration is an operator's step, taken once, after a backup, before the new
code starts everywhere — not a side effect of whichever process starts first.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text

from airlock.catalog.engine import Database
from airlock.errors import Conflict

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
AUTO_MIGRATE_ENV = "AIRLOCK_AUTO_MIGRATE"


def _config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


# ``revision = "0005_integrity"``, ``down_revision = ...``, ``depends_on = ...``: one line each,
# at the top of the migration files (Alembic's template); anything else is parsed in full.
_ASSIGNMENT = re.compile(
    r"^(revision|down_revision|depends_on)[ \t]*=[ \t]*(.+?)[ \t]*(?:#.*)?$", re.MULTILINE
)


@functools.cache
def _graph() -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Every revision with its parents (``down_revision`` and ``depends_on``), in file order.

    Read from the migration files' assignments without importing Alembic, so that opening
    an up-to-date catalog stays fast for the CLI.
    """
    out: list[tuple[str, tuple[str, ...]]] = []
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        text = path.read_text("utf-8")
        try:
            found = [(m[1], ast.literal_eval(m[2])) for m in _ASSIGNMENT.finditer(text)]
        except (ValueError, SyntaxError):  # a value over several lines: read the whole file
            found = _assignments(text)
        if len({name for name, _ in found}) != len(found):  # one in a docstring? be sure
            found = _assignments(text)
        revision: str | None = None
        parents: list[str] = []
        for name, value in found:
            values = value if isinstance(value, tuple | list) else (value,)
            if name == "revision":
                revision = str(value)
            else:
                parents.extend(str(v) for v in values if v)
        if revision is not None:
            out.append((revision, tuple(parents)))
    return tuple(out)


def _assignments(text: str) -> list[tuple[str, object]]:
    """``revision``, ``down_revision`` and ``depends_on`` of a module, parsed in full."""
    found: list[tuple[str, object]] = []
    for node in ast.parse(text).body:
        if not isinstance(node, ast.Assign) or len(node.targets) != 1:
            continue
        target = node.targets[0]
        if isinstance(target, ast.Name) and target.id in (
            "revision",
            "down_revision",
            "depends_on",
        ):
            found.append((target.id, ast.literal_eval(node.value)))
    return found


def known_revisions() -> tuple[str, ...]:
    """Every revision this code ships, in file order."""
    return tuple(rev for rev, _ in _graph())


@functools.cache
def head_revisions() -> frozenset[str]:
    """The newest revision of every branch (features add their tables on their own branch).

    Alembic counts a revision another depends on as no head of its own."""
    graph = _graph()
    parents = {p for _, ps in graph for p in ps}
    return frozenset(rev for rev, _ in graph if rev not in parents)


def _ancestors(revisions: frozenset[str]) -> set[str]:
    parents = dict(_graph())
    seen: set[str] = set()
    todo = list(revisions)
    while todo:
        rev = todo.pop()
        if rev in seen or rev not in parents:
            continue
        seen.add(rev)
        todo.extend(parents[rev])
    return seen


def current_revisions(db: Database) -> frozenset[str]:
    with db.read() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return frozenset()
        rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        return frozenset(str(r[0]) for r in rows)


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where a catalog's schema stands against the migrations this code ships."""

    current: frozenset[str]
    heads: frozenset[str]
    pending: tuple[str, ...]
    """Revisions this code would apply, in order."""
    unknown: frozenset[str]
    """Revisions the database is at that this code does not know (a newer Airlock's)."""

    @property
    def empty(self) -> bool:
        return not self.current

    @property
    def up_to_date(self) -> bool:
        return not self.pending and not self.unknown

    @property
    def state(self) -> str:
        if self.unknown:
            return "newer"
        if self.empty:
            return "empty"
        return "behind" if self.pending else "current"


def schema_status(db: Database) -> SchemaStatus:
    current = current_revisions(db)
    known = set(known_revisions())
    unknown = frozenset(current - known)
    applied = _ancestors(frozenset(current & known))
    pending = tuple(rev for rev in known_revisions() if rev not in applied)
    return SchemaStatus(current, head_revisions(), pending, unknown)


def refuse_newer(status: SchemaStatus) -> None:
    """A database migrated by a newer Airlock: this code must not touch it."""
    if not status.unknown:
        return
    names = ", ".join(sorted(status.unknown))
    raise Conflict(
        f"the catalog database is at schema revision {names}, which this Airlock does not "
        f"know: a newer Airlock migrated it (this one knows up to {', '.join(sorted(status.heads))})",
        hint="run the Airlock version that migrated it (upgrade this installation), or restore "
        "the backup taken before that migration (docs/deploy.md)",
    )


def ensure_schema(db: Database, *, auto_migrate: bool = False) -> SchemaStatus:
    """Called when a workspace opens: serve only a schema this code knows, fully migrated.

    * newer (a revision this code does not know): refused, naming the revision;
    * empty (a new database): created, so the first ``airlock init`` needs nothing else;
    * older: upgraded on SQLite (one machine, zero set-up) or with ``auto_migrate``; on
      PostgreSQL refused with "run ``airlock db upgrade``".
    """
    status = schema_status(db)
    refuse_newer(status)
    if status.up_to_date:
        return status
    if status.empty or auto_migrate or db.dialect == "sqlite":
        upgrade(db)
        return schema_status(db)
    raise Conflict(
        f"the catalog database's schema is older than this Airlock: {len(status.pending)} "
        f"migration(s) pending ({', '.join(status.pending)})",
        hint="back it up, then run `airlock db upgrade` once (docs/deploy.md); or set "
        f"{AUTO_MIGRATE_ENV}=1 to let any process migrate on start",
    )


def upgrade(db: Database) -> bool:
    """Apply pending migrations; returns True when anything was applied.

    Refuses a database at a revision this code does not know."""
    status = schema_status(db)
    refuse_newer(status)
    if status.current == status.heads:
        return False
    from alembic import command

    with db.write() as conn:
        cfg = _config()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
    return True
