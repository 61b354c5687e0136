"""Is the candidate worse than stable? Live metrics, compared on one time window.

Input: one :class:`ReleaseWindow` per release, aggregated by the gateway over
the same window (the controller uses the current rollout step: traffic shares
are fixed inside a step, which the statistics rely on). Output: an
:class:`AnalysisVerdict` — ``fail`` (roll back), ``pass`` (may advance) or
``inconclusive`` (wait) — with one :class:`MetricVerdict` per metric.

Metrics, each oriented so that a bigger effect means a worse candidate:

==============  ===================================================  ============
metric          effect                                               tolerance
==============  ===================================================  ============
error_rate      candidate − stable rate of failed calls              absolute, 0
latency         θ = P(candidate > (1 + tol) × stable latency)         relative, 10 %
guardrail_rate  candidate − stable rate of guardrail flags           absolute, 0
fallback_rate   candidate − stable rate of fallbacks (off)           absolute, 0
feedback        stable − candidate mean feedback score in [0, 1]     absolute, 0
custom.NAME     difference of success rates (direction configured)   absolute, 0
==============  ===================================================  ============

Every effect gets an anytime-valid confidence sequence (see
:mod:`airlock.core.sequential`): ``ci_low`` and ``ci_high`` each hold at every
look, simultaneously, with probability ≥ 1 − α/k, where k is the number of
enabled metrics (Bonferroni, so the family-wise chance of ever rolling back a
harmless candidate stays ≤ α however often the controller looks).

Decision rule, per metric and overall:

* **fail** as soon as ``ci_low`` exceeds the tolerance: the data rule out "no
  more harm than tolerated". This can happen before ``min_requests``; there is
  nothing to wait for once the evidence is in.
* **pass** needs ``min_requests`` on both sides and no metric failing: "no
  evidence of harm". It does *not* demand ``ci_high`` below the tolerance: with
  the default zero tolerances that would require proving the candidate better
  than stable, which a good candidate cannot do. ``ci_high`` is reported so a
  reader sees how much harm the data still allow, and bake times give the test
  its time to find harm.
* **inconclusive** otherwise: a required metric (errors, latency, guardrails)
  has too little data. Zero counts are fine everywhere; nothing here divides
  by zero or returns NaN.

Latency uses the Mann-Whitney parameter rather than a difference of means or
of p95s: the bucketed histograms make it exact to compute; it uses every
request, not just the tail; it is scale-free (no assumption on the latency
distribution) and robust to a few huge outliers; the stable release's own
sampling noise enters its variance (unlike comparing against an estimated
stable p95 taken as truth); and multiplying the stable latencies by
``1 + tolerance`` turns "at most 10 % slower" into the clean null θ ≤ 1/2.
Its blind spot is a regression confined to a small tail; use a custom
proportion metric (e.g. "requests over 10 s") for that.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from airlock.core.sequential import (
    Estimate,
    confidence_bounds,
    latency_exceedance,
    mixture_precision,
    proportion_difference,
    tolerance_kernel,
)
from airlock.core.window import (
    LATENCY_BUCKETS_MS,
    LATENCY_HISTOGRAM_SIZE,
    LOG_BUCKET_WIDTH,
    ReleaseWindow,
    latency_bucket,
    latency_quantile,
)

Outcome = Literal["pass", "fail", "inconclusive"]

# -- settings -------------------------------------------------------------------


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RateMetric(_Settings):
    """A rate of bad events; harm = candidate rate − stable rate > tolerance."""

    enabled: bool = True
    tolerance: float = Field(default=0.0, ge=0.0, lt=1.0)
    required: bool = True


class LatencyMetric(_Settings):
    """Harm = candidate typically slower than stable by more than ``tolerance`` (relative)."""

    enabled: bool = True
    tolerance: float = Field(default=0.10, ge=0.0, le=10.0)
    required: bool = True


class FeedbackMetric(_Settings):
    """Harm = stable mean score − candidate mean score > tolerance (scores in [0, 1])."""

    enabled: bool = True
    tolerance: float = Field(default=0.0, ge=0.0, lt=1.0)
    required: bool = False


class CustomMetric(_Settings):
    """A proportion (successes / trials) the gateway reports under this name."""

    higher_is_better: bool = True
    tolerance: float = Field(default=0.0, ge=0.0, lt=1.0)
    required: bool = False


class MetricSettings(_Settings):
    error_rate: RateMetric = RateMetric()
    latency: LatencyMetric = LatencyMetric()
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
    """Family-wise chance of ever rolling back a harmless candidate."""
    min_requests: int = Field(default=200, ge=1)
    """Requests each side needs in a step before it can pass."""
    max_step_seconds: float = Field(default=3600.0, gt=0.0)
    """A step still short of data this long after it started triggers ``on_insufficient_data``."""
    on_insufficient_data: Literal["rollback", "pause"] = "rollback"
    mixture_requests: int = Field(default=1000, ge=1)
    """Effective sample size at which the sequential test is tuned to be sharpest."""
    metrics: MetricSettings = MetricSettings()

    def metric_count(self) -> int:
        m = self.metrics
        fixed = (m.error_rate, m.latency, m.guardrail_rate, m.fallback_rate, m.feedback)
        return sum(1 for x in fixed if x.enabled) + len(m.custom)

    def metric_alpha(self) -> float:
        """Per-metric level: α split evenly over the enabled metrics (Bonferroni)."""
        return self.alpha / max(self.metric_count(), 1)

    def mixture_rho(self) -> float:
        return mixture_precision(float(self.mixture_requests), self.metric_alpha())


# -- verdicts out -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetricVerdict:
    """One metric's comparison. Harm is ``ci_low > threshold``; see ``effect_label``."""

    metric: str
    outcome: Outcome
    candidate_value: float
    stable_value: float
    effect: float
    ci_low: float
    ci_high: float
    threshold: float
    n_candidate: int
    n_stable: int
    effect_label: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class AnalysisVerdict:
    outcome: Outcome
    per_metric: tuple[MetricVerdict, ...]
    n_candidate: int
    n_stable: int
    reason: str

    def metric(self, name: str) -> MetricVerdict:
        for m in self.per_metric:
            if m.metric == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "n_candidate": self.n_candidate,
            "n_stable": self.n_stable,
            "reason": self.reason,
            "per_metric": [m.to_dict() for m in self.per_metric],
        }


# -- the analysis -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Check:
    metric: str
    required: bool
    estimate: Estimate
    threshold: float
    offset: float  # added to effect and bounds for display (latency: θ − 1/2 → θ)
    limits: tuple[float, float]
    candidate_value: float
    stable_value: float
    n_candidate: int
    n_stable: int
    effect_label: str
    unit: Literal["pp", "prob", "score"]


def analyze(
    candidate: ReleaseWindow,
    stable: ReleaseWindow,
    settings: AnalysisSettings | None = None,
) -> AnalysisVerdict:
    """Compare ``candidate`` with ``stable`` on one window (see the module docstring)."""
    settings = settings if settings is not None else AnalysisSettings()
    alpha_k, rho = settings.metric_alpha(), settings.mixture_rho()
    checks = _checks(candidate, stable, settings)
    verdicts = tuple(_judge(check, alpha_k, rho, settings.min_requests) for check in checks)
    required = [v for v, c in zip(verdicts, checks, strict=True) if c.required]
    failed = [v for v in verdicts if v.outcome == "fail"]
    n_c, n_s, need = candidate.requests, stable.requests, settings.min_requests
    if failed:
        outcome: Outcome = "fail"
        reason = "; ".join(f"{v.metric}: {v.reason}" for v in failed)
    elif n_c < need or n_s < need:
        outcome = "inconclusive"
        reason = f"{n_c} candidate and {n_s} stable requests; each side needs {need}"
    elif any(v.outcome != "pass" for v in required):
        outcome = "inconclusive"
        reason = "; ".join(f"{v.metric}: {v.reason}" for v in required if v.outcome != "pass")
    else:
        outcome = "pass"
        reason = f"no evidence of harm on {len(verdicts)} metrics after {n_c} candidate requests"
    return AnalysisVerdict(outcome, verdicts, n_c, n_s, reason)


def _checks(c: ReleaseWindow, s: ReleaseWindow, settings: AnalysisSettings) -> list[_Check]:
    """One check per enabled metric, in a stable order."""
    m = settings.metrics
    checks: list[_Check] = []
    rates = (
        ("error_rate", m.error_rate, c.errors, s.errors, "error rate"),
        (
            "guardrail_rate",
            m.guardrail_rate,
            c.guardrail_flags,
            s.guardrail_flags,
            "guardrail flag rate",
        ),
        ("fallback_rate", m.fallback_rate, c.fallbacks, s.fallbacks, "fallback rate"),
    )
    for name, cfg, x_c, x_s, label in rates:
        if cfg.enabled:
            checks.append(
                _proportion_check(
                    name,
                    cfg.required,
                    cfg.tolerance,
                    (x_c, c.requests),
                    (x_s, s.requests),
                    harm_when_higher=True,
                    label=f"candidate − stable {label}",
                )
            )
    if m.latency.enabled:
        checks.append(_latency_check(c, s, m.latency))
    if m.feedback.enabled:
        checks.append(
            _proportion_check(
                "feedback",
                m.feedback.required,
                m.feedback.tolerance,
                (c.feedback_sum, c.feedback_count),
                (s.feedback_sum, s.feedback_count),
                harm_when_higher=False,
                label="stable − candidate mean feedback",
                unit="score",
            )
        )
    for name, custom in sorted(m.custom.items()):
        direction = "stable − candidate" if custom.higher_is_better else "candidate − stable"
        checks.append(
            _proportion_check(
                f"custom.{name}",
                custom.required,
                custom.tolerance,
                c.custom.get(name, (0.0, 0.0)),
                s.custom.get(name, (0.0, 0.0)),
                harm_when_higher=not custom.higher_is_better,
                label=f"{direction} {name} rate",
            )
        )
    return checks


def _proportion_check(
    metric: str,
    required: bool,
    tolerance: float,
    candidate: tuple[float, float],
    stable: tuple[float, float],
    *,
    harm_when_higher: bool,
    label: str,
    unit: Literal["pp", "score"] = "pp",
) -> _Check:
    """A proportion or [0, 1] mean given as (events, trials) on each side."""
    (x_c, n_c), (x_s, n_s) = candidate, stable
    if harm_when_higher:
        estimate = proportion_difference(x_c, n_c, x_s, n_s)
    else:  # harm is a lower candidate value: swap the sides
        estimate = proportion_difference(x_s, n_s, x_c, n_c)
    return _Check(
        metric=metric,
        required=required,
        estimate=estimate,
        threshold=tolerance,
        offset=0.0,
        limits=(-1.0, 1.0),
        candidate_value=_ratio(x_c, n_c),
        stable_value=_ratio(x_s, n_s),
        n_candidate=int(n_c),
        n_stable=int(n_s),
        effect_label=label,
        unit=unit,
    )


def _latency_check(c: ReleaseWindow, s: ReleaseWindow, cfg: LatencyMetric) -> _Check:
    zeros = (0,) * LATENCY_HISTOGRAM_SIZE
    hist_c, hist_s = c.latency_histogram or zeros, s.latency_histogram or zeros
    kernel = tolerance_kernel(LATENCY_HISTOGRAM_SIZE, math.log1p(cfg.tolerance) / LOG_BUCKET_WIDTH)
    return _Check(
        metric="latency",
        required=cfg.required,
        estimate=latency_exceedance(hist_c, hist_s, kernel),
        threshold=0.5,
        offset=0.5,  # the estimate is θ − 1/2; show θ itself
        limits=(0.0, 1.0),
        candidate_value=latency_quantile(hist_c, 0.5),
        stable_value=latency_quantile(hist_s, 0.5),
        n_candidate=sum(hist_c),
        n_stable=sum(hist_s),
        effect_label=f"P(candidate latency > {1 + cfg.tolerance:g} × stable latency)",
        unit="prob",
    )


def _judge(check: _Check, alpha_k: float, rho: float, min_samples: int) -> MetricVerdict:
    low_raw, high_raw = confidence_bounds(check.estimate, alpha_k, rho)
    lo_lim, hi_lim = check.limits
    effect = float(check.estimate.effect) + check.offset
    low = float(np.clip(float(low_raw) + check.offset, lo_lim, hi_lim))
    high = float(np.clip(float(high_raw) + check.offset, lo_lim, hi_lim))
    n_c, n_s = check.n_candidate, check.n_stable
    fmt = _formatter(check.unit)
    if n_c == 0 or n_s == 0:
        side = "candidate" if n_c == 0 else "stable"
        outcome: Outcome = "inconclusive"
        reason = f"no {side} data yet"
    elif low > check.threshold:
        outcome = "fail"
        reason = (
            f"{check.effect_label} is at least {fmt(low)} (estimate {fmt(effect)}), "
            f"above the tolerated {fmt(check.threshold)}"
        )
    elif n_c < min_samples or n_s < min_samples:
        outcome = "inconclusive"
        reason = f"{min(n_c, n_s)} samples on the smaller side; {min_samples} needed"
    else:
        outcome = "pass"
        reason = f"no evidence of harm; {check.effect_label} is at most {fmt(high)}"
    return MetricVerdict(
        metric=check.metric,
        outcome=outcome,
        candidate_value=check.candidate_value,
        stable_value=check.stable_value,
        effect=effect,
        ci_low=low,
        ci_high=high,
        threshold=check.threshold,
        n_candidate=n_c,
        n_stable=n_s,
        effect_label=check.effect_label,
        reason=reason,
    )


def _ratio(num: float, den: float) -> float:
    return float(num) / den if den > 0 else 0.0


def _formatter(unit: str) -> Callable[[float], str]:
    if unit == "pp":
        return lambda x: f"{x * 100:+.2f} pp"
    if unit == "prob":
        return lambda x: f"{x:.3f}"
    return lambda x: f"{x:+.3f}"


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
    "RateMetric",
    "ReleaseWindow",
    "analyze",
    "latency_bucket",
    "latency_quantile",
]
