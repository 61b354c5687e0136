"""Promotion: may this release take this stage, and move this alias.

This module owns both questions and is the only writer of the ``alias.move`` audit event:

* the facts a policy is evaluated on (:func:`release_facts`: approvals, evaluation runs
  chosen against the baseline, signatures, the baseline itself), gathered once on the
  caller's connection;
* :func:`decide` — every rule of the release's policy for a stage, on those facts;
  :func:`rollout_gate` — the same for starting a rollout on a service;
* :func:`move_alias` — the audited move itself, with one details shape whoever moves
  (a person, a promoted rollout, a new service adopting its ``stable`` alias);
* plan, then execute: ``Promotion(ws).plan_promotion(ref, stage)`` is a
  :class:`PromotionPlan` (current target, new target, the policy verdict, approvals found
  and missing) that changes nothing and is what ``airlock alias set --dry-run`` prints;
  ``Promotion(ws).execute(plan, ...)`` decides again under the audit lock and moves.

Which policy: the one stored under the model's name, or under ``policy_name``
(a service). Which baseline (the "current stable" release that risk classes and
evaluation comparisons are measured against): the release the policy's
``baseline`` alias points at, else the stage's own alias, else ``stable``, else
the release's lineage parent — skipping any that is the release itself.

Deciding: call :func:`decide` inside the write transaction that makes the change, after
``airlock.catalog.events.lock_head(conn)`` (as :meth:`Promotion.execute` does): every
approval, rejection and policy change appends an audit event under that lock, so
none can land between the decision and the change.

Rollouts: :func:`rollout_gate` puts the candidate in front of users, so it must satisfy
the ``production`` stage (the ``rollout`` stage when the policy names one), under the
service's own policy when one is stored under the service's name, else the model's. The
verdict's ``rollout`` field carries what the rollout must honour (minimum canary time,
shadow phase first).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from airlock import audit
from airlock.catalog import aliases as alias_sql
from airlock.catalog import events as event_sql
from airlock.catalog import governance as sql
from airlock.catalog import releases as release_sql
from airlock.catalog import serving as serving_sql
from airlock.core.digest import Digest
from airlock.core.evalsuite import outcomes_from_record
from airlock.core.limits import MAX_REASON, check_length
from airlock.core.names import check_alias
from airlock.core.policy import (
    EvalFact,
    EvalRequirement,
    Policy,
    PolicyVerdict,
    ReleaseFacts,
    evaluate,
    parse_policy,
    standing_decisions,
)
from airlock.core.records import EvalRunSummary, Release
from airlock.core.roles import Action
from airlock.errors import Conflict, IntegrityError, InvalidInput, PolicyViolation
from airlock.services.access import authorize
from airlock.services.identity import Actor
from airlock.services.signatures import release_signature_checks
from airlock.services.workspace import Workspace

_ALIAS_ATTEMPTS = 3


def stored_policy(conn: Connection, name: str) -> tuple[Policy, int] | None:
    row = sql.latest_policy(conn, name)
    if row is None:
        return None
    policy = parse_policy(row.document)
    if policy.digest() != row.digest:
        raise IntegrityError(
            f"policy {name} v{row.version} no longer matches its digest: it was edited",
            hint="set the policy again with `airlock policy set`; the audit log has each version",
        )
    return policy, row.version


def baseline_for(
    conn: Connection, release: Release, stage: str, policy: Policy | None
) -> tuple[Release | None, str | None]:
    mid = release_sql.model_id(conn, release.model)
    assert mid is not None
    names = [n for n in ((policy.baseline if policy else None), stage, "stable") if n]
    for name in dict.fromkeys(names):
        alias = alias_sql.get(conn, mid, name)
        if alias is not None and alias.release_id != release.id:
            row = release_sql.by_id(conn, alias.release_id)
            if row is not None:
                return row, f"{release.model}@{name}"
    parent = release.manifest().lineage.parent
    if parent and "@" in parent:
        name, _, version = parent.partition("@")
        row = release_sql.by_version(conn, name, version)
        if row is not None and row.id != release.id:
            return row, f"parent of {release.ref}"
    return None, None


def _eval_fact(run: EvalRunSummary, refs: dict[int, str]) -> EvalFact:
    record = run.document()
    outcomes = outcomes_from_record(record)
    base_id = run.baseline_release_id
    return EvalFact(
        suite=run.suite,
        run_id=run.id,
        passed=outcomes.passed,
        scores=outcomes.scores,
        suite_digest=run.suite_digest,
        baseline_digest=record.get("baseline_digest") if base_id is not None else None,
        baseline_ref=refs.get(base_id) if base_id is not None else None,
        baseline_passed=outcomes.baseline_passed,
        baseline_scores=outcomes.baseline_scores,
    )


def _requirements(policy: Policy | None, stage: str) -> list[EvalRequirement]:
    if policy is None:
        return []
    rules = policy.rules_for(stage)
    found = list(rules.evals) if rules else []
    return found + [e for rc in policy.risk_classes for e in rc.require.evals]


def release_facts(
    conn: Connection,
    release: Release,
    stage: str,
    policy: Policy | None,
    *,
    baseline: tuple[Release, str] | None = None,
) -> ReleaseFacts:
    base, source = baseline if baseline else baseline_for(conn, release, stage, policy)
    approvals = tuple(a.fact() for a in sql.approvals_of(conn, release.id))
    runs = sql.eval_runs_of(conn, release.id)
    refs: dict[int, str] = {}
    for run in runs:
        if run.baseline_release_id is not None and run.baseline_release_id not in refs:
            other = release_sql.by_id(conn, run.baseline_release_id)
            refs[run.baseline_release_id] = other.ref if other else "?"
    pins = {e.suite: e.digest for e in _requirements(policy, stage) if e.digest is not None}

    def rank(run: EvalRunSummary) -> tuple[bool, bool, int]:
        # the pinned suite version first, then a run against the baseline, then the newest
        pinned = pins.get(run.suite)
        against = base is not None and run.baseline_release_id == base.id
        return (pinned is None or run.suite_digest == pinned, against, run.id)

    chosen: dict[str, EvalRunSummary] = {}
    for run in runs:
        if run.suite not in chosen or rank(run) > rank(chosen[run.suite]):
            chosen[run.suite] = run
    evals = {suite: _eval_fact(run, refs) for suite, run in chosen.items()}
    signatures = tuple(c.fact() for c in release_signature_checks(conn, release))
    return ReleaseFacts(
        manifest=release.manifest(),
        digest=release.digest,
        baseline=base.manifest() if base else None,
        baseline_digest=base.digest if base else None,
        baseline_source=source,
        approvals=approvals,
        evals=evals,
        signatures=signatures,
    )


def decide(
    conn: Connection,
    release: Release,
    stage: str,
    *,
    policy_name: str | None = None,
    baseline: tuple[Release, str] | None = None,
) -> PolicyVerdict:
    """Every rule of the release's policy for ``stage``, evaluated now on ``conn``.

    ``baseline`` (a release and where it comes from) overrides the baseline search.
    """
    return _decide(conn, release, stage, policy_name=policy_name, baseline=baseline)[0]


def _decide(
    conn: Connection,
    release: Release,
    stage: str,
    *,
    policy_name: str | None = None,
    baseline: tuple[Release, str] | None = None,
) -> tuple[PolicyVerdict, ReleaseFacts | None]:
    found = stored_policy(conn, policy_name or release.model)
    if found is None or (found[0].rules_for(stage) is None and not found[0].risk_classes):
        # nothing to satisfy: skip gathering approvals, runs and signatures
        base = baseline[0] if baseline else None
        if baseline is None:
            base, _ = baseline_for(conn, release, stage, found[0] if found else None)
        verdict = PolicyVerdict(
            release.ref,
            stage,
            found[1] if found else None,
            (),
            baseline_ref=base.ref if base else None,
        )
        return verdict, None
    policy, version = found
    facts = release_facts(conn, release, stage, policy, baseline=baseline)
    return evaluate(policy, stage, facts, policy_version=version), facts


ROLLOUT_STAGES = ("rollout", "production")


def rollout_gate(conn: Connection, release: Release, service: str) -> PolicyVerdict:
    """The gate for starting a rollout of ``release`` on ``service``.

    The baseline is the service's stable release (what the candidate replaces).
    """
    name = service if sql.latest_policy(conn, service) is not None else release.model
    found = stored_policy(conn, name)
    stage = ROLLOUT_STAGES[-1]
    if found is not None and ROLLOUT_STAGES[0] in found[0].stages:
        stage = ROLLOUT_STAGES[0]
    baseline = None
    row = serving_sql.get(conn, service)
    if row is not None and "@" in row.stable_release:
        model, _, version = row.stable_release.partition("@")
        stable = release_sql.by_version(conn, model, version)
        if stable is not None and stable.id != release.id:
            baseline = (stable, f"stable release of service {service}")
    return decide(conn, release, stage, policy_name=name, baseline=baseline)


# -- moving an alias -------------------------------------------------------------------------


def move_alias(
    conn: Connection,
    release: Release,
    alias: str,
    *,
    actor: Actor,
    reason: str,
    at: datetime,
    verdict: PolicyVerdict | None = None,
    rollout: int | None = None,
    service: str | None = None,
) -> bool:
    """Point ``alias`` of the release's model at ``release``: the one ``alias.move`` writer.

    The caller decided (``verdict``, on ``conn``) and holds the audit lock. The event's
    details always have the same keys: from, to, digest, reason, policy_version,
    risk_classes, rollout and service (None where they do not apply). False when the
    alias already points there (nothing written).
    """
    mid = release_sql.model_id(conn, release.model)
    assert mid is not None
    current = alias_sql.get(conn, mid, alias, for_update=True)
    if current is not None and current.release_id == release.id:
        return False
    event = audit.append(
        conn,
        actor=actor.name,
        action="alias.move",
        subject=f"{release.model}@{alias}",
        details={
            "from": f"{release.model}@{current.version}" if current else None,
            "to": release.ref,
            "digest": release.digest,
            "reason": reason,
            "policy_version": verdict.policy_version if verdict else None,
            "risk_classes": [m.name for m in verdict.risk] if verdict else [],
            "rollout": rollout,
            "service": service,
        },
    )
    alias_sql.move(
        conn,
        model_id=mid,
        name=alias,
        from_release_id=current.release_id if current else None,
        to_release_id=release.id,
        actor=actor.name,
        reason=reason,
        at=at,
        event_seq=event.seq,
    )
    return True


def blocked_details(verdict: PolicyVerdict) -> dict[str, Any]:
    """What a ``policy.blocked`` event keeps about the verdict that refused a move."""
    return {
        "stage": verdict.stage,
        "policy_version": verdict.policy_version,
        "failed": [{"rule": r.rule, "why": r.why} for r in verdict.failures],
    }


# -- plan, then execute ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PromotionPlan:
    """What moving ``model@alias`` to ``target`` would do now; building it changes nothing."""

    model: str
    alias: str
    current: str | None  # the release the alias points at now; None: a new alias
    target: str
    digest: Digest
    verdict: PolicyVerdict
    approvals_found: tuple[str, ...]  # standing decisions for the stage: "bob (reviewer) approve"
    approvals_missing: tuple[str, ...]  # what the failing approval rules still need

    @property
    def moves(self) -> bool:
        return self.current != self.target

    @property
    def allowed(self) -> bool:
        return self.verdict.ok

    def lines(self) -> list[str]:
        """The plan as ``airlock alias set --dry-run`` prints it."""
        subject = f"{self.model}@{self.alias}"
        if not self.moves:
            head = f"{subject} already points at {self.target}: nothing to do"
        else:
            head = f"{subject}: {self.current or 'nothing'} -> {self.target}"
        out = [head, f"policy: {self.verdict.summary()}"]
        if self.verdict.policy_version is not None:
            out[-1] += f" (policy v{self.verdict.policy_version})"
        out += [f"  {r.line()}" for r in self.verdict.results]
        out.append(f"approvals found: {', '.join(self.approvals_found) or 'none'}")
        if self.approvals_missing:
            out.append(f"approvals missing: {'; '.join(self.approvals_missing)}")
        if self.moves:
            verb = "would move" if self.allowed else "would be refused"
            out.append(f"dry run: the alias {verb}; nothing was changed")
        return out


@dataclass(frozen=True, slots=True)
class AliasResult:
    model: str
    alias: str
    from_version: str | None
    to_version: str
    moved: bool


def _version(ref: str | None) -> str | None:
    return ref.partition("@")[2] if ref else None


class Promotion:
    """Plan and execute alias moves (what ``airlock alias set`` and the API call)."""

    def __init__(self, workspace: Workspace) -> None:
        from airlock.services.registry import Registry  # the registry delegates back here

        self.ws = workspace
        self.db = workspace.db
        self.registry = Registry(workspace)

    def plan_promotion(self, ref: str, stage: str) -> PromotionPlan:
        """Where ``stage`` points, where it would point, and the policy's verdict on it now."""
        check_alias(stage)
        with self.db.read() as conn:
            return self._plan(conn, self.registry.resolve_in(conn, ref), stage)

    def _plan(self, conn: Connection, release: Release, stage: str) -> PromotionPlan:
        mid = release_sql.model_id(conn, release.model)
        assert mid is not None
        now = alias_sql.get(conn, mid, stage)
        verdict, facts = _decide(conn, release, stage)
        found: tuple[str, ...] = ()
        if facts is not None:
            standing = standing_decisions(facts.approvals, stage)
            found = tuple(f"{a.actor} ({a.role}) {a.decision}" for _, a in sorted(standing.items()))
        missing = tuple(r.why for r in verdict.failures if r.rule in ("approvals", "no-rejection"))
        return PromotionPlan(
            model=release.model,
            alias=stage,
            current=f"{release.model}@{now.version}" if now else None,
            target=release.ref,
            digest=release.digest,
            verdict=verdict,
            approvals_found=found,
            approvals_missing=missing,
        )

    def execute(self, plan: PromotionPlan, *, actor: Actor, reason: str) -> AliasResult:
        """Move as planned, deciding again under the audit lock; Conflict if the alias moved
        since the plan was made, PolicyViolation (recorded) if the policy refuses now."""
        return self._execute(plan.alias, plan.target, actor=actor, reason=reason, expect=plan)

    def set_alias(self, alias: str, ref: str, *, actor: Actor, reason: str) -> AliasResult:
        """Plan and execute in one transaction (``airlock alias set`` without ``--dry-run``)."""
        return self._execute(alias, ref, actor=actor, reason=reason, expect=None)

    def _execute(
        self, alias: str, ref: str, *, actor: Actor, reason: str, expect: PromotionPlan | None
    ) -> AliasResult:
        check_alias(alias)
        if not reason.strip():
            raise InvalidInput("an alias move needs a reason", hint='add --reason "why this move"')
        check_length(reason, MAX_REASON, "reason")
        authorize(self.db, actor, Action.ALIAS_MOVE, f"{ref} -> {alias}")
        for attempt in range(_ALIAS_ATTEMPTS):
            try:
                return self._move(alias, ref, actor=actor, reason=reason, expect=expect)
            except alias_sql.AliasMovedMeanwhile:
                if attempt == _ALIAS_ATTEMPTS - 1:
                    raise Conflict(
                        f"alias {alias} was moved by someone else at the same time",
                        hint="look at `airlock alias history` and try again",
                    ) from None
        raise AssertionError("unreachable")

    def _move(
        self, alias: str, ref: str, *, actor: Actor, reason: str, expect: PromotionPlan | None
    ) -> AliasResult:
        with self.db.write() as conn:
            # Read and decide under the audit lock, taken first: concurrent moves run one
            # after the other, so each history row's "from" is the previous row's "to" and
            # the audit events come in the same order. Every approval, rejection or policy
            # change appends an event too, so none can land between this decision and the move.
            event_sql.lock_head(conn)
            row = self.registry.resolve_in(conn, ref)
            mid = release_sql.model_id(conn, row.model)
            assert mid is not None
            current = alias_sql.get(conn, mid, alias, for_update=True)
            now = f"{row.model}@{current.version}" if current else None
            if expect is not None and (now, row.ref) != (expect.current, expect.target):
                raise Conflict(
                    f"{row.model}@{alias} changed since the plan: it points at "
                    f"{now or 'nothing'} and {ref} is {row.ref}",
                    hint="make the plan again (`airlock alias set ... --dry-run`)",
                )
            if current is not None and current.release_id == row.id:
                return AliasResult(row.model, alias, row.version, row.version, moved=False)
            plan = self._plan(conn, row, alias)  # decided under the lock: final
            if not plan.allowed:
                audit.append(
                    conn,
                    actor=actor.name,
                    action="policy.blocked",
                    subject=f"{row.model}@{alias}",
                    details={
                        "action": "alias.move",
                        "to": row.ref,
                        **blocked_details(plan.verdict),
                    },
                )
            else:
                move_alias(
                    conn,
                    row,
                    alias,
                    actor=actor,
                    reason=reason,
                    at=datetime.now(UTC),
                    verdict=plan.verdict,
                )
        if not plan.allowed:  # the refusal is on the audit chain; now say which rules blocked
            raise PolicyViolation(
                plan.verdict.summary(),
                hint=f"run `airlock check {row.ref} --for {alias}` to see every rule",
            )
        return AliasResult(row.model, alias, _version(now), row.version, moved=True)


__all__ = [
    "AliasResult",
    "Promotion",
    "PromotionPlan",
    "baseline_for",
    "blocked_details",
    "decide",
    "move_alias",
    "release_facts",
    "rollout_gate",
    "stored_policy",
]
