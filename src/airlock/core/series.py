"""Telemetry as time series for charts: records bucketed into fixed steps (pure).

Gateways flush one :class:`~airlock.core.telemetry.TelemetryRecord` per release
and second; a chart wants one point per step (say 5 s) over the last minutes.
:func:`bucket` adds the records of each step up (they are counters, and latency
histograms add bucket by bucket) and derives the rates and percentiles a
person reads: error rate, guardrail-flag rate, mean feedback, p50/p95/p99.

A record is placed by its ``window_start``; empty steps are kept (zero
requests, ``None`` percentiles) so a chart's x axis is regular and a quiet
period shows as quiet rather than being skipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from airlock.core.telemetry import TelemetryRecord, Traffic
from airlock.core.window import latency_quantile
from airlock.errors import InvalidInput

MAX_POINTS = 2_000


@dataclass(frozen=True, slots=True)
class SeriesPoint:
    """One step of one release's traffic."""

    t: datetime
    requests: int = 0
    errors: int = 0
    guardrail_flags: int = 0
    fallbacks: int = 0
    feedback_sum: float = 0.0
    feedback_count: int = 0
    latency_histogram: tuple[int, ...] = ()

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def guardrail_rate(self) -> float:
        return self.guardrail_flags / self.requests if self.requests else 0.0

    @property
    def feedback_mean(self) -> float | None:
        return self.feedback_sum / self.feedback_count if self.feedback_count else None

    def quantile(self, q: float) -> float | None:
        if not self.latency_histogram or not any(self.latency_histogram):
            return None
        return latency_quantile(self.latency_histogram, q)

    def add(self, r: TelemetryRecord) -> SeriesPoint:
        a, b = self.latency_histogram, r.latency_histogram
        hist = tuple(x + y for x, y in zip(a, b, strict=True)) if a and b else a or b
        return SeriesPoint(
            self.t,
            self.requests + r.requests,
            self.errors + r.errors,
            self.guardrail_flags + r.guardrail_flags,
            self.fallbacks + r.fallbacks,
            self.feedback_sum + r.feedback_sum,
            self.feedback_count + r.feedback_count,
            hist,
        )

    def to_dict(self) -> dict[str, Any]:
        def ms(q: float) -> float | None:
            v = self.quantile(q)
            return None if v is None else round(v, 3)

        mean = self.feedback_mean
        return {
            "t": self.t.isoformat(),
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "guardrail_flags": self.guardrail_flags,
            "guardrail_rate": self.guardrail_rate,
            "fallbacks": self.fallbacks,
            "feedback_count": self.feedback_count,
            "feedback_mean": mean,
            "p50_ms": ms(0.50),
            "p95_ms": ms(0.95),
            "p99_ms": ms(0.99),
        }


@dataclass(frozen=True, slots=True)
class ReleaseSeries:
    release: str
    traffic: Traffic
    totals: SeriesPoint
    points: tuple[SeriesPoint, ...]


Counts = tuple[float, float]  # (successes, trials) of a custom metric


@dataclass(frozen=True, slots=True)
class MetricSeries:
    """One custom metric (``quality.NAME``, ``judge.score``, ``pairwise.judge``) of one
    release and traffic kind, per step: ``(successes, trials)``; the rate is their ratio."""

    release: str
    traffic: Traffic
    metric: str
    totals: Counts
    points: tuple[Counts, ...]

    @staticmethod
    def rate(counts: Counts) -> float | None:
        successes, trials = counts
        return successes / trials if trials else None


def custom_series(
    steps: Iterable[tuple[str, Traffic, int, dict[str, Counts]]],
    *,
    count: int,
    prefixes: tuple[str, ...],
) -> list[MetricSeries]:
    """Add up ``(release, traffic, step index, {metric: counts})`` into one series per
    (release, traffic, metric) whose name starts with one of ``prefixes``, ``count`` steps
    long; series come out by release and traffic in order of appearance, metrics sorted."""
    found: dict[tuple[str, Traffic], dict[str, list[Counts]]] = {}
    for release, traffic, index, custom in steps:
        at = min(max(index, 0), count - 1)
        for metric, (s, t) in custom.items():
            if not metric.startswith(prefixes):
                continue
            points = found.setdefault((release, traffic), {}).setdefault(
                metric, [(0.0, 0.0)] * count
            )
            s0, t0 = points[at]
            points[at] = (s0 + s, t0 + t)
    out = []
    for (release, traffic), metrics in found.items():
        for metric in sorted(metrics):
            points = metrics[metric]
            totals = (sum(p[0] for p in points), sum(p[1] for p in points))
            out.append(MetricSeries(release, traffic, metric, totals, tuple(points)))
    return out


def bucket(
    records: Iterable[TelemetryRecord],
    *,
    since: datetime,
    until: datetime,
    step: timedelta,
) -> list[ReleaseSeries]:
    """One series per (release, traffic) seen in ``records``, ``step`` wide from ``since``.

    Records outside [since, until) are ignored. Releases come out in the order
    they first appear (the catalog returns records oldest first).
    """
    if step.total_seconds() <= 0:
        raise InvalidInput("the step of a time series must be positive")
    if until <= since:
        raise InvalidInput("a time series must end after it starts", hint="check since and until")
    count = math.ceil((until - since) / step)
    if count > MAX_POINTS:
        raise InvalidInput(
            f"{count} points requested; at most {MAX_POINTS}", hint="use a larger step"
        )
    starts = [since + i * step for i in range(count)]
    series: dict[tuple[str, Traffic], list[SeriesPoint]] = {}
    totals: dict[tuple[str, Traffic], SeriesPoint] = {}
    for r in records:
        if r.window_start < since or r.window_start >= until:
            continue
        key = (r.release, r.traffic)
        if key not in series:
            series[key] = [SeriesPoint(t) for t in starts]
            totals[key] = SeriesPoint(since)
        index = min(int((r.window_start - since) / step), count - 1)
        series[key][index] = series[key][index].add(r)
        totals[key] = totals[key].add(r)
    return [
        ReleaseSeries(release, traffic, totals[(release, traffic)], tuple(points))
        for (release, traffic), points in series.items()
    ]


__all__ = [
    "MAX_POINTS",
    "Counts",
    "MetricSeries",
    "ReleaseSeries",
    "SeriesPoint",
    "bucket",
    "custom_series",
]
