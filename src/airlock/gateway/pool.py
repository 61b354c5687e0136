"""The release pool: which releases are loaded, and what each service serves right now.

``await pool.apply_plan(plan)`` loads what the plan needs (verifying every blob,
in worker threads) and then swaps; ``pool.swap_plan(plan)`` is the swap alone —
one reference assignment, no I/O, effective for the next request — and needs the
plan's releases loaded already. The releases of the previous plan stay loaded,
so rolling back is a swap too; a release no plan names any more is closed
``retire_after_s`` later, once the requests in flight on it have finished.

Readiness lives here too: releases that failed to load (``load_failures``) and
services that cannot serve because of it (``unservable``: answered 503 with the
reason, not 404).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from airlock.core.traffic import TrafficPlan
from airlock.errors import AirlockError, Conflict, NotFound, ServiceUnavailable
from airlock.runtime.loader import LoadedRelease

log = logging.getLogger("airlock.gateway")

LoadFn = Callable[[str], LoadedRelease]


@dataclass(frozen=True, slots=True)
class ServiceState:
    """What one service serves right now; replaced as a whole, never edited."""

    plan: TrafficPlan
    releases: Mapping[str, LoadedRelease]
    opt_outs: frozenset[str] = frozenset()

    def timeout_for(self, release: LoadedRelease, cap: float | None, *, counted: bool) -> float:
        """A call's time budget: the release's own, or ``cap`` for every counted call of
        both arms while the service compares releases (so neither arm looks worse for a
        timeout the other does not have)."""
        comparing = bool(self.plan.candidates or self.plan.shadows)
        if cap is None or not counted or not comparing:
            return release.timeout_s
        return min(release.timeout_s, cap)


class ReleasePool:
    """Loaded releases and the services' states (one atomic mapping readers see)."""

    def __init__(self, load: LoadFn, *, retire_after_s: float = 30.0) -> None:
        self._load = load
        self.retire_after_s = retire_after_s
        self._states: Mapping[str, ServiceState] = MappingProxyType({})
        self._pool: dict[str, LoadedRelease] = {}
        self._loading: dict[str, asyncio.Future[LoadedRelease]] = {}
        self._retired: list[LoadedRelease] = []
        self._held: set[str] = set()  # releases kept loaded outside any plan (judges)
        self._tasks: set[asyncio.Task[None]] = set()
        self.load_failures: dict[str, AirlockError] = {}
        self.unservable: dict[str, str] = {}

    # -- background work ----------------------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str | None = None) -> None:
        """Run ``coro`` on the running loop; ``aclose`` cancels it if it is still running."""
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        releases = {id(r): r for r in (*self._pool.values(), *self._retired)}
        self._pool.clear()
        self._retired.clear()
        self._states = MappingProxyType({})
        for release in releases.values():
            with contextlib.suppress(Exception):
                await release.aclose()

    # -- loading ------------------------------------------------------------------------
    async def load(self, refs: Iterable[str]) -> dict[str, LoadedRelease]:
        """Make sure every release in ``refs`` is loaded (each verified once, in a thread)."""
        wanted = list(dict.fromkeys(refs))
        return dict(
            zip(wanted, await asyncio.gather(*(self._ensure(r) for r in wanted)), strict=True)
        )

    async def _ensure(self, ref: str) -> LoadedRelease:
        found = self._pool.get(ref)
        if found is not None:
            return found
        pending = self._loading.get(ref)
        if pending is None:
            pending = asyncio.get_running_loop().run_in_executor(None, self._load, ref)
            self._loading[ref] = pending
            try:
                release = await pending
            except AirlockError as exc:
                self.load_failures[ref] = exc
                raise
            finally:
                self._loading.pop(ref, None)
            self.load_failures.pop(ref, None)
            if release.ref != ref:  # the loader canonicalised the reference
                release = replace(release, ref=ref)
            self._pool[ref] = release
            return release
        return await asyncio.shield(pending)

    # -- plans --------------------------------------------------------------------------
    async def apply_plan(self, plan: TrafficPlan) -> bool:
        """Load what ``plan`` needs, then swap to it. False when it was already served."""
        await self.load(plan.releases())
        return self.swap_plan(plan)

    def swap_plan(self, plan: TrafficPlan) -> bool:
        """Serve ``plan`` from the next request on: one atomic swap, no loading.

        A plan older than the served one is refused (``Conflict``); the same plan
        again is a no-op (False). Every release of the plan must be loaded.
        """
        current = self._states.get(plan.service)
        if current is not None:
            if plan.generation < current.plan.generation:
                raise Conflict(
                    f"plan generation {plan.generation} of {plan.service} is older than the "
                    f"served generation {current.plan.generation}",
                    hint="re-read the service's plan and derive the new plan from it",
                )
            if plan.generation == current.plan.generation:
                if current.plan.same_routing(plan):
                    return False
                raise Conflict(
                    f"{plan.service} already serves a different plan of generation "
                    f"{plan.generation}",
                    hint="a new plan needs generation + 1",
                )
        missing = [r for r in plan.releases() if r not in self._pool]
        if missing:
            raise Conflict(
                f"cannot swap {plan.service} to generation {plan.generation}: "
                f"{', '.join(missing)} not loaded",
                hint="use `await gateway.apply_plan(plan)`, which loads and then swaps",
            )
        keep = list(plan.releases())
        if current is not None:
            keep += [r for r in current.plan.releases() if r not in keep]
        state = ServiceState(
            plan=plan,
            releases=MappingProxyType({r: self._pool[r] for r in keep}),
            opt_outs=current.opt_outs if current is not None else frozenset(),
        )
        self._publish(plan.service, state)
        self.unservable.pop(plan.service, None)
        log.info("%s now serves plan generation %d", plan.service, plan.generation)
        return True

    def set_opt_outs(self, service: str, users: Iterable[str]) -> None:
        """Replace the users of ``service`` who always get its stable release."""
        state = self.state(service)
        self._publish(service, replace(state, opt_outs=frozenset(users)))

    def _publish(self, service: str, state: ServiceState) -> None:
        states = dict(self._states)
        states[service] = state
        self._states = MappingProxyType(states)  # the one atomic step readers see
        self._retire_unused()

    def hold(self, ref: str) -> None:
        """Keep ``ref`` loaded whatever the plans say (a judge release: never routed to)."""
        self._held.add(ref)

    def _retire_unused(self) -> None:
        used = {r for s in self._states.values() for r in s.releases} | self._held
        for ref in [r for r in self._pool if r not in used]:
            self._retire(self._pool.pop(ref))

    def _retire(self, release: LoadedRelease) -> None:
        """Close a release nobody routes to, after requests in flight have finished."""
        self._retired.append(release)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return

        async def later() -> None:
            await asyncio.sleep(self.retire_after_s)
            if release in self._retired:
                self._retired.remove(release)
                await release.aclose()

        self.spawn(later())

    # -- reading ------------------------------------------------------------------------
    def states(self) -> Mapping[str, ServiceState]:
        """Every service's state, as one consistent snapshot."""
        return self._states

    def plans(self) -> dict[str, TrafficPlan]:
        return {name: s.plan for name, s in self._states.items()}

    def loaded(self) -> tuple[str, ...]:
        return tuple(self._pool)

    def find(self, service: str) -> ServiceState | None:
        """The state of ``service``, or None when it is not served."""
        return self._states.get(service)

    def state(self, service: str) -> ServiceState:
        """The state of ``service``: ``ServiceUnavailable`` if it cannot be served (a
        damaged release), ``NotFound`` if it is unknown."""
        state = self._states.get(service)
        if state is None and service in self.unservable:
            raise ServiceUnavailable(
                self.unservable[service],
                hint="the other services still serve; run `airlock verify` to see what is damaged",
            )
        if state is None:
            known = ", ".join(sorted(self._states)) or "none"
            raise NotFound(
                f"the model {service!r} does not exist",
                hint=f"served services: {known}; create one with `airlock service create`",
            )
        return state


__all__ = ["LoadFn", "ReleasePool", "ServiceState"]
