"""The promotion policy around a rollout, checked inside the transaction that makes the change.

A rollout ends by moving the candidate model's ``stable`` alias, so it answers
to the policy for the stage ``stable`` (the policy stored under the service's
name if there is one, else the model's):

* :func:`start_gate` — before a rollout starts: every rule of the stage, and
  the rollout requirements the policy and its risk classes add
  (``min_canary_minutes`` of partial traffic before 100 %; ``shadow_first``: a
  mirror step first, or a completed shadow rollout of this candidate that
  passed). Drills (never promoted) and shadow rollouts (no user sees the
  candidate) skip it;
* :func:`promotion_gate` — again at promotion, since approvals can be
  withdrawn meanwhile;
* :func:`move_stable` — the audited alias move itself.

A refusal is a ``policy.blocked`` event on the caller's connection: the caller
commits it and then raises (or, for the controller, pauses the rollout).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from airlock import audit
from airlock.catalog import rollouts as sql
from airlock.core.policy import PolicyVerdict
from airlock.core.records import Release
from airlock.core.rollout import RolloutSpec, ShadowSpec
from airlock.core.rollout_spec import FULL
from airlock.errors import PolicyViolation
from airlock.services.identity import Actor
from airlock.services.promotion import decide, move_alias, stored_policy
from airlock.services.rollout_views import Kind, RolloutView

STABLE_ALIAS = "stable"


def policy_name(conn: Connection, service: str) -> str | None:
    """A policy stored under the service's name wins over the model's own."""
    return service if stored_policy(conn, service) is not None else None


def start_gate(
    conn: Connection,
    service: str,
    row: Release,
    spec: RolloutSpec,
    kind: Kind,
    actor: Actor,
) -> tuple[dict[str, Any], PolicyViolation | None]:
    """What the audit log keeps about the check, and the error to raise if it failed."""
    if kind == "drill":
        return {"skipped": "a drill never promotes its candidate"}, None
    if isinstance(spec, ShadowSpec):
        return {"skipped": "a shadow rollout serves no user"}, None
    verdict = decide(conn, row, STABLE_ALIAS, policy_name=policy_name(conn, service))
    problems = unmet_requirements(conn, service, row, spec, verdict) if spec.promotes else []
    note = {"policy_version": verdict.policy_version, "ok": verdict.ok and not problems}
    if verdict.ok and not problems:
        return note, None
    failed = [{"rule": r.rule, "why": r.why} for r in verdict.failures]
    failed += [{"rule": "rollout", "why": p} for p in problems]
    _blocked(conn, actor, row, "rollout.start", {"service": service}, verdict, failed)
    message = verdict.summary() if not verdict.ok else ""
    if problems:
        message = "; ".join([m for m in (message, *problems) if m])
    return note, PolicyViolation(
        f"cannot start a rollout of {row.ref}: {message}",
        hint=f"run `airlock check {row.ref} --for {STABLE_ALIAS}` to see every rule",
    )


def promotion_gate(
    conn: Connection, view: RolloutView, row: Release, actor: Actor
) -> PolicyVerdict:
    """The policy's verdict on promoting ``row`` now; a refusal is recorded as an event."""
    verdict = decide(conn, row, STABLE_ALIAS, policy_name=policy_name(conn, view.service))
    if not verdict.ok:
        failed = [{"rule": r.rule, "why": r.why} for r in verdict.failures]
        context = {"rollout": view.id, "service": view.service}
        _blocked(conn, actor, row, "rollout.promote", context, verdict, failed)
    return verdict


def move_stable(
    conn: Connection,
    view: RolloutView,
    row: Release,
    verdict: PolicyVerdict,
    actor: Actor,
    reason: str,
    at: datetime,
) -> None:
    """Move the candidate model's ``stable`` alias (``verdict`` was decided on ``conn``)."""
    why = f"rollout #{view.id} of {view.service} promoted {row.ref}: {reason}"
    move_alias(
        conn,
        row,
        STABLE_ALIAS,
        actor=actor,
        reason=why,
        at=at,
        verdict=verdict,
        rollout=view.id,
        service=view.service,
    )


def unmet_requirements(
    conn: Connection, service: str, row: Release, spec: RolloutSpec, verdict: PolicyVerdict
) -> list[str]:
    """The policy's rollout requirements this spec does not meet (minimum canary, shadow first)."""
    problems: list[str] = []
    needs = verdict.rollout
    steps = spec.schedule()
    if needs.min_canary_minutes:
        partial = sum(s.bake_seconds for s in steps if 0 < s.weight_bp < FULL) / 60
        if partial < needs.min_canary_minutes:
            problems.append(
                f"the policy requires at least {needs.min_canary_minutes:g} min of canary before "
                f"100 % ({'; '.join(needs.reasons)}); this {spec.strategy} spec bakes "
                f"{partial:g} min at partial weights"
            )
    if needs.shadow_first and steps[0].weight_bp != 0 and not _shadowed(conn, service, row.ref):
        problems.append(
            "the policy requires a shadow phase first: use a bluegreen spec with "
            "shadow_seconds > 0, or complete a shadow rollout of this candidate first"
        )
    return problems


def _shadowed(conn: Connection, service: str, candidate: str) -> bool:
    """True when a shadow rollout of ``candidate`` on ``service`` completed with a pass."""
    for view in sql.of_service(conn, service, limit=200):
        shadow = view.candidate == candidate and view.spec.strategy == "shadow"
        if shadow and view.phase == "completed":
            verdict = view.last_verdict
            if verdict is not None and verdict.outcome == "pass":
                return True
    return False


def _blocked(
    conn: Connection,
    actor: Actor,
    row: Release,
    action: str,
    context: dict[str, Any],
    verdict: PolicyVerdict,
    failed: list[dict[str, str]],
) -> None:
    audit.append(
        conn,
        actor=actor.name,
        action="policy.blocked",
        subject=f"{row.model}@{STABLE_ALIAS}",
        details={
            "action": action,
            **context,
            "to": row.ref,
            "stage": STABLE_ALIAS,
            "policy_version": verdict.policy_version,
            "failed": failed,
        },
    )


__all__ = [
    "STABLE_ALIAS",
    "move_stable",
    "policy_name",
    "promotion_gate",
    "start_gate",
    "unmet_requirements",
]
