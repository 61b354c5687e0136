"""Traffic plans: which release answers which user, decided by hashing.

A :class:`TrafficPlan` is the value every gateway replica holds for a service.
It names the ``stable`` release, the ``candidates`` with their weights in basis
points (1 bp = 0.01 %, 10000 bp = all traffic) and the ``shadows`` that get a
copy of each request off the critical path. A plan never changes in place: a
new plan with ``generation + 1`` replaces it (gateways swap atomically).

Routing is sticky and stateless::

    bucket = int.from_bytes(sha256(f"{service}\\0{user_key}"), "big") % 10000

Candidates own consecutive bucket ranges starting at 0, in tuple order; the
buckets left over go to the stable release. With candidates ``(a, 500), (b, 200)``
buckets 0-499 go to ``a``, 500-699 to ``b`` and 700-9999 to stable.

Consequences a user can rely on:

* the same ``(service, user_key)`` always gets the same release under one plan;
* growing a candidate's weight (the others unchanged) never sends a user who
  was on a candidate back to stable, and the last candidate in the tuple (the
  only one, in a normal rollout) keeps every user it had;
* the bucket is independent of the release names, so a new plan with the same
  weights routes everyone exactly as before.
"""

from __future__ import annotations

import hashlib
import json
from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from airlock.errors import InvalidInput

BUCKETS = 10_000  # basis points: one bucket per 0.01 % of traffic


def bucket_of(service: str, user_key: str) -> int:
    """The sticky bucket (0..9999) of a user of a service."""
    digest = hashlib.sha256(f"{service}\0{user_key}".encode()).digest()
    return int.from_bytes(digest, "big") % BUCKETS


@dataclass(frozen=True, slots=True)
class WeightedRelease:
    """A candidate release and its share of user traffic in basis points."""

    release: str
    weight: int

    def __post_init__(self) -> None:
        if not isinstance(self.release, str) or not self.release:
            raise InvalidInput(
                f"a candidate release must be a non-empty reference, got {self.release!r}",
                hint="name releases as NAME@VERSION, e.g. chat@1.1.0",
            )
        if isinstance(self.weight, bool) or not isinstance(self.weight, int):
            raise InvalidInput(
                f"weight of {self.release} must be an integer number of basis points, "
                f"got {self.weight!r}",
                hint="1 bp = 0.01 % of traffic; 10000 bp = all of it",
            )
        if not 0 <= self.weight <= BUCKETS:
            raise InvalidInput(
                f"weight of {self.release} is {self.weight} bp, outside 0..{BUCKETS}",
                hint="1 bp = 0.01 % of traffic; 10000 bp = all of it",
            )

    def to_dict(self) -> dict[str, Any]:
        return {"release": self.release, "weight": self.weight}


@dataclass(frozen=True, slots=True)
class TrafficPlan:
    """The routing table of one service (see the module docstring)."""

    service: str
    stable: str
    candidates: tuple[WeightedRelease, ...] = ()
    shadows: tuple[str, ...] = ()
    generation: int = 0
    quality: str | None = None
    """The rollout's online-quality settings as canonical JSON (None: no live scoring);
    parsed by the gateway (:class:`airlock.core.quality.QualitySettings`)."""
    _thresholds: tuple[int, ...] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        for label, value in (("service", self.service), ("stable release", self.stable)):
            if not isinstance(value, str) or not value:
                raise InvalidInput(f"{label} must be a non-empty string, got {value!r}")
        if isinstance(self.generation, bool) or not isinstance(self.generation, int):
            raise InvalidInput(f"generation must be an integer, got {self.generation!r}")
        if self.generation < 0:
            raise InvalidInput(f"generation must be >= 0, got {self.generation}")
        if self.quality is not None and not isinstance(self.quality, str):
            raise InvalidInput(f"quality must be JSON text or None, got {self.quality!r}")
        # Accept lists from callers, store tuples: the plan stays hashable and frozen.
        object.__setattr__(self, "candidates", tuple(self.candidates))
        object.__setattr__(self, "shadows", tuple(self.shadows))
        for c in self.candidates:
            if not isinstance(c, WeightedRelease):
                raise InvalidInput(f"candidates must be WeightedRelease values, got {c!r}")
        names = [c.release for c in self.candidates]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise InvalidInput(
                f"{self.service}: release listed twice among candidates: {', '.join(dupes)}",
                hint="give each candidate release one weight",
            )
        if self.stable in names:
            raise InvalidInput(
                f"{self.service}: the stable release {self.stable} is also a candidate",
                hint="the stable release gets whatever weight the candidates leave",
            )
        total = sum(c.weight for c in self.candidates)
        if total > BUCKETS:
            raise InvalidInput(
                f"{self.service}: candidate weights add up to {total} bp, more than {BUCKETS}",
                hint="weights are basis points of all traffic; their sum must be <= 10000",
            )
        self._check_shadows(names, total)
        thresholds: list[int] = []
        running = 0
        for c in self.candidates:
            running += c.weight
            thresholds.append(running)
        object.__setattr__(self, "_thresholds", tuple(thresholds))

    def _check_shadows(self, candidate_names: list[str], total: int) -> None:
        for s in self.shadows:
            if not isinstance(s, str) or not s:
                raise InvalidInput(
                    f"{self.service}: a shadow must be a release reference, got {s!r}"
                )
        if len(set(self.shadows)) != len(self.shadows):
            raise InvalidInput(f"{self.service}: a release is listed twice among shadows")
        served = set(candidate_names)
        both = sorted(served.intersection(self.shadows))
        if both:
            raise InvalidInput(
                f"{self.service}: {', '.join(both)} is both a candidate and a shadow",
                hint="a release either serves users or receives mirrored copies, not both",
            )
        if self.stable in self.shadows and total < BUCKETS:
            raise InvalidInput(
                f"{self.service}: the stable release {self.stable} can be a shadow only "
                "while candidates take all traffic",
                hint="mirror the stable release only at a 100 % step, to keep a baseline",
            )

    # -- reading ----------------------------------------------------------------

    def route(self, user_key: str) -> str:
        """The release that answers ``user_key`` (sticky, see the module docstring)."""
        return self.release_at(bucket_of(self.service, user_key))

    def release_at(self, bucket: int) -> str:
        """The release that answers the users of routing bucket ``bucket`` (0..9999)."""
        index = bisect_right(self._thresholds, bucket)
        if index < len(self.candidates):
            return self.candidates[index].release
        return self.stable

    def stable_weight(self) -> int:
        """Basis points of traffic left to the stable release."""
        return BUCKETS - (self._thresholds[-1] if self._thresholds else 0)

    def weight_of(self, release: str) -> int:
        """Basis points of user traffic ``release`` gets under this plan (0 if none)."""
        if release == self.stable:
            return self.stable_weight()
        return next((c.weight for c in self.candidates if c.release == release), 0)

    def releases(self) -> tuple[str, ...]:
        """Every release a gateway must keep loaded: stable, candidates, shadows."""
        seen: dict[str, None] = {self.stable: None}
        for c in self.candidates:
            seen.setdefault(c.release, None)
        for s in self.shadows:
            seen.setdefault(s, None)
        return tuple(seen)

    # -- new plans ----------------------------------------------------------------

    @classmethod
    def all_stable(cls, service: str, stable: str, *, generation: int = 0) -> TrafficPlan:
        """Every user on ``stable``; no candidates, no shadows."""
        return cls(service=service, stable=stable, generation=generation)

    def with_weights(
        self,
        weights: Mapping[str, int],
        *,
        shadows: Iterable[str] | None = None,
    ) -> TrafficPlan:
        """The next plan (``generation + 1``) with these candidate weights.

        Candidates already in the plan keep their position, so their bucket
        ranges only grow or shrink at the end; new candidates are appended in
        the mapping's order; candidates missing from ``weights`` are dropped.
        ``shadows`` replaces the shadow list when given.
        """
        order = [c.release for c in self.candidates if c.release in weights]
        order += [name for name in weights if name not in order]
        return TrafficPlan(
            service=self.service,
            stable=self.stable,
            candidates=tuple(WeightedRelease(name, weights[name]) for name in order),
            shadows=self.shadows if shadows is None else tuple(shadows),
            generation=self.generation + 1,
        )

    def same_routing(self, other: TrafficPlan) -> bool:
        """True when both plans send every request the same way (generation aside)."""
        return (
            self.service == other.service
            and self.stable == other.stable
            and self.candidates == other.candidates
            and self.shadows == other.shadows
            and self.quality == other.quality
        )

    # -- storage ----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "stable": self.stable,
            "candidates": [c.to_dict() for c in self.candidates],
            "shadows": list(self.shadows),
            "generation": self.generation,
            **({"quality": json.loads(self.quality)} if self.quality is not None else {}),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrafficPlan:
        """Rebuild a plan from :meth:`to_dict` output; bad data raises InvalidInput."""
        if not isinstance(data, Mapping):
            raise InvalidInput(f"a traffic plan must be a mapping, got {type(data).__name__}")
        known = {"service", "stable", "candidates", "shadows", "generation", "quality"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"unknown traffic plan field(s): {', '.join(unknown)}")
        try:
            service, stable = data["service"], data["stable"]
        except KeyError as exc:
            raise InvalidInput(f"traffic plan is missing {exc.args[0]!r}") from exc
        raw_candidates = data.get("candidates", [])
        raw_shadows = data.get("shadows", [])
        if not isinstance(raw_candidates, list | tuple) or not isinstance(
            raw_shadows, list | tuple
        ):
            raise InvalidInput("traffic plan candidates and shadows must be lists")
        candidates = []
        for item in raw_candidates:
            if not isinstance(item, Mapping) or set(item) != {"release", "weight"}:
                raise InvalidInput(
                    f"a candidate must be {{'release': ..., 'weight': ...}}, got {item!r}"
                )
            candidates.append(WeightedRelease(item["release"], item["weight"]))
        return cls(
            service=service,
            stable=stable,
            candidates=tuple(candidates),
            shadows=tuple(raw_shadows),
            generation=data.get("generation", 0),
            quality=quality_text(data.get("quality")),
        )


def quality_text(quality: Mapping[str, Any] | None) -> str | None:
    """A plan's quality settings as canonical JSON text (sorted keys, no spaces)."""
    if quality is None:
        return None
    if not isinstance(quality, Mapping):
        raise InvalidInput(f"a plan's quality must be a mapping, got {type(quality).__name__}")
    return json.dumps(quality, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class PlanChange:
    """One stored traffic plan of a service: who set it, when and why."""

    service: str
    generation: int
    plan: TrafficPlan
    actor: str
    reason: str
    at: datetime
    event_seq: int | None


__all__ = [
    "BUCKETS",
    "PlanChange",
    "TrafficPlan",
    "WeightedRelease",
    "bucket_of",
]
