"""Open the catalog database: SQLite (WAL, foreign keys) by default, PostgreSQL for teams."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from airlock.errors import InvalidInput, ServiceUnavailable


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` and pick the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if url.startswith(("sqlite:", "postgresql+psycopg:")):
        return url
    raise InvalidInput(
        f"unsupported database URL: {url.split('@')[-1]!r}",
        hint="use sqlite:///path/catalog.db or postgresql://user@host/db",
    )


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def make_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, poolclass=NullPool, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (pysqlite's implicit transactions are wrong
        # for us), then set WAL, foreign keys and a busy timeout for concurrent writers.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the database lock up front, so two writers never deadlock
        # on a read-then-write upgrade (and the audit chain appends in order).
        mode = "IMMEDIATE" if conn.get_execution_options().get("airlock_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """An engine plus the two ways to use it: ``read()`` and ``write()`` (one transaction)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    @classmethod
    def open(cls, url: str) -> Database:
        return cls(make_engine(url))

    @contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise _unavailable(exc) from exc

    @contextmanager
    def write(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(airlock_write=True)
                with conn.begin():
                    yield conn
        except OperationalError as exc:
            raise _unavailable(exc) from exc

    def dispose(self) -> None:
        self.engine.dispose()


def _unavailable(exc: OperationalError) -> ServiceUnavailable:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    return ServiceUnavailable(
        f"the catalog database failed: {text.strip().splitlines()[0]}",
        hint="check AIRLOCK_DATABASE_URL and that the database server is running",
    )
