"""Where the token and gateway-key commands send their work: the services, or a server.

``open_access()`` picks the transport once (:func:`airlock.cli.backend.open_side`):
:class:`LocalAccess` calls :class:`~airlock.services.tokens.Tokens` and
:class:`~airlock.services.gateway_keys.GatewayKeys` as the caller's token;
:class:`RemoteAccess` calls the REST API as the same token and rebuilds the same values.
Who may see, create and revoke what is decided by the services either way (a
non-admin lists only its own tokens, remotely too).

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from airlock.client import Client
    from airlock.core.gateway_keys import GatewayKey, KeyScopes
    from airlock.services.gateway_keys import IssuedKey, KeyInfo
    from airlock.services.identity import Actor
    from airlock.services.tokens import IssuedToken, TokenInfo
    from airlock.services.workspace import Workspace


class AccessBackend(Protocol):
    """What ``airlock token`` and ``airlock gateway-key`` call; local and remote alike."""

    remote: bool

    def whoami(self) -> Actor: ...

    def tokens(self, *, user: str | None, include_inactive: bool) -> list[TokenInfo]: ...

    def create_token(
        self, *, user: str, role: str, expires: str | None, note: str
    ) -> IssuedToken: ...

    def revoke_token(self, token_id: str, *, reason: str) -> TokenInfo: ...

    def gateway_keys(self, *, service: str | None, include_inactive: bool) -> list[KeyInfo]: ...

    def create_gateway_key(
        self,
        *,
        service: str,
        name: str,
        scopes: KeyScopes,
        rpm: int | None,
        tpm: int | None,
        expires: str | None,
        reason: str,
    ) -> IssuedKey: ...

    def revoke_gateway_key(self, key_id: str, *, reason: str) -> KeyInfo: ...


@contextmanager
def open_access() -> Iterator[AccessBackend]:
    """The remote side when a server is configured, else the local workspace's."""
    from airlock.cli.backend import open_side

    local: Callable[[Workspace], AccessBackend] = LocalAccess
    remote: Callable[[Client], AccessBackend] = RemoteAccess
    with open_side(local, remote) as side:
        yield side


class LocalAccess:
    remote = False

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def whoami(self) -> Actor:
        from airlock.cli.common import actor

        return actor(self.ws)

    def tokens(self, *, user: str | None, include_inactive: bool) -> list[TokenInfo]:
        from airlock.services.tokens import Tokens

        return Tokens(self.ws).visible(self.whoami(), user=user, include_inactive=include_inactive)

    def create_token(self, *, user: str, role: str, expires: str | None, note: str) -> IssuedToken:
        from airlock.services.tokens import Tokens, parse_duration

        lifetime = parse_duration(expires) if expires else None
        return Tokens(self.ws).create(
            user=user, role=role, actor=self.whoami(), expires_in=lifetime, note=note
        )

    def revoke_token(self, token_id: str, *, reason: str) -> TokenInfo:
        from airlock.services.tokens import Tokens

        return Tokens(self.ws).revoke(token_id, actor=self.whoami(), reason=reason)

    def gateway_keys(self, *, service: str | None, include_inactive: bool) -> list[KeyInfo]:
        from airlock.services.gateway_keys import GatewayKeys

        return GatewayKeys(self.ws).list(service=service, include_inactive=include_inactive)

    def create_gateway_key(
        self,
        *,
        service: str,
        name: str,
        scopes: KeyScopes,
        rpm: int | None,
        tpm: int | None,
        expires: str | None,
        reason: str,
    ) -> IssuedKey:
        from airlock.services.gateway_keys import GatewayKeys

        return GatewayKeys(self.ws).create(
            service=service,
            name=name,
            actor=self.whoami(),
            scopes=scopes,
            rpm=rpm,
            tpm=tpm,
            expires=expires,
            reason=reason,
        )

    def revoke_gateway_key(self, key_id: str, *, reason: str) -> KeyInfo:
        from airlock.services.gateway_keys import GatewayKeys

        return GatewayKeys(self.ws).revoke(key_id, actor=self.whoami(), reason=reason)


class RemoteAccess:
    """The same calls through the REST API; the bodies parsed back into the same values."""

    remote = True

    def __init__(self, client: Client) -> None:
        self.client = client

    def whoami(self) -> Actor:
        from airlock.services.identity import Actor

        out = self.client.whoami()
        return Actor(out["user"], out["role"], out.get("token_id"))

    def tokens(self, *, user: str | None, include_inactive: bool) -> list[TokenInfo]:
        found = self.client.tokens(include_inactive=include_inactive, user=user)
        return [_token(t) for t in found]

    def create_token(self, *, user: str, role: str, expires: str | None, note: str) -> IssuedToken:
        from airlock.cli.rollout_backend import rebuild
        from airlock.services.tokens import IssuedToken

        return rebuild(
            IssuedToken, self.client.create_token(user, role, expires_in=expires, note=note)
        )

    def revoke_token(self, token_id: str, *, reason: str) -> TokenInfo:
        return _token(self.client.revoke_token(token_id, reason=reason))

    def gateway_keys(self, *, service: str | None, include_inactive: bool) -> list[KeyInfo]:
        found = self.client.gateway_keys(service=service, include_inactive=include_inactive)
        return [_key_info(k) for k in found]

    def create_gateway_key(
        self,
        *,
        service: str,
        name: str,
        scopes: KeyScopes,
        rpm: int | None,
        tpm: int | None,
        expires: str | None,
        reason: str,
    ) -> IssuedKey:
        from airlock.services.gateway_keys import IssuedKey

        out = self.client.create_gateway_key(
            service,
            name,
            can_pin=scopes.can_pin,
            can_opt_out=scopes.can_opt_out,
            can_feedback=scopes.can_feedback,
            rpm=rpm,
            tpm=tpm,
            expires=expires,
            reason=reason,
        )
        return IssuedKey(_key(out), out["secret"])

    def revoke_gateway_key(self, key_id: str, *, reason: str) -> KeyInfo:
        return _key_info(self.client.revoke_gateway_key(key_id, reason=reason))


def _token(d: Mapping[str, Any]) -> TokenInfo:
    from airlock.cli.rollout_backend import rebuild
    from airlock.services.tokens import TokenInfo

    return rebuild(TokenInfo, d)


def _key(d: Mapping[str, Any]) -> GatewayKey:
    """A key as the API shows it: never its secret, so ``secret_hash`` is empty here."""
    from airlock.cli.rollout_backend import rebuild
    from airlock.core.gateway_keys import GatewayKey, KeyScopes

    scopes = KeyScopes(
        *(name in d["scopes"] for name in ("can_pin", "can_opt_out", "can_feedback"))
    )
    return rebuild(GatewayKey, d, secret_hash="", scopes=scopes)


def _key_info(d: Mapping[str, Any]) -> KeyInfo:
    from airlock.services.gateway_keys import KeyInfo

    return KeyInfo(_key(d), d["state"])


__all__ = ["AccessBackend", "LocalAccess", "RemoteAccess", "open_access"]
