"""SQL that adds a service's telemetry up into chart steps inside the database.

Gateways flush one record per release and second, so a day of charts is ~86,400
records per release and gateway. :func:`steps` groups them by release, traffic
kind and step in SQL (counters summed there; latency histograms concatenated
there and summed here, one JSON parse per step), and hands out the same
:class:`~airlock.core.series.ReleaseSeries` that :func:`airlock.core.series.bucket`
builds from single records: empty steps kept, releases in order of appearance.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import JSON, Connection, Float, Integer, cast, func, literal_column, select

from airlock.catalog.schema import release_telemetry
from airlock.core.series import MAX_POINTS, MetricSeries, ReleaseSeries, SeriesPoint, custom_series
from airlock.core.telemetry import Traffic
from airlock.errors import InvalidInput

_UNIX_EPOCH_JULIAN = 2440587.5


_SLACK = 0.0005
"""Seconds added before dividing: a time read back as ``julianday`` carries ~50 µs of float
error, which must not put a record that starts on a step boundary into the step before."""


def _step_index(conn: Connection, since: datetime, step: float) -> Any:
    t = release_telemetry.c
    origin = since.timestamp() - _SLACK
    if conn.dialect.name == "sqlite":  # stored as text; julianday reads it
        epoch = (func.julianday(t.window_start) - _UNIX_EPOCH_JULIAN) * 86400.0
        return cast((epoch - origin) / step, Integer)  # truncates, and it is >= 0 here
    epoch = cast(func.extract("epoch", t.window_start), Float)
    return func.floor((epoch - origin) / step)


def steps(
    conn: Connection, service: str, *, since: datetime, until: datetime, step: timedelta
) -> list[ReleaseSeries]:
    """One series per (release, traffic) with records whose window starts in [since, until)."""
    seconds = step.total_seconds()
    if seconds <= 0 or until <= since:
        raise InvalidInput("a time series needs a positive step and must end after it starts")
    count = math.ceil((until - since) / step)
    if count > MAX_POINTS:
        raise InvalidInput(f"{count} points requested; at most {MAX_POINTS}")
    t = release_telemetry.c
    index = _step_index(conn, since, seconds).label("i")
    q = (
        select(
            t.release,
            t.traffic,
            index,
            func.sum(t.requests),
            func.sum(t.errors),
            func.sum(t.guardrail_flags),
            func.sum(t.fallbacks),
            func.sum(t.feedback_sum),
            func.sum(t.feedback_count),
            func.aggregate_strings(t.latency_histogram, ","),
            func.min(t.id),
        )
        .where(t.service == service, t.window_start >= since, t.window_start < until)
        .group_by(t.release, t.traffic, literal_column("i"))
    )
    starts = [since + i * step for i in range(count)]
    series: dict[tuple[str, Traffic], list[SeriesPoint]] = {}
    first: dict[tuple[str, Traffic], int] = {}
    for (
        release,
        traffic,
        i,
        req,
        err,
        flags,
        fallbacks,
        fb_sum,
        fb_count,
        hists,
        low,
    ) in conn.execute(q):
        kind: Traffic = "shadow" if traffic == "shadow" else "live"
        key = (str(release), kind)
        points = series.setdefault(key, [SeriesPoint(at) for at in starts])
        first[key] = min(first.get(key, low), low)
        at = min(max(int(i), 0), count - 1)
        point = points[at]
        points[at] = SeriesPoint(
            point.t,
            point.requests + int(req),
            point.errors + int(err),
            point.guardrail_flags + int(flags),
            point.fallbacks + int(fallbacks),
            point.feedback_sum + float(fb_sum),
            point.feedback_count + int(fb_count),
            _add(point.latency_histogram, _summed(hists)),
        )
    out = []
    for key in sorted(series, key=lambda k: first[k]):
        points = series[key]
        total = SeriesPoint(since)
        for p in points:
            total = SeriesPoint(
                since,
                total.requests + p.requests,
                total.errors + p.errors,
                total.guardrail_flags + p.guardrail_flags,
                total.fallbacks + p.fallbacks,
                total.feedback_sum + p.feedback_sum,
                total.feedback_count + p.feedback_count,
                _add(total.latency_histogram, p.latency_histogram),
            )
        out.append(ReleaseSeries(key[0], key[1], total, tuple(points)))
    return out


def custom_steps(
    conn: Connection,
    service: str,
    *,
    since: datetime,
    until: datetime,
    step: timedelta,
    prefixes: tuple[str, ...],
) -> list[MetricSeries]:
    """The custom metrics named ``prefix...`` per (release, traffic) and step: only the
    ``custom`` part of each record's detail leaves the database (JSON-extracted there and
    concatenated per step), so a day of charts parses one short string per step."""
    seconds = step.total_seconds()
    if seconds <= 0 or until <= since:
        raise InvalidInput("a time series needs a positive step and must end after it starts")
    count = math.ceil((until - since) / step)
    if count > MAX_POINTS:
        raise InvalidInput(f"{count} points requested; at most {MAX_POINTS}")
    t = release_telemetry.c
    if conn.dialect.name == "sqlite":
        custom = func.json_extract(t.detail, "$.custom")
    else:
        custom = func.json_extract_path_text(cast(t.detail, JSON), "custom")
    index = _step_index(conn, since, seconds).label("i")
    q = (
        select(t.release, t.traffic, index, func.aggregate_strings(custom, ","))
        .where(
            t.service == service,
            t.window_start >= since,
            t.window_start < until,
            t.detail.is_not(None),  # (no filter on the extract: it would parse it twice)
        )
        .group_by(t.release, t.traffic, literal_column("i"))
        .order_by(func.min(t.id))
    )
    rows = []
    for release, traffic, i, joined in conn.execute(q):
        if not joined:  # no record of this step carries a custom metric
            continue
        kind: Traffic = "shadow" if traffic == "shadow" else "live"
        merged: dict[str, tuple[float, float]] = {}
        for part in json.loads(f"[{joined}]"):
            for name, pair in part.items():
                s0, t0 = merged.get(name, (0.0, 0.0))
                merged[name] = (s0 + float(pair[0]), t0 + float(pair[1]))
        rows.append((str(release), kind, int(i), merged))
    return custom_series(rows, count=count, prefixes=prefixes)


def _summed(concatenated: str | None) -> tuple[int, ...]:
    """``"[1,2],[3,4]"`` → ``(4, 6)``; empty histograms are left out."""
    if not concatenated:
        return ()
    if "[]" not in concatenated:  # the usual case: parse the numbers in C, one reshape
        count = concatenated.count("[")
        flat = concatenated.replace("[", "").replace("]", "")
        numbers = np.fromstring(flat, dtype=np.int64, sep=",")
        if count and numbers.size % count == 0:
            return tuple(int(x) for x in numbers.reshape(count, -1).sum(axis=0))
    rows = [h for h in json.loads(f"[{concatenated}]") if h]
    if not rows:
        return ()
    if len({len(h) for h in rows}) != 1:
        raise ValueError("latency histograms of different sizes in one step")
    return tuple(int(x) for x in np.asarray(rows, dtype=np.int64).sum(axis=0))


def _add(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(x + y for x, y in zip(a, b, strict=True)) if a and b else a or b


__all__ = ["custom_steps", "steps"]
