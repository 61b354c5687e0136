"""Planning what a rollout can detect: monotone in traffic and bake time, honest at low traffic."""

from __future__ import annotations

import math

from airlock.core.analysis import AnalysisSettings
from airlock.core.planning import Baseline, plan_detection
from airlock.core.rollout_spec import RolloutStep

BUSY = Baseline(requests_per_second=1000, error_rate=0.01, flag_rate=0.005, latency_sigma=0.47)


def metric(plans: list, step: int, name: str):  # type: ignore[no-untyped-def]
    return {m.metric: m for m in plans[step].metrics}[name]


def test_more_traffic_or_a_longer_bake_detects_smaller_effects() -> None:
    settings = AnalysisSettings()
    short = plan_detection((RolloutStep(500, 60),), settings, BUSY)
    long = plan_detection((RolloutStep(500, 600),), settings, BUSY)
    quiet = plan_detection(
        (RolloutStep(500, 600),),
        settings,
        Baseline(requests_per_second=10, error_rate=0.01, flag_rate=0.005),
    )
    for name in ("error_rate", "latency"):
        assert metric(long, 0, name).detectable < metric(short, 0, name).detectable
        assert metric(long, 0, name).detectable < metric(quiet, 0, name).detectable
    assert quiet[0].warnings and not long[0].warnings


def test_expected_time_to_detect_matches_the_bench_order_of_magnitude() -> None:
    """bench detection: 1 % -> 2 % errors at 5 % of 1000 req/s takes ~2,000 canary requests."""
    plans = plan_detection((RolloutStep(500, 1800),), AnalysisSettings(), BUSY)
    seconds = metric(plans, 0, "error_rate").seconds_to_target
    assert 20 < seconds < 120  # ~50 canary requests a second


def test_no_traffic_detects_nothing_and_says_so() -> None:
    plans = plan_detection(
        (RolloutStep(500, 300),),
        AnalysisSettings(),
        Baseline(requests_per_second=0.0, error_rate=0.0, flag_rate=0.0),
    )
    assert math.isinf(metric(plans, 0, "error_rate").detectable)
    assert any("min_requests" in w for w in plans[0].warnings)
