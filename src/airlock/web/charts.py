"""Charts drawn on the server: time ranges, y axes that show small rates, SVG paths (pure).

A chart compares the releases of a rollout (stable and candidate) over a time
window that :func:`chart_window` cuts into at most :data:`MAX_POINTS` steps, so
24 hours of per-second telemetry becomes 120 points per series before it leaves
the server. :func:`axis` picks the y axis from the data — a "nice" step (1, 2 or
5 × 10ⁿ) with a small floor, so a 0.2 % error rate fills a 0–0.3 % axis instead
of hugging the bottom of a 0–100 % one — and labels ticks with as many decimals
as the step needs (``0.05 %``, not ``0.1 %`` twice).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from airlock.core.quality import JUDGE_METRIC, PAIRWISE_METRIC, QUALITY_PREFIX
from airlock.core.series import MetricSeries, ReleaseSeries, SeriesPoint
from airlock.errors import InvalidInput
from airlock.services.timeline import Window

RANGES: dict[str, timedelta] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
}
MAX_POINTS = 120
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 340, 170, 50, 16, 8


def parse_range(text: str | None) -> timedelta | None:
    """``15m``, ``1h`` or ``24h`` (``None`` or empty: the caller's default span)."""
    if not text:
        return None
    try:
        return RANGES[text]
    except KeyError:
        raise InvalidInput(
            f"unknown chart range {text!r}", hint=f"one of: {', '.join(RANGES)}"
        ) from None


def chart_window(since: datetime, until: datetime) -> Window:
    """[since, until) in whole-second steps, at most :data:`MAX_POINTS` of them."""
    if until <= since:
        raise InvalidInput("a chart must end after it starts")
    seconds = (until - since).total_seconds()
    step = max(math.ceil(seconds / MAX_POINTS), 1)
    return Window(since, until, timedelta(seconds=step))


# -- the y axis -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tick:
    value: float
    label: str
    y: float  # px from the top of the drawing


@dataclass(frozen=True, slots=True)
class Axis:
    top: float
    ticks: tuple[Tick, ...]

    def y(self, value: float) -> float:
        return TOP + (HEIGHT - BOTTOM - TOP) * (1 - value / self.top)


def _nice_step(raw: float) -> float:
    unit = 10.0 ** math.floor(math.log10(raw))
    return next(m * unit for m in (1.0, 2.0, 5.0, 10.0) if m * unit >= raw * (1 - 1e-9))


def decimals_for(values: Sequence[float]) -> int:
    """The fewest decimals that write every value exactly (up to 6)."""
    for d in range(7):
        if all(abs(round(v, d) - v) < 1e-9 * max(1.0, abs(v)) for v in values):
            return d
    return 6


def axis(
    values: Sequence[float | None], *, floor: float, scale: float = 1.0, unit: str = ""
) -> Axis:
    """A y axis from 0 over ``values``: at most 4 intervals of a nice step, at least ``floor``.

    ``scale`` turns a value into what the label shows (100 for a rate shown in %).
    """
    if floor <= 0:
        raise InvalidInput("an axis floor must be positive")
    high = max((v for v in values if v is not None and math.isfinite(v)), default=0.0)
    high = max(high * 1.05, floor)  # a little headroom: the highest point is not on the edge
    step = _nice_step(high / 4)
    top = step * math.ceil(high / step - 1e-9)
    count = round(top / step)
    shown = [i * step * scale for i in range(count + 1)]
    d = decimals_for(shown)
    base = Axis(top, ())
    ticks = tuple(Tick(i * step, f"{v:.{d}f}{unit}", base.y(i * step)) for i, v in enumerate(shown))
    return Axis(top, ticks)


# -- series into lines ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    name: str
    role: str  # stable | candidate
    path: str  # the SVG path's ``d``
    points: int  # how many steps had a value
    latest: str  # the newest value, as the axis writes it


@dataclass(frozen=True, slots=True)
class Chart:
    key: str
    title: str
    axis: Axis
    lines: tuple[Line, ...]
    start_label: str
    end_label: str
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT

    @property
    def empty(self) -> bool:
        return not any(line.points for line in self.lines)


@dataclass(frozen=True, slots=True)
class Metric:
    key: str
    title: str
    value: Callable[[SeriesPoint, float], float | None]
    floor: float
    scale: float
    unit: str


def _error_rate(p: SeriesPoint, step: float) -> float | None:
    return p.error_rate if p.requests else None


def _p95(p: SeriesPoint, step: float) -> float | None:
    return p.quantile(0.95)


def _rate(p: SeriesPoint, step: float) -> float | None:
    return p.requests / step


METRICS = (
    Metric("error_rate", "Error rate", _error_rate, floor=0.001, scale=100, unit=" %"),
    Metric("p95", "Latency p95", _p95, floor=1.0, scale=1, unit=" ms"),
    Metric("requests", "Requests per second", _rate, floor=0.1, scale=1, unit="/s"),
)


def side_series(series: Sequence[ReleaseSeries], release: str) -> ReleaseSeries | None:
    """A release's live traffic, or its mirrored copies when it served no user (shadow)."""
    live = next((s for s in series if s.release == release and s.traffic == "live"), None)
    shadow = next((s for s in series if s.release == release and s.traffic == "shadow"), None)
    return live if live is not None and live.totals.requests else shadow or live


def _values(s: ReleaseSeries | None, metric: Metric, step: float) -> list[float | None]:
    """One value per step; none after the release's last request (a flush not in yet, or
    no traffic since), so a line ends where the data ends instead of dropping to zero."""
    if s is None:
        return []
    last = max((i for i, p in enumerate(s.points) if p.requests), default=-1)
    return [metric.value(p, step) if i <= last else None for i, p in enumerate(s.points)]


def _path(values: Sequence[float | None], ax: Axis) -> str:
    n = max(len(values) - 1, 1)
    parts, pen = [], False
    for i, v in enumerate(values):
        if v is None:
            pen = False
            continue
        x = LEFT + (WIDTH - LEFT) * i / n
        parts.append(f"{'L' if pen else 'M'}{x:.1f} {ax.y(v):.1f}")
        pen = True
    return "".join(parts)


def _span_label(w: Window) -> str:
    seconds = (w.until - w.since).total_seconds()
    if seconds >= 7200:
        return f"−{seconds / 3600:.0f} h"
    if seconds >= 120:
        return f"−{seconds / 60:.0f} min"
    return f"−{seconds:.0f} s"


def charts(
    series: Sequence[ReleaseSeries], sides: Sequence[tuple[str, str]], w: Window
) -> tuple[Chart, ...]:
    """Error rate, p95 latency and request rate of each ``(role, release)`` side over ``w``."""
    step = w.step.total_seconds()
    chosen = [(role, release, side_series(series, release)) for role, release in sides]
    out = []
    for metric in METRICS:
        values = {release: _values(s, metric, step) for _, release, s in chosen}
        ax = axis(
            [v for vs in values.values() for v in vs],
            floor=metric.floor,
            scale=metric.scale,
            unit=metric.unit,
        )
        d = decimals_for([t.value * metric.scale for t in ax.ticks]) + 1
        lines = []
        for role, release, s in chosen:
            vs = values[release]
            known = [v for v in vs if v is not None]
            mirrored = s is not None and s.traffic == "shadow"
            latest = f"{known[-1] * metric.scale:.{d}f}{metric.unit}" if known else "—"
            lines.append(
                Line(
                    f"{release} ({role}{', mirrored' if mirrored else ''})",
                    role,
                    _path(vs, ax),
                    len(known),
                    latest,
                )
            )
        end = w.until.strftime("%H:%M UTC")
        out.append(Chart(metric.key, metric.title, ax, tuple(lines), _span_label(w), end))
    return tuple(out)


# -- live quality metrics ---------------------------------------------------------------------

QUALITY_METRICS = (QUALITY_PREFIX, JUDGE_METRIC, PAIRWISE_METRIC)
"""The custom metrics the quality charts show (prefixes of their names)."""


def quality_title(metric: str) -> str:
    """What a quality chart is called: its scorer, and what the line measures."""
    if metric == PAIRWISE_METRIC:
        return "Pairwise judge: share of pairs lost"
    if metric == JUDGE_METRIC:
        return "Judge: pass rate"
    return f"Quality {metric.removeprefix(QUALITY_PREFIX)}: pass rate"


def quality_side(series: Sequence[MetricSeries], release: str, metric: str) -> MetricSeries | None:
    """A release's scored answers of ``metric``: live ones, or its mirrored ones when no live
    answer was scored (a shadow phase: the candidate answered copies only)."""
    mine = [s for s in series if s.release == release and s.metric == metric]
    live = next((s for s in mine if s.traffic == "live" and s.totals[1]), None)
    return live or next((s for s in mine if s.totals[1]), None)


def quality_charts(
    series: Sequence[MetricSeries], sides: Sequence[tuple[str, str]], w: Window
) -> tuple[Chart, ...]:
    """One chart per live quality metric that either side has scores for: the pass rate of
    each scorer and of a pointwise judge, or the share of judged pairs each side lost.

    The pairwise metric counts, per pair, a loss on the candidate's side and a win on
    stable's (``airlock.core.quality.pair_counts``): both lines are "share of pairs this
    side lost", so they cross when the candidate starts losing more than it wins.
    """
    names = sorted({s.metric for s in series if s.totals[1]})
    out = []
    for metric in names:
        chosen = [(role, release, quality_side(series, release, metric)) for role, release in sides]
        values = {
            release: [] if s is None else [MetricSeries.rate(p) for p in s.points]
            for _, release, s in chosen
        }
        ax = axis([v for vs in values.values() for v in vs], floor=0.01, scale=100, unit=" %")
        d = decimals_for([t.value * 100 for t in ax.ticks]) + 1
        lines = []
        for role, release, s in chosen:
            vs = values[release]
            known = [v for v in vs if v is not None]
            n = 0 if s is None else round(s.totals[1])
            total = None if s is None else MetricSeries.rate(s.totals)
            mirrored = s is not None and s.traffic == "shadow"
            overall = "—" if total is None else f"{total * 100:.{d}f} %"
            lines.append(
                Line(
                    f"{release} ({role}{', mirrored' if mirrored else ''}) · {n} scored, "
                    f"{overall} overall",
                    role,
                    _path(vs, ax),
                    len(known),
                    f"{known[-1] * 100:.{d}f} %" if known else "—",
                )
            )
        end = w.until.strftime("%H:%M UTC")
        out.append(Chart(metric, quality_title(metric), ax, tuple(lines), _span_label(w), end))
    return tuple(out)


__all__ = [
    "MAX_POINTS",
    "METRICS",
    "QUALITY_METRICS",
    "RANGES",
    "Axis",
    "Chart",
    "Line",
    "Tick",
    "axis",
    "chart_window",
    "charts",
    "decimals_for",
    "parse_range",
    "quality_charts",
    "quality_side",
    "quality_title",
    "side_series",
]
