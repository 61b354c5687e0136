"""The analysis verdict as it is kept and shown: per-metric verdicts, the sample-ratio check,
and :class:`VerdictReport`, the frozen value a rollout's newest verdict and each history entry
carry across the services boundary (pure).

:class:`~airlock.core.analysis.AnalysisVerdict` is what the analysis computes;
``verdict.report()`` is what is stored (as JSON: unbounded values are ``null``) and read back
with :meth:`VerdictReport.from_dict`. The CLI, the demo, the API and the dashboard read the
report's attributes (or its JSON), never keys of a loose dict.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

Outcome = Literal["pass", "fail", "inconclusive"]


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _unbounded(value: Any, *, low: bool = False) -> float:
    """A stored number back as a float; ``null`` is the unbounded end."""
    if value is None:
        return -math.inf if low else math.inf
    return float(value)


@dataclass(frozen=True, slots=True)
class MetricVerdict:
    """One metric's comparison. Harm is ``ci_low > threshold``; see ``effect_label``.

    ``evidence`` is the e-value so far (log scale shown as a plain number),
    ``evidence_needed`` the value that rolls back; ``mde`` is the smallest effect
    (in the units of ``effect``) that the data so far would expect to detect.
    """

    metric: str
    outcome: Outcome
    candidate_value: float
    stable_value: float
    effect: float
    ci_low: float
    ci_high: float
    threshold: float
    n_candidate: int
    n_stable: int
    effect_label: str
    reason: str
    evidence: float = 1.0
    evidence_needed: float = math.inf
    mde: float = math.inf
    required: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {name: _finite(getattr(self, name)) for name in self.__slots__}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MetricVerdict:
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue  # stored before the field existed: its default
            v = d[f.name]
            if f.type == "float":
                v = _unbounded(v, low=f.name == "ci_low")
            values[f.name] = v
        values["outcome"] = cast(Outcome, str(d["outcome"]))
        return cls(**values)


@dataclass(frozen=True, slots=True)
class SrmReport:
    """The sample-ratio check as kept with a verdict (``evidence`` may be unbounded)."""

    mismatch: bool
    observed_share: float
    planned_share: float
    evidence: float
    evidence_needed: float

    def to_dict(self) -> dict[str, Any]:
        return {name: _finite(getattr(self, name)) for name in self.__slots__}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SrmReport:
        return cls(
            mismatch=bool(d["mismatch"]),
            observed_share=float(d["observed_share"]),
            planned_share=float(d["planned_share"]),
            evidence=_unbounded(d.get("evidence")),
            evidence_needed=_unbounded(d.get("evidence_needed")),
        )


@dataclass(frozen=True, slots=True)
class VerdictReport:
    """An analysis verdict as stored with a rollout and shown to people."""

    outcome: Outcome
    n_candidate: int
    n_stable: int
    reason: str
    per_metric: tuple[MetricVerdict, ...] = ()
    srm: SrmReport | None = None

    def metric(self, name: str) -> MetricVerdict:
        for m in self.per_metric:
            if m.metric == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "n_candidate": self.n_candidate,
            "n_stable": self.n_stable,
            "reason": self.reason,
            "per_metric": [m.to_dict() for m in self.per_metric],
            "srm": self.srm.to_dict() if self.srm is not None else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VerdictReport:
        srm = d.get("srm")
        return cls(
            outcome=cast(Outcome, str(d["outcome"])),
            n_candidate=int(d["n_candidate"]),
            n_stable=int(d["n_stable"]),
            reason=str(d.get("reason", "")),
            per_metric=tuple(MetricVerdict.from_dict(m) for m in d.get("per_metric", ())),
            srm=SrmReport.from_dict(srm) if srm else None,
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> VerdictReport | None:
        return cls.from_dict(json.loads(text)) if text else None


__all__ = ["MetricVerdict", "Outcome", "SrmReport", "VerdictReport"]
