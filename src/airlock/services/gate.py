"""The promotion gate: gather the facts about a release and apply its policy.

Everything here runs on the caller's connection, so ``Registry.set_alias`` (and
the rollout controller) decide inside the same transaction that makes the move:
the facts cannot change between the check and the change.

Which policy: the one stored under the model's name, or under ``policy_name``
(a service). Which baseline (the "current stable" release that risk classes and
evaluation comparisons are measured against): the release the policy's
``baseline`` alias points at, else the stage's own alias, else ``stable``, else
the release's lineage parent — skipping any that is the release itself.

Deciding: call the gate inside the write transaction that makes the change, after
``airlock.catalog.events.lock_head(conn)`` (as ``Registry.set_alias`` does): every
approval, rejection and policy change appends an audit event under that lock, so
none can land between the decision and the change.

Rollouts: :func:`rollout_gate` is what starting a rollout calls. A rollout puts the
candidate in front of users, so it must satisfy the ``production`` stage (the
``rollout`` stage when the policy names one), under the service's own policy
when one is stored under the service's name, else the model's. The verdict's
``rollout`` field carries what the rollout must honour (minimum canary time,
shadow phase first).
"""

from __future__ import annotations

import json

from sqlalchemy import Connection

from airlock.catalog import aliases as alias_sql
from airlock.catalog import governance as sql
from airlock.catalog import releases as release_sql
from airlock.catalog import serving as serving_sql
from airlock.core.evalsuite import outcomes_from_record
from airlock.core.policy import (
    ApprovalFact,
    EvalFact,
    EvalRequirement,
    Policy,
    PolicyVerdict,
    ReleaseFacts,
    evaluate,
    parse_policy,
)
from airlock.core.records import EvalRunSummary, Release
from airlock.errors import IntegrityError
from airlock.services.signatures import release_signature_checks


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
    record = json.loads(run.result)
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
    approvals = tuple(
        ApprovalFact(
            actor=a.actor,
            role=a.role,
            decision="approve" if a.decision == "approve" else "reject",
            stage=a.stage,
            at=a.at,
            comment=a.comment,
        )
        for a in sql.approvals_of(conn, release.id)
    )
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


def gate(
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
    found = stored_policy(conn, policy_name or release.model)
    if found is None or (found[0].rules_for(stage) is None and not found[0].risk_classes):
        # nothing to satisfy: skip gathering approvals, runs and signatures
        base = baseline[0] if baseline else None
        if baseline is None:
            base, _ = baseline_for(conn, release, stage, found[0] if found else None)
        return PolicyVerdict(
            release.ref,
            stage,
            found[1] if found else None,
            (),
            baseline_ref=base.ref if base else None,
        )
    policy, version = found
    facts = release_facts(conn, release, stage, policy, baseline=baseline)
    return evaluate(policy, stage, facts, policy_version=version)


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
    return gate(conn, release, stage, policy_name=name, baseline=baseline)
