"""Who may do what: the role × action permission table (pure data, no I/O).

Five roles, each a job rather than a rank:

===========  =================================================================
``viewer``   reads everything, changes nothing
``author``   pushes and signs releases, records evaluation runs
``approver`` approves or rejects releases for a stage; records evaluation runs
``operator`` moves aliases and drives rollouts (start, pause, promote, roll back)
``admin``    everything, including tokens, trusted keys and policies
===========  =================================================================

Permission is only the first gate. Four-eyes (an author never approves their own
release) is a rule about *people*, not roles, so it holds for admins too; it is
enforced by the governance service and again by policy evaluation.

Every mutating service call names one :class:`Action`; the table below is the
single source of truth, and ``tests/scenarios/governance/test_role_matrix.py`` walks all of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType

from airlock.errors import InvalidInput


class Role(StrEnum):
    VIEWER = "viewer"
    AUTHOR = "author"
    APPROVER = "approver"
    OPERATOR = "operator"
    ADMIN = "admin"


class Action(StrEnum):
    """A mutation a service performs on behalf of an actor."""

    RELEASE_PUSH = "release.push"
    RELEASE_SIGN = "release.sign"
    RELEASE_APPROVE = "release.approve"
    RELEASE_REJECT = "release.reject"
    EVAL_RECORD = "eval.record"
    ALIAS_MOVE = "alias.move"
    ROLLOUT_START = "rollout.start"
    ROLLOUT_CONTROL = "rollout.control"  # pause, resume, advance, promote
    ROLLOUT_ROLLBACK = "rollout.rollback"  # includes abort
    SERVICE_CONFIGURE = "service.configure"
    POLICY_SET = "policy.set"
    TOKEN_CREATE = "token.create"
    TOKEN_REVOKE = "token.revoke"
    KEY_TRUST = "key.trust"
    KEY_REVOKE = "key.revoke"
    STORE_GC = "store.gc"  # deletes unused blobs
    GATEWAY_KEY_CREATE = "gateway_key.create"  # clients' keys to the gateway's /v1
    GATEWAY_KEY_REVOKE = "gateway_key.revoke"
    WEBHOOK_MANAGE = "webhook.manage"  # add, remove, test webhook subscriptions


_V, _AU, _AP, _OP, _AD = Role.VIEWER, Role.AUTHOR, Role.APPROVER, Role.OPERATOR, Role.ADMIN

PERMISSIONS: Mapping[Action, frozenset[Role]] = MappingProxyType(
    {
        Action.RELEASE_PUSH: frozenset({_AU, _AD}),
        Action.RELEASE_SIGN: frozenset({_AU, _AD}),
        Action.RELEASE_APPROVE: frozenset({_AP, _AD}),
        Action.RELEASE_REJECT: frozenset({_AP, _AD}),
        Action.EVAL_RECORD: frozenset({_AU, _AP, _OP, _AD}),
        Action.ALIAS_MOVE: frozenset({_OP, _AD}),
        Action.ROLLOUT_START: frozenset({_OP, _AD}),
        Action.ROLLOUT_CONTROL: frozenset({_OP, _AD}),
        Action.ROLLOUT_ROLLBACK: frozenset({_OP, _AD}),
        Action.SERVICE_CONFIGURE: frozenset({_OP, _AD}),
        Action.POLICY_SET: frozenset({_AD}),
        Action.TOKEN_CREATE: frozenset({_AD}),
        Action.TOKEN_REVOKE: frozenset({_AD}),
        Action.KEY_TRUST: frozenset({_AD}),
        Action.KEY_REVOKE: frozenset({_AD}),
        Action.STORE_GC: frozenset({_AD}),
        Action.GATEWAY_KEY_CREATE: frozenset({_OP, _AD}),
        Action.GATEWAY_KEY_REVOKE: frozenset({_OP, _AD}),
        Action.WEBHOOK_MANAGE: frozenset({_AD}),
    }
)

ROLE_NAMES: tuple[str, ...] = tuple(r.value for r in Role)


def parse_role(text: str) -> Role:
    """A role from its name, or ``InvalidInput`` listing the valid ones."""
    try:
        return Role(text.strip().lower())
    except ValueError:
        raise InvalidInput(
            f"unknown role {text!r}", hint=f"use one of: {', '.join(ROLE_NAMES)}"
        ) from None


def is_allowed(role: Role | str, action: Action | str) -> bool:
    """True when ``role`` may perform ``action``; unknown roles or actions are never allowed."""
    try:
        return Role(role) in PERMISSIONS[Action(action)]
    except ValueError:
        return False


def roles_allowed(action: Action | str) -> tuple[Role, ...]:
    """The roles that may perform ``action``, in the order of :class:`Role`."""
    allowed = PERMISSIONS[Action(action)]
    return tuple(r for r in Role if r in allowed)


def actions_of(role: Role | str) -> tuple[Action, ...]:
    """Everything ``role`` may do, in the order of :class:`Action`."""
    r = Role(role)
    return tuple(a for a in Action if r in PERMISSIONS[a])


def denial_reason(role: Role | str, action: Action | str) -> str:
    """One sentence saying why ``role`` may not perform ``action`` and who may."""
    who = " or ".join(r.value for r in roles_allowed(action))
    return f"role {Role(role).value!r} may not {Action(action).value}; it needs {who}"
