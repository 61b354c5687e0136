"""What every service serves right now and how healthy it is: the dashboard's overview figures.

``Health(ws).overview()`` reads each service's traffic plan and the telemetry its
gateways flushed in the last five minutes, in one read, and returns per service
and per release serving it (stable, candidate or shadow, with its weight):
requests per second, error rate and p95 latency. ``Health(ws).placements(ref)``
says where one release is serving. Both hand out frozen values.

The telemetry is added up inside the database (:mod:`airlock.catalog.telemetry_steps`).
Requests per second divide by the time the figures cover: the span, or less when
the first record in it is younger (to 5 s) (a service that started a minute ago shows its
real rate, not a fifth of it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from airlock.catalog import serving as sql
from airlock.catalog import telemetry_steps
from airlock.core.series import ReleaseSeries, SeriesPoint
from airlock.core.traffic import BUCKETS, TrafficPlan
from airlock.errors import InvalidInput
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace

HEALTH_SPAN = timedelta(minutes=5)
STEPS = 60  # the span is added up in the catalog in this many steps (to see when data starts)
Role = Literal["stable", "candidate", "shadow"]


@dataclass(frozen=True, slots=True)
class Placement:
    """One release's place in one service's plan."""

    service: str
    release: str
    role: Role
    weight_pct: float  # share of user traffic; a shadow gets copies, so 0
    generation: int


@dataclass(frozen=True, slots=True)
class ReleaseHealth:
    """One release's figures in one service over the span (``None``: no requests)."""

    placement: Placement
    requests: int
    errors: int
    requests_per_s: float
    error_rate: float | None
    p95_ms: float | None


@dataclass(frozen=True, slots=True)
class ServiceHealth:
    service: str
    since: datetime
    until: datetime
    releases: tuple[ReleaseHealth, ...]
    requests_per_s: float
    error_rate: float | None
    p95_ms: float | None


def placements_of(plan: TrafficPlan) -> list[Placement]:
    """Stable first, then candidates by weight as listed, then shadows."""
    gen = plan.generation
    out = [Placement(plan.service, plan.stable, "stable", _pct(plan.stable_weight()), gen)]
    out += [
        Placement(plan.service, c.release, "candidate", _pct(c.weight), gen)
        for c in plan.candidates
    ]
    out += [Placement(plan.service, s, "shadow", 0.0, gen) for s in plan.shadows]
    return out


def _pct(bp: int) -> float:
    return bp * 100 / BUCKETS


def _figures(
    s: SeriesPoint | None, *, seconds: float
) -> tuple[int, int, float, float | None, float | None]:
    if s is None or not s.requests:
        return 0, 0, 0.0, None, None
    return s.requests, s.errors, s.requests / seconds, s.error_rate, s.quantile(0.95)


class Health:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

    def overview(
        self, *, now: datetime | None = None, span: timedelta = HEALTH_SPAN
    ) -> list[ServiceHealth]:
        """Every service's figures over the last ``span`` (five minutes), by name."""
        if span <= timedelta(0):
            raise InvalidInput("the span of health figures must be positive")
        until = now or datetime.now(UTC)
        since = until - span
        out = []
        step = max(span / STEPS, timedelta(seconds=1))
        with self.ws.db.read() as conn:
            for stored in sql.all_services(conn):
                series = telemetry_steps.steps(
                    conn, stored.name, since=since, until=until, step=step
                )
                out.append(_service_health(stored.plan(), series, since, until))
        return sorted(out, key=lambda s: s.service)

    def placements(self, ref: str) -> list[Placement]:
        """Where a release serves: each service whose plan names it, and as what."""
        registry = Registry(self.ws)
        with self.ws.db.read() as conn:
            row = registry.resolve_in(conn, ref)
            plans = [s.plan() for s in sql.all_services(conn)]
        return [p for plan in plans for p in placements_of(plan) if p.release == row.ref]


def _service_health(
    plan: TrafficPlan, series: list[ReleaseSeries], since: datetime, until: datetime
) -> ServiceHealth:
    busy = [p.t for s in series for p in s.points if p.requests]
    first = min(busy, default=until)
    seconds = max((until - max(since, first)).total_seconds(), 1.0)
    releases = []
    for place in placements_of(plan):
        traffic = "shadow" if place.role == "shadow" else "live"
        mine = next(
            (s for s in series if s.release == place.release and s.traffic == traffic), None
        )
        requests, errors, rps, rate, p95 = _figures(mine.totals if mine else None, seconds=seconds)
        releases.append(ReleaseHealth(place, requests, errors, rps, rate, p95))
    live = SeriesPoint(since)
    for s in series:
        if s.traffic == "live":
            live = _plus(live, s.totals)
    _, _, rps, rate, p95 = _figures(live, seconds=seconds)
    return ServiceHealth(plan.service, since, until, tuple(releases), rps, rate, p95)


def _plus(a: SeriesPoint, b: SeriesPoint) -> SeriesPoint:
    ha, hb = a.latency_histogram, b.latency_histogram
    return SeriesPoint(
        a.t,
        a.requests + b.requests,
        a.errors + b.errors,
        latency_histogram=tuple(x + y for x, y in zip(ha, hb, strict=True))
        if ha and hb
        else ha or hb,
    )


__all__ = [
    "HEALTH_SPAN",
    "Health",
    "Placement",
    "ReleaseHealth",
    "ServiceHealth",
    "placements_of",
]
