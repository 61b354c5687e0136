"""The gateway's door: who may call a service, with which scopes, how often.

:class:`KeyRing` holds the gateway keys the sync loop read from the catalog
(replaced as a whole, never edited) and answers, per request, with a
:class:`Principal` or an error in the OpenAI shape:

* a service that has (or ever had) a key needs ``Authorization: Bearer ak-...``:
  none or an unknown key -> 401 with ``WWW-Authenticate: Bearer``, a revoked or
  expired key -> 401 saying so, a key of another service -> 403;
* a service without keys is open (principal :data:`OPEN`, every scope) only in
  open mode: loopback by default, elsewhere with ``--insecure-open``; otherwise
  it answers 401 until a key exists;
* each key's requests per minute and tokens per minute are token buckets
  (:mod:`airlock.core.rate_limit`) -> 429 with ``Retry-After``. Limits are per
  replica: N replicas behind a balancer let a key through up to N times its limit.

Per-key counters (requests, tokens, rejections by reason) feed ``/metrics``,
labelled by the key's public id and name, never its secret.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType

from airlock.core.gateway_keys import (
    ALL_SCOPES,
    GatewayKey,
    KeyScopes,
    Scope,
    hash_secret,
    key_id_of,
)
from airlock.core.rate_limit import TokenBucket
from airlock.errors import Forbidden, RateLimited, Unauthorized


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a gateway key, or nobody in particular (open mode, in-process)."""

    key_id: str  # "" without a key
    name: str
    service: str | None
    scopes: KeyScopes

    @property
    def keyed(self) -> bool:
        return bool(self.key_id)

    def may(self, scope: Scope) -> bool:
        return bool(getattr(self.scopes, scope))

    def require(self, scope: Scope, what: str) -> None:
        """``Forbidden`` naming the missing scope (never a silent ignore)."""
        if not self.may(scope):
            raise Forbidden(
                f"gateway key {self.name} ({self.key_id}) may not {what}: it lacks the "
                f"{scope} scope",
                hint=f"ask an operator for a key created with --{scope.replace('_', '-')}",
            )


OPEN = Principal("", "open", None, ALL_SCOPES)
"""No key needed (open mode, a service without keys): today's behaviour, every scope."""
TRUSTED = Principal("", "in-process", None, ALL_SCOPES)
"""Callers inside this process (drills through an ASGI transport)."""


class KeyCounters:
    __slots__ = ("rejected", "requests", "tokens_in", "tokens_out")

    def __init__(self) -> None:
        self.requests = 0
        self.tokens_in = 0
        self.tokens_out = 0
        self.rejected: dict[str, int] = {}


@dataclass(frozen=True, slots=True)
class KeyLabels:
    service: str
    key_id: str
    key_name: str


_ANONYMOUS = "-"


class KeyRing:
    def __init__(
        self,
        *,
        open_access: bool = True,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.open_access = open_access
        self._clock = clock
        self._now = now
        self._keys: MappingProxyType[str, GatewayKey] = MappingProxyType({})
        self._closed: frozenset[str] = frozenset()
        self._rpm: dict[str, TokenBucket] = {}
        self._tpm: dict[str, TokenBucket] = {}
        self.counters: dict[KeyLabels, KeyCounters] = {}
        self.loaded = False

    # -- what the sync loop does ---------------------------------------------------------
    def load(self, keys: Iterable[GatewayKey]) -> None:
        """Serve exactly these keys from the next request on (one atomic swap)."""
        by_id = {k.id: k for k in keys}
        closed = frozenset(k.service for k in by_id.values())
        for buckets, attr in ((self._rpm, "rpm"), (self._tpm, "tpm")):
            for key_id in list(buckets):
                limit = getattr(by_id[key_id], attr) if key_id in by_id else None
                if limit is None or buckets[key_id].capacity != float(limit):
                    del buckets[key_id]
        self._keys = MappingProxyType(by_id)
        self._closed = closed
        self.loaded = True

    def keys(self) -> tuple[GatewayKey, ...]:
        return tuple(self._keys.values())

    def needs_key(self, service: str) -> bool:
        return not self.open_access or service in self._closed

    # -- the request path ----------------------------------------------------------------
    def authenticate(self, service: str, authorization: str | None) -> Principal:
        """The principal for a call to ``service``; 401/403 when its key does not do."""
        needed = self.needs_key(service)
        secret = _bearer(authorization)
        key_id = key_id_of(secret) if secret else None
        key = self._keys.get(key_id) if key_id else None
        if not needed and (key is None or key.service != service):
            return OPEN  # open service: an SDK's placeholder key (sk-...) changes nothing
        if secret is None:
            self._reject(service, None, "missing")
            raise Unauthorized(
                f"service {service} needs a gateway key: send 'Authorization: Bearer ak-...'"
                if service in self._closed
                else f"service {service} has no gateway key yet, and this gateway is not open",
                hint="ask an operator for one (`airlock gateway-key create --service "
                f"{service} --name NAME`)",
            )
        if key is None or not hmac.compare_digest(key.secret_hash, hash_secret(secret)):
            self._reject(service, None, "invalid")
            raise Unauthorized(
                "unknown gateway key", hint="check the key; keys look like ak-<12 hex>-<secret>"
            )
        state = key.state(self._now())
        if state != "active":
            self._reject(service, key, state)
            when = key.revoked_at if state == "revoked" else key.expires_at
            raise Unauthorized(
                f"gateway key {key.label} was {state}"
                + (f" on {when:%Y-%m-%d %H:%M} UTC" if when else ""),
                hint="ask an operator for a new key",
            )
        if key.service != service:
            self._reject(service, key, "wrong_service")
            raise Forbidden(
                f"gateway key {key.label} is for service {key.service}, not {service}",
                hint=f"use a key of {service}, or send model={key.service!r}",
            )
        return Principal(key.id, key.name, key.service, key.scopes)

    def admit(self, service: str, authorization: str | None) -> Principal:
        """``authenticate`` plus the key's rate limits; counts the request."""
        principal = self.authenticate(service, authorization)
        if not principal.keyed:
            return principal
        key = self._keys[principal.key_id]
        now = self._clock()
        if key.tpm is not None:  # checked first: a refused request spends no request
            wait = self._bucket(self._tpm, key.id, key.tpm, now).wait(now)
            if wait > 0:
                self._reject(service, key, "tpm")
                raise RateLimited(
                    f"gateway key {key.label} is over its limit of {key.tpm} tokens per minute",
                    retry_after=wait,
                    hint="retry after the time in Retry-After, or ask for a higher --tpm",
                )
        if key.rpm is not None:
            wait = self._bucket(self._rpm, key.id, key.rpm, now).take(now)
            if wait > 0:
                self._reject(service, key, "rpm")
                raise RateLimited(
                    f"gateway key {key.label} is over its limit of {key.rpm} requests per minute",
                    retry_after=wait,
                    hint="retry after the time in Retry-After, or ask for a higher --rpm",
                )
        self._counters(service, key).requests += 1
        return principal

    def visible(self, model_id: str, authorization: str | None) -> bool:
        """Whether ``GET /v1/models`` shows ``model_id`` (``chat`` or ``chat@1.2.0``) to
        this caller: open services to anyone, a keyed one to its active keys, and its
        pinnable versions only to keys with ``can_pin``."""
        service, pinned, _ = model_id.partition("@")
        if not self.needs_key(service):
            return True
        secret = _bearer(authorization)
        key_id = key_id_of(secret) if secret else None
        key = self._keys.get(key_id) if key_id else None
        if (
            secret is None
            or key is None
            or key.service != service
            or key.state(self._now()) != "active"
            or not hmac.compare_digest(key.secret_hash, hash_secret(secret))
        ):
            return False
        return not pinned or key.scopes.can_pin

    def charge(self, principal: Principal, tokens_in: int, tokens_out: int) -> None:
        """Count a finished answer's tokens against its key (and its tokens per minute)."""
        key = self._keys.get(principal.key_id) if principal.keyed else None
        if key is None:
            return
        c = self._counters(key.service, key)
        c.tokens_in += tokens_in
        c.tokens_out += tokens_out
        if key.tpm is not None:
            now = self._clock()
            self._bucket(self._tpm, key.id, key.tpm, now).spend(now, tokens_in + tokens_out)

    # -- helpers -------------------------------------------------------------------------
    def _bucket(
        self, buckets: dict[str, TokenBucket], key_id: str, limit: int, now: float
    ) -> TokenBucket:
        bucket = buckets.get(key_id)
        if bucket is None:
            bucket = buckets[key_id] = TokenBucket(limit, period=60.0, now=now)
        return bucket

    def _counters(self, service: str, key: GatewayKey | None) -> KeyCounters:
        labels = (
            KeyLabels(service, key.id, key.name)
            if key is not None
            else KeyLabels(service, _ANONYMOUS, _ANONYMOUS)
        )
        c = self.counters.get(labels)
        if c is None:
            c = self.counters[labels] = KeyCounters()
        return c

    def _reject(self, service: str, key: GatewayKey | None, reason: str) -> None:
        if key is None and service not in self._closed:
            service = _ANONYMOUS  # a name a caller made up: no label of its own
        c = self._counters(service, key)
        c.rejected[reason] = c.rejected.get(reason, 0) + 1


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


__all__ = ["OPEN", "TRUSTED", "KeyCounters", "KeyLabels", "KeyRing", "Principal"]
