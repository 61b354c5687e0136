"""Bucketing telemetry into chart points (pure): counts add up, empty steps stay, rates derive."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airlock.core.series import bucket
from airlock.core.telemetry import TelemetryRecord
from airlock.core.window import LATENCY_HISTOGRAM_SIZE
from airlock.errors import InvalidInput

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def rec(second: int, requests: int, errors: int = 0, release: str = "a@1.0.0") -> TelemetryRecord:
    hist = [0] * LATENCY_HISTOGRAM_SIZE
    hist[10] = requests - errors
    start = T0 + timedelta(seconds=second)
    return TelemetryRecord(
        "svc", release, "live", start, start + timedelta(seconds=1), requests, errors,
        latency_histogram=tuple(hist),
    )  # fmt: skip


@given(st.lists(st.tuples(st.integers(0, 59), st.integers(1, 50)), max_size=40))
def test_points_add_up_to_the_totals(rows: list[tuple[int, int]]) -> None:
    series = bucket(
        [rec(s, n) for s, n in rows], since=T0, until=T0 + timedelta(minutes=1),
        step=timedelta(seconds=5),
    )  # fmt: skip
    if not rows:
        assert series == []
        return
    (only,) = series
    assert len(only.points) == 12  # empty steps are kept: the x axis stays regular
    assert sum(p.requests for p in only.points) == only.totals.requests == sum(n for _, n in rows)


def test_rates_percentiles_and_releases() -> None:
    records = [rec(0, 10, 1), rec(1, 10, 1), rec(7, 4, 0, release="b@2.0.0"), rec(99, 5)]
    a, b = bucket(records, since=T0, until=T0 + timedelta(seconds=10), step=timedelta(seconds=5))
    assert (a.release, b.release) == ("a@1.0.0", "b@2.0.0")
    assert a.points[0].requests == 20
    assert a.points[0].error_rate == pytest.approx(0.1)
    assert a.points[1].to_dict()["p50_ms"] is None
    assert b.points[1].to_dict()["p95_ms"] > 0
    assert a.totals.feedback_mean is None


@pytest.mark.parametrize(
    ("until", "step"),
    [(T0, timedelta(seconds=1)), (T0 + timedelta(days=1), timedelta(seconds=1)),
     (T0 + timedelta(seconds=5), timedelta(0))],
)  # fmt: skip
def test_bad_windows_are_refused(until: datetime, step: timedelta) -> None:
    with pytest.raises(InvalidInput):
        bucket([], since=T0, until=until, step=step)
