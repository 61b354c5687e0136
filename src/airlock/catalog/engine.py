"""Open the catalog database: SQLite (WAL, foreign keys) by default, PostgreSQL for teams.

Reads are the hot path (``resolve`` runs on every gateway plan load and every CLI call), so a
read costs as few round trips as it can:

* Connections are pooled on both databases (SQLite too: opening a SQLite connection and
  setting its pragmas costs more than a resolve).
* A read on PostgreSQL runs in autocommit: each statement is its own transaction, exactly
  what a READ COMMITTED transaction gives each statement anyway, without the BEGIN and
  ROLLBACK round trips. The session's ``default_transaction_read_only`` is on, so a write
  slipped into ``read()`` fails instead of committing; ``write()`` begins READ WRITE.
* A pooled PostgreSQL connection is pinged on checkout only when it may be dead: the server
  closed or wrote to it (its socket is readable while idle) or it sat idle a long time;
  otherwise a checkout costs no round trip (``pool_pre_ping`` would cost one per read).
"""

from __future__ import annotations

import contextlib
import logging
import select
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, RootTransaction, create_engine, event
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry, NullPool, PoolProxiedConnection, QueuePool

from airlock.errors import InvalidInput, ServiceUnavailable

log = logging.getLogger("airlock.catalog")

# SQLite under several processes (``serve`` beside a CLI or ``drill --url``): one writer at a
# time. Each attempt to take the write lock waits SQLITE_BUSY_MS inside SQLite; after that a
# writer logs one line and keeps trying, with backoff, for up to WRITE_LOCK_WAIT_S in all.
SQLITE_BUSY_MS = 2_000
WRITE_LOCK_WAIT_S = 120.0
# A pooled PostgreSQL connection idle longer than this is pinged before use (a silent network
# drop leaves no readable socket behind); a fresher one only if its socket is readable.
PING_AFTER_IDLE_S = 30.0
_IDLE_SINCE = "airlock_idle_since"


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
        if _sqlite_file(url):
            # Pooled, with no cap beyond the five kept: the same concurrency as opening a
            # connection per use, without paying for the open and the pragmas each time.
            kwargs.setdefault("poolclass", QueuePool)
            kwargs.setdefault("pool_size", 5)
            kwargs.setdefault("max_overflow", -1)
        else:
            kwargs.setdefault("poolclass", NullPool)
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine, busy_ms)
        return engine
    kwargs.setdefault("pool_size", 5)
    kwargs.setdefault("max_overflow", 10)
    # The most recently used connection first: its backend has the statements prepared and
    # the catalog cached; the others stay idle (and get pinged when they are next used).
    kwargs.setdefault("pool_use_lifo", True)
    connect_args = dict(kwargs.pop("connect_args", {}))
    options = connect_args.get("options", "")
    connect_args["options"] = f"{options} -c default_transaction_read_only=on".strip()
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    _configure_postgresql(engine)
    return engine


def _sqlite_file(url: str) -> bool:
    path = url.split("://", 1)[-1].lstrip("/").split("?", 1)[0]
    return bool(path) and path != ":memory:" and "mode=memory" not in url


def _configure_postgresql(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # The session defaults to read-only (reads run in autocommit); an explicit
        # transaction (``write()``, migrations, COPY) begins READ WRITE.
        dbapi_conn.read_only = False

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(
        dbapi_conn: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
    ) -> None:
        since = record.info.pop(_IDLE_SINCE, None)
        if since is None:  # a new connection: just made
            return
        if time.monotonic() - since < PING_AFTER_IDLE_S and not _readable(dbapi_conn):
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the pool replaces the connection and tries again
            raise DisconnectionError(f"pooled connection is dead: {exc}") from exc


def _readable(dbapi_conn: Any) -> bool:
    """An idle connection's socket has something to read: the server closed it (restart,
    idle timeout, pg_terminate_backend) or sent a notice; a ping sorts it out."""
    try:
        ready, _, _ = select.select([dbapi_conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(ready)


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
        self.disposed = False
        event.listen(engine, "checkin", self._close_when_disposed)

    def _close_when_disposed(self, dbapi_conn: Any, _record: ConnectionPoolEntry) -> None:
        # A connection still in use when the database was disposed (a request or a sync
        # thread finishing during shutdown) is closed when it comes back, not left to the
        # garbage collector with its server session open.
        if self.disposed and dbapi_conn is not None:
            with contextlib.suppress(Exception):
                dbapi_conn.close()

    @classmethod
    def open(
        cls, url: str, *, busy_ms: int = SQLITE_BUSY_MS, lock_wait: float = WRITE_LOCK_WAIT_S
    ) -> Database:
        return cls(make_engine(url, busy_ms=busy_ms), lock_wait=lock_wait)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reads; on PostgreSQL each statement runs on its own (autocommit,
        read-only): one round trip per statement, no BEGIN or ROLLBACK."""
        try:
            with self.engine.connect() as conn:
                if self.dialect == "postgresql":
                    conn = conn.execution_options(isolation_level="AUTOCOMMIT")
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
        """Close the pooled connections; one still in use is closed when it is returned."""
        self.disposed = True
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
