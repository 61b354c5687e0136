"""Telemetry records: what one gateway saw of one release over one window.

The gateway aggregates live traffic in memory and flushes one
:class:`TelemetryRecord` per (service, release, traffic) and window — every
second — to the catalog. ``traffic`` is ``live`` (users were answered) or
``shadow`` (mirrored copies, never returned). Records of several windows or
gateway replicas add up (``+``); :meth:`TelemetryRecord.window` turns one into
the :class:`~airlock.core.window.ReleaseWindow` the rollout analysis reads.

Counting rules (the analysis relies on them):

* ``requests`` counts every call made to the release, including failed ones and
  those blocked by a guardrail; ``errors`` counts the calls that failed on the
  release's side (timeouts, upstream errors, injected faults), ``rejected``
  those the client got wrong (an upstream's 400) — not the release's fault;
* ``fallbacks`` counts the failed calls that the stable release then answered;
* ``guardrail_flags`` counts requests with at least one guardrail match;
* the latency histogram holds successful calls only (buckets of
  ``LATENCY_BUCKETS_MS``), from request received to last byte produced;
* a call the stable release answered after the candidate failed (a fallback)
  counts against the candidate only (its failure, with ``fallback``), never in
  the stable release's window (only its tokens are added there, as a cost);
  feedback on that answer counts for the candidate too;
* ``time to first token`` (``ttft_cells``) is measured for streamed answers
  only: from request received to the first piece the runtime produced;
* custom metrics count values in [0, 1]: ``successes`` adds the value,
  ``trials`` adds 1.

Per analysis cluster (:func:`~airlock.core.window.cluster_of` of the routing
bucket of the request's user) a record also holds ``clusters`` (one row of
``CLUSTERS`` numbers per counted field, see :data:`CLUSTER_FIELDS`, and per
custom metric), fine ``latency_cells`` and ``ttft_cells`` (time to first token
of streamed answers), keyed ``cluster * CELLS + cell``, and ``custom`` totals
(``name -> (successes, trials)``). Their canonical form (what
:func:`canonical_clusters` returns) is what every producer emits, so records
compare equal after a round trip through the catalog: rows that are all zero are
left out, but once any row is non-zero every field of :data:`CLUSTER_FIELDS` is
present, and a custom metric has both its rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

from airlock.core.window import (
    CLUSTERS,
    COUNTED,
    LATENCY_HISTOGRAM_SIZE,
    ReleaseWindow,
    custom_field,
)
from airlock.errors import InvalidInput

Traffic = Literal["live", "shadow"]
TRAFFIC_KINDS: tuple[Traffic, ...] = ("live", "shadow")

CLUSTER_FIELDS: tuple[str, ...] = (*COUNTED, "feedback_sum")
"""The fields counted per cluster for every release (custom metrics add their own rows)."""

_ZEROS: tuple[float, ...] = (0.0,) * CLUSTERS
_CUSTOM_PARTS = ("successes", "trials")


def canonical_clusters(rows: Mapping[str, Iterable[float]]) -> dict[str, tuple[float, ...]]:
    """``rows`` in canonical form (see the module docstring): zero rows out, fields complete.

    Negative values (rounding left by subtracting float sums) become 0.
    """
    kept: dict[str, tuple[float, ...]] = {}
    for name, values in rows.items():
        row = tuple(v if v > 0.0 else 0.0 for v in map(float, values))
        if any(row):
            kept[name] = row
    if not kept:
        return {}
    out = {name: kept.get(name, _ZEROS) for name in CLUSTER_FIELDS}
    for name in sorted(kept):
        if name.startswith("custom:"):
            metric = name[len("custom:") : name.rindex(":")]
            for part in _CUSTOM_PARTS:
                key = custom_field(metric, part)
                out[key] = kept.get(key, _ZEROS)
    for name, row in kept.items():  # anything else a newer producer counts
        out.setdefault(name, row)
    return out


def _cells(cells: Mapping[Any, Any]) -> dict[int, int]:
    return {int(k): int(v) for k, v in cells.items() if v}


def _compact(row: tuple[float, ...]) -> list[float | int]:
    return [int(v) if v.is_integer() else v for v in row]


def detail_json(
    clusters: Mapping[str, tuple[float, ...]],
    latency_cells: Mapping[int, int],
    ttft_cells: Mapping[int, int],
    custom: Mapping[str, tuple[float, float]],
) -> str | None:
    """The per-cluster detail as compact JSON for the catalog; None when there is none.

    ``{"clusters": {field: [64 numbers]}, "latency_cells": {"key": count},
    "ttft_cells": {...}, "custom": {name: [successes, trials]}}``, empty parts
    and all-zero cluster rows left out (:func:`parse_detail` restores them).
    """
    out: dict[str, Any] = {}
    rows = {name: _compact(row) for name, row in clusters.items() if any(row)}
    if rows:
        out["clusters"] = rows
    if latency_cells:
        out["latency_cells"] = {str(k): v for k, v in latency_cells.items()}
    if ttft_cells:
        out["ttft_cells"] = {str(k): v for k, v in ttft_cells.items()}
    if custom:
        out["custom"] = {name: _compact(pair) for name, pair in custom.items()}
    return json.dumps(out, separators=(",", ":")) if out else None


@dataclass(frozen=True, slots=True)
class Detail:
    """What :func:`parse_detail` reads back: the keyword arguments of a window."""

    clusters: Mapping[str, tuple[float, ...]]
    latency_cells: Mapping[int, int]
    ttft_cells: Mapping[int, int]
    custom: Mapping[str, tuple[float, float]]


_EMPTY: Mapping[Any, Any] = MappingProxyType({})
_NO_DETAIL = Detail(_EMPTY, _EMPTY, _EMPTY, _EMPTY)


def parse_detail(text: str | None) -> Detail:
    """The detail :func:`detail_json` wrote (None or empty: a row from before it existed)."""
    if not text:
        return _NO_DETAIL
    try:
        data = json.loads(text)
        return Detail(
            clusters=canonical_clusters(data.get("clusters", {})),
            latency_cells=_cells(data.get("latency_cells", {})),
            ttft_cells=_cells(data.get("ttft_cells", {})),
            custom={k: (float(v[0]), float(v[1])) for k, v in data.get("custom", {}).items()},
        )
    except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
        raise InvalidInput(f"unreadable telemetry detail: {exc}") from exc


def _add_cells(a: Mapping[int, int], b: Mapping[int, int]) -> dict[int, int]:
    if len(a) < len(b):
        a, b = b, a
    out = dict(a)
    for key, count in b.items():
        out[key] = out.get(key, 0) + count
    return out


def _add_rows(
    a: Mapping[str, tuple[float, ...]], b: Mapping[str, tuple[float, ...]]
) -> dict[str, tuple[float, ...]]:
    out = dict(a)
    for name, row in b.items():
        mine = out.get(name)
        out[name] = row if mine is None else tuple(x + y for x, y in zip(mine, row, strict=True))
    return out


@dataclass(frozen=True, slots=True)
class TelemetryRecord:
    service: str
    release: str
    traffic: Traffic
    window_start: datetime
    window_end: datetime
    requests: int = 0
    errors: int = 0
    rejected: int = 0
    errors_by_kind: Mapping[str, int] = field(default_factory=dict)
    guardrail_flags: int = 0
    fallbacks: int = 0
    shadow_drops: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    feedback_sum: float = 0.0
    feedback_count: int = 0
    latency_histogram: tuple[int, ...] = ()
    custom: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    clusters: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    latency_cells: Mapping[int, int] = field(default_factory=dict)
    ttft_cells: Mapping[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.traffic not in TRAFFIC_KINDS:
            raise InvalidInput(f"traffic must be live or shadow, got {self.traffic!r}")
        if self.window_end < self.window_start:
            raise InvalidInput("a telemetry window cannot end before it starts")
        hist = tuple(self.latency_histogram)
        if hist and len(hist) != LATENCY_HISTOGRAM_SIZE:
            raise InvalidInput(f"latency_histogram needs {LATENCY_HISTOGRAM_SIZE} counts")
        for name, row in self.clusters.items():
            if len(tuple(row)) != CLUSTERS:
                raise InvalidInput(f"clusters[{name!r}] must hold {CLUSTERS} numbers")
        object.__setattr__(self, "latency_histogram", hist)
        object.__setattr__(self, "errors_by_kind", MappingProxyType(dict(self.errors_by_kind)))
        custom = {name: (float(s), float(t)) for name, (s, t) in self.custom.items()}
        object.__setattr__(self, "custom", MappingProxyType(custom))
        object.__setattr__(self, "clusters", MappingProxyType(canonical_clusters(self.clusters)))
        for label in ("latency_cells", "ttft_cells"):
            object.__setattr__(self, label, MappingProxyType(_cells(getattr(self, label))))

    @property
    def key(self) -> tuple[str, str, Traffic]:
        return (self.service, self.release, self.traffic)

    def window(self) -> ReleaseWindow:
        return ReleaseWindow(
            requests=self.requests,
            errors=self.errors,
            guardrail_flags=self.guardrail_flags,
            fallbacks=self.fallbacks,
            feedback_sum=self.feedback_sum,
            feedback_count=self.feedback_count,
            latency_histogram=self.latency_histogram,
            custom=self.custom,
            clusters=self.clusters,
            latency_cells=self.latency_cells,
            ttft_cells=self.ttft_cells,
        )

    def detail_json(self) -> str | None:
        """The per-cluster detail as the catalog stores it (see :func:`detail_json`)."""
        return detail_json(self.clusters, self.latency_cells, self.ttft_cells, self.custom)

    def __add__(self, other: TelemetryRecord) -> TelemetryRecord:
        if not isinstance(other, TelemetryRecord):
            return NotImplemented
        if other.key != self.key:
            raise InvalidInput(f"cannot add telemetry of {other.key} to {self.key}")
        kinds = dict(self.errors_by_kind)
        for kind, n in other.errors_by_kind.items():
            kinds[kind] = kinds.get(kind, 0) + n
        a, b = self.latency_histogram, other.latency_histogram
        hist = tuple(x + y for x, y in zip(a, b, strict=True)) if a and b else a or b
        custom = dict(self.custom)
        for name, (s, t) in other.custom.items():
            s0, t0 = custom.get(name, (0.0, 0.0))
            custom[name] = (s0 + s, t0 + t)
        return TelemetryRecord(
            service=self.service,
            release=self.release,
            traffic=self.traffic,
            window_start=min(self.window_start, other.window_start),
            window_end=max(self.window_end, other.window_end),
            requests=self.requests + other.requests,
            errors=self.errors + other.errors,
            rejected=self.rejected + other.rejected,
            errors_by_kind=kinds,
            guardrail_flags=self.guardrail_flags + other.guardrail_flags,
            fallbacks=self.fallbacks + other.fallbacks,
            shadow_drops=self.shadow_drops + other.shadow_drops,
            tokens_in=self.tokens_in + other.tokens_in,
            tokens_out=self.tokens_out + other.tokens_out,
            feedback_sum=self.feedback_sum + other.feedback_sum,
            feedback_count=self.feedback_count + other.feedback_count,
            latency_histogram=hist,
            custom=custom,
            clusters=_add_rows(self.clusters, other.clusters),
            latency_cells=_add_cells(self.latency_cells, other.latency_cells),
            ttft_cells=_add_cells(self.ttft_cells, other.ttft_cells),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "release": self.release,
            "traffic": self.traffic,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "requests": self.requests,
            "errors": self.errors,
            "rejected": self.rejected,
            "errors_by_kind": dict(self.errors_by_kind),
            "guardrail_flags": self.guardrail_flags,
            "fallbacks": self.fallbacks,
            "shadow_drops": self.shadow_drops,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "feedback_sum": self.feedback_sum,
            "feedback_count": self.feedback_count,
            "latency_histogram": list(self.latency_histogram),
            "custom": {k: list(v) for k, v in self.custom.items()},
            "clusters": {k: list(v) for k, v in self.clusters.items()},
            "latency_cells": {str(k): v for k, v in self.latency_cells.items()},
            "ttft_cells": {str(k): v for k, v in self.ttft_cells.items()},
        }


@dataclass(frozen=True, slots=True)
class ShadowSample:
    """One mirrored request: what the shadow release said next to what the user got."""

    service: str
    release: str
    primary_release: str
    request_id: str
    at: datetime
    ok: bool
    latency_ms: float
    output: str
    primary_output: str
    error_kind: str | None = None

    @property
    def same_output(self) -> bool:
        return self.ok and self.output == self.primary_output


__all__ = [
    "CLUSTER_FIELDS",
    "TRAFFIC_KINDS",
    "Detail",
    "ShadowSample",
    "TelemetryRecord",
    "Traffic",
    "canonical_clusters",
    "detail_json",
    "parse_detail",
]
