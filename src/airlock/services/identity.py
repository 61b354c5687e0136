"""Who performs an action. Every mutation in the services layer takes an ``Actor``.

An actor is authenticated at the edges (the CLI and the API turn an API token
into an ``Actor`` with :func:`airlock.services.tokens.authenticate`); the
services trust the value they are given and check its role against
:mod:`airlock.core.roles` before every mutation.
"""

from __future__ import annotations

from dataclasses import dataclass

from airlock.core.roles import Action, Role, is_allowed, parse_role


@dataclass(frozen=True, slots=True)
class Actor:
    name: str
    role: str = Role.ADMIN.value
    token_id: str | None = None  # the API token that authenticated this actor, if any

    def __post_init__(self) -> None:
        # Normalise and validate the role once, so every check compares known values.
        object.__setattr__(self, "role", parse_role(self.role).value)

    def __str__(self) -> str:
        return self.name

    def can(self, action: Action | str) -> bool:
        return is_allowed(self.role, action)
