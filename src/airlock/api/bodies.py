"""Request and response bodies of the governance, serving and rollout routes (pydantic, frozen).

The registry and audit bodies live in :mod:`airlock.api.schemas`; these are the
ones the later routers added. Response bodies are derived from the services' frozen
values (:mod:`airlock.api.derive`): the value's fields, and only what the JSON adds or
renames written here, so the OpenAPI document follows the values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from airlock.api.derive import From, Out
from airlock.core.policy import PolicyVerdict, RiskMatch, RolloutRequirements, RuleResult
from airlock.core.records import Approval, EvalRunSummary, PolicyVersion, TrustedKey
from airlock.core.series import ReleaseSeries, SeriesPoint
from airlock.core.traffic import PlanChange, TrafficPlan, WeightedRelease
from airlock.core.verdict import MetricVerdict, SrmReport, VerdictReport
from airlock.services.governance import DecisionResult, PolicyChange, SuiteComparison
from airlock.services.identity import Actor
from airlock.services.rollout_views import RolloutView
from airlock.services.serving import ServiceView
from airlock.services.signatures import AddedSignature, SignatureCheck, SignResult
from airlock.services.tokens import IssuedToken, TokenInfo


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True)


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# -- approvals -----------------------------------------------------------------------------


class ApprovalOut(Out):
    __value__ = From(Approval, exclude={"release_id"})


class DecisionIn(_In):
    stage: str = Field(min_length=1, max_length=64, description="the alias the release may take")
    comment: str = Field(default="", max_length=4000)


class DecisionOut(Out):
    __value__ = From(DecisionResult)
    recorded: bool = Field(description="always true: repeating a standing decision answers 409")


# -- policy ---------------------------------------------------------------------------------


class PolicyOut(Out):
    __value__ = From(PolicyVersion, exclude={"id"})


class PolicyIn(_In):
    document: str = Field(min_length=1, description="the policy as YAML or JSON text")
    reason: str = Field(default="", max_length=4000)


class PolicyChangeOut(Out):
    __value__ = From(PolicyChange, exclude={"policy"}, rename={"row": "policy"})
    created: bool = Field(description="false: identical to the current version")


class RuleOut(Out):
    __value__ = From(RuleResult)


class RiskOut(Out):
    __value__ = From(RiskMatch, exclude={"require"})


class RolloutNeedsOut(Out):
    __value__ = From(RolloutRequirements)


class CheckOut(Out):
    __value__ = From(
        PolicyVerdict,
        rename={"results": "rules", "risk": "risk_classes", "baseline_ref": "baseline"},
    )
    ok: bool


# -- evaluations ----------------------------------------------------------------------------


class EvalRunOut(Out):
    __value__ = From(
        EvalRunSummary,
        exclude={"release_id", "baseline_release_id", "result"},
        rename={"release_ref": "ref"},
    )
    baseline: str | None


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
    confidence: float = Field(
        default=0.95, description="of the intervals, between 0.5 and 1 (the service checks it)"
    )


class SuiteComparisonOut(Out):
    __value__ = From(SuiteComparison)


# -- signatures and keys ----------------------------------------------------------------------


class SignatureOut(Out):
    __value__ = From(SignatureCheck)


class SignaturesOut(_Body):
    ref: str
    signed: bool
    valid: bool = Field(description="at least one valid signature from a trusted key")
    signatures: list[SignatureOut]


class KeyOut(Out):
    __value__ = From(TrustedKey)
    public_key: str = Field(description="the PEM of the public key or CA certificate (public)")


class KeyIn(_In):
    public_key: str = Field(
        min_length=1, max_length=64_000, description="PEM: ed25519 or EC public key, or a CA cert"
    )
    name: str = Field(min_length=1, max_length=64)


class SignIn(_In):
    bundle: str = Field(
        min_length=1,
        max_length=4_000_000,
        description="a signature bundle made on the signer's machine (airlock or OpenSSF "
        "model.sig format); private keys never travel",
    )


class SignResultOut(Out):
    __value__ = From(SignResult)


class AddedSignatureOut(Out):
    __value__ = From(AddedSignature)
    trusted: bool = Field(description="valid with a trusted key now: the signature counts")


# -- tokens ------------------------------------------------------------------------------------


class TokenOut(Out):
    __value__ = From(TokenInfo)
    state: Literal["active", "expired", "revoked"]


class TokenIn(_In):
    user: str = Field(min_length=1, max_length=64)
    role: Literal["viewer", "author", "approver", "operator", "admin"]
    expires_in: str | None = Field(default=None, description="90m, 12h, 30d or 8w; none: never")
    note: str = Field(default="", max_length=500)


class IssuedTokenOut(Out):
    __value__ = From(IssuedToken)
    secret: str = Field(description="shown once; only its hash is stored")


class ReasonIn(_In):
    reason: str = Field(default="", max_length=4000)


class WhoAmIOut(Out):
    __value__ = From(Actor, rename={"name": "user"})
    may: list[str] = Field(description="every action this role may perform")


# -- services and telemetry -------------------------------------------------------------------


class WeightOut(Out):
    __value__ = From(WeightedRelease, rename={"weight": "weight_bp"})
    weight_bp: int = Field(description="basis points of user traffic (10000 = all)")
    weight_pct: float


class PlanOut(Out):
    __value__ = From(TrafficPlan)
    stable_pct: float


class MetricOut(Out):
    __value__ = From(
        MetricVerdict, unbounded={"ci_low", "ci_high", "evidence", "evidence_needed", "mde"}
    )


class SrmOut(Out):
    __value__ = From(SrmReport, unbounded={"evidence", "evidence_needed"})


class VerdictOut(Out):
    __value__ = From(VerdictReport)


class RolloutOut(Out):
    __value__ = From(RolloutView)
    spec: dict[str, Any]
    state: dict[str, Any]
    strategy: str
    phase: str
    step: int = Field(description="1-based step being run (or waiting for approval)")
    steps: int
    candidate_weight_pct: float


class ServiceOut(Out):
    __value__ = From(ServiceView, first=("name", "stable"))
    stable: str
    rollout: RolloutOut | None = Field(description="the rollout in flight, if any")


class PlanChangeOut(Out):
    __value__ = From(PlanChange, exclude={"service"})


class SeriesPointOut(Out):
    __value__ = From(SeriesPoint, exclude={"feedback_sum", "latency_histogram"})
    error_rate: float
    guardrail_rate: float
    feedback_mean: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class ReleaseTelemetryOut(Out):
    __value__ = From(ReleaseSeries)


class TelemetryOut(_Body):
    service: str
    since: datetime
    until: datetime
    step_seconds: float
    releases: list[ReleaseTelemetryOut]
