"""Change notices between processes: PostgreSQL NOTIFY (writers) and LISTEN (gateways).

One channel, :data:`PLAN_CHANNEL`, carries every notice a gateway acts on:

* a committed plan (``"<service>:<generation>"``, sent by :func:`notify_plan` in the
  transaction that records the plan);
* a bumped sync topic (:data:`KEYS_TOPIC`, :func:`opt_outs_topic`), sent by
  ``catalog.gateway_keys.bump`` when a gateway key or an opt-out list changes.

A NOTIFY is delivered at commit, and only on PostgreSQL; on SQLite these are
no-ops and gateways see changes by polling. :class:`ChangeListener` is the other
end: it LISTENs on its own connection and calls back on every notice,
reconnecting with back-off when the connection is lost (the poll stays as the
safety net).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy import Connection, text

from airlock.catalog.engine import Database
from airlock.core.traffic import TrafficPlan

log = logging.getLogger("airlock.catalog.notify")

PLAN_CHANNEL = "airlock_plans"
KEYS_TOPIC = "keys"
_MAX_PAYLOAD = 7000  # PostgreSQL refuses a NOTIFY payload of 8000 bytes or more


def opt_outs_topic(service: str) -> str:
    return f"opt_outs:{service}"


def notify(conn: Connection, payload: str) -> None:
    """Tell every listening gateway, at commit (PostgreSQL only; a no-op elsewhere)."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": PLAN_CHANNEL, "payload": payload[:_MAX_PAYLOAD]},
        )


def notify_plan(conn: Connection, plan: TrafficPlan) -> None:
    """Tell every listening gateway that ``plan`` was committed."""
    notify(conn, f"{plan.service}:{plan.generation}")


class ChangeListener:
    """LISTEN on :data:`PLAN_CHANNEL` of a PostgreSQL catalog; ``listen`` runs until cancelled."""

    def __init__(self, db: Database) -> None:
        if db.dialect != "postgresql":
            raise ValueError("LISTEN needs a PostgreSQL catalog")
        self.db = db

    async def listen(
        self,
        on_change: Callable[[str], Awaitable[None]],
        on_listening: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Call ``on_change(payload)`` for every notice; reconnect (backing off) when the
        connection is lost. ``on_listening()`` is called each time the LISTEN is in place
        (after a reconnect the caller re-reads what it may have missed)."""
        import psycopg

        url = self.db.engine.url.set(drivername="postgresql")
        conninfo = url.render_as_string(hide_password=False)
        delay = 0.5
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(conninfo, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {PLAN_CHANNEL}")
                    delay = 0.5
                    if on_listening is not None:
                        await on_listening()
                    async for notice in conn.notifies():
                        await on_change(notice.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any connection failure: back off, the poll still runs
                log.warning(
                    "change listener lost its connection (%s); retrying in %.1f s", exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)


def change_listener(db: Database) -> ChangeListener | None:
    """A listener for ``db``'s notices, or None where there are none (SQLite)."""
    return ChangeListener(db) if db.dialect == "postgresql" else None


__all__ = [
    "KEYS_TOPIC",
    "PLAN_CHANNEL",
    "ChangeListener",
    "change_listener",
    "notify",
    "notify_plan",
    "opt_outs_topic",
]
