"""Rollback drills, the pure part: which faults to inject, and what they did to users.

A drill rolls out a deliberately faulty copy of a service's stable release and
watches the controller catch it. ``parse_faults`` reads the faults as a user
writes them on the command line; :func:`summarize` turns what the drill's
client saw, request by request, into the numbers a drill reports:

* **time to detect**: from the first request routed to the faulty release to
  the controller's rollback decision;
* **time to revert**: from that decision to the first request after which no
  request went to the faulty release any more (an upper bound: its resolution
  is the gap between two requests);
* **requests that saw the fault**: of those routed to the faulty release, the
  ones where the fault reached the user — a failed call (answered with an
  error, or by the stable release after a retry), the added latency (every
  call), or an answer the safety policy flagged, redacted or blocked.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from airlock.errors import InvalidInput

FAULT_NAMES = {"errors": "error_rate", "latency": "latency_ms", "unsafe": "unsafe_rate"}
_HINT = "use errors=0.2 (a fraction or 20%), latency=+300ms (or +0.3s), unsafe=0.1"
_LATENCY = re.compile(r"^\+?\s*(\d+(?:\.\d+)?)\s*(ms|s)?$")


def parse_faults(texts: Sequence[str]) -> dict[str, float]:
    """``["errors=0.2", "latency=+300ms"]`` -> ``{"error_rate": 0.2, "latency_ms": 300.0}``.

    The result is the ``faults`` section of a release's ``config.json``
    (see :mod:`airlock.runtime.faults`).
    """
    if not texts:
        raise InvalidInput("a drill needs at least one fault", hint=_HINT)
    faults: dict[str, float] = {}
    for text in texts:
        name, sep, raw = text.partition("=")
        name, raw = name.strip().lower(), raw.strip()
        if not sep or name not in FAULT_NAMES or not raw:
            raise InvalidInput(f"not a fault: {text!r}", hint=_HINT)
        key = FAULT_NAMES[name]
        if key in faults:
            raise InvalidInput(f"fault {name} given twice", hint=_HINT)
        faults[key] = _latency(raw, text) if name == "latency" else _rate(raw, text)
    return faults


def _rate(raw: str, text: str) -> float:
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise InvalidInput(f"not a fault rate: {text!r}", hint=_HINT) from None
    if not 0 < value <= 1 or not math.isfinite(value):
        raise InvalidInput(f"a fault rate must be in (0, 1], got {text!r}", hint=_HINT)
    return value


def _latency(raw: str, text: str) -> float:
    match = _LATENCY.match(raw)
    if match is None:
        raise InvalidInput(f"not an added latency: {text!r}", hint=_HINT)
    value = float(match.group(1)) * (1000.0 if match.group(2) == "s" else 1.0)
    if not 0 < value <= 600_000:
        raise InvalidInput(f"added latency must be in (0, 600 s], got {text!r}", hint=_HINT)
    return value


def describe(faults: Mapping[str, float]) -> str:
    """``{"error_rate": 0.2, "latency_ms": 300}`` -> ``"errors=20%, latency=+300ms"``."""
    parts = []
    if faults.get("error_rate"):
        parts.append(f"errors={faults['error_rate'] * 100:g}%")
    if faults.get("latency_ms"):
        parts.append(f"latency=+{faults['latency_ms']:g}ms")
    if faults.get("unsafe_rate"):
        parts.append(f"unsafe={faults['unsafe_rate'] * 100:g}%")
    return ", ".join(parts) or "none"


@dataclass(frozen=True, slots=True)
class Observation:
    """One request the drill sent, as its client saw it."""

    sent_at: float  # epoch seconds
    routed: str  # the release the plan chose (the failed one, when stable answered instead)
    status: int  # HTTP status; 0 when no response arrived
    fallback: bool  # the routed release failed and the stable release answered
    guardrail: str | None  # flagged | redacted | blocked, when the safety policy matched
    seconds: float  # until the whole response arrived


def saw_fault(obs: Observation, faulty: str, faults: Mapping[str, float]) -> bool:
    """Did the fault reach the user of this request?"""
    if obs.routed != faulty:
        return False
    if faults.get("latency_ms"):
        return True  # every call to the faulty release waits
    failed = obs.fallback or obs.status >= 500 or obs.status == 0
    flagged = bool(faults.get("unsafe_rate")) and obs.guardrail is not None
    return (bool(faults.get("error_rate")) and failed) or flagged


@dataclass(frozen=True, slots=True)
class DrillSummary:
    outcome: Literal["detected", "missed"]
    detect_seconds: float | None
    revert_seconds: float | None
    requests: int
    faulty_requests: int  # routed to the faulty release
    faulted_requests: int  # of those, where the fault reached the user
    user_errors: int  # error responses users got (most failures are retried on stable)
    exposure_seconds: float | None  # from the rollout's start to the first faulty request

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(
    observations: Sequence[Observation],
    *,
    faulty: str,
    faults: Mapping[str, float],
    started_at: float,
    decided_at: float | None,
) -> DrillSummary:
    """The drill's numbers (see the module docstring); ``decided_at`` None: never rolled back."""
    ordered = sorted(observations, key=lambda o: o.sent_at)
    on_faulty = [o for o in ordered if o.routed == faulty]
    first = on_faulty[0].sent_at if on_faulty else None
    detect = revert = None
    if decided_at is not None:
        detect = max(0.0, decided_at - (first if first is not None else started_at))
        late = [o.sent_at for o in on_faulty if o.sent_at >= decided_at]
        edge = max(late, default=decided_at)
        after = next((o.sent_at for o in ordered if o.sent_at > edge), None)
        revert = (after - decided_at) if after is not None else None
    return DrillSummary(
        outcome="detected" if decided_at is not None else "missed",
        detect_seconds=detect,
        revert_seconds=revert,
        requests=len(ordered),
        faulty_requests=len(on_faulty),
        faulted_requests=sum(1 for o in on_faulty if saw_fault(o, faulty, faults)),
        user_errors=sum(1 for o in ordered if o.status >= 500 or o.status == 0),
        exposure_seconds=(first - started_at) if first is not None else None,
    )


__all__ = [
    "FAULT_NAMES",
    "DrillSummary",
    "Observation",
    "describe",
    "parse_faults",
    "saw_fault",
    "summarize",
]
