"""How a verdict reads to a person: one formatter for the CLI, the demo and notes (pure).

A verdict crosses process boundaries as JSON (:meth:`AnalysisVerdict.to_dict`:
unbounded values are ``null``), so these functions take that form.

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
from collections.abc import Mapping
from typing import Any

THETA_METRICS = frozenset({"latency", "ttft"})


def is_theta(metric: str) -> bool:
    return metric in THETA_METRICS


def _num(value: Any) -> float:
    return math.inf if value is None else float(value)


def effect(metric: str, value: Any) -> str:
    """An effect or bound in the metric's unit (``1.92×`` or ``θ 0.893``)."""
    x = _num(value)
    if is_theta(metric):
        return f"θ {min(max(x, 0.0), 1.0):.3f}"
    return f"{x:.2f}×" if math.isfinite(x) else "∞"


def value(metric: str, x: Any) -> str:
    """A side's own value: a rate in %, a median in ms."""
    v = _num(x)
    if is_theta(metric):
        return f"p50 {v:.1f} ms" if math.isfinite(v) else "—"
    return f"{v * 100:.2f} %" if math.isfinite(v) else "—"


def evidence(m: Mapping[str, Any]) -> str:
    """``e-value / needed`` (rolled back when the first reaches the second)."""
    got, need = _num(m.get("evidence", 1.0)), _num(m.get("evidence_needed"))
    return f"{_short(got)} / {_short(need)}"


def _short(x: float) -> str:
    if not math.isfinite(x):
        return "∞"
    return f"{x:.3g}" if x < 1e4 else f"{x:.1e}"


def metric_row(m: Mapping[str, Any]) -> dict[str, str]:
    """One metric of a verdict as display strings."""
    name = str(m["metric"])
    return {
        "metric": name,
        "outcome": str(m["outcome"]),
        "candidate": value(name, m.get("candidate_value")),
        "stable": value(name, m.get("stable_value")),
        "effect": effect(name, m.get("effect")),
        "interval": f"[{effect(name, m.get('ci_low'))}, {effect(name, m.get('ci_high'))}]",
        "threshold": effect(name, m.get("threshold")),
        "mde": effect(name, m.get("mde")),
        "evidence": evidence(m),
    }


def explain(m: Mapping[str, Any]) -> str:
    """One sentence on what a metric's verdict means, for a person."""
    name = str(m["metric"])
    row = metric_row(m)
    if is_theta(name):
        what = "latency" if name == "latency" else "time to first token"
        return (
            f"{what}: a random candidate request is slower than a random stable one by more "
            f"than the tolerance with probability {row['effect'].removeprefix('θ ')} "
            f"(½ = exactly the tolerated slow-down); the data so far could catch "
            f"{row['mde'].removeprefix('θ ')} or more"
        )
    return (
        f"{name}: the candidate's rate is {row['effect']} stable's "
        f"(anytime-valid interval {row['interval']}); the data so far could catch "
        f"{row['mde']} or more"
    )


__all__ = ["effect", "evidence", "explain", "is_theta", "metric_row", "value"]
