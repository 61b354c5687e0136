"""SQL for gateway keys, the fleet's shared secrets, and the versions gateways poll.

``gateway_sync_versions`` holds one counter per topic (``keys``,
``opt_outs:<service>``); a change bumps its topic in the same transaction, and
every gateway polls the small table each tick (and, on PostgreSQL, is woken by
a NOTIFY on the plan channel: :mod:`airlock.catalog.notify`, which also names the
topics), so a revoked key or a new opt-out reaches every replica within one sync
period.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, and_, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from airlock.catalog.notify import KEYS_TOPIC, notify, opt_outs_topic
from airlock.catalog.schema import gateway_keys, gateway_secrets, gateway_sync_versions
from airlock.core.gateway_keys import GatewayKey, KeyScopes

_COLUMNS = (
    gateway_keys.c.id,
    gateway_keys.c.service,
    gateway_keys.c.name,
    gateway_keys.c.secret_hash,
    gateway_keys.c.can_pin,
    gateway_keys.c.can_opt_out,
    gateway_keys.c.can_feedback,
    gateway_keys.c.rpm,
    gateway_keys.c.tpm,
    gateway_keys.c.created_at,
    gateway_keys.c.created_by,
    gateway_keys.c.expires_at,
    gateway_keys.c.revoked_at,
    gateway_keys.c.revoked_by,
)


def _upsert(conn: Connection, table: Table) -> Any:
    """An INSERT that takes ``ON CONFLICT`` (PostgreSQL and SQLite both have it)."""
    if conn.dialect.name == "postgresql":
        return pg_insert(table)
    return sqlite_insert(table)


def _key(r: Any) -> GatewayKey:
    return GatewayKey(
        id=r.id,
        service=r.service,
        name=r.name,
        secret_hash=r.secret_hash,
        scopes=KeyScopes(bool(r.can_pin), bool(r.can_opt_out), bool(r.can_feedback)),
        rpm=None if r.rpm is None else int(r.rpm),
        tpm=None if r.tpm is None else int(r.tpm),
        created_at=r.created_at,
        created_by=r.created_by,
        expires_at=r.expires_at,
        revoked_at=r.revoked_at,
        revoked_by=r.revoked_by,
    )


def insert_key(conn: Connection, key: GatewayKey) -> None:
    conn.execute(
        insert(gateway_keys).values(
            id=key.id,
            service=key.service,
            name=key.name,
            secret_hash=key.secret_hash,
            can_pin=key.scopes.can_pin,
            can_opt_out=key.scopes.can_opt_out,
            can_feedback=key.scopes.can_feedback,
            rpm=key.rpm,
            tpm=key.tpm,
            created_at=key.created_at,
            created_by=key.created_by,
            expires_at=key.expires_at,
        )
    )
    bump(conn, KEYS_TOPIC)


def key(conn: Connection, key_id: str) -> GatewayKey | None:
    r = conn.execute(select(*_COLUMNS).where(gateway_keys.c.id == key_id)).first()
    return _key(r) if r else None


def key_named(conn: Connection, service: str, name: str) -> GatewayKey | None:
    r = conn.execute(
        select(*_COLUMNS).where(gateway_keys.c.service == service, gateway_keys.c.name == name)
    ).first()
    return _key(r) if r else None


def keys(conn: Connection, *, service: str | None = None) -> list[GatewayKey]:
    q = select(*_COLUMNS).order_by(
        gateway_keys.c.service, gateway_keys.c.created_at, gateway_keys.c.id
    )
    if service is not None:
        q = q.where(gateway_keys.c.service == service)
    return [_key(r) for r in conn.execute(q).all()]


def key_page(
    conn: Connection,
    *,
    service: str | None = None,
    active_at: datetime | None = None,
    after: tuple[str, datetime, str] | None = None,
    limit: int,
) -> list[GatewayKey]:
    """Up to ``limit`` keys in (service, created_at, id) order after ``after``; ``active_at``:
    only those neither revoked nor expired then (a service's keys are few: no extra index)."""
    k = gateway_keys.c
    q = select(*_COLUMNS).order_by(k.service, k.created_at, k.id).limit(limit)
    if service is not None:
        q = q.where(k.service == service)
    if active_at is not None:
        q = q.where(k.revoked_at.is_(None), or_(k.expires_at.is_(None), k.expires_at > active_at))
    if after is not None:
        svc, at, last = after
        q = q.where(
            or_(
                k.service > svc,
                and_(
                    k.service == svc, or_(k.created_at > at, and_(k.created_at == at, k.id > last))
                ),
            )
        )
    return [_key(r) for r in conn.execute(q).all()]


def revoke_key(conn: Connection, key_id: str, *, by: str, at: datetime) -> bool:
    result = conn.execute(
        update(gateway_keys)
        .where(gateway_keys.c.id == key_id, gateway_keys.c.revoked_at.is_(None))
        .values(revoked_at=at, revoked_by=by)
    )
    if result.rowcount:
        bump(conn, KEYS_TOPIC)
    return bool(result.rowcount)


# -- the fleet's shared secrets -------------------------------------------------------------


def secret(conn: Connection, name: str) -> str | None:
    r = conn.execute(select(gateway_secrets.c.secret).where(gateway_secrets.c.name == name)).first()
    return str(r[0]) if r else None


def insert_secret_once(conn: Connection, name: str, value: str, *, at: datetime) -> None:
    """Store ``value`` under ``name`` unless a secret is there already (first writer wins)."""
    conn.execute(
        _upsert(conn, gateway_secrets)
        .values(name=name, secret=value, created_at=at)
        .on_conflict_do_nothing(index_elements=["name"])
    )


# -- versions gateways poll -----------------------------------------------------------------


def bump(conn: Connection, topic: str) -> None:
    """Count one change of ``topic`` (an upsert, safe under concurrent writers)."""
    t = gateway_sync_versions
    stmt = _upsert(conn, t).values(topic=topic, version=1)
    conn.execute(
        stmt.on_conflict_do_update(index_elements=["topic"], set_={"version": t.c.version + 1})
    )
    notify(conn, topic)  # wakes listening gateways (catalog.notify)


def versions(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(gateway_sync_versions.c.topic, gateway_sync_versions.c.version))
    return {str(t): int(v) for t, v in rows.all()}


__all__ = [
    "KEYS_TOPIC",
    "bump",
    "insert_key",
    "insert_secret_once",
    "key",
    "key_named",
    "keys",
    "opt_outs_topic",
    "revoke_key",
    "secret",
    "versions",
]
