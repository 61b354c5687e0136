"""Open-loop user load through a gateway: the one load generator of drills and the demo.

:func:`drive` sends requests on schedule, ``rps`` a second, whether or not
earlier ones have answered (at most ``concurrency`` in flight: an open loop, so
a slow release cannot slow its own load down and hide), until ``stop`` is set.
Every request is kept as an :class:`~airlock.core.drill.Observation` — which
release answered (the candidate, for an answer that fell back to stable),
status, fallback, guardrail and duration — which is what the drill summary and
the demo's time-to-detect and time-to-revert are computed from.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from airlock.core.drill import Observation

Body = Callable[[int], dict[str, Any]]
"""The body of the ``n``-th request (n = 1, 2, ...): an OpenAI chat completion."""
OnAnswer = Callable[[httpx.Response, Observation], Awaitable[None]]
"""Called after an answer, still inside its slot (e.g. to send user feedback)."""


def observe(response: httpx.Response, sent: float, seconds: float) -> Observation:
    """What one user saw: the release whose arm answered, status, fallback, guardrail."""
    fallback_from = response.headers.get("x-airlock-fallback-from")
    return Observation(
        sent,
        fallback_from or response.headers.get("x-airlock-release", ""),
        response.status_code,
        fallback_from is not None,
        response.headers.get("x-airlock-guardrail"),
        seconds,
    )


async def drive(
    client: httpx.AsyncClient,
    body: Body,
    record: Callable[[Observation], None],
    stop: asyncio.Event,
    *,
    rps: Callable[[], float],
    concurrency: int,
    timeout: float,
    on_answer: OnAnswer | None = None,
) -> None:
    """Send ``rps()`` requests a second (read before each one) until ``stop`` is set;
    ``record`` every observation. A lost connection or a timeout is what that user
    saw (status 0), never an error of the load."""
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()

    async def one(payload: dict[str, Any]) -> None:
        sent, began = time.time(), loop.time()
        try:
            r = await client.post("/v1/chat/completions", json=payload, timeout=timeout)
            obs = observe(r, sent, loop.time() - began)
            if on_answer is not None:
                await on_answer(r, obs)
        except Exception:
            obs = Observation(sent, "", 0, False, None, loop.time() - began)
        finally:
            slots.release()
        record(obs)

    due, n = loop.time(), 0
    while not stop.is_set():
        await slots.acquire()
        n += 1
        task = asyncio.create_task(one(body(n)))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        due += 1.0 / max(rps(), 0.1)
        delay = due - loop.time()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)


__all__ = ["Body", "OnAnswer", "drive", "observe"]
