"""Keep a gateway in step with the catalog: plans in, telemetry out, every second.

``CatalogSync`` runs beside the gateway on its event loop:

* at start it loads every service's plan and opt-out list (a service whose
  releases cannot be loaded — e.g. a tampered blob — is logged and skipped,
  the others are served);
* each tick it flushes the telemetry and shadow samples gathered since the last
  tick to the catalog, and polls the services' plan generations: a changed
  plan is loaded (verified, in a worker thread) and swapped in atomically.
  Catalog work runs in worker threads, never on the event loop;
* a plan change made through the same :class:`Serving` object in this process
  is applied at once, without waiting for the tick;
* given a change listener (on PostgreSQL, ``Serving.change_listener()``: the
  catalog's LISTEN, :mod:`airlock.catalog.notify`), a plan committed by another
  process (the controller, another replica's API) is applied as soon as it
  commits, not at the next tick; the tick stays as the safety net. A notice that
  names a plan (``service:generation``) reads that one service and swaps it; any
  other notice refreshes everything. Plan reads run on a thread of the sync's own,
  so they never queue behind the model calls in the default executor;
* each tick it also polls the sync versions of gateway keys and of every
  service's opt-out list (``GatewayKeys.versions()``): a created or
  revoked key, or a user opted out or back in, reaches the gateway within one
  tick, without a plan change. At start it takes the fleet's response-id secret.

A flush that fails (database down) keeps its records and retries on the next
tick, up to ``backlog`` records.

``last_sync`` (epoch seconds) is when the catalog's plan generations were last read, and
``catalog_generations`` what they were: with the generations the gateway serves they say
whether this replica lags (``/readyz`` and ``/metrics``, :mod:`airlock.gateway.readiness`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from airlock.core.telemetry import ShadowSample, TelemetryRecord
from airlock.core.traffic import TrafficPlan
from airlock.errors import AirlockError, Conflict, IntegrityError
from airlock.gateway.engine import Gateway
from airlock.gateway.transcripts import TranscriptSink
from airlock.services.gateway_keys import GatewayKeys
from airlock.services.serving import KEYS_TOPIC, Serving, opt_outs_topic
from airlock.services.transcripts import Transcripts

log = logging.getLogger("airlock.gateway.sync")
T = TypeVar("T")


# How long start() waits for the change feed to be listening before its first read (then
# the once-a-tick poll alone covers the gap until the feed connects).
LISTEN_WAIT_S = 5.0


class ChangeFeed(Protocol):
    """Notices of changes committed by other processes (``catalog.notify.ChangeListener``)."""

    async def listen(
        self,
        on_change: Callable[[str], Awaitable[None]],
        on_listening: Callable[[], Awaitable[None]] | None = None,
    ) -> None: ...


class CatalogSync:
    def __init__(
        self,
        gateway: Gateway,
        serving: Serving,
        *,
        interval: float = 1.0,
        services: tuple[str, ...] | None = None,
        backlog: int = 10_000,
        keys: GatewayKeys | None = None,
        retry_failed: float = 30.0,
        changes: ChangeFeed | None = None,
    ) -> None:
        self.gateway = gateway
        self.serving = serving
        self.keys = keys or GatewayKeys(serving.ws)
        # Where notices of other processes' commits come from (the composition root
        # passes the catalog's listener; by default what the Serving service offers:
        # None on SQLite, where the tick alone polls).
        self.changes = changes if changes is not None else serving.change_listener()
        self._versions: dict[str, int | None] = {}
        self.interval = interval
        self.only = set(services) if services else None
        self.backlog = backlog
        self._records: list[TelemetryRecord] = []
        self._samples: list[ShadowSample] = []
        self._known: dict[str, int] = {}
        # A plan that failed to load (e.g. a damaged release) is retried after
        # ``retry_failed`` seconds, then twice as long each time (up to 10 minutes), so a
        # repaired release is served again without a new plan generation.
        self.retry_failed = retry_failed
        self._failed: dict[str, tuple[int, float, float]] = {}  # generation, retry at, delay
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._refreshing = asyncio.Lock()
        self.notifications = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.flushes = 0
        self.last_sync: float | None = None
        self.catalog_generations: dict[str, int] = {}
        self.started = False
        self._executor: ThreadPoolExecutor | None = None
        self.transcripts = TranscriptSink(
            gateway.transcripts,
            Transcripts(serving.ws),
            gateway_id=gateway.settings.gateway_id,
            read_ticket=gateway.response_ticket,
        )

    def _wanted(self, name: str) -> bool:
        return self.only is None or name in self.only

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """Catalog reads of plans, on a thread of the sync's own."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="airlock-sync")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.serving.subscribe(self._on_plan)
        self.gateway.set_response_secret(await asyncio.to_thread(self.keys.response_secret))
        if self.changes is not None:
            # Listen first, then read: a plan committed between the read and the LISTEN
            # would otherwise wait for the next poll.
            self._listening = asyncio.Event()
            self._listener = asyncio.create_task(
                self.changes.listen(self._on_change, self._on_listening),
                name="airlock-plan-listener",
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._listening.wait(), LISTEN_WAIT_S)
        await self.refresh()
        await self.transcripts.flush()  # which services keep transcripts
        self._task = asyncio.create_task(self._run(), name="airlock-catalog-sync")
        self.started = True

    async def _on_listening(self) -> None:
        """The feed is listening: the first time, start() reads next; after a reconnect,
        read now what was committed while the feed was away."""
        if self._listening.is_set():
            await self.refresh()
        self._listening.set()

    async def stop(self) -> None:
        for task in (self._listener, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._listener = None
        await self.flush()
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None

    async def _on_change(self, payload: str) -> None:
        """Another process committed a change: apply it now, not at the next tick."""
        self.notifications += 1
        if not await self._apply_notice(payload):
            await self.refresh()

    async def _apply_notice(self, payload: str) -> bool:
        """A notice naming a committed plan (``service:generation``): read that service
        alone and swap it in. False when the full refresh should handle the notice."""
        service, sep, number = payload.rpartition(":")
        if not sep or not number.isdigit() or not self._wanted(service):
            return False
        if service not in self._known:
            return False  # a new service, or one that failed: the refresh knows what to do
        served = self.gateway.plans().get(service)
        if served is not None and served.generation >= int(number):
            return True
        view = await self._read(self.serving.get, service)
        if view.plan.generation < int(number):
            return False
        try:
            await self.gateway.apply_plan(view.plan)
        except Conflict:
            return True  # a newer plan reached the gateway meanwhile
        except AirlockError:
            return False  # the refresh records and reports a plan that cannot be served
        self._known[service] = max(self._known.get(service, -1), view.plan.generation)
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except AirlockError as exc:  # e.g. the catalog is busy: one line, not a traceback
                log.warning("catalog sync failed (%s); retrying in %.1f s", exc, self.interval)
            except Exception:
                log.exception("catalog sync failed; retrying in %.1f s", self.interval)

    async def tick(self) -> None:
        await self.flush()
        await self.refresh()

    async def flush(self) -> None:
        """Write the telemetry and shadow samples gathered since the last flush."""
        await self.transcripts.flush()  # answers and scores of services that keep them
        self._records.extend(self.gateway.telemetry.drain())
        self._samples.extend(self.gateway.drain_shadow_samples())
        if not self._records and not self._samples:
            return
        records, samples = self._records, self._samples
        self._records, self._samples = [], []
        try:
            await asyncio.to_thread(
                self.serving.flush, records, samples, gateway=self.gateway.settings.gateway_id
            )
            self.flushes += 1
        except AirlockError as exc:
            log.warning("telemetry flush failed (%s); keeping %d records", exc, len(records))
            self._records = (records + self._records)[-self.backlog :]
            self._samples = (samples + self._samples)[-self.backlog :]

    async def refresh(self) -> None:
        """Apply every plan whose generation changed in the catalog, and opt-out lists."""
        async with self._refreshing:
            await self._refresh()

    async def _refresh(self) -> None:
        generations, versions = await self._read(
            lambda: (self.serving.generations(), self.keys.versions())
        )
        await self._refresh_plans(generations)
        await self._refresh_access(versions)
        self.catalog_generations = {n: g for n, g in generations.items() if self._wanted(n)}
        self.last_sync = time.time()

    async def _refresh_access(self, versions: dict[str, int]) -> None:
        """Keys and opt-out lists whose sync version moved since the last look."""
        if not self.gateway.access.loaded or self._versions.get(KEYS_TOPIC) != versions.get(
            KEYS_TOPIC, 0
        ):
            keys = await asyncio.to_thread(self.keys.snapshot)
            self.gateway.access.load(k for k in keys if self.only is None or k.service in self.only)
            self._versions[KEYS_TOPIC] = versions.get(KEYS_TOPIC, 0)
        served = [name for name in self._known if name in self.gateway.plans()]
        stale = [
            name
            for name in served
            if self._versions.get(opt_outs_topic(name)) != versions.get(opt_outs_topic(name), 0)
        ]
        if not stale:
            return
        views = await asyncio.to_thread(lambda: [self.serving.get(n) for n in stale])
        for view in views:
            self.gateway.set_opt_outs(view.name, view.opt_outs)
            self._versions[opt_outs_topic(view.name)] = versions.get(opt_outs_topic(view.name), 0)

    async def _refresh_plans(self, generations: dict[str, int]) -> None:
        served = self.gateway.plans()
        for name, gen in generations.items():  # a plan that reached the gateway another way
            if name in self._known and name in served and served[name].generation == gen:
                self._known[name] = gen
        changed = [
            name
            for name, gen in generations.items()
            if self._wanted(name) and self._known.get(name) != gen and not self._waiting(name, gen)
        ]
        if not changed:
            return
        views = await self._read(lambda: [self.serving.get(n) for n in changed])
        for view in views:
            try:
                await self.gateway.apply_plan(view.plan)
                self.gateway.set_opt_outs(view.name, view.opt_outs)
            except AirlockError as exc:
                self._note_failure(view.name, view.plan.generation)
                self._unservable(view.plan, exc)
                log.error(
                    "cannot serve %s generation %d: %s (%s)",
                    view.name,
                    view.plan.generation,
                    exc.message,
                    exc.hint,
                )
                continue
            self._known[view.name] = view.plan.generation
            self._failed.pop(view.name, None)

    def _on_plan(self, plan: TrafficPlan) -> None:
        """A plan committed in this process: apply it now (from any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed() or not self._wanted(plan.service):
            return

        def schedule() -> None:
            self.gateway.spawn(self._apply(plan), name=f"airlock-plan-{plan.service}")

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            schedule()
        else:
            loop.call_soon_threadsafe(schedule)

    async def _apply(self, plan: TrafficPlan) -> None:
        try:
            await self.gateway.apply_plan(plan)
            self._known[plan.service] = max(self._known.get(plan.service, -1), plan.generation)
            if plan.generation == 0:
                view = await asyncio.to_thread(self.serving.get, plan.service)
                self.gateway.set_opt_outs(plan.service, view.opt_outs)
        except AirlockError as exc:
            self._unservable(plan, exc)
            log.error("cannot serve %s generation %d: %s", plan.service, plan.generation, exc)

    def _waiting(self, name: str, generation: int) -> bool:
        failed = self._failed.get(name)
        return failed is not None and failed[0] == generation and time.monotonic() < failed[1]

    def _note_failure(self, name: str, generation: int) -> None:
        previous = self._failed.get(name)
        delay = self.retry_failed
        if previous is not None and previous[0] == generation:
            delay = min(previous[2] * 2, 600.0)
        self._failed[name] = (generation, time.monotonic() + delay, delay)

    def _unservable(self, plan: TrafficPlan, exc: AirlockError) -> None:
        """Say which release keeps ``plan`` from being served: 503 for its service, and
        ``/readyz`` names it (a service still serving an older plan keeps serving it)."""
        failures = self.gateway.load_failures
        bad = [r for r in plan.releases() if r in failures] or list(plan.releases())[:1]
        cause = failures[bad[0]] if bad and bad[0] in failures else exc
        what = f"release {bad[0]}" if bad else f"service {plan.service}"
        verb = "failed verification" if isinstance(cause, IntegrityError) else "failed to load"
        self.gateway.unservable[plan.service] = f"{what} {verb}: {cause.message}"


__all__ = ["CatalogSync"]
