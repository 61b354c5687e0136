"""Is the candidate worse than stable? One verdict per look, valid over the whole rollout.

Input: one :class:`StepWindows` per *stratum* of the rollout so far — an
interval during which the traffic plan did not change (a step, or the wait for
a step's approval) — holding the candidate's and stable's
:class:`~airlock.core.window.ReleaseWindow` over that interval; the last one is
the stratum in progress. Output: an :class:`AnalysisVerdict` — ``fail`` (roll
back), ``pass`` (this step may advance) or ``inconclusive`` (wait) — with one
:class:`MetricVerdict` per metric and a sample-ratio check.

==============  ==============================================  =====================  ======
metric          harm                                            test                   weight
==============  ==============================================  =====================  ======
error_rate      candidate/stable rate of failed calls > 1+tol   arm labels (exact)     1
guardrail_rate  candidate/stable rate of guardrail flags        arm labels (exact)     1
latency         θ = P(cand > (1+tol)·stable) > ½  (body)        normal mixture         1
latency_tail    candidate share above (1+tol)·stable p99        arm labels (exact)     1
ttft            θ for time to first token of streamed answers    normal mixture         ½
fallback_rate   candidate/stable rate of fallbacks (off)         arm labels             1
feedback        candidate/stable rate of thumbs-down (off)       arm labels             1
custom.NAME     candidate/stable rate of failures (or successes) arm labels             1
==============  ==============================================  =====================  ======

Tolerances of rates are *relative* (``tolerance: 0.2`` lets the candidate's
error rate be up to 1.2× stable's); latency tolerances are relative
slow-downs. Every metric's e-process (:mod:`airlock.core.evidence`) multiplies
over the strata of the rollout, so evidence gathered at 5 % is not thrown
away at 25 %, and the chance of *ever* rolling back a harmless candidate — at
any step, at any look — is at most α, split between the enabled metrics in
proportion to their weights (a weighted Bonferroni: metric ``m`` rolls back
when its evidence reaches ``Σw / (α·w_m)``). A metric that receives no data
never moves its evidence, so it cannot cause a rollback; its share of α is
reserved, not re-spent (re-spending it after the fact would break the
guarantee), which is why the metrics that usually have no data (feedback,
fallbacks) are off unless a spec turns them on.

Decision rule:

* **fail** as soon as any metric's evidence reaches its threshold;
* **pass** once the current step has ``min_requests`` on both sides and every
  *required* metric has data there (a required custom metric that receives no
  data holds the step: never a silent pass) — "no evidence of harm"; the bake
  time is what gives the test its time to find harm, and each verdict reports
  the **minimum detectable effect** the data so far could have caught;
* **inconclusive** otherwise; and a **sample-ratio mismatch** (the candidate's
  observed share of requests contradicts the plan, see :mod:`airlock.core.srm`)
  makes the verdict ``inconclusive`` with ``srm.mismatch`` set, which pauses the
  rollout: its other comparisons cannot be trusted.

Nothing here divides by zero or returns NaN: zero counts, empty windows and
windows without cluster detail (taken as independent requests) are all fine.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from airlock.core.evidence import (
    GRID,
    detectable_effect,
    label_loglik,
    normal_bounds,
    normal_log_evalue,
    normal_tau,
    rate_bounds,
    rate_dispersion,
    rate_log_evalue,
)
from airlock.core.latency import body_stats, dense_cells, tail_counts
from airlock.core.srm import SrmCheck, request_dispersion, share_log_evalue, share_loglik
from airlock.core.traffic import BUCKETS
from airlock.core.verdict import MetricVerdict, Outcome, SrmReport, VerdictReport
from airlock.core.verdict_text import ratio, theta
from airlock.core.window import (
    CLUSTERS,
    LATENCY_BUCKETS_MS,
    LATENCY_HISTOGRAM_SIZE,
    ReleaseWindow,
    cells_quantile,
    custom_field,
    latency_bucket,
    latency_quantile,
)

Array = NDArray[np.float64]

# -- settings -------------------------------------------------------------------


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RateMetric(_Settings):
    """A rate of bad events; harm = candidate rate > (1 + tolerance) × stable rate."""

    enabled: bool = True
    tolerance: float = Field(default=0.0, ge=0.0, le=100.0)
    required: bool = True
    weight: float = Field(default=1.0, gt=0.0, le=100.0)


class LatencyMetric(_Settings):
    """Harm = the candidate slower than stable by more than ``tolerance`` (relative),
    in the body (Mann-Whitney θ) or in the tail (share above stable's ``tail_quantile``)."""

    enabled: bool = True
    tolerance: float = Field(default=0.10, ge=0.0, le=10.0)
    required: bool = True
    weight: float = Field(default=1.0, gt=0.0, le=100.0)
    tail: bool = True
    tail_quantile: float = Field(default=0.99, ge=0.5, le=0.999)
    tail_weight: float = Field(default=1.0, gt=0.0, le=100.0)
    tail_required: bool = False
    """Whether a step waits for the tail test's data (stable needs ~400 requests for its
    p99 reference); off by default: the tail can always roll back, it never holds a step."""


class TtftMetric(_Settings):
    """Time to first token of streamed answers; harm as for the latency body."""

    enabled: bool = True
    tolerance: float = Field(default=0.10, ge=0.0, le=10.0)
    required: bool = False
    weight: float = Field(default=0.5, gt=0.0, le=100.0)


class FeedbackMetric(_Settings):
    """Harm = the candidate's share of negative feedback > (1 + tolerance) × stable's.

    A score ``x`` in [0, 1] counts ``1 − x`` bad (thumbs down = 1 bad event).
    """

    enabled: bool = False
    tolerance: float = Field(default=0.0, ge=0.0, le=100.0)
    required: bool = False
    weight: float = Field(default=1.0, gt=0.0, le=100.0)


class CustomMetric(_Settings):
    """A named pass/fail or [0, 1] score the gateway counts as (successes, trials)."""

    higher_is_better: bool = True
    tolerance: float = Field(default=0.0, ge=0.0, le=100.0)
    required: bool = False
    weight: float = Field(default=1.0, gt=0.0, le=100.0)
    gating: bool = True
    """False: judged and reported, never a rollback (e.g. a judge people disagree with).
    Its share of α stays reserved, so turning gating off never loosens the others."""
    note: str = ""
    """Why the metric does not gate, shown with its verdict."""


class MetricSettings(_Settings):
    error_rate: RateMetric = RateMetric()
    latency: LatencyMetric = LatencyMetric()
    ttft: TtftMetric = TtftMetric()
    guardrail_rate: RateMetric = RateMetric()
    # Off by default: a stable release usually has nothing to fall back to, so its
    # rate is 0 and any masked candidate failure would count as harm twice (it is
    # already an error). Enable it when the stable release has a fallback too.
    fallback_rate: RateMetric = RateMetric(enabled=False, required=False)
    feedback: FeedbackMetric = FeedbackMetric()
    custom: dict[str, CustomMetric] = Field(default_factory=dict)


class AnalysisSettings(_Settings):
    """How a rollout judges its candidate (part of every rollout spec)."""

    alpha: float = Field(default=0.01, gt=0.0, lt=0.5)
    """Chance of ever rolling back a harmless candidate, over the whole rollout."""
    min_requests: int = Field(default=200, ge=1)
    """Requests each side needs in a step before it can pass."""
    max_step_seconds: float = Field(default=3600.0, gt=0.0)
    """A step still short of data this long after it started triggers ``on_insufficient_data``."""
    on_insufficient_data: Literal["rollback", "pause"] = "pause"
    mixture_requests: int = Field(default=1000, ge=1)
    """Requests per side at which the latency tests are tuned to be sharpest."""
    srm_alpha: float = Field(default=0.001, ge=0.0, lt=0.5)
    """Level of the sample-ratio check (0 turns it off); a mismatch pauses the rollout."""
    metrics: MetricSettings = MetricSettings()

    def weights(self) -> dict[str, float]:
        """The enabled metrics and their α weights, in a stable order."""
        m = self.metrics
        out: dict[str, float] = {}
        for name, cfg in (("error_rate", m.error_rate), ("guardrail_rate", m.guardrail_rate)):
            if cfg.enabled:
                out[name] = cfg.weight
        if m.latency.enabled:
            out["latency"] = m.latency.weight
            if m.latency.tail:
                out["latency_tail"] = m.latency.tail_weight
        if m.ttft.enabled:
            out["ttft"] = m.ttft.weight
        if m.fallback_rate.enabled:
            out["fallback_rate"] = m.fallback_rate.weight
        if m.feedback.enabled:
            out["feedback"] = m.feedback.weight
        for name, custom in sorted(m.custom.items()):
            out[f"custom.{name}"] = custom.weight
        return out

    def metric_count(self) -> int:
        return len(self.weights())

    def metric_alpha(self, metric: str | None = None) -> float:
        """A metric's share of α (the smallest share when ``metric`` is None)."""
        weights = self.weights()
        if not weights:
            return self.alpha
        total = sum(weights.values())
        w = weights[metric] if metric is not None else min(weights.values())
        return self.alpha * w / total


# -- what a stratum contributes ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepWindows:
    """Both releases' traffic over one stratum (constant plan) of a rollout.

    ``weight_bp`` is the candidate's planned share of user traffic; ``mirror``
    marks a 0 % or 100 % step, where one side is mirrored copies.
    """

    candidate: ReleaseWindow
    stable: ReleaseWindow
    weight_bp: int | None = None
    mirror: bool = False


@dataclass(frozen=True, slots=True)
class _RateStep:
    loglik: Array
    bad_c: Array
    exposure_c: Array
    bad_s: Array
    exposure_s: Array
    x_c: float
    n_c: float
    x_s: float
    n_s: float

    @property
    def share(self) -> float:
        total = self.n_c + self.n_s
        return self.n_c / total if total > 0 else 0.0


@dataclass(frozen=True, slots=True)
class _NormalStep:
    effect: float
    variance: float
    n_c: float
    n_s: float
    value_c: float
    value_s: float


@dataclass(frozen=True, slots=True)
class StepEvidence:
    """What one stratum adds to each metric's evidence (cache it once a stratum is over)."""

    rates: dict[str, _RateStep]
    normals: dict[str, _NormalStep]
    requests_c: int
    requests_s: int
    weight_bp: int | None
    mirror: bool
    cluster_requests_c: Array = field(repr=False)
    cluster_requests_s: Array = field(repr=False)


# -- verdicts out -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnalysisVerdict:
    outcome: Outcome
    per_metric: tuple[MetricVerdict, ...]
    n_candidate: int
    n_stable: int
    reason: str
    srm: SrmCheck | None = None

    @property
    def srm_mismatch(self) -> bool:
        return self.srm is not None and self.srm.mismatch

    def metric(self, name: str) -> MetricVerdict:
        for m in self.per_metric:
            if m.metric == name:
                return m
        raise KeyError(name)

    def report(self) -> VerdictReport:
        """The verdict as it is stored with the rollout and shown (see :mod:`.verdict`)."""
        srm = None
        if self.srm is not None:
            srm = SrmReport(
                mismatch=self.srm.mismatch,
                observed_share=self.srm.observed_share,
                planned_share=self.srm.planned_share,
                evidence=math.exp(min(self.srm.log_evidence, 700.0)),
                evidence_needed=math.exp(self.srm.log_threshold),
            )
        return VerdictReport(
            self.outcome, self.n_candidate, self.n_stable, self.reason, self.per_metric, srm
        )

    def to_dict(self) -> dict[str, Any]:
        return self.report().to_dict()


# -- per-stratum evidence -------------------------------------------------------------

_RATES: dict[str, tuple[str, str, str]] = {
    # metric: (label, bad field, exposure field)
    "error_rate": ("error rate", "errors", "requests"),
    "guardrail_rate": ("guardrail flag rate", "guardrail_flags", "requests"),
    "fallback_rate": ("fallback rate", "fallbacks", "requests"),
}
_ZEROS = np.zeros(CLUSTERS)


def _clusters(w: ReleaseWindow, name: str) -> Array:
    values = w.clusters.get(name)
    return np.asarray(values, dtype=np.float64) if values is not None else _ZEROS


def _rate_parts(
    w: ReleaseWindow, metric: str, settings: AnalysisSettings
) -> tuple[float, float, Array, Array]:
    """(bad, exposure, bad per cluster, exposure per cluster) of one release for a rate metric."""
    if metric in _RATES:
        _, bad, exposure = _RATES[metric]
        return (
            float(getattr(w, bad)),
            float(getattr(w, exposure)),
            _clusters(w, bad),
            _clusters(w, exposure),
        )
    if metric == "feedback":
        count = _clusters(w, "feedback_count")
        return (
            w.feedback_count - w.feedback_sum,
            float(w.feedback_count),
            np.maximum(count - _clusters(w, "feedback_sum"), 0.0),
            count,
        )
    name = metric.removeprefix("custom.")
    successes, trials = w.custom.get(name, (0.0, 0.0))
    s_g = _clusters(w, custom_field(name, "successes"))
    t_g = _clusters(w, custom_field(name, "trials"))
    if settings.metrics.custom[name].higher_is_better:
        return trials - successes, trials, np.maximum(t_g - s_g, 0.0), t_g
    return successes, trials, s_g, t_g


def _rate_tolerance(metric: str, settings: AnalysisSettings) -> float:
    m = settings.metrics
    if metric in ("error_rate", "guardrail_rate", "fallback_rate"):
        cfg: RateMetric = getattr(m, metric)
        return cfg.tolerance
    if metric == "latency_tail":
        return 0.0
    if metric == "feedback":
        return m.feedback.tolerance
    return m.custom[metric.removeprefix("custom.")].tolerance


def _rate_step(
    x_c: float,
    n_c: float,
    x_s: float,
    n_s: float,
    clusters: tuple[Array, Array, Array, Array],
    tol: float,
) -> _RateStep:
    return _RateStep(
        label_loglik(x_c, n_c, x_s, n_s, math.log1p(tol)),
        *clusters,
        x_c=x_c,
        n_c=n_c,
        x_s=x_s,
        n_s=n_s,
    )


def _normal_step(
    cand: Array,
    stab: Array,
    cells_c: Mapping[int, int],
    cells_s: Mapping[int, int],
    tolerance: float,
) -> _NormalStep:
    """The body comparison of one stratum's cells (latency or time to first token)."""
    stats = body_stats(cand, stab, tolerance)
    return _NormalStep(
        float(stats.effect),
        float(stats.variance),
        float(stats.n_candidate),
        float(stats.n_stable),
        cells_quantile(cells_c, 0.5),
        cells_quantile(cells_s, 0.5),
    )


def step_evidence(step: StepWindows, settings: AnalysisSettings) -> StepEvidence:
    """The sufficient statistics one stratum contributes (pure; cache when it is over)."""
    c, s = step.candidate, step.stable
    weights = settings.weights()
    rates: dict[str, _RateStep] = {}
    normals: dict[str, _NormalStep] = {}
    for metric in weights:
        if metric in ("latency", "latency_tail", "ttft"):
            continue
        xc, nc, bc, ec = _rate_parts(c, metric, settings)
        xs, ns, bs, es = _rate_parts(s, metric, settings)
        rates[metric] = _rate_step(
            xc, nc, xs, ns, (bc, ec, bs, es), _rate_tolerance(metric, settings)
        )
    lat = settings.metrics.latency
    if "latency" in weights and (c.latency_cells or s.latency_cells):
        cand, stab = dense_cells(c.latency_cells), dense_cells(s.latency_cells)
        normals["latency"] = _normal_step(
            cand, stab, c.latency_cells, s.latency_cells, lat.tolerance
        )
        if "latency_tail" in weights:
            t = tail_counts(cand, stab, lat.tolerance, lat.tail_quantile)
            rates["latency_tail"] = _rate_step(
                float(t.bad_c.sum()),
                float(t.exposure_c.sum()),
                float(t.bad_s.sum()),
                float(t.exposure_s.sum()),
                (t.bad_c, t.exposure_c, t.bad_s, t.exposure_s),
                0.0,
            )
    if "ttft" in weights and (c.ttft_cells or s.ttft_cells):
        normals["ttft"] = _normal_step(
            dense_cells(c.ttft_cells),
            dense_cells(s.ttft_cells),
            c.ttft_cells,
            s.ttft_cells,
            settings.metrics.ttft.tolerance,
        )
    return StepEvidence(
        rates,
        normals,
        c.requests,
        s.requests,
        step.weight_bp,
        step.mirror,
        _clusters(c, "requests"),
        _clusters(s, "requests"),
    )


# -- the verdict ------------------------------------------------------------------------


def analyze(
    candidate: ReleaseWindow,
    stable: ReleaseWindow,
    settings: AnalysisSettings | None = None,
    *,
    weight_bp: int | None = None,
    mirror: bool = False,
    history: Sequence[StepEvidence] = (),
) -> AnalysisVerdict:
    """Judge the current stratum (``candidate`` vs ``stable``) with the evidence of earlier ones.

    ``weight_bp`` is the candidate's planned share (enables the sample-ratio
    check); ``history`` holds :func:`step_evidence` of the rollout's earlier strata.
    """
    settings = settings if settings is not None else AnalysisSettings()
    current = step_evidence(StepWindows(candidate, stable, weight_bp, mirror), settings)
    return judge([*history, current], settings)


def judge(steps: Sequence[StepEvidence], settings: AnalysisSettings) -> AnalysisVerdict:
    """The verdict over strata ``steps`` (the last one is in progress)."""
    if not steps:
        raise ValueError("judge needs at least the current stratum")
    weights = settings.weights()
    total_weight = sum(weights.values()) or 1.0
    current = steps[-1]
    verdicts = []
    for metric, weight in weights.items():
        log_threshold = math.log(total_weight / (settings.alpha * weight))
        if metric in ("latency", "ttft"):
            verdicts.append(_judge_normal(metric, steps, settings, log_threshold))
        else:
            verdicts.append(_judge_rate(metric, steps, settings, log_threshold))
    verdicts = [_reported(v, settings) for v in verdicts]
    srm = _srm(steps, settings)
    failed = [v for v in verdicts if v.outcome == "fail"]
    n_c, n_s, need = current.requests_c, current.requests_s, settings.min_requests
    waiting = [v for v in verdicts if v.required and v.outcome != "pass"]
    if failed:
        outcome: Outcome = "fail"
        reason = "; ".join(f"{v.metric}: {v.reason}" for v in failed)
    elif srm is not None and srm.mismatch:
        outcome, reason = "inconclusive", srm.reason
    elif n_c < need or n_s < need:
        outcome = "inconclusive"
        reason = f"{n_c} candidate and {n_s} stable requests in this step; each side needs {need}"
    elif waiting:
        outcome = "inconclusive"
        reason = "; ".join(f"{v.metric}: {v.reason}" for v in waiting)
    else:
        outcome = "pass"
        reason = f"no evidence of harm on {len(verdicts)} metrics after {n_c} candidate requests"
    return AnalysisVerdict(outcome, tuple(verdicts), n_c, n_s, reason, srm)


def _reported(v: MetricVerdict, settings: AnalysisSettings) -> MetricVerdict:
    """A metric that may not gate: its fail is shown as evidence, never acted on."""
    if not v.metric.startswith("custom."):
        return v
    cfg = settings.metrics.custom[v.metric.removeprefix("custom.")]
    if cfg.gating:
        return v
    why = cfg.note or "this metric does not gate"
    outcome: Outcome = "inconclusive" if v.outcome == "fail" else v.outcome
    return replace(v, outcome=outcome, required=False, reason=f"not gating ({why}): {v.reason}")


def _required(metric: str, settings: AnalysisSettings) -> bool:
    m = settings.metrics
    if metric == "latency":
        return m.latency.required
    if metric == "latency_tail":
        return m.latency.required and m.latency.tail_required
    if metric == "ttft":
        return m.ttft.required
    if metric in ("error_rate", "guardrail_rate", "fallback_rate"):
        cfg: RateMetric = getattr(m, metric)
        return cfg.required
    if metric == "feedback":
        return m.feedback.required
    return m.custom[metric.removeprefix("custom.")].required


def _rate_label(metric: str, settings: AnalysisSettings) -> str:
    if metric in _RATES:
        return f"candidate/stable {_RATES[metric][0]}"
    if metric == "latency_tail":
        q = settings.metrics.latency.tail_quantile
        return f"candidate/stable share of requests above stable's p{q * 100:g}"
    if metric == "feedback":
        return "candidate/stable share of negative feedback"
    name = metric.removeprefix("custom.")
    kind = "failure" if settings.metrics.custom[name].higher_is_better else "success"
    return f"candidate/stable {name} {kind} rate"


def _judge_rate(
    metric: str, steps: Sequence[StepEvidence], settings: AnalysisSettings, log_threshold: float
) -> MetricVerdict:
    parts = [s.rates[metric] for s in steps if metric in s.rates]
    required = _required(metric, settings)
    label = _rate_label(metric, settings)
    tol = _rate_tolerance(metric, settings)
    log_r0 = math.log1p(tol)
    now = steps[-1].rates.get(metric)
    if not parts:
        return _no_data(metric, required, label, 1.0 + tol, log_threshold)
    loglik = np.sum([p.loglik for p in parts], axis=0)
    shares = np.array([p.share for p in parts])
    phi = float(
        rate_dispersion(
            np.stack([p.bad_c for p in parts]),
            np.stack([p.exposure_c for p in parts]),
            np.stack([p.bad_s for p in parts]),
            np.stack([p.exposure_s for p in parts]),
            shares,
        )
    )
    log_e = float(rate_log_evalue(loglik, phi))
    low, high = rate_bounds(loglik, phi, log_threshold, log_r0)
    events = sum(p.x_c + p.x_s for p in parts)
    effect = math.exp(log_r0 + float(GRID[int(np.argmax(loglik))])) if events > 0 else 1.0
    info = sum((p.x_c + p.x_s) * p.share * (1 - p.share) for p in parts) / phi
    mde_eta = detectable_effect(info, log_threshold)
    x_c, n_c = (now.x_c, now.n_c) if now else (0.0, 0.0)
    x_s, n_s = (now.x_s, now.n_s) if now else (0.0, 0.0)
    fmt = ratio
    outcome, reason = _outcome(
        log_e >= log_threshold,
        n_c,
        n_s,
        settings.min_requests,
        failed=f"{label} is at least {fmt(math.exp(low))} (estimate {fmt(effect)}), above "
        f"the tolerated {fmt(1 + tol)}",
        missing="data",
        passed=f"no evidence of harm; {label} is at most {fmt(math.exp(high))}",
    )
    return MetricVerdict(
        metric=metric,
        outcome=outcome,
        candidate_value=x_c / n_c if n_c > 0 else 0.0,
        stable_value=x_s / n_s if n_s > 0 else 0.0,
        effect=effect,
        ci_low=math.exp(low) if math.isfinite(low) else 0.0,
        ci_high=math.exp(high) if math.isfinite(high) else math.inf,
        threshold=1.0 + tol,
        n_candidate=int(n_c),
        n_stable=int(n_s),
        effect_label=label,
        reason=reason,
        evidence=math.exp(min(log_e, 700.0)),
        evidence_needed=math.exp(log_threshold),
        mde=math.exp(log_r0 + mde_eta) if math.isfinite(mde_eta) else math.inf,
        required=required,
    )


def _judge_normal(
    metric: str, steps: Sequence[StepEvidence], settings: AnalysisSettings, log_threshold: float
) -> MetricVerdict:
    parts = [s.normals[metric] for s in steps if metric in s.normals]
    parts = [p for p in parts if p.variance > 0]
    required = _required(metric, settings)
    tol = (
        settings.metrics.latency.tolerance
        if metric == "latency"
        else settings.metrics.ttft.tolerance
    )
    what = "latency" if metric == "latency" else "time to first token"
    label = f"P(candidate {what} > {1 + tol:g} × stable's)"
    if not parts:
        return _no_data(metric, required, label, 0.5, log_threshold)
    z = sum(p.effect / p.variance for p in parts)
    info = sum(1.0 / p.variance for p in parts)
    alpha_m = math.exp(-log_threshold)
    tau = normal_tau(12.0 * settings.mixture_requests, min(alpha_m, 0.49))
    log_e = float(normal_log_evalue(z, info, tau))
    low, high = normal_bounds(z, info, tau, log_threshold)
    effect = 0.5 + z / info
    mde = 0.5 + detectable_effect(info, log_threshold, tau)
    now = steps[-1].normals.get(metric)
    n_c, n_s = (now.n_c, now.n_s) if now else (0.0, 0.0)
    fmt = theta
    outcome, reason = _outcome(
        log_e >= log_threshold,
        n_c,
        n_s,
        settings.min_requests,
        failed=f"{label} is at least {fmt(0.5 + low)} (estimate {fmt(effect)}), above ½: "
        f"the candidate is typically more than {tol:.0%} slower",
        missing=f"{what} data",
        passed=f"no evidence of harm; {label} is at most {fmt(min(0.5 + high, 1.0))} "
        f"(½ = the candidate is {tol:.0%} slower)",
    )
    return MetricVerdict(
        metric=metric,
        outcome=outcome,
        candidate_value=now.value_c if now else 0.0,
        stable_value=now.value_s if now else 0.0,
        effect=min(max(effect, 0.0), 1.0),
        ci_low=min(max(0.5 + low, 0.0), 1.0),
        ci_high=min(max(0.5 + high, 0.0), 1.0),
        threshold=0.5,
        n_candidate=int(n_c),
        n_stable=int(n_s),
        effect_label=label,
        reason=reason,
        evidence=math.exp(min(log_e, 700.0)),
        evidence_needed=math.exp(log_threshold),
        mde=min(mde, 1.0) if math.isfinite(mde) else math.inf,
        required=required,
    )


def _outcome(
    harmful: bool,
    n_c: float,
    n_s: float,
    min_samples: int,
    *,
    failed: str,
    missing: str,
    passed: str,
) -> tuple[Outcome, str]:
    """A metric's outcome: harm from all evidence so far; a pass needs this step's data."""
    if harmful:
        return "fail", failed
    if n_c <= 0 or n_s <= 0:
        return (
            "inconclusive",
            f"no {'candidate' if n_c <= 0 else 'stable'} {missing} yet in this step",
        )
    if min(n_c, n_s) < min_samples:
        return (
            "inconclusive",
            f"{min(n_c, n_s):g} samples on the smaller side; {min_samples} needed",
        )
    return "pass", passed


def _no_data(
    metric: str, required: bool, label: str, threshold: float, log_threshold: float
) -> MetricVerdict:
    return MetricVerdict(
        metric=metric,
        outcome="inconclusive",
        candidate_value=0.0,
        stable_value=0.0,
        effect=threshold,
        ci_low=0.0,
        ci_high=math.inf,
        threshold=threshold,
        n_candidate=0,
        n_stable=0,
        effect_label=label,
        reason="no data yet",
        evidence=1.0,
        evidence_needed=math.exp(log_threshold),
        mde=math.inf,
        required=required,
    )


def _srm(steps: Sequence[StepEvidence], settings: AnalysisSettings) -> SrmCheck | None:
    """The sample-ratio check over the split strata (mirrored ones compare copies)."""
    if settings.srm_alpha <= 0:
        return None
    split = [
        s for s in steps if s.weight_bp is not None and not s.mirror and 0 < s.weight_bp < BUCKETS
    ]
    split = [s for s in split if s.requests_c + s.requests_s > 0]
    if not split:
        return None
    loglik = np.zeros(len(GRID))
    for s in split:
        assert s.weight_bp is not None
        loglik = loglik + share_loglik(s.requests_c, s.requests_s, s.weight_bp / BUCKETS)
    phi = request_dispersion(
        np.stack([s.cluster_requests_c for s in split]),
        np.stack([s.cluster_requests_s for s in split]),
        np.array([s.weight_bp for s in split]),
    )
    log_e = share_log_evalue(loglik, phi)
    log_threshold = math.log(1.0 / settings.srm_alpha)
    last = split[-1]
    assert last.weight_bp is not None
    total = last.requests_c + last.requests_s
    return SrmCheck(
        mismatch=log_e >= log_threshold,
        observed_share=last.requests_c / total if total else 0.0,
        planned_share=last.weight_bp / BUCKETS,
        log_evidence=log_e,
        log_threshold=log_threshold,
        n_candidate=last.requests_c,
        n_stable=last.requests_s,
    )


__all__ = [
    "LATENCY_BUCKETS_MS",
    "LATENCY_HISTOGRAM_SIZE",
    "AnalysisSettings",
    "AnalysisVerdict",
    "CustomMetric",
    "FeedbackMetric",
    "LatencyMetric",
    "MetricSettings",
    "MetricVerdict",
    "Outcome",
    "RateMetric",
    "ReleaseWindow",
    "StepEvidence",
    "StepWindows",
    "TtftMetric",
    "analyze",
    "judge",
    "latency_bucket",
    "latency_quantile",
    "step_evidence",
]
