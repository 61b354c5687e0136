"""Request and response bodies of the governance, serving and rollout routes (pydantic, frozen).

The registry and audit bodies live in :mod:`airlock.api.schemas`; these are the
ones the later routers added. Response bodies mirror the services' frozen value
objects field for field, so the OpenAPI document is the contract clients read.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True)


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# -- approvals -----------------------------------------------------------------------------


class ApprovalOut(_Body):
    id: int
    stage: str
    decision: str
    actor: str
    role: str
    comment: str
    at: datetime
    release_digest: str
    event_seq: int | None


class DecisionIn(_In):
    stage: str = Field(min_length=1, max_length=64, description="the alias the release may take")
    comment: str = Field(default="", max_length=4000)


class DecisionOut(_Body):
    ref: str
    stage: str
    decision: Literal["approve", "reject"]
    recorded: bool = Field(description="always true: repeating a standing decision answers 409")
    approval: ApprovalOut | None


# -- policy ---------------------------------------------------------------------------------


class PolicyOut(_Body):
    name: str
    version: int
    document: str
    digest: str
    reason: str
    created_at: datetime
    created_by: str
    event_seq: int | None


class PolicyIn(_In):
    document: str = Field(min_length=1, description="the policy as YAML or JSON text")
    reason: str = Field(default="", max_length=4000)


class PolicyChangeOut(_Body):
    policy: PolicyOut
    created: bool = Field(description="false: identical to the current version")
    previous: int | None


class RuleOut(_Body):
    rule: str
    passed: bool
    why: str
    source: str


class RiskOut(_Body):
    name: str
    reasons: list[str]


class RolloutNeedsOut(_Body):
    min_canary_minutes: float
    shadow_first: bool
    reasons: list[str]


class CheckOut(_Body):
    ref: str
    stage: str
    ok: bool
    policy_version: int | None
    baseline: str | None
    rules: list[RuleOut]
    risk_classes: list[RiskOut]
    rollout: RolloutNeedsOut


# -- evaluations ----------------------------------------------------------------------------


class EvalRunOut(_Body):
    id: int
    ref: str
    suite: str
    suite_digest: str
    baseline: str | None
    cases: int
    pass_rate: float
    mean_score: float
    baseline_pass_rate: float | None
    p_value: float | None
    actor: str
    started_at: datetime
    finished_at: datetime
    event_seq: int | None


class EvalRecordOut(EvalRunOut):
    record: dict[str, Any] = Field(description="the stored run: summary, comparison, every case")


class EvalIn(_In):
    suite: str = Field(
        min_length=1,
        max_length=1_000_000,
        description="the suite as YAML or JSON text, or the name of an example suite "
        "shipped with Airlock (quality, safety)",
    )
    baseline: str | None = Field(default=None, description="compare case by case with this")
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)


# -- signatures and keys ----------------------------------------------------------------------


class SignatureOut(_Body):
    key_id: str
    key_name: str | None
    signed_by: str | None
    at: datetime | None
    valid: bool
    why: str


class SignaturesOut(_Body):
    ref: str
    signed: bool
    valid: bool = Field(description="at least one valid signature from a trusted key")
    signatures: list[SignatureOut]


class KeyOut(_Body):
    key_id: str
    name: str
    added_at: datetime
    added_by: str
    revoked_at: datetime | None
    revoked_by: str | None


# -- tokens ------------------------------------------------------------------------------------


class TokenOut(_Body):
    id: str
    user: str
    role: str
    note: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    state: Literal["active", "expired", "revoked"]


class TokenIn(_In):
    user: str = Field(min_length=1, max_length=64)
    role: Literal["viewer", "author", "approver", "operator", "admin"]
    expires_in: str | None = Field(default=None, description="90m, 12h, 30d or 8w; none: never")
    note: str = Field(default="", max_length=500)


class IssuedTokenOut(_Body):
    id: str
    user: str
    role: str
    secret: str = Field(description="shown once; only its hash is stored")
    expires_at: datetime | None


class ReasonIn(_In):
    reason: str = Field(default="", max_length=4000)


class WhoAmIOut(_Body):
    user: str
    role: str
    token_id: str | None
    may: list[str] = Field(description="every action this role may perform")


# -- services and telemetry -------------------------------------------------------------------


class WeightOut(_Body):
    release: str
    weight_bp: int = Field(description="basis points of user traffic (10000 = all)")
    weight_pct: float


class PlanOut(_Body):
    service: str
    stable: str
    candidates: list[WeightOut]
    shadows: list[str]
    generation: int
    stable_pct: float


class MetricOut(_Body):
    metric: str
    outcome: Literal["pass", "fail", "inconclusive"]
    candidate_value: float
    stable_value: float
    effect: float
    ci_low: float | None  # null: unbounded
    ci_high: float | None
    threshold: float
    n_candidate: int
    n_stable: int
    effect_label: str
    reason: str
    evidence: float | None = None  # e-value so far; rolled back once it reaches evidence_needed
    evidence_needed: float | None = None
    mde: float | None = None  # smallest effect the data so far would expect to catch
    required: bool = False


class SrmOut(_Body):
    mismatch: bool
    observed_share: float
    planned_share: float
    evidence: float | None
    evidence_needed: float | None


class VerdictOut(_Body):
    outcome: Literal["pass", "fail", "inconclusive"]
    n_candidate: int
    n_stable: int
    reason: str
    per_metric: list[MetricOut]
    srm: SrmOut | None = None


class RolloutOut(_Body):
    id: int
    service: str
    kind: Literal["rollout", "drill"]
    candidate: str
    stable: str
    strategy: str
    spec: dict[str, Any]
    state: dict[str, Any]
    phase: str
    step: int = Field(description="1-based step being run (or waiting for approval)")
    steps: int
    candidate_weight_pct: float
    version: int
    reason: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    finished_at: datetime | None
    last_verdict: VerdictOut | None
    verdict_at: datetime | None


class ServiceOut(_Body):
    name: str
    stable: str
    plan: PlanOut
    opt_outs: list[str]
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    rollout: RolloutOut | None = Field(description="the rollout in flight, if any")


class PlanChangeOut(_Body):
    generation: int
    plan: PlanOut
    actor: str
    reason: str
    at: datetime
    event_seq: int | None


class SeriesPointOut(_Body):
    t: datetime = Field(description="start of the bucket")
    requests: int
    errors: int
    error_rate: float
    guardrail_flags: int
    guardrail_rate: float
    fallbacks: int
    feedback_count: int
    feedback_mean: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class ReleaseTelemetryOut(_Body):
    release: str
    traffic: Literal["live", "shadow"]
    totals: SeriesPointOut
    points: list[SeriesPointOut]


class TelemetryOut(_Body):
    service: str
    since: datetime
    until: datetime
    step_seconds: float
    releases: list[ReleaseTelemetryOut]
