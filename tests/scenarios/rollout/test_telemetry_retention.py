"""Telemetry retention with a controlled clock: old per-second rows roll up per minute, then
per hour; every total a reader takes is unchanged; an in-flight rollout's rows are kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from airlock.catalog.schema import release_telemetry
from airlock.config import Settings
from airlock.core.telemetry import TelemetryRecord
from airlock.services.serving import Serving
from airlock.services.telemetry_retention import (
    HOUR,
    MINUTE,
    RetentionPolicy,
    TelemetryRetention,
    bucket_start,
)
from airlock.services.workspace import Workspace
from airlock_testkit import Cli
from gateway.support import MOON
from rollout.support import ALICE, Lab, canary


def _second(release: str, at: datetime, i: int) -> TelemetryRecord:
    return TelemetryRecord(
        service="chat",
        release=release,
        traffic="live",
        window_start=at,
        window_end=at + timedelta(seconds=1),
        requests=3 + i % 4,
        errors=int(i % 3 == 0),
        tokens_out=10 * i,
        latency_histogram=tuple(1 if b == i % 7 else 0 for b in range(42)),
        latency_cells={i % 50: 2, 400: 1},
        clusters={"requests": tuple(float(i % 4 + 3) if c == i % 64 else 0.0 for c in range(64))},
    )


def _count(lab: Lab) -> int:
    with lab.ws.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(release_telemetry)).scalar_one())


def _totals(lab: Lab) -> dict[str, tuple[int, int, int, tuple[int, ...], dict[int, int]]]:
    out = {}
    for release, r in lab.serving.telemetry("chat").items():
        cells = dict(r.latency_cells)
        out[release] = (r.requests, r.errors, r.tokens_out, r.latency_histogram, cells)
    return out


def test_rollups_keep_every_total_and_spare_an_inflight_rollout(lab: Lab) -> None:
    stable = lab.releases.builtin("chat", "1.0.0", MOON)
    candidate = lab.releases.builtin("chat", "1.1.0", MOON)
    lab.serving.create("chat", stable, actor=ALICE, reason="launch")
    started = lab.rollouts.start("chat", candidate, canary(10), actor=ALICE).rollout.created_at

    old = bucket_start(started, HOUR) - 2 * HOUR  # two whole minutes, two hours before
    rows = [_second(stable, old + timedelta(seconds=s), s) for s in range(120)]
    rows += [_second(candidate, old + timedelta(seconds=s), s) for s in range(0, 120, 2)]
    recent = [_second(candidate, started + timedelta(seconds=s + 1), s) for s in range(30)]
    lab.serving.flush(rows[:100], gateway="g1")
    lab.serving.flush(rows[100:] + recent, gateway="g1")
    before = _totals(lab)
    assert _count(lab) == 210

    now = [started + timedelta(days=3)]
    policy = RetentionPolicy(raw_age=timedelta(hours=48), minute_age=timedelta(days=30))
    retention = TelemetryRetention(lab.ws, policy, clock=lambda: now[0])
    report = retention.run()
    # per minute: 2 releases x 2 minutes; the 30 rows since the rollout started are kept
    assert (report.rows_deleted, report.rows_written) == (180, 4)
    assert report.held == {"chat": started}
    assert _count(lab) == 4 + 30
    assert _totals(lab) == before
    windows = lab.serving.windows("chat", since=started)  # what the analysis reads
    assert windows[candidate].requests == sum(r.requests for r in recent)

    assert retention.maybe_run() is None  # not due yet
    now[0] += policy.every
    again = retention.maybe_run()
    assert again is not None and again.rows_deleted == 0  # idempotent

    lab.rollouts.abort("chat", actor=ALICE, reason="done")
    retention.run()
    minutes = {bucket_start(r.window_start, MINUTE) for r in recent}
    assert _count(lab) == 4 + len(minutes)  # the rollout's 30 seconds: per minute now
    assert _totals(lab) == before

    now[0] = started + timedelta(days=40)
    hourly = retention.run()
    hours = {bucket_start(r.window_start, HOUR) for r in recent}
    assert _count(lab) == 2 + len(hours) and hourly.rows_written == 2 + (len(minutes) > 1)
    assert _totals(lab) == before


def test_a_policy_must_keep_raw_rows_for_a_while() -> None:
    with pytest.raises(ValueError, match="raw_age"):
        RetentionPolicy(raw_age=timedelta(0))


def test_gc_telemetry_rolls_up_through_the_cli(sqlite_settings: Settings, cli: Cli) -> None:
    ws = Workspace.open(sqlite_settings, create=True)
    try:
        old = bucket_start(datetime.now(UTC) - timedelta(days=3), MINUTE)
        rows = [_second("chat@1.0.0", old + timedelta(seconds=s), s) for s in range(30)]
        Serving(ws).flush(rows, gateway="g1")
    finally:
        ws.close()
    out = cli("gc", "--telemetry").output
    assert "30 old row(s) read, 30 rolled up into 1 (29 fewer) over 1 service(s)" in out
    assert "0 rolled up" in cli("gc", "--telemetry").output  # nothing left to do
