"""Role checks for every mutation; a denial is an audit event too.

``authorize`` is called by a service *before* it opens its own write
transaction: on denial it records an ``access.denied`` event in a transaction of
its own (so the event survives) and raises :class:`~airlock.errors.Forbidden`.
``record_denial`` is the in-transaction twin for checks that need the catalog
(four-eyes, for one): the caller commits the event and raises afterwards.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from airlock import audit
from airlock.catalog.engine import Database
from airlock.core.roles import Action, denial_reason
from airlock.errors import Forbidden
from airlock.services.identity import Actor
from airlock.services.workspace import Workspace

DENIED = "access.denied"

CONTROLLER_ACTIONS = (Action.ROLLOUT_CONTROL, Action.ROLLOUT_ROLLBACK)
"""What a rollout controller does on its own: advance, pause, promote and roll back."""


def record_denial(
    conn: Connection,
    actor: Actor,
    action: Action | str,
    subject: str,
    reason: str,
    **details: Any,
) -> None:
    audit.append(
        conn,
        actor=actor.name,
        action=DENIED,
        subject=subject,
        details={
            "action": str(action),
            "role": actor.role,
            "token": actor.token_id,
            "reason": reason,
            **details,
        },
    )


def forbidden(actor: Actor, action: Action | str, subject: str, reason: str) -> Forbidden:
    return Forbidden(
        f"{actor.name} ({actor.role}) may not {action} {subject}: {reason}",
        hint="ask an admin for a token with the needed role (`airlock token create`)",
    )


def authorize(db: Database, actor: Actor, action: Action, subject: str) -> None:
    """Return when ``actor``'s role allows ``action``; otherwise audit the denial and raise."""
    if actor.can(action):
        return
    reason = denial_reason(actor.role, action)
    with db.write() as conn:
        record_denial(conn, actor, action, subject, reason)
    raise forbidden(actor, action, subject, reason)


def authorize_controller(workspace: Workspace, actor: Actor) -> None:
    """May ``actor`` run a rollout controller: every action in :data:`CONTROLLER_ACTIONS`."""
    for needed in CONTROLLER_ACTIONS:
        authorize(workspace.db, actor, needed, "the rollout controller")
