"""Simulated Lumen customers: open-loop traffic through real HTTP, in a background thread."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading

import httpx

from airlock.core.drill import Observation
from airlock.demo.scenario import user_request
from airlock.services.load import drive


class UserTraffic:
    """Lumen customers asking questions at ``rps`` requests a second, in a background thread.

    Open loop (:func:`airlock.services.load.drive`: requests are sent on schedule
    whether or not earlier ones have answered, at most ``concurrency`` in flight),
    each from one of ``users`` sticky customers, through real HTTP to a gateway. A
    share of the answers gets user feedback: 1 for a clean answer, 0 for one the
    guardrails had to touch. Every request is kept as an
    :class:`~airlock.core.drill.Observation` (which release answered, status,
    fallback, guardrail, duration).
    """

    def __init__(
        self,
        base_url: str,
        *,
        rps: float = 40.0,
        users: int = 500,
        concurrency: int = 32,
        feedback_share: float = 0.3,
        seed: int = 0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.rps = rps
        self.users = users
        self.concurrency = concurrency
        self.feedback_share = feedback_share
        self.rng = random.Random(seed)
        self.observations: list[Observation] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def set_rate(self, rps: float) -> None:
        self.rps = rps

    def start(self) -> UserTraffic:
        started = threading.Event()
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._run(started)), name="airlock-demo-traffic", daemon=True
        )
        self._thread.start()
        started.wait(30)
        return self

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing left to stop
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(30)
            self._thread = None

    def snapshot(self) -> list[Observation]:
        with self._lock:
            return list(self.observations)

    def count_by_release(self, since: float = 0.0) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.snapshot():
            if o.sent_at >= since and o.routed:
                out[o.routed] = out.get(o.routed, 0) + 1
        return out

    def _record(self, obs: Observation) -> None:
        with self._lock:
            self.observations.append(obs)

    async def _feedback(
        self, client: httpx.AsyncClient, r: httpx.Response, obs: Observation
    ) -> None:
        if r.status_code == 200 and self.rng.random() < self.feedback_share:
            score = 0.0 if obs.guardrail else 1.0
            await client.post("/v1/feedback", json={"id": r.json()["id"], "score": score})

    async def _run(self, started: threading.Event) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        started.set()
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=30, limits=limits) as client:

            async def feedback(r: httpx.Response, obs: Observation) -> None:
                await self._feedback(client, r, obs)

            await drive(
                client,
                lambda _n: user_request(self.rng, self.rng.randrange(self.users)),
                self._record,
                self._stop,
                rps=lambda: self.rps,
                concurrency=self.concurrency,
                timeout=30,
                on_answer=feedback,
            )


__all__ = ["UserTraffic"]
