"""Feedback that cannot be forged or repeated: what ``POST /v1/feedback`` accepts.

A score counts only when its response id

1. was signed by this gateway fleet (:mod:`airlock.core.response_ids`): a forged
   or edited id is ``unknown`` (404);
2. is younger than ``max_age_s`` (default 24 h): else ``expired`` (400);
3. comes from the key that made the request (an id issued in open mode, from an
   open service): else ``wrong_key`` (403), or ``unauthenticated`` (401) when
   the service needs a key and none was sent; and the key has ``can_feedback``;
4. is new, or replaces this id's earlier score: a second post changes the
   score, never the count (the telemetry gets the difference).

Every refusal is counted by reason on ``/metrics``
(``airlock_gateway_feedback_rejected_total``).

:class:`FeedbackLedger` remembers accepted ids **per replica**, bounded
(``capacity``, oldest issue time evicted first). An id older than the newest
evicted one is refused as ``expired``, so an id is never counted twice by one
replica even after eviction; several replicas behind a balancer may each count
an id once (at most N times for N replicas).

The handler keeps the parsing apart (:class:`FeedbackPost`), so named custom
metrics can join the score later.
"""

from __future__ import annotations

import heapq
import math
import re
from dataclasses import dataclass, field
from typing import Any

from airlock.core.response_ids import MAX_ID_LENGTH
from airlock.errors import InvalidInput

REJECT_REASONS = (
    "malformed",
    "bad_signature",
    "expired",
    "wrong_key",
    "unauthenticated",
    "no_scope",
    "invalid",
)


@dataclass(frozen=True, slots=True)
class FeedbackPost:
    """One ``POST /v1/feedback`` body, checked for shape (not yet for its id)."""

    response_id: str
    score: float
    extra: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)

    @classmethod
    def parse(cls, data: Any) -> FeedbackPost:
        if not isinstance(data, dict):
            raise InvalidInput('send {"id": "<response id>", "score": 0..1}')
        rid = data.get("id", data.get("response_id"))
        if not isinstance(rid, str) or not rid:
            raise InvalidInput("'id' must be the id of a response, e.g. chatcmpl-...")
        if len(rid) > MAX_ID_LENGTH:
            raise InvalidInput(f"'id' is longer than {MAX_ID_LENGTH} characters")
        if "score" not in data:
            raise InvalidInput("'score' is required: a number in [0, 1]")
        extra = {
            k: v for k, v in data.items() if k not in ("id", "response_id", "score", "metrics")
        }
        return cls(rid, check_score(data["score"]), extra, check_metrics(data.get("metrics")))


MAX_METRICS = 16
_METRIC_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


def check_metrics(metrics: Any) -> dict[str, float]:
    """Named custom metrics sent with feedback: ``{name: value in [0, 1]}`` (pass/fail or a score).

    They become the rollout analysis's ``custom.NAME`` metrics, counted for the
    release and the user's cluster the response id names, once per response.
    """
    if metrics is None:
        return {}
    if not isinstance(metrics, dict):
        raise InvalidInput("'metrics' must be an object of name: value in [0, 1]")
    if len(metrics) > MAX_METRICS:
        raise InvalidInput(f"at most {MAX_METRICS} metrics per feedback, got {len(metrics)}")
    out: dict[str, float] = {}
    for name, value in metrics.items():
        if not isinstance(name, str) or not _METRIC_NAME.match(name):
            raise InvalidInput(
                f"metric name {str(name)[:40]!r} must be lower-case letters, digits, '_', '.' "
                "or '-', starting with a letter, at most 64 characters"
            )
        try:
            out[name] = check_score(value)
        except InvalidInput:
            raise InvalidInput(
                f"metric {name!r} must be a number in [0, 1], got {repr(value)[:40]}",
                hint="a pass/fail metric sends 1 or 0; a score, its value scaled to [0, 1]",
            ) from None
    return out


def check_score(score: Any) -> float:
    """A feedback score as a float in [0, 1] (``true``/``false`` are 1 and 0)."""
    if isinstance(score, bool):
        return 1.0 if score else 0.0
    if (
        not isinstance(score, int | float)
        or not math.isfinite(float(score))
        or not 0.0 <= float(score) <= 1.0
    ):
        raise InvalidInput(
            f"score must be a number in [0, 1], got {repr(score)[:40]}",
            hint="thumbs up = 1, thumbs down = 0",
        )
    return float(score)


@dataclass(frozen=True, slots=True)
class FeedbackResult:
    service: str
    release: str
    score: float
    replaced: float | None  # the earlier score of this id, when this post replaced it


class FeedbackLedger:
    def __init__(self, *, capacity: int = 100_000, max_age_s: float = 86_400.0) -> None:
        self.capacity = capacity
        self.max_age_s = max_age_s
        self._scores: dict[str, float] = {}
        self._by_age: list[tuple[float, str]] = []
        self.floor = -math.inf  # ids issued at or before this were evicted: refused
        self.rejected: dict[str, int] = dict.fromkeys(REJECT_REASONS, 0)

    def reject(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def too_old(self, issued_at: float, now: float) -> bool:
        return issued_at <= self.floor or now - issued_at > self.max_age_s

    def record(self, rid: str, issued_at: float, score: float, now: float) -> float | None:
        """Remember ``score`` for ``rid``; the score it replaces, or None when it is new."""
        previous = self._scores.get(rid)
        self._scores[rid] = score
        if previous is None:
            heapq.heappush(self._by_age, (issued_at, rid))
            self._prune(now)
        return previous

    def _prune(self, now: float) -> None:
        heap, scores = self._by_age, self._scores
        while heap and (len(scores) > self.capacity or now - heap[0][0] > self.max_age_s):
            issued_at, rid = heapq.heappop(heap)
            scores.pop(rid, None)
            if now - issued_at <= self.max_age_s:  # evicted while still valid
                self.floor = max(self.floor, issued_at)

    def __len__(self) -> int:
        return len(self._scores)


__all__ = ["REJECT_REASONS", "FeedbackLedger", "FeedbackPost", "FeedbackResult", "check_score"]
