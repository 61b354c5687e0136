"""SQLite with several writers (``serve`` beside a CLI or ``drill --url``): a writer that
finds the catalog locked waits, says so once, and then succeeds; no telemetry is lost."""

from __future__ import annotations

import logging
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from airlock.catalog.engine import Database
from airlock.catalog.migrate import upgrade
from airlock.catalog.schema import release_telemetry
from airlock.config import Settings
from airlock.core.telemetry import TelemetryRecord
from airlock.errors import ServiceUnavailable
from airlock.services.serving import Serving
from airlock.services.workspace import Workspace


class _Seen(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self.waiting = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        if "locked by another writer" in record.getMessage():
            self.waiting.set()


@pytest.fixture
def seen() -> object:
    handler = _Seen()
    logger = logging.getLogger("airlock.catalog")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _hold_write_lock(db: Database, release: threading.Event, held: threading.Event) -> None:
    with db.write() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS lock_holder (x INTEGER)")
        held.set()
        release.wait(timeout=60)


def test_a_flush_waits_for_another_writer_and_loses_nothing(tmp_path: Path, seen: _Seen) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    holder = Database.open(url)
    upgrade(holder)
    # The gateway's side: a short busy timeout per attempt, so the wait shows in the log.
    ws = Workspace.open(Settings(home=tmp_path / ".airlock", database_url=url), create=True)
    ws.db.dispose()
    ws.db = Database.open(url, busy_ms=50)
    held = threading.Event()
    thread = threading.Thread(target=_hold_write_lock, args=(holder, seen.waiting, held))
    thread.start()
    try:
        assert held.wait(timeout=30)
        now = datetime.now(UTC)
        records = [
            TelemetryRecord(
                "chat",
                "chat@1.0.0",
                "live",
                now + timedelta(seconds=i),
                now + timedelta(seconds=i + 1),
                requests=10 + i,
            )
            for i in range(5)
        ]
        Serving(ws).flush(records, gateway="gw-1")  # blocks until the holder lets go
    finally:
        seen.waiting.set()
        thread.join()
    with ws.db.read() as conn:
        stored = conn.execute(select(func.count(), func.sum(release_telemetry.c.requests))).one()
    assert tuple(stored) == (5, sum(10 + i for i in range(5)))
    waits = [line for line in seen.lines if "locked by another writer" in line]
    assert len(waits) == 1
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00 ", waits[0])
    ws.db.dispose()
    holder.dispose()


def test_a_writer_gives_up_after_its_bound_with_one_clear_error(
    tmp_path: Path, seen: _Seen
) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    holder = Database.open(url)
    upgrade(holder)
    impatient = Database.open(url, busy_ms=20, lock_wait=0.3)
    release, held = threading.Event(), threading.Event()
    thread = threading.Thread(target=_hold_write_lock, args=(holder, release, held))
    thread.start()
    try:
        assert held.wait(timeout=30)
        with (
            pytest.raises(ServiceUnavailable, match="locked by another writer") as caught,
            impatient.write() as conn,
        ):
            conn.exec_driver_sql("SELECT 1")
        assert "PostgreSQL" in (caught.value.hint or "")
    finally:
        release.set()
        thread.join()
    impatient.dispose()
    holder.dispose()
