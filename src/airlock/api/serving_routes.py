"""REST routes over services: create, traffic plans, plan history, opt-outs, transcript
settings, default quality settings and telemetry for charts. Every change goes through a
service, which checks the caller's role and writes the audit event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from airlock.api.bodies import (
    PlanChangeOut,
    PlanOut,
    ReleaseTelemetryOut,
    SeriesPointOut,
    ServiceOut,
    TelemetryOut,
    WeightOut,
)
from airlock.api.deps import ActorDep, WorkspaceDep
from airlock.api.derive import From, Out
from airlock.api.paging import DEFAULT, CursorQuery, LimitQuery, link_next
from airlock.core.quality import ServiceQuality
from airlock.core.series import ReleaseSeries
from airlock.core.traffic import BUCKETS, TrafficPlan
from airlock.services.serving import ServiceView, Serving
from airlock.services.timeline import Timeline, window
from airlock.services.transcripts import PurgeResult, Transcripts, TranscriptStatus
from airlock.services.workspace import Workspace

router = APIRouter(prefix="/api/v1", tags=["services"])


class _In(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ServiceIn(_In):
    name: str = Field(min_length=1, max_length=128, description="what clients send as `model`")
    stable: str = Field(min_length=1, max_length=300, description="the release serving everyone")
    reason: str = Field(default="", max_length=4000)


class OptOutIn(_In):
    user: str = Field(description="the user key (a request's `user`)")
    opted_out: bool = Field(default=True, description="false lets the user into rollouts again")


class OptOutOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    service: str
    user: str
    opted_out: bool
    changed: bool = Field(description="false: the user was already so")


class TranscriptsIn(_In):
    enabled: bool
    retention_s: float | None = Field(
        default=None, description="seconds a transcript is kept (none: keep the current one)"
    )
    reason: str = Field(default="", max_length=4000)


class TranscriptsOut(Out):
    __value__ = From(TranscriptStatus)
    next_expiry: datetime | None = Field(description="when the oldest stored one is deleted")
    all_gone_at: datetime | None = Field(description="when the newest stored one is deleted")


class PurgeOut(Out):
    __value__ = From(PurgeResult)


def plan_out(plan: TrafficPlan) -> PlanOut:
    return PlanOut.of(
        plan,
        candidates=[WeightOut.of(c, weight_pct=c.weight * 100 / BUCKETS) for c in plan.candidates],
        stable_pct=plan.stable_weight() * 100 / BUCKETS,
    )


def service_out(ws: Workspace, view: ServiceView) -> ServiceOut:
    from airlock.api.rollout_routes import rollout_in_flight

    return ServiceOut.of(
        view,
        stable=view.plan.stable,
        plan=plan_out(view.plan),
        rollout=rollout_in_flight(ws, view.name),
    )


@router.get("/services", response_model=list[ServiceOut])
def list_services(
    request: Request,
    response: Response,
    ws: WorkspaceDep,
    _: ActorDep,
    limit: LimitQuery = DEFAULT,
    cursor: CursorQuery = None,
) -> list[ServiceOut]:
    """Every service with its stable release, traffic plan and the rollout in flight, by
    name, a page at a time (the next page: the ``Link``/``X-Next-Cursor`` headers)."""
    page = Serving(ws).page(limit=limit, cursor=cursor)
    link_next(request, response, page.next_cursor)
    return [service_out(ws, v) for v in page.items]


@router.post("/services", response_model=ServiceOut, status_code=201)
def create_service(body: ServiceIn, ws: WorkspaceDep, who: ActorDep) -> ServiceOut:
    """Create a service serving one stable release to everyone (operators, admins)."""
    view = Serving(ws).create(body.name, body.stable, actor=who, reason=body.reason)
    return service_out(ws, view)


@router.get("/services/{name}", response_model=ServiceOut)
def show_service(name: str, ws: WorkspaceDep, _: ActorDep) -> ServiceOut:
    """One service: traffic split, stable release, opt-outs and the rollout in flight."""
    return service_out(ws, Serving(ws).get(name))


@router.get("/services/{name}/plans", response_model=list[PlanChangeOut])
def plan_history(
    name: str,
    request: Request,
    response: Response,
    ws: WorkspaceDep,
    _: ActorDep,
    limit: LimitQuery = DEFAULT,
    cursor: CursorQuery = None,
) -> list[PlanChangeOut]:
    """Every traffic plan the service had, oldest first, with who changed it and why;
    a page at a time (the next page: the ``Link``/``X-Next-Cursor`` headers)."""
    page = Serving(ws).history_page(name, limit=limit, cursor=cursor)
    link_next(request, response, page.next_cursor)
    return [PlanChangeOut.of(c, plan=plan_out(c.plan)) for c in page.items]


@router.post("/services/{name}/opt-outs", response_model=OptOutOut)
def set_opt_out(name: str, body: OptOutIn, ws: WorkspaceDep, who: ActorDep) -> OptOutOut:
    """Keep a user on the stable release during rollouts, or let them back in (operators,
    admins)."""
    changed = Serving(ws).set_opt_out(name, body.user, actor=who, opted_out=body.opted_out)
    return OptOutOut(service=name, user=body.user, opted_out=body.opted_out, changed=changed)


@router.get("/services/{name}/transcripts", response_model=TranscriptsOut)
def transcripts(name: str, ws: WorkspaceDep, _: ActorDep) -> TranscriptsOut:
    """Whether the service keeps prompts and answers, for how long, and how many it holds."""
    return TranscriptsOut.of(Transcripts(ws).status(name))


@router.put("/services/{name}/transcripts", response_model=TranscriptsOut)
def configure_transcripts(
    name: str, body: TranscriptsIn, ws: WorkspaceDep, who: ActorDep
) -> TranscriptsOut:
    """Keep (or stop keeping) the service's PII-redacted transcripts (operators, admins)."""
    status = Transcripts(ws).configure(
        name, enabled=body.enabled, retention_s=body.retention_s, actor=who, reason=body.reason
    )
    return TranscriptsOut.of(status)


@router.post("/services/{name}/transcripts/purge", response_model=PurgeOut)
def purge_transcripts(name: str, ws: WorkspaceDep, who: ActorDep) -> PurgeOut:
    """Delete the service's transcripts older than its retention now (operators, admins)."""
    from datetime import UTC

    return PurgeOut.of(Transcripts(ws).purge_expired(datetime.now(UTC), service=name, actor=who))


class QualityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quality: dict[str, Any] | None = Field(
        description="the quality settings (sample, scorers, judge; see docs/quality.md), "
        "or null to clear them"
    )
    reason: str = Field(default="", max_length=2000, description="kept in the audit log")


class QualityOut(BaseModel):
    service: str
    quality: dict[str, Any] | None = Field(
        description="what a rollout of this service scores when its spec has no quality section"
    )
    updated_at: datetime | None
    updated_by: str | None


def _quality_out(name: str, value: ServiceQuality | None) -> QualityOut:
    if value is None:
        return QualityOut(service=name, quality=None, updated_at=None, updated_by=None)
    return QualityOut(
        service=name,
        quality=value.settings.model_dump(mode="json", by_alias=True),
        updated_at=value.updated_at,
        updated_by=value.updated_by,
    )


@router.get("/services/{name}/quality", response_model=QualityOut)
def service_quality(name: str, ws: WorkspaceDep, _: ActorDep) -> QualityOut:
    """The service's default quality settings (null: a rollout scores only what its spec
    names)."""
    return _quality_out(name, Serving(ws).quality(name))


@router.put("/services/{name}/quality", response_model=QualityOut)
def set_service_quality(name: str, body: QualityIn, ws: WorkspaceDep, who: ActorDep) -> QualityOut:
    """Set (or, with ``quality: null``, clear) the quality settings a rollout of this service
    uses when its spec has none of its own (operator or admin; audited as ``service.quality``).
    A wrong field is refused with 400 naming it."""
    stored = Serving(ws).set_quality(name, body.quality, actor=who, reason=body.reason)
    return _quality_out(name, stored)


def _series_out(s: ReleaseSeries) -> ReleaseTelemetryOut:
    return ReleaseTelemetryOut.of(
        s,
        totals=SeriesPointOut.model_validate(s.totals.to_dict()),
        points=[SeriesPointOut.model_validate(p.to_dict()) for p in s.points],
    )


_SINCE = Query(None, description="ISO time (default: ten minutes ago)")
_UNTIL = Query(None, description="ISO time (default: now)")
_STEP = Query(None, ge=0.5, le=86_400, description="bucket width in seconds (default 5)")


@router.get("/services/{name}/telemetry", response_model=TelemetryOut)
def service_telemetry(
    name: str,
    ws: WorkspaceDep,
    _: ActorDep,
    since: datetime | None = _SINCE,
    until: datetime | None = _UNTIL,
    step: float | None = _STEP,
    release: str | None = Query(None, description="only this release"),
) -> TelemetryOut:
    """Per release: requests, error and guardrail-flag rates, latency p50/p95/p99 and
    mean feedback, bucketed over time (for charts), plus totals over the window."""
    w = window(since, until, step)
    series = Timeline(ws).series(name, w, release=release)
    return TelemetryOut(
        service=name,
        since=w.since,
        until=w.until,
        step_seconds=w.step.total_seconds(),
        releases=[_series_out(s) for s in series],
    )


@router.get("/releases/{ref}/telemetry", response_model=list[TelemetryOut])
def release_telemetry(
    ref: str,
    ws: WorkspaceDep,
    _: ActorDep,
    since: datetime | None = _SINCE,
    until: datetime | None = _UNTIL,
    step: float | None = _STEP,
) -> list[TelemetryOut]:
    """One release's live and shadow traffic in every service that served it."""
    w = window(since, until, step)
    return [
        TelemetryOut(
            service=service,
            since=w.since,
            until=w.until,
            step_seconds=w.step.total_seconds(),
            releases=[_series_out(s) for s in series],
        )
        for service, series in Timeline(ws).release_series(ref, w).items()
    ]
