"""Open the catalog database: SQLite (WAL, foreign keys) by default, PostgreSQL for teams."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, RootTransaction, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from airlock.errors import InvalidInput, ServiceUnavailable

log = logging.getLogger("airlock.catalog")

# SQLite under several processes (``serve`` beside a CLI or ``drill --url``): one writer at a
# time. Each attempt to take the write lock waits SQLITE_BUSY_MS inside SQLite; after that a
# writer logs one line and keeps trying, with backoff, for up to WRITE_LOCK_WAIT_S in all.
SQLITE_BUSY_MS = 2_000
WRITE_LOCK_WAIT_S = 120.0


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


def make_engine(url: str, *, busy_ms: int = SQLITE_BUSY_MS, **kwargs: Any) -> Engine:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, poolclass=NullPool, **kwargs)
        _configure_sqlite(engine, busy_ms)
        return engine
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _configure_sqlite(engine: Engine, busy_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (pysqlite's implicit transactions are wrong
        # for us), then set WAL, foreign keys and a busy timeout for concurrent writers.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
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

    def __init__(self, engine: Engine, *, lock_wait: float = WRITE_LOCK_WAIT_S) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.lock_wait = lock_wait

    @classmethod
    def open(
        cls, url: str, *, busy_ms: int = SQLITE_BUSY_MS, lock_wait: float = WRITE_LOCK_WAIT_S
    ) -> Database:
        return cls(make_engine(url, busy_ms=busy_ms), lock_wait=lock_wait)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except OperationalError as exc:
            raise _unavailable(exc) from exc

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction; on SQLite it waits (bounded) for another process's writer."""
        try:
            conn, transaction = self._begin_write()
            with conn, transaction:
                yield conn
        except OperationalError as exc:
            raise _unavailable(exc) from exc

    def _begin_write(self) -> tuple[Connection, RootTransaction]:
        """A connection whose write transaction has begun.

        On SQLite the BEGIN IMMEDIATE takes the write lock up front, so once it succeeds
        nothing later in the transaction waits for another writer: retrying the BEGIN
        alone is safe. The first failed attempt logs one line; later ones back off.
        """
        started = time.monotonic()
        delay = 0.05
        logged = False
        while True:
            conn = self.engine.connect().execution_options(airlock_write=True)
            try:
                return conn, conn.begin()
            except OperationalError as exc:
                conn.close()
                waited = time.monotonic() - started
                if not _is_locked(exc) or waited + delay > self.lock_wait:
                    raise
                if not logged:
                    logged = True
                    log.warning(
                        "%s the catalog is locked by another writer (another airlock "
                        "process?); waiting for it, up to %.0f s",
                        datetime.now(UTC).isoformat(timespec="seconds"),
                        self.lock_wait,
                    )
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def dispose(self) -> None:
        self.engine.dispose()


def _is_locked(exc: OperationalError) -> bool:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    return "database is locked" in text or "database is busy" in text


def _unavailable(exc: OperationalError) -> ServiceUnavailable:
    text = str(exc.orig) if exc.orig is not None else str(exc)
    if _is_locked(exc):
        return ServiceUnavailable(
            f"the catalog database stayed locked by another writer: {text.strip().splitlines()[0]}",
            hint="another airlock process held the SQLite write lock too long; use PostgreSQL "
            "(AIRLOCK_DATABASE_URL) for several processes that write at once",
        )
    return ServiceUnavailable(
        f"the catalog database failed: {text.strip().splitlines()[0]}",
        hint="check AIRLOCK_DATABASE_URL and that the database server is running",
    )
