"""SQL for services, their traffic plans and opt-outs, telemetry and shadow samples."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, insert, null, or_, select, update

from airlock.catalog.notify import notify_plan
from airlock.catalog.schema import (
    release_telemetry,
    service_opt_outs,
    service_plans,
    services,
    shadow_samples,
)
from airlock.core.digest import canonical_json
from airlock.core.telemetry import ShadowSample, TelemetryRecord, parse_detail
from airlock.core.traffic import PlanChange, TrafficPlan


@dataclass(frozen=True, slots=True)
class StoredService:
    id: int
    name: str
    stable_release: str
    plan_json: str
    generation: int
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str

    def plan(self) -> TrafficPlan:
        return TrafficPlan.from_dict(json.loads(self.plan_json))


def plan_json(plan: TrafficPlan) -> str:
    return canonical_json(plan.to_dict()).decode("utf-8")


_COLUMNS = (
    services.c.id,
    services.c.name,
    services.c.stable_release,
    services.c.plan,
    services.c.generation,
    services.c.created_at,
    services.c.created_by,
    services.c.updated_at,
    services.c.updated_by,
)


def get(conn: Connection, name: str) -> StoredService | None:
    r = conn.execute(select(*_COLUMNS).where(services.c.name == name)).first()
    return StoredService(*r) if r else None


def all_services(
    conn: Connection, *, after: str | None = None, limit: int | None = None
) -> list[StoredService]:
    """Services by name, after the name ``after``, at most ``limit`` (the unique index on the
    name serves the order)."""
    q = select(*_COLUMNS).order_by(services.c.name).limit(limit)
    if after is not None:
        q = q.where(services.c.name > after)
    rows = conn.execute(q).all()
    return [StoredService(*r) for r in rows]


def generations(conn: Connection) -> dict[str, int]:
    """Each service's plan generation: the cheap query a gateway polls."""
    rows = conn.execute(select(services.c.name, services.c.generation)).all()
    return {name: int(gen) for name, gen in rows}


def insert_service(conn: Connection, plan: TrafficPlan, *, actor: str, at: datetime) -> int:
    return int(
        conn.execute(
            insert(services)
            .values(
                name=plan.service,
                stable_release=plan.stable,
                plan=plan_json(plan),
                generation=plan.generation,
                created_at=at,
                created_by=actor,
                updated_at=at,
                updated_by=actor,
            )
            .returning(services.c.id)
        ).scalar_one()
    )


def swap_plan(
    conn: Connection,
    service_id: int,
    plan: TrafficPlan,
    *,
    expected_generation: int,
    actor: str,
    at: datetime,
) -> bool:
    """Compare-and-swap: store ``plan`` only if the stored generation is still the expected one."""
    result = conn.execute(
        update(services)
        .where(services.c.id == service_id, services.c.generation == expected_generation)
        .values(
            stable_release=plan.stable,
            plan=plan_json(plan),
            generation=plan.generation,
            updated_at=at,
            updated_by=actor,
        )
    )
    return result.rowcount == 1


def record_plan(
    conn: Connection,
    service_id: int,
    plan: TrafficPlan,
    *,
    actor: str,
    reason: str,
    at: datetime,
    event_seq: int | None,
) -> None:
    conn.execute(
        insert(service_plans).values(
            service_id=service_id,
            generation=plan.generation,
            plan=plan_json(plan),
            actor=actor,
            reason=reason,
            at=at,
            event_seq=event_seq,
        )
    )
    notify_plan(conn, plan)


def plan_history(
    conn: Connection,
    service_id: int,
    name: str,
    *,
    after: int | None = None,
    limit: int | None = None,
) -> list[PlanChange]:
    """The service's plans oldest first, after the generation ``after``, at most ``limit``
    (the primary key, service_id then generation, serves the order)."""
    q = (
        select(
            service_plans.c.generation,
            service_plans.c.plan,
            service_plans.c.actor,
            service_plans.c.reason,
            service_plans.c.at,
            service_plans.c.event_seq,
        )
        .where(service_plans.c.service_id == service_id)
        .order_by(service_plans.c.generation)
        .limit(limit)
    )
    if after is not None:
        q = q.where(service_plans.c.generation > after)
    rows = conn.execute(q).all()
    return [
        PlanChange(name, int(g), TrafficPlan.from_dict(json.loads(p)), a, r, at, seq)
        for g, p, a, r, at, seq in rows
    ]


def opt_outs(
    conn: Connection, service_id: int | None = None, *, of: Sequence[int] | None = None
) -> dict[int, list[str]]:
    """The opted-out users of one service, of the services ``of``, or of all."""
    q = select(service_opt_outs.c.service_id, service_opt_outs.c.user_key).order_by(
        service_opt_outs.c.user_key
    )
    if service_id is not None:
        q = q.where(service_opt_outs.c.service_id == service_id)
    if of is not None:
        q = q.where(service_opt_outs.c.service_id.in_(list(of)))
    out: dict[int, list[str]] = {}
    for sid, user in conn.execute(q).all():
        out.setdefault(int(sid), []).append(user)
    return out


def set_opt_out(
    conn: Connection, service_id: int, user: str, *, opted_out: bool, actor: str, at: datetime
) -> bool:
    """Add or remove one user; True when that changed anything."""
    exists = conn.execute(
        select(service_opt_outs.c.user_key).where(
            service_opt_outs.c.service_id == service_id, service_opt_outs.c.user_key == user
        )
    ).first()
    if opted_out and exists is None:
        conn.execute(
            insert(service_opt_outs).values(
                service_id=service_id, user_key=user, actor=actor, at=at
            )
        )
        return True
    if not opted_out and exists is not None:
        conn.execute(
            delete(service_opt_outs).where(
                service_opt_outs.c.service_id == service_id, service_opt_outs.c.user_key == user
            )
        )
        return True
    return False


# -- telemetry ------------------------------------------------------------------------


def insert_telemetry(conn: Connection, records: Sequence[TelemetryRecord], *, gateway: str) -> None:
    if not records:
        return
    conn.execute(
        insert(release_telemetry),
        [
            {
                "service": r.service,
                "release": r.release,
                "traffic": r.traffic,
                "gateway": gateway,
                "window_start": r.window_start,
                "window_end": r.window_end,
                "requests": r.requests,
                "errors": r.errors,
                "rejected": r.rejected,
                "errors_by_kind": json.dumps(dict(r.errors_by_kind), sort_keys=True),
                "guardrail_flags": r.guardrail_flags,
                "fallbacks": r.fallbacks,
                "shadow_drops": r.shadow_drops,
                "tokens_in": r.tokens_in,
                "tokens_out": r.tokens_out,
                "feedback_sum": r.feedback_sum,
                "feedback_count": r.feedback_count,
                "latency_histogram": json.dumps(list(r.latency_histogram)),
                "detail": r.detail_json(),
            }
            for r in records
        ],
    )


def _record_columns() -> tuple[Any, ...]:
    """The columns :func:`_record` reads (``detail`` aside)."""
    t = release_telemetry.c
    return (
        t.service,
        t.release,
        t.traffic,
        t.window_start,
        t.window_end,
        t.requests,
        t.errors,
        t.rejected,
        t.errors_by_kind,
        t.guardrail_flags,
        t.fallbacks,
        t.shadow_drops,
        t.tokens_in,
        t.tokens_out,
        t.feedback_sum,
        t.feedback_count,
        t.latency_histogram,
    )


def telemetry(
    conn: Connection,
    service: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    releases: Iterable[str] | None = None,
    detail: bool = True,
) -> list[TelemetryRecord]:
    """Flushed records, oldest first; ``detail=False`` leaves out the per-cluster detail
    (clusters, cells, custom metrics), for readers of totals only such as charts."""
    t = release_telemetry.c
    q = select(*_record_columns(), t.detail if detail else null().label("detail")).where(
        t.service == service
    )
    if since is not None:
        q = q.where(t.window_end > since)
    if until is not None:
        q = q.where(t.window_start < until)
    if releases is not None:
        q = q.where(t.release.in_(list(releases)))
    return [_record(dict(row._mapping)) for row in conn.execute(q.order_by(t.window_start, t.id))]


def telemetry_page(
    conn: Connection,
    service: str,
    *,
    before: datetime,
    after: tuple[datetime, int] | None,
    limit: int,
) -> list[tuple[int, str, TelemetryRecord]]:
    """Up to ``limit`` rows (id, gateway, record) of a service that ended by ``before``,
    by (window_start, id) after ``after``: what the retention walks, a page at a time."""
    t = release_telemetry.c
    q = select(
        t.id,
        t.gateway,
        *_record_columns(),
        t.detail,
    ).where(t.service == service, t.window_end <= before)
    if after is not None:
        start, rid = after
        q = q.where(or_(t.window_start > start, and_(t.window_start == start, t.id > rid)))
    q = q.order_by(t.window_start, t.id).limit(limit)
    out = []
    for row in conn.execute(q).all():
        fields: dict[str, Any] = dict(row._mapping)
        rid, gateway = int(fields.pop("id")), str(fields.pop("gateway"))
        out.append((rid, gateway, _record(fields)))
    return out


def _record(fields: dict[str, Any]) -> TelemetryRecord:
    """A stored row as a record; detail None (or not read): no clusters, no cells."""
    fields["errors_by_kind"] = json.loads(fields["errors_by_kind"])
    fields["latency_histogram"] = tuple(json.loads(fields["latency_histogram"]))
    extra = parse_detail(fields.pop("detail"))
    fields.update(
        custom=extra.custom,
        clusters=extra.clusters,
        latency_cells=extra.latency_cells,
        ttft_cells=extra.ttft_cells,
    )
    return TelemetryRecord(**fields)


def replace_telemetry(
    conn: Connection, ids: Sequence[int], merged: Sequence[tuple[str, TelemetryRecord]]
) -> None:
    """Delete rows ``ids`` and write ``merged`` (gateway, record) in their place (the caller's
    transaction: readers see either the raw rows or the roll-up, never both)."""
    for i in range(0, len(ids), 500):
        conn.execute(delete(release_telemetry).where(release_telemetry.c.id.in_(ids[i : i + 500])))
    for gateway, rec in merged:
        insert_telemetry(conn, [rec], gateway=gateway)


def services_with_telemetry(conn: Connection) -> list[str]:
    return [str(r[0]) for r in conn.execute(select(release_telemetry.c.service).distinct()).all()]


def insert_shadow_samples(conn: Connection, samples: Sequence[ShadowSample]) -> None:
    if not samples:
        return
    conn.execute(
        insert(shadow_samples),
        [
            {
                "service": s.service,
                "release": s.release,
                "primary_release": s.primary_release,
                "request_id": s.request_id,
                "at": s.at,
                "ok": s.ok,
                "latency_ms": s.latency_ms,
                "output": s.output,
                "primary_output": s.primary_output,
                "error_kind": s.error_kind,
            }
            for s in samples
        ],
    )


def recent_shadow_samples(
    conn: Connection, service: str, *, limit: int = 100
) -> list[ShadowSample]:
    c = shadow_samples.c
    rows = conn.execute(
        select(
            c.service,
            c.release,
            c.primary_release,
            c.request_id,
            c.at,
            c.ok,
            c.latency_ms,
            c.output,
            c.primary_output,
            c.error_kind,
        )
        .where(c.service == service)
        .order_by(c.id.desc())
        .limit(limit)
    ).all()
    return [
        ShadowSample(
            service=r.service,
            release=r.release,
            primary_release=r.primary_release,
            request_id=r.request_id,
            at=r.at,
            ok=bool(r.ok),
            latency_ms=float(r.latency_ms),
            output=r.output,
            primary_output=r.primary_output,
            error_kind=r.error_kind,
        )
        for r in rows
    ]


__all__ = [
    "PlanChange",
    "StoredService",
    "all_services",
    "generations",
    "get",
    "insert_service",
    "insert_shadow_samples",
    "insert_telemetry",
    "opt_outs",
    "plan_history",
    "plan_json",
    "recent_shadow_samples",
    "record_plan",
    "set_opt_out",
    "swap_plan",
    "telemetry",
]
