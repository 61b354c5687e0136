"""Telemetry detail in the catalog, on SQLite and PostgreSQL: a flushed record reads back
(as the controller and the dashboards read it) into an identical window, per cluster and
cell; rows flushed before migration 0007 read back with no clusters and no cells."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import insert

from airlock.catalog import rollouts as rollout_sql
from airlock.catalog import serving as serving_sql
from airlock.catalog.engine import Database
from airlock.catalog.migrate import _config, upgrade
from airlock.catalog.schema import release_telemetry
from airlock.core.telemetry import TelemetryRecord
from airlock.core.window import CELLS, ReleaseWindow, latency_cell
from airlock.gateway.telemetry import Telemetry
from airlock.services.workspace import Workspace

STABLE, CANDIDATE = "chat@1.0.0", "chat@1.1.0"


def _records() -> list[TelemetryRecord]:
    t = Telemetry()
    for i in range(300):
        cluster = (i * 7) % 64
        key = ("chat", CANDIDATE if i % 3 else STABLE, "live")
        if i % 11 == 0:
            t.failure(key, "timeout", cluster=cluster, fallback=i % 2 == 0)
        else:
            t.success(
                key,
                3.0 + i * 1.37,
                3,
                7,
                cluster=cluster,
                flagged=i % 13 == 0,
                ttft_ms=1.0 + i * 0.11 if i % 4 == 0 else None,
            )
        if i % 5 == 0:
            t.feedback(key, 0.1 * (i % 10), cluster=cluster)
            t.custom(key, "helpful", 1.0 if i % 2 else 0.0, cluster)
        if i % 17 == 0:
            t.success(("chat", CANDIDATE, "shadow"), 40.0, 1, 1, cluster=cluster)
        if i % 7 == 0:  # a named counter: no column, no migration, carried in the detail
            t.count(key, "quality_dropped", cluster)
    records = t.drain()
    assert {r.key for r in records} == {
        ("chat", STABLE, "live"),
        ("chat", CANDIDATE, "live"),
        ("chat", CANDIDATE, "shadow"),
    }
    return records


def test_a_flushed_record_reads_back_into_an_identical_window(workspace: Workspace) -> None:
    records = _records()
    start = min(r.window_start for r in records)
    with workspace.db.write() as conn:
        serving_sql.insert_telemetry(conn, records, gateway="gw-1")
    with workspace.db.read() as conn:
        rows = rollout_sql.windows_from(conn, "chat", start, [STABLE, CANDIDATE])
        back = serving_sql.telemetry(conn, "chat")
        totals_only = serving_sql.telemetry(conn, "chat", detail=False)  # charts
    assert [(r.key, r.requests, r.latency_histogram) for r in totals_only] == [
        (r.key, r.requests, r.latency_histogram) for r in back
    ]
    assert not any(r.clusters or r.latency_cells for r in totals_only)
    by_key: dict[tuple[str, ...], TelemetryRecord] = {r.key: r for r in records}
    assert len(rows) == len(records) == len(back)
    for row in rows:
        record = by_key[("chat", row.release, row.traffic)]
        assert row.window == record.window()
        assert row.window.clusters and row.window.latency_cells
    for got in back:
        record = by_key[got.key]
        assert got.window() == record.window()
        assert (got.clusters, got.latency_cells, got.ttft_cells) == (
            record.clusters,
            record.latency_cells,
            record.ttft_cells,
        )
        assert got.custom == record.custom
    candidate = by_key[("chat", CANDIDATE, "live")].window()
    assert candidate.ttft_cells and candidate.custom["helpful"][1] > 0
    counted = sum(1 for i in range(300) if i % 7 == 0 and i % 3)
    read_back = {row.release: row.window for row in rows if row.traffic == "live"}
    assert read_back[CANDIDATE].count("quality_dropped") == counted
    assert sum(candidate.clusters["requests"]) == candidate.requests


def test_rows_without_detail_read_back_with_no_clusters(workspace: Workspace) -> None:
    t0 = datetime.now(UTC)
    plain = TelemetryRecord(
        "chat", STABLE, "live", t0, t0 + timedelta(seconds=1), requests=4, errors=1
    )
    assert plain.detail_json() is None
    with workspace.db.write() as conn:
        serving_sql.insert_telemetry(conn, [plain], gateway="gw-1")
    with workspace.db.read() as conn:
        (row,) = rollout_sql.windows_from(conn, "chat", t0, [STABLE])
        (back,) = serving_sql.telemetry(conn, "chat")
    assert row.window == ReleaseWindow(requests=4, errors=1)
    assert back == plain


def test_migration_0007_keeps_older_rows(db_url: str) -> None:
    db = Database.open(db_url)
    try:
        with db.write() as conn:
            cfg = _config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0004_rollouts")
        t0 = datetime.now(UTC)
        with db.write() as conn:  # a row as a gateway flushed it before 0007
            conn.execute(
                insert(release_telemetry).values(
                    service="chat",
                    release=STABLE,
                    traffic="live",
                    gateway="gw-0",
                    window_start=t0,
                    window_end=t0 + timedelta(seconds=1),
                    requests=3,
                    errors=0,
                    rejected=0,
                    errors_by_kind="{}",
                    guardrail_flags=1,
                    fallbacks=0,
                    shadow_drops=0,
                    tokens_in=1,
                    tokens_out=1,
                    feedback_sum=0.0,
                    feedback_count=0,
                    latency_histogram="[]",
                ),
            )
        assert upgrade(db)
        t = Telemetry()
        t.success(("chat", STABLE, "live"), 12.0, 1, 1, cluster=9)
        with db.write() as conn:
            serving_sql.insert_telemetry(conn, t.drain(), gateway="gw-1")
        with db.read() as conn:
            old, new = rollout_sql.windows_from(conn, "chat", t0, [STABLE])
        assert old.window == ReleaseWindow(requests=3, guardrail_flags=1)
        assert dict(new.window.latency_cells) == {9 * CELLS + latency_cell(12.0): 1}
        assert (old.window + new.window).requests == 4
    finally:
        db.dispose()
