"""How long from the controller's rollback decision until every new request is on stable?

One process, wired like ``airlock serve`` (``airlock.assembly.build``): a real workspace (SQLite catalog, local
blob store), the real gateway app (``create_app``) driven through
``httpx.ASGITransport`` by ``--concurrency`` closed-loop clients, its
``CatalogSync`` flushing telemetry every second, and the real
:class:`~airlock.services.controller.RolloutController` ticking on the same
event loop with the gateway attached. Each round starts a canary of a
candidate that fails ``--error-rate`` of its calls (a fault in its own
``config.json``); the controller detects it and rolls back. Nothing in the
measured path is mocked.

Measured per round, from the moment ``decide()`` returned ``rollback``:

* **every new request on stable**: the in-process gateway swapped to the
  all-stable plan (from here on every request is routed to stable: the plan
  is read once per request). An automatic rollback swaps *before* it commits
  (see :mod:`airlock.services.controller`), so this does not wait for the
  database;
* **client-observed**: the send time of the last request that was still routed
  to the candidate, minus the decision time (negative: it was sent before);
* **commit**: the decision's transaction (plan compare-and-swap, rollout state,
  history with the verdict, two audit events) committed to the catalog, which
  is when gateways in other processes can see it (they poll every second);
* **swap alone**: the gateway's ``swap_plan`` during the rollback, and in a
  tight loop of 10 000 swaps (no load).

``violations`` counts requests sent after the swap that were still routed to the
candidate (must be 0).

    python -m bench rollback [--rounds 20] [--concurrency 16] [--error-rate 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from airlock.assembly import AssemblySettings, build
from airlock.config import Settings
from airlock.core.traffic import TrafficPlan
from airlock.gateway.engine import Gateway
from airlock.gateway.server import gateway_app
from airlock.runtime.builtin_model import train
from airlock.services.controller import ControllerEvent, ControllerSettings
from airlock.services.identity import Actor
from airlock.services.workspace import Workspace
from bench._report import report

CORPUS = """
The moon is the natural satellite of the earth. The moon has craters and wide grey plains.

Astronauts walked on the moon in 1969. The phases of the moon go from new moon to full moon.
"""
ADMIN = Actor("bench", "admin")
TARGET_MS = 50.0


@dataclass(slots=True)
class Sent:
    at: float  # wall clock when the request was sent
    routed: str  # the release the plan chose (the fallback's origin when there was one)


def _push(ws: Workspace, root: Path, version: str, config: dict[str, Any] | None) -> str:
    from airlock.services.registry import Registry

    folder = root / version
    train(CORPUS).save(folder)
    if config:
        cfg = json.loads((folder / "config.json").read_text())
        cfg.update(config)
        (folder / "config.json").write_text(json.dumps(cfg))
    return Registry(ws).push(folder, name="chat", version=version, actor=ADMIN).ref


async def _client(
    client: httpx.AsyncClient, worker: int, sent: list[Sent], stop: asyncio.Event
) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        body = {
            "model": "chat",
            "messages": [{"role": "user", "content": "Tell me about the moon"}],
            "max_tokens": 4,
            "user": f"w{worker}-{n}",
        }
        at = time.time()
        response = await client.post("/v1/chat/completions", json=body)
        routed = response.headers.get("x-airlock-fallback-from") or response.headers.get(
            "x-airlock-release", "?"
        )
        sent.append(Sent(at, routed))


def _swap_loop(gateway: Gateway, plan_a: TrafficPlan, plan_b: TrafficPlan, n: int) -> float:
    """Mean seconds per swap_plan, alternating two routings (generations keep rising)."""
    generation = max(plan_a.generation, plan_b.generation, gateway.plan("chat").generation)
    began = time.perf_counter()
    for i in range(n):
        base = plan_a if i % 2 else plan_b
        generation += 1
        gateway.swap_plan(
            TrafficPlan(base.service, base.stable, base.candidates, base.shadows, generation)
        )
    return (time.perf_counter() - began) / n


async def run(args: argparse.Namespace) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="airlock-bench-rollback-"))
    ws = Workspace.open(Settings(home=root / ".airlock", user="bench"), create=True)
    stable = _push(ws, root / "folders", "1.0.0", None)
    candidate = _push(ws, root / "folders", "1.1.0", {"faults": {"error_rate": args.error_rate}})
    events: asyncio.Queue[ControllerEvent] = asyncio.Queue()
    parts = build(
        ws,
        AssemblySettings(
            controller=ControllerSettings(tick_seconds=args.tick),
            sync_seconds=1.0,
            controller_reads="gateway",
        ),
        on_event=events.put_nowait,
    )
    parts.serving.create("chat", stable, actor=ADMIN, reason="bench")
    gateway, rollouts, controller = parts.gateway, parts.rollouts, parts.controller
    app = gateway_app(parts)
    spec = {
        "strategy": "canary",
        "steps": [{"weight_pct": 50, "bake_seconds": 3600}],
        "analysis": {"min_requests": 50, "max_step_seconds": 3600},
    }
    rows: list[dict[str, float]] = []
    sent: list[Sent] = []
    stop = asyncio.Event()
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://airlock", timeout=60) as client,
    ):
        workers = [
            asyncio.create_task(_client(client, w, sent, stop)) for w in range(args.concurrency)
        ]
        await controller.start()
        await asyncio.sleep(0.5)  # warm up
        load_began, load_sent = time.time(), len(sent)
        for _ in range(args.rounds):
            await asyncio.to_thread(rollouts.start, "chat", candidate, spec, actor=ADMIN)
            event = await asyncio.wait_for(events.get(), timeout=60)
            while event.action != "rollback":
                event = await asyncio.wait_for(events.get(), timeout=60)
            await asyncio.sleep(args.settle)
            assert event.swap_seconds is not None and event.swap_only_seconds is not None
            swapped_at = event.decided_at + event.swap_seconds
            after = [s for s in sent if s.at >= event.decided_at - 5]
            on_candidate = [s.at for s in after if s.routed == candidate]
            last = max(on_candidate, default=event.decided_at)
            rows.append(
                {
                    "commit": event.commit_seconds,
                    "all_stable": event.swap_seconds,
                    "client": last - event.decided_at,
                    "swap": event.swap_only_seconds,
                    "violations": float(sum(1 for t in on_candidate if t > swapped_at)),
                }
            )
        load_rps = (len(sent) - load_sent) / (time.time() - load_began)
        await controller.stop()
        stop.set()
        await asyncio.gather(*workers)
        plan = gateway.plan("chat")
        swap_micro = _swap_loop(
            gateway, plan, plan.with_weights({candidate: 5000}), args.micro_swaps
        )
    ws.close()
    return {"rows": rows, "rps": load_rps, "swap_micro": swap_micro, "requests": len(sent)}


def _ms(values: list[float]) -> list[str]:
    """Median, p95 and max in milliseconds."""
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return [
        f"{statistics.median(ordered) * 1e3:.2f}",
        f"{p95 * 1e3:.2f}",
        f"{ordered[-1] * 1e3:.2f}",
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench rollback", description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop clients")
    parser.add_argument("--error-rate", type=float, default=0.5, help="the candidate's fault")
    parser.add_argument("--tick", type=float, default=0.05, help="controller tick (seconds)")
    parser.add_argument("--settle", type=float, default=0.3, help="load kept after a rollback")
    parser.add_argument("--micro-swaps", type=int, default=10_000)
    args = parser.parse_args(argv)
    logging.getLogger("airlock").setLevel(logging.ERROR)
    result = asyncio.run(run(args))
    rows = result["rows"]
    columns = ["from the rollback decision to ...", "p50 ms", "p95 ms", "max ms", "target"]
    table = [
        [
            "every new request on stable (in-process gateway swapped)",
            *_ms([r["all_stable"] for r in rows]),
            f"≤ {TARGET_MS:g} ms",
        ],
        [
            "client-observed: send time of the last request routed to the candidate",
            *_ms([r["client"] for r in rows]),
            "< 0: before the decision",
        ],
        [
            "decision committed to the catalog (other processes' gateways poll it)",
            *_ms([r["commit"] for r in rows]),
            "",
        ],
        ["in-process swap alone (during the rollback)", *_ms([r["swap"] for r in rows]), ""],
        [
            "in-process swap alone (10 000 swaps, no load)",
            f"{result['swap_micro'] * 1e3:.4f}",
            "",
            "",
            "",
        ],
    ]
    violations = int(sum(r["violations"] for r in rows))
    worst = max(r["all_stable"] for r in rows) * 1e3
    report(
        "rollback",
        columns,
        table,
        {
            "rounds": len(rows),
            "concurrency": args.concurrency,
            "load_rps": round(result["rps"], 1),
            "requests": result["requests"],
            "violations": violations,
            "target_ms": TARGET_MS,
            "raw": rows,
        },
    )
    print(
        f"{len(rows)} rollbacks under {args.concurrency} closed-loop clients "
        f"(~{result['rps']:.0f} requests/s through the gateway); "
        f"requests routed to the candidate after the swap: {violations}"
    )
    ok = violations == 0 and worst <= TARGET_MS
    print("target met" if ok else f"target missed: worst {worst:.1f} ms")
    return 0 if ok else 1


__all__ = ["main"]
