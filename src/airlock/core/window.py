"""What the gateway measures per release and window: counts and a latency histogram.

Latency histograms use fixed buckets so every gateway replica and every second
can simply be added up: ``LATENCY_BUCKETS_MS`` holds 41 inclusive upper bounds,
log-spaced (ratio ≈ 1.317) from 1 ms to 60 s, and a histogram has one more
count for anything slower than 60 s. ``latency_bucket(ms)`` is the index a
request adds 1 to.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from airlock.errors import InvalidInput

# Upper bounds (ms, inclusive) of 41 log-spaced buckets from 1 ms to 60 s; a
# latency histogram has one more count, for everything above 60 s.
_N_BOUNDS = 41
LOG_BUCKET_WIDTH = math.log(60_000.0) / (_N_BOUNDS - 1)
LATENCY_BUCKETS_MS: tuple[float, ...] = tuple(
    round(math.exp(i * LOG_BUCKET_WIDTH), 3) for i in range(_N_BOUNDS)
)
LATENCY_HISTOGRAM_SIZE = len(LATENCY_BUCKETS_MS) + 1


def latency_bucket(latency_ms: float) -> int:
    """Index of the histogram count a request of ``latency_ms`` adds to."""
    return bisect_left(LATENCY_BUCKETS_MS, latency_ms)


def latency_quantile(histogram: tuple[int, ...], q: float) -> float:
    """The ``q`` quantile (ms) of a histogram, interpolated on the log scale; 0 if empty."""
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


@dataclass(frozen=True, slots=True)
class ReleaseWindow:
    """Counts for one release over one time window, as the gateway aggregates them.

    ``errors`` counts calls to this release that failed, including those the
    gateway then answered from the stable release; ``fallbacks`` counts that
    subset. ``feedback_sum`` / ``feedback_count`` aggregate user scores in
    [0, 1] (thumbs up = 1, thumbs down = 0). ``latency_histogram`` is empty or
    has ``LATENCY_HISTOGRAM_SIZE`` counts (see :func:`latency_bucket`).
    ``custom`` maps a metric name to ``(successes, trials)``.
    """

    requests: int = 0
    errors: int = 0
    guardrail_flags: int = 0
    fallbacks: int = 0
    feedback_sum: float = 0.0
    feedback_count: int = 0
    latency_histogram: tuple[int, ...] = ()
    custom: Mapping[str, tuple[float, float]] = field(default_factory=dict, hash=False)

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
        object.__setattr__(self, "latency_histogram", histogram)
        object.__setattr__(self, "custom", MappingProxyType(custom))

    @property
    def latency_count(self) -> int:
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
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReleaseWindow:
        try:
            fields = dict(data)
            fields["latency_histogram"] = tuple(fields.get("latency_histogram", ()))
            fields["custom"] = {k: tuple(v) for k, v in dict(fields.get("custom", {})).items()}
            return cls(**fields)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"not a release window: {exc}") from exc


__all__ = [
    "LATENCY_BUCKETS_MS",
    "LATENCY_HISTOGRAM_SIZE",
    "LOG_BUCKET_WIDTH",
    "ReleaseWindow",
    "latency_bucket",
    "latency_quantile",
]
