"""Shadow traffic: copies of live requests sent to shadow releases off the critical path.

``ShadowQueue.submit`` never waits: it puts the job on a bounded queue and
returns; when the queue is full the copy is dropped and counted (``on_drop``),
so a slow shadow release can never slow down or fail a user's request. A few
worker tasks drain the queue and run the jobs; a job's own failure is its
handler's business (it is counted against the shadow release, never the user).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("airlock.gateway.shadow")


@dataclass(frozen=True, slots=True)
class ShadowJob:
    service: str
    release: str
    primary_release: str
    request_id: str
    request: Any  # the parsed OpenAI request, shaped per release by the handler
    primary_output: str
    cluster: int = 0  # the analysis cluster of the mirrored request's user


class ShadowQueue:
    def __init__(
        self,
        handler: Callable[[ShadowJob], Awaitable[None]],
        *,
        maxsize: int = 256,
        workers: int = 2,
        on_drop: Callable[[ShadowJob], None] | None = None,
    ) -> None:
        if maxsize < 1 or workers < 1:
            raise ValueError("a shadow queue needs maxsize >= 1 and workers >= 1")
        self._handler = handler
        self._on_drop = on_drop
        self._queue: asyncio.Queue[ShadowJob] = asyncio.Queue(maxsize)
        self._workers: list[asyncio.Task[None]] = []
        self._n = workers
        self.dropped = 0
        self.completed = 0

    @property
    def depth(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._work(), name=f"airlock-shadow-{i}")
                for i in range(self._n)
            ]

    def submit(self, job: ShadowJob) -> bool:
        """Queue a copy; False (and counted) when the queue is full or not running."""
        if not self._workers:
            self._drop(job)
            return False
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._drop(job)
            return False
        return True

    def _drop(self, job: ShadowJob) -> None:
        self.dropped += 1
        if self._on_drop is not None:
            self._on_drop(job)

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await self._handler(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # a shadow's failure must never escape into the gateway
                log.exception("shadow job for %s failed", job.release)
            finally:
                self.completed += 1
                self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued copy has been handled (tests, shutdown)."""
        if self._workers:
            await self._queue.join()

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []


__all__ = ["ShadowJob", "ShadowQueue"]
