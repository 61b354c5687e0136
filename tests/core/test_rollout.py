"""Rollout specs and the rollout state machine, with plain values and Hypothesis."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airlock.core.analysis import AnalysisVerdict
from airlock.core.rollout import (
    PHASES,
    TERMINAL,
    ABSpec,
    BlueGreenSpec,
    CanarySpec,
    LinearSpec,
    RolloutSpec,
    RolloutState,
    ShadowSpec,
    abort,
    candidate_weight,
    decide,
    mirror_of,
    parse_spec,
    pause,
    plan_for,
    promote_now,
    resume,
    rollback_now,
    start,
)
from airlock.core.traffic import TrafficPlan
from airlock.errors import Conflict, InvalidInput

STABLE, CANDIDATE = "chat@1.0.0", "chat@1.1.0"
USERS = [f"user-{i}" for i in range(1000)]


def verdict(outcome: str, n_candidate: int = 1000, n_stable: int = 9000) -> AnalysisVerdict:
    return AnalysisVerdict(outcome, (), n_candidate, n_stable, f"test says {outcome}")  # type: ignore[arg-type]


PASS, FAIL, UNSURE = verdict("pass"), verdict("fail"), verdict("inconclusive")

CANARY_YAML = """
strategy: canary
steps:
  - {weight_pct: 5, bake_seconds: 60}
  - {weight_pct: 25, bake_seconds: 60, pause: true}
  - {weight_pct: 100, bake_seconds: 60}
analysis:
  min_requests: 100
  max_step_seconds: 600
"""


def canary_spec(**analysis: Any) -> RolloutSpec:
    data = {
        "strategy": "canary",
        "steps": [
            {"weight_pct": 5, "bake_seconds": 60},
            {"weight_pct": 25, "bake_seconds": 60, "pause": True},
            {"weight_pct": 100, "bake_seconds": 60},
        ],
        "analysis": {"min_requests": 100, "max_step_seconds": 600, **analysis},
    }
    return parse_spec(data)


# -- specs ------------------------------------------------------------------------------


def test_yaml_and_json_give_the_same_spec() -> None:
    from_yaml = parse_spec(CANARY_YAML)
    assert from_yaml == parse_spec(json.dumps(canary_spec().to_dict()))
    assert isinstance(from_yaml, CanarySpec)
    assert [s.weight_bp for s in from_yaml.schedule()] == [500, 2500, 10_000]
    assert [s.pause for s in from_yaml.schedule()] == [False, True, False]
    assert from_yaml.analysis.min_requests == 100


@pytest.mark.parametrize(
    "data",
    [
        {"strategy": "canary", "steps": [{"weight_pct": 1}, {"weight_pct": 100}]},
        {"strategy": "linear", "step_pct": 20, "bake_seconds": 30},
        {"strategy": "bluegreen", "shadow_seconds": 120, "bake_seconds": 300},
        {"strategy": "ab", "split_pct": 50, "duration_seconds": 86_400},
        {"strategy": "shadow", "duration_seconds": 600},
    ],
)
def test_every_strategy_round_trips_through_to_dict(data: dict[str, Any]) -> None:
    spec = parse_spec(data)
    assert parse_spec(spec.to_dict()) == spec
    assert parse_spec(json.dumps(spec.to_dict())) == spec
    assert spec.to_dict()["strategy"] == data["strategy"]


@pytest.mark.parametrize(
    ("step_pct", "weights"),
    [
        (30, [3000, 6000, 9000, 10_000]),
        (25, [2500, 5000, 7500, 10_000]),
        (100, [10_000]),
        (33.3, [3330, 6660, 9990, 10_000]),
    ],
)
def test_linear_expands_to_steps(step_pct: float, weights: list[int]) -> None:
    spec = parse_spec({"strategy": "linear", "step_pct": step_pct, "bake_seconds": 10})
    assert [s.weight_bp for s in spec.schedule()] == weights
    assert all(s.bake_seconds == 10 for s in spec.schedule())


def test_bluegreen_mirrors_the_idle_side_on_both_steps() -> None:
    spec = parse_spec({"strategy": "bluegreen", "shadow_seconds": 120, "bake_seconds": 300})
    steps = spec.schedule()
    assert [(s.weight_bp, s.mirror, s.bake_seconds) for s in steps] == [
        (0, "candidate", 120),
        (10_000, "stable", 300),
    ]
    no_shadow = parse_spec({"strategy": "bluegreen", "shadow_seconds": 0})
    assert [s.weight_bp for s in no_shadow.schedule()] == [10_000]


def test_ab_and_shadow_never_promote() -> None:
    ab = parse_spec({"strategy": "ab", "split_pct": 50, "duration_seconds": 100_000})
    shadow = parse_spec({"strategy": "shadow", "duration_seconds": 60})
    assert isinstance(ab, ABSpec) and isinstance(shadow, ShadowSpec)
    assert not ab.promotes and not shadow.promotes
    assert [(s.weight_bp, s.mirror) for s in ab.schedule()] == [(5000, None)]
    assert [(s.weight_bp, s.mirror) for s in shadow.schedule()] == [(0, "candidate")]


@pytest.mark.parametrize(
    ("source", "names"),
    [
        ("strategy: canary\nsteps: [{weight_pct: 500}]", "steps.0.weight_pct"),
        ("strategy: canary\nsteps: [{weight_pct: 0}]", "steps.0.weight_pct"),
        ("strategy: canary\nsteps: []", "steps"),
        ("strategy: canary\nsteps: [{weight_pct: 50}, {weight_pct: 10}]", "never decrease"),
        ("strategy: canary\nsteps: [{wieght_pct: 5}]", "did you mean 'weight_pct'"),
        ("strategy: canary\nsteps: [{weight_pct: 5, bake_seconds: -1}]", "bake_seconds"),
        ("strategy: linear\nstep_pct: 0.5", "step_pct"),
        ("strategy: linear\nstep_pct: 10\nbake_seconds: 7200", "max_step_seconds"),
        ("strategy: ab\nsplit_pct: 100\nduration_seconds: 10", "split_pct"),
        ("strategy: ab\nsplit_pct: 10", "duration_seconds"),
        ("strategy: shadow\nduration_seconds: 0", "duration_seconds"),
        ("strategy: rainbow", "'rainbow' is not one of canary"),
        ("steps: [{weight_pct: 5}]", "strategy: missing"),
        ("strategy: canary\nsteps: [{weight_pct: 5}]\nanalysis: {alpha: 0.7}", "analysis.alpha"),
        (
            "strategy: canary\nsteps: [{weight_pct: 5}]\nanalysis: {on_insufficient_data: wait}",
            "analysis.on_insufficient_data",
        ),
        (
            "strategy: canary\nsteps: [{weight_pct: 5}]\nanalysis: {metrics: {latncy: {}}}",
            "analysis.metrics.latncy: unknown field",
        ),
        ("strategy: [canary", "not valid YAML or JSON at line 1"),
        ("- 1\n- 2", "must be a mapping"),
        ("", "must be a mapping"),
    ],
)
def test_bad_specs_name_the_bad_field(source: str, names: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_spec(source)
    assert names in str(caught.value)
    assert caught.value.hint


def test_long_experiments_are_not_bound_by_the_step_deadline() -> None:
    spec = parse_spec({"strategy": "ab", "split_pct": 10, "duration_seconds": 7 * 86_400})
    assert spec.schedule()[0].bake_seconds == 7 * 86_400


# -- the state machine, step by step -------------------------------------------------------


def test_start_is_step_one_or_waits_for_approval() -> None:
    state = start(canary_spec(), 100.0)
    assert (state.phase, state.step_index, state.step_started_at) == ("progressing", 0, 100.0)
    gated = parse_spec({"strategy": "canary", "steps": [{"weight_pct": 5, "pause": True}]})
    waiting = start(gated, 100.0)
    assert waiting.phase == "paused" and waiting.awaiting_approval
    assert candidate_weight(gated, waiting) == 0


def test_a_full_canary_rollout() -> None:
    spec = canary_spec()
    state = start(spec, 0.0)
    assert candidate_weight(spec, state) == 500

    baking = decide(spec, state, PASS, 59.0)
    assert (baking.action, baking.new_state, baking.candidate_weight) == ("hold", state, 500)
    assert "baking" in baking.reason

    gated = decide(spec, state, PASS, 60.0)
    assert gated.action == "pause"
    assert gated.new_state.awaiting_approval and gated.new_state.step_index == 1
    assert gated.candidate_weight == 500  # the approval gate keeps the old weight
    assert decide(spec, gated.new_state, PASS, 1000.0).action == "hold"

    approved = resume(spec, gated.new_state, 100.0, "ops approved")
    assert approved.phase == "progressing" and approved.step_started_at == 100.0
    assert candidate_weight(spec, approved) == 2500

    full = decide(spec, approved, PASS, 160.0)
    assert (full.action, full.candidate_weight, full.mirror) == ("advance", 10_000, "stable")

    done = decide(spec, full.new_state, PASS, 220.0)
    assert done.action == "promote"
    assert done.new_state.phase == "promoted"
    assert done.candidate_weight == 10_000


@pytest.mark.parametrize("evidence", [None, UNSURE, verdict("pass", n_candidate=99)])
def test_no_advance_without_enough_passing_data(evidence: AnalysisVerdict | None) -> None:
    spec = canary_spec()
    state = start(spec, 0.0)
    decision = decide(spec, state, evidence, 300.0)
    assert decision.action == "hold"
    assert decision.new_state == state
    assert "waiting for evidence" in decision.reason


@pytest.mark.parametrize(
    ("policy", "action", "phase"),
    [
        ("rollback", "rollback", "rolled_back"),
        ("pause", "pause", "paused"),
    ],
)
def test_step_deadline_applies_the_insufficient_data_policy(
    policy: str, action: str, phase: str
) -> None:
    spec = canary_spec(on_insufficient_data=policy)
    state = start(spec, 0.0)
    assert decide(spec, state, UNSURE, 599.0).action == "hold"
    decision = decide(spec, state, UNSURE, 600.0)
    assert (decision.action, decision.new_state.phase) == (action, phase)
    assert "lacks data" in decision.reason
    assert not decision.new_state.awaiting_approval


def test_fail_rolls_back_at_once_even_while_baking_or_paused() -> None:
    spec = canary_spec()
    state = start(spec, 0.0)
    early = decide(spec, state, FAIL, 1.0)
    assert (early.action, early.new_state.phase, early.candidate_weight) == (
        "rollback",
        "rolled_back",
        0,
    )
    assert "test says fail" in early.reason
    paused = pause(state, 2.0, "looking at dashboards")
    assert decide(spec, paused, FAIL, 3.0).action == "rollback"
    assert decide(spec, paused, PASS, 3.0).action == "hold"


def test_fail_before_any_exposure_is_ignored() -> None:
    spec = parse_spec({"strategy": "canary", "steps": [{"weight_pct": 5, "pause": True}]})
    waiting = start(spec, 0.0)
    assert decide(spec, waiting, FAIL, 10.0).action == "hold"


def test_ab_completes_after_its_duration_whatever_the_verdict() -> None:
    spec = parse_spec({"strategy": "ab", "split_pct": 50, "duration_seconds": 3600})
    state = start(spec, 0.0)
    assert decide(spec, state, PASS, 3599.0).action == "hold"
    for evidence in (PASS, UNSURE, None):
        done = decide(spec, state, evidence, 3600.0)
        assert (done.action, done.new_state.phase, done.candidate_weight) == (
            "complete",
            "completed",
            0,
        )
    assert decide(spec, state, FAIL, 10.0).action == "rollback"
    with pytest.raises(Conflict, match="never promotes"):
        promote_now(spec, state, 5.0, "ship it")


def test_shadow_never_serves_users_and_completes_even_on_failure() -> None:
    spec = parse_spec({"strategy": "shadow", "duration_seconds": 600})
    state = start(spec, 0.0)
    assert (candidate_weight(spec, state), mirror_of(spec, state)) == (0, "candidate")
    failed = decide(spec, state, FAIL, 5.0)
    assert (failed.action, failed.new_state.phase) == ("complete", "completed")
    assert "shadow" in failed.reason
    assert decide(spec, state, UNSURE, 600.0).action == "complete"


def test_bluegreen_goes_from_mirror_to_full_at_once() -> None:
    spec = parse_spec({"strategy": "bluegreen", "shadow_seconds": 60, "bake_seconds": 60})
    state = start(spec, 0.0)
    assert (candidate_weight(spec, state), mirror_of(spec, state)) == (0, "candidate")
    switched = decide(spec, state, PASS, 60.0)
    assert (switched.action, switched.candidate_weight, switched.mirror) == (
        "advance",
        10_000,
        "stable",
    )
    assert decide(spec, switched.new_state, PASS, 120.0).action == "promote"


# -- manual transitions ---------------------------------------------------------------


def test_pause_and_resume() -> None:
    spec = canary_spec()
    state = start(spec, 0.0)
    paused = pause(state, 10.0, "holiday freeze")
    assert (paused.phase, paused.reason, paused.updated_at) == ("paused", "holiday freeze", 10.0)
    assert candidate_weight(spec, paused) == 500
    with pytest.raises(Conflict, match="already paused"):
        pause(paused, 11.0, "again")
    with pytest.raises(Conflict, match="not paused"):
        resume(spec, state, 11.0, "go")
    resumed = resume(spec, paused, 20.0, "go")
    assert resumed.phase == "progressing" and resumed.step_started_at == 20.0
    assert decide(spec, resumed, PASS, 79.0).action == "hold"  # the step's clock restarted


def test_manual_promote_rollback_abort() -> None:
    spec = canary_spec()
    state = start(spec, 0.0)
    assert promote_now(spec, state, 1.0, "urgent fix").phase == "promoted"
    assert rollback_now(state, 1.0, "bad vibes").phase == "rolled_back"
    assert abort(pause(state, 1.0, "x"), 2.0, "wrong candidate").phase == "aborted"


Transition = Callable[[RolloutSpec, RolloutState], object]
MANUAL: dict[str, Transition] = {
    "pause": lambda spec, s: pause(s, 1.0, "r"),
    "resume": lambda spec, s: resume(spec, s, 1.0, "r"),
    "promote_now": lambda spec, s: promote_now(spec, s, 1.0, "r"),
    "rollback_now": lambda spec, s: rollback_now(s, 1.0, "r"),
    "abort": lambda spec, s: abort(s, 1.0, "r"),
}


@pytest.mark.parametrize("phase", sorted(TERMINAL))
@pytest.mark.parametrize("op", sorted(MANUAL))
def test_terminal_rollouts_refuse_every_manual_transition(phase: str, op: str) -> None:
    spec = canary_spec()
    state = RolloutState(phase, 1, 0.0, 0.0, 0.0)  # type: ignore[arg-type]
    with pytest.raises(Conflict, match=f"already {phase}") as caught:
        MANUAL[op](spec, state)
    assert caught.value.hint


@pytest.mark.parametrize("phase", sorted(TERMINAL))
@pytest.mark.parametrize("evidence", [PASS, FAIL, UNSURE, None])
def test_terminal_rollouts_always_hold(phase: str, evidence: AnalysisVerdict | None) -> None:
    spec = canary_spec()
    state = RolloutState(phase, 1, 0.0, 0.0, 0.0)  # type: ignore[arg-type]
    decision = decide(spec, state, evidence, 10**9)
    assert (decision.action, decision.new_state) == ("hold", state)
    assert decision.reason == f"rollout is {phase}"
    assert not decision.changed


def test_state_validation_and_storage() -> None:
    state = start(canary_spec(), 12.5)
    assert RolloutState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    with pytest.raises(InvalidInput, match="phase"):
        RolloutState("sideways", 0, 0.0, 0.0, 0.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="step_index"):
        RolloutState("progressing", -1, 0.0, 0.0, 0.0)
    with pytest.raises(InvalidInput, match="await approval"):
        RolloutState("progressing", 0, 0.0, 0.0, 0.0, awaiting_approval=True)
    with pytest.raises(InvalidInput, match="not a rollout state"):
        RolloutState.from_dict({"phase": "paused"})
    assert set(PHASES) == {"progressing", "paused", *TERMINAL}


# -- traffic plans ------------------------------------------------------------------------


def test_plans_follow_the_state() -> None:
    spec = canary_spec()
    base = TrafficPlan.all_stable("chat", STABLE, generation=4)
    state = start(spec, 0.0)
    live = plan_for(spec, state, base, CANDIDATE)
    assert live.generation == 5 and live.weight_of(CANDIDATE) == 500
    assert plan_for(spec, state, live, CANDIDATE) is live  # nothing changed: same plan
    rolled = plan_for(spec, rollback_now(state, 1.0, "r"), live, CANDIDATE)
    assert rolled.same_routing(TrafficPlan.all_stable("chat", STABLE))
    assert rolled.generation == 6
    promoted = plan_for(spec, promote_now(spec, state, 1.0, "r"), live, CANDIDATE)
    assert promoted.same_routing(TrafficPlan.all_stable("chat", CANDIDATE))


def test_mirror_steps_put_the_idle_release_in_shadows() -> None:
    spec = parse_spec({"strategy": "bluegreen", "shadow_seconds": 60, "bake_seconds": 60})
    base = TrafficPlan.all_stable("chat", STABLE)
    state = start(spec, 0.0)
    shadowing = plan_for(spec, state, base, CANDIDATE)
    assert shadowing.candidates == () and shadowing.shadows == (CANDIDATE,)
    full = plan_for(spec, decide(spec, state, PASS, 60.0).new_state, shadowing, CANDIDATE)
    assert full.weight_of(CANDIDATE) == 10_000 and full.shadows == (STABLE,)
    assert {full.route(u) for u in USERS[:100]} == {CANDIDATE}


def test_candidate_must_differ_from_stable() -> None:
    spec = canary_spec()
    with pytest.raises(InvalidInput, match="already the stable"):
        plan_for(spec, start(spec, 0.0), TrafficPlan.all_stable("chat", STABLE), STABLE)


# -- properties over arbitrary histories -------------------------------------------------


@st.composite
def specs(draw: st.DrawFn) -> RolloutSpec:
    kind = draw(st.sampled_from(["canary", "linear", "bluegreen", "ab", "shadow"]))
    analysis = {
        "min_requests": 100,
        "max_step_seconds": 600,
        "on_insufficient_data": draw(st.sampled_from(["rollback", "pause"])),
    }
    bake = st.integers(0, 300)
    if kind == "canary":
        weights = sorted(draw(st.lists(st.integers(1, 100), min_size=1, max_size=6)))
        steps = [
            {"weight_pct": w, "bake_seconds": draw(bake), "pause": draw(st.booleans())}
            for w in weights
        ]
        return parse_spec({"strategy": kind, "steps": steps, "analysis": analysis})
    if kind == "linear":
        data = {"step_pct": draw(st.integers(10, 100)), "bake_seconds": draw(bake)}
    elif kind == "bluegreen":
        data = {"shadow_seconds": draw(bake), "bake_seconds": draw(bake)}
    elif kind == "ab":
        data = {"split_pct": draw(st.integers(1, 99)), "duration_seconds": draw(bake) + 1}
    else:
        data = {"duration_seconds": draw(bake) + 1}
    return parse_spec({"strategy": kind, **data, "analysis": analysis})


EVENTS = st.one_of(
    st.tuples(
        st.just("decide"),
        st.sampled_from([PASS, FAIL, UNSURE, None, verdict("pass", n_candidate=5)]),
    ),
    st.tuples(st.sampled_from(sorted(MANUAL)), st.none()),
)


@settings(max_examples=300, deadline=None)
@given(
    spec=specs(),
    events=st.lists(st.tuples(EVENTS, st.integers(0, 400)), max_size=40),
)
def test_any_history_keeps_the_invariants(
    spec: RolloutSpec, events: list[tuple[tuple[str, AnalysisVerdict | None], int]]
) -> None:
    now = 0.0
    state = start(spec, now)
    plan = plan_for(spec, state, TrafficPlan.all_stable("chat", STABLE), CANDIDATE)
    weight = candidate_weight(spec, state)
    frozen: RolloutState | None = None
    for (op, evidence), dt in events:
        now += dt
        try:
            if op == "decide":
                new = decide(spec, state, evidence, now).new_state
            else:
                result = MANUAL[op](spec, state)
                assert isinstance(result, RolloutState)
                new = result
        except Conflict:
            assert state.terminal or op in {"pause", "resume", "promote_now"}
            continue
        if frozen is not None:
            assert new == frozen, "a finished rollout moved"
        new_weight = candidate_weight(spec, new)
        assert 0 <= new_weight <= 10_000
        if not new.terminal:
            assert new_weight >= weight, "weights went down while the rollout was live"
            assert new.step_index < len(spec.schedule())
        new_plan = plan_for(spec, new, plan, CANDIDATE)
        assert new_plan.generation in {plan.generation, plan.generation + 1}
        assert (new_plan.generation == plan.generation) == plan.same_routing(new_plan)
        if new.phase in {"rolled_back", "aborted", "completed"}:
            assert new_plan.same_routing(TrafficPlan.all_stable("chat", STABLE))
        if new.phase == "promoted":
            assert spec.promotes
            assert new_plan.same_routing(TrafficPlan.all_stable("chat", CANDIDATE))
        if new.terminal:
            frozen = new
        state, plan, weight = new, new_plan, new_weight


@settings(max_examples=200, deadline=None)
@given(spec=specs())
def test_schedules_have_valid_monotone_weights(spec: RolloutSpec) -> None:
    weights = [s.weight_bp for s in spec.schedule()]
    assert weights and all(0 <= w <= 10_000 for w in weights)
    assert weights == sorted(weights)
    if spec.promotes and not isinstance(spec, CanarySpec):
        assert weights[-1] == 10_000
    if isinstance(spec, LinearSpec | BlueGreenSpec):
        assert len(set(weights)) == len(weights)


@settings(max_examples=200, deadline=None)
@given(spec=specs(), at=st.integers(0, 10_000))
def test_a_failing_verdict_always_restores_the_all_stable_plan(spec: RolloutSpec, at: int) -> None:
    state = start(spec, 0.0)
    if candidate_weight(spec, state) == 0 and mirror_of(spec, state) is None:
        return  # nothing is exposed yet: nothing to roll back
    decision = decide(spec, state, FAIL, float(at))
    live = plan_for(spec, state, TrafficPlan.all_stable("chat", STABLE), CANDIDATE)
    after = plan_for(spec, decision.new_state, live, CANDIDATE)
    assert after.same_routing(TrafficPlan.all_stable("chat", STABLE))
    assert {after.route(u) for u in USERS[:200]} == {STABLE}
    assert decision.candidate_weight == 0
