"""SQL for rollouts (state, history, verdicts), the controller's leader lease, and drills."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from airlock.catalog.schema import (
    controller_leases,
    drills,
    release_telemetry,
    rollout_history,
    rollouts,
)
from airlock.core.analysis import ReleaseWindow
from airlock.core.rollout import RolloutState
from airlock.core.rollout_spec import parse_spec
from airlock.core.rollout_view import Kind, RolloutRecord, RolloutView
from airlock.core.telemetry import parse_detail
from airlock.core.verdict import VerdictReport


@dataclass(frozen=True, slots=True)
class StoredDrill:
    id: int
    service: str
    rollout_id: int | None
    release: str
    stable: str
    fault: str
    outcome: str
    started_at: datetime
    finished_at: datetime
    detect_seconds: float | None
    revert_seconds: float | None
    requests: int
    faulty_requests: int
    faulted_requests: int
    result: str
    actor: str
    event_seq: int | None


_R = rollouts.c
_COLUMNS = (
    _R.id,
    _R.service,
    _R.active_service,
    _R.kind,
    _R.candidate,
    _R.stable,
    _R.strategy,
    _R.spec,
    _R.phase,
    _R.step_index,
    _R.state,
    _R.version,
    _R.last_verdict,
    _R.verdict_at,
    _R.reason,
    _R.created_at,
    _R.created_by,
    _R.updated_at,
    _R.finished_at,
)


def _rollout(r: Any) -> RolloutView:
    """A rollout row as the value the services hand out (spec, state and verdict parsed)."""
    m = r._mapping
    kind: Kind = "drill" if m["kind"] == "drill" else "rollout"
    return RolloutView(
        id=m["id"],
        service=m["service"],
        kind=kind,
        candidate=m["candidate"],
        stable=m["stable"],
        spec=parse_spec(json.loads(m["spec"])),
        state=RolloutState.from_dict(json.loads(m["state"])),
        version=m["version"],
        reason=m["reason"],
        created_at=m["created_at"],
        created_by=m["created_by"],
        updated_at=m["updated_at"],
        finished_at=m["finished_at"],
        last_verdict=VerdictReport.from_json(m["last_verdict"]),
        verdict_at=m["verdict_at"],
    )


# -- rollouts -----------------------------------------------------------------------------


def insert_rollout(
    conn: Connection,
    *,
    service: str,
    kind: str,
    candidate: str,
    stable: str,
    strategy: str,
    spec: str,
    phase: str,
    step_index: int,
    state: str,
    reason: str,
    actor: str,
    at: datetime,
) -> int:
    """A new live rollout; the unique ``active_service`` refuses a second one per service."""
    return int(
        conn.execute(
            insert(rollouts)
            .values(
                service=service,
                active_service=service,
                kind=kind,
                candidate=candidate,
                stable=stable,
                strategy=strategy,
                spec=spec,
                phase=phase,
                step_index=step_index,
                state=state,
                version=1,
                reason=reason,
                created_at=at,
                created_by=actor,
                updated_at=at,
            )
            .returning(_R.id)
        ).scalar_one()
    )


def get(conn: Connection, rollout_id: int) -> RolloutView | None:
    r = conn.execute(select(*_COLUMNS).where(_R.id == rollout_id)).first()
    return _rollout(r) if r else None


def newest_before(
    conn: Connection, *, service: str | None, before_id: int | None, limit: int
) -> list[RolloutView]:
    """Up to ``limit`` rollouts newest first with ids below ``before_id`` (a keyset page)."""
    q = select(*_COLUMNS).order_by(_R.id.desc()).limit(limit)
    if service is not None:
        q = q.where(_R.service == service)
    if before_id is not None:
        q = q.where(_R.id < before_id)
    return [_rollout(r) for r in conn.execute(q).all()]


def active_for(conn: Connection, service: str) -> RolloutView | None:
    r = conn.execute(select(*_COLUMNS).where(_R.active_service == service)).first()
    return _rollout(r) if r else None


def live(conn: Connection) -> list[RolloutView]:
    """Every rollout still in flight, oldest first."""
    rows = conn.execute(select(*_COLUMNS).where(_R.active_service.is_not(None)).order_by(_R.id))
    return [_rollout(r) for r in rows.all()]


def of_service(
    conn: Connection, service: str | None = None, *, limit: int = 50, before: int | None = None
) -> list[RolloutView]:
    """Rollouts newest first, of one service (through ix_rollouts_service_id) or of all,
    with ids below ``before``."""
    q = select(*_COLUMNS).order_by(_R.id.desc()).limit(limit)
    if service is not None:
        q = q.where(_R.service == service)
    if before is not None:
        q = q.where(_R.id < before)
    return [_rollout(r) for r in conn.execute(q).all()]


def update_state(
    conn: Connection,
    rollout_id: int,
    *,
    expected_version: int,
    phase: str,
    step_index: int,
    state: str,
    reason: str,
    at: datetime,
    finished: bool,
    last_verdict: str | None = None,
) -> bool:
    """Compare-and-swap on ``version``: False when someone else moved the rollout first."""
    values: dict[str, Any] = {
        "phase": phase,
        "step_index": step_index,
        "state": state,
        "reason": reason,
        "updated_at": at,
        "version": expected_version + 1,
    }
    if finished:
        values.update(active_service=None, finished_at=at)
    if last_verdict is not None:
        values.update(last_verdict=last_verdict, verdict_at=at)
    result = conn.execute(
        update(rollouts).where(_R.id == rollout_id, _R.version == expected_version).values(**values)
    )
    return result.rowcount == 1


def set_last_verdict(conn: Connection, rollout_id: int, verdict: str, *, at: datetime) -> None:
    """The newest analysis of a live rollout (not a transition: ``version`` is unchanged)."""
    conn.execute(
        update(rollouts)
        .where(_R.id == rollout_id, _R.active_service.is_not(None))
        .values(last_verdict=verdict, verdict_at=at)
    )


# -- history ----------------------------------------------------------------------------


def insert_history(
    conn: Connection,
    *,
    rollout_id: int,
    at: datetime,
    action: str,
    actor: str,
    phase: str,
    step_index: int,
    candidate_weight: int,
    reason: str,
    verdict: str | None,
    plan_generation: int | None,
    event_seq: int | None,
) -> None:
    conn.execute(
        insert(rollout_history).values(
            rollout_id=rollout_id,
            at=at,
            action=action,
            actor=actor,
            phase=phase,
            step_index=step_index,
            candidate_weight=candidate_weight,
            reason=reason,
            verdict=verdict,
            plan_generation=plan_generation,
            event_seq=event_seq,
        )
    )


def history(conn: Connection, rollout_id: int) -> list[RolloutRecord]:
    h = rollout_history.c
    rows = conn.execute(
        select(
            h.rollout_id,
            h.at,
            h.action,
            h.actor,
            h.phase,
            h.step_index,
            h.candidate_weight,
            h.reason,
            h.verdict,
            h.plan_generation,
            h.event_seq,
        )
        .where(h.rollout_id == rollout_id)
        .order_by(h.id)
    ).all()
    return [
        RolloutRecord(
            rollout_id=r.rollout_id,
            at=r.at,
            action=r.action,
            actor=r.actor,
            phase=r.phase,
            step_index=r.step_index,
            candidate_weight=r.candidate_weight,
            reason=r.reason,
            verdict=VerdictReport.from_json(r.verdict),
            plan_generation=r.plan_generation,
            event_seq=r.event_seq,
        )
        for r in rows
    ]


# -- telemetry, as the controller reads it ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class WindowRow:
    id: int
    release: str
    traffic: str
    window_start: datetime
    window: ReleaseWindow


def windows_from(
    conn: Connection, service: str, start: datetime, releases: list[str]
) -> list[WindowRow]:
    """Flushed telemetry of ``releases`` whose window started at or after ``start``.

    Only the columns the analysis reads, on the ``(service, window_start)`` index.
    """
    t = release_telemetry.c
    rows = conn.execute(
        select(
            t.id,
            t.release,
            t.traffic,
            t.window_start,
            t.requests,
            t.errors,
            t.guardrail_flags,
            t.fallbacks,
            t.feedback_sum,
            t.feedback_count,
            t.latency_histogram,
            t.detail,
        )
        .where(t.service == service, t.window_start >= start, t.release.in_(releases))
        .order_by(t.id)
    ).all()
    out = []
    for r in rows:
        histogram = tuple(json.loads(r.latency_histogram))
        detail = parse_detail(r.detail)  # None for rows flushed before 0007: no clusters/cells
        window = ReleaseWindow(
            requests=int(r.requests),
            errors=int(r.errors),
            guardrail_flags=int(r.guardrail_flags),
            fallbacks=int(r.fallbacks),
            feedback_sum=float(r.feedback_sum),
            feedback_count=int(r.feedback_count),
            latency_histogram=histogram if any(histogram) else (),
            custom=detail.custom,
            clusters=detail.clusters,
            latency_cells=detail.latency_cells,
            ttft_cells=detail.ttft_cells,
        )
        out.append(WindowRow(int(r.id), r.release, r.traffic, r.window_start, window))
    return out


# -- the controller's leader lease ----------------------------------------------------------


def acquire_lease(
    conn: Connection, name: str, holder: str, *, now: datetime, seconds: float
) -> bool:
    """Take or renew the lease ``name`` for ``holder``; False while another holder's is valid.

    Call inside a write transaction: on SQLite it holds the database lock, on
    PostgreSQL the row is locked (``FOR UPDATE``) and a concurrent first insert
    fails on the primary key, which the caller treats as "not the leader".
    """
    c = controller_leases.c
    row = conn.execute(
        select(c.holder, c.expires_at).where(c.name == name).with_for_update()
    ).first()
    expires = now + timedelta(seconds=seconds)
    if row is None:
        conn.execute(
            insert(controller_leases).values(
                name=name, holder=holder, acquired_at=now, expires_at=expires
            )
        )
        return True
    if row.holder != holder and row.expires_at > now:
        return False
    values: dict[str, Any] = {"holder": holder, "expires_at": expires}
    if row.holder != holder:
        values["acquired_at"] = now
    conn.execute(update(controller_leases).where(c.name == name).values(**values))
    return True


def release_lease(conn: Connection, name: str, holder: str) -> None:
    c = controller_leases.c
    conn.execute(delete(controller_leases).where(c.name == name, c.holder == holder))


def lease_holder(conn: Connection, name: str) -> tuple[str, datetime] | None:
    c = controller_leases.c
    row = conn.execute(select(c.holder, c.expires_at).where(c.name == name)).first()
    return (row.holder, row.expires_at) if row else None


# -- drills -------------------------------------------------------------------------------

_D = drills.c
_DRILL_COLUMNS = (
    _D.id,
    _D.service,
    _D.rollout_id,
    _D.release,
    _D.stable,
    _D.fault,
    _D.outcome,
    _D.started_at,
    _D.finished_at,
    _D.detect_seconds,
    _D.revert_seconds,
    _D.requests,
    _D.faulty_requests,
    _D.faulted_requests,
    _D.result,
    _D.actor,
    _D.event_seq,
)


def insert_drill(conn: Connection, **values: Any) -> int:
    return int(conn.execute(insert(drills).values(**values).returning(_D.id)).scalar_one())


def list_drills(
    conn: Connection, service: str | None = None, *, limit: int = 50, before: int | None = None
) -> list[StoredDrill]:
    """Drills newest first, of one service (through ix_drills_service_id) or of all, with ids
    below ``before``."""
    q = select(*_DRILL_COLUMNS).order_by(_D.id.desc()).limit(limit)
    if service is not None:
        q = q.where(_D.service == service)
    if before is not None:
        q = q.where(_D.id < before)
    return [StoredDrill(*tuple(r)) for r in conn.execute(q).all()]


__all__ = [
    "StoredDrill",
    "WindowRow",
    "acquire_lease",
    "active_for",
    "get",
    "history",
    "insert_drill",
    "insert_history",
    "insert_rollout",
    "lease_holder",
    "list_drills",
    "live",
    "of_service",
    "release_lease",
    "set_last_verdict",
    "update_state",
    "windows_from",
]
