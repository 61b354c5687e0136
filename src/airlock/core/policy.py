"""Promotion policy: rules as data (YAML), evaluated by a pure function.

A policy belongs to a model (or a service) and says what a release must satisfy
before it may take an alias (a *stage*, e.g. ``production``) or become a rollout
candidate::

    description: Chat assistant promotion rules
    baseline: production          # the "current stable" release risk and evals compare with
    stages:
      production:
        approvals: {required: 1, roles: [approver, admin]}
        evals:
          - {suite: quality, min_pass_rate: 0.7, max_regression: 0.05, confidence: 0.95}
          - {suite: safety, min_pass_rate: 1.0}
        max_changed_components: 2
        allow_pickle: false
        require_signature: true
        require_lineage: true     # datasets with digests and the code commit
        required_notes: [summary]
        min_canary_minutes: 10
      "*":                        # any other alias
        allow_pickle: false
    risk_classes:
      - name: safety-change
        when: {components_changed: [safety_policy]}
        require: {approvals: 2, risk_assessment: true, min_canary_minutes: 60, shadow_first: true}
      - name: data-change
        when: {datasets_changed: true}
        require: {approvals: 2}
      - name: size-change
        when: {parameters_change_pct: 10}
        require: {evals: [{suite: quality, max_regression: 0.0, confidence: 0.9}]}

A risk class matches when *any* condition in its ``when`` holds; the diff is
taken against the baseline (the release the ``baseline`` alias points at; by
default the stage's own alias, then ``stable``, then the release's parent).

:func:`evaluate` turns (policy, stage, :class:`ReleaseFacts`) into a
:class:`PolicyVerdict`: one :class:`RuleResult` per rule with ``passed`` and a
sentence saying why, the matched risk classes, and the requirements the
rollout must honour (minimum canary time, shadow phase first).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from airlock.core import evalstats
from airlock.core.diff import ManifestDiff, diff_manifests
from airlock.core.digest import canonical_json, digest_bytes
from airlock.core.documents import load_mapping, validation_message
from airlock.core.manifest import Manifest
from airlock.core.names import check_alias, check_name
from airlock.core.roles import Role
from airlock.errors import InvalidInput

NoteField = Literal["summary", "changes", "caveats", "known_failure_modes", "risk_assessment"]
Metric = Literal["pass_rate", "score"]
ANY_STAGE = "*"


class _Rules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ApprovalRule(_Rules):
    required: int = Field(default=0, ge=0, le=20)
    roles: tuple[Role, ...] = (Role.APPROVER, Role.ADMIN)


class EvalRequirement(_Rules):
    """A suite that must have been run, with absolute and/or relative thresholds."""

    suite: str
    digest: str | None = None  # pin the suite's content (`airlock eval` prints it)
    metric: Metric = "pass_rate"
    min_pass_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    min_score: float | None = None
    # "not worse than the baseline by more than max_regression with confidence C":
    # the one-sided lower bound of (candidate − baseline) must be ≥ −max_regression.
    max_regression: float | None = Field(default=None, ge=0.0, le=1.0)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)

    @field_validator("suite")
    @classmethod
    def _suite(cls, v: str) -> str:
        return _named(v, "suite name")

    @field_validator("digest")
    @classmethod
    def _digest(cls, v: str | None) -> str | None:
        if v is not None and not (v.startswith("sha256:") and len(v) == 71):
            raise ValueError("a suite digest looks like sha256:<64 hex>")
        return v


class StageRules(_Rules):
    approvals: ApprovalRule = ApprovalRule()
    evals: tuple[EvalRequirement, ...] = ()
    max_changed_components: int | None = Field(default=None, ge=0)
    allow_pickle: bool = True
    require_signature: bool = False
    require_lineage: bool = False
    """The release must name its training data (datasets with digests) and code commit."""
    required_notes: tuple[NoteField, ...] = ()
    block_on_rejection: bool = True
    min_canary_minutes: float = Field(default=0.0, ge=0.0)
    shadow_first: bool = False


class RiskCondition(_Rules):
    components_changed: tuple[str, ...] = ()
    datasets_changed: bool = False
    training_config_changed: bool = False
    code_changed: bool = False
    files_changed: bool = False
    parameters_change_pct: float | None = Field(default=None, ge=0.0)
    first_release: bool = False

    def is_empty(self) -> bool:
        return self == RiskCondition()


class RiskRequirements(_Rules):
    approvals: int = Field(default=0, ge=0, le=20)
    risk_assessment: bool = False
    require_signature: bool = False
    evals: tuple[EvalRequirement, ...] = ()
    min_canary_minutes: float = Field(default=0.0, ge=0.0)
    shadow_first: bool = False


class RiskClass(_Rules):
    name: str
    description: str = ""
    when: RiskCondition
    require: RiskRequirements = RiskRequirements()

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _named(v, "risk class name")


class Policy(_Rules):
    schema_version: Literal[1] = 1
    description: str = ""
    baseline: str | None = None
    stages: dict[str, StageRules] = Field(default_factory=dict)
    risk_classes: tuple[RiskClass, ...] = ()

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, v: str | None) -> str | None:
        return None if v is None else _named(v, "baseline alias", alias=True)

    @field_validator("stages")
    @classmethod
    def _stages(cls, v: dict[str, StageRules]) -> dict[str, StageRules]:
        for stage in v:
            if stage != ANY_STAGE:
                _named(stage, "stage (alias) name", alias=True)
        return v

    @field_validator("risk_classes")
    @classmethod
    def _unique(cls, v: tuple[RiskClass, ...]) -> tuple[RiskClass, ...]:
        names = [r.name for r in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"risk class names must be unique; repeated: {', '.join(dupes)}")
        for r in v:
            if r.when.is_empty():
                raise ValueError(f"risk class {r.name!r} has no condition under 'when'")
        return v

    def rules_for(self, stage: str) -> StageRules | None:
        """The rules of ``stage``, else those of ``"*"``, else None (no rules)."""
        return self.stages.get(stage) or self.stages.get(ANY_STAGE)

    def canonical(self) -> bytes:
        return canonical_json(self.model_dump(mode="json"))

    def digest(self) -> str:
        return digest_bytes(self.canonical())


def _named(value: str, what: str, *, alias: bool = False) -> str:
    try:
        return check_alias(value) if alias else check_name(value, what)
    except InvalidInput as exc:
        raise ValueError(exc.message) from exc


def parse_policy(text: str) -> Policy:
    """Parse a policy document (YAML or JSON); ``InvalidInput`` names the bad field."""
    hint = "see `airlock policy set --help` for the policy format"
    data = load_mapping(text, "policy", hint=hint, empty_ok=True)
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(
            f"invalid policy: {validation_message(exc, 'policy')}", hint=hint
        ) from exc


# -- facts about a release -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ApprovalFact:
    actor: str
    role: str
    decision: Literal["approve", "reject"]
    stage: str
    at: datetime
    comment: str = ""


@dataclass(frozen=True, slots=True)
class EvalFact:
    """The latest stored run of one suite on the release (per-case outcomes kept)."""

    suite: str
    run_id: int
    passed: tuple[bool, ...]
    scores: tuple[float, ...]
    suite_digest: str | None = None
    baseline_digest: str | None = None
    baseline_ref: str | None = None
    baseline_passed: tuple[bool, ...] | None = None
    baseline_scores: tuple[float, ...] | None = None

    @property
    def n(self) -> int:
        return len(self.passed)

    @property
    def pass_rate(self) -> float:
        return sum(self.passed) / len(self.passed) if self.passed else 0.0

    @property
    def mean_score(self) -> float:
        return math.fsum(self.scores) / len(self.scores) if self.scores else 0.0


@dataclass(frozen=True, slots=True)
class SignatureFact:
    key_id: str
    key_name: str | None
    valid: bool
    why: str


@dataclass(frozen=True, slots=True)
class ReleaseFacts:
    manifest: Manifest
    digest: str
    baseline: Manifest | None = None
    baseline_digest: str | None = None
    baseline_source: str | None = None  # e.g. "chat@production"
    approvals: tuple[ApprovalFact, ...] = ()
    evals: Mapping[str, EvalFact] = field(default_factory=dict)
    signatures: tuple[SignatureFact, ...] = ()


# -- risk classes ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RiskMatch:
    name: str
    reasons: tuple[str, ...]
    require: RiskRequirements


def parameter_change_pct(diff: ManifestDiff) -> float | None:
    """|new − old| / old in percent; inf when a count appears or disappears; None if unchanged."""
    if diff.parameters is None:
        return None
    old, new = diff.parameters.old, diff.parameters.new
    if old is None or new is None or old == 0:
        return math.inf
    return float(abs(new - old) / old * 100.0)


def condition_reasons(cond: RiskCondition, diff: ManifestDiff | None) -> tuple[str, ...]:
    """Why ``cond`` holds for ``diff`` (empty: it does not). ``diff`` None: a first release."""
    if diff is None:
        return (
            ("first release: there is no baseline to compare with",) if cond.first_release else ()
        )
    reasons: list[str] = []
    changed = set(diff.changed_roles)
    for role in cond.components_changed:
        if role in changed:
            c = next(c for c in diff.components if c.key == role)
            reasons.append(f"component {role} changed ({c.old or '—'} → {c.new or '—'})")
    if cond.datasets_changed:
        keys = [c.key for c in diff.lineage if c.key.startswith("dataset ")]
        if keys:
            reasons.append(
                "training data changed: " + ", ".join(k[len("dataset ") :] for k in keys)
            )
    if cond.training_config_changed:
        keys = [c.key for c in diff.lineage if c.key.startswith("training_config.")]
        if keys:
            reasons.append("training configuration changed: " + ", ".join(keys))
    if cond.code_changed and any(c.key == "code commit" for c in diff.lineage):
        reasons.append("training code commit changed")
    if cond.files_changed and (diff.files_added or diff.files_removed or diff.files_changed):
        n = len(diff.files_added) + len(diff.files_removed) + len(diff.files_changed)
        reasons.append(f"{n} file(s) added, removed or changed")
    if cond.parameters_change_pct is not None:
        pct = parameter_change_pct(diff)
        if pct is not None and pct > cond.parameters_change_pct:
            assert diff.parameters is not None
            old, new = diff.parameters.old, diff.parameters.new
            shown = "n/a" if math.isinf(pct) else f"{pct:.1f} %"
            reasons.append(
                f"parameter count changed by {shown} ({old or 'unknown'} → {new or 'unknown'}), "
                f"more than {cond.parameters_change_pct:g} %"
            )
    return tuple(reasons)


def derive_risk(classes: Sequence[RiskClass], diff: ManifestDiff | None) -> tuple[RiskMatch, ...]:
    """The risk classes a change falls into, in policy order, each with its reasons."""
    out = []
    for rc in classes:
        reasons = condition_reasons(rc.when, diff)
        if reasons:
            out.append(RiskMatch(rc.name, reasons, rc.require))
    return tuple(out)


# -- the verdict -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleResult:
    rule: str
    passed: bool
    why: str
    source: str  # "stage production", "risk class safety-change"

    def line(self) -> str:
        return f"{'pass' if self.passed else 'FAIL'} {self.rule}: {self.why}"


@dataclass(frozen=True, slots=True)
class RolloutRequirements:
    min_canary_minutes: float = 0.0
    shadow_first: bool = False
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PolicyVerdict:
    ref: str
    stage: str
    policy_version: int | None
    results: tuple[RuleResult, ...]
    risk: tuple[RiskMatch, ...] = ()
    rollout: RolloutRequirements = RolloutRequirements()
    baseline_ref: str | None = None

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    def summary(self) -> str:
        if self.ok:
            return f"{self.ref} may take {self.stage}: {len(self.results)} rule(s) pass"
        parts = "; ".join(f"{r.rule} ({r.why})" for r in self.failures)
        return f"{self.ref} may not take {self.stage}: blocked by {parts}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "stage": self.stage,
            "ok": self.ok,
            "policy_version": self.policy_version,
            "baseline": self.baseline_ref,
            "rules": [
                {"rule": r.rule, "passed": r.passed, "why": r.why, "source": r.source}
                for r in self.results
            ],
            "risk_classes": [{"name": m.name, "reasons": list(m.reasons)} for m in self.risk],
            "rollout": {
                "min_canary_minutes": self.rollout.min_canary_minutes,
                "shadow_first": self.rollout.shadow_first,
                "reasons": list(self.rollout.reasons),
            },
        }


def evaluate(
    policy: Policy | None, stage: str, facts: ReleaseFacts, *, policy_version: int | None = None
) -> PolicyVerdict:
    """Every rule of ``policy`` for ``stage`` applied to ``facts``."""
    ref = facts.manifest.ref
    base_ref = facts.baseline.ref if facts.baseline else None
    if policy is None:
        return PolicyVerdict(ref, stage, None, (), baseline_ref=base_ref)
    diff = diff_manifests(facts.baseline, facts.manifest) if facts.baseline else None
    risk = derive_risk(policy.risk_classes, diff)
    rules = policy.rules_for(stage)
    if rules is None and not risk:
        return PolicyVerdict(ref, stage, policy_version, (), risk, baseline_ref=base_ref)
    rules = rules or StageRules()
    src = f"stage {stage}"
    results: list[RuleResult] = []

    # approvals: the largest requirement wins, one person counts once, never the author
    required, required_by = rules.approvals.required, src
    for m in risk:
        if m.require.approvals > required:
            required, required_by = m.require.approvals, f"risk class {m.name}"
    if required:
        results.append(_approvals(facts, stage, required, rules.approvals.roles, required_by))
    if rules.block_on_rejection:
        results.append(_rejections(facts, stage, src))

    evals = [(e, src) for e in rules.evals]
    evals += [(e, f"risk class {m.name}") for m in risk for e in m.require.evals]
    for req, source in evals:
        results.extend(_eval_rules(req, facts, source))

    if rules.max_changed_components is not None:
        results.append(_changed_components(rules.max_changed_components, diff, src))
    if not rules.allow_pickle:
        pickled = [f.path for f in facts.manifest.files if f.format and f.format.unsafe]
        results.append(
            RuleResult(
                "no-pickle",
                not pickled,
                f"pickle-based files: {', '.join(pickled)}" if pickled else "no pickle-based files",
                src,
            )
        )
    sig_sources = ([src] if rules.require_signature else []) + [
        f"risk class {m.name}" for m in risk if m.require.require_signature
    ]
    if sig_sources:
        results.append(_signature(facts, sig_sources[0]))
    if rules.require_lineage:
        results.append(_lineage(facts.manifest, src))
    for name in rules.required_notes:
        value = getattr(facts.manifest.notes, name)
        results.append(
            RuleResult(
                f"notes.{name}",
                bool(value),
                f"notes.{name} is present" if value else f"notes.{name} is empty",
                src,
            )
        )
    assessed = [m for m in risk if m.require.risk_assessment]
    if assessed and "risk_assessment" not in rules.required_notes:
        text = facts.manifest.notes.risk_assessment.strip()
        results.append(
            RuleResult(
                "risk-assessment",
                bool(text),
                "the notes carry a risk assessment"
                if text
                else "the notes have no risk_assessment; add one and push a new version",
                f"risk class {assessed[0].name}",
            )
        )

    canary, shadow, why = rules.min_canary_minutes, rules.shadow_first, []
    if rules.min_canary_minutes:
        why.append(f"{src}: canary ≥ {rules.min_canary_minutes:g} min")
    if rules.shadow_first:
        why.append(f"{src}: shadow first")
    for m in risk:
        if m.require.min_canary_minutes:
            canary = max(canary, m.require.min_canary_minutes)
            why.append(f"risk class {m.name}: canary ≥ {m.require.min_canary_minutes:g} min")
        if m.require.shadow_first:
            shadow = True
            why.append(f"risk class {m.name}: shadow first")
    return PolicyVerdict(
        ref,
        stage,
        policy_version,
        tuple(results),
        risk,
        RolloutRequirements(canary, shadow, tuple(why)),
        base_ref,
    )


def standing_decisions(approvals: Sequence[ApprovalFact], stage: str) -> dict[str, ApprovalFact]:
    """Each person's latest decision for ``stage`` (a later reject withdraws an approval)."""
    latest: dict[str, ApprovalFact] = {}
    for a in sorted(approvals, key=lambda a: a.at):
        if a.stage == stage:
            latest[a.actor] = a
    return latest


def _approvals(
    facts: ReleaseFacts, stage: str, required: int, roles: Sequence[Role], source: str
) -> RuleResult:
    author = facts.manifest.author
    counted, ignored = [], []
    for name, a in sorted(standing_decisions(facts.approvals, stage).items()):
        if a.decision != "approve":
            continue
        if name == author:
            ignored.append(f"{name} is the author")
        elif a.role not in roles:
            ignored.append(f"{name} approved as {a.role}")
        else:
            counted.append(f"{name} ({a.role})")
    who = ", ".join(counted) or "nobody"
    why = f"{len(counted)} of {required} approval(s) for {stage}: {who}"
    if ignored:
        why += f"; not counted: {', '.join(ignored)}"
    if len(counted) < required:
        why += f"; needs approvals from {' or '.join(r.value for r in roles)}, never the author"
    return RuleResult("approvals", len(counted) >= required, why, source)


def _rejections(facts: ReleaseFacts, stage: str, source: str) -> RuleResult:
    rejected = [
        a for a in standing_decisions(facts.approvals, stage).values() if a.decision == "reject"
    ]
    if not rejected:
        return RuleResult("no-rejection", True, f"nobody rejected it for {stage}", source)
    listed = "; ".join(
        f"{a.actor} ({a.role}) on {a.at:%Y-%m-%d}" + (f": {a.comment!r}" if a.comment else "")
        for a in rejected
    )
    return RuleResult("no-rejection", False, f"rejected for {stage} by {listed}", source)


def _eval_rules(req: EvalRequirement, facts: ReleaseFacts, source: str) -> list[RuleResult]:
    rule = f"eval:{req.suite}"
    run = facts.evals.get(req.suite)
    if run is None or run.n == 0:
        command = f"airlock eval {facts.manifest.ref} --suite FILE"
        if facts.baseline is not None:
            command += f" --baseline {facts.baseline.ref}"
        why = f"no evaluation run of suite {req.suite}; run `{command}` with that suite"
        return [RuleResult(rule, False, why, source)]
    if req.digest is not None and run.suite_digest != req.digest:
        return [
            RuleResult(
                rule,
                False,
                f"run #{run.run_id} used another version of suite {req.suite} "
                f"({(run.suite_digest or '?')[:19]}); the policy pins {req.digest[:19]}",
                source,
            )
        ]
    out = []
    value = run.pass_rate if req.metric == "pass_rate" else run.mean_score
    label = "pass rate" if req.metric == "pass_rate" else "mean score"
    detail = f" ({sum(run.passed)}/{run.n})" if req.metric == "pass_rate" else ""
    minimum = req.min_pass_rate if req.metric == "pass_rate" else req.min_score
    if req.metric == "score" and req.min_pass_rate is not None:
        ok = run.pass_rate >= req.min_pass_rate
        out.append(
            RuleResult(
                rule,
                ok,
                f"pass rate {run.pass_rate:.3f} {'≥' if ok else '<'} {req.min_pass_rate:g}",
                source,
            )
        )
    if minimum is not None:
        ok = value >= minimum
        out.append(
            RuleResult(
                rule,
                ok,
                f"{label} {value:.3f}{detail} {'≥' if ok else '<'} {minimum:g} (run #{run.run_id})",
                source,
            )
        )
    if req.max_regression is not None:
        out.append(_regression(req, run, facts, source))
    if not out:
        out.append(
            RuleResult(rule, True, f"{label} {value:.3f}{detail} (run #{run.run_id})", source)
        )
    return out


def _regression(
    req: EvalRequirement, run: EvalFact, facts: ReleaseFacts, source: str
) -> RuleResult:
    rule = f"eval:{req.suite}:vs-baseline"
    assert req.max_regression is not None
    if facts.baseline is None:
        return RuleResult(rule, True, "no baseline yet: nothing to regress from", source)
    if run.baseline_digest != facts.baseline_digest:
        compared = run.baseline_ref or "no baseline"
        return RuleResult(
            rule,
            False,
            f"run #{run.run_id} compared with {compared}, but the baseline is "
            f"{facts.baseline.ref} ({facts.baseline_source}); run `airlock eval "
            f"{facts.manifest.ref} --suite FILE --baseline {facts.baseline.ref}`",
            source,
        )
    if req.metric == "pass_rate":
        assert run.baseline_passed is not None
        cand: Sequence[bool] | Sequence[float] = run.passed
        base: Sequence[bool] | Sequence[float] = run.baseline_passed
        delta = run.pass_rate - sum(run.baseline_passed) / max(1, len(run.baseline_passed))
    else:
        assert run.baseline_scores is not None
        cand, base = run.scores, run.baseline_scores
        delta = run.mean_score - math.fsum(run.baseline_scores) / max(1, len(run.baseline_scores))
    low = evalstats.lower_bound(req.metric, cand, base, req.confidence)
    ok = low >= -req.max_regression - 1e-12
    label = "pass rate" if req.metric == "pass_rate" else "mean score"
    why = (
        f"Δ {label} {delta:+.3f} vs {facts.baseline.ref}; lower {req.confidence:.0%} bound "
        f"{low:+.3f} {'≥' if ok else '<'} −{req.max_regression:g}"
    )
    if not ok and delta >= -req.max_regression:
        why += f" (only {run.n} cases: more cases tighten the bound)"
    return RuleResult(rule, ok, why, source)


def _changed_components(limit: int, diff: ManifestDiff | None, source: str) -> RuleResult:
    if diff is None:
        return RuleResult(
            "max-changed-components", True, "first release: nothing to compare with", source
        )
    roles = diff.changed_roles
    ok = len(roles) <= limit
    listed = f": {', '.join(roles)}" if roles else ""
    why = f"{len(roles)} component(s) changed vs {diff.old}{listed} ({'≤' if ok else '>'} {limit})"
    return RuleResult("max-changed-components", ok, why, source)


def _lineage(manifest: Manifest, source: str) -> RuleResult:
    missing = []
    if not manifest.lineage.datasets:
        missing.append("no datasets (push with --dataset name=path-or-digest)")
    if manifest.lineage.code is None:
        missing.append("no code commit (push with --code-commit SHA)")
    why = "; ".join(missing) if missing else "datasets and code commit recorded"
    return RuleResult("lineage", not missing, why, source)


def _signature(facts: ReleaseFacts, source: str) -> RuleResult:
    valid = [s for s in facts.signatures if s.valid]
    if valid:
        names = ", ".join(s.key_name or s.key_id for s in valid)
        return RuleResult("signature", True, f"signed by trusted key(s): {names}", source)
    if not facts.signatures:
        return RuleResult(
            "signature",
            False,
            f"unsigned; run `airlock sign {facts.manifest.ref} --key KEY` with a trusted key",
            source,
        )
    why = "; ".join(f"{s.key_name or s.key_id}: {s.why}" for s in facts.signatures)
    return RuleResult("signature", False, f"no valid signature by a trusted key ({why})", source)
