"""Gateway keys: which clients may call a service's ``/v1`` endpoints, and how.

Like LiteLLM's virtual keys: an operator creates a key for one service with a
name, optional limits (requests and tokens per minute), scopes (may it pin a
release, opt a user out, send feedback) and an optional expiry. The secret
(``ak-<id>-<random>``) is shown once; the catalog keeps its SHA-256. Creating and
revoking are governed mutations (operators and admins) with an audit event.

Gateways read the keys through :meth:`GatewayKeys.snapshot` whenever the
``keys`` sync version changes (see :mod:`airlock.catalog.gateway_keys`), so a
revocation reaches every replica within a sync period.

Once any key was ever created for a service, its requests need a valid key
(revoking the last key does not reopen it). A service without keys is open only
when the gateway runs in open mode: on loopback by default, elsewhere only with
``--insecure-open`` (:meth:`GatewayKeys.check_exposure` refuses the rest).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from airlock import audit
from airlock.catalog import gateway_keys as sql
from airlock.catalog import serving as serving_sql
from airlock.core.gateway_keys import (
    GatewayKey,
    KeyScopes,
    KeyState,
    check_key_id,
    check_limit,
    hash_secret,
    is_loopback,
    new_key,
    parse_expiry,
)
from airlock.core.names import check_name
from airlock.core.paging import Page, cursor_time, decode_cursor, page_limit, page_of
from airlock.core.roles import Action
from airlock.errors import Conflict, InvalidInput, NotFound
from airlock.services.access import authorize
from airlock.services.identity import Actor
from airlock.services.workspace import Workspace

RESPONSE_SECRET = "response-ids"


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key: ``secret`` is shown once and never stored."""

    key: GatewayKey
    secret: str


@dataclass(frozen=True, slots=True)
class KeyInfo:
    key: GatewayKey
    state: KeyState

    def to_dict(self) -> dict[str, object]:
        k = self.key
        return {
            "id": k.id,
            "service": k.service,
            "name": k.name,
            "state": self.state,
            "scopes": list(k.scopes.names()),
            "rpm": k.rpm,
            "tpm": k.tpm,
            "created_at": k.created_at.isoformat(),
            "created_by": k.created_by,
            "expires_at": k.expires_at.isoformat() if k.expires_at else None,
            "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            "revoked_by": k.revoked_by,
        }


class GatewayKeys:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.db = workspace.db

    # -- changing -----------------------------------------------------------------------
    def create(
        self,
        *,
        service: str,
        name: str,
        actor: Actor,
        scopes: KeyScopes = KeyScopes(),
        rpm: int | None = None,
        tpm: int | None = None,
        expires: str | datetime | None = None,
        reason: str = "",
    ) -> IssuedKey:
        check_name(service, "service name")
        check_name(name, "key name")
        rpm = check_limit(rpm, "--rpm (requests per minute)")
        tpm = check_limit(tpm, "--tpm (tokens per minute)")
        now = datetime.now(UTC)
        expires_at = _expiry(expires, now)
        authorize(self.db, actor, Action.GATEWAY_KEY_CREATE, f"service:{service}")
        key_id, secret = new_key()
        key = GatewayKey(
            id=key_id,
            service=service,
            name=name,
            secret_hash=hash_secret(secret),
            scopes=scopes,
            rpm=rpm,
            tpm=tpm,
            created_at=now,
            created_by=actor.name,
            expires_at=expires_at,
        )
        with self.db.write() as conn:
            if serving_sql.get(conn, service) is None:
                raise NotFound(
                    f"no service named {service!r}",
                    hint="run `airlock service ls`; keys belong to one service",
                )
            if sql.key_named(conn, service, name) is not None:
                raise Conflict(
                    f"service {service} already has a gateway key named {name!r}",
                    hint="pick another name; `airlock gateway-key ls --all` lists them",
                )
            sql.insert_key(conn, key)
            audit.append(
                conn,
                actor=actor.name,
                action="gateway_key.create",
                subject=f"gateway_key:{key_id}",
                details={
                    "service": service,
                    "name": name,
                    "scopes": list(scopes.names()),
                    "rpm": rpm,
                    "tpm": tpm,
                    "expires_at": expires_at.isoformat() if expires_at else None,
                    "reason": reason,
                },
            )
        return IssuedKey(key, secret)

    def revoke(self, key_id: str, *, actor: Actor, reason: str = "") -> KeyInfo:
        """Revoke a key at once (every gateway stops accepting it within a sync period)."""
        key_id = check_key_id(key_id)
        authorize(self.db, actor, Action.GATEWAY_KEY_REVOKE, f"gateway_key:{key_id}")
        now = datetime.now(UTC)
        with self.db.write() as conn:
            row = sql.key(conn, key_id)
            if row is None:
                raise NotFound(
                    f"no gateway key {key_id}", hint="run `airlock gateway-key ls --all`"
                )
            if sql.revoke_key(conn, key_id, by=actor.name, at=now):
                audit.append(
                    conn,
                    actor=actor.name,
                    action="gateway_key.revoke",
                    subject=f"gateway_key:{key_id}",
                    details={"service": row.service, "name": row.name, "reason": reason},
                )
            row = sql.key(conn, key_id)
            assert row is not None
        return KeyInfo(row, row.state(now))

    # -- reading ------------------------------------------------------------------------
    def list(self, *, service: str | None = None, include_inactive: bool = False) -> list[KeyInfo]:
        now = datetime.now(UTC)
        with self.db.read() as conn:
            rows = sql.keys(conn, service=service)
        infos = [KeyInfo(k, k.state(now)) for k in rows]
        return infos if include_inactive else [i for i in infos if i.state == "active"]

    def page(
        self,
        *,
        service: str | None = None,
        include_inactive: bool = False,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[KeyInfo]:
        """``list`` a page at a time, by service then creation (keyset on service, created_at
        and id)."""
        size = page_limit(limit)
        after = decode_cursor(cursor, arity=3)
        key = (str(after[0]), cursor_time(after[1]), str(after[2])) if after else None
        now = datetime.now(UTC)
        with self.db.read() as conn:
            rows = sql.key_page(
                conn,
                service=service,
                active_at=None if include_inactive else now,
                after=key,
                limit=size + 1,
            )
        infos = [KeyInfo(k, k.state(now)) for k in rows]
        return page_of(
            infos, size, lambda i: [i.key.service, i.key.created_at.isoformat(), i.key.id]
        )

    def get(self, key_id: str) -> KeyInfo:
        key_id = check_key_id(key_id)
        with self.db.read() as conn:
            row = sql.key(conn, key_id)
        if row is None:
            raise NotFound(f"no gateway key {key_id}", hint="run `airlock gateway-key ls --all`")
        return KeyInfo(row, row.state(datetime.now(UTC)))

    # -- what gateways read ------------------------------------------------------------
    def snapshot(self) -> tuple[GatewayKey, ...]:
        """Every key (revoked and expired included: a service that had keys stays closed)."""
        with self.db.read() as conn:
            return tuple(sql.keys(conn))

    def versions(self) -> dict[str, int]:
        """The sync versions (``keys``, ``opt_outs:<service>``) a gateway polls each tick."""
        with self.db.read() as conn:
            return sql.versions(conn)

    def response_secret(self) -> bytes:
        """The fleet's HMAC secret for response ids; created by the first gateway to ask."""
        with self.db.read() as conn:
            found = sql.secret(conn, RESPONSE_SECRET)
        if found is None:
            with self.db.write() as conn:
                sql.insert_secret_once(
                    conn, RESPONSE_SECRET, secrets.token_hex(32), at=datetime.now(UTC)
                )
                found = sql.secret(conn, RESPONSE_SECRET)
        assert found is not None
        return bytes.fromhex(found)

    def check_exposure(
        self, host: str, *, insecure_open: bool, services: tuple[str, ...] | None = None
    ) -> bool:
        """Whether the gateway may serve services without keys (open mode) on ``host``.

        Loopback: yes. Any other address: only with ``insecure_open``; without it, a
        gateway with no active key at all would be closed to everyone, so it refuses to
        start (``InvalidInput``) and says how to create a key.
        """
        if is_loopback(host) or insecure_open:
            return True
        now = datetime.now(UTC)
        active = [
            k
            for k in self.snapshot()
            if k.state(now) == "active" and (services is None or k.service in services)
        ]
        if not active:
            raise InvalidInput(
                f"refusing to serve the gateway open on {host}: no gateway key exists, so "
                "anyone who can reach the port could call, pin, opt out and send feedback",
                hint="create a key first (`airlock gateway-key create --service chat --name "
                "app`), serve on 127.0.0.1, or pass --insecure-open to accept the risk",
            )
        return False


def _expiry(expires: str | datetime | None, now: datetime) -> datetime | None:
    if expires is None or expires == "":
        return None
    if isinstance(expires, datetime):
        when = expires.replace(tzinfo=UTC) if expires.tzinfo is None else expires
        if when <= now:
            raise InvalidInput("the expiry is in the past", hint="give a future date/time")
        return when.astimezone(UTC)
    return parse_expiry(expires, now)


__all__ = ["RESPONSE_SECRET", "GatewayKeys", "IssuedKey", "KeyInfo"]
