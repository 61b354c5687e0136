"""The real gateway (uvicorn on loopback, its catalog sync) and the real controller on a real
SQLite catalog: a bad candidate is rolled back by itself, a good one is promoted."""

from __future__ import annotations

import asyncio

import httpx

from airlock import audit
from airlock.core.traffic import TrafficPlan
from airlock.gateway.app import create_app
from airlock.services.controller import (
    ControllerEvent,
    ControllerSettings,
    GatewayTelemetry,
    RolloutController,
)
from gateway.support import MOON
from rollout.support import ALICE, Lab, Load, canary, wait_until


def _events(lab: Lab) -> list[audit.Event]:
    with lab.ws.db.read() as conn:
        return list(audit.entries(conn))


def test_a_candidate_with_raised_errors_is_rolled_back_and_stable_serves_everyone(
    sqlite_lab: Lab,
) -> None:
    lab = sqlite_lab
    stable = lab.releases.builtin("chat", "1.0.0", MOON)
    faulty = lab.releases.builtin(
        "chat", "1.1.0", MOON, config={"faults": {"error_rate": 0.4, "seed": 7}}
    )
    lab.serving.create("chat", stable, actor=ALICE, reason="launch")
    spec = canary(50, 100, bake=60)  # long bakes: only the analysis can end this rollout
    with lab.running() as run, Load(run.server) as load:
        rollout = lab.rollouts.start("chat", faulty, spec, actor=ALICE).rollout
        done = wait_until(
            lambda: None if (v := lab.rollouts.get(rollout.id)).live else v, what="a decision"
        )
        load.stop()
        assert done.phase == "rolled_back"
        assert done.reason.startswith("analysis failed: error_rate")
        assert load.routed[faulty] > 0  # it did get users before it was caught

        answers = run.chats([f"after-{i}" for i in range(200)])
        assert {r.status_code for r in answers} == {200}
        assert {r.headers["x-airlock-release"] for r in answers} == {stable}
        assert not any("x-airlock-fallback-from" in r.headers for r in answers)
        served = run.gateway.plan("chat")
        assert served.same_routing(TrafficPlan.all_stable("chat", stable))
        assert lab.serving.plan("chat") == served  # the catalog and the gateway agree

    history = lab.rollouts.history(rollout.id)
    assert [h.action for h in history if h.action != "hold"] == ["start", "rollback"]
    verdict = history[-1].verdict
    assert verdict is not None and verdict.outcome == "fail"
    errors = verdict.metric("error_rate")
    assert errors.outcome == "fail"
    assert errors.threshold < errors.ci_low <= errors.effect  # a ratio, clear of 1x
    assert errors.effect <= errors.ci_high  # inf: unbounded
    assert errors.candidate_value > errors.stable_value

    actions = [e.action for e in _events(lab) if e.subject == "chat"]
    assert actions[-4:] == ["service.plan", "rollout.start", "service.plan", "rollout.rollback"]
    rollback = [e for e in _events(lab) if e.action == "rollout.rollback"][-1]
    assert rollback.actor == "airlock-controller"
    assert rollback.details["verdict"]["metrics"]["error_rate"]["outcome"] == "fail"
    with lab.ws.db.read() as conn:
        assert audit.verify(conn).ok


def test_a_healthy_candidate_is_promoted_and_stable_moves(sqlite_lab: Lab) -> None:
    lab = sqlite_lab
    stable = lab.releases.builtin("chat", "1.0.0", MOON)
    candidate = lab.releases.builtin("chat", "1.1.0", MOON)
    lab.serving.create("chat", stable, actor=ALICE, reason="launch")
    # Latency within 50 %: at ~1 ms per answer, scheduling noise is a large share.
    spec = canary(50, 100, bake=0.3, metrics={"latency": {"tolerance": 0.5}})
    with lab.running() as run, Load(run.server):
        rollout = lab.rollouts.start("chat", candidate, spec, actor=ALICE).rollout
        done = wait_until(
            lambda: None if (v := lab.rollouts.get(rollout.id)).live else v, what="a decision"
        )
        assert done.phase == "promoted", done.reason
        answers = run.chats([f"after-{i}" for i in range(100)])
        assert {r.headers["x-airlock-release"] for r in answers} == {candidate}

    assert lab.releases.registry.resolve("chat@stable").ref == candidate
    assert lab.serving.get("chat").plan == TrafficPlan.all_stable(
        "chat", candidate, generation=lab.serving.plan("chat").generation
    )
    move = lab.releases.registry.alias_history("chat", "stable")[-1]
    assert (move.to_version, move.actor) == ("1.1.0", "airlock-controller")
    assert f"rollout #{rollout.id}" in move.reason

    history = lab.rollouts.history(rollout.id)
    decisions = [h for h in history if h.action != "hold"]
    assert [h.action for h in decisions] == ["start", "advance", "promote"]
    assert [h.candidate_weight for h in decisions] == [5000, 10000, 10000]
    for h in decisions[1:]:
        assert h.verdict is not None and h.verdict.outcome == "pass"
        assert min(h.verdict.n_candidate, h.verdict.n_stable) >= 30
    # At 100 % the baseline is stable's mirrored copies, on the same time window.
    shadow = lab.serving.windows("chat", traffic="shadow")
    assert shadow[stable].requests > 0
    with lab.ws.db.read() as conn:
        assert audit.verify(conn).ok


def test_in_process_the_controller_reads_the_gateways_own_counters(sqlite_lab: Lab) -> None:
    """One process, as in ``airlock serve``: the gateway app through httpx's ASGI transport,
    no catalog flush at all; the controller reads the gateway's counters and swaps its plan."""
    lab = sqlite_lab
    stable = lab.releases.builtin("chat", "1.0.0", MOON)
    slow = lab.releases.builtin("chat", "1.1.0", MOON, config={"faults": {"latency_ms": 30}})
    lab.serving.create("chat", stable, actor=ALICE, reason="launch")
    gateway = lab.releases.gateway()
    app = create_app(gateway)
    events: list[ControllerEvent] = []
    controller = RolloutController(
        lab.rollouts,
        telemetry=GatewayTelemetry(gateway),
        gateways=[gateway],
        settings=ControllerSettings(tick_seconds=0.02),
        on_event=events.append,
    )

    async def main() -> list[str]:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            await gateway.apply_plan(lab.serving.plan("chat"))
            started = await asyncio.to_thread(
                lab.rollouts.start, "chat", slow, canary(50, bake=60), actor=ALICE
            )
            assert started.plan is not None
            await gateway.apply_plan(started.plan)  # no CatalogSync here: hand it over
            stop = asyncio.Event()
            running = asyncio.create_task(controller.run(stop))
            n = 0
            while not events:
                n += 1
                body = {"model": "chat", "messages": [{"role": "user", "content": "moon"}]}
                await c.post("/v1/chat/completions", json={**body, "user": f"u{n}"})
            stop.set()
            await running
            after = [
                await c.post(
                    "/v1/chat/completions",
                    json={
                        "model": "chat",
                        "messages": [{"role": "user", "content": "hi"}],
                        "user": f"after-{i}",
                    },
                )
                for i in range(50)
            ]
            # swapped first, then committed: the gateway and the catalog agree
            assert gateway.plan("chat") == lab.serving.plan("chat")
            return [r.headers["x-airlock-release"] for r in after]

    answered = asyncio.run(main())
    [event] = events
    assert event.action == "rollback" and "latency" in event.reason
    assert event.swap_seconds is not None and event.swap_only_seconds is not None
    assert set(answered) == {stable}
    assert lab.rollouts.recent("chat")[0].phase == "rolled_back"
