"""Shadow traffic: copies of live requests sent to shadow releases off the critical path.

:class:`ShadowRunner` executes the copies: each is shaped for its shadow release,
called under the same time budget as the live arms, guarded, counted in the
cluster of the request it mirrors (traffic ``shadow``) and kept as a
:class:`~airlock.core.telemetry.ShadowSample` next to the live answer.

``ShadowQueue.submit`` never waits: it puts the job on a bounded queue and
returns; when the queue is full the copy is dropped and counted (``on_drop``),
so a slow shadow release can never slow down or fail a user's request. A few
worker tasks drain the queue and run the jobs; a job's own failure is its
handler's business (it is counted against the shadow release, never the user).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

from airlock.core.telemetry import ShadowSample
from airlock.core.traffic import TrafficPlan
from airlock.errors import InvalidInput, RuntimeFailure
from airlock.gateway.failures import CountedCall
from airlock.gateway.pool import ReleasePool
from airlock.gateway.quality import OnlineQuality, QualityJob, last_prompt
from airlock.gateway.shaping import guard_output, prepare
from airlock.gateway.telemetry import Key, Telemetry
from airlock.gateway.work_queue import WorkQueue
from airlock.runtime.loader import LoadedRelease

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


class ShadowQueue(WorkQueue[ShadowJob]):
    """The bounded queue of shadow copies (see :class:`~airlock.gateway.work_queue.WorkQueue`)."""

    def __init__(
        self,
        handler: Callable[[ShadowJob], Awaitable[None]],
        *,
        maxsize: int = 256,
        workers: int = 2,
        on_drop: Callable[[ShadowJob], None] | None = None,
    ) -> None:
        super().__init__(
            handler, maxsize=maxsize, workers=workers, on_drop=on_drop, name="airlock-shadow"
        )


class ShadowRunner:
    """Runs shadow copies from a bounded :class:`ShadowQueue` and keeps their samples."""

    def __init__(
        self,
        pool: ReleasePool,
        telemetry: Telemetry,
        *,
        timeout_cap: float | None = None,
        queue_size: int = 256,
        workers: int = 2,
        sample_capacity: int = 1_000,
    ) -> None:
        self.pool = pool
        self.telemetry = telemetry
        self.timeout_cap = timeout_cap
        self._samples: deque[ShadowSample] = deque(maxlen=sample_capacity)
        self._unflushed: deque[ShadowSample] = deque(maxlen=sample_capacity)
        self.queue = ShadowQueue(
            self.run, maxsize=queue_size, workers=workers, on_drop=self._dropped
        )
        self.quality: OnlineQuality | None = None  # scores shadow answers, paired with live

    def samples(self) -> list[ShadowSample]:
        return list(self._samples)

    def drain(self) -> list[ShadowSample]:
        """The samples taken since the last drain (what the catalog sync flushes)."""
        out = list(self._unflushed)
        self._unflushed.clear()
        return out

    def _dropped(self, job: ShadowJob) -> None:
        self.telemetry.shadow_dropped((job.service, job.release, "shadow"))

    async def run(self, job: ShadowJob) -> None:
        state = self.pool.find(job.service)
        release = state.releases.get(job.release) if state is not None else None
        if state is None or release is None:
            return  # the plan moved on while the copy waited
        key: Key = (job.service, job.release, "shadow")
        timeout = state.timeout_for(release, self.timeout_cap, counted=True)
        started = perf_counter()
        output, ok, error_kind = "", False, None
        try:
            with CountedCall(self.telemetry, key, timeout, job.cluster) as call:
                attempt = prepare(release, job.request, call, log_prompt=False)
            with CountedCall(self.telemetry, key, timeout, job.cluster):
                async with asyncio.timeout(timeout):
                    result = await release.runtime.generate(attempt.request)
                guarded = guard_output(release, result)
            output = guarded.text
            self.telemetry.success(
                key,
                (perf_counter() - started) * 1000.0,
                result.prompt_tokens,
                result.completion_tokens,
                cluster=job.cluster,
                flagged=attempt.input_flagged or guarded.flagged,
            )
            ok = True
        except RuntimeFailure as exc:
            error_kind = exc.kind
        except InvalidInput as exc:
            error_kind = exc.code
        sample = ShadowSample(
            service=job.service,
            release=job.release,
            primary_release=job.primary_release,
            request_id=job.request_id,
            at=datetime.now(UTC),
            ok=ok,
            latency_ms=(perf_counter() - started) * 1000.0,
            output=output,
            primary_output=job.primary_output,
            error_kind=error_kind,
        )
        self._samples.append(sample)
        self._unflushed.append(sample)
        if ok and self.quality is not None:
            self._offer_pair(state.plan, job, release, output, sample.latency_ms)

    def _offer_pair(
        self, plan: TrafficPlan, job: ShadowJob, release: LoadedRelease, output: str, ms: float
    ) -> None:
        """Score the shadow answer, paired with the live answer of the request it mirrors."""
        assert self.quality is not None
        self.quality.offer(
            plan,
            lambda settings: QualityJob(
                service=job.service,
                release=job.release,
                traffic="shadow",
                request_id=job.request_id,
                prompt=last_prompt(job.request),
                answer=output,
                cluster=job.cluster,
                settings=settings,
                refusal_text=release.safety.refusal if release.safety is not None else None,
                latency_ms=ms,
                stable_release=job.primary_release,
                stable_answer=job.primary_output,
            ),
        )


__all__ = ["ShadowJob", "ShadowQueue", "ShadowRunner"]
