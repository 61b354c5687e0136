"""``airlock rollout plan``: what a rollout of a service can detect, from its recent traffic.

Reads the stable release's live telemetry over a look-back window (default the
last hour), turns it into a :class:`~airlock.core.planning.Baseline`, and asks
:func:`~airlock.core.planning.plan_detection` what each step of a spec can
detect in its bake time. Figures the catalog cannot give (a service with no
traffic yet) can be supplied — a request rate, an error rate — and a plan with
no traffic at all says so rather than promising anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from airlock.core.evidence import rate_dispersion
from airlock.core.planning import Baseline, StepPlan, plan_detection
from airlock.core.rollout_spec import RolloutSpec, parse_spec, with_default_quality
from airlock.core.window import CELL_LOG_WIDTH, CELL_MIN_MS, CELLS, CLUSTERS, ReleaseWindow
from airlock.errors import InvalidInput
from airlock.services.serving import Serving
from airlock.services.workspace import Workspace


@dataclass(frozen=True, slots=True)
class RolloutPlan:
    service: str
    stable: str
    baseline: Baseline
    steps: tuple[StepPlan, ...]

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(w for s in self.steps for w in s.warnings)

    def to_dict(self) -> dict[str, Any]:
        def finite(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "service": self.service,
            "stable": self.stable,
            "baseline": {
                "requests_per_second": self.baseline.requests_per_second,
                "error_rate": self.baseline.error_rate,
                "flag_rate": self.baseline.flag_rate,
                "latency_sigma": self.baseline.latency_sigma,
                "dispersion": self.baseline.dispersion,
                "seconds": self.baseline.seconds,
            },
            "steps": [
                {
                    "step": s.index + 1,
                    "weight_pct": s.weight_bp / 100,
                    "bake_seconds": s.bake_seconds,
                    "candidate_requests": s.candidate_requests,
                    "metrics": [
                        {
                            "metric": m.metric,
                            "detectable": finite(m.detectable),
                            "unit": m.unit,
                            "target": finite(m.target),
                            "seconds_to_target": finite(m.seconds_to_target),
                        }
                        for m in s.metrics
                    ],
                    "warnings": list(s.warnings),
                }
                for s in self.steps
            ],
        }


def baseline_from(window: ReleaseWindow, seconds: float) -> Baseline:
    """The figures planning needs from a release's window over ``seconds``."""
    n = window.requests
    sigma = 0.5
    if window.latency_cells:
        cells = np.zeros(CELLS)
        for key, count in window.latency_cells.items():
            cells[key % CELLS] += count
        logs = math.log(CELL_MIN_MS) + CELL_LOG_WIDTH * (np.arange(CELLS) - 0.5)
        total = cells.sum()
        mean = float((cells * logs).sum() / total)
        sigma = max(float(math.sqrt((cells * (logs - mean) ** 2).sum() / total)), 0.01)
    dispersion = 1.0
    if window.clusters.get("requests") and window.clusters.get("errors"):
        zeros = np.zeros((1, CLUSTERS))
        dispersion = float(
            rate_dispersion(
                np.asarray(window.clusters["errors"])[None],
                np.asarray(window.clusters["requests"])[None],
                zeros,
                zeros,
                np.array([0.0]),
            )
        )
    return Baseline(
        requests_per_second=n / seconds if seconds > 0 else 0.0,
        error_rate=window.errors / n if n else 0.0,
        flag_rate=window.guardrail_flags / n if n else 0.0,
        latency_sigma=sigma,
        dispersion=dispersion,
        seconds=seconds,
    )


class RolloutPlanner:
    def __init__(self, workspace: Workspace, *, serving: Serving | None = None) -> None:
        self.serving = serving or Serving(workspace)

    def plan(
        self,
        service: str,
        spec: RolloutSpec | str | Mapping[str, Any],
        *,
        lookback: timedelta = timedelta(hours=1),
        overrides: Mapping[str, float] | None = None,
        targets: Mapping[str, float] | None = None,
        now: datetime | None = None,
    ) -> RolloutPlan:
        """The detection plan of ``spec`` on ``service`` (see the module docstring).

        ``overrides`` may set ``requests_per_second``, ``error_rate``, ``flag_rate``
        or ``latency_sigma`` where the service has no (or unrepresentative) traffic.
        """
        parsed = spec if not isinstance(spec, str | Mapping) else parse_spec(spec)
        defaults = self.serving.quality(service)  # what the rollout would score, as at start
        parsed = with_default_quality(parsed, defaults.settings if defaults else None)
        plan = self.serving.plan(service)
        now = now or datetime.now(UTC)
        records = self.serving.telemetry(service, since=now - lookback, until=now)
        record = records.get(plan.stable)
        if record is not None and record.requests > 0:
            seconds = max((record.window_end - record.window_start).total_seconds(), 1.0)
            baseline = baseline_from(record.window(), seconds)
        else:
            baseline = Baseline(requests_per_second=0.0, error_rate=0.0, flag_rate=0.0)
        extra = dict(overrides or {})
        unknown = set(extra) - {"requests_per_second", "error_rate", "flag_rate", "latency_sigma"}
        if unknown:
            raise InvalidInput(f"cannot override {', '.join(sorted(unknown))}")
        for name, value in extra.items():
            if not math.isfinite(value) or value < 0:
                raise InvalidInput(f"{name} must be a finite number >= 0, got {value!r}")
        if extra:
            baseline = Baseline(**{**_fields(baseline), **extra})
        if baseline.requests_per_second <= 0:
            raise InvalidInput(
                f"{service} served no live traffic on {plan.stable} in the last "
                f"{lookback.total_seconds():g} s, so nothing can be planned from it",
                hint="give the expected traffic: --rps 50 --error-rate 0.01",
            )
        steps = plan_detection(
            parsed.schedule(), parsed.judged_analysis, baseline, dict(targets or {})
        )
        return RolloutPlan(service, plan.stable, baseline, tuple(steps))


def _fields(baseline: Baseline) -> dict[str, float]:
    return {
        "requests_per_second": baseline.requests_per_second,
        "error_rate": baseline.error_rate,
        "flag_rate": baseline.flag_rate,
        "latency_sigma": baseline.latency_sigma,
        "dispersion": baseline.dispersion,
        "seconds": baseline.seconds,
    }


__all__ = ["RolloutPlan", "RolloutPlanner", "baseline_from"]
