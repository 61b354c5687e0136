"""In-memory telemetry per (service, release, traffic): cheap to update, drained every second.

The request path only bumps numbers in a ``Counters`` object (one dict look-up,
no locks: the gateway runs on one event loop). Every counted field is kept in
total and per analysis cluster (``cluster_of`` of the routing bucket of the
request's user, see :mod:`airlock.core.window`) in preallocated lists of
``CLUSTERS``; latencies and times to first token go to sparse fine cells keyed
``cluster * CELLS + latency_cell(ms)``, and to the coarse histogram that
``/metrics`` shows.

``drain()`` swaps the pending counters for fresh ones and folds them into the
running totals, returning one :class:`TelemetryRecord` per key for the catalog.
``totals()`` (everything since start, pending included) feeds ``/metrics``;
``windows()`` and ``since()`` give the rollout controller :class:`ReleaseWindow`
values without touching SQL. All of them are exact: the per-cluster values and
cells of ``since(mark)`` are the counts after the mark, to the request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from airlock.core.telemetry import TelemetryRecord, Traffic, canonical_clusters
from airlock.core.window import (
    CELLS,
    CLUSTERS,
    LATENCY_HISTOGRAM_SIZE,
    ReleaseWindow,
    count_field,
    custom_field,
    latency_bucket,
    latency_cell,
)
from airlock.errors import InvalidInput

Key = tuple[str, str, Traffic]


def _add_into(mine: list[float], other: list[float]) -> None:
    for i, value in enumerate(other):
        if value:
            mine[i] += value


def _add_cells(mine: dict[int, int], other: Mapping[int, int]) -> None:
    for key, count in other.items():
        mine[key] = mine.get(key, 0) + count


class Counters:
    """What one gateway counted for one (service, release, traffic) key."""

    __slots__ = (
        "by_errors",
        "by_fallbacks",
        "by_feedback_count",
        "by_feedback_sum",
        "by_flags",
        "by_requests",
        "cells",
        "counts",
        "custom",
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
        "ttft_cells",
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
        # per cluster: the same fields, one number per analysis cluster
        self.by_requests: list[float] = [0] * CLUSTERS
        self.by_errors: list[float] = [0] * CLUSTERS
        self.by_flags: list[float] = [0] * CLUSTERS
        self.by_fallbacks: list[float] = [0] * CLUSTERS
        self.by_feedback_count: list[float] = [0] * CLUSTERS
        self.by_feedback_sum: list[float] = [0.0] * CLUSTERS
        self.cells: dict[int, int] = {}
        self.ttft_cells: dict[int, int] = {}
        # custom metric name -> (successes per cluster, trials per cluster)
        self.custom: dict[str, tuple[list[float], list[float]]] = {}
        # named counters (``Telemetry.count``) -> their value per cluster
        self.counts: dict[str, list[float]] = {}

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
        _add_into(self.by_requests, other.by_requests)
        _add_into(self.by_errors, other.by_errors)
        _add_into(self.by_flags, other.by_flags)
        _add_into(self.by_fallbacks, other.by_fallbacks)
        _add_into(self.by_feedback_count, other.by_feedback_count)
        _add_into(self.by_feedback_sum, other.by_feedback_sum)
        _add_cells(self.cells, other.cells)
        _add_cells(self.ttft_cells, other.ttft_cells)
        for name, (successes, trials) in list(other.custom.items()):
            mine = self.custom.get(name)
            if mine is None:
                self.custom[name] = (list(successes), list(trials))
            else:
                _add_into(mine[0], successes)
                _add_into(mine[1], trials)
        for name, row in list(other.counts.items()):
            have = self.counts.get(name)
            if have is None:
                self.counts[name] = list(row)
            else:
                _add_into(have, row)

    def copy(self) -> Counters:
        c = Counters()
        c.requests, c.errors, c.rejected = self.requests, self.errors, self.rejected
        c.errors_by_kind = dict(self.errors_by_kind)
        c.guardrail_flags, c.fallbacks = self.guardrail_flags, self.fallbacks
        c.shadow_drops, c.tokens_in, c.tokens_out = (
            self.shadow_drops,
            self.tokens_in,
            self.tokens_out,
        )
        c.feedback_sum, c.feedback_count = self.feedback_sum, self.feedback_count
        c.histogram, c.latency_ms_sum = list(self.histogram), self.latency_ms_sum
        c.by_requests, c.by_errors = list(self.by_requests), list(self.by_errors)
        c.by_flags, c.by_fallbacks = list(self.by_flags), list(self.by_fallbacks)
        c.by_feedback_count = list(self.by_feedback_count)
        c.by_feedback_sum = list(self.by_feedback_sum)
        c.cells, c.ttft_cells = dict(self.cells), dict(self.ttft_cells)
        c.custom = {name: (list(s), list(t)) for name, (s, t) in list(self.custom.items())}
        c.counts = {name: list(row) for name, row in list(self.counts.items())}
        return c

    def custom_totals(self) -> dict[str, tuple[float, float]]:
        """``name -> (successes, trials)`` of the custom metrics counted."""
        return {name: (sum(s), sum(t)) for name, (s, t) in list(self.custom.items())}

    def cluster_rows(self) -> dict[str, tuple[float, ...]]:
        """Per-cluster rows of every counted field, canonical (see :mod:`airlock.core.telemetry`)."""
        return canonical_clusters(self.rows())

    def rows(self) -> dict[str, list[float]]:
        """Per-cluster rows of every counted field, as counted (``cluster_rows`` canonicalises)."""
        rows: dict[str, list[float]] = {
            "requests": self.by_requests,
            "errors": self.by_errors,
            "guardrail_flags": self.by_flags,
            "fallbacks": self.by_fallbacks,
            "feedback_count": self.by_feedback_count,
            "feedback_sum": self.by_feedback_sum,
        }
        for name, (successes, trials) in list(self.custom.items()):
            rows[custom_field(name, "successes")] = successes
            rows[custom_field(name, "trials")] = trials
        for name, row in list(self.counts.items()):
            rows[count_field(name)] = row
        return rows

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
            custom=self.custom_totals(),
            clusters=self.cluster_rows(),
            latency_cells=dict(self.cells),
            ttft_cells=dict(self.ttft_cells),
        )

    def window_since(self, before: Counters) -> ReleaseWindow:
        """What was counted after ``before`` (a copy of these counters taken earlier)."""
        requests = self.requests - before.requests
        feedback_count = self.feedback_count - before.feedback_count
        earlier = before.rows()
        rows = {}
        for name, row in self.rows().items():
            old = earlier.get(name)
            rows[name] = row if old is None else [x - y for x, y in zip(row, old, strict=True)]
        custom = {}
        for name in list(self.custom):
            successes = sum(rows[custom_field(name, "successes")])
            trials = sum(rows[custom_field(name, "trials")])
            if trials > 0:
                custom[name] = (min(max(0.0, successes), trials), trials)
        return ReleaseWindow(
            requests=requests,
            errors=min(requests, self.errors - before.errors),
            guardrail_flags=min(requests, self.guardrail_flags - before.guardrail_flags),
            fallbacks=min(requests, self.fallbacks - before.fallbacks),
            feedback_sum=min(
                max(0.0, self.feedback_sum - before.feedback_sum), float(feedback_count)
            ),
            feedback_count=feedback_count,
            latency_histogram=_since_histogram(self.histogram, before.histogram),
            custom=custom,
            clusters=canonical_clusters(rows),
            latency_cells=_since_cells(self.cells, before.cells),
            ttft_cells=_since_cells(self.ttft_cells, before.ttft_cells),
        )

    def empty(self) -> bool:
        return not (
            self.requests
            or self.shadow_drops
            or self.feedback_count
            or self.rejected
            or self.errors
            or self.tokens_in
            or self.tokens_out
            or self.custom
            or self.counts
        )


@dataclass(frozen=True, slots=True)
class TelemetryMark:
    """The totals at one moment (copies, never changed); ``Telemetry.since(mark)`` counts
    what came after."""

    at: datetime
    totals: Mapping[Key, Counters]


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
    # ``cluster`` is ``cluster_of(bucket)`` of the routing bucket of the request's user.
    def success(
        self,
        key: Key,
        latency_ms: float,
        tokens_in: int,
        tokens_out: int,
        *,
        cluster: int,
        flagged: bool = False,
        ttft_ms: float | None = None,
    ) -> None:
        """A call the release answered; ``ttft_ms``: its first token's time, when streamed."""
        c = self._get(key)
        c.requests += 1
        c.by_requests[cluster] += 1
        c.histogram[latency_bucket(latency_ms)] += 1
        c.latency_ms_sum += latency_ms
        cells = c.cells
        cell = cluster * CELLS + latency_cell(latency_ms)
        cells[cell] = cells.get(cell, 0) + 1
        if ttft_ms is not None:
            cells = c.ttft_cells
            cell = cluster * CELLS + latency_cell(ttft_ms)
            cells[cell] = cells.get(cell, 0) + 1
        c.tokens_in += tokens_in
        c.tokens_out += tokens_out
        if flagged:
            c.guardrail_flags += 1
            c.by_flags[cluster] += 1

    def failure(self, key: Key, kind: str, *, cluster: int, fallback: bool = False) -> None:
        c = self._get(key)
        c.requests += 1
        c.by_requests[cluster] += 1
        c.errors += 1
        c.by_errors[cluster] += 1
        c.errors_by_kind[kind] = c.errors_by_kind.get(kind, 0) + 1
        if fallback:
            c.fallbacks += 1
            c.by_fallbacks[cluster] += 1

    def rejection(self, key: Key, *, cluster: int, flagged: bool = False) -> None:
        """A call the client got wrong, or blocked by an input guardrail: not an error."""
        c = self._get(key)
        c.requests += 1
        c.by_requests[cluster] += 1
        c.rejected += 1
        if flagged:
            c.guardrail_flags += 1
            c.by_flags[cluster] += 1

    def fallback_tokens(self, key: Key, tokens_in: int, tokens_out: int) -> None:
        """Tokens the stable release spent answering for a failed candidate.

        Only the tokens (what it cost): the answer is the candidate's outcome,
        counted by its failure with ``fallback=True``, never a request of this
        release's window.
        """
        c = self._get(key)
        c.tokens_in += tokens_in
        c.tokens_out += tokens_out

    def shadow_dropped(self, key: Key) -> None:
        self._get(key).shadow_drops += 1

    def feedback(self, key: Key, score: float, *, cluster: int) -> None:
        c = self._get(key)
        c.feedback_count += 1
        c.feedback_sum += score
        c.by_feedback_count[cluster] += 1
        c.by_feedback_sum[cluster] += score

    def correct_feedback(self, key: Key, previous: float, score: float, *, cluster: int) -> None:
        """A second score for a response replaces the first: the sum moves, the count stays.

        The difference lands in the pending window, kept within what that window holds
        (0 ≤ sum ≤ count, per cluster too): a correction that comes after the first
        score was flushed (more than a second later) moves the sum less, or not at all.
        """
        c = self._get(key)
        delta = score - previous
        cap = c.by_feedback_count[cluster]
        moved = min(max(c.by_feedback_sum[cluster] + delta, 0.0), float(cap))
        delta = moved - c.by_feedback_sum[cluster]
        c.by_feedback_sum[cluster] = moved
        c.feedback_sum = min(max(c.feedback_sum + delta, 0.0), float(c.feedback_count))

    def count(self, key: Key, name: str, cluster: int, n: float = 1.0) -> None:
        """Add ``n`` to the named counter ``name`` of ``key`` in ``cluster``: a new counter
        needs no new field here, no column and no migration; it reaches the catalog with
        the per-cluster detail and every reader as ``ReleaseWindow.count(name)``."""
        c = self._get(key)
        row = c.counts.get(name)
        if row is None:
            row = c.counts[name] = [0.0] * CLUSTERS
        row[cluster] += n

    def custom(self, key: Key, name: str, value: float, cluster: int) -> None:
        """Count one value in [0, 1] of the custom metric ``name`` (successes += value)."""
        if not 0.0 <= value <= 1.0:  # also NaN
            raise InvalidInput(
                f"custom metric {name!r} takes values in [0, 1], got {value!r}",
                hint="a pass/fail metric sends 1 or 0, a bounded score its value scaled to [0, 1]",
            )
        c = self._get(key)
        rows = c.custom.get(name)
        if rows is None:
            rows = c.custom[name] = ([0.0] * CLUSTERS, [0.0] * CLUSTERS)
        rows[0][cluster] += value
        rows[1][cluster] += 1

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
                    custom=c.custom_totals(),
                    clusters=c.cluster_rows(),
                    latency_cells=c.cells,
                    ttft_cells=c.ttft_cells,
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
        return TelemetryMark(datetime.now(UTC), self.totals())

    def since(
        self, mark: TelemetryMark, *, traffic: Traffic = "live"
    ) -> dict[tuple[str, str], ReleaseWindow]:
        """What each release did after ``mark`` (e.g. the start of a rollout step)."""
        out = {}
        for key, c in self.totals().items():
            if key[2] != traffic:
                continue
            before = mark.totals.get(key)
            out[(key[0], key[1])] = c.window() if before is None else c.window_since(before)
        return out


def _since_cells(now: Mapping[int, int], before: Mapping[int, int]) -> dict[int, int]:
    old = before.get
    return {key: d for key, count in now.items() if (d := count - old(key, 0)) > 0}


def _since_histogram(now: list[int], before: list[int]) -> tuple[int, ...]:
    out = tuple(x - y for x, y in zip(now, before, strict=True))
    return out if any(out) else ()


__all__ = ["Counters", "Key", "Telemetry", "TelemetryMark"]
