"""Where the rollout, drill and service commands send their work: the services, or a server.

``open_rollouts()`` picks the transport once (:func:`airlock.cli.backend.open_side`):
:class:`LocalRollouts` calls :class:`~airlock.services.rollouts.Rollouts`,
:class:`~airlock.services.serving.Serving` and friends with the workspace;
:class:`RemoteRollouts` calls the REST API through :class:`airlock.client.Client` and
rebuilds the same frozen values from the bodies the API derives from them, so
``airlock rollout``, ``drill`` and ``service`` render one value either way, and the
server's errors come back as the same classes and messages.

Not remote: ``airlock controller`` (it runs next to the catalog). A remote drill runs
inside the server (``airlock serve``); the command follows it until its result is stored.

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

if TYPE_CHECKING:
    from airlock.client import Client
    from airlock.core.quality import QualitySettings, ServiceQuality
    from airlock.core.rollout_view import RolloutRecord, RolloutView
    from airlock.core.traffic import PlanChange, TrafficPlan
    from airlock.services.drills import DrillSettings, DrillView
    from airlock.services.identity import Actor
    from airlock.services.rollout_planning import RolloutPlan
    from airlock.services.rollout_views import Transition
    from airlock.services.serving import ServiceView
    from airlock.services.transcripts import PurgeResult, TranscriptStatus
    from airlock.services.workspace import Workspace

Verb = Literal["pause", "resume", "promote", "rollback", "abort"]
Say = Callable[[str], None]
V = TypeVar("V")
START_SECONDS = 60.0  # a remote drill pushes its faulty release, then starts its rollout


class RolloutBackend(Protocol):
    """What ``airlock rollout``, ``drill`` and ``service`` call; local and remote alike."""

    remote: bool

    # -- rollouts
    def start(self, service: str, candidate: str, spec: str, *, reason: str) -> Transition: ...

    def plan(
        self,
        service: str,
        spec: str,
        *,
        candidate: str | None,
        lookback: float,
        overrides: Mapping[str, float],
    ) -> RolloutPlan: ...

    def status(self, service: str) -> RolloutView: ...

    def detail(self, rollout_id: int) -> tuple[RolloutView, list[RolloutRecord]]: ...

    def recent(self, service: str | None, *, limit: int) -> list[RolloutView]: ...

    def control(self, service: str, verb: Verb, *, reason: str) -> Transition: ...

    # -- drills
    def drills(self, service: str | None, *, limit: int) -> list[DrillView]: ...

    def run_drill(
        self,
        service: str,
        faults: Sequence[str],
        *,
        spec: str | None,
        settings: DrillSettings,
        url: str | None,
        tick: float,
        sync: float,
        say: Say,
    ) -> DrillView: ...

    # -- services
    def create_service(self, name: str, stable: str, *, reason: str) -> ServiceView: ...

    def stable_alias(self, model: str) -> str | None:
        """The version ``model@stable`` points at, or None."""
        ...

    def service(self, name: str) -> ServiceView: ...

    def service_quality(self, name: str) -> ServiceQuality | None: ...

    def set_service_quality(
        self, name: str, settings: QualitySettings | None, *, reason: str
    ) -> ServiceQuality | None: ...

    def plan_history(self, name: str) -> list[PlanChange]: ...

    def set_opt_out(self, name: str, user: str, *, opted_out: bool) -> bool: ...

    def transcripts(self, name: str) -> TranscriptStatus: ...

    def configure_transcripts(
        self, name: str, *, enabled: bool, retention_s: float | None, reason: str
    ) -> TranscriptStatus: ...

    def purge_transcripts(self, name: str) -> PurgeResult: ...


@contextmanager
def open_rollouts() -> Iterator[RolloutBackend]:
    """The remote side when a server is configured, else the local workspace's."""
    from airlock.cli.backend import open_side

    local: Callable[[Workspace], RolloutBackend] = LocalRollouts
    remote: Callable[[Client], RolloutBackend] = RemoteRollouts
    with open_side(local, remote) as side:
        yield side


# -- local --------------------------------------------------------------------------------


class LocalRollouts:
    remote = False

    def __init__(self, ws: Workspace) -> None:
        from airlock.services.rollouts import Rollouts

        self.ws = ws
        self.rollouts = Rollouts(ws)

    def _actor(self) -> Actor:
        from airlock.cli.common import actor

        return actor(self.ws)

    def start(self, service: str, candidate: str, spec: str, *, reason: str) -> Transition:
        return self.rollouts.start(service, candidate, spec, actor=self._actor(), reason=reason)

    def plan(
        self,
        service: str,
        spec: str,
        *,
        candidate: str | None,
        lookback: float,
        overrides: Mapping[str, float],
    ) -> RolloutPlan:
        from datetime import timedelta

        from airlock.services.rollout_planning import RolloutPlanner

        if candidate is not None:
            self.rollouts.registry.resolve(candidate)
        return RolloutPlanner(self.ws, serving=self.rollouts.serving).plan(
            service, spec, lookback=timedelta(seconds=lookback), overrides=overrides
        )

    def status(self, service: str) -> RolloutView:
        return self.rollouts.status(service)

    def detail(self, rollout_id: int) -> tuple[RolloutView, list[RolloutRecord]]:
        return self.rollouts.get(rollout_id), self.rollouts.history(rollout_id)

    def recent(self, service: str | None, *, limit: int) -> list[RolloutView]:
        if service is not None:
            self.rollouts.serving.get(service)  # NotFound for an unknown service, as the API
        return self.rollouts.recent(service, limit=limit)

    def control(self, service: str, verb: Verb, *, reason: str) -> Transition:
        act = getattr(self.rollouts, verb)
        t: Transition = act(service, actor=self._actor(), reason=reason)
        return t

    def drills(self, service: str | None, *, limit: int) -> list[DrillView]:
        from airlock.services.drills import Drills

        return Drills(self.ws, rollouts=self.rollouts).history(service, limit=limit)

    def run_drill(
        self,
        service: str,
        faults: Sequence[str],
        *,
        spec: str | None,
        settings: DrillSettings,
        url: str | None,
        tick: float,
        sync: float,
        say: Say,
    ) -> DrillView:
        from airlock.cli.drill_cmd import run_here
        from airlock.core.drill import parse_faults

        return run_here(
            self.ws,
            self._actor(),
            service,
            parse_faults(faults),
            spec,
            settings,
            url,
            tick,
            sync,
            say,
        )

    def create_service(self, name: str, stable: str, *, reason: str) -> ServiceView:
        return self.rollouts.serving.create(name, stable, actor=self._actor(), reason=reason)

    def stable_alias(self, model: str) -> str | None:
        found = (a for a in self.rollouts.registry.aliases(model) if a.name == "stable")
        alias = next(found, None)
        return alias.version if alias is not None else None

    def service(self, name: str) -> ServiceView:
        return self.rollouts.serving.get(name)

    def service_quality(self, name: str) -> ServiceQuality | None:
        return self.rollouts.serving.quality(name)

    def set_service_quality(
        self, name: str, settings: QualitySettings | None, *, reason: str
    ) -> ServiceQuality | None:
        return self.rollouts.serving.set_quality(name, settings, actor=self._actor(), reason=reason)

    def plan_history(self, name: str) -> list[PlanChange]:
        return self.rollouts.serving.history(name)

    def set_opt_out(self, name: str, user: str, *, opted_out: bool) -> bool:
        return self.rollouts.serving.set_opt_out(
            name, user, actor=self._actor(), opted_out=opted_out
        )

    def transcripts(self, name: str) -> TranscriptStatus:
        from airlock.services.transcripts import Transcripts

        return Transcripts(self.ws).status(name)

    def configure_transcripts(
        self, name: str, *, enabled: bool, retention_s: float | None, reason: str
    ) -> TranscriptStatus:
        from airlock.services.transcripts import Transcripts

        return Transcripts(self.ws).configure(
            name, enabled=enabled, retention_s=retention_s, actor=self._actor(), reason=reason
        )

    def purge_transcripts(self, name: str) -> PurgeResult:
        from datetime import UTC

        from airlock.services.transcripts import Transcripts

        return Transcripts(self.ws).purge_expired(
            datetime.now(UTC), service=name, actor=self._actor()
        )


# -- remote --------------------------------------------------------------------------------


class RemoteRollouts:
    """The same calls through the REST API; the bodies parsed back into the same values."""

    remote = True

    def __init__(self, client: Client) -> None:
        self.client = client

    def start(self, service: str, candidate: str, spec: str, *, reason: str) -> Transition:
        out = self.client.start_rollout(service, candidate=candidate, spec=spec, reason=reason)
        return _transition(out)

    def plan(
        self,
        service: str,
        spec: str,
        *,
        candidate: str | None,
        lookback: float,
        overrides: Mapping[str, float],
    ) -> RolloutPlan:
        out = self.client.plan_rollout(
            service,
            spec=spec,
            candidate=candidate,
            lookback_seconds=lookback,
            requests_per_second=overrides.get("requests_per_second"),
            error_rate=overrides.get("error_rate"),
        )
        return _rollout_plan(out)

    def status(self, service: str) -> RolloutView:
        return _rollout(self.client.rollout(service))

    def detail(self, rollout_id: int) -> tuple[RolloutView, list[RolloutRecord]]:
        out = self.client.rollout_history(rollout_id)
        return _rollout(out), [_record(r) for r in out["history"]]

    def recent(self, service: str | None, *, limit: int) -> list[RolloutView]:
        return [_rollout(r) for r in self.client.rollouts(service, limit=limit)]

    def control(self, service: str, verb: Verb, *, reason: str) -> Transition:
        act = getattr(self.client, verb)
        return _transition(act(service, reason=reason))

    def drills(self, service: str | None, *, limit: int) -> list[DrillView]:
        return [_drill(d) for d in self.client.drills(service, limit=limit)]

    def run_drill(
        self,
        service: str,
        faults: Sequence[str],
        *,
        spec: str | None,
        settings: DrillSettings,
        url: str | None,
        tick: float,
        sync: float,
        say: Say,
    ) -> DrillView:
        """Start the drill in the server, follow its rollout, and return its stored result."""
        from airlock.core.rollout_spec import parse_spec
        from airlock.errors import InvalidInput, ServiceUnavailable

        if url is not None:
            raise InvalidInput(
                "--url drives a gateway from this machine; against a server the drill runs "
                "inside it, on its own gateway",
                hint=f"leave out --url (the server is {self.client.base_url})",
            )
        before = max((r["id"] for r in self.client.rollouts(service, limit=1)), default=0)
        body = parse_spec(spec).to_dict() if spec is not None else None
        self.client.start_drill(service, faults, rps=settings.rps, spec=body)
        say(f"started on {self.client.base_url}; following its rollout")
        started = time.monotonic()
        deadline = started + settings.timeout_seconds + START_SECONDS
        seen: int | None = None
        while time.monotonic() < deadline:
            time.sleep(settings.poll_seconds * 5)
            if seen is None:
                newest = self.client.rollouts(service, limit=1)
                if newest and newest[0]["id"] > before and newest[0]["kind"] == "drill":
                    seen = int(newest[0]["id"])
                    say(f"rollout #{seen} started: {newest[0]['strategy']}, {settings.rps:g} rps")
                elif time.monotonic() > started + START_SECONDS:
                    raise ServiceUnavailable(
                        f"the server started no drill rollout of {service} in "
                        f"{START_SECONDS:g} s: the drill failed before its rollout",
                        hint="the server's log says why (`airlock serve` logs drill failures)",
                    )
                continue
            for d in self.client.drills(service, limit=5):
                if d["rollout_id"] == seen:
                    return _drill(d)
        raise ServiceUnavailable(
            f"the drill of {service} did not finish on the server within "
            f"{settings.timeout_seconds:g} s",
            hint=f"see `airlock rollout status {service}` and the server's log",
        )

    def create_service(self, name: str, stable: str, *, reason: str) -> ServiceView:
        return service_value(self.client.create_service(name, stable=stable, reason=reason))

    def stable_alias(self, model: str) -> str | None:
        found = (a["version"] for a in self.client.aliases(model) if a["alias"] == "stable")
        return next(found, None)

    def service(self, name: str) -> ServiceView:
        return service_value(self.client.service(name))

    def service_quality(self, name: str) -> ServiceQuality | None:
        return _service_quality(self.client.service_quality(name))

    def set_service_quality(
        self, name: str, settings: QualitySettings | None, *, reason: str
    ) -> ServiceQuality | None:
        given = None if settings is None else settings.model_dump(mode="json", by_alias=True)
        return _service_quality(self.client.set_service_quality(name, given, reason=reason))

    def plan_history(self, name: str) -> list[PlanChange]:
        from airlock.core.traffic import PlanChange

        return [
            rebuild(PlanChange, c, service=name, plan=_plan(c["plan"]))
            for c in self.client.plan_history(name)
        ]

    def set_opt_out(self, name: str, user: str, *, opted_out: bool) -> bool:
        return bool(self.client.set_opt_out(name, user, opted_out=opted_out)["changed"])

    def transcripts(self, name: str) -> TranscriptStatus:
        return _transcripts(self.client.transcripts(name))

    def configure_transcripts(
        self, name: str, *, enabled: bool, retention_s: float | None, reason: str
    ) -> TranscriptStatus:
        out = self.client.configure_transcripts(
            name, enabled=enabled, retention_s=retention_s, reason=reason
        )
        return _transcripts(out)

    def purge_transcripts(self, name: str) -> PurgeResult:
        from airlock.services.transcripts import PurgeResult

        out = self.client.purge_transcripts(name)
        return rebuild(PurgeResult, out, services=tuple(out["services"]))


# -- values from the API's bodies ------------------------------------------------------------


def rebuild(cls: type[V], body: Mapping[str, Any], **given: Any) -> V:
    """The frozen value ``cls`` from the API body derived from it (``api/derive.py``): each
    field from the body (ISO text back to ``datetime``), unless ``given``."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in given:
            values[f.name] = given[f.name]
        elif f.name in body:
            value, hint = body[f.name], hints[f.name]
            if isinstance(value, str) and datetime in (hint, *typing.get_args(hint)):
                value = datetime.fromisoformat(value)
            values[f.name] = value
    return cls(**values)


def _rollout(d: Mapping[str, Any]) -> RolloutView:
    from airlock.core.rollout import RolloutState
    from airlock.core.rollout_spec import parse_spec
    from airlock.core.rollout_view import RolloutView
    from airlock.core.verdict import VerdictReport

    verdict = d.get("last_verdict")
    return rebuild(
        RolloutView,
        d,
        spec=parse_spec(d["spec"]),
        state=RolloutState.from_dict(d["state"]),
        last_verdict=VerdictReport.from_dict(verdict) if verdict else None,
    )


def _record(d: Mapping[str, Any]) -> RolloutRecord:
    from airlock.core.rollout_view import RolloutRecord
    from airlock.core.verdict import VerdictReport

    verdict = d.get("verdict")
    return rebuild(RolloutRecord, d, verdict=VerdictReport.from_dict(verdict) if verdict else None)


def _plan(d: Mapping[str, Any]) -> TrafficPlan:
    from airlock.core.traffic import TrafficPlan, WeightedRelease

    weights = tuple(WeightedRelease(c["release"], int(c["weight_bp"])) for c in d["candidates"])
    return rebuild(TrafficPlan, d, candidates=weights, shadows=tuple(d["shadows"]))


def _transition(d: Mapping[str, Any]) -> Transition:
    from airlock.services.rollout_views import Transition

    plan = d.get("plan")
    return rebuild(
        Transition, d, rollout=_rollout(d["rollout"]), plan=_plan(plan) if plan else None
    )


def _service_quality(d: Mapping[str, Any]) -> ServiceQuality | None:
    from airlock.core.quality import ServiceQuality, parse_quality

    if d["quality"] is None:
        return None
    return rebuild(ServiceQuality, d, settings=parse_quality(d["quality"]))


def service_value(d: Mapping[str, Any]) -> ServiceView:
    """A service as the API body carries it, rebuilt as the service layer's value."""
    from airlock.services.serving import ServiceView

    return rebuild(ServiceView, d, plan=_plan(d["plan"]), opt_outs=tuple(d["opt_outs"]))


def _drill(d: Mapping[str, Any]) -> DrillView:
    from airlock.services.drills import DrillView

    return rebuild(DrillView, d)


def _transcripts(d: Mapping[str, Any]) -> TranscriptStatus:
    from airlock.services.transcripts import TranscriptStatus

    return rebuild(TranscriptStatus, d)


def _rollout_plan(d: Mapping[str, Any]) -> RolloutPlan:
    import math

    from airlock.core.planning import Baseline, MetricPlan, StepPlan
    from airlock.services.rollout_planning import RolloutPlan

    def bounded(x: float | None) -> float:
        return math.inf if x is None else float(x)

    steps = tuple(
        StepPlan(
            index=int(s["index"]),
            weight_bp=int(s["weight_bp"]),
            bake_seconds=float(s["bake_seconds"]),
            candidate_requests=float(s["candidate_requests"]),
            metrics=tuple(
                MetricPlan(
                    metric=m["metric"],
                    detectable=bounded(m["detectable"]),
                    target=bounded(m["target"]),
                    seconds_to_target=bounded(m["seconds_to_target"]),
                    unit=m["unit"],
                )
                for m in s["metrics"]
            ),
            warnings=tuple(s["warnings"]),
        )
        for s in d["steps"]
    )
    return RolloutPlan(d["service"], d["stable"], Baseline(**d["baseline"]), steps)


__all__ = ["LocalRollouts", "RemoteRollouts", "RolloutBackend", "open_rollouts"]
