"""Candidate-vs-stable analysis: plain values, edge cases, and simulated A/A traffic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from airlock.core.analysis import (
    LATENCY_BUCKETS_MS,
    LATENCY_HISTOGRAM_SIZE,
    LOG_BUCKET_WIDTH,
    AnalysisSettings,
    AnalysisVerdict,
    CustomMetric,
    MetricSettings,
    ReleaseWindow,
    analyze,
    latency_bucket,
    latency_quantile,
)
from airlock.core.sequential import (
    confidence_bounds,
    latency_exceedance,
    proportion_difference,
    tolerance_kernel,
)
from airlock.errors import InvalidInput

BOUNDS = np.array(LATENCY_BUCKETS_MS)


def bucket_probabilities(median_ms: float, sigma: float = 0.47) -> NDArray[np.float64]:
    """P(latency in each histogram bucket) for a log-normal latency."""
    z = (np.log(BOUNDS) - math.log(median_ms)) / sigma
    cdf = np.array([0.5 * math.erfc(-x / math.sqrt(2)) for x in z])
    return np.diff(np.concatenate([[0.0], cdf, [1.0]]))


def histogram(n: int, median_ms: float, seed: int = 0) -> tuple[int, ...]:
    rng = np.random.default_rng(seed)
    return tuple(int(c) for c in rng.multinomial(n, bucket_probabilities(median_ms)))


def window(
    requests: int,
    errors: int = 0,
    *,
    flags: int = 0,
    median_ms: float | None = 150.0,
    seed: int = 0,
    **extra: object,
) -> ReleaseWindow:
    hist = histogram(requests, median_ms, seed) if median_ms is not None else ()
    return ReleaseWindow(
        requests=requests,
        errors=errors,
        guardrail_flags=flags,
        latency_histogram=hist,
        **extra,  # type: ignore[arg-type]
    )


# -- buckets and windows ------------------------------------------------------------


def test_latency_buckets_are_log_spaced_from_1ms_to_60s() -> None:
    assert LATENCY_BUCKETS_MS[0] == 1.0
    assert LATENCY_BUCKETS_MS[-1] == 60_000.0
    assert 35 <= len(LATENCY_BUCKETS_MS) <= 45
    ratios = np.diff(np.log(BOUNDS))
    assert np.allclose(ratios, LOG_BUCKET_WIDTH, atol=1e-3)
    assert len(LATENCY_BUCKETS_MS) + 1 == LATENCY_HISTOGRAM_SIZE


@pytest.mark.parametrize(
    ("ms", "index"),
    [(0.0, 0), (1.0, 0), (1.001, 1), (LATENCY_BUCKETS_MS[7], 7), (60_000.0, 40), (1e9, 41)],
)
def test_latency_bucket_upper_bounds_are_inclusive(ms: float, index: int) -> None:
    assert latency_bucket(ms) == index


def test_latency_quantile_recovers_a_known_median_and_p99() -> None:
    hist = histogram(200_000, 150.0)
    assert latency_quantile(hist, 0.5) == pytest.approx(150.0, rel=0.03)
    assert latency_quantile(hist, 0.99) == pytest.approx(150 * math.exp(2.326 * 0.47), rel=0.05)
    assert latency_quantile((), 0.5) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"requests": 10, "errors": 11}, "cannot exceed"),
        ({"requests": 10, "guardrail_flags": 11}, "cannot exceed"),
        ({"requests": -1}, "non-negative"),
        ({"requests": 1.5}, "non-negative"),
        ({"feedback_sum": 3.0, "feedback_count": 2}, "feedback_sum"),
        ({"feedback_sum": float("nan"), "feedback_count": 2}, "feedback_sum"),
        ({"latency_histogram": (1, 2, 3)}, "expected 42"),
        ({"latency_histogram": (-1,) + (0,) * 41}, "non-negative"),
        ({"custom": {"ok": (3.0, 2.0)}}, "successes <= trials"),
        ({"custom": {"ok": (1.0,)}}, "successes, trials"),
    ],
)
def test_release_window_refuses_impossible_counts(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        ReleaseWindow(**kwargs)  # type: ignore[arg-type]


def test_windows_add_up_and_round_trip() -> None:
    a = window(100, 2, flags=1, feedback_sum=3.0, feedback_count=4, custom={"ok": (5.0, 9.0)})
    b = window(50, 1, seed=1, custom={"ok": (1.0, 1.0), "new": (0.0, 2.0)})
    total = a + b
    assert (total.requests, total.errors, total.guardrail_flags) == (150, 3, 1)
    assert total.latency_count == 150
    assert dict(total.custom) == {"ok": (6.0, 10.0), "new": (0.0, 2.0)}
    assert a + ReleaseWindow() == a
    assert ReleaseWindow.from_dict(total.to_dict()) == total
    with pytest.raises(InvalidInput):
        ReleaseWindow.from_dict({"requests": 1, "bogus": 2})


def test_windows_are_immutable_and_hashable() -> None:
    w = window(10, custom={"ok": (1.0, 2.0)})
    with pytest.raises(TypeError):
        w.custom["ok"] = (0.0, 0.0)  # type: ignore[index]
    assert hash(w) == hash(window(10, custom={"ok": (1.0, 2.0)}))


# -- verdicts on plain values ----------------------------------------------------------


def all_finite(verdict: AnalysisVerdict) -> bool:
    return all(
        math.isfinite(x)
        for m in verdict.per_metric
        for x in (m.candidate_value, m.stable_value, m.effect, m.ci_low, m.ci_high)
    )


@pytest.mark.parametrize(
    ("candidate", "stable"),
    [
        (ReleaseWindow(), ReleaseWindow()),
        (window(500), ReleaseWindow()),
        (ReleaseWindow(), window(500)),
        (window(500, median_ms=None), window(500, median_ms=None)),
        (window(1), window(1)),
    ],
)
def test_zero_and_tiny_counts_are_inconclusive_never_nan(
    candidate: ReleaseWindow, stable: ReleaseWindow
) -> None:
    verdict = analyze(candidate, stable)
    assert verdict.outcome == "inconclusive"
    assert all_finite(verdict)


def test_a_clean_candidate_with_enough_data_passes() -> None:
    verdict = analyze(window(2000, 20, flags=10), window(18_000, 180, flags=90, seed=1))
    assert verdict.outcome == "pass", verdict.reason
    errors = verdict.metric("error_rate")
    assert errors.outcome == "pass"
    assert errors.ci_low < 0 < errors.ci_high
    assert errors.candidate_value == pytest.approx(0.01)
    assert "at most" in errors.reason
    # Feedback has no data: reported, but it does not block the pass.
    assert verdict.metric("feedback").outcome == "inconclusive"


def test_below_min_requests_never_passes() -> None:
    settings = AnalysisSettings(min_requests=200)
    verdict = analyze(window(199), window(100_000, seed=1), settings)
    assert verdict.outcome == "inconclusive"
    assert "199 candidate" in verdict.reason
    assert analyze(window(200), window(100_000, seed=1), settings).outcome == "pass"


def test_a_broken_candidate_fails_before_min_requests() -> None:
    verdict = analyze(window(120, 40), window(20_000, 200, seed=1))
    assert verdict.outcome == "fail"
    errors = verdict.metric("error_rate")
    assert errors.outcome == "fail"
    assert errors.ci_low > errors.threshold == 0.0
    assert "error rate" in verdict.reason


def test_error_tolerance_is_absolute() -> None:
    candidate, stable = window(20_000, 400), window(200_000, 2000, seed=1)  # 2 % vs 1 %
    assert analyze(candidate, stable).outcome == "fail"
    lenient = AnalysisSettings(
        metrics=MetricSettings.model_validate({"error_rate": {"tolerance": 0.02}})
    )
    assert analyze(candidate, stable, lenient).metric("error_rate").outcome == "pass"


def test_guardrail_flags_are_judged_like_errors() -> None:
    verdict = analyze(window(5000, flags=100), window(45_000, flags=225, seed=1))  # 2 % vs 0.5 %
    assert verdict.metric("guardrail_rate").outcome == "fail"
    assert verdict.metric("error_rate").outcome == "pass"


@pytest.mark.parametrize(
    ("slowdown", "tolerance", "outcome"),
    [(1.3, 0.10, "fail"), (1.05, 0.10, "pass"), (1.0, 0.0, "pass"), (1.1, 0.0, "fail")],
)
def test_latency_tolerance_is_relative(slowdown: float, tolerance: float, outcome: str) -> None:
    settings = AnalysisSettings(
        metrics=MetricSettings.model_validate({"latency": {"tolerance": tolerance}})
    )
    candidate = window(20_000, median_ms=150 * slowdown, seed=2)
    verdict = analyze(candidate, window(100_000, seed=3), settings)
    latency = verdict.metric("latency")
    assert latency.outcome == outcome, latency.reason
    assert latency.threshold == 0.5
    assert 0 <= latency.ci_low <= latency.effect <= latency.ci_high <= 1
    assert latency.candidate_value == pytest.approx(150 * slowdown, rel=0.05)


def test_missing_latency_blocks_a_pass_but_not_when_optional() -> None:
    candidate, stable = window(1000, median_ms=None), window(9000, median_ms=None)
    verdict = analyze(candidate, stable)
    assert verdict.outcome == "inconclusive"
    assert "latency" in verdict.reason
    optional = AnalysisSettings(
        metrics=MetricSettings.model_validate({"latency": {"required": False}})
    )
    assert analyze(candidate, stable, optional).outcome == "pass"


def test_worse_feedback_fails_and_better_feedback_passes() -> None:
    stable = window(20_000, seed=1, feedback_sum=800.0, feedback_count=1000)
    worse = window(2000, feedback_sum=120.0, feedback_count=200)  # 0.6 vs 0.8
    better = window(2000, feedback_sum=190.0, feedback_count=200)
    assert analyze(worse, stable).metric("feedback").outcome == "fail"
    assert analyze(better, stable).metric("feedback").outcome == "pass"
    assert analyze(better, stable).metric("feedback").effect == pytest.approx(0.8 - 0.95)


def test_custom_metrics_follow_their_direction() -> None:
    def run(higher_is_better: bool) -> str:
        settings = AnalysisSettings(
            metrics=MetricSettings(
                custom={"json_valid": CustomMetric(higher_is_better=higher_is_better)}
            )
        )
        candidate = window(2000, custom={"json_valid": (1500.0, 2000.0)})
        stable = window(18_000, seed=1, custom={"json_valid": (17_000.0, 18_000.0)})
        return analyze(candidate, stable, settings).metric("custom.json_valid").outcome

    assert run(higher_is_better=True) == "fail"
    assert run(higher_is_better=False) == "pass"


def test_bonferroni_splits_alpha_over_enabled_metrics() -> None:
    default = AnalysisSettings()
    assert default.metric_count() == 4  # errors, latency, guardrails, feedback
    assert default.metric_alpha() == pytest.approx(0.0025)
    fewer = AnalysisSettings(
        metrics=MetricSettings.model_validate(
            {"feedback": {"enabled": False}, "guardrail_rate": {"enabled": False}}
        )
    )
    assert fewer.metric_alpha() == pytest.approx(0.005)
    more = AnalysisSettings(metrics=MetricSettings(custom={"a": CustomMetric()}))
    assert more.metric_alpha() == pytest.approx(0.002)
    assert len(analyze(window(10), window(10), fewer).per_metric) == 2


def test_verdicts_serialise() -> None:
    verdict = analyze(window(500, 5), window(5000, 50, seed=1))
    data = verdict.to_dict()
    assert data["outcome"] == verdict.outcome
    assert {m["metric"] for m in data["per_metric"]} >= {"error_rate", "latency"}


@settings(max_examples=200, deadline=None)
@given(
    n_c=st.integers(0, 5000),
    n_s=st.integers(0, 50_000),
    e_c=st.floats(0, 1),
    e_s=st.floats(0, 1),
    fb=st.integers(0, 100),
)
def test_any_counts_give_a_finite_coherent_verdict(
    n_c: int, n_s: int, e_c: float, e_s: float, fb: int
) -> None:
    candidate = ReleaseWindow(
        requests=n_c, errors=int(e_c * n_c), feedback_sum=fb / 2, feedback_count=fb
    )
    stable = ReleaseWindow(requests=n_s, errors=int(e_s * n_s))
    verdict = analyze(candidate, stable)
    assert all_finite(verdict)
    for m in verdict.per_metric:
        assert m.ci_low <= m.effect <= m.ci_high
        assert (m.outcome == "fail") == (m.ci_low > m.threshold)
    if verdict.outcome == "pass":
        assert n_c >= 200 and n_s >= 200
    assert (verdict.outcome == "fail") == any(m.outcome == "fail" for m in verdict.per_metric)


# -- sequential behaviour on simulated traffic ---------------------------------------


def simulate(
    seeds: int,
    seconds: int,
    *,
    rps: tuple[float, float] = (20.0, 180.0),
    errors: tuple[float, float] = (0.01, 0.01),
    medians: tuple[float, float] = (150.0, 150.0),
    seed: int = 7,
) -> dict[str, NDArray[np.float64]]:
    """Cumulative per-second counts for (seeds, seconds): candidate first, then stable."""
    rng = np.random.default_rng(seed)
    out: dict[str, NDArray[np.float64]] = {}
    for side, (rate, err, median) in enumerate(zip(rps, errors, medians, strict=True)):
        n = rng.poisson(rate, (seeds, seconds))
        out[f"n{side}"] = n.cumsum(axis=1).astype(np.float64)
        out[f"e{side}"] = rng.binomial(n, err).cumsum(axis=1).astype(np.float64)
        hist = rng.multinomial(n, bucket_probabilities(median))
        out[f"h{side}"] = hist.cumsum(axis=1).astype(np.float64)
    return out


def first_rollbacks(
    data: dict[str, NDArray[np.float64]], settings: AnalysisSettings, *, z: float | None = None
) -> NDArray[np.bool_]:
    """Per (seed, second): does any metric's lower bound exceed its tolerance?

    Same functions and parameters as analyze(); ``z`` swaps in a fixed critical
    value instead (the naive "test at every look" the anytime bound replaces).
    """
    alpha, rho = settings.metric_alpha(), settings.mixture_rho()
    tol = settings.metrics.latency.tolerance
    kernel = tolerance_kernel(LATENCY_HISTOGRAM_SIZE, math.log1p(tol) / LOG_BUCKET_WIDTH)
    estimates = [
        (proportion_difference(data["e0"], data["n0"], data["e1"], data["n1"]), 0.0),
        (latency_exceedance(data["h0"], data["h1"], kernel), 0.0),
    ]
    fails = np.zeros(data["n0"].shape, dtype=bool)
    for est, threshold in estimates:
        if z is None:
            low, _ = confidence_bounds(est, alpha, rho)
        else:
            low = est.effect - z * np.sqrt(est.variance)
        fails |= low > threshold
    return fails


def strict_settings() -> AnalysisSettings:
    # Zero latency tolerance puts the A/A null exactly on the boundary: the hardest case.
    return AnalysisSettings(metrics=MetricSettings.model_validate({"latency": {"tolerance": 0.0}}))


AA_SEEDS = 300


@pytest.fixture(scope="module")
def aa_traffic() -> dict[str, NDArray[np.float64]]:
    """300 A/A rollouts, 10 minutes each, 20 candidate + 180 stable requests a second."""
    return simulate(AA_SEEDS, 600)


def aa_limit(alpha: float) -> float:
    """The most false rollbacks we accept: alpha plus three binomial standard errors."""
    return alpha + 3 * math.sqrt(alpha / AA_SEEDS)


def test_aa_traffic_checked_every_second_rarely_rolls_back(
    aa_traffic: dict[str, NDArray[np.float64]],
) -> None:
    settings = strict_settings()
    rate = first_rollbacks(aa_traffic, settings).any(axis=1).mean()
    assert rate <= aa_limit(settings.alpha), rate


def test_the_aa_check_has_teeth_a_naive_repeated_test_fails_it(
    aa_traffic: dict[str, NDArray[np.float64]],
) -> None:
    settings = strict_settings()
    z = 2.807  # one-sided 0.25 % per metric: right for ONE look, wrong for 600 of them
    rate = first_rollbacks(aa_traffic, settings, z=z).any(axis=1).mean()
    assert rate > aa_limit(settings.alpha), rate


def test_a_real_regression_is_caught_quickly() -> None:
    data = simulate(200, 600, errors=(0.05, 0.01), seed=11)
    fails = first_rollbacks(data, AnalysisSettings())
    caught = fails.any(axis=1)
    assert caught.mean() > 0.99
    first = fails.argmax(axis=1)
    requests = data["n0"][np.arange(200), first]
    assert np.median(requests) < 1500  # ~500 expected; a fixed 1-hour judge needs 72,000


def test_slower_candidate_is_caught_on_latency() -> None:
    data = simulate(100, 600, medians=(150 * 1.3, 150.0), seed=12)
    assert first_rollbacks(data, AnalysisSettings()).any(axis=1).mean() > 0.99


def test_vectorised_bounds_agree_with_analyze() -> None:
    data = simulate(20, 600, errors=(0.03, 0.01), medians=(170.0, 150.0), seed=5)
    settings = strict_settings()
    fails = first_rollbacks(data, settings)
    for s in range(20):
        for t in range(4, 600, 25):
            verdict = analyze(at(data, 0, s, t), at(data, 1, s, t), settings)
            assert (verdict.outcome == "fail") == bool(fails[s, t]), (s, t, verdict.reason)


def at(data: dict[str, NDArray[np.float64]], side: int, s: int, t: int) -> ReleaseWindow:
    """The cumulative window of one side of simulated rollout ``s`` at second ``t``."""
    return ReleaseWindow(
        requests=int(data[f"n{side}"][s, t]),
        errors=int(data[f"e{side}"][s, t]),
        latency_histogram=tuple(int(x) for x in data[f"h{side}"][s, t]),
    )


def test_confidence_bounds_cover_the_truth_for_fixed_samples() -> None:
    rng = np.random.default_rng(3)
    x_c, x_s = rng.binomial(400, 0.03, 4000), rng.binomial(4000, 0.02, 4000)
    low, high = confidence_bounds(proportion_difference(x_c, 400, x_s, 4000), 0.05, 50.0)
    covered = (low <= 0.01) & (high >= 0.01)
    assert covered.mean() > 0.9  # each side 95 % at one look; anytime bounds are wider
