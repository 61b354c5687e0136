"""The fail-safe order of an automatic rollback: the controller swaps its gateway to stable
before it commits. When the commit is refused because an operator acted in the same instant,
the gateway is brought back to the catalog's plan rather than left ahead of it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest

from airlock import audit
from airlock.core.analysis import ReleaseWindow
from airlock.core.telemetry import Traffic
from airlock.core.traffic import TrafficPlan
from airlock.errors import Conflict
from airlock.services.controller import ControllerSettings, RolloutController
from gateway.support import COOKING, MOON
from rollout.support import ALICE, OPERATOR, Lab, canary


class FailingCandidate:
    """The in-memory twin of a telemetry source: the candidate fails half its calls."""

    def __init__(self, candidate: str, stable: str) -> None:
        self.windows_ = {
            (candidate, "live"): ReleaseWindow(requests=400, errors=200),
            (stable, "live"): ReleaseWindow(requests=400, errors=0),
        }

    async def windows(
        self, service: str, since: float, releases: Sequence[str]
    ) -> Mapping[tuple[str, Traffic], ReleaseWindow]:
        return self.windows_  # type: ignore[return-value]


def test_a_refused_commit_after_the_failsafe_swap_reconciles_the_gateway(
    sqlite_lab: Lab,
) -> None:
    lab = sqlite_lab
    stable = lab.releases.builtin("chat", "1.0.0", MOON)
    candidate = lab.releases.builtin("chat", "1.1.0", COOKING)
    lab.serving.create("chat", stable, actor=ALICE, reason="launch")
    lab.rollouts.start("chat", candidate, canary(50, bake=600), actor=ALICE)
    gateway = lab.releases.gateway()
    controller = RolloutController(
        lab.rollouts,
        telemetry=FailingCandidate(candidate, stable),
        gateways=[gateway],
        settings=ControllerSettings(tick_seconds=0.05),
    )

    async def main() -> None:
        [(view, plan)] = lab.rollouts.live_with_plans()  # what the controller read ...
        await gateway.apply_plan(plan)
        # ... and, before it decides, an operator promotes the candidate elsewhere
        promoted = lab.rollouts.promote("chat", actor=OPERATOR, reason="ship it").plan
        assert promoted is not None and promoted.generation == plan.generation + 1
        with pytest.raises(Conflict, match="moved on"):
            await controller.step(view, plan)
        served, stored = gateway.plan("chat"), lab.serving.plan("chat")
        assert served == stored  # not left on the fail-safe plan of the same generation
        assert stored.same_routing(TrafficPlan.all_stable("chat", candidate))
        assert stored.generation == promoted.generation + 1  # re-published one up
        await gateway.aclose()

    asyncio.run(main())
    assert lab.rollouts.recent("chat")[0].phase == "promoted"  # the operator's action stands
    with lab.ws.db.read() as conn:
        last = list(audit.entries(conn, action="service.plan"))[-1]
        assert last.actor == "airlock-controller"
        assert last.details["reason"].startswith("re-published")
        assert audit.verify(conn).ok


def test_a_refused_commit_with_the_plan_unchanged_is_retried_on_the_next_tick(
    sqlite_lab: Lab,
) -> None:
    lab = sqlite_lab
    stable = lab.releases.builtin("chat", "1.0.0", MOON)
    candidate = lab.releases.builtin("chat", "1.1.0", COOKING)
    lab.serving.create("chat", stable, actor=ALICE, reason="launch")
    lab.rollouts.start("chat", candidate, canary(50, bake=600), actor=ALICE)
    gateway = lab.releases.gateway()
    controller = RolloutController(
        lab.rollouts,
        telemetry=FailingCandidate(candidate, stable),
        gateways=[gateway],
        settings=ControllerSettings(tick_seconds=0.05),
    )

    async def main() -> None:
        [(view, plan)] = lab.rollouts.live_with_plans()
        await gateway.apply_plan(plan)
        lab.rollouts.pause("chat", actor=OPERATOR, reason="look")  # no plan change
        with pytest.raises(Conflict):
            await controller.step(view, plan)
        # The gateway already serves stable (safe); the catalog catches up on the next tick,
        # which decides on the fresh, paused rollout: harm still rolls it back.
        assert gateway.plan("chat").same_routing(TrafficPlan.all_stable("chat", stable))
        [event] = await controller.tick()
        assert event.action == "rollback"
        assert gateway.plan("chat") == lab.serving.plan("chat")
        await gateway.aclose()

    asyncio.run(main())
    assert lab.rollouts.recent("chat")[0].phase == "rolled_back"
