"""REST routes over services: their traffic plans, plan history and telemetry for charts."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query

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
from airlock.core.series import ReleaseSeries
from airlock.core.traffic import BUCKETS, TrafficPlan
from airlock.services.serving import ServiceView, Serving
from airlock.services.timeline import Timeline, window
from airlock.services.workspace import Workspace

router = APIRouter(prefix="/api/v1", tags=["services"])


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
def list_services(ws: WorkspaceDep, _: ActorDep) -> list[ServiceOut]:
    """Every service with its stable release, traffic plan and the rollout in flight."""
    return [service_out(ws, v) for v in Serving(ws).all()]


@router.get("/services/{name}", response_model=ServiceOut)
def show_service(name: str, ws: WorkspaceDep, _: ActorDep) -> ServiceOut:
    """One service: traffic split, stable release, opt-outs and the rollout in flight."""
    return service_out(ws, Serving(ws).get(name))


@router.get("/services/{name}/plans", response_model=list[PlanChangeOut])
def plan_history(name: str, ws: WorkspaceDep, _: ActorDep) -> list[PlanChangeOut]:
    """Every traffic plan the service had, oldest first, with who changed it and why."""
    return [PlanChangeOut.of(c, plan=plan_out(c.plan)) for c in Serving(ws).history(name)]


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
