"""Gateway keys (the clients' keys to ``/v1/*``), as pure values: format, scopes, expiry.

A key looks like ``ak-3f9a2b1c7d0e-<43 url-safe characters>``: the middle part is
its public id (shown by ``airlock gateway-key ls``, used as the ``key_id`` label on
``/metrics`` and inside response ids), the rest is 256 random bits. Only the
SHA-256 of the whole key is stored: a high-entropy secret needs no slow hash.

A key belongs to one service and carries scopes: ``can_pin`` (name a release in
``model``, steer routing with ``X-Airlock-User``/``X-Airlock-Session``, and see
which release answered), ``can_opt_out`` (``X-Airlock-Opt-Out``) and
``can_feedback`` (``POST /v1/feedback``), plus optional limits in requests and
tokens per minute.

The errors of the gateway's door are in the one error tree (:mod:`airlock.errors`):
``Unauthorized`` (401, ``WWW-Authenticate: Bearer``) and ``RateLimited`` (429,
``Retry-After``).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from airlock.errors import InvalidInput

KEY_PREFIX = "ak"
_KEY_RE = re.compile(r"^ak-([0-9a-f]{12})-([A-Za-z0-9_-]{43})$")
_ID_RE = re.compile(r"^[0-9a-f]{12}$")
_DURATION_RE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
MAX_LIMIT = 1_000_000_000

KeyState = Literal["active", "expired", "revoked"]
Scope = Literal["can_pin", "can_opt_out", "can_feedback"]


@dataclass(frozen=True, slots=True)
class KeyScopes:
    can_pin: bool = False
    can_opt_out: bool = False
    can_feedback: bool = True

    def names(self) -> tuple[str, ...]:
        return tuple(
            name
            for name, on in (
                ("can_pin", self.can_pin),
                ("can_opt_out", self.can_opt_out),
                ("can_feedback", self.can_feedback),
            )
            if on
        )


ALL_SCOPES = KeyScopes(can_pin=True, can_opt_out=True, can_feedback=True)


@dataclass(frozen=True, slots=True)
class GatewayKey:
    """One key as the catalog keeps it (never its secret)."""

    id: str
    service: str
    name: str
    secret_hash: str
    scopes: KeyScopes
    rpm: int | None
    tpm: int | None
    created_at: datetime
    created_by: str
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    def state(self, now: datetime) -> KeyState:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    @property
    def label(self) -> str:
        """How logs and errors name the key: ``name (id)``, never the secret."""
        return f"{self.name} ({self.id})"


def new_key() -> tuple[str, str]:
    """A fresh ``(id, secret)``; the secret is shown once and only its hash is kept."""
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}-{key_id}-{secrets.token_urlsafe(32)}"


def key_id_of(secret: str) -> str | None:
    """The public id inside a well-formed key, else None."""
    m = _KEY_RE.match(secret)
    return m.group(1) if m else None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def check_key_id(text: str) -> str:
    key_id = text.strip().removeprefix(f"{KEY_PREFIX}-")
    if not _ID_RE.match(key_id):
        raise InvalidInput(
            f"invalid gateway key id {text!r}",
            hint="use the 12-hex-digit id shown by `airlock gateway-key ls`",
        )
    return key_id


def check_limit(value: int | None, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise InvalidInput(
            f"{what} must be a whole number from 1 to {MAX_LIMIT:,}, got {value!r}",
            hint="leave it out for no limit",
        )
    return value


def parse_expiry(text: str, now: datetime) -> datetime:
    """``90m``, ``12h``, ``30d``, ``8w`` from ``now``, or an ISO 8601 date/time (UTC if no zone)."""
    raw = text.strip()
    m = _DURATION_RE.match(raw.lower())
    if m:
        amount = int(m.group(1))
        if amount == 0 or amount > 10_000_000:
            raise InvalidInput(f"invalid lifetime {text!r}", hint="use e.g. 90m, 12h, 30d or 8w")
        return now + timedelta(**{_UNITS[m.group(2)]: amount})
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            f"invalid expiry {text[:64]!r}",
            hint="use a lifetime (90m, 12h, 30d, 8w) or an ISO date/time (2027-01-31T12:00Z)",
        ) from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if when <= now:
        raise InvalidInput(
            f"expiry {when:%Y-%m-%d %H:%M} UTC is in the past", hint="give a future date/time"
        )
    return when


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


__all__ = [
    "ALL_SCOPES",
    "KEY_PREFIX",
    "GatewayKey",
    "KeyScopes",
    "KeyState",
    "Scope",
    "check_key_id",
    "check_limit",
    "hash_secret",
    "is_loopback",
    "key_id_of",
    "new_key",
    "parse_expiry",
]
