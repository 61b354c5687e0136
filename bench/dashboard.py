"""Dashboard benchmark: what a day of telemetry costs the pages that chart it.

In a temporary SQLite workspace with the Lumen example (``airlock.demo.prepare``), a
canary in flight and 24 hours of per-second telemetry for stable and candidate (as one
gateway flushes it: 172,800 records), measures the median of repeated builds of:

- the 24 h / 1 h / 15 min chart series, added up in the catalog (``Timeline.steps``: the
  rollout page and ``live.json?range=``), against reading every record and adding them
  up one by one (``Timeline.series``) for the 24 h range;
- the overview's health figures (last 5 minutes, every service);
- the whole rollout page (``views.rollout_page``) over its own span and over 24 h;
- the live quality series (``Timeline.quality``: one scored answer a second per release,
  a ``quality.no_refusal`` custom metric in each record's detail, as gateways write it
  with per-cluster rows) over 24 h / 1 h, which the rollout page's quality card charts.

``python -m bench dashboard [--hours H]``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from airlock.core.telemetry import LATENCY_HISTOGRAM_SIZE, TelemetryRecord
from airlock.core.window import CLUSTERS, custom_field
from airlock.demo import prepare, scenario
from airlock.services.health import Health
from airlock.services.rollouts import Rollouts
from airlock.services.serving import Serving
from airlock.services.timeline import Timeline
from airlock.web import views
from airlock.web.charts import chart_window
from bench._report import report

SPEC = {
    "strategy": "canary",
    "steps": [{"weight_pct": 10, "bake_seconds": 600}, {"weight_pct": 100, "bake_seconds": 600}],
    "analysis": {"max_step_seconds": 900},
}


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 1)


METRIC = "quality.no_refusal"
PREFIXES = ("quality.",)


def _one(s: int, value: float) -> tuple[float, ...]:
    """A per-cluster row with ``value`` in the cluster of second ``s``'s user."""
    row = [0.0] * CLUSTERS
    row[s % CLUSTERS] = value
    return tuple(row)


def _records(service: str, release: str, start: datetime, seconds: int) -> list[TelemetryRecord]:
    out = []
    for s in range(seconds):
        hist = [0] * LATENCY_HISTOGRAM_SIZE
        hist[8 + s % 5] = 9
        t = start + timedelta(seconds=s)
        out.append(
            TelemetryRecord(
                service, release, "live", t, t + timedelta(seconds=1),
                requests=10, errors=1 if s % 500 == 0 else 0, latency_histogram=tuple(hist),
                custom={METRIC: (passed := 0.0 if s % 20 == 0 else 1.0, 1.0)},
                clusters={
                    "requests": _one(s, 10.0),
                    custom_field(METRIC, "successes"): _one(s, passed),
                    custom_field(METRIC, "trials"): _one(s, 1.0),
                },
            )
        )  # fmt: skip
    return out


def main(argv: list[str]) -> int:
    args = argparse.ArgumentParser(prog="bench dashboard")
    args.add_argument("--hours", type=float, default=24.0)
    opts = args.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="airlock-bench-dashboard-"))
    try:
        demo = prepare(folder / "demo")
        ws, service = demo.ws, scenario.SERVICE
        serving = Serving(ws)
        view = (
            Rollouts(ws, serving=serving)
            .start(service, "lumen@1.1.0", SPEC, actor=demo.people["olga"])
            .rollout
        )
        now = datetime.now(UTC).replace(microsecond=0)
        seconds = int(opts.hours * 3600)
        start = now - timedelta(seconds=seconds)
        t0 = time.perf_counter()
        for chunk in range(0, seconds, 3600):
            size = min(3600, seconds - chunk)
            at = start + timedelta(seconds=chunk)
            for release in ("lumen@1.0.0", "lumen@1.1.0"):
                serving.flush(_records(service, release, at, size), gateway="bench")
        written = time.perf_counter() - t0
        timeline = Timeline(ws)
        rows = []
        for label, span in (("24 h", timedelta(hours=24)), ("1 h", timedelta(hours=1)),
                            ("15 min", timedelta(minutes=15))):  # fmt: skip
            w = chart_window(now - span, now)
            points = len(timeline.steps(service, w)[0].points)
            rows.append(
                [f"chart {label}, added up in SQL", points, _median_ms(lambda w=w: timeline.steps(service, w), 5)]
            )  # fmt: skip
        day = chart_window(now - timedelta(hours=24), now)
        rows.append(
            ["chart 24 h, every record read", 120, _median_ms(lambda: timeline.series(service, day), 1)]
        )  # fmt: skip
        for label, span in (("24 h", timedelta(hours=24)), ("1 h", timedelta(hours=1))):
            w = chart_window(now - span, now)
            points = len(timeline.quality(service, w, prefixes=PREFIXES)[0].points)
            rows.append(
                [f"quality series {label}, JSON part summed per step", points,
                 _median_ms(lambda w=w: timeline.quality(service, w, prefixes=PREFIXES), 3)]
            )  # fmt: skip
        rows.append(["overview health (5 min)", "—", _median_ms(lambda: Health(ws).overview(), 5)])
        rows.append(
            ["rollout page, its span", "—",
             _median_ms(lambda: views.rollout_page(ws, serving, view.id), 5)]
        )  # fmt: skip
        rows.append(
            ["rollout page, 24 h", "—",
             _median_ms(lambda: views.rollout_page(ws, serving, view.id, span=timedelta(hours=24)), 5)]
        )  # fmt: skip
        report(
            "dashboard",
            ["what", "points per series", "median ms"],
            rows,
            {"records": 2 * seconds, "write_seconds": round(written, 1), "hours": opts.hours},
        )
        ws.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0
