"""What every service serves right now and how healthy it is: the dashboard's overview figures.

``Health(ws).overview()`` reads each service's traffic plan and the telemetry its
gateways flushed in the last five minutes, in one read, and returns per service
and per release serving it (stable, candidate or shadow, with its weight):
requests per second, error rate and p95 latency. ``Health(ws).placements(ref)``
says where one release is serving. Both hand out frozen values.

Requests per second divide by the time the figures cover: the span, or less when
the first record in it is younger (a service that started a minute ago shows its
real rate, not a fifth of it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from airlock.catalog import serving as sql
from airlock.core.telemetry import TelemetryRecord
from airlock.core.traffic import BUCKETS, TrafficPlan
from airlock.core.window import latency_quantile
from airlock.errors import InvalidInput
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace

HEALTH_SPAN = timedelta(minutes=5)
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
    records: list[TelemetryRecord], *, seconds: float
) -> tuple[int, int, float, float | None, float | None]:
    requests = sum(r.requests for r in records)
    errors = sum(r.errors for r in records)
    histogram: tuple[int, ...] = ()
    for r in records:
        h = r.latency_histogram
        histogram = tuple(a + b for a, b in zip(histogram, h, strict=True)) if histogram else h
    p95 = latency_quantile(histogram, 0.95) if histogram and any(histogram) else None
    rate = errors / requests if requests else None
    return requests, errors, requests / seconds if seconds > 0 else 0.0, rate, p95


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
        with self.ws.db.read() as conn:
            for stored in sql.all_services(conn):
                records = sql.telemetry(conn, stored.name, since=since, until=until, detail=False)
                out.append(_service_health(stored.plan(), records, since, until))
        return sorted(out, key=lambda s: s.service)

    def placements(self, ref: str) -> list[Placement]:
        """Where a release serves: each service whose plan names it, and as what."""
        registry = Registry(self.ws)
        with self.ws.db.read() as conn:
            row = registry.resolve_in(conn, ref)
            plans = [s.plan() for s in sql.all_services(conn)]
        return [p for plan in plans for p in placements_of(plan) if p.release == row.ref]


def _service_health(
    plan: TrafficPlan, records: list[TelemetryRecord], since: datetime, until: datetime
) -> ServiceHealth:
    records = [r for r in records if since <= r.window_start < until]
    first = min((r.window_start for r in records), default=until)
    seconds = max((until - max(since, first)).total_seconds(), 1.0)
    releases = []
    for place in placements_of(plan):
        traffic = "shadow" if place.role == "shadow" else "live"
        mine = [r for r in records if r.release == place.release and r.traffic == traffic]
        requests, errors, rps, rate, p95 = _figures(mine, seconds=seconds)
        releases.append(ReleaseHealth(place, requests, errors, rps, rate, p95))
    live = [r for r in records if r.traffic == "live"]
    _, _, rps, rate, p95 = _figures(live, seconds=seconds)
    return ServiceHealth(plan.service, since, until, tuple(releases), rps, rate, p95)


__all__ = [
    "HEALTH_SPAN",
    "Health",
    "Placement",
    "ReleaseHealth",
    "ServiceHealth",
    "placements_of",
]
