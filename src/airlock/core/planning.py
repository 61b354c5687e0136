"""What can a rollout detect, and when? Planning from the service's recent traffic (pure).

Before a rollout starts, :func:`plan_detection` takes the service's recent
traffic (:class:`Baseline`: requests per second, error and flag rates, the
spread of latency) and the spec, and says for each step and metric:

* the **minimum detectable effect** at the end of the step's bake time — the
  smallest candidate/stable ratio (rates) or slow-down (latency) whose
  *expected* evidence reaches the rollback threshold by then, with the
  evidence of earlier steps carried over, as the live analysis does;
* the **expected time to detect** the effects the spec cares about
  (``targets``: by default a doubled error or flag rate and a 20 % slow-down);
* **warnings** when a step cannot reach ``min_requests`` or cannot detect its
  target within its bake time — the low-traffic trap, told before it happens.

The arithmetic is the large-sample behaviour of the e-processes of
:mod:`airlock.core.evidence`: the log-evidence of an effect δ grows like
``δ²·I/2 − ½·log(1 + τ²I)`` with the Fisher information ``I``, which for rates
is ``Σ events · s(1 − s)`` (``s`` the candidate's share) and for the latency
body ``12·n_c·n_s/(n_c + n_s)`` (the Mann-Whitney variance ``(1/n_c + 1/n_s)/12``).
Clustered traffic divides the information by its dispersion, which the
baseline carries when it was measured per cluster.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

from airlock.core.analysis import AnalysisSettings
from airlock.core.evidence import detectable_effect, normal_tau
from airlock.core.rollout_spec import RolloutStep

_NORMAL = NormalDist()
DEFAULT_TARGETS = {"error_rate": 2.0, "guardrail_rate": 2.0, "latency": 1.2, "latency_tail": 3.0}


@dataclass(frozen=True, slots=True)
class Baseline:
    """The service's recent traffic, as the stable release served it."""

    requests_per_second: float
    error_rate: float
    flag_rate: float
    latency_sigma: float = 0.5  # spread of log latency
    dispersion: float = 1.0  # clustering of events (1 = independent requests)
    seconds: float = 0.0  # how much traffic the figures come from


@dataclass(frozen=True, slots=True)
class MetricPlan:
    metric: str
    detectable: float  # ratio (rates) or slow-down factor (latency) at the end of the bake
    target: float
    seconds_to_target: float  # expected, from the start of the rollout; inf if never
    unit: str


@dataclass(frozen=True, slots=True)
class StepPlan:
    index: int
    weight_bp: int
    bake_seconds: float
    candidate_requests: float
    metrics: tuple[MetricPlan, ...]
    warnings: tuple[str, ...] = field(default=())


def _rate_info(events_per_second: float, share: float, seconds: float, dispersion: float) -> float:
    return events_per_second * seconds * share * (1.0 - share) / max(dispersion, 1.0)


def plan_detection(
    schedule: tuple[RolloutStep, ...],
    settings: AnalysisSettings,
    baseline: Baseline,
    targets: dict[str, float] | None = None,
) -> list[StepPlan]:
    """Per step and metric: what the rollout can detect in its bake time (see the module doc)."""
    wanted = {**DEFAULT_TARGETS, **(targets or {})}
    weights = settings.weights()
    total_w = sum(weights.values()) or 1.0
    rps = max(baseline.requests_per_second, 0.0)
    rates = {"error_rate": baseline.error_rate, "guardrail_rate": baseline.flag_rate}
    info: dict[str, float] = dict.fromkeys(weights, 0.0)
    plans: list[StepPlan] = []
    elapsed = 0.0
    first_hit: dict[str, float] = {}
    for index, step in enumerate(schedule):
        share = _share(step)
        bake = step.bake_seconds
        n_c = rps * bake * (1.0 if step.mirror else share)
        n_s = rps * bake * (1.0 if step.mirror else 1.0 - share)
        per_second: dict[str, float] = {}
        for metric in weights:
            if metric in rates:
                per_second[metric] = _rate_info(
                    rps * rates[metric], share, 1.0, baseline.dispersion
                )
            elif metric == "latency_tail":
                per_second[metric] = _rate_info(rps * 0.015, share, 1.0, baseline.dispersion)
            elif metric == "latency":
                c, s = (
                    rps * (share if not step.mirror else 1.0),
                    rps * (1 - share if not step.mirror else 1.0),
                )
                per_second[metric] = (
                    12.0 * c * s / (c + s) / max(baseline.dispersion, 1.0) if c + s else 0.0
                )
        metrics: list[MetricPlan] = []
        warnings: list[str] = []
        for metric, rate in per_second.items():
            log_thr = math.log(total_w / (settings.alpha * weights[metric]))
            before = info[metric]
            info[metric] = before + rate * bake
            target = wanted.get(metric)
            detectable, need = _detectable(
                metric, info[metric], log_thr, settings, baseline, target
            )
            if metric not in first_hit and need is not None and rate > 0 and info[metric] >= need:
                first_hit[metric] = elapsed + (need - before) / rate
            metrics.append(
                MetricPlan(
                    metric,
                    detectable,
                    target if target is not None else math.nan,
                    first_hit.get(metric, math.inf),
                    "slow-down" if metric == "latency" else "ratio",
                )
            )
            if target is not None and detectable > target and metric in ("error_rate", "latency"):
                what = (
                    f"{target:g}× {metric.replace('_', ' ')}"
                    if metric != "latency"
                    else (f"a {target - 1:.0%} slow-down")
                )
                warnings.append(
                    f"step {index + 1} cannot detect {what} in its {bake:g} s bake "
                    f"(it can detect {detectable:.2f}× by then); bake longer or send more traffic"
                )
        if n_c < settings.min_requests or n_s < settings.min_requests:
            warnings.append(
                f"step {index + 1} expects {n_c:.0f} candidate requests in its bake, fewer than "
                f"min_requests ({settings.min_requests}): it will wait past its bake time"
            )
        elapsed += bake
        plans.append(StepPlan(index, step.weight_bp, bake, n_c, tuple(metrics), tuple(warnings)))
    return plans


def _share(step: RolloutStep) -> float:
    if step.mirror is not None:
        return 0.5  # mirrored copies: as many candidate as stable answers
    return step.weight_bp / 10_000


def _detectable(
    metric: str,
    info: float,
    log_thr: float,
    settings: AnalysisSettings,
    baseline: Baseline,
    target: float | None,
) -> tuple[float, float | None]:
    """(detectable effect at ``info``, information needed for ``target`` or None)."""
    if metric == "latency":
        tau = normal_tau(12.0 * settings.mixture_requests, math.exp(-log_thr))
        delta = detectable_effect(info, log_thr, tau)
        tol = settings.metrics.latency.tolerance
        slowdown = _theta_to_slowdown(0.5 + delta, tol, baseline.latency_sigma)
        need = None
        if target is not None:
            theta = _slowdown_to_theta(target, tol, baseline.latency_sigma)
            need = _info_needed(theta - 0.5, log_thr, tau)
        return slowdown, need
    tol = settings.metrics.error_rate.tolerance if metric == "error_rate" else 0.0
    eta = detectable_effect(info, log_thr)
    need = None
    if target is not None and target > 1 + tol:
        need = _info_needed(math.log(target) - math.log1p(tol), log_thr, 1.0)
    return (math.exp(math.log1p(tol) + eta) if math.isfinite(eta) else math.inf), need


def _info_needed(delta: float, log_thr: float, tau: float) -> float | None:
    """Smallest information at which effect ``delta``'s expected evidence reaches the threshold."""
    if delta <= 0:
        return None
    lo, hi = 0.0, 1.0
    while detectable_effect(hi, log_thr, tau) > delta:
        hi *= 2
        if hi > 1e15:
            return None
    for _ in range(60):
        mid = (lo + hi) / 2
        if detectable_effect(mid, log_thr, tau) > delta:
            lo = mid
        else:
            hi = mid
    return hi


def _theta_to_slowdown(theta: float, tol: float, sigma: float) -> float:
    if theta >= 1:
        return math.inf
    return (1 + tol) * math.exp(
        sigma * math.sqrt(2) * _NORMAL.inv_cdf(min(max(theta, 1e-9), 1 - 1e-9))
    )


def _slowdown_to_theta(slowdown: float, tol: float, sigma: float) -> float:
    """θ of a log-normal candidate slowed by ``slowdown`` (spread ``sigma``)."""
    z = (math.log(slowdown) - math.log1p(tol)) / (max(sigma, 1e-6) * math.sqrt(2))
    return _NORMAL.cdf(z)


__all__ = ["DEFAULT_TARGETS", "Baseline", "MetricPlan", "StepPlan", "plan_detection"]
