"""A service's default quality settings: a rollout whose spec names no scorers uses them (and
records them in its spec, so the controller and the audit trail see what was scored), a spec's
own section wins, bad settings are refused naming the field, and every change is audited."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from airlock.errors import Forbidden, InvalidInput, NotFound
from airlock.services.audit_views import AuditLog, EventFilter
from airlock.services.workspace import Workspace
from gateway.support import MOON, Releases
from rollout.support import OPERATOR, VIEWER, Lab, canary

REFUSALS = {
    "sample": 0.2,
    "scorers": {"no_refusal": {"check": {"refusal": False}, "tolerance": 0.5}},
}


@pytest.fixture
def lab(workspace: Workspace, tmp_path: Path) -> Lab:
    lab = Lab(workspace, Releases(workspace, tmp_path / "folders"))
    stable = lab.releases.builtin("chat", "1.0.0", MOON)
    lab.releases.builtin("chat", "1.1.0", MOON)
    lab.serving.create("chat", stable, actor=OPERATOR, reason="launch")
    return lab


def test_a_rollout_without_its_own_quality_uses_the_service_defaults(lab: Lab) -> None:
    assert lab.serving.quality("chat") is None
    stored = lab.serving.set_quality("chat", REFUSALS, actor=OPERATOR, reason="refusals matter")
    assert stored is not None and stored.updated_by == "olga"
    assert lab.serving.quality("chat") == stored

    view = lab.rollouts.start("chat", "chat@1.1.0", canary(10, bake=600), actor=OPERATOR).rollout
    assert view.spec.quality == stored.settings  # recorded in the rollout as it started
    plan = lab.serving.plan("chat")
    assert plan.quality is not None and "no_refusal" in plan.quality  # the gateways score it
    judged = view.spec.judged_analysis.metrics.custom
    assert judged["quality.no_refusal"].tolerance == 0.5  # and the analysis judges it

    [event] = AuditLog(lab.ws).events(EventFilter(action="service.quality"))
    assert (event.actor, event.subject) == ("olga", "chat")
    assert event.details["from"] is None and event.details["reason"] == "refusals matter"
    assert event.details["to"]["scorers"]["no_refusal"]["tolerance"] == 0.5
    [start] = AuditLog(lab.ws).events(EventFilter(action="rollout.start"))
    assert start.details["quality_from"] == "service"
    assert start.details["spec"]["quality"]["sample"] == 0.2


def test_the_spec_s_own_quality_section_wins_even_when_it_turns_scoring_off(lab: Lab) -> None:
    lab.serving.set_quality("chat", REFUSALS, actor=OPERATOR)
    own = {"sample": 0.5, "scorers": {"short": {"check": {"max_words": 50}}}}
    view = lab.rollouts.start(
        "chat", "chat@1.1.0", {**canary(10, bake=600), "quality": own}, actor=OPERATOR
    ).rollout
    assert view.spec.quality is not None and set(view.spec.quality.scorers) == {"short"}
    lab.rollouts.abort("chat", actor=OPERATOR, reason="next")

    off = lab.rollouts.start(
        "chat", "chat@1.1.0", {**canary(10, bake=600), "quality": {"sample": 0}}, actor=OPERATOR
    ).rollout
    assert off.spec.quality is not None and not off.spec.quality.enabled
    assert lab.serving.plan("chat").quality is None  # nothing scored
    starts = AuditLog(lab.ws).events(EventFilter(action="rollout.start"))
    assert [e.details["quality_from"] for e in starts] == ["spec", "spec"]


def test_clearing_the_defaults_is_audited_and_rollouts_score_nothing(lab: Lab) -> None:
    lab.serving.set_quality("chat", REFUSALS, actor=OPERATOR)
    assert lab.serving.set_quality("chat", REFUSALS, actor=OPERATOR) is not None  # no change
    assert lab.serving.set_quality("chat", None, actor=OPERATOR, reason="too noisy") is None
    assert lab.serving.quality("chat") is None
    events = AuditLog(lab.ws).events(EventFilter(action="service.quality"))
    assert [e.details["to"] is None for e in events] == [False, True]  # one event per change
    view = lab.rollouts.start("chat", "chat@1.1.0", canary(10, bake=600), actor=OPERATOR).rollout
    assert view.spec.quality is None


@pytest.mark.parametrize(
    ("given", "words"),
    [
        ({"sample": 2}, "quality.sample: Input should be less than or equal to 1"),
        ({"sample": 0.1}, "name at least one scorer or a judge"),
        ({"scorers": {"x": {"check": {"refusal": False}, "tolerance": -1}}}, "quality.scorers.x.tolerance"),
        ({"scorers": {"bad name": {"check": {"refusal": False}}}}, "scorer name 'bad name'"),
        ({"judge": {"release": "judge@stable"}}, "quality.judge.release"),
        ({"scorers": {}, "colour": "blue"}, "quality.colour: Extra inputs are not permitted"),
        (["no_refusal"], "quality must be a mapping"),
    ],
)  # fmt: skip
def test_bad_settings_are_refused_naming_the_field(lab: Lab, given: object, words: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(words)):
        lab.serving.set_quality("chat", given, actor=OPERATOR)
    assert lab.serving.quality("chat") is None
    assert AuditLog(lab.ws).events(EventFilter(action="service.quality")) == ()


def test_a_judge_must_exist_the_service_too_and_viewers_cannot_set_them(lab: Lab) -> None:
    judge = {"judge": {"release": "judge@1.0.0", "mode": "pairwise"}}
    with pytest.raises(NotFound, match=r"quality.judge.release: no model named 'judge'"):
        lab.serving.set_quality("chat", judge, actor=OPERATOR)
    with pytest.raises(NotFound, match="no service named 'nope'"):
        lab.serving.set_quality("nope", REFUSALS, actor=OPERATOR)
    with pytest.raises(Forbidden):
        lab.serving.set_quality("chat", REFUSALS, actor=VIEWER)
    ok = {"judge": {"release": "chat@1.0.0", "mode": "pairwise"}}
    stored = lab.serving.set_quality("chat", ok, actor=OPERATOR)
    assert stored is not None and stored.settings.judge is not None


def test_defaults_that_clash_with_the_spec_s_custom_metrics_are_refused_at_start(lab: Lab) -> None:
    lab.serving.set_quality("chat", REFUSALS, actor=OPERATOR)
    spec = canary(10, bake=600)
    spec["analysis"]["metrics"] = {"custom": {"quality.no_refusal": {"higher_is_better": True}}}
    with pytest.raises(InvalidInput, match="the service's default quality settings do not fit"):
        lab.rollouts.start("chat", "chat@1.1.0", spec, actor=OPERATOR)
    assert lab.rollouts.active("chat") is None


def test_the_detection_plan_counts_the_default_scorers_share_of_alpha(lab: Lab) -> None:
    """A rollout plan is made for what the rollout would judge: with default scorers taking
    their share of the error budget, the error rate's detectable effect grows."""
    from airlock.services.rollout_planning import RolloutPlanner

    planner = RolloutPlanner(lab.ws, serving=lab.serving)
    traffic = {"requests_per_second": 50.0, "error_rate": 0.01}

    def detectable() -> float:
        plan = planner.plan("chat", canary(10, bake=600), overrides=traffic)
        return next(m.detectable for m in plan.steps[0].metrics if m.metric == "error_rate")

    alone = detectable()
    lab.serving.set_quality("chat", {**REFUSALS, "scorers": {
        f"s{i}": {"check": {"refusal": False}, "weight": 5} for i in range(3)
    }}, actor=OPERATOR)  # fmt: skip
    assert detectable() > alone
