"""What each dashboard page shows, gathered from the services layer as plain values.

The templates only format; every number and every decision comes from here,
through the same services the CLI and the REST API call.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from airlock.core.digest import short
from airlock.core.records import Approval, EvalRunSummary
from airlock.core.series import ReleaseSeries
from airlock.core.traffic import BUCKETS, TrafficPlan
from airlock.core.verdict_text import detectable, explain, headline, metric_row, sample_ratio
from airlock.errors import AirlockError
from airlock.services.audit_views import AuditLog, ChainMonitor, EventFilter
from airlock.services.governance import Governance
from airlock.services.health import Health, ServiceHealth
from airlock.services.lineage import lineage
from airlock.services.registry import Registry
from airlock.services.rollout_views import decisions, page_of_rollouts, step_progress
from airlock.services.rollouts import Rollouts, RolloutView
from airlock.services.serving import ServiceView, Serving
from airlock.services.timeline import Timeline, window
from airlock.services.workspace import Workspace
from airlock.web import quality_views
from airlock.web.charts import RANGES, chart_window, charts

VERIFY_LIMIT = 512 * 1024 * 1024  # releases up to this size are re-hashed on page load
LIVE_SPAN = timedelta(minutes=5)
MIN_SPAN = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Slice:
    release: str
    role: str  # stable | candidate
    pct: float


def split(plan: TrafficPlan) -> list[Slice]:
    out = [Slice(c.release, "candidate", c.weight * 100 / BUCKETS) for c in plan.candidates]
    return [Slice(plan.stable, "stable", plan.stable_weight() * 100 / BUCKETS), *out]


@dataclass(frozen=True, slots=True)
class ServiceCard:
    view: ServiceView
    split: list[Slice]
    rollout: RolloutView | None
    last: RolloutView | None
    health: ServiceHealth | None = None


def overview(ws: Workspace, serving: Serving, *, now: datetime | None = None) -> dict[str, Any]:
    rollouts = Rollouts(ws, serving=serving)
    health = {h.service: h for h in Health(ws).overview(now=now)}
    cards = []
    for view in serving.all():
        live = rollouts.active(view.name)
        recent = rollouts.recent(view.name, limit=1)
        last = recent[0] if recent else None
        cards.append(ServiceCard(view, split(view.plan), live, last, health.get(view.name)))
    reg = Registry(ws)
    aliases = reg.aliases()
    models = [
        {
            "name": m.name,
            "releases": m.release_count,
            "aliases": {a.name: a.version for a in aliases if a.model == m.name},
        }
        for m in reg.models()
    ]
    return {"cards": cards, "models": models, "recent": rollouts.recent(None, limit=10)}


def service_page(
    ws: Workspace,
    serving: Serving,
    name: str,
    *,
    span: timedelta | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    view = serving.get(name)
    rollouts = Rollouts(ws, serving=serving)
    recent = rollouts.recent(name, limit=20)
    current = rollouts.active(name) or (recent[0] if recent else None)
    history = rollouts.history(current.id) if current else []
    now = now or datetime.now(UTC)
    if span is not None:
        since = now - span
    else:  # what the live charts show: the last five minutes, zoomed in on a recent rollout
        since = now - LIVE_SPAN
        if current is not None:
            since = max(since, min(current.created_at - timedelta(seconds=20), now - MIN_SPAN))
    return {
        "quality": quality_views.service_quality(
            ws, serving, name, current, chart_window(since, now)
        ),
        "service": view,
        "split": split(view.plan),
        "rollout": current,
        "history": list(reversed(history))[:40],
        "rollouts": recent,
        "plans": list(reversed(serving.history(name)))[:15],
    }


def _series_json(series: list[ReleaseSeries]) -> list[dict[str, Any]]:
    return [
        {
            "release": s.release,
            "traffic": s.traffic,
            "totals": s.totals.to_dict(),
            "points": [p.to_dict() for p in s.points],
        }
        for s in series
    ]


def live(
    ws: Workspace, serving: Serving, name: str, *, span: timedelta | None = None
) -> dict[str, Any]:
    """What the service page polls: plan, rollout, newest verdict and recent telemetry.

    With ``span`` (a chart range), the charts cover that much time up to now in at
    most 120 steps; without, the last five minutes, zoomed in on a recent rollout.
    """
    view = serving.get(name)
    rollouts = Rollouts(ws, serving=serving)
    current = rollouts.active(name)
    if current is None:
        recent = rollouts.recent(name, limit=1)
        current = recent[0] if recent else None
    now = datetime.now(UTC)
    if span is not None:
        w = chart_window(now - span, now)
        series = Timeline(ws).steps(name, w)
    else:
        since = now - LIVE_SPAN
        if current is not None:  # zoom in on a recent rollout: from a little before it started
            since = max(since, current.created_at - timedelta(seconds=20))
        w = window(since, now, step_seconds=2.0 if now - since <= timedelta(minutes=2) else 5.0)
        series = Timeline(ws).series(name, w)
    return {
        "service": name,
        "stable": view.plan.stable,
        "split": [dataclasses.asdict(s) for s in split(view.plan)],
        "generation": view.plan.generation,
        "rollout": current.to_dict() if current else None,
        "series": _series_json(series),
        "step_seconds": w.step.total_seconds(),
        "now": now.isoformat(),
    }


ROLLOUT_MARGIN = timedelta(seconds=30)


def rollout_page(
    ws: Workspace,
    serving: Serving,
    rollout_id: int,
    *,
    span: timedelta | None = None,
    now: datetime | None = None,
    every_hold: bool = False,
) -> dict[str, Any]:
    """One rollout, in flight or past: its steps with bake progress, its decisions (holds that
    repeat the one before only with ``every_hold``), the newest verdict in words, and charts of
    stable and candidate over its time (or ``span`` up to its end).
    """
    rollouts = Rollouts(ws, serving=serving)
    view = rollouts.get(rollout_id)
    history = rollouts.history(rollout_id)
    now = now or datetime.now(UTC)
    end = min(view.finished_at + ROLLOUT_MARGIN, now) if view.finished_at else now
    if span is not None:
        since = end - span
    else:
        since = min(view.created_at - ROLLOUT_MARGIN, end - timedelta(minutes=1))
    w = chart_window(since, end)
    series = Timeline(ws).steps(view.service, w)
    sides = [("stable", view.stable), ("candidate", view.candidate)]
    verdict = view.last_verdict
    shown = decisions(history, every_hold=every_hold)
    return {
        "rollout": view,
        "steps": step_progress(view, now.timestamp()),
        "decisions": shown,
        "hidden_holds": len(history) - len(shown),
        "verdict": verdict,
        "verdict_headline": headline(verdict) if verdict else None,
        "verdict_rows": [(metric_row(m), explain(m)) for m in verdict.per_metric]
        if verdict
        else [],
        "verdict_srm": sample_ratio(verdict) if verdict else None,
        "verdict_detectable": detectable(verdict) if verdict else "",
        "charts": charts(series, sides, w),
        "quality": quality_views.rollout_quality(ws, view, w),
        "window": w,
        "ranges": list(RANGES),
    }


def rollouts_page(
    ws: Workspace, *, service: str | None, before: int | None, limit: int = 50
) -> dict[str, Any]:
    """Rollouts newest first, ``limit`` a page, the next page by id (keyset)."""
    page = page_of_rollouts(ws, service=service, before=before, limit=limit)
    return {"rollouts": list(page.rollouts), "older": page.older, "service": service or ""}


def lineage_graph(reg: Registry, ref: str) -> dict[str, Any]:
    """Columns for the lineage picture: datasets and code → release → components; parents."""
    walk = lineage(reg, ref)
    top = walk.release
    datasets = [{"label": d.name, "detail": d.detail} for d in top.datasets]
    if top.code_commit:
        datasets.append({"label": "code", "detail": top.code_commit[:12]})
    return {
        "release": {"ref": top.ref, "digest": short(top.digest)},
        "inputs": datasets,
        "components": [{"label": p.role, "detail": p.detail} for p in top.parts],
        "parents": [
            {"ref": p.ref, "digest": short(p.digest) if p.found else "", "missing": not p.found}
            for p in walk.parents
        ],
    }


def _eval_rows(runs: list[EvalRunSummary]) -> list[dict[str, Any]]:
    out = []
    for run in runs:
        record = run.document()
        cmp = (record.get("comparison") or {}).get("pass_rate")
        out.append(
            {
                "id": run.id,
                "suite": run.suite,
                "cases": run.cases,
                "pass_rate": run.pass_rate,
                "baseline": record.get("baseline"),
                "baseline_pass_rate": run.baseline_pass_rate,
                "delta": cmp.get("delta") if cmp else None,
                "ci": (cmp.get("ci_low"), cmp.get("ci_high")) if cmp else None,
                "p_value": run.p_value,
                "actor": run.actor,
                "at": run.finished_at,
            }
        )
    return out


def release_page(ws: Workspace, ref: str, *, verify: bool) -> dict[str, Any]:
    from airlock.services.notes import ReleaseNotes

    reg = Registry(ws)
    gov = Governance(ws)
    shown = reg.show(ref)
    row = shown.row
    summary = gov.summary(row.ref)
    approvals: list[Approval] = list(summary.approvals)
    integrity: dict[str, Any]
    if verify or row.total_size <= VERIFY_LIMIT:
        report = reg.verify(row.ref)
        integrity = {
            "checked": True,
            "ok": report.ok,
            "blobs": report.checked,
            "bytes": report.bytes,
            "damaged": sorted(report.damaged),
            "missing": sorted(report.missing),
        }
    else:
        integrity = {"checked": False}
    checks = {}
    for stage in ("stable", "production"):
        try:
            checks[stage] = gov.check(row.ref, stage)
        except AirlockError:
            continue
    return {
        "row": row,
        "manifest": shown.manifest,
        "aliases": shown.aliases,
        "lineage": lineage_graph(reg, row.ref),
        "evals": _eval_rows(list(summary.evals)),
        "approvals": approvals,
        "signatures": summary.signatures,
        "integrity": integrity,
        "checks": checks,
        "notes": ReleaseNotes(ws).render(row.ref, stage="stable"),
        "placements": Health(ws).placements(row.ref),
    }


def model_page(ws: Workspace, name: str, cursor: str | None = None) -> dict[str, Any]:
    """Newest releases first, a page at a time, and the newest 20 alias moves."""
    reg = Registry(ws)
    by_release: dict[int, list[str]] = {}
    for a in reg.aliases(name):
        by_release.setdefault(a.release_id, []).append(a.name)
    page = reg.release_page(name, limit=50, cursor=cursor, newest_first=True)
    releases = [
        {"row": r, "aliases": by_release.get(r.id, []), "notes": r.manifest().notes.summary}
        for r in page.items
    ]
    moves = reg.alias_history_page(name, limit=20, newest_first=True).items
    return {
        "name": name,
        "releases": releases,
        "history": list(reversed(moves)),
        "next_cursor": page.next_cursor,
    }


def audit_page(
    ws: Workspace,
    *,
    action: str | None,
    actor: str | None,
    subject: str | None,
    before_seq: int | None,
    limit: int = 50,
    chain: ChainMonitor | None = None,
    walk: bool = False,
) -> dict[str, Any]:
    """Newest events first, a page at a time, and the chain's status: what is new since the
    last view and the events shown are verified (``walk``: the whole chain again)."""
    log = AuditLog(ws)
    where = EventFilter(action=action, actor=actor, subject=subject)
    page = log.page(where, before_seq=before_seq, limit=limit, newest_first=True)
    status = (chain or ChainMonitor(ws)).status([e.seq for e in page.events], walk=walk)
    return {
        "report": status,
        "events": list(page.events),
        "more": page.more,
        "next_before": page.cursor,
        "filters": {"action": action or "", "actor": actor or "", "subject": subject or ""},
    }


__all__ = [
    "ServiceCard",
    "Slice",
    "audit_page",
    "live",
    "model_page",
    "overview",
    "release_page",
    "rollout_page",
    "rollouts_page",
    "service_page",
    "split",
]
