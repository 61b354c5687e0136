"""API tokens: who is calling, with which role. Stored hashed, revocable, optionally expiring.

A token looks like ``alk_3f9a2b1c7d0e_<43 url-safe characters>``: the middle part is
its public id (shown by ``airlock token ls``, named in audit events), the rest is
256 random bits. The catalog keeps only the SHA-256 of the whole token (a
high-entropy secret needs no slow hash), compared in constant time.

The CLI reads its token from ``AIRLOCK_TOKEN``, else from the workspace's
``token`` file (mode 0600), which ``airlock init`` writes for the workspace
owner together with the first admin token. The API takes it as a bearer token.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Connection

from airlock import audit
from airlock.catalog import governance as sql
from airlock.catalog.governance import StoredToken
from airlock.config import TOKEN_ENV as TOKEN_ENV  # re-exported: where callers look for it
from airlock.core.names import check_name
from airlock.core.paging import Page, cursor_time, decode_cursor, page_limit, page_of
from airlock.core.roles import Action, Role, parse_role
from airlock.errors import Forbidden, InvalidInput, NotFound
from airlock.services.access import authorize, forbidden, record_denial
from airlock.services.identity import Actor
from airlock.services.workspace import Workspace

PREFIX = "alk"
TOKEN_FILE = "token"
_TOKEN_RE = re.compile(r"^alk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_DURATION_RE = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: ``secret`` is shown once and never stored."""

    id: str
    user: str
    role: str
    secret: str
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    user: str
    role: str
    note: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    state: str  # active | expired | revoked

    @classmethod
    def of(cls, row: StoredToken, now: datetime) -> TokenInfo:
        if row.revoked_at is not None:
            state = "revoked"
        elif row.expires_at is not None and row.expires_at <= now:
            state = "expired"
        else:
            state = "active"
        return cls(
            row.id,
            row.user,
            row.role,
            row.note,
            row.created_at,
            row.created_by,
            row.expires_at,
            row.revoked_at,
            row.revoked_by,
            state,
        )


def parse_duration(text: str) -> timedelta:
    """``90m``, ``12h``, ``30d``, ``8w`` -> a positive timedelta."""
    m = _DURATION_RE.match(text.strip().lower())
    if not m or int(m.group(1)) == 0:
        raise InvalidInput(
            f"invalid duration {text!r}", hint="use a number and a unit: 90m, 12h, 30d or 8w"
        )
    return timedelta(**{_UNITS[m.group(2)]: int(m.group(1))})


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _new_secret() -> tuple[str, str]:
    token_id = secrets.token_hex(6)
    return token_id, f"{PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"


class Tokens:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.db = workspace.db

    def create(
        self,
        *,
        user: str,
        role: Role | str,
        actor: Actor,
        expires_in: timedelta | None = None,
        note: str = "",
    ) -> IssuedToken:
        check_name(user, "user name")
        role = parse_role(role)
        authorize(self.db, actor, Action.TOKEN_CREATE, f"user:{user}")
        with self.db.write() as conn:
            return self._insert(conn, user, role, actor.name, expires_in, note)

    def bootstrap(self, owner: str) -> IssuedToken | None:
        """The first admin token, for the workspace owner; None when tokens already exist."""
        check_name(owner, "user name")
        with self.db.write() as conn:
            if sql.token_count(conn) > 0:
                return None
            return self._insert(conn, owner, Role.ADMIN, owner, None, "workspace owner", True)

    def _insert(
        self,
        conn: Connection,
        user: str,
        role: Role,
        by: str,
        expires_in: timedelta | None,
        note: str,
        bootstrap: bool = False,
    ) -> IssuedToken:
        token_id, secret = _new_secret()
        now = datetime.now(UTC)
        expires = now + expires_in if expires_in else None
        sql.insert_token(
            conn,
            StoredToken(
                token_id,
                user,
                role.value,
                hash_secret(secret),
                note,
                now,
                by,
                expires,
                None,
                None,
            ),
        )
        audit.append(
            conn,
            actor=by,
            action="token.create",
            subject=f"token:{token_id}",
            details={
                "user": user,
                "role": role.value,
                "expires_at": expires.isoformat() if expires else None,
                "note": note,
                **({"bootstrap": True} if bootstrap else {}),
            },
        )
        return IssuedToken(token_id, user, role.value, secret, expires)

    def visible(
        self, viewer: Actor, *, user: str | None = None, include_inactive: bool = False
    ) -> list[TokenInfo]:
        """The tokens ``viewer`` may see: anyone's (or ``user``'s) for whoever may issue tokens
        (an admin), only their own for everyone else."""
        user = _whose(viewer, user)
        return self.list(user=user, include_inactive=include_inactive)

    def page(
        self,
        viewer: Actor,
        *,
        user: str | None = None,
        include_inactive: bool = False,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[TokenInfo]:
        """``visible`` a page at a time, in creation order (keyset on created_at and id)."""
        user = _whose(viewer, user)
        size = page_limit(limit)
        after = decode_cursor(cursor, arity=2)
        key = (cursor_time(after[0]), str(after[1])) if after else None
        now = datetime.now(UTC)
        with self.db.read() as conn:
            rows = sql.token_page(
                conn,
                user=user,
                active_at=None if include_inactive else now,
                after=key,
                limit=size + 1,
            )
        infos = [TokenInfo.of(r, now) for r in rows]
        return page_of(infos, size, lambda t: [t.created_at.isoformat(), t.id])

    def list(self, *, user: str | None = None, include_inactive: bool = False) -> list[TokenInfo]:
        now = datetime.now(UTC)
        with self.db.read() as conn:
            rows = sql.tokens(conn, user=user)
        infos = [TokenInfo.of(r, now) for r in rows]
        return infos if include_inactive else [t for t in infos if t.state == "active"]

    def revoke(self, token_id: str, *, actor: Actor, reason: str = "") -> TokenInfo:
        """Revoke a token. Admins revoke any token; anyone may revoke their own."""
        token_id = token_id.removeprefix("tk_").strip()
        subject = f"token:{token_id}"
        denial: Forbidden | None = None
        with self.db.write() as conn:
            row = sql.token(conn, token_id)
            if row is None:
                raise NotFound(f"no token {token_id}", hint="run `airlock token ls --all`")
            if not actor.can(Action.TOKEN_REVOKE) and row.user != actor.name:
                why = f"role {actor.role!r} may only revoke its own tokens; revoking others needs admin"
                record_denial(conn, actor, Action.TOKEN_REVOKE, subject, why)
                denial = forbidden(actor, Action.TOKEN_REVOKE, subject, why)
            else:
                now = datetime.now(UTC)
                if sql.revoke_token(conn, token_id, by=actor.name, at=now):
                    audit.append(
                        conn,
                        actor=actor.name,
                        action="token.revoke",
                        subject=subject,
                        details={"user": row.user, "role": row.role, "reason": reason},
                    )
                row = sql.token(conn, token_id)
                assert row is not None
        if denial is not None:
            raise denial
        return TokenInfo.of(row, datetime.now(UTC))

    def authenticate(self, secret: str) -> Actor:
        """The actor a token stands for; ``Forbidden`` for unknown, revoked or expired tokens."""
        m = _TOKEN_RE.match(secret.strip())
        if not m:
            raise Forbidden(
                "that is not an Airlock API token",
                hint=f"tokens look like {PREFIX}_<12 hex>_<secret>; set {TOKEN_ENV}",
            )
        token_id = m.group(1)
        with self.db.read() as conn:
            row = sql.token(conn, token_id)
        if row is None or not hmac.compare_digest(row.secret_hash, hash_secret(secret.strip())):
            raise Forbidden(
                "unknown API token", hint=f"check {TOKEN_ENV}, or ask an admin for a new token"
            )
        now = datetime.now(UTC)
        if row.revoked_at is not None:
            raise Forbidden(
                f"API token {token_id} was revoked on {row.revoked_at:%Y-%m-%d %H:%M} "
                f"by {row.revoked_by}",
                hint="ask an admin for a new token",
            )
        if row.expires_at is not None and row.expires_at <= now:
            raise Forbidden(
                f"API token {token_id} expired on {row.expires_at:%Y-%m-%d %H:%M}",
                hint="ask an admin for a new token",
            )
        return Actor(row.user, row.role, token_id)

    def any_exist(self) -> bool:
        with self.db.read() as conn:
            return sql.token_count(conn) > 0


# -- where the CLI finds its token ----------------------------------------------------------


def token_file(home: Path) -> Path:
    return home / TOKEN_FILE


def find_token(env: Mapping[str, str], home: Path) -> str | None:
    """``AIRLOCK_TOKEN``, else the workspace's token file, else None."""
    if env.get(TOKEN_ENV, "").strip():
        return env[TOKEN_ENV].strip()
    path = token_file(home)
    if path.is_file():
        text = path.read_text(encoding="utf-8").strip()
        return text or None
    return None


def save_token(home: Path, secret: str) -> Path:
    """Write the token file readable by its owner only (atomic: temp file + rename)."""
    path = token_file(home)
    fd, tmp = tempfile.mkstemp(dir=home, prefix=".token-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(secret + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _whose(viewer: Actor, user: str | None) -> str | None:
    """Whose tokens ``viewer`` may list: anyone's for an admin, only their own otherwise."""
    if viewer.can(Action.TOKEN_CREATE):
        return user
    if user is not None and user != viewer.name:
        raise Forbidden(
            f"{viewer.name} ({viewer.role}) may only list their own tokens, not {user}'s",
            hint="leave out --user, or ask an admin",
        )
    return viewer.name
