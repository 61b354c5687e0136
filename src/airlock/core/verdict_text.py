"""How a verdict reads to a person: the one formatter for the CLI, the demo and the analysis's
own reasons (pure).

Rates (errors, guardrail flags, fallbacks, negative feedback, the tail share,
custom metrics) compare as a **ratio** candidate/stable: ``1.00×`` is "the
same", the threshold is ``1 + tolerance``. Latency and time to first token
compare as **θ**, the chance that a random candidate request is slower than a
random stable one by more than the tolerance: ½ is "exactly the tolerated
slow-down", above ½ is harm. ``mde`` is the smallest effect the data so far
would expect to catch, in the same units.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airlock.core.verdict import MetricVerdict, VerdictReport

THETA_METRICS = frozenset({"latency", "ttft"})
METRIC_COLUMNS = (
    "metric",
    "outcome",
    "candidate",
    "stable",
    "effect",
    "interval",
    "threshold",
    "mde",
    "evidence",
)
"""The keys of :func:`metric_row`, in the order a full table shows them."""


def is_theta(metric: str) -> bool:
    return metric in THETA_METRICS


def ratio(x: float) -> str:
    """A rate ratio: ``1.92×`` (``∞`` when unbounded)."""
    return f"{x:.2f}×" if math.isfinite(x) else "∞"


def theta(x: float) -> str:
    """A θ in [0, 1]: ``0.893``."""
    return f"{min(max(x, 0.0), 1.0):.3f}"


def effect(metric: str, x: float) -> str:
    """An effect or bound in the metric's unit (``1.92×`` or ``θ 0.893``)."""
    return f"θ {theta(x)}" if is_theta(metric) else ratio(x)


def value(metric: str, v: float) -> str:
    """A side's own value: a rate in %, a median in ms."""
    if not math.isfinite(v):
        return "—"
    return f"p50 {v:.1f} ms" if is_theta(metric) else f"{v * 100:.2f} %"


def _short(x: float) -> str:
    if not math.isfinite(x):
        return "∞"
    return f"{x:.3g}" if x < 1e4 else f"{x:.1e}"


def evidence(m: MetricVerdict) -> str:
    """``e-value / needed`` (rolled back when the first reaches the second)."""
    return f"{_short(m.evidence)} / {_short(m.evidence_needed)}"


def metric_row(m: MetricVerdict) -> dict[str, str]:
    """One metric of a verdict as display strings (keys: :data:`METRIC_COLUMNS`)."""
    name = m.metric
    return {
        "metric": name,
        "outcome": m.outcome,
        "candidate": value(name, m.candidate_value),
        "stable": value(name, m.stable_value),
        "effect": effect(name, m.effect),
        "interval": f"[{effect(name, m.ci_low)}, {effect(name, m.ci_high)}]",
        "threshold": effect(name, m.threshold),
        "mde": effect(name, m.mde),
        "evidence": evidence(m),
    }


def explain(m: MetricVerdict) -> str:
    """One sentence on what a metric's verdict means, for a person."""
    row = metric_row(m)
    words = in_words(m)
    if words is not None:
        return f"{words}; the data so far could catch θ {theta(m.mde)} or more"
    return (
        f"{m.metric}: the candidate's rate is {row['effect']} stable's "
        f"(anytime-valid interval {row['interval']}); the data so far could catch "
        f"{row['mde']} or more"
    )


_TOLERATED = re.compile(r"> ([0-9.eE+-]+) × stable")


def tolerance(m: MetricVerdict) -> float | None:
    """The tolerated slow-down of a θ metric (``0.1`` for 10 %), read from its effect label
    (``P(candidate latency > 1.1 × stable's)``); None when the label does not say."""
    found = _TOLERATED.search(m.effect_label)
    if found is None:
        return None
    try:
        factor = float(found.group(1))
    except ValueError:
        return None
    return factor - 1.0 if math.isfinite(factor) and factor >= 1.0 else None


def _pct(x: float) -> str:
    return f"{x * 100:.0f} %"


def in_words(m: MetricVerdict) -> str | None:
    """A θ verdict said in plain words, or None for a rate metric (its ratio reads as is).

    θ is the chance that a random candidate request takes more than ``1 + tol`` times
    as long as a random stable one: the share of (candidate, stable) request pairs in
    which the candidate is slower by more than the tolerance. Above ½ is harm::

        latency: the candidate is more than 10 % slower than stable in 58 % of request
        pairs (θ = 0.580; harm above 0.500, i.e. in more than half of the pairs)
    """
    if not is_theta(m.metric):
        return None
    what = "latency" if m.metric == "latency" else "time to first token"
    tol = tolerance(m)
    slower = f"more than {_pct(tol)} slower" if tol else "slower"
    harm = f"harm above {theta(m.threshold)}, i.e. in more than half of the pairs"
    if m.n_candidate <= 0 or m.n_stable <= 0:
        return f"{what}: no request pairs to compare yet ({harm})"
    text = (
        f"{what}: the candidate is {slower} than stable in {_pct(m.effect)} of request pairs "
        f"(θ = {theta(m.effect)}; {harm})"
    )
    if math.isfinite(m.ci_low) and math.isfinite(m.ci_high):
        text += f"; anytime-valid range {_pct(m.ci_low)} to {_pct(m.ci_high)}"
    return text


def headline(v: VerdictReport) -> str:
    """``fail — 812 candidate / 7310 stable requests; <reason>``."""
    return f"{v.outcome} — {v.n_candidate} candidate / {v.n_stable} stable requests; {v.reason}"


def counts(v: VerdictReport) -> str:
    """``fail (812/7310)``: the outcome and the requests it rests on."""
    return f"{v.outcome} ({v.n_candidate}/{v.n_stable})"


def sample_ratio(v: VerdictReport) -> str | None:
    """The sample-ratio line, when the verdict has the check."""
    if v.srm is None:
        return None
    s = v.srm
    return (
        f"sample ratio: candidate {s.observed_share:.2%} of requests, planned "
        f"{s.planned_share:.2%}" + (" — MISMATCH" if s.mismatch else "")
    )


def detectable(v: VerdictReport, metrics: tuple[str, ...] = ("error_rate", "latency")) -> str:
    """The smallest effects the evidence so far could catch: ``error_rate 1.50×, latency θ …``."""
    return ", ".join(
        f"{m.metric} {effect(m.metric, m.mde)}"
        for m in v.per_metric
        if m.metric in metrics and math.isfinite(m.mde)
    )


__all__ = [
    "METRIC_COLUMNS",
    "counts",
    "detectable",
    "effect",
    "evidence",
    "explain",
    "headline",
    "in_words",
    "is_theta",
    "metric_row",
    "ratio",
    "sample_ratio",
    "theta",
    "tolerance",
    "value",
]
