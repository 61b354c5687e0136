"""The rollout service and the controller on a real catalog (SQLite and PostgreSQL), without a
gateway: roles, one rollout per service, the policy gate, manual control, the no-data rule,
and each strategy's path (telemetry written to the catalog as gateways flush it)."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from airlock import audit
from airlock.core.traffic import TrafficPlan, WeightedRelease
from airlock.errors import Conflict, Forbidden, InvalidInput, NotFound, PolicyViolation
from airlock.services.controller import CatalogTelemetry, RolloutController
from airlock.services.governance import Governance
from airlock.services.rollouts import Rollouts, RolloutView
from gateway.support import MOON
from rollout.support import (
    ALICE,
    APPROVER,
    AUTHOR,
    OPERATOR,
    VIEWER,
    Lab,
    canary,
    record,
    wait_until,
)


@pytest.fixture
def chat(lab: Lab) -> tuple[str, str]:
    stable = lab.releases.builtin("chat", "1.0.0", MOON)
    candidate = lab.releases.builtin("chat", "1.1.0", MOON)
    lab.serving.create("chat", stable, actor=ALICE, reason="launch")
    return stable, candidate


def _stable_alias(lab: Lab) -> str | None:
    try:
        return lab.releases.registry.resolve("chat@stable").ref
    except NotFound:
        return None


def _events(lab: Lab, action: str) -> list[audit.Event]:
    with lab.ws.db.read() as conn:
        return list(audit.entries(conn, action=action))


def _tick(controller: RolloutController) -> None:
    asyncio.run(controller.tick())


def _until_done(lab: Lab, controller: RolloutController, rollout_id: int) -> RolloutView:
    def done() -> RolloutView | None:
        _tick(controller)
        view = lab.rollouts.get(rollout_id)
        return None if view.live else view

    return wait_until(done, what=f"rollout #{rollout_id} to end")


def _flush(lab: Lab, view: RolloutView, *windows: tuple[str, str, int, int]) -> None:
    """Telemetry as gateways flush it, inside the rollout's current step."""
    start = datetime.fromtimestamp(view.state.step_started_at, UTC)
    records = [
        record("chat", release, traffic, start, requests=n, errors=e)
        for release, traffic, n, e in windows
    ]
    lab.serving.flush(records, gateway="test-gateway")


# -- starting -----------------------------------------------------------------------------


def test_start_stores_the_rollout_and_the_first_plan(lab: Lab, chat: tuple[str, str]) -> None:
    stable, candidate = chat
    t = lab.rollouts.start("chat", candidate, canary(5, 50, 100), actor=OPERATOR, reason="v1.1")
    view = t.rollout
    assert (view.phase, view.state.step_index, view.candidate_weight) == ("progressing", 0, 500)
    assert (view.candidate, view.stable, view.kind) == (candidate, stable, "rollout")
    plan = lab.serving.plan("chat")
    assert t.plan == plan
    assert plan.candidates == (WeightedRelease(candidate, 500),) and plan.stable == stable
    assert lab.rollouts.status("chat").id == view.id
    [event] = _events(lab, "rollout.start")
    assert (event.actor, event.subject, event.details["rollout"]) == ("olga", "chat", view.id)
    assert event.details["spec"]["strategy"] == "canary"


def test_one_rollout_per_service(lab: Lab, chat: tuple[str, str]) -> None:
    _, candidate = chat
    other = lab.releases.builtin("chat", "1.2.0", MOON)
    lab.rollouts.start("chat", candidate, canary(10), actor=ALICE)
    with pytest.raises(Conflict, match="already has rollout #1 in flight"):
        lab.rollouts.start("chat", other, canary(10), actor=ALICE)
    lab.rollouts.abort("chat", actor=ALICE, reason="make room")
    second = lab.rollouts.start("chat", other, canary(10), actor=ALICE).rollout
    assert second.id == 2 and lab.serving.plan("chat").candidates[0].release == other


def test_concurrent_starts_let_exactly_one_through(lab: Lab, chat: tuple[str, str]) -> None:
    _, candidate = chat
    other = lab.releases.builtin("chat", "1.2.0", MOON)
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def start(ref: str) -> None:
        barrier.wait()
        try:
            lab.rollouts.start("chat", ref, canary(10), actor=ALICE)
            outcomes.append("started")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=start, args=(r,)) for r in (candidate, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "started"]
    assert len(lab.rollouts.live()) == 1


def test_bad_starts_are_refused_with_a_clear_error(lab: Lab, chat: tuple[str, str]) -> None:
    stable, candidate = chat
    with pytest.raises(InvalidInput, match="already the stable release"):
        lab.rollouts.start("chat", stable, canary(10), actor=ALICE)
    with pytest.raises(NotFound, match="no service named 'tea'"):
        lab.rollouts.start("tea", candidate, canary(10), actor=ALICE)
    with pytest.raises(InvalidInput, match=r"steps\.0\.weight_pct"):
        lab.rollouts.start("chat", candidate, {"strategy": "canary", "steps": [{}]}, actor=ALICE)
    assert lab.rollouts.live() == [] and lab.serving.plan("chat").generation == 0


# -- roles --------------------------------------------------------------------------------


def test_roles_are_checked_and_denials_are_audited(lab: Lab, chat: tuple[str, str]) -> None:
    _, candidate = chat
    for who in (VIEWER, AUTHOR, APPROVER):
        with pytest.raises(Forbidden, match=r"may not rollout\.start"):
            lab.rollouts.start("chat", candidate, canary(10, 100), actor=who)
    assert lab.rollouts.live() == []
    lab.rollouts.start("chat", candidate, canary(10, 100), actor=OPERATOR)
    with pytest.raises(Forbidden, match=r"may not rollout\.control"):
        lab.rollouts.pause("chat", actor=AUTHOR)
    with pytest.raises(Forbidden, match=r"may not rollout\.rollback"):
        lab.rollouts.rollback("chat", actor=APPROVER, reason="I think it is bad")
    with pytest.raises(Forbidden):
        lab.rollouts.promote("chat", actor=VIEWER)
    assert lab.rollouts.status("chat").phase == "progressing"
    denied = _events(lab, "access.denied")
    assert [e.details["action"] for e in denied] == [
        "rollout.start",
        "rollout.start",
        "rollout.start",
        "rollout.control",
        "rollout.rollback",
        "alias.move",
    ]
    assert lab.rollouts.pause("chat", actor=OPERATOR).rollout.phase == "paused"


# -- the policy gate ---------------------------------------------------------------------------

POLICY = """
stages:
  stable:
    approvals: {required: 1}
    min_canary_minutes: 10
"""


def test_the_policy_gate_blocks_a_start_until_the_rules_are_met(
    lab: Lab, chat: tuple[str, str]
) -> None:
    _, candidate = chat
    Governance(lab.ws).set_policy("chat", POLICY, actor=ALICE, reason="rules")
    short = canary(10, 100, bake=60)
    with pytest.raises(PolicyViolation, match="approvals") as blocked:
        lab.rollouts.start("chat", candidate, short, actor=OPERATOR)
    assert "canary" in blocked.value.message  # both problems named at once
    [event] = _events(lab, "policy.blocked")
    assert event.details["action"] == "rollout.start"
    assert {f["rule"] for f in event.details["failed"]} >= {"rollout"}
    Governance(lab.ws).approve(candidate, stage="stable", actor=APPROVER)
    with pytest.raises(PolicyViolation, match="at least 10 min of canary"):
        lab.rollouts.start("chat", candidate, short, actor=OPERATOR)
    long_enough = canary(10, 100, bake=600)
    assert lab.rollouts.start("chat", candidate, long_enough, actor=OPERATOR).rollout.live
    # a shadow rollout serves no user: no gate
    lab.rollouts.abort("chat", actor=OPERATOR, reason="next")
    shadow = {"strategy": "shadow", "duration_seconds": 5}
    other = lab.releases.builtin("chat", "1.2.0", MOON)
    assert lab.rollouts.start("chat", other, shadow, actor=OPERATOR).rollout.live


def test_a_manual_promotion_the_policy_now_blocks_is_refused(
    lab: Lab, chat: tuple[str, str]
) -> None:
    stable, candidate = chat
    Governance(lab.ws).set_policy("chat", POLICY, actor=ALICE, reason="rules")
    Governance(lab.ws).approve(candidate, stage="stable", actor=APPROVER)
    view = lab.rollouts.start("chat", candidate, canary(10, 100, bake=600), actor=OPERATOR).rollout
    Governance(lab.ws).reject(candidate, stage="stable", actor=APPROVER, comment="found a bug")
    with pytest.raises(PolicyViolation, match="cannot promote"):
        lab.rollouts.promote("chat", actor=OPERATOR)
    after = lab.rollouts.get(view.id)
    assert (after.phase, after.version) == ("progressing", view.version)
    assert _stable_alias(lab) == stable and lab.serving.plan("chat").stable == stable
    assert _events(lab, "policy.blocked")[-1].details["action"] == "rollout.promote"


def test_the_controller_pauses_when_the_gate_blocks_its_promotion(
    lab: Lab, chat: tuple[str, str]
) -> None:
    stable, candidate = chat
    rules = "stages: {stable: {approvals: {required: 1}}}\n"
    Governance(lab.ws).set_policy("chat", rules, actor=ALICE, reason="rules")
    Governance(lab.ws).approve(candidate, stage="stable", actor=APPROVER)
    spec = canary(50, bake=0, min_requests=20)
    view = lab.rollouts.start("chat", candidate, spec, actor=OPERATOR).rollout
    Governance(lab.ws).reject(candidate, stage="stable", actor=APPROVER, comment="regression")
    _flush(lab, view, (candidate, "live", 100, 0), (stable, "live", 100, 0))
    controller = lab.controller()
    wait_until(lambda: _tick(controller) or lab.rollouts.get(view.id).phase == "paused")
    paused = lab.rollouts.get(view.id)
    assert paused.state.reason.startswith("promotion blocked by policy")
    assert lab.serving.plan("chat").candidates == (WeightedRelease(candidate, 5000),)
    assert _events(lab, "policy.blocked")[-1].details["action"] == "rollout.promote"


# -- manual control --------------------------------------------------------------------------


def test_manual_control_pause_resume_promote(lab: Lab, chat: tuple[str, str]) -> None:
    _, candidate = chat
    spec = canary(5, 25, 100)
    spec["steps"][1]["pause"] = True
    view = lab.rollouts.start("chat", candidate, spec, actor=OPERATOR).rollout
    paused = lab.rollouts.pause("chat", actor=OPERATOR, reason="on-call handover").rollout
    assert (paused.phase, paused.candidate_weight) == ("paused", 500)
    with pytest.raises(Conflict, match="already paused"):
        lab.rollouts.pause("chat", actor=OPERATOR)
    resumed = lab.rollouts.resume("chat", actor=OPERATOR).rollout
    assert resumed.phase == "progressing"
    t = lab.rollouts.promote("chat", actor=OPERATOR, reason="looks great")
    assert t.rollout.phase == "promoted" and not t.rollout.live
    assert t.plan == TrafficPlan.all_stable("chat", candidate, generation=t.plan.generation)
    assert lab.serving.get("chat").plan.stable == candidate
    assert lab.releases.registry.resolve("chat@stable").ref == candidate
    with pytest.raises(NotFound, match="no rollout in flight"):
        lab.rollouts.rollback("chat", actor=OPERATOR, reason="too late")
    actions = [h.action for h in lab.rollouts.history(view.id)]
    assert actions == ["start", "pause", "resume", "promote"]
    assert [e.details["reason"] for e in _events(lab, "rollout.pause")] == ["on-call handover"]
    assert _events(lab, "alias.move")[-1].details["rollout"] == view.id


def test_manual_rollback_and_abort_put_everyone_back_on_stable(
    lab: Lab, chat: tuple[str, str]
) -> None:
    stable, candidate = chat
    lab.rollouts.start("chat", candidate, canary(50), actor=OPERATOR)
    with pytest.raises(InvalidInput, match="needs a reason"):
        lab.rollouts.rollback("chat", actor=OPERATOR, reason=" ")
    t = lab.rollouts.rollback("chat", actor=OPERATOR, reason="customer complaints")
    assert (t.rollout.phase, t.rollout.reason) == ("rolled_back", "customer complaints")
    assert t.plan is not None and t.plan.same_routing(TrafficPlan.all_stable("chat", stable))
    assert _stable_alias(lab) == "chat@1.0.0"  # where service create put it: never moved
    lab.rollouts.start("chat", candidate, canary(50), actor=OPERATOR)
    a = lab.rollouts.abort("chat", actor=OPERATOR, reason="wrong day").rollout
    assert a.phase == "aborted" and lab.serving.plan("chat").candidates == ()
    with pytest.raises(Conflict, match="already aborted"):
        lab.rollouts.decide(a.id, a.version, a.state, "rollback", "late", None)


def test_a_drill_is_never_promoted(lab: Lab, chat: tuple[str, str]) -> None:
    stable, candidate = chat
    view = lab.rollouts.start(
        "chat", candidate, canary(50, bake=0, min_requests=20), actor=ALICE, kind="drill"
    ).rollout
    with pytest.raises(Conflict, match="is a drill"):
        lab.rollouts.promote("chat", actor=ALICE)
    _flush(lab, view, (candidate, "live", 100, 0), (stable, "live", 100, 0))
    done = _until_done(lab, lab.controller(), view.id)
    assert done.phase == "aborted" and "without detecting the fault" in done.reason
    assert lab.serving.plan("chat").stable == stable


# -- the controller: never pass without data ------------------------------------------------


@pytest.mark.parametrize("then", ["rollback", "pause"])
def test_a_step_without_traffic_never_passes(lab: Lab, chat: tuple[str, str], then: str) -> None:
    stable, candidate = chat
    # A hand-driven clock: the step's deadline passes when the test says so, not when a
    # slow machine happens to take longer than the deadline between two ticks.
    now = [time.time()]
    lab.rollouts = Rollouts(lab.ws, serving=lab.serving, clock=lambda: now[0])
    spec = canary(50, 100, bake=0, min_requests=20, max_step_seconds=30)
    spec["analysis"]["on_insufficient_data"] = then
    view = lab.rollouts.start("chat", candidate, spec, actor=OPERATOR).rollout
    # only stable sees traffic: the candidate side stays empty
    _flush(lab, view, (stable, "live", 500, 0))
    controller = lab.controller()
    for seconds in (0.0, 10.0, 29.0):  # before the deadline: the step holds
        now[0] = view.state.step_started_at + seconds
        _tick(controller)
        held = lab.rollouts.get(view.id)
        assert held.phase == "progressing" and held.state.step_index == 0
        assert held.candidate_weight == 5000
    now[0] = view.state.step_started_at + 31.0  # past it: the configured outcome
    _tick(controller)
    end = lab.rollouts.get(view.id)
    assert end.state.step_index == 0 and end.candidate_weight in (0, 5000)
    assert "lacks data" in end.state.reason
    assert end.phase == ("rolled_back" if then == "rollback" else "paused")
    history = lab.rollouts.history(view.id)
    assert {h.action for h in history} <= {"start", "hold", then}
    holds = [h for h in history if h.action == "hold"]
    assert holds and all(h.verdict and h.verdict.outcome == "inconclusive" for h in holds)
    assert _stable_alias(lab) == "chat@1.0.0"  # where service create put it: never moved


# -- strategies ---------------------------------------------------------------------------------


def test_bluegreen_mirrors_first_then_switches_with_stable_as_the_mirror(
    lab: Lab, chat: tuple[str, str]
) -> None:
    stable, candidate = chat
    spec = {
        "strategy": "bluegreen",
        "shadow_seconds": 0.01,
        "bake_seconds": 0,
        "analysis": {"min_requests": 20},
    }
    view = lab.rollouts.start("chat", candidate, spec, actor=OPERATOR).rollout
    plan = lab.serving.plan("chat")
    assert plan.candidates == () and plan.shadows == (candidate,)  # users all on stable
    controller = lab.controller()
    # live candidate traffic does not count in the mirror step: it compares shadow copies
    _flush(lab, view, (candidate, "live", 500, 0), (stable, "live", 500, 0))
    time.sleep(0.02)
    _tick(controller)
    assert lab.rollouts.get(view.id).state.step_index == 0
    _flush(lab, view, (candidate, "shadow", 100, 0))
    wait_until(lambda: _tick(controller) or lab.rollouts.get(view.id).state.step_index == 1)
    switched = lab.rollouts.get(view.id)
    plan = lab.serving.plan("chat")
    assert plan.candidates == (WeightedRelease(candidate, 10_000),)
    assert plan.shadows == (stable,)
    _flush(lab, switched, (candidate, "live", 100, 0), (stable, "shadow", 100, 0))
    done = _until_done(lab, controller, view.id)
    assert done.phase == "promoted"
    assert lab.releases.registry.resolve("chat@stable").ref == candidate


@pytest.mark.parametrize("strategy", ["ab", "shadow"])
def test_ab_and_shadow_complete_without_moving_stable(
    lab: Lab, chat: tuple[str, str], strategy: str
) -> None:
    stable, candidate = chat
    spec = {"strategy": strategy, "duration_seconds": 0.2, "analysis": {"min_requests": 20}}
    if strategy == "ab":
        spec["split_pct"] = 30
    view = lab.rollouts.start("chat", candidate, spec, actor=OPERATOR).rollout
    traffic = "shadow" if strategy == "shadow" else "live"
    n_c = 100 if strategy == "shadow" else 60  # the a/b split gives the candidate 30 %
    _flush(lab, view, (candidate, traffic, n_c, 0), (stable, "live", 200 - n_c, 0))
    done = _until_done(lab, lab.controller(), view.id)
    assert done.phase == "completed"
    assert done.last_verdict is not None and done.last_verdict.outcome == "pass"
    assert lab.serving.plan("chat").same_routing(TrafficPlan.all_stable("chat", stable))
    assert _stable_alias(lab) == "chat@1.0.0"  # where service create put it: never moved
    lab.rollouts.start("chat", candidate, spec, actor=OPERATOR)
    with pytest.raises(Conflict, match="never promotes"):
        lab.rollouts.promote("chat", actor=OPERATOR)


def test_a_failing_candidate_is_rolled_back_even_while_paused(
    lab: Lab, chat: tuple[str, str]
) -> None:
    stable, candidate = chat
    spec = canary(20, min_requests=20)
    view = lab.rollouts.start("chat", candidate, spec, actor=OPERATOR).rollout
    lab.rollouts.pause("chat", actor=OPERATOR, reason="watching")
    _flush(lab, view, (candidate, "live", 200, 60), (stable, "live", 800, 0))
    done = _until_done(lab, lab.controller(), view.id)
    assert done.phase == "rolled_back" and "error_rate" in done.reason
    assert lab.serving.plan("chat").same_routing(TrafficPlan.all_stable("chat", stable))


def test_only_the_lease_holder_acts(lab: Lab, chat: tuple[str, str]) -> None:
    stable, candidate = chat
    spec = canary(20, min_requests=20)
    view = lab.rollouts.start("chat", candidate, spec, actor=OPERATOR).rollout
    leader, standby = lab.controller(lease_seconds=30), lab.controller(lease_seconds=30)
    _tick(leader)
    _flush(lab, view, (candidate, "live", 200, 60), (stable, "live", 800, 0))
    assert asyncio.run(standby.tick()) == [] and lab.rollouts.get(view.id).live
    assert not standby.is_leader
    [event] = asyncio.run(leader.tick())
    assert event.action == "rollback"


def test_catalog_telemetry_is_read_incrementally_and_counts_each_flush_once(
    lab: Lab, chat: tuple[str, str]
) -> None:
    stable, candidate = chat
    source = CatalogTelemetry(lab.serving, margin_seconds=60)
    step = datetime.now(UTC).replace(microsecond=0)
    since = step.timestamp()
    before = record("chat", candidate, "live", step - timedelta(seconds=1), requests=7)
    lab.serving.flush([before], gateway="g1")  # straddles the step's start: not counted

    def flush(offset: float, release: str, n: int, errors: int = 0) -> None:
        at = step + timedelta(seconds=offset)
        lab.serving.flush(
            [record("chat", release, "live", at, requests=n, errors=errors)], gateway="g1"
        )

    def read() -> dict[tuple[str, str], int]:
        got = source.read("chat", since, [candidate, stable])
        return {k: w.requests for k, w in got.items()}

    assert read() == {}
    flush(0, candidate, 10, 1)
    flush(0, stable, 90)
    assert read() == {(candidate, "live"): 10, (stable, "live"): 90}
    assert read() == {(candidate, "live"): 10, (stable, "live"): 90}  # nothing counted twice
    flush(5, candidate, 5)
    flush(2, stable, 10)  # committed late, but within the margin: counted once
    totals = source.read("chat", since, [candidate, stable])
    assert totals[(candidate, "live")].requests == 15 and totals[(candidate, "live")].errors == 1
    assert totals[(stable, "live")].requests == 100
    lab.serving.flush([record("chat", "chat@9.9.9", "live", step, requests=3)], gateway="g2")
    assert set(read()) == {(candidate, "live"), (stable, "live")}  # other releases ignored
    # a new step starts from zero
    assert source.read("chat", since + 4, [candidate, stable])[(candidate, "live")].requests == 5
