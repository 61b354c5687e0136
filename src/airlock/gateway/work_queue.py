"""A bounded queue of background jobs run off the request path (shadow copies, scoring).

``submit`` never waits: it puts the job on a bounded queue and returns; when the
queue is full the job is dropped and counted (``on_drop``), so slow background
work can never slow down or fail a user's request. A few worker tasks drain the
queue; a job's own failure is logged and never escapes into the gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger("airlock.gateway.work")
J = TypeVar("J")


class WorkQueue(Generic[J]):
    """A bounded queue of jobs run by a few worker tasks; a full queue drops (and counts)."""

    def __init__(
        self,
        handler: Callable[[J], Awaitable[None]],
        *,
        maxsize: int = 256,
        workers: int = 2,
        on_drop: Callable[[J], None] | None = None,
        name: str = "airlock-work",
    ) -> None:
        if maxsize < 1 or workers < 1:
            raise ValueError("a work queue needs maxsize >= 1 and workers >= 1")
        self._name = name
        self._handler = handler
        self._on_drop = on_drop
        self._queue: asyncio.Queue[J] = asyncio.Queue(maxsize)
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
                asyncio.create_task(self._work(), name=f"{self._name}-{i}") for i in range(self._n)
            ]

    def submit(self, job: J) -> bool:
        """Queue a job; False (and counted) when the queue is full or not running."""
        if not self._workers:
            self._drop(job)
            return False
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            self._drop(job)
            return False
        return True

    def _drop(self, job: J) -> None:
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
            except Exception:  # a job's failure must never escape into the gateway
                log.exception("%s job failed", self._name)
            finally:
                self.completed += 1
                self._queue.task_done()

    async def drain(self) -> None:
        """Wait until every queued job has been handled (tests, shutdown)."""
        if self._workers:
            await self._queue.join()

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []


__all__ = ["WorkQueue"]
