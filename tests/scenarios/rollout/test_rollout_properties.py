"""Invariants of the rollout service under any sequence of operator actions (Hypothesis, on a
real SQLite catalog): one live rollout per service, a finished rollout never moves again,
rollback and abort always restore the plan's stable release for everyone, promotion moves
the service and the ``stable`` alias, plan generations only grow, the audit chain verifies."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airlock import audit
from airlock.config import Settings
from airlock.core.traffic import TrafficPlan
from airlock.errors import Conflict, NotFound
from airlock.services.workspace import Workspace
from gateway.support import COOKING, MOON, Releases
from rollout.support import OPERATOR, Lab, canary

ACTIONS = ("start", "pause", "resume", "promote", "abort", "rollback")


@pytest.fixture(scope="module")
def shared_lab() -> Iterator[tuple[Lab, str, str]]:
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.open(Settings(home=Path(tmp) / ".airlock", user="alice"), create=True)
        try:
            lab = Lab(ws, Releases(ws, Path(tmp) / "folders"))
            a = lab.releases.builtin("chat", "1.0.0", MOON)
            b = lab.releases.builtin("chat", "1.1.0", COOKING)
            yield lab, a, b
        finally:
            ws.close()


_services = iter(range(1_000_000))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    actions=st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=12),
    paused_step=st.booleans(),
)
def test_any_sequence_of_actions_keeps_the_invariants(
    shared_lab: tuple[Lab, str, str], actions: list[str], paused_step: bool
) -> None:
    lab, a, b = shared_lab
    service = f"svc{next(_services)}"
    lab.serving.create(service, a, actor=OPERATOR, reason="property test")
    spec = canary(5, 50, 100, bake=600)
    spec["steps"][1]["pause"] = paused_step
    generation = 0
    for action in actions:
        stable = lab.serving.plan(service).stable
        candidate = b if stable == a else a
        live = lab.rollouts.active(service)
        finished = lab.rollouts.recent(service)
        try:
            if action == "start":
                t = lab.rollouts.start(service, candidate, spec, actor=OPERATOR)
            else:
                verb = getattr(lab.rollouts, action)
                t = verb(service, actor=OPERATOR, reason=f"property: {action}")
        except (Conflict, NotFound):
            # refused: a start while one is live, or a move without a live rollout or
            # against the state machine (e.g. resume while progressing); nothing changed
            assert lab.rollouts.active(service) == live
            assert lab.serving.plan(service).generation == generation
            continue
        assert action != "start" or live is None  # never two live rollouts
        view = t.rollout
        plan = lab.serving.plan(service)
        assert plan.generation >= generation
        generation = plan.generation
        if view.phase in ("rolled_back", "aborted"):
            assert plan.same_routing(TrafficPlan.all_stable(service, view.stable))
        if view.phase == "promoted":
            assert plan.same_routing(TrafficPlan.all_stable(service, view.candidate))
            assert lab.releases.registry.resolve("chat@stable").ref == view.candidate
        if view.live:
            assert plan.stable == view.stable
            assert plan.weight_of(view.candidate) == view.candidate_weight
        for old in finished:  # a finished rollout never moves again
            if not old.live:
                assert lab.rollouts.get(old.id) == old
    assert len([r for r in lab.rollouts.recent(service) if r.live]) <= 1
    with lab.ws.db.read() as conn:
        assert audit.verify(conn).ok
