"""Rollback drills: roll out a deliberately faulty copy of the stable release and time the revert.

``airlock drill chat --fault errors=0.2`` runs :func:`run_drill`:

1. **the faulty release** (:meth:`Drills.prepare`): a new, immutable version
   of the stable release's model, e.g. ``chat@1.4.0-drill.1``, pushed like any
   release (``release.push`` event). It holds one file, ``config.json`` with
   the ``faults`` section (:mod:`airlock.runtime.faults`), and names the stable
   release as its ``base_model`` and as its prompt template, decoding and
   safety policy: the loader serves the stable release's very bytes (verified
   by digest) with the faults wrapped around them. Why a release and not an
   in-memory wrapper: what a gateway serves is always what the catalog names,
   so the drill takes the path a real bad release takes — load, route,
   telemetry, analysis, decision — in every gateway process, not only in the
   one that ran the drill; and the audit log shows exactly what was served;
2. **the rollout**: started with ``kind="drill"`` (no promotion gate, never
   promoted: a drill that is not caught ends ``aborted``) and the spec given,
   by default :data:`DEFAULT_DRILL_SPEC`;
3. **traffic** at ``rps`` requests a second through a gateway (the client
   given: an in-process gateway app, or a running gateway's URL), while a
   controller judges the rollout (the one given, or another that holds the
   leader lease);
4. **the result** (:func:`airlock.core.drill.summarize`, plus what every
   gateway reported to the catalog about the faulty release) is stored and
   audited; ``airlock drill history`` lists the results.

Drills need both ``release.push`` and ``rollout.start`` (an admin, by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from airlock import audit
from airlock.catalog import rollouts as sql
from airlock.catalog.rollouts import StoredDrill
from airlock.core.drill import DrillSummary, Observation, describe, summarize
from airlock.core.manifest import Manifest, Notes
from airlock.core.paging import Page, cursor_int, decode_cursor, page_limit, page_of
from airlock.core.roles import Action
from airlock.core.rollout import RolloutSpec
from airlock.core.semver import Version
from airlock.errors import AirlockError, Conflict, InvalidInput
from airlock.services.access import authorize
from airlock.services.controller import RolloutController
from airlock.services.identity import Actor
from airlock.services.load import drive
from airlock.services.rollouts import Rollouts
from airlock.services.workspace import Workspace

DEFAULT_DRILL_SPEC: dict[str, Any] = {
    "strategy": "canary",
    "steps": [{"weight_pct": 10, "bake_seconds": 60}, {"weight_pct": 50, "bake_seconds": 60}],
    "analysis": {"min_requests": 200, "max_step_seconds": 300, "on_insufficient_data": "rollback"},
}
_INHERITED = ("prompt_template", "decoding", "safety_policy")


@dataclass(frozen=True, slots=True)
class DrillSettings:
    rps: float = 50.0
    """Requests a second the drill sends (open loop)."""
    concurrency: int = 32
    """At most this many requests in flight."""
    timeout_seconds: float = 600.0
    """A drill still running after this long is aborted."""
    settle_seconds: float = 1.0
    """Traffic kept up after the rollout ended, to see the revert."""
    poll_seconds: float = 0.1
    prompt: str = "Say hello to the on-call engineer."
    max_tokens: int = 8


@dataclass(frozen=True, slots=True)
class DrillView:
    id: int
    service: str
    rollout_id: int | None
    release: str
    stable: str
    faults: dict[str, float]
    outcome: str
    started_at: datetime
    finished_at: datetime
    detect_seconds: float | None
    revert_seconds: float | None
    requests: int
    faulty_requests: int
    faulted_requests: int
    result: dict[str, Any]
    actor: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "rollout": self.rollout_id,
            "release": self.release,
            "stable": self.stable,
            "faults": self.faults,
            "outcome": self.outcome,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "detect_seconds": self.detect_seconds,
            "revert_seconds": self.revert_seconds,
            "requests": self.requests,
            "faulty_requests": self.faulty_requests,
            "faulted_requests": self.faulted_requests,
            "result": self.result,
            "actor": self.actor,
        }


class Drills:
    def __init__(self, workspace: Workspace, *, rollouts: Rollouts | None = None) -> None:
        self.ws = workspace
        self.db = workspace.db
        self.rollouts = rollouts or Rollouts(workspace)
        self.serving = self.rollouts.serving
        self.registry = self.rollouts.registry

    def authorize(self, service: str, actor: Actor) -> None:
        """A drill pushes a release and starts a rollout: check both before either."""
        authorize(self.db, actor, Action.RELEASE_PUSH, f"drill release for {service}")
        authorize(self.db, actor, Action.ROLLOUT_START, f"drill of {service}")

    def check_start(
        self, service: str, actor: Actor, faults: Mapping[str, float] | None = None
    ) -> None:
        """May ``actor`` start a drill of ``service`` now: it exists (NotFound), the actor may
        push and start (Forbidden), no rollout is in flight (Conflict), and the stable
        release can show the ``faults`` (InvalidInput)."""
        self.serving.get(service)
        self.authorize(service, actor)
        active = self.rollouts.active(service)
        if active is not None:
            raise Conflict(
                f"{service} already has rollout #{active.id} in flight",
                hint="finish, abort or roll it back first",
            )
        if faults is not None:
            self._check_faults(service, self.serving.get(service).plan.stable, faults)

    def _check_faults(self, service: str, stable: str, faults: Mapping[str, float]) -> Manifest:
        """The stable release's manifest, once it is clear the faults can be seen on it."""
        manifest = self.registry.manifest(stable)
        if faults.get("unsafe_rate") and "safety_policy" not in manifest.components:
            raise InvalidInput(
                f"--fault unsafe=… tests the safety policy, and {stable} (the stable release of "
                f"{service}) has none: every unsafe answer would reach users unseen",
                hint="drill errors or latency instead, or ship a release with a safety policy "
                "(--component safety_policy=REF, or a safety_policy.yaml file)",
            )
        return manifest

    def prepare(self, service: str, faults: Mapping[str, float], *, actor: Actor) -> str:
        """Push the faulty copy of ``service``'s stable release; its reference."""
        self.authorize(service, actor)
        stable = self.serving.get(service).plan.stable
        manifest = self._check_faults(service, stable, faults)
        base = Version.parse(manifest.version)
        core = f"{base.major}.{base.minor}.{base.patch}"
        taken = {r.version for r in self.registry.releases(manifest.name)}
        n = 1
        while f"{core}-drill.{n}" in taken:
            n += 1
        config = {"faults": {**faults, "seed": random.SystemRandom().randrange(1 << 31)}}
        components = {"base_model": stable}
        components.update({role: stable for role in _INHERITED if role in manifest.components})
        notes = Notes(
            summary=f"Rollback drill: {stable} with injected faults ({describe(faults)}).",
            caveats=("Faulty on purpose; never promote it.",),
        )
        with tempfile.TemporaryDirectory(prefix="airlock-drill-") as folder:
            (Path(folder) / "config.json").write_text(json.dumps(config, sort_keys=True))
            result = self.registry.push(
                Path(folder),
                name=manifest.name,
                version=f"{core}-drill.{n}",
                actor=actor,
                components=components,
                parent=stable,
                notes=notes,
            )
        return result.ref

    def record(
        self,
        *,
        service: str,
        rollout_id: int | None,
        release: str,
        stable: str,
        faults: Mapping[str, float],
        summary: DrillSummary,
        started_at: float,
        finished_at: float,
        details: Mapping[str, Any],
        actor: Actor,
    ) -> DrillView:
        result = {**summary.to_dict(), **details}
        with self.db.write() as conn:
            event = audit.append(
                conn,
                actor=actor.name,
                action="drill.record",
                subject=service,
                details={
                    "rollout": rollout_id,
                    "release": release,
                    "faults": dict(faults),
                    "outcome": summary.outcome,
                    "detect_seconds": summary.detect_seconds,
                    "revert_seconds": summary.revert_seconds,
                    "faulty_requests": summary.faulty_requests,
                    "faulted_requests": summary.faulted_requests,
                },
            )
            drill_id = sql.insert_drill(
                conn,
                service=service,
                rollout_id=rollout_id,
                release=release,
                stable=stable,
                fault=json.dumps(dict(faults), sort_keys=True),
                outcome=summary.outcome,
                started_at=datetime.fromtimestamp(started_at, UTC),
                finished_at=datetime.fromtimestamp(finished_at, UTC),
                detect_seconds=summary.detect_seconds,
                revert_seconds=summary.revert_seconds,
                requests=summary.requests,
                faulty_requests=summary.faulty_requests,
                faulted_requests=summary.faulted_requests,
                result=json.dumps(result, sort_keys=True, default=str),
                actor=actor.name,
                event_seq=event.seq,
            )
        return next(d for d in self.history(service, limit=10) if d.id == drill_id)

    def history(self, service: str | None = None, *, limit: int = 50) -> list[DrillView]:
        with self.db.read() as conn:
            rows = sql.list_drills(conn, service, limit=limit)
        return [_view(r) for r in rows]

    def page(
        self, service: str | None = None, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[DrillView]:
        """``history`` a page at a time, newest first (keyset on the drill id)."""
        size = page_limit(limit)
        after = decode_cursor(cursor, arity=1)
        before = cursor_int(after[0]) if after else None
        with self.db.read() as conn:
            rows = sql.list_drills(conn, service, limit=size + 1, before=before)
        return page_of([_view(r) for r in rows], size, lambda d: [d.id])


async def run_drill(
    drills: Drills,
    service: str,
    faults: Mapping[str, float],
    *,
    actor: Actor,
    client: httpx.AsyncClient,
    controller: RolloutController | None = None,
    spec: RolloutSpec | str | Mapping[str, Any] | None = None,
    settings: DrillSettings | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> DrillView:
    """Run one drill end to end (see the module docstring) and store its result."""
    settings = settings or DrillSettings()
    say = on_progress or (lambda _: None)
    rollouts = drills.rollouts
    await asyncio.to_thread(drills.authorize, service, actor)
    faulty = await asyncio.to_thread(drills.prepare, service, faults, actor=actor)
    say(f"pushed {faulty}: the stable release with {describe(faults)}")
    observations: list[Observation] = []
    stop_load, stop_controller = asyncio.Event(), asyncio.Event()
    load = asyncio.create_task(_drive(client, service, settings, observations, stop_load))
    controlling = (
        asyncio.create_task(controller.run(stop_controller)) if controller is not None else None
    )
    started_at = time.time()
    try:
        transition = await asyncio.to_thread(
            rollouts.start,
            service,
            faulty,
            spec if spec is not None else DEFAULT_DRILL_SPEC,
            actor=actor,
            reason=f"drill: {describe(faults)}",
            kind="drill",
        )
        view = transition.rollout
        say(f"rollout #{view.id} started: {view.spec.strategy}, {settings.rps:g} requests/s")
        deadline = started_at + settings.timeout_seconds
        while view.live and time.time() < deadline:
            await asyncio.sleep(settings.poll_seconds)
            view = await asyncio.to_thread(rollouts.get, view.id)
        if view.live:
            say("the drill timed out; aborting its rollout")
            with contextlib.suppress(AirlockError):  # it may have ended meanwhile
                await asyncio.to_thread(
                    rollouts.abort, service, actor=actor, reason="drill timed out"
                )
            view = await asyncio.to_thread(rollouts.get, view.id)
        say(f"rollout #{view.id} {view.phase}: {view.reason}")
        await asyncio.sleep(settings.settle_seconds)
    finally:
        stop_load.set()
        stop_controller.set()
        await load
        if controlling is not None:
            await controlling
    finished_at = time.time()
    history = await asyncio.to_thread(rollouts.history, view.id)
    rollback = next((h for h in history if h.action == "rollback"), None)
    decided_at = rollback.at.timestamp() if rollback is not None else None
    summary = summarize(
        observations,
        faulty=faulty,
        faults=faults,
        started_at=started_at,
        decided_at=decided_at,
    )
    seen = await asyncio.to_thread(_catalog_counts, drills, service, faulty, started_at)
    verdict = rollback.verdict if rollback is not None else view.last_verdict
    details = {
        "rollout_phase": view.phase,
        "rollout_reason": view.reason,
        "rps": settings.rps,
        "verdict": verdict.to_dict() if verdict is not None else None,
        "all_gateways": seen,
    }
    return await asyncio.to_thread(
        drills.record,
        service=service,
        rollout_id=view.id,
        release=faulty,
        stable=view.stable,
        faults=faults,
        summary=summary,
        started_at=started_at,
        finished_at=finished_at,
        details=details,
        actor=actor,
    )


async def _drive(
    client: httpx.AsyncClient,
    service: str,
    settings: DrillSettings,
    out: list[Observation],
    stop: asyncio.Event,
) -> None:
    """Send ``rps`` requests a second, each from a new user (:func:`airlock.services.load.drive`)."""

    def body(n: int) -> dict[str, Any]:
        return {
            "model": service,
            "messages": [{"role": "user", "content": settings.prompt}],
            "max_tokens": settings.max_tokens,
            "user": f"drill-user-{n}",
        }

    await drive(
        client,
        body,
        out.append,
        stop,
        rps=lambda: settings.rps,
        concurrency=settings.concurrency,
        timeout=60,
    )


def _catalog_counts(drills: Drills, service: str, release: str, since: float) -> dict[str, int]:
    """What every gateway reported to the catalog about the faulty release (all users)."""
    records = drills.serving.telemetry(service, since=datetime.fromtimestamp(since, UTC))
    r = records.get(release)
    if r is None:
        return {"requests": 0, "errors": 0, "fallbacks": 0, "guardrail_flags": 0}
    return {
        "requests": r.requests,
        "errors": r.errors,
        "fallbacks": r.fallbacks,
        "guardrail_flags": r.guardrail_flags,
    }


def _view(row: StoredDrill) -> DrillView:
    return DrillView(
        id=row.id,
        service=row.service,
        rollout_id=row.rollout_id,
        release=row.release,
        stable=row.stable,
        faults=json.loads(row.fault),
        outcome=row.outcome,
        started_at=row.started_at,
        finished_at=row.finished_at,
        detect_seconds=row.detect_seconds,
        revert_seconds=row.revert_seconds,
        requests=row.requests,
        faulty_requests=row.faulty_requests,
        faulted_requests=row.faulted_requests,
        result=json.loads(row.result),
        actor=row.actor,
    )


__all__ = ["DEFAULT_DRILL_SPEC", "DrillSettings", "DrillView", "Drills", "run_drill"]
