"""What the rollout service hands out: a rollout, one entry of its history, one transition;
and how rollouts, states and verdicts are stored as JSON in the catalog."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from airlock.catalog.rollouts import StoredRollout, StoredRolloutStep
from airlock.core import rollout as machine
from airlock.core.analysis import AnalysisVerdict
from airlock.core.digest import canonical_json
from airlock.core.rollout import RolloutSpec, RolloutState, RolloutStep
from airlock.core.rollout_spec import parse_spec
from airlock.core.traffic import TrafficPlan
from airlock.core.verdict import VerdictReport

Kind = Literal["rollout", "drill"]


# -- values out -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RolloutView:
    """A rollout as stored: spec, state and the newest analysis."""

    id: int
    service: str
    kind: Kind
    candidate: str
    stable: str
    spec: RolloutSpec
    state: RolloutState
    version: int
    reason: str
    created_at: datetime
    created_by: str
    updated_at: datetime
    finished_at: datetime | None
    last_verdict: VerdictReport | None
    verdict_at: datetime | None

    @property
    def phase(self) -> str:
        return self.state.phase

    @property
    def live(self) -> bool:
        return not self.state.terminal

    @property
    def steps(self) -> tuple[RolloutStep, ...]:
        return self.spec.schedule()

    @property
    def candidate_weight(self) -> int:
        """Basis points of user traffic the candidate gets now."""
        return machine.candidate_weight(self.spec, self.state)

    @property
    def live_step(self) -> RolloutStep | None:
        return machine.live_step(self.spec, self.state)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "kind": self.kind,
            "candidate": self.candidate,
            "stable": self.stable,
            "strategy": self.spec.strategy,
            "spec": self.spec.to_dict(),
            "state": self.state.to_dict(),
            "phase": self.phase,
            "step": self.state.step_index + 1,
            "steps": len(self.steps),
            "candidate_weight_pct": self.candidate_weight / 100,
            "version": self.version,
            "reason": self.reason,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "updated_at": self.updated_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "last_verdict": self.last_verdict.to_dict() if self.last_verdict else None,
            "verdict_at": self.verdict_at.isoformat() if self.verdict_at else None,
        }


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    """One entry of a rollout's history: a decision, or a noted analysis while holding."""

    rollout_id: int
    at: datetime
    action: str
    actor: str
    phase: str
    step_index: int
    candidate_weight: int
    reason: str
    verdict: VerdictReport | None
    plan_generation: int | None
    event_seq: int | None

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["at"] = self.at.isoformat()
        out["verdict"] = self.verdict.to_dict() if self.verdict else None
        return out


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


def view_of(row: StoredRollout) -> RolloutView:
    kind: Kind = "drill" if row.kind == "drill" else "rollout"
    return RolloutView(
        id=row.id,
        service=row.service,
        kind=kind,
        candidate=row.candidate,
        stable=row.stable,
        spec=parse_spec(json.loads(row.spec)),
        state=RolloutState.from_dict(json.loads(row.state)),
        version=row.version,
        reason=row.reason,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        finished_at=row.finished_at,
        last_verdict=VerdictReport.from_json(row.last_verdict),
        verdict_at=row.verdict_at,
    )


def record_of(row: StoredRolloutStep) -> RolloutRecord:
    return RolloutRecord(
        rollout_id=row.rollout_id,
        at=row.at,
        action=row.action,
        actor=row.actor,
        phase=row.phase,
        step_index=row.step_index,
        candidate_weight=row.candidate_weight,
        reason=row.reason,
        verdict=VerdictReport.from_json(row.verdict),
        plan_generation=row.plan_generation,
        event_seq=row.event_seq,
    )


__all__ = [
    "Kind",
    "RolloutRecord",
    "RolloutView",
    "Transition",
    "at",
    "record_of",
    "spec_json",
    "state_json",
    "verdict_json",
    "verdict_summary",
    "view_of",
]
