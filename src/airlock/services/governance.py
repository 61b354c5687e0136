"""Governance by release reference: approvals, policies, checks, signatures.

``Governance(ws)`` is what the CLI and the API call. Every mutation checks the
actor's role first (:mod:`airlock.services.access`) and writes its audit event in
the transaction that makes the change; a refusal is an ``access.denied`` event.

Four-eyes is a rule about people: the author of a release can never approve it,
whatever their role (an admin included). It is enforced here, when the approval
is given, and again by policy evaluation, which never counts the author.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from airlock import audit
from airlock.catalog import events as event_sql
from airlock.catalog import governance as sql
from airlock.core.names import check_alias, check_name
from airlock.core.paging import (
    Page,
    cursor_int,
    cursor_time,
    decode_cursor,
    page_limit,
    page_of,
)
from airlock.core.policy import Policy, PolicyVerdict, parse_policy, standing_decisions
from airlock.core.records import Approval, EvalRunSummary, PolicyVersion, Release, TrustedKey
from airlock.core.roles import Action
from airlock.errors import Conflict, Forbidden, InvalidInput, NotFound
from airlock.services.access import authorize, forbidden, record_denial
from airlock.services.identity import Actor
from airlock.services.promotion import decide
from airlock.services.registry import Registry
from airlock.services.release_checks import importers
from airlock.services.signatures import (
    AddedSignature,
    SignatureCheck,
    Signatures,
    SignResult,
    release_signature_checks,
)
from airlock.services.workspace import Workspace

Decision = Literal["approve", "reject"]
MAX_POLICY_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class DecisionResult:
    ref: str
    stage: str
    decision: Decision
    recorded: bool  # always True: repeating a standing decision raises Conflict
    approval: Approval | None


@dataclass(frozen=True, slots=True)
class PolicyChange:
    row: PolicyVersion
    policy: Policy
    created: bool  # False: identical to the current version (nothing recorded)
    previous: int | None


@dataclass(frozen=True, slots=True)
class GovernanceSummary:
    """Everything governance knows about one release (for show, notes and the API)."""

    ref: str
    approvals: tuple[Approval, ...]
    evals: tuple[EvalRunSummary, ...]
    signatures: tuple[SignatureCheck, ...]


@dataclass(frozen=True, slots=True)
class SuiteComparison:
    """One suite across two releases: each one's latest run, and the latest paired run."""

    suite: str
    old: EvalRunSummary | None
    new: EvalRunSummary | None
    paired: EvalRunSummary | None  # a run of the new release with the old one as its baseline


class Governance:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.db = workspace.db
        self.registry = Registry(workspace)
        self.signatures = Signatures(workspace)

    # -- approvals -----------------------------------------------------------------------
    def approve(self, ref: str, *, stage: str, actor: Actor, comment: str = "") -> DecisionResult:
        return self._decide(ref, stage, "approve", actor, comment)

    def reject(self, ref: str, *, stage: str, actor: Actor, comment: str) -> DecisionResult:
        if not comment.strip():
            raise InvalidInput(
                "a rejection needs a reason", hint='add --comment "what is wrong with it"'
            )
        return self._decide(ref, stage, "reject", actor, comment)

    def _decide(
        self, ref: str, stage: str, decision: Decision, actor: Actor, comment: str
    ) -> DecisionResult:
        check_alias(stage)
        release = self.registry.resolve(ref)
        action = Action.RELEASE_APPROVE if decision == "approve" else Action.RELEASE_REJECT
        authorize(self.db, actor, action, release.ref)
        try:
            result, denial = self._record_decision(release, stage, decision, action, actor, comment)
        except sql.DecisionRaced:  # a concurrent identical call won (the unique constraint)
            raise _already(actor, decision, release.ref, stage) from None
        if denial is not None:
            raise denial
        assert result is not None
        return result

    def _record_decision(
        self,
        release: Release,
        stage: str,
        decision: Decision,
        action: Action,
        actor: Actor,
        comment: str,
    ) -> tuple[DecisionResult | None, Forbidden | None]:
        denial: Forbidden | None = None
        result: DecisionResult | None = None
        with self.db.write() as conn:
            # Under the audit lock, taken before reading: concurrent decisions by one
            # person run one after the other, and the second sees the first.
            event_sql.lock_head(conn)
            imported_by = importers(conn, release.ref) if decision == "approve" else frozenset()
            if decision == "approve" and (
                actor.name == release.author or actor.name in imported_by
            ):
                role = "author" if actor.name == release.author else "importer"
                why = (
                    f"four-eyes: {actor.name} is the {role} of {release.ref} and may not "
                    "approve it; another approver must"
                )
                record_denial(conn, actor, action, release.ref, why, stage=stage)
                denial = forbidden(actor, action, release.ref, why)
            else:
                rows = sql.approvals_of(conn, release.id)
                standing = standing_decisions([r.fact() for r in rows], stage).get(actor.name)
                if standing is not None and standing.decision == decision:
                    raise _already(actor, decision, release.ref, stage)
                event = audit.append(
                    conn,
                    actor=actor.name,
                    action=str(action),
                    subject=release.ref,
                    details={
                        "stage": stage,
                        "digest": release.digest,
                        "role": actor.role,
                        "comment": comment,
                    },
                )
                now = datetime.now(UTC)
                row_id = sql.insert_approval(
                    conn,
                    release_id=release.id,
                    release_digest=release.digest,
                    stage=stage,
                    decision=decision,
                    actor=actor.name,
                    role=actor.role,
                    comment=comment,
                    at=now,
                    event_seq=event.seq,
                )
                row = Approval(
                    row_id,
                    release.id,
                    release.digest,
                    stage,
                    decision,
                    actor.name,
                    actor.role,
                    comment,
                    now,
                    event.seq,
                )
                result = DecisionResult(release.ref, stage, decision, True, row)
        return result, denial

    def approvals(self, ref: str) -> list[Approval]:
        release = self.registry.resolve(ref)
        with self.db.read() as conn:
            return sql.approvals_of(conn, release.id)

    def approval_page(
        self, ref: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[Approval]:
        """``approvals`` a page at a time, oldest first (keyset on the time and id)."""
        size = page_limit(limit)
        after = decode_cursor(cursor, arity=2)
        key = (cursor_time(after[0]), cursor_int(after[1])) if after else None
        release = self.registry.resolve(ref)
        with self.db.read() as conn:
            rows = sql.approvals_of(conn, release.id, after=key, limit=size + 1)
        return page_of(rows, size, lambda a: [a.at.isoformat(), a.id])

    # -- policies --------------------------------------------------------------------------
    def set_policy(
        self, name: str, document: str, *, actor: Actor, reason: str = ""
    ) -> PolicyChange:
        """Store a new version of ``name``'s policy (a model or a service)."""
        check_name(name, "model or service name")
        if len(document.encode("utf-8")) > MAX_POLICY_BYTES:
            raise InvalidInput(f"the policy is larger than {MAX_POLICY_BYTES // 1024} KiB")
        policy = parse_policy(document)
        authorize(self.db, actor, Action.POLICY_SET, f"policy:{name}")
        digest = policy.digest()
        with self.db.write() as conn:
            event_sql.lock_head(conn)  # before reading: concurrent sets number in turn
            current = sql.latest_policy(conn, name)
            if current is not None and current.digest == digest:
                return PolicyChange(current, policy, False, current.version)
            version = current.version + 1 if current else 1
            event = audit.append(
                conn,
                actor=actor.name,
                action="policy.set",
                subject=f"policy:{name}",
                details={
                    "version": version,
                    "digest": digest,
                    "previous": current.version if current else None,
                    "reason": reason,
                },
            )
            now = datetime.now(UTC)
            sql.insert_policy(
                conn,
                name=name,
                version=version,
                document=document,
                digest=digest,
                reason=reason,
                at=now,
                by=actor.name,
                event_seq=event.seq,
            )
            row = sql.policy_version(conn, name, version)
        assert row is not None
        return PolicyChange(row, policy, True, current.version if current else None)

    def policy(self, name: str, version: int | None = None) -> tuple[PolicyVersion, Policy]:
        with self.db.read() as conn:
            row = (
                sql.latest_policy(conn, name)
                if version is None
                else sql.policy_version(conn, name, version)
            )
        if row is None:
            which = f"version {version} of the policy" if version else "a policy"
            raise NotFound(
                f"{name} has no {which}", hint=f"set one with `airlock policy set {name} FILE`"
            )
        return row, parse_policy(row.document)

    def policy_history(self, name: str | None = None) -> list[PolicyVersion]:
        with self.db.read() as conn:
            return sql.policy_history(conn, name)

    def policy_page(
        self, name: str | None = None, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[PolicyVersion]:
        """``policy_history`` a page at a time, by name then version (keyset on both)."""
        size = page_limit(limit)
        after = decode_cursor(cursor, arity=2)
        key = (str(after[0]), cursor_int(after[1])) if after else None
        with self.db.read() as conn:
            rows = sql.policy_history(conn, name, after=key, limit=size + 1)
        return page_of(rows, size, lambda p: [p.name, p.version])

    # -- checks ------------------------------------------------------------------------------
    def check(self, ref: str, stage: str, *, policy_name: str | None = None) -> PolicyVerdict:
        """What ``airlock check REF --for STAGE`` prints: every rule, pass or fail, and why."""
        check_alias(stage)
        with self.db.read() as conn:
            release = self.registry.resolve_in(conn, ref)
            return decide(conn, release, stage, policy_name=policy_name)

    # -- signatures by reference ------------------------------------------------------------
    def sign(self, ref: str, key: Ed25519PrivateKey, *, actor: Actor) -> SignResult:
        return self.signatures.sign(self.registry.resolve(ref), key, actor=actor)

    def add_signature(self, ref: str, bundle: str, *, actor: Actor) -> AddedSignature:
        """Store a bundle signed on another machine (airlock or OpenSSF format)."""
        return self.signatures.add(self.registry.resolve(ref), bundle, actor=actor)

    def verify_signatures(self, ref: str) -> list[SignatureCheck]:
        return self.signatures.verify(self.registry.resolve(ref))

    def trust_key(self, public_key: str, *, name: str, actor: Actor) -> TrustedKey:
        return self.signatures.trust(public_key, name=name, actor=actor)

    def revoke_key(self, name_or_id: str, *, actor: Actor, reason: str) -> TrustedKey:
        return self.signatures.revoke_key(name_or_id, actor=actor, reason=reason)

    def keys(self) -> list[TrustedKey]:
        return self.signatures.keys()

    def key_page(self, *, limit: int | None = None, cursor: str | None = None) -> Page[TrustedKey]:
        return self.signatures.key_page(limit=limit, cursor=cursor)

    # -- evaluations across two releases ---------------------------------------------------
    def eval_comparison(self, old: str, new: str) -> list[SuiteComparison]:
        a, b = self.registry.resolve(old), self.registry.resolve(new)
        with self.db.read() as conn:
            runs_a, runs_b = sql.eval_runs_of(conn, a.id), sql.eval_runs_of(conn, b.id)
        latest_a, latest_b = _latest(runs_a), _latest(runs_b)
        paired = _latest([r for r in runs_b if r.baseline_release_id == a.id])
        return [
            SuiteComparison(suite, latest_a.get(suite), latest_b.get(suite), paired.get(suite))
            for suite in sorted(set(latest_a) | set(latest_b))
        ]

    # -- everything about a release ------------------------------------------------------
    def summary(self, ref: str) -> GovernanceSummary:
        release = self.registry.resolve(ref)
        with self.db.read() as conn:
            return GovernanceSummary(
                release.ref,
                tuple(sql.approvals_of(conn, release.id)),
                tuple(sql.eval_runs_of(conn, release.id)),
                tuple(release_signature_checks(conn, release)),
            )


def _already(actor: Actor, decision: Decision, ref: str, stage: str) -> Conflict:
    done = "approved" if decision == "approve" else "rejected"
    return Conflict(
        f"{actor.name} already {done} {ref} for {stage}",
        hint="nothing to do: one person's decision counts once; "
        f"`airlock show {ref}` lists the decisions",
    )


def _latest(runs: list[EvalRunSummary]) -> dict[str, EvalRunSummary]:
    return {r.suite: r for r in runs}
