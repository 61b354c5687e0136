"""The rollout controller: every tick, judge each live rollout and act on the decision.

::

    tick (default every second)
      ├─ hold the leader lease (a row in the catalog; only the leader acts)
      └─ for each rollout in flight (read from the catalog: a restart resumes it)
           ├─ telemetry of candidate and stable since the current step started
           │    (a 0 % step compares the candidate's mirrored copies with stable's
           │     live traffic, a 100 % step the candidate's live traffic with
           │     stable's mirrored copies)
           ├─ verdict  = core.analysis.analyze(candidate, stable, spec.analysis)
           ├─ decision = core.rollout.decide(spec, state, verdict, now)
           └─ changed? Rollouts.decide(...)  one transaction: plan, state, history, audit
                       then swap the plan on the gateways given to the controller

A decision is applied to the catalog first and to gateways second — except an
automatic rollback, which is fail-safe and urgent: the controller first swaps
the gateways it was given to the all-stable plan, at the generation the commit
will store (one reference assignment: the stable release never left, and the
stored plan already names it), and then commits. On a saturated two-core
machine the commit alone can take tens of milliseconds (its thread waits for
the CPU behind the gateway's work); the swap does not wait for it. Should the
commit be refused (an operator acted in the same instant), the gateways are
brought back to the catalog's plan (:meth:`RolloutController._reconcile`).
Gateways in other processes pick plans up from the catalog (``CatalogSync``)
within their poll interval.

Leadership: one controller acts at a time. The leader renews a lease row
(``controller_leases``) while less than half of it is left; another controller
takes over once it has expired, e.g. after the leader was killed. This works the
same on SQLite and PostgreSQL. Even two controllers acting at once could not
apply one decision twice: every transition compares the rollout's version.

Telemetry comes from a :class:`TelemetrySource`: :class:`CatalogTelemetry`
(what every gateway flushed to the catalog; the default) or
:class:`GatewayTelemetry` (the counters of one gateway in this process: no
flush delay, but blind to other replicas).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from time import perf_counter
from typing import Any, Protocol, TypeVar

from airlock.catalog import rollouts as rollout_sql
from airlock.core import rollout as machine
from airlock.core.analysis import (
    AnalysisSettings,
    AnalysisVerdict,
    ReleaseWindow,
    StepEvidence,
    StepWindows,
    judge,
    step_evidence,
)
from airlock.core.calibration import may_gate
from airlock.core.quality import not_gating
from airlock.core.rollout_spec import RolloutSpec
from airlock.core.telemetry import Traffic
from airlock.core.traffic import TrafficPlan
from airlock.errors import AirlockError, Conflict, NotFound
from airlock.services.identity import Actor
from airlock.services.rollouts import CONTROLLER, Rollouts, RolloutView
from airlock.services.serving import Serving
from airlock.services.telemetry_retention import TelemetryRetention
from airlock.services.transcripts import Transcripts

log = logging.getLogger("airlock.controller")

LEASE = "rollout-controller"
_EMPTY = ReleaseWindow()

WindowKey = tuple[str, Traffic]  # (release, live | shadow)
T = TypeVar("T")


# -- what the controller talks to ----------------------------------------------------------


class TelemetrySource(Protocol):
    """Per (release, traffic) windows of some releases of a service since a moment (epoch s)."""

    async def windows(
        self, service: str, since: float, releases: Sequence[str]
    ) -> Mapping[WindowKey, ReleaseWindow]: ...


class PlanTarget(Protocol):
    """A gateway in this process (``airlock.gateway.Gateway`` is one)."""

    def plan(self, service: str) -> TrafficPlan: ...

    def loaded(self) -> tuple[str, ...]: ...

    def swap_plan(self, plan: TrafficPlan) -> bool: ...

    async def apply_plan(self, plan: TrafficPlan) -> bool: ...


@dataclass(slots=True)
class _Running:
    """A step's totals so far, and the rows near the newest one already counted."""

    since: datetime
    totals: dict[WindowKey, ReleaseWindow]
    counted: dict[int, datetime]  # row id -> window start, for rows within the margin
    newest: datetime


class CatalogTelemetry:
    """What every gateway flushed to the catalog.

    Only flush windows that *started* at or after ``since`` count: a window
    straddling the start of a step mixes two traffic splits. The reading is
    incremental: running totals per service and step, and each tick reads only
    the rows that started within ``margin_seconds`` of the newest row seen (rows
    are counted once, by id), so a tick costs the same in the first minute of a
    step as in its tenth hour. A flush that reaches the catalog more than
    ``margin_seconds`` late (a gateway's backlog after a database outage) is not
    counted in the step it belongs to.
    """

    def __init__(self, serving: Serving, *, margin_seconds: float = 60.0) -> None:
        self.serving = serving
        self.margin = timedelta(seconds=margin_seconds)
        self._running: dict[str, _Running] = {}

    async def windows(
        self, service: str, since: float, releases: Sequence[str]
    ) -> dict[WindowKey, ReleaseWindow]:
        return await asyncio.to_thread(self.read, service, since, releases)

    def read(
        self, service: str, since: float, releases: Sequence[str]
    ) -> dict[WindowKey, ReleaseWindow]:
        start = datetime.fromtimestamp(since, UTC)
        run = self._running.get(service)
        if run is None or run.since != start:
            run = self._running[service] = _Running(start, {}, {}, start)
        lower = max(start, run.newest - self.margin)
        with self.serving.db.read() as conn:
            rows = rollout_sql.windows_from(conn, service, lower, list(releases))
        for row in rows:
            if row.id in run.counted:
                continue
            run.counted[row.id] = row.window_start
            run.newest = max(run.newest, row.window_start)
            traffic: Traffic = "shadow" if row.traffic == "shadow" else "live"
            key = (row.release, traffic)
            before = run.totals.get(key)
            run.totals[key] = row.window if before is None else before + row.window
        horizon = run.newest - self.margin
        run.counted = {i: at for i, at in run.counted.items() if at >= horizon}
        return dict(run.totals)

    async def between(
        self, service: str, start: float, end: float, releases: Sequence[str]
    ) -> dict[WindowKey, ReleaseWindow]:
        """Everything flushed for windows that started in ``[start, end)`` (a past stratum)."""
        return await asyncio.to_thread(self._between, service, start, end, releases)

    def _between(
        self, service: str, start: float, end: float, releases: Sequence[str]
    ) -> dict[WindowKey, ReleaseWindow]:
        lower = datetime.fromtimestamp(start, UTC)
        upper = datetime.fromtimestamp(end, UTC)
        with self.serving.db.read() as conn:
            rows = rollout_sql.windows_from(conn, service, lower, list(releases))
        totals: dict[WindowKey, ReleaseWindow] = {}
        for row in rows:
            if row.window_start >= upper:
                continue
            traffic: Traffic = "shadow" if row.traffic == "shadow" else "live"
            key = (row.release, traffic)
            before = totals.get(key)
            totals[key] = row.window if before is None else before + row.window
        return totals


class _Marks(Protocol):
    def mark(self) -> Any: ...

    def since(self, mark: Any, *, traffic: Traffic = "live") -> Mapping[tuple[str, str], Any]: ...


class _HasTelemetry(Protocol):
    @property
    def telemetry(self) -> _Marks: ...


class GatewayTelemetry:
    """The counters of a gateway in this process (call on the gateway's event loop).

    The first look at a step takes a mark, so a step counts from the
    controller's first tick in it (at most one tick late), never before.
    """

    def __init__(self, gateway: _HasTelemetry) -> None:
        self.gateway = gateway
        self._marks: dict[str, tuple[float, Any]] = {}

    async def windows(
        self, service: str, since: float, releases: Sequence[str]
    ) -> dict[WindowKey, ReleaseWindow]:
        telemetry = self.gateway.telemetry
        held = self._marks.get(service)
        if held is None or held[0] != since:
            held = self._marks[service] = (since, telemetry.mark())
        out: dict[WindowKey, ReleaseWindow] = {}
        for traffic in ("live", "shadow"):
            for (name, release), window in telemetry.since(held[1], traffic=traffic).items():
                if name == service and release in releases:
                    out[(release, traffic)] = window
        return out


def _stratum(
    view: RolloutView, step: machine.RolloutStep, windows: Mapping[WindowKey, ReleaseWindow]
) -> StepWindows:
    """Both sides of one stratum: a 0 % step compares the candidate's mirrored copies with
    stable's live traffic, a 100 % step the candidate's live traffic with stable's copies."""
    candidate_traffic: Traffic = "shadow" if step.mirror == "candidate" else "live"
    stable_traffic: Traffic = "shadow" if step.mirror == "stable" else "live"
    return StepWindows(
        windows.get((view.candidate, candidate_traffic), _EMPTY),
        windows.get((view.stable, stable_traffic), _EMPTY),
        step.weight_bp,
        step.mirror is not None,
    )


# -- settings and events ------------------------------------------------------------------------


def _holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class ControllerSettings:
    tick_seconds: float = 1.0
    """How often every live rollout is analysed."""
    lease_seconds: float = 10.0
    """How long a silent leader keeps the lease; a standby takes over after that."""
    verdict_every_seconds: float = 1.0
    """How often the newest verdict of a holding rollout is written (``rollout status``)."""
    history_every_seconds: float = 30.0
    """How often a holding rollout's verdict goes into its history (and on every change)."""
    holder: str = field(default_factory=_holder)

    def __post_init__(self) -> None:
        if self.tick_seconds <= 0 or self.lease_seconds <= 0:
            raise ValueError("tick_seconds and lease_seconds must be positive")


@dataclass(frozen=True, slots=True)
class ControllerEvent:
    """One decision the controller applied, with the timings the benchmarks read."""

    rollout_id: int
    service: str
    action: str
    reason: str
    phase: str
    plan: TrafficPlan | None
    verdict: AnalysisVerdict | None
    decided_at: float  # wall clock (epoch seconds) of the decision
    commit_seconds: float  # decision -> transaction committed
    swap_seconds: float | None  # decision -> plan swapped on the in-process gateways
    swap_only_seconds: float | None  # the swap alone


@dataclass(slots=True)
class _Noted:
    outcome: str
    step: tuple[str, int]
    history_at: float
    verdict_at: float


# -- the controller ------------------------------------------------------------------------------


class RolloutController:
    def __init__(
        self,
        rollouts: Rollouts,
        *,
        telemetry: TelemetrySource | None = None,
        gateways: Iterable[PlanTarget] = (),
        settings: ControllerSettings | None = None,
        actor: Actor = CONTROLLER,
        on_event: Callable[[ControllerEvent], None] | None = None,
        retention: TelemetryRetention | None = None,
    ) -> None:
        self.rollouts = rollouts
        self.telemetry = telemetry or CatalogTelemetry(rollouts.serving)
        self.gateways = list(gateways)
        self.settings = settings or ControllerSettings()
        self.actor = actor
        self.on_event = on_event
        self.retention = retention
        self._rollup: asyncio.Task[None] | None = None
        self.clock = rollouts.clock
        self._lease_until = 0.0
        self._noted: dict[int, _Noted] = {}
        # (rollout id, stratum start) -> that stratum's evidence, newest look; a stratum's
        # entry is final once the rollout moved on (see :meth:`analyse`).
        self._evidence: dict[tuple[int, float], StepEvidence] = {}
        self._task: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        # The controller's catalog work gets a thread of its own: in the default
        # executor it would queue behind a busy gateway's model calls.
        self._executor: ThreadPoolExecutor | None = None

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="airlock-controller")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    @property
    def is_leader(self) -> bool:
        return self._lease_until > self.clock()

    # -- running --------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None, *, ticks: int | None = None) -> None:
        """Tick until ``stop`` is set, ``ticks`` ticks are done or the task is cancelled;
        then give up the lease."""
        stop = stop if stop is not None else asyncio.Event()
        loop = asyncio.get_running_loop()
        done = 0
        try:
            while not stop.is_set() and (ticks is None or done < ticks):
                done += 1
                began = loop.time()
                try:
                    await self.tick()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("controller tick failed; retrying")
                if ticks is not None and done >= ticks:
                    break
                wait = self.settings.tick_seconds - (loop.time() - began)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=max(wait, 0.0))
        finally:
            if self._rollup is not None:
                await self._rollup
                self._rollup = None
            await self._resign()

    async def start(self) -> None:
        """Run in the background (an ASGI ``on_startup`` hook, e.g. beside a gateway)."""
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.run(self._stop), name="airlock-rollout-controller")

    async def stop(self) -> None:
        if self._task is None or self._stop is None:
            return
        self._stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def _roll_up(self) -> None:
        assert self.retention is not None
        try:
            self.retention.maybe_run()
        except AirlockError as exc:
            log.error("telemetry roll-up: %s (%s)", exc, exc.hint)

    async def tick(self) -> list[ControllerEvent]:
        """One pass over every live rollout (a no-op unless this controller leads)."""
        if not await self._lead():
            return []
        if self.retention is not None and (self._rollup is None or self._rollup.done()):
            # at most every policy.every, on its own thread: a long roll-up never delays a tick
            self._rollup = asyncio.create_task(asyncio.to_thread(self._roll_up))
        pairs = await self._call(self.rollouts.live_with_plans)
        live = {view.id for view, _ in pairs}
        for gone in set(self._noted) - live:
            del self._noted[gone]
        for key in [k for k in self._evidence if k[0] not in live]:
            del self._evidence[key]
        events = []
        for view, plan in pairs:
            try:
                event = await self.step(view, plan)
            except Conflict as exc:
                log.info("rollout #%d moved meanwhile: %s", view.id, exc.message)
                continue
            except AirlockError as exc:
                log.error("rollout #%d of %s: %s (%s)", view.id, view.service, exc, exc.hint)
                continue
            if event is not None:
                events.append(event)
        return events

    async def step(
        self, view: RolloutView, plan: TrafficPlan | None = None
    ) -> ControllerEvent | None:
        """Analyse one rollout and apply the decision, if it changes anything.

        ``plan`` is the service's plan as stored when ``view`` was read.
        """
        if plan is None:
            plan = await self._call(self.rollouts.plan, view.service)
        verdict = await self.analyse(view)
        now = self.clock()
        decision = machine.decide(view.spec, view.state, verdict, now)
        decided = perf_counter()
        if not decision.changed:
            await self._note(view, verdict, decision.reason, now)
            return None
        state, reason = decision.new_state, decision.reason
        action: str = decision.action
        if view.kind == "drill" and action == "promote":
            reason = f"drill over without detecting the fault ({reason})"
            state, action = machine.abort(view.state, now, reason), "abort"
        swap_only: float | None = None
        ahead: TrafficPlan | None = None
        if action == "rollback":
            # Stop the harm first: the stable release is loaded and the catalog's plan
            # names it, so pointing the local gateways at it is safe before the commit.
            ahead = machine.plan_for(view.spec, state, plan, view.candidate)
            swap_only = self._swap_now(ahead)
        swapped_first = perf_counter()
        try:
            transition = await self._call(
                self.rollouts.decide,
                view.id,
                view.version,
                state,
                action,
                reason,
                verdict,
                actor=self.actor,
                now=now,
                publish=not self.gateways,  # one route: our gateways get it from us (below)
            )
        except AirlockError:
            if ahead is not None and swap_only is not None:
                await self._reconcile(view.service, ahead)
            raise
        committed = perf_counter()
        if transition.plan is not None:
            more = await self._swap(transition.plan)
            if swap_only is None:
                swap_only = more
        swapped = swapped_first if ahead is not None else perf_counter()
        self._noted.pop(view.id, None)
        event = ControllerEvent(
            rollout_id=view.id,
            service=view.service,
            action=transition.action,
            reason=transition.reason,
            phase=transition.rollout.phase,
            plan=transition.plan,
            verdict=verdict,
            decided_at=now,
            commit_seconds=committed - decided,
            swap_seconds=(swapped - decided) if swap_only is not None else None,
            swap_only_seconds=swap_only,
        )
        log.info("rollout #%d of %s: %s (%s)", view.id, view.service, event.action, event.reason)
        if self.on_event is not None:
            self.on_event(event)
        return event

    async def analyse(self, view: RolloutView) -> AnalysisVerdict | None:
        """The verdict on the rollout so far; None when no step is live.

        The current stratum (since the step started) is read from telemetry every
        tick; each earlier stratum contributes the evidence seen at its last look
        (kept in memory), or — after a restart — what the catalog holds for its
        interval. A source without history (one gateway's counters) restarts the
        evidence instead: still valid, only slower.
        """
        step = view.live_step
        if step is None:
            return None
        settings = view.spec.judged_analysis
        schedule = view.spec.schedule()
        history: list[StepEvidence] = []
        for start, end, index in view.state.strata:
            evidence = self._evidence.get((view.id, start))
            if evidence is None and isinstance(self.telemetry, CatalogTelemetry):
                past = await self.telemetry.between(
                    view.service, start, end, (view.candidate, view.stable)
                )
                evidence = step_evidence(_stratum(view, schedule[index], past), settings)
                self._evidence[(view.id, start)] = evidence
            if evidence is not None:
                history.append(evidence)
        windows = await self.telemetry.windows(
            view.service, view.state.step_started_at, (view.candidate, view.stable)
        )
        current = step_evidence(_stratum(view, step, windows), settings)
        self._evidence[(view.id, view.state.step_started_at)] = current
        trusted = await self._call(self.judge_settings, view.service, view.spec)
        return judge([*history, current], trusted or settings)

    def judge_settings(self, service: str, spec: RolloutSpec) -> AnalysisSettings | None:
        """The settings to judge with when the spec's judge may not gate (None: it may).

        A judge whose agreement with people (feedback and labels on the answers it
        scored) is below ``min_agreement`` keeps its metric in the verdict, reported but
        never acted on (see :func:`airlock.core.calibration.may_gate`)."""
        judge_spec = spec.quality.judge if spec.quality is not None else None
        if judge_spec is None or judge_spec.min_agreement <= 0.0:
            return None
        found = Transcripts(self.rollouts.ws).judge_agreement(
            service, judge_spec.release, threshold=judge_spec.threshold
        )
        ok, why = may_gate(found, judge_spec.min_agreement, judge_spec.min_labels)
        if ok:
            return None
        return not_gating(spec.judged_analysis, judge_spec, f"{why}; {found.describe()}")

    # -- gateways -------------------------------------------------------------------------------
    def _swap_now(self, plan: TrafficPlan) -> float | None:
        """Swap ``plan`` in wherever everything it names is loaded; the swaps' duration."""
        total, done = 0.0, False
        for gateway in self.gateways:
            try:
                if gateway.plan(plan.service).generation >= plan.generation:
                    continue
                if not set(plan.releases()) <= set(gateway.loaded()):
                    continue
                began = perf_counter()
                gateway.swap_plan(plan)
                total += perf_counter() - began
                done = True
            except NotFound:  # not serving this service yet
                continue
            except AirlockError as exc:
                log.warning("gateway kept its plan: %s", exc.message)
        return total if done else None

    async def _swap(self, plan: TrafficPlan) -> float | None:
        """Serve a committed plan on the in-process gateways (loading what it needs)."""
        if not self.gateways:
            return None
        total = self._swap_now(plan)
        for gateway in self.gateways:
            try:
                if gateway.plan(plan.service).generation < plan.generation:
                    await gateway.apply_plan(plan)  # a new release to load first
            except NotFound:  # not serving this service yet: its CatalogSync will load it
                continue
            except AirlockError as exc:
                log.error("gateway cannot serve generation %d: %s", plan.generation, exc)
        return total

    async def _reconcile(self, service: str, ahead: TrafficPlan) -> None:
        """The commit after a fail-safe rollback swap failed: bring gateways back to the catalog.

        Stored generation below ``ahead``'s: nothing else changed the plan, so the
        next tick decides on the fresh rollout and commits the very same plan.
        Same generation but other routing (e.g. an operator promoted meanwhile):
        re-publish the stored plan one generation up, so every gateway can take it.
        """
        try:
            stored = await self._call(self.rollouts.plan, service)
            if stored.generation < ahead.generation:
                return
            if stored.generation == ahead.generation and not stored.same_routing(ahead):
                stored = await self._call(
                    self.rollouts.serving.set_plan,
                    dataclasses.replace(stored, generation=stored.generation + 1),
                    actor=self.actor,
                    reason="re-published: a rollback had swapped this process's gateways "
                    "before its commit was refused",
                )
            await self._swap(stored)
        except AirlockError as exc:
            log.error("cannot reconcile %s with the catalog yet: %s", service, exc)

    async def _note(
        self, view: RolloutView, verdict: AnalysisVerdict | None, reason: str, now: float
    ) -> None:
        """Keep the newest verdict, and the holding history, without a write every tick."""
        outcome = verdict.outcome if verdict is not None else "none"
        step = (view.phase, view.state.step_index)
        noted = self._noted.get(view.id)
        s = self.settings
        to_history = (
            noted is None
            or noted.outcome != outcome
            or noted.step != step
            or now - noted.history_at >= s.history_every_seconds
        )
        to_verdict = (
            to_history or noted is None or now - noted.verdict_at >= s.verdict_every_seconds
        )
        if not to_verdict:
            return
        await self._call(
            self.rollouts.note_verdict,
            view.id,
            verdict,
            now=now,
            hold_reason=reason if to_history else None,
            actor=self.actor,
        )
        history_at = now if to_history or noted is None else noted.history_at
        self._noted[view.id] = _Noted(outcome, step, history_at, now)

    async def _lead(self) -> bool:
        now = self.clock()
        lease = self.settings.lease_seconds
        if self._lease_until - now > lease / 2:
            return True
        began = time.monotonic()
        ok = await self._call(
            self.rollouts.acquire_lease, LEASE, self.settings.holder, seconds=lease
        )
        if ok:
            # Count from before the call: the lease in the catalog lasts at least this long.
            self._lease_until = now + lease - (time.monotonic() - began)
        else:
            if self._lease_until:
                log.warning("lost the controller lease; standing by")
            self._lease_until = 0.0
        return ok

    async def _resign(self) -> None:
        try:
            if self._lease_until:
                self._lease_until = 0.0
                with contextlib.suppress(Exception):
                    await self._call(self.rollouts.release_lease, LEASE, self.settings.holder)
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=False)
                self._executor = None


__all__ = [
    "LEASE",
    "CatalogTelemetry",
    "ControllerEvent",
    "ControllerSettings",
    "GatewayTelemetry",
    "PlanTarget",
    "RolloutController",
    "TelemetrySource",
]
