"""The rollout state machine: pure functions from (spec, state, verdict, now) to a decision.

::

                 ┌──────── decide: pass + bake done ────────┐
                 │                                          ▼
    start ──► progressing ──(next step has pause)──► paused (awaiting approval)
                 │  ▲   │                               │   │
                 │  └───┼──────── resume ───────────────┘   │
                 │      └── pause / too little data* ──►────┘
                 │
                 ├── last step passes ───────────► promoted      (canary, linear, bluegreen)
                 ├── duration over / shadow fail ► completed     (ab, shadow)
                 ├── fail verdict, deadline* ────► rolled_back   (from progressing or paused)
                 └── abort ──────────────────────► aborted       (from progressing or paused)

    * past ``analysis.max_step_seconds`` without enough data: ``on_insufficient_data``.

Terminal phases (promoted, rolled_back, aborted, completed) never move again:
:func:`decide` answers ``hold`` and the manual transitions raise
:class:`~airlock.errors.Conflict`.

Rules :func:`decide` applies, in order:

1. a ``fail`` verdict while the candidate sees traffic (or mirrored copies)
   rolls back at once, at any step, paused or not (a shadow rollout completes
   instead: it never had users to protect);
2. a paused rollout holds;
3. a step holds until its bake time has elapsed;
4. an A/B or shadow rollout then completes, whatever the verdict;
5. otherwise a ``pass`` verdict with ``min_requests`` on both sides advances
   (or promotes after the last step, or pauses if the next step needs approval);
6. past the step deadline without such a verdict, ``on_insufficient_data``
   (rollback or pause) applies; before it, the rollout holds.

Weights only grow while a rollout is live; a step that needs approval keeps
the previous step's weight until :func:`resume`. :func:`plan_for` turns a state
into the service's :class:`~airlock.core.traffic.TrafficPlan`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from airlock.core.analysis import AnalysisVerdict
from airlock.core.rollout_spec import (
    STRATEGIES,
    ABSpec,
    BlueGreenSpec,
    CanarySpec,
    CanaryStep,
    LinearSpec,
    Mirror,
    RolloutSpec,
    RolloutStep,
    ShadowSpec,
    parse_spec,
)
from airlock.core.traffic import TrafficPlan, WeightedRelease, quality_text
from airlock.errors import Conflict, InvalidInput

Phase = Literal["progressing", "paused", "promoted", "rolled_back", "aborted", "completed"]
Action = Literal["advance", "hold", "promote", "rollback", "pause", "complete"]
PHASES: tuple[str, ...] = get_args(Phase)
TERMINAL: frozenset[str] = frozenset({"promoted", "rolled_back", "aborted", "completed"})


@dataclass(frozen=True, slots=True)
class RolloutState:
    """Where a rollout is. Stored by the controller so a restart resumes exactly here.

    ``step_index`` is the step being run; while ``awaiting_approval`` it is the
    step waiting to start, and the previous step's weights stay live.
    """

    phase: Phase
    step_index: int
    started_at: float
    step_started_at: float
    updated_at: float
    reason: str = ""
    awaiting_approval: bool = False
    strata: tuple[tuple[float, float, int], ...] = ()
    """Earlier intervals of constant traffic: ``(start, end, live step index)``. The
    analysis carries their evidence into the current step (one α per rollout)."""

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "strata", tuple((float(a), float(b), int(i)) for a, b, i in self.strata)
        )
        if self.phase not in PHASES:
            raise InvalidInput(f"unknown rollout phase {self.phase!r}; one of {PHASES}")
        if isinstance(self.step_index, bool) or not isinstance(self.step_index, int):
            raise InvalidInput(f"step_index must be an integer, got {self.step_index!r}")
        if self.step_index < 0:
            raise InvalidInput(f"step_index must be >= 0, got {self.step_index}")
        if self.awaiting_approval and self.phase != "paused":
            raise InvalidInput("only a paused rollout can await approval")

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutState:
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise InvalidInput(f"not a rollout state: {exc}") from exc


@dataclass(frozen=True, slots=True)
class RolloutDecision:
    """What the controller should do now; ``hold`` leaves ``new_state`` unchanged."""

    action: Action
    reason: str
    new_state: RolloutState
    candidate_weight: int  # basis points of user traffic for the candidate after this decision
    mirror: Mirror
    verdict: AnalysisVerdict | None = None

    @property
    def changed(self) -> bool:
        return self.action != "hold"


# -- reading a state ------------------------------------------------------------


def start(spec: RolloutSpec, now: float) -> RolloutState:
    """The first state of a rollout (paused if its first step needs approval)."""
    first = spec.schedule()[0]
    if first.pause:
        return RolloutState("paused", 0, now, now, now, "waiting for approval of step 1", True)
    return RolloutState("progressing", 0, now, now, now, "started")


def live_step(spec: RolloutSpec, state: RolloutState) -> RolloutStep | None:
    """The step whose weights are live, or None (terminal, or before step 1)."""
    if state.terminal:
        return None
    steps = spec.schedule()
    index = state.step_index - 1 if state.awaiting_approval else state.step_index
    if index >= len(steps):
        raise InvalidInput(f"state is at step {index + 1} but the spec has {len(steps)} steps")
    return steps[index] if index >= 0 else None


def candidate_weight(spec: RolloutSpec, state: RolloutState) -> int:
    """Basis points of user traffic the candidate gets in ``state``."""
    if state.phase == "promoted":
        return 10_000
    step = live_step(spec, state)
    return step.weight_bp if step is not None else 0


def mirror_of(spec: RolloutSpec, state: RolloutState) -> Mirror:
    step = live_step(spec, state)
    return step.mirror if step is not None else None


def plan_for(
    spec: RolloutSpec, state: RolloutState, plan: TrafficPlan, candidate: str
) -> TrafficPlan:
    """The service's traffic plan for ``state``; ``plan`` itself when nothing changes.

    Promoted: everyone on ``candidate``, the new stable. Rolled back, aborted,
    completed: everyone on ``plan.stable``, nothing else loaded. Live: the
    candidate at its weight (listed even at 0 % so gateways load it early),
    plus the mirror the step needs. Any other candidate in ``plan`` is dropped:
    a service has one rollout in flight.
    """
    if candidate == plan.stable and state.phase != "promoted":
        raise InvalidInput(f"{candidate} is already the stable release of {plan.service}")
    service = plan.service
    if state.phase == "promoted":
        target = TrafficPlan.all_stable(service, candidate)
    elif state.terminal:
        target = TrafficPlan.all_stable(service, plan.stable)
    else:
        mirror = mirror_of(spec, state)
        quality = (
            quality_text(spec.quality.model_dump(mode="json", by_alias=True))
            if spec.quality is not None and spec.quality.enabled
            else None
        )
        if mirror == "candidate":
            target = TrafficPlan(service, plan.stable, (), (candidate,), quality=quality)
        else:
            weight = WeightedRelease(candidate, candidate_weight(spec, state))
            shadows = (plan.stable,) if mirror == "stable" else ()
            target = TrafficPlan(service, plan.stable, (weight,), shadows, quality=quality)
    if plan.same_routing(target):
        return plan
    return dataclasses.replace(target, generation=plan.generation + 1)


# -- the controller's decision -----------------------------------------------------


def decide(
    spec: RolloutSpec,
    state: RolloutState,
    verdict: AnalysisVerdict | None,
    now: float,
) -> RolloutDecision:
    """The next move, given the analysis of the current step's window (see module doc)."""
    if state.terminal:
        return _decision(spec, "hold", f"rollout is {state.phase}", state, verdict)
    steps = spec.schedule()
    exposed = candidate_weight(spec, state) > 0 or mirror_of(spec, state) is not None
    if verdict is not None and verdict.outcome == "fail" and exposed:
        if isinstance(spec, ShadowSpec):
            reason = f"candidate failed analysis in shadow: {verdict.reason}"
            return _move(spec, state, "complete", "completed", reason, now, verdict)
        reason = f"analysis failed: {verdict.reason}"
        return _move(spec, state, "rollback", "rolled_back", reason, now, verdict)
    if state.phase == "paused":
        return _decision(spec, "hold", f"paused: {state.reason}", state, verdict)
    if verdict is not None and verdict.srm_mismatch and exposed:
        reason = f"paused: {verdict.srm.reason if verdict.srm else 'sample ratio mismatch'}"
        paused = dataclasses.replace(state, phase="paused", updated_at=now, reason=reason)
        return _decision(spec, "pause", reason, paused, verdict)

    index = state.step_index
    step = steps[index]
    label = f"step {index + 1}/{len(steps)}"
    elapsed = now - state.step_started_at
    if elapsed < step.bake_seconds:
        reason = f"{label} baking: {elapsed:.0f}s of {step.bake_seconds:.0f}s"
        return _decision(spec, "hold", reason, state, verdict)
    if not spec.promotes:
        outcome = verdict.outcome if verdict is not None else "no data"
        reason = f"{spec.strategy} finished after {elapsed:.0f}s; last verdict: {outcome}"
        return _move(spec, state, "complete", "completed", reason, now, verdict)
    if _passes(spec, verdict):
        if index + 1 == len(steps):
            reason = f"{label} passed; promoting"
            return _move(spec, state, "promote", "promoted", reason, now, verdict)
        following = steps[index + 1]
        new_state = dataclasses.replace(
            state,
            step_index=index + 1,
            step_started_at=now,
            updated_at=now,
            reason=f"{label} passed",
            strata=_closed(state, now),
        )
        if following.pause:
            reason = f"{label} passed; step {index + 2} waits for approval"
            paused = dataclasses.replace(
                new_state, phase="paused", awaiting_approval=True, reason=reason
            )
            return _decision(spec, "pause", reason, paused, verdict)
        reason = f"{label} passed; advancing to {following.weight_bp / 100:g} %"
        return _decision(spec, "advance", reason, new_state, verdict)

    why = verdict.reason if verdict is not None else "no telemetry"
    if elapsed >= spec.analysis.max_step_seconds:
        reason = f"{label} still lacks data after {elapsed:.0f}s: {why}"
        if spec.analysis.on_insufficient_data == "rollback":
            return _move(spec, state, "rollback", "rolled_back", reason, now, verdict)
        paused = dataclasses.replace(state, phase="paused", updated_at=now, reason=reason)
        return _decision(spec, "pause", reason, paused, verdict)
    return _decision(spec, "hold", f"{label} waiting for evidence: {why}", state, verdict)


def _passes(spec: RolloutSpec, verdict: AnalysisVerdict | None) -> bool:
    need = spec.analysis.min_requests
    return (
        verdict is not None
        and verdict.outcome == "pass"
        and verdict.n_candidate >= need
        and verdict.n_stable >= need
    )


def _decision(
    spec: RolloutSpec,
    action: Action,
    reason: str,
    state: RolloutState,
    verdict: AnalysisVerdict | None,
) -> RolloutDecision:
    return RolloutDecision(
        action, reason, state, candidate_weight(spec, state), mirror_of(spec, state), verdict
    )


def _move(
    spec: RolloutSpec,
    state: RolloutState,
    action: Action,
    phase: Phase,
    reason: str,
    now: float,
    verdict: AnalysisVerdict | None,
) -> RolloutDecision:
    new_state = dataclasses.replace(
        state, phase=phase, updated_at=now, reason=reason, awaiting_approval=False
    )
    return _decision(spec, action, reason, new_state, verdict)


# -- manual transitions ------------------------------------------------------------


def _require_live(state: RolloutState, verb: str) -> None:
    if state.terminal:
        raise Conflict(
            f"cannot {verb}: the rollout is already {state.phase}",
            hint="start a new rollout to change the service again",
        )


def pause(state: RolloutState, now: float, reason: str) -> RolloutState:
    """Hold the current weights until :func:`resume`; analysis still rolls back on harm."""
    _require_live(state, "pause")
    if state.phase == "paused":
        raise Conflict("the rollout is already paused", hint="resume it, or roll it back")
    return dataclasses.replace(state, phase="paused", updated_at=now, reason=reason)


def resume(spec: RolloutSpec, state: RolloutState, now: float, reason: str) -> RolloutState:
    """Continue a paused rollout; approves the waiting step. The step's clock restarts."""
    _require_live(state, "resume")
    if state.phase != "paused":
        raise Conflict("the rollout is not paused", hint="only a paused rollout can resume")
    if state.step_index >= len(spec.schedule()):
        raise InvalidInput("the state does not belong to this spec: step out of range")
    return dataclasses.replace(
        state,
        phase="progressing",
        awaiting_approval=False,
        step_started_at=now,
        updated_at=now,
        reason=reason,
        strata=_closed(state, now),
    )


def _closed(state: RolloutState, now: float) -> tuple[tuple[float, float, int], ...]:
    """The strata with the current one closed at ``now`` (its step index as live until now)."""
    index = state.step_index - 1 if state.awaiting_approval else state.step_index
    if index < 0 or now <= state.step_started_at:
        return state.strata
    return (*state.strata, (state.step_started_at, now, index))


def promote_now(spec: RolloutSpec, state: RolloutState, now: float, reason: str) -> RolloutState:
    """Skip the remaining steps: the candidate becomes stable."""
    _require_live(state, "promote")
    if not spec.promotes:
        raise Conflict(
            f"a {spec.strategy} rollout never promotes its candidate",
            hint="start a canary, linear or bluegreen rollout to promote it",
        )
    return dataclasses.replace(
        state, phase="promoted", awaiting_approval=False, updated_at=now, reason=reason
    )


def rollback_now(state: RolloutState, now: float, reason: str) -> RolloutState:
    """Send everyone back to stable because the candidate is bad."""
    _require_live(state, "roll back")
    return dataclasses.replace(
        state, phase="rolled_back", awaiting_approval=False, updated_at=now, reason=reason
    )


def abort(state: RolloutState, now: float, reason: str) -> RolloutState:
    """Cancel the rollout (not a judgement on the candidate); everyone back to stable."""
    _require_live(state, "abort")
    return dataclasses.replace(
        state, phase="aborted", awaiting_approval=False, updated_at=now, reason=reason
    )


__all__ = [
    "PHASES",
    "STRATEGIES",
    "TERMINAL",
    "ABSpec",
    "Action",
    "BlueGreenSpec",
    "CanarySpec",
    "CanaryStep",
    "LinearSpec",
    "Phase",
    "RolloutDecision",
    "RolloutSpec",
    "RolloutState",
    "RolloutStep",
    "ShadowSpec",
    "abort",
    "candidate_weight",
    "decide",
    "live_step",
    "mirror_of",
    "parse_spec",
    "pause",
    "plan_for",
    "promote_now",
    "resume",
    "rollback_now",
    "start",
]
