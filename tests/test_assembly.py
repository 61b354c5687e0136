"""The composition root: one ``build`` wires every part, and each plan change reaches the
in-process gateway by one route."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from airlock.assembly import AssemblySettings, build
from airlock.config import Settings
from airlock.core.traffic import TrafficPlan
from airlock.gateway.server import gateway_app
from airlock.services.controller import ControllerEvent, ControllerSettings
from airlock.services.workspace import Workspace
from gateway.support import MOON, Releases
from rollout.support import ALICE, canary


@pytest.fixture
def releases(tmp_path: Path) -> Iterator[Releases]:
    ws = Workspace.open(Settings(home=tmp_path / ".airlock", user="alice"), create=True)
    try:
        yield Releases(ws, tmp_path / "folders")
    finally:
        ws.close()


def test_every_part_shares_one_serving_and_the_controller_drives_the_gateway(
    releases: Releases,
) -> None:
    parts = build(releases.ws)
    assert parts.sync.gateway is parts.gateway and parts.sync.serving is parts.serving
    assert parts.rollouts.serving is parts.serving
    assert parts.drills.rollouts is parts.rollouts
    assert parts.controller.rollouts is parts.rollouts
    assert parts.controller.gateways == [parts.gateway]
    assert parts.sync.changes is None  # SQLite: no change notices, the sync polls
    remote = build(releases.ws, AssemblySettings(local_gateway=False, services=("chat",)))
    assert remote.controller.gateways == []
    assert remote.sync.only == {"chat"}


def test_a_controller_decision_reaches_the_gateway_once_and_a_manual_change_by_serving(
    releases: Releases,
) -> None:
    stable = releases.builtin("chat", "1.0.0", MOON)
    faulty = releases.builtin("chat", "1.1.0", MOON, config={"faults": {"error_rate": 0.6}})
    events: list[ControllerEvent] = []
    parts = build(
        releases.ws,
        AssemblySettings(
            controller=ControllerSettings(tick_seconds=0.02),
            sync_seconds=3600,  # the tick never comes: only the in-process routes act
            controller_reads="gateway",
        ),
        on_event=events.append,
    )
    parts.serving.create("chat", stable, actor=ALICE, reason="launch")
    published: list[TrafficPlan] = []
    parts.serving.subscribe(published.append)
    app = gateway_app(parts)

    async def main() -> None:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c,
        ):
            started = await asyncio.to_thread(
                parts.rollouts.start, "chat", faulty, canary(50, bake=60), actor=ALICE
            )
            assert started.plan is not None
            for _ in range(500):  # bounded: the published plan is applied by the sync's task
                if parts.gateway.plan("chat").generation == started.plan.generation:
                    break
                await asyncio.sleep(0.01)
            assert parts.gateway.plan("chat").generation == started.plan.generation
            stop = asyncio.Event()
            running = asyncio.create_task(parts.controller.run(stop))
            n = 0
            while not events and n < 5000:
                n += 1
                body = {"model": "chat", "messages": [{"role": "user", "content": "moon"}]}
                await c.post("/v1/chat/completions", json={**body, "user": f"u{n}"})
            stop.set()
            await running
            served.append(parts.gateway.plan("chat"))

    served: list[TrafficPlan] = []
    asyncio.run(main())
    assert [e.action for e in events] == ["rollback"]
    decided = events[0].plan
    assert decided is not None and decided.candidates == ()
    assert served == [decided]  # the controller swapped it in
    # The manual start went through Serving's listeners; the decision did not.
    assert [p.generation for p in published] == [decided.generation - 1]
