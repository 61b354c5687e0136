"""Airlock: version, gate, roll out and roll back generative models safely.

This module is the library's public surface: every name in ``__all__`` below is
meant to be imported from ``airlock`` and stays stable; the modules behind them
(and every module whose docstring, or whose package's docstring, says
"Internal:") are not. Only the error tree is imported eagerly; everything else
is imported on first use (PEP 562), so ``import airlock`` and the CLI stay fast.

The library (the same services the CLI, the REST API and the dashboard call)::

    import airlock

    with airlock.Workspace.open(airlock.Settings.from_env(), create=True) as ws: ...

- ``Settings``: where the workspace lives, its database and blob store (``Settings.from_env()``).
- ``Workspace``: an open workspace (catalog + blob store); ``Workspace.open(settings)``.
- ``Actor``: who performs an action, with which role; every mutation takes one.
- ``Registry``: push, resolve, show, diff, pull and verify releases; move aliases.
- ``Governance``: approvals, promotion policies and their checks, signatures.
- ``Evals``: run an evaluation suite against a release and its baseline; stored runs.
- ``Serving``: services, their traffic plans and plan history.
- ``Rollouts``: start, pause, resume, promote, roll back and abort rollouts.
- ``AuditLog``: read and verify the tamper-evident audit log.
- ``lineage``: a release's lineage (datasets, code, components, parent chain).
- ``Client``: the SDK for the REST API of ``airlock serve``.

The values they take and return (frozen)::

- ``Manifest``: a release's bill of materials; its digest is the release's identity.
- ``ReleaseRef`` and ``parse_ref``: ``name@version``, ``name:alias`` or a digest.
- ``Version``: a semantic version.
- ``Policy`` and ``parse_policy``: a promotion policy document.
- ``Suite`` and ``parse_suite``: an evaluation suite.
- ``parse_spec``: a rollout spec (canary, linear, blue/green, A/B, shadow).
- ``TrafficPlan`` and ``WeightedRelease``: how a service splits its traffic.
- ``ReleaseView``, ``PushResult``, ``VerifyReport``: what the registry shows, pushes, verifies.
- ``ServiceView``: a service with its plan; ``RolloutView`` and ``Transition``: a rollout
  and one change of it.
- ``Lineage``: the result of ``lineage``.
- ``Event``, ``EventFilter``, ``EventPage``, ``ChainReport``, ``Checkpoint``: audit log
  entries, which of them to read, a page of them, a verification and a recorded point.

The errors (see :mod:`airlock.errors`): ``AirlockError`` and its subclasses
``Conflict``, ``ContentBlocked``, ``Forbidden``, ``IntegrityError``, ``InvalidInput``,
``NotFound``, ``PayloadTooLarge``, ``PolicyViolation``, ``RateLimited``,
``RuntimeFailure``, ``RuntimeTimeout``, ``ServiceUnavailable``, ``Unauthorized``,
``UnsafeArtifact``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from airlock.errors import (
    AirlockError,
    Conflict,
    ContentBlocked,
    Forbidden,
    IntegrityError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PolicyViolation,
    RateLimited,
    RuntimeFailure,
    RuntimeTimeout,
    ServiceUnavailable,
    Unauthorized,
    UnsafeArtifact,
)

if TYPE_CHECKING:
    from airlock.client import Client
    from airlock.config import Settings
    from airlock.core.evalsuite import Suite, parse_suite
    from airlock.core.manifest import Manifest
    from airlock.core.policy import Policy, parse_policy
    from airlock.core.refs import ReleaseRef, parse_ref
    from airlock.core.rollout_spec import parse_spec
    from airlock.core.semver import Version
    from airlock.core.traffic import TrafficPlan, WeightedRelease
    from airlock.services.audit_views import (
        AuditLog,
        ChainReport,
        Checkpoint,
        Event,
        EventFilter,
        EventPage,
    )
    from airlock.services.evals import Evals
    from airlock.services.governance import Governance
    from airlock.services.identity import Actor
    from airlock.services.lineage import Lineage, lineage
    from airlock.services.registry import PushResult, Registry, ReleaseView, VerifyReport
    from airlock.services.rollout_views import RolloutView, Transition
    from airlock.services.rollouts import Rollouts
    from airlock.services.serving import ServiceView, Serving
    from airlock.services.workspace import Workspace

__version__ = "0.1.0"

_LAZY = {
    "Actor": "airlock.services.identity",
    "AuditLog": "airlock.services.audit_views",
    "ChainReport": "airlock.services.audit_views",
    "Checkpoint": "airlock.services.audit_views",
    "Client": "airlock.client",
    "Evals": "airlock.services.evals",
    "Event": "airlock.services.audit_views",
    "EventFilter": "airlock.services.audit_views",
    "EventPage": "airlock.services.audit_views",
    "Governance": "airlock.services.governance",
    "Lineage": "airlock.services.lineage",
    "Manifest": "airlock.core.manifest",
    "Policy": "airlock.core.policy",
    "PushResult": "airlock.services.registry",
    "Registry": "airlock.services.registry",
    "ReleaseRef": "airlock.core.refs",
    "ReleaseView": "airlock.services.registry",
    "RolloutView": "airlock.services.rollout_views",
    "Rollouts": "airlock.services.rollouts",
    "ServiceView": "airlock.services.serving",
    "Serving": "airlock.services.serving",
    "Settings": "airlock.config",
    "Suite": "airlock.core.evalsuite",
    "TrafficPlan": "airlock.core.traffic",
    "Transition": "airlock.services.rollout_views",
    "VerifyReport": "airlock.services.registry",
    "Version": "airlock.core.semver",
    "WeightedRelease": "airlock.core.traffic",
    "Workspace": "airlock.services.workspace",
    "lineage": "airlock.services.lineage",
    "parse_policy": "airlock.core.policy",
    "parse_ref": "airlock.core.refs",
    "parse_spec": "airlock.core.rollout_spec",
    "parse_suite": "airlock.core.evalsuite",
}

__all__ = [
    "Actor",
    "AirlockError",
    "AuditLog",
    "ChainReport",
    "Checkpoint",
    "Client",
    "Conflict",
    "ContentBlocked",
    "Evals",
    "Event",
    "EventFilter",
    "EventPage",
    "Forbidden",
    "Governance",
    "IntegrityError",
    "InvalidInput",
    "Lineage",
    "Manifest",
    "NotFound",
    "PayloadTooLarge",
    "Policy",
    "PolicyViolation",
    "PushResult",
    "RateLimited",
    "Registry",
    "ReleaseRef",
    "ReleaseView",
    "RolloutView",
    "Rollouts",
    "RuntimeFailure",
    "RuntimeTimeout",
    "ServiceUnavailable",
    "ServiceView",
    "Serving",
    "Settings",
    "Suite",
    "TrafficPlan",
    "Transition",
    "Unauthorized",
    "UnsafeArtifact",
    "VerifyReport",
    "Version",
    "WeightedRelease",
    "Workspace",
    "__version__",
    "lineage",
    "parse_policy",
    "parse_ref",
    "parse_spec",
    "parse_suite",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'airlock' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
