"""A token bucket: how many requests (or tokens) a gateway key may spend per minute.

Pure and clock-free: every call takes ``now`` (seconds, any monotonic origin), so
it is tested with plain numbers. A bucket holds at most ``capacity`` and refills
``capacity`` per ``period`` seconds, continuously.

Requests are taken before they run (``take``); model tokens are known only after
the answer, so ``spend`` may drive the level below zero and ``wait`` then says how
long until the bucket is positive again. Why not a library: ``limits`` and
``pyrate-limiter`` read the wall clock themselves and cannot charge a cost after
the fact; this is thirty lines with an injected clock.
"""

from __future__ import annotations


class TokenBucket:
    __slots__ = ("capacity", "level", "period", "updated")

    def __init__(self, capacity: float, *, period: float = 60.0, now: float = 0.0) -> None:
        if capacity <= 0 or period <= 0:
            raise ValueError("a token bucket needs a positive capacity and period")
        self.capacity = float(capacity)
        self.period = float(period)
        self.level = float(capacity)
        self.updated = now

    @property
    def rate(self) -> float:
        """Refill per second."""
        return self.capacity / self.period

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
            self.updated = now

    def take(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` if available: 0.0; else take nothing and return the seconds to wait."""
        self._refill(now)
        if self.level >= cost:
            self.level -= cost
            return 0.0
        return (cost - self.level) / self.rate

    def wait(self, now: float) -> float:
        """Seconds until the bucket holds something again (0.0 when it does)."""
        self._refill(now)
        return 0.0 if self.level > 0 else (1e-9 - self.level) / self.rate

    def spend(self, now: float, cost: float) -> None:
        """Charge ``cost`` after the fact; the level may go below zero (debt)."""
        self._refill(now)
        self.level -= cost


__all__ = ["TokenBucket"]
