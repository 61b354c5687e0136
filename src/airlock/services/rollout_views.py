"""What the rollout service hands out: a rollout, one entry of its history, one transition;
and how rollouts, states and verdicts are stored as JSON in the catalog."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airlock.core.analysis import AnalysisVerdict
from airlock.core.digest import canonical_json
from airlock.core.rollout import RolloutSpec, RolloutState
from airlock.core.rollout_view import Kind, RolloutRecord, RolloutView
from airlock.core.traffic import TrafficPlan


@dataclass(frozen=True, slots=True)
class Transition:
    """What one transition did: the rollout after it, and the plan it stored (if any)."""

    rollout: RolloutView
    action: str
    reason: str
    plan: TrafficPlan | None


# -- storage --------------------------------------------------------------------------------


def at(now: float) -> datetime:
    """A controller clock reading (epoch seconds) as the catalog stores it."""
    return datetime.fromtimestamp(now, UTC)


def spec_json(spec: RolloutSpec) -> str:
    return canonical_json(spec.to_dict()).decode("utf-8")


def state_json(state: RolloutState) -> str:
    return json.dumps(state.to_dict(), sort_keys=True)


def verdict_json(verdict: AnalysisVerdict | None) -> str | None:
    return json.dumps(verdict.to_dict(), sort_keys=True) if verdict is not None else None


def _rounded(x: float) -> float | None:
    """Six decimals, or None for an unbounded value (canonical JSON has no infinity)."""
    return round(x, 6) if math.isfinite(x) else None


def verdict_summary(verdict: AnalysisVerdict | None) -> dict[str, Any] | None:
    """The verdict as the audit log keeps it: outcome, counts, and each metric's effect + CI."""
    if verdict is None:
        return None
    return {
        "outcome": verdict.outcome,
        "n_candidate": verdict.n_candidate,
        "n_stable": verdict.n_stable,
        "metrics": {
            m.metric: {
                "outcome": m.outcome,
                "effect": _rounded(m.effect),
                "ci": [_rounded(m.ci_low), _rounded(m.ci_high)],
                "threshold": m.threshold,
                "mde": _rounded(m.mde),
            }
            for m in verdict.per_metric
        },
        "srm_mismatch": verdict.srm_mismatch,
    }


__all__ = [
    "Kind",
    "RolloutRecord",
    "RolloutView",
    "Transition",
    "at",
    "spec_json",
    "state_json",
    "verdict_json",
    "verdict_summary",
]
