"""What the rollout service hands out: a rollout, one entry of its history, one transition;
how rollouts, states and verdicts are stored as JSON in the catalog; and the reads a rollout
page needs: a keyset page of rollouts, each step's bake progress, the decisions taken."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airlock.catalog import rollouts as sql
from airlock.core.analysis import AnalysisVerdict
from airlock.core.digest import canonical_json
from airlock.core.rollout import RolloutSpec, RolloutState
from airlock.core.rollout_view import Kind, RolloutRecord, RolloutView
from airlock.core.traffic import TrafficPlan
from airlock.errors import InvalidInput
from airlock.services.workspace import Workspace

MAX_PAGE = 200


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


# -- reading for pages ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RolloutPage:
    """A keyset page of rollouts, newest first; ``older`` is the ``before`` of the next page."""

    rollouts: tuple[RolloutView, ...]
    older: int | None


def page_of_rollouts(
    ws: Workspace, *, service: str | None = None, before: int | None = None, limit: int = 50
) -> RolloutPage:
    """Rollouts with ids below ``before`` (all when ``None``), newest first, ``limit`` at most."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput(f"a page holds 1 to {MAX_PAGE} rollouts, not {limit}")
    if before is not None and before < 1:
        raise InvalidInput(f"'before' must be a rollout id (1 or more), not {before}")
    with ws.db.read() as conn:
        rows = sql.newest_before(conn, service=service, before_id=before, limit=limit + 1)
    more = len(rows) > limit
    shown = tuple(rows[:limit])
    return RolloutPage(shown, shown[-1].id if more and shown else None)


@dataclass(frozen=True, slots=True)
class StepProgress:
    """One step of a rollout's schedule as it stands: done, current or to come.

    For the current step of a progressing rollout, ``baked_seconds`` is how long
    it has baked and ``left_seconds`` how long until its bake time is up (0 when
    it is up and the step waits for enough evidence).
    """

    index: int
    weight_pct: float
    bake_seconds: float
    needs_approval: bool
    status: str  # done | current | waiting | paused | pending | stopped | skipped
    baked_seconds: float | None = None
    left_seconds: float | None = None

    @property
    def fraction(self) -> float | None:
        if self.baked_seconds is None:
            return None
        if self.bake_seconds <= 0:
            return 1.0
        return min(self.baked_seconds / self.bake_seconds, 1.0)


def step_progress(view: RolloutView, now: float) -> tuple[StepProgress, ...]:
    """Each step's status and, for the current one, its bake progress and time left (pure)."""
    state = view.state
    out = []
    for i, step in enumerate(view.steps):
        base = StepProgress(i, step.weight_bp / 100, step.bake_seconds, step.pause, "pending")
        if state.phase in ("promoted", "completed") or i < state.step_index:
            out.append(dataclasses.replace(base, status="done"))
        elif i > state.step_index:
            out.append(dataclasses.replace(base, status="pending" if view.live else "skipped"))
        elif not view.live:  # rolled back or aborted in this step
            out.append(dataclasses.replace(base, status="stopped"))
        elif state.awaiting_approval:
            out.append(dataclasses.replace(base, status="waiting"))
        else:
            baked = max(now - state.step_started_at, 0.0)
            left = max(step.bake_seconds - baked, 0.0)
            status = "paused" if state.phase == "paused" else "current"
            out.append(
                dataclasses.replace(base, status=status, baked_seconds=baked, left_seconds=left)
            )
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Decision:
    """One entry of a rollout's history as a decision: which step it left and which it took."""

    record: RolloutRecord
    from_step: int  # 1-based
    to_step: int  # 1-based

    @property
    def outcome(self) -> str | None:
        return self.record.verdict.outcome if self.record.verdict else None


def decisions(history: list[RolloutRecord], *, every_hold: bool = True) -> tuple[Decision, ...]:
    """The history oldest first, each entry with the step before and after it (pure).

    The controller notes a ``hold`` every 30 seconds while a step bakes; without
    ``every_hold`` only the holds that say something new are kept: the first of a step
    and each whose verdict outcome differs from the hold before it.
    """
    out = []
    previous: int | None = None
    last_hold: tuple[int, str | None] | None = None
    for r in history:
        before = r.step_index if previous is None else previous
        previous = r.step_index
        if r.action == "hold":
            said = (r.step_index, r.verdict.outcome if r.verdict else None)
            repeat = said == last_hold
            last_hold = said
            if repeat and not every_hold:
                continue
        else:
            last_hold = None
        out.append(Decision(r, before + 1, r.step_index + 1))
    return tuple(out)


__all__ = [
    "MAX_PAGE",
    "Decision",
    "Kind",
    "RolloutPage",
    "RolloutRecord",
    "RolloutView",
    "StepProgress",
    "Transition",
    "at",
    "decisions",
    "page_of_rollouts",
    "spec_json",
    "state_json",
    "step_progress",
    "verdict_json",
    "verdict_summary",
]
