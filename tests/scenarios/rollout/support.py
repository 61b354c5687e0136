"""Helpers for rollout tests: a real workspace with builtin releases, the real gateway under
uvicorn with its catalog sync, the real controller on the gateway's event loop, and
traffic from real HTTP clients. Waits are bounded polls, never timing asserts."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import httpx

from airlock.core.analysis import LATENCY_HISTOGRAM_SIZE, latency_bucket
from airlock.core.telemetry import TelemetryRecord, Traffic
from airlock.core.window import CELLS, CLUSTERS, latency_cell
from airlock.gateway.engine import Gateway
from airlock.gateway.sync import CatalogSync
from airlock.services.controller import ControllerSettings, RolloutController
from airlock.services.identity import Actor
from airlock.services.rollouts import Rollouts
from airlock.services.serving import Serving
from airlock.services.workspace import Workspace
from gateway.support import ALICE, Releases, Server, serve_gateway

T = TypeVar("T")
__all__ = ["ALICE"]


def wait_until(check: Callable[[], T | None], *, timeout: float = 30.0, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what or check}")
        time.sleep(0.02)


def canary(*weights: float, bake: float = 0.2, **analysis: Any) -> dict[str, Any]:
    return {
        "strategy": "canary",
        "steps": [{"weight_pct": w, "bake_seconds": bake} for w in weights],
        # Synthetic telemetry does not follow the plan's split: the sample-ratio check
        # (tested on its own in tests/core/test_analysis.py) is off unless a test asks.
        "analysis": {
            "min_requests": 30,
            "max_step_seconds": max(60.0, 2 * bake),
            "srm_alpha": 0.0,
            **analysis,
        },
    }


class Lab:
    """A workspace with releases, its services, and the rollout service sharing one Serving."""

    def __init__(self, workspace: Workspace, releases: Releases) -> None:
        self.ws = workspace
        self.releases = releases
        self.serving: Serving = releases.serving
        self.rollouts = Rollouts(workspace, serving=self.serving)

    def controller(self, gateway: Gateway | None = None, **settings: Any) -> RolloutController:
        settings.setdefault("tick_seconds", 0.05)
        settings.setdefault("lease_seconds", 2.0)
        return RolloutController(
            self.rollouts,
            gateways=[gateway] if gateway is not None else [],
            settings=ControllerSettings(**settings),
        )

    @contextmanager
    def running(self, *, controller: bool = True, sync: float = 0.05) -> Iterator[Running]:
        """The gateway under uvicorn with its CatalogSync (and the controller) on its loop."""
        gateway = self.releases.gateway()
        catalog = CatalogSync(gateway, self.serving, interval=sync)
        loop_controller = self.controller(gateway)
        starts: list[Any] = [catalog.start]
        stops: list[Any] = [catalog.stop]
        if controller:
            starts.append(loop_controller.start)
            stops.insert(0, loop_controller.stop)
        with serve_gateway(gateway, on_startup=starts, on_shutdown=stops) as server:
            yield Running(server, gateway, loop_controller)


@dataclass
class Running:
    server: Server
    gateway: Gateway
    controller: RolloutController

    def chats(self, users: list[str], service: str = "chat") -> list[httpx.Response]:
        """One chat request per user, in order, over one connection."""
        with httpx.Client(base_url=self.server.url, timeout=30) as client:
            return [
                client.post(
                    "/v1/chat/completions",
                    json={
                        "model": service,
                        "messages": [{"role": "user", "content": "Tell me about the moon"}],
                        "max_tokens": 4,
                        "user": user,
                    },
                )
                for user in users
            ]


class Load:
    """A thread sending chat requests with fresh user keys until stopped; counts who answered."""

    def __init__(self, server: Server, service: str = "chat", prefix: str = "user") -> None:
        self.url = f"{server.url}/v1/chat/completions"
        self.service = service
        self.prefix = prefix
        self.routed: Counter[str] = Counter()  # release the plan chose (fallback's origin)
        self.statuses: Counter[int] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        n = 0
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                n += 1
                body = {
                    "model": self.service,
                    "messages": [{"role": "user", "content": "moon"}],
                    "max_tokens": 4,
                    "user": f"{self.prefix}-{n}",
                }
                r = client.post(self.url, json=body)
                self.statuses[r.status_code] += 1
                routed = r.headers.get("x-airlock-fallback-from") or r.headers.get(
                    "x-airlock-release", "?"
                )
                self.routed[routed] += 1


def record(
    service: str,
    release: str,
    traffic: Traffic,
    start: datetime,
    *,
    requests: int,
    errors: int = 0,
    flags: int = 0,
    latency_ms: float = 100.0,
) -> TelemetryRecord:
    """One flush of synthetic telemetry (for strategy tests that need no gateway)."""
    histogram = [0] * LATENCY_HISTOGRAM_SIZE
    histogram[latency_bucket(latency_ms)] = requests - errors
    cell = latency_cell(latency_ms)
    cells: dict[int, int] = {}
    for i in range(requests - errors):  # spread over the clusters, as many users would be
        key = (i % CLUSTERS) * CELLS + cell
        cells[key] = cells.get(key, 0) + 1
    return TelemetryRecord(
        service,
        release,
        traffic,
        start,
        start + timedelta(milliseconds=10),
        requests=requests,
        errors=errors,
        guardrail_flags=flags,
        latency_histogram=tuple(histogram),
        latency_cells=cells,
    )


OPERATOR = Actor("olga", "operator")
VIEWER = Actor("vic", "viewer")
AUTHOR = Actor("ann", "author")
APPROVER = Actor("bob", "approver")
