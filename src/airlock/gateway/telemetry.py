"""In-memory telemetry per (service, release, traffic): cheap to update, drained every second.

The request path only bumps integers in a ``Counters`` object (one dict look-up,
no locks: the gateway runs on one event loop). ``drain()`` swaps the pending
counters for fresh ones and folds them into the running totals, returning one
:class:`TelemetryRecord` per key for the catalog. ``totals()`` (everything since
start, pending included) feeds ``/metrics``; ``windows()`` and ``since()`` give
the rollout controller :class:`ReleaseWindow` values without touching SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from airlock.core.analysis import LATENCY_HISTOGRAM_SIZE, ReleaseWindow, latency_bucket
from airlock.core.telemetry import TelemetryRecord, Traffic

Key = tuple[str, str, Traffic]


class Counters:
    __slots__ = (
        "errors",
        "errors_by_kind",
        "fallbacks",
        "feedback_count",
        "feedback_sum",
        "guardrail_flags",
        "histogram",
        "latency_ms_sum",
        "rejected",
        "requests",
        "shadow_drops",
        "tokens_in",
        "tokens_out",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.rejected = 0
        self.errors_by_kind: dict[str, int] = {}
        self.guardrail_flags = 0
        self.fallbacks = 0
        self.shadow_drops = 0
        self.tokens_in = 0
        self.tokens_out = 0
        self.feedback_sum = 0.0
        self.feedback_count = 0
        self.histogram = [0] * LATENCY_HISTOGRAM_SIZE
        self.latency_ms_sum = 0.0

    def merge(self, other: Counters) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.rejected += other.rejected
        for kind, n in other.errors_by_kind.items():
            self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + n
        self.guardrail_flags += other.guardrail_flags
        self.fallbacks += other.fallbacks
        self.shadow_drops += other.shadow_drops
        self.tokens_in += other.tokens_in
        self.tokens_out += other.tokens_out
        self.feedback_sum += other.feedback_sum
        self.feedback_count += other.feedback_count
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]
        self.latency_ms_sum += other.latency_ms_sum

    def copy(self) -> Counters:
        c = Counters()
        c.merge(self)
        return c

    def window(self) -> ReleaseWindow:
        # Read fields so that errors/flags never exceed requests even if a request is
        # being counted concurrently (another thread reading while the loop writes).
        requests = self.requests
        return ReleaseWindow(
            requests=requests,
            errors=min(self.errors, requests),
            guardrail_flags=min(self.guardrail_flags, requests),
            fallbacks=min(self.fallbacks, requests),
            feedback_sum=min(self.feedback_sum, float(self.feedback_count)),
            feedback_count=self.feedback_count,
            latency_histogram=tuple(self.histogram) if any(self.histogram) else (),
        )

    def empty(self) -> bool:
        return not (
            self.requests
            or self.shadow_drops
            or self.feedback_count
            or self.rejected
            or self.errors
        )


@dataclass(frozen=True, slots=True)
class TelemetryMark:
    """The totals at one moment; ``Telemetry.since(mark)`` counts what came after."""

    at: datetime
    totals: Mapping[Key, ReleaseWindow]


class Telemetry:
    def __init__(self) -> None:
        self._pending: dict[Key, Counters] = {}
        self._totals: dict[Key, Counters] = {}
        self._window_start = datetime.now(UTC)

    def _get(self, key: Key) -> Counters:
        c = self._pending.get(key)
        if c is None:
            c = self._pending[key] = Counters()
        return c

    # -- the request path --------------------------------------------------------
    def success(
        self,
        key: Key,
        latency_ms: float,
        tokens_in: int,
        tokens_out: int,
        *,
        flagged: bool = False,
    ) -> None:
        c = self._get(key)
        c.requests += 1
        c.histogram[latency_bucket(latency_ms)] += 1
        c.latency_ms_sum += latency_ms
        c.tokens_in += tokens_in
        c.tokens_out += tokens_out
        if flagged:
            c.guardrail_flags += 1

    def failure(self, key: Key, kind: str, *, fallback: bool = False) -> None:
        c = self._get(key)
        c.requests += 1
        c.errors += 1
        c.errors_by_kind[kind] = c.errors_by_kind.get(kind, 0) + 1
        if fallback:
            c.fallbacks += 1

    def rejection(self, key: Key, *, flagged: bool = False) -> None:
        """A call the client got wrong, or blocked by an input guardrail: not an error."""
        c = self._get(key)
        c.requests += 1
        c.rejected += 1
        if flagged:
            c.guardrail_flags += 1

    def shadow_dropped(self, key: Key) -> None:
        self._get(key).shadow_drops += 1

    def feedback(self, key: Key, score: float) -> None:
        c = self._get(key)
        c.feedback_count += 1
        c.feedback_sum += score

    # -- reading ---------------------------------------------------------------------
    def drain(self) -> list[TelemetryRecord]:
        """Records for everything counted since the last drain; starts a new window."""
        pending, self._pending = self._pending, {}
        start, end = self._window_start, datetime.now(UTC)
        self._window_start = end
        records = []
        for key, c in pending.items():
            total = self._totals.get(key)
            if total is None:
                self._totals[key] = c.copy()
            else:
                total.merge(c)
            if c.empty():
                continue
            records.append(
                TelemetryRecord(
                    service=key[0],
                    release=key[1],
                    traffic=key[2],
                    window_start=start,
                    window_end=end,
                    requests=c.requests,
                    errors=c.errors,
                    rejected=c.rejected,
                    errors_by_kind=dict(c.errors_by_kind),
                    guardrail_flags=c.guardrail_flags,
                    fallbacks=c.fallbacks,
                    shadow_drops=c.shadow_drops,
                    tokens_in=c.tokens_in,
                    tokens_out=c.tokens_out,
                    feedback_sum=c.feedback_sum,
                    feedback_count=c.feedback_count,
                    latency_histogram=tuple(c.histogram) if any(c.histogram) else (),
                )
            )
        return records

    def totals(self) -> dict[Key, Counters]:
        """Everything counted since start (drained and pending), as copies."""
        out = {key: c.copy() for key, c in self._totals.items()}
        for key, c in list(self._pending.items()):
            if key in out:
                out[key].merge(c)
            else:
                out[key] = c.copy()
        return out

    def windows(self, *, traffic: Traffic = "live") -> dict[tuple[str, str], ReleaseWindow]:
        """``(service, release) -> ReleaseWindow`` since start, for one kind of traffic."""
        return {(k[0], k[1]): c.window() for k, c in self.totals().items() if k[2] == traffic}

    def mark(self) -> TelemetryMark:
        return TelemetryMark(datetime.now(UTC), {k: c.window() for k, c in self.totals().items()})

    def since(
        self, mark: TelemetryMark, *, traffic: Traffic = "live"
    ) -> dict[tuple[str, str], ReleaseWindow]:
        """What each release did after ``mark`` (e.g. the start of a rollout step)."""
        out = {}
        for key, c in self.totals().items():
            if key[2] != traffic:
                continue
            now = c.window()
            before = mark.totals.get(key)
            out[(key[0], key[1])] = now if before is None else _minus(now, before)
        return out


def _minus(a: ReleaseWindow, b: ReleaseWindow) -> ReleaseWindow:
    ha, hb = a.latency_histogram, b.latency_histogram
    hist = tuple(x - y for x, y in zip(ha, hb, strict=True)) if ha and hb else ha
    requests = a.requests - b.requests
    return ReleaseWindow(
        requests=requests,
        errors=min(requests, a.errors - b.errors),
        guardrail_flags=min(requests, a.guardrail_flags - b.guardrail_flags),
        fallbacks=min(requests, a.fallbacks - b.fallbacks),
        feedback_sum=max(0.0, a.feedback_sum - b.feedback_sum),
        feedback_count=a.feedback_count - b.feedback_count,
        latency_histogram=hist if any(hist) else (),
    )


__all__ = ["Counters", "Key", "Telemetry", "TelemetryMark"]
