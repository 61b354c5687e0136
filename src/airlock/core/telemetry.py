"""Telemetry records: what one gateway saw of one release over one window.

The gateway aggregates live traffic in memory and flushes one
:class:`TelemetryRecord` per (service, release, traffic) and window — every
second — to the catalog. ``traffic`` is ``live`` (users were answered) or
``shadow`` (mirrored copies, never returned). Records of several windows or
gateway replicas add up (``+``); :meth:`TelemetryRecord.window` turns one into
the :class:`~airlock.core.analysis.ReleaseWindow` the rollout analysis reads.

Counting rules (the analysis relies on them):

* ``requests`` counts every call made to the release, including failed ones and
  those blocked by a guardrail; ``errors`` counts the calls that failed on the
  release's side (timeouts, upstream errors, injected faults), ``rejected``
  those the client got wrong (an upstream's 400) — not the release's fault;
* ``fallbacks`` counts the failed calls that the stable release then answered;
* ``guardrail_flags`` counts requests with at least one guardrail match;
* the latency histogram holds successful calls only (buckets of
  ``LATENCY_BUCKETS_MS``), from request received to last byte produced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

from airlock.core.analysis import LATENCY_HISTOGRAM_SIZE, ReleaseWindow
from airlock.errors import InvalidInput

Traffic = Literal["live", "shadow"]
TRAFFIC_KINDS: tuple[Traffic, ...] = ("live", "shadow")


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

    def __post_init__(self) -> None:
        if self.traffic not in TRAFFIC_KINDS:
            raise InvalidInput(f"traffic must be live or shadow, got {self.traffic!r}")
        if self.window_end < self.window_start:
            raise InvalidInput("a telemetry window cannot end before it starts")
        hist = tuple(self.latency_histogram)
        if hist and len(hist) != LATENCY_HISTOGRAM_SIZE:
            raise InvalidInput(f"latency_histogram needs {LATENCY_HISTOGRAM_SIZE} counts")
        object.__setattr__(self, "latency_histogram", hist)
        object.__setattr__(self, "errors_by_kind", MappingProxyType(dict(self.errors_by_kind)))

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
        )

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


__all__ = ["TRAFFIC_KINDS", "ShadowSample", "TelemetryRecord", "Traffic"]
