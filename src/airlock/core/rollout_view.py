"""A rollout as it is stored and handed out: its spec, state and newest verdict
(:class:`RolloutView`), and one entry of its history (:class:`RolloutRecord`). Pure values;
the catalog maps its rows to these.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from airlock.core import rollout as machine
from airlock.core.rollout import RolloutSpec, RolloutState, RolloutStep
from airlock.core.verdict import VerdictReport

Kind = Literal["rollout", "drill"]


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


__all__ = ["Kind", "RolloutRecord", "RolloutView"]
