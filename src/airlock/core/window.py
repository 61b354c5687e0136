"""What the gateway measures per release and window: counts, per routing cluster.

A :class:`ReleaseWindow` holds one release's traffic over one window — summed
over every gateway replica and every one-second flush (``+`` is associative and
commutative, so the order of replicas and flushes never matters).

Clusters: the unit of routing is the unit of analysis
--------------------------------------------------------
The gateway routes a user by ``bucket = sha256(service, user) mod 10000`` (see
:mod:`airlock.core.traffic`), so all requests of a user land on one release.
Those requests are not independent: a heavy user, or a user whose prompts trip
the guardrails, moves a release's counts by many requests at once. Every
counter is therefore also kept per *analysis cluster* ``bucket mod
CLUSTERS``: a cluster is a random union of users (the hash is independent of
anything the user does), so the clusters of one release are independent and
identically distributed, and the spread *between* clusters measures the real
variance of a rate, whatever the users look like (the cluster-robust or
"sandwich" variance; Liang & Zeger 1986; Cameron & Miller 2015, *A
practitioner's guide to cluster-robust inference*). ``clusters[field]`` is a
tuple of ``CLUSTERS`` numbers whose sum is the total ``field``.

Latency at 2 % resolution
-------------------------
Latency is kept in log-spaced *cells* ``γ = 1.02`` wide (a relative width of
2 %, the DDSketch mapping of Masson, Rim & Lee 2019 with relative accuracy
1 %), from 0.05 ms to 120 s, per cluster: ``latency_cells[cluster * CELLS +
cell]`` counts successful requests. Sparse, so a quiet release costs a few
entries; mergeable by adding counts. The coarse ``latency_histogram`` (41
bounds from 1 ms to 60 s) stays for charts and ``/metrics``. Time to first
token of streamed answers is kept the same way in ``ttft_cells``.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from airlock.errors import InvalidInput

CLUSTERS = 64
"""Analysis clusters: ``routing bucket mod CLUSTERS``."""

# -- coarse histogram (charts, /metrics) ---------------------------------------------------

# Upper bounds (ms, inclusive) of 41 log-spaced buckets from 1 ms to 60 s; a
# latency histogram has one more count, for everything above 60 s.
_N_BOUNDS = 41
LOG_BUCKET_WIDTH = math.log(60_000.0) / (_N_BOUNDS - 1)
LATENCY_BUCKETS_MS: tuple[float, ...] = tuple(
    round(math.exp(i * LOG_BUCKET_WIDTH), 3) for i in range(_N_BOUNDS)
)
LATENCY_HISTOGRAM_SIZE = len(LATENCY_BUCKETS_MS) + 1

# -- fine cells (the analysis) ---------------------------------------------------------------

CELL_GAMMA = 1.02
"""Ratio of a cell's upper to lower bound (2 % relative width)."""
CELL_LOG_WIDTH = math.log(CELL_GAMMA)
CELL_MIN_MS = 0.05
_CELL_MAX_MS = 120_000.0
CELLS = math.ceil(math.log(_CELL_MAX_MS / CELL_MIN_MS) / CELL_LOG_WIDTH) + 2
"""Cells per cluster: 0 holds ≤ 0.05 ms, CELLS − 1 everything above 120 s."""


def cluster_of(bucket: int) -> int:
    """The analysis cluster of a routing bucket (0..9999)."""
    return bucket % CLUSTERS


def latency_cell(latency_ms: float) -> int:
    """The fine cell a request of ``latency_ms`` adds 1 to.

    Cell ``i`` (1 ≤ i ≤ CELLS − 2) holds ``(CELL_MIN_MS·γ^(i−1), CELL_MIN_MS·γ^i]``.
    """
    if not latency_ms > CELL_MIN_MS:  # also NaN
        return 0
    index = 1 + math.floor(math.log(latency_ms / CELL_MIN_MS) / CELL_LOG_WIDTH)
    return min(index, CELLS - 1)


def cell_upper_ms(cell: int) -> float:
    """The upper bound (ms) of a fine cell (the last one reports 120 s)."""
    return float(CELL_MIN_MS * CELL_GAMMA ** min(cell, CELLS - 2))


def latency_bucket(latency_ms: float) -> int:
    """Index of the coarse histogram count a request of ``latency_ms`` adds to."""
    return bisect_left(LATENCY_BUCKETS_MS, latency_ms)


def latency_quantile(histogram: tuple[int, ...], q: float) -> float:
    """The ``q`` quantile (ms) of a coarse histogram, interpolated on the log scale; 0 if empty."""
    total = sum(histogram)
    if total == 0:
        return 0.0
    target = q * total
    running = 0.0
    for index, count in enumerate(histogram):
        if count and running + count >= target:
            upper = math.log(LATENCY_BUCKETS_MS[min(index, _N_BOUNDS - 1)])
            upper += LOG_BUCKET_WIDTH if index == _N_BOUNDS else 0.0
            fraction = (target - running) / count
            return math.exp(upper - LOG_BUCKET_WIDTH * (1 - fraction))
        running += count
    return LATENCY_BUCKETS_MS[-1]


def cells_quantile(cells: Mapping[int, int], q: float) -> float:
    """The ``q`` quantile (ms) of per-cluster fine cells, interpolated inside a cell; 0 if empty."""
    totals: dict[int, int] = {}
    for key, count in cells.items():
        cell = key % CELLS
        totals[cell] = totals.get(cell, 0) + count
    total = sum(totals.values())
    if total == 0:
        return 0.0
    target, running = q * total, 0.0
    for cell in sorted(totals):
        count = totals[cell]
        if running + count >= target:
            fraction = (target - running) / count
            return float(cell_upper_ms(cell) / CELL_GAMMA ** (1.0 - fraction))
        running += count
    return cell_upper_ms(CELLS - 1)


# -- the window ----------------------------------------------------------------------------

COUNTED = ("requests", "errors", "guardrail_flags", "fallbacks", "feedback_count")


def count_field(name: str) -> str:
    """The ``clusters`` key of a named counter (``Telemetry.count``)."""
    return f"count:{name}"


def custom_field(name: str, part: str) -> str:
    """The ``clusters`` key of a custom metric's ``successes`` or ``trials``."""
    return f"custom:{name}:{part}"


def _add_maps(a: Mapping[Any, Any], b: Mapping[Any, Any]) -> dict[Any, Any]:
    out = dict(a)
    for key, value in b.items():
        out[key] = out.get(key, 0) + value
    return out


def _add_clusters(
    a: Mapping[str, tuple[float, ...]], b: Mapping[str, tuple[float, ...]]
) -> dict[str, tuple[float, ...]]:
    out = dict(a)
    for name, values in b.items():
        mine = out.get(name)
        out[name] = (
            values if mine is None else tuple(x + y for x, y in zip(mine, values, strict=True))
        )
    return out


def _checked_cells(label: str, cells: Mapping[int, int]) -> dict[int, int]:
    """``cells`` as a plain dict of positive counts; checked with C-level min/max (hot path)."""
    if not cells:
        return {}
    out = {int(k): int(v) for k, v in cells.items()} if not isinstance(cells, dict) else cells
    if not (min(out) >= 0 and max(out) < CLUSTERS * CELLS and min(out.values()) >= 0):
        raise InvalidInput(f"{label} keys must be cluster * {CELLS} + cell, counts >= 0")
    return {k: v for k, v in out.items() if v} if 0 in out.values() else dict(out)


@dataclass(frozen=True, slots=True)
class ReleaseWindow:
    """Counts for one release over one time window, as the gateway aggregates them.

    ``errors`` counts calls to this release that failed, including those the
    gateway then answered from the stable release; ``fallbacks`` counts that
    subset. ``feedback_sum`` / ``feedback_count`` aggregate user scores in
    [0, 1] (thumbs up = 1, thumbs down = 0). ``latency_histogram`` is empty or
    has ``LATENCY_HISTOGRAM_SIZE`` counts (see :func:`latency_bucket`).
    ``custom`` maps a metric name to ``(successes, trials)``.

    ``clusters`` maps a counted field (``requests``, ``errors``, …, and
    :func:`custom_field` names) to its ``CLUSTERS`` per-cluster values;
    ``latency_cells`` / ``ttft_cells`` map ``cluster * CELLS + cell`` to a
    count. All three may be empty (a window built from totals only): the
    analysis then treats requests as independent and has no latency data.
    """

    requests: int = 0
    errors: int = 0
    guardrail_flags: int = 0
    fallbacks: int = 0
    feedback_sum: float = 0.0
    feedback_count: int = 0
    latency_histogram: tuple[int, ...] = ()
    custom: Mapping[str, tuple[float, float]] = field(default_factory=dict, hash=False)
    clusters: Mapping[str, tuple[float, ...]] = field(default_factory=dict, hash=False)
    latency_cells: Mapping[int, int] = field(default_factory=dict, hash=False)
    ttft_cells: Mapping[int, int] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name in ("requests", "errors", "guardrail_flags", "fallbacks", "feedback_count"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(f"{name} must be a non-negative integer, got {value!r}")
        for name in ("errors", "guardrail_flags", "fallbacks"):
            if getattr(self, name) > self.requests:
                raise InvalidInput(
                    f"{name} ({getattr(self, name)}) cannot exceed requests ({self.requests})"
                )
        if not 0 <= self.feedback_sum <= self.feedback_count:
            raise InvalidInput(
                f"feedback_sum {self.feedback_sum} must lie in 0..feedback_count "
                f"({self.feedback_count})",
                hint="feedback scores are in [0, 1]: thumbs up = 1, thumbs down = 0",
            )
        histogram = tuple(self.latency_histogram)
        if histogram and len(histogram) != LATENCY_HISTOGRAM_SIZE:
            raise InvalidInput(
                f"latency_histogram has {len(histogram)} counts, expected "
                f"{LATENCY_HISTOGRAM_SIZE} (one per LATENCY_BUCKETS_MS bound, plus > 60 s)"
            )
        if any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in histogram):
            raise InvalidInput("latency_histogram counts must be non-negative integers")
        custom: dict[str, tuple[float, float]] = {}
        for name, pair in dict(self.custom).items():
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise InvalidInput(f"custom metric {name!r} must be (successes, trials)")
            successes, trials = float(pair[0]), float(pair[1])
            if not 0 <= successes <= trials or not math.isfinite(trials):
                raise InvalidInput(
                    f"custom metric {name!r}: need 0 <= successes <= trials, got {pair!r}"
                )
            custom[name] = (successes, trials)
        clusters: dict[str, tuple[float, ...]] = {}
        for name, values in dict(self.clusters).items():
            row = tuple(map(float, values))
            if len(row) != CLUSTERS or not (min(row) >= 0 and math.isfinite(sum(row))):
                raise InvalidInput(
                    f"clusters[{name!r}] must hold {CLUSTERS} finite non-negative numbers"
                )
            clusters[name] = row
        for label in ("latency_cells", "ttft_cells"):
            object.__setattr__(
                self, label, MappingProxyType(_checked_cells(label, getattr(self, label)))
            )
        object.__setattr__(self, "latency_histogram", histogram)
        object.__setattr__(self, "custom", MappingProxyType(custom))
        object.__setattr__(self, "clusters", MappingProxyType(clusters))

    def count(self, name: str) -> float:
        """The total of the named counter ``name`` (0 when nothing was counted)."""
        return math.fsum(self.clusters.get(count_field(name), ()))

    @property
    def latency_count(self) -> int:
        if self.latency_cells:
            return sum(self.latency_cells.values())
        return sum(self.latency_histogram)

    def __add__(self, other: ReleaseWindow) -> ReleaseWindow:
        """Two windows of the same release pooled (e.g. one-second flushes summed)."""
        if not isinstance(other, ReleaseWindow):
            return NotImplemented
        a, b = self.latency_histogram, other.latency_histogram
        histogram = tuple(x + y for x, y in zip(a, b, strict=True)) if a and b else a or b
        custom = dict(self.custom)
        for name, (s, t) in other.custom.items():
            s0, t0 = custom.get(name, (0.0, 0.0))
            custom[name] = (s0 + s, t0 + t)
        return ReleaseWindow(
            requests=self.requests + other.requests,
            errors=self.errors + other.errors,
            guardrail_flags=self.guardrail_flags + other.guardrail_flags,
            fallbacks=self.fallbacks + other.fallbacks,
            feedback_sum=self.feedback_sum + other.feedback_sum,
            feedback_count=self.feedback_count + other.feedback_count,
            latency_histogram=histogram,
            custom=custom,
            clusters=_add_clusters(self.clusters, other.clusters),
            latency_cells=_add_maps(self.latency_cells, other.latency_cells),
            ttft_cells=_add_maps(self.ttft_cells, other.ttft_cells),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "guardrail_flags": self.guardrail_flags,
            "fallbacks": self.fallbacks,
            "feedback_sum": self.feedback_sum,
            "feedback_count": self.feedback_count,
            "latency_histogram": list(self.latency_histogram),
            "custom": {k: list(v) for k, v in self.custom.items()},
            "clusters": {k: list(v) for k, v in self.clusters.items()},
            "latency_cells": {str(k): v for k, v in self.latency_cells.items()},
            "ttft_cells": {str(k): v for k, v in self.ttft_cells.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReleaseWindow:
        try:
            fields = dict(data)
            fields["latency_histogram"] = tuple(fields.get("latency_histogram", ()))
            fields["custom"] = {k: tuple(v) for k, v in dict(fields.get("custom", {})).items()}
            fields["clusters"] = {k: tuple(v) for k, v in dict(fields.get("clusters", {})).items()}
            for label in ("latency_cells", "ttft_cells"):
                fields[label] = {int(k): int(v) for k, v in dict(fields.get(label, {})).items()}
            return cls(**fields)
        except (TypeError, ValueError, AttributeError) as exc:
            raise InvalidInput(f"not a release window: {exc}") from exc


__all__ = [
    "CELLS",
    "CELL_GAMMA",
    "CELL_LOG_WIDTH",
    "CELL_MIN_MS",
    "CLUSTERS",
    "COUNTED",
    "LATENCY_BUCKETS_MS",
    "LATENCY_HISTOGRAM_SIZE",
    "LOG_BUCKET_WIDTH",
    "ReleaseWindow",
    "cell_upper_ms",
    "cells_quantile",
    "cluster_of",
    "count_field",
    "custom_field",
    "latency_bucket",
    "latency_cell",
    "latency_quantile",
]
