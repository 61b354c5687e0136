"""Candidate-vs-stable analysis: plain values, edge cases, and simulated traffic.

The validity checks simulate traffic the gateway really produces — sticky users
with uneven request rates and propensities, shared incidents, several steps —
with a fixed seed set, through the very functions the analysis uses. The full
comparison with the oracle SPRT, Flagger and Kayenta is ``make bench-detection``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from airlock.core import rollout as machine
from airlock.core.analysis import (
    AnalysisSettings,
    AnalysisVerdict,
    CustomMetric,
    MetricSettings,
    ReleaseWindow,
    StepWindows,
    analyze,
    judge,
    step_evidence,
)
from airlock.core.evidence import (
    UP_GRID,
    label_loglik,
    rate_dispersion,
    rate_log_evalue,
)
from airlock.core.rollout import CanarySpec, CanaryStep
from airlock.core.window import (
    CELLS,
    CLUSTERS,
    cells_quantile,
    custom_field,
    latency_cell,
)
from airlock.errors import InvalidInput

Array = NDArray[np.float64]


def window(
    requests: int,
    errors: int = 0,
    *,
    flags: int = 0,
    median_ms: float | None = 150.0,
    sigma: float = 0.47,
    seed: int = 0,
    **extra: object,
) -> ReleaseWindow:
    """Independent requests spread over the clusters, with log-normal latency cells."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, CLUSTERS, requests)
    is_error = np.zeros(requests, dtype=bool)
    is_error[rng.choice(requests, errors, replace=False)] = True
    is_flag = np.zeros(requests, dtype=bool)
    is_flag[rng.choice(requests, flags, replace=False)] = True
    cells: dict[int, int] = {}
    if median_ms is not None:
        latency = np.exp(rng.normal(math.log(median_ms), sigma, requests))
        for g, ms, bad in zip(cluster, latency, is_error, strict=True):
            if not bad:
                key = int(g) * CELLS + latency_cell(float(ms))
                cells[key] = cells.get(key, 0) + 1

    def per(mask: NDArray[np.bool_]) -> tuple[float, ...]:
        return tuple(float(x) for x in np.bincount(cluster[mask], minlength=CLUSTERS))

    return ReleaseWindow(
        requests=requests,
        errors=errors,
        guardrail_flags=flags,
        clusters={
            "requests": per(np.ones(requests, dtype=bool)),
            "errors": per(is_error),
            "guardrail_flags": per(is_flag),
        },
        latency_cells=cells,
        **extra,  # type: ignore[arg-type]
    )


def finite_json(verdict: AnalysisVerdict) -> bool:
    text = json.dumps(verdict.to_dict(), allow_nan=False)  # raises on NaN / inf
    return bool(text)


# -- windows and cells ---------------------------------------------------------------


def test_cells_are_two_percent_wide_and_quantiles_are_that_accurate() -> None:
    for ms in (0.2, 1.0, 100.0, 12_345.0):
        cell = latency_cell(ms)
        assert latency_cell(ms * 1.0201) in (cell + 1, cell + 2)
    rng = np.random.default_rng(3)
    values = np.exp(rng.normal(math.log(150), 0.47, 50_000))
    cells: dict[int, int] = {}
    for ms in values:
        cells[latency_cell(float(ms))] = cells.get(latency_cell(float(ms)), 0) + 1
    for q in (0.5, 0.99):
        assert cells_quantile(cells, q) == pytest.approx(np.quantile(values, q), rel=0.02)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"requests": -1}, "non-negative"),
        ({"requests": 1, "errors": 2}, "cannot exceed"),
        ({"clusters": {"requests": (1.0,)}}, "64 finite"),
        ({"clusters": {"requests": (math.nan,) * CLUSTERS}}, "64 finite"),
        ({"latency_cells": {CLUSTERS * CELLS: 1}}, "cluster"),
    ],
)
def test_release_window_refuses_impossible_counts(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        ReleaseWindow(**kwargs)  # type: ignore[arg-type]


window_parts = st.builds(
    lambda n, e, seed: window(n, min(e, n), seed=seed, median_ms=100.0),
    st.integers(0, 60),
    st.integers(0, 5),
    st.integers(0, 10_000),
)


@settings(max_examples=40, deadline=None)
@given(window_parts, window_parts, window_parts)
def test_windows_merge_associatively_and_round_trip(
    a: ReleaseWindow, b: ReleaseWindow, c: ReleaseWindow
) -> None:
    left, right = (a + b) + c, a + (b + c)
    assert left.to_dict() == right.to_dict()
    assert ReleaseWindow.from_dict(json.loads(json.dumps(left.to_dict()))) == left
    assert sum(left.clusters["requests"]) == left.requests
    assert sum(left.latency_cells.values()) == left.requests - left.errors


# -- verdicts on plain values ------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidate", "stable"),
    [
        (ReleaseWindow(), ReleaseWindow()),
        (ReleaseWindow(), window(1000)),
        (window(1000), ReleaseWindow()),
        (window(3, 3), window(3)),
        (ReleaseWindow(requests=50, errors=50), ReleaseWindow(requests=50)),  # no clusters
    ],
)
def test_zero_tiny_and_missing_data_never_give_nan(
    candidate: ReleaseWindow, stable: ReleaseWindow
) -> None:
    verdict = analyze(candidate, stable, weight_bp=500)
    assert finite_json(verdict)
    assert verdict.outcome in ("inconclusive", "fail")


def test_a_clean_candidate_with_enough_data_passes_and_reports_what_it_could_detect() -> None:
    verdict = analyze(window(2000, 20, seed=1), window(20_000, 200, seed=2))
    assert verdict.outcome == "pass", verdict.reason
    errors = verdict.metric("error_rate")
    assert 1.0 < errors.mde < 3.0  # could have caught a doubled error rate or so
    latency = verdict.metric("latency")
    assert 0.5 < latency.mde < 0.6
    assert errors.ci_low < 1.0 < errors.ci_high


def test_below_min_requests_never_passes() -> None:
    verdict = analyze(window(100), window(100))
    assert verdict.outcome == "inconclusive"
    assert "each side needs 200" in verdict.reason


def test_a_broken_candidate_fails_before_min_requests() -> None:
    verdict = analyze(window(60, 30, seed=1), window(2000, 20, seed=2))
    assert verdict.outcome == "fail"
    errors = verdict.metric("error_rate")
    assert errors.outcome == "fail"
    assert errors.ci_low > 1.0 and errors.evidence >= errors.evidence_needed


def test_rate_tolerance_is_relative() -> None:
    doubled = (window(20_000, 400, seed=1), window(20_000, 200, seed=2))
    assert analyze(*doubled).metric("error_rate").outcome == "fail"
    lenient = AnalysisSettings(
        metrics=MetricSettings.model_validate({"error_rate": {"tolerance": 2.0}})
    )
    assert analyze(*doubled, lenient).metric("error_rate").outcome == "pass"


def test_a_shared_incident_is_not_the_candidates_fault() -> None:
    """Errors ten times higher on both sides in proportion: the label test sees no harm."""
    calm = analyze(window(1000, 10, seed=1), window(19_000, 190, seed=2))
    storm = analyze(window(1000, 100, seed=1), window(19_000, 1900, seed=2))
    assert calm.metric("error_rate").outcome == storm.metric("error_rate").outcome == "pass"


@pytest.mark.parametrize(
    ("slowdown", "sigma", "outcome"),
    [(1.08, 0.05, "pass"), (1.20, 0.05, "fail"), (1.0, 0.47, "pass"), (1.5, 0.47, "fail")],
)
def test_latency_body_is_unbiased_inside_and_outside_the_tolerance(
    slowdown: float, sigma: float, outcome: str
) -> None:
    candidate = window(2000, median_ms=100.0 * slowdown, sigma=sigma, seed=1)
    stable = window(20_000, median_ms=100.0, sigma=sigma, seed=2)
    verdict = analyze(candidate, stable)
    assert verdict.metric("latency").outcome == outcome, verdict.reason
    if outcome == "pass":
        assert verdict.outcome == "pass", verdict.reason


def test_a_doubled_p99_with_the_same_median_fails_the_tail() -> None:
    candidate = window(3000, median_ms=150.0, sigma=0.769, seed=1)
    stable = window(20_000, median_ms=150.0, sigma=0.47, seed=2)
    verdict = analyze(candidate, stable)
    assert verdict.metric("latency_tail").outcome == "fail"
    assert verdict.metric("latency").outcome != "fail"  # the body alone would miss it


def test_missing_latency_blocks_a_pass_but_not_when_optional() -> None:
    blind = (window(2000, median_ms=None, seed=1), window(20_000, median_ms=None, seed=2))
    assert analyze(*blind).outcome == "inconclusive"
    optional = AnalysisSettings(
        metrics=MetricSettings.model_validate({"latency": {"required": False}})
    )
    assert analyze(*blind, optional).outcome == "pass"


def test_feedback_is_off_by_default_and_judged_when_on() -> None:
    assert "feedback" not in AnalysisSettings().weights()
    on = AnalysisSettings(metrics=MetricSettings.model_validate({"feedback": {"enabled": True}}))
    worse = analyze(
        window(2000, feedback_sum=100.0, feedback_count=400, seed=1),
        window(20_000, feedback_sum=3000.0, feedback_count=4000, seed=2),
        on,
    )
    assert worse.metric("feedback").outcome == "fail"
    silent = analyze(window(2000, seed=1), window(20_000, seed=2), on)
    assert silent.metric("feedback").evidence == 1.0
    assert silent.outcome == "pass"  # optional and silent: no α drained, nothing blocked


def test_a_required_custom_metric_without_data_holds_the_step() -> None:
    spec = AnalysisSettings(metrics=MetricSettings(custom={"json_ok": CustomMetric(required=True)}))
    silent = analyze(window(2000, seed=1), window(20_000, seed=2), spec)
    assert silent.outcome == "inconclusive"
    assert "custom.json_ok" in silent.reason
    good = {"json_ok": (1900.0, 2000.0)}
    flowing = analyze(
        window(2000, seed=1, custom=good),
        window(20_000, seed=2, custom={"json_ok": (19_000.0, 20_000.0)}),
        spec,
    )
    assert flowing.metric("custom.json_ok").outcome == "pass"
    broken = analyze(
        window(2000, seed=1, custom={"json_ok": (1000.0, 2000.0)}),
        window(20_000, seed=2, custom={"json_ok": (19_000.0, 20_000.0)}),
        spec,
    )
    assert broken.outcome == "fail"


def test_custom_metrics_use_their_per_cluster_counts() -> None:
    clusters = {
        custom_field("ok", "successes"): (10.0,) * CLUSTERS,
        custom_field("ok", "trials"): (10.0,) * CLUSTERS,
    }
    w = ReleaseWindow(custom={"ok": (640.0, 640.0)}, clusters=clusters)
    assert w.clusters[custom_field("ok", "trials")][0] == 10.0


def test_weights_split_alpha_and_are_validated() -> None:
    default = AnalysisSettings()
    assert set(default.weights()) == {
        "error_rate",
        "guardrail_rate",
        "latency",
        "latency_tail",
        "ttft",
    }
    assert default.metric_alpha("error_rate") == pytest.approx(0.01 / 4.5)
    heavy = AnalysisSettings(metrics=MetricSettings.model_validate({"error_rate": {"weight": 3.5}}))
    assert heavy.metric_alpha("error_rate") == pytest.approx(0.01 * 3.5 / 7.0)
    with pytest.raises(ValueError, match="greater than 0"):
        MetricSettings.model_validate({"error_rate": {"weight": 0}})


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 5000),
    st.integers(0, 5000),
    st.floats(0, 1),
    st.floats(0, 1),
)
def test_any_counts_give_a_finite_coherent_verdict(
    n_c: int, n_s: int, f_c: float, f_s: float
) -> None:
    c = ReleaseWindow(requests=n_c, errors=int(n_c * f_c))
    s = ReleaseWindow(requests=n_s, errors=int(n_s * f_s))
    verdict = analyze(c, s, weight_bp=500)
    assert finite_json(verdict)
    for m in verdict.per_metric:
        assert m.ci_low <= m.ci_high
        assert (m.outcome == "fail") == (m.evidence >= m.evidence_needed)
    assert (verdict.outcome == "fail") == any(m.outcome == "fail" for m in verdict.per_metric)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 200), st.integers(1, 5))
def test_more_candidate_errors_never_weaken_the_evidence(errors: int, extra: int) -> None:
    stable = ReleaseWindow(requests=20_000, errors=200)
    base = analyze(ReleaseWindow(requests=2000, errors=errors), stable)
    more = analyze(ReleaseWindow(requests=2000, errors=errors + extra), stable)
    assert more.metric("error_rate").evidence >= base.metric("error_rate").evidence


# -- evidence across steps, sample ratio --------------------------------------------------


def test_evidence_carries_across_strata() -> None:
    settings_ = AnalysisSettings()
    halves = [
        step_evidence(
            StepWindows(window(500, 12, seed=s), window(9500, 95, seed=s + 1), 500), settings_
        )
        for s in (1, 3)
    ]
    one = judge(halves[-1:], settings_).metric("error_rate")
    both = judge(halves, settings_).metric("error_rate")
    assert both.evidence > one.evidence  # the first step's evidence was kept
    assert both.mde < one.mde


def test_a_sample_ratio_mismatch_is_reported_and_pauses_the_rollout() -> None:
    verdict = analyze(window(200, seed=1), window(19_800, seed=2), weight_bp=500)
    assert verdict.srm is not None and verdict.srm.mismatch
    assert verdict.outcome == "inconclusive" and "sample ratio" in verdict.reason
    ok = analyze(window(1000, seed=1), window(19_000, seed=2), weight_bp=500)
    assert ok.srm is not None and not ok.srm.mismatch
    spec = CanarySpec(steps=(CanaryStep(weight_pct=5, bake_seconds=60), CanaryStep(weight_pct=100)))
    state = machine.start(spec, 0.0)
    decision = machine.decide(spec, state, verdict, 10.0)
    assert decision.action == "pause" and "sample ratio" in decision.reason


def test_an_advance_closes_a_stratum_in_the_state() -> None:
    spec = CanarySpec(steps=(CanaryStep(weight_pct=5, bake_seconds=1), CanaryStep(weight_pct=100)))
    state = machine.start(spec, 0.0)
    good = analyze(window(1000, 10, seed=1), window(19_000, 190, seed=2), weight_bp=500)
    decision = machine.decide(spec, state, good, 5.0)
    assert decision.action == "advance"
    assert decision.new_state.strata == ((0.0, 5.0, 0),)
    restored = machine.RolloutState.from_dict(json.loads(json.dumps(decision.new_state.to_dict())))
    assert restored == decision.new_state


# -- validity on simulated traffic -------------------------------------------------------


def simulate_rates(
    seeds: int,
    seconds: int,
    *,
    users: int,
    p_rate: tuple[float, float],
    incident: bool = False,
    correct: bool = True,
    seed: int = 11,
) -> Array:
    """First second a rate e-process rolls back (inf = never); users sticky and uneven.

    Errors only, 5 % canary, ~400 requests/s. Users have lognormal request rates and
    gamma error propensities (shape 0.5); ``correct=False`` drops the clustering
    correction (φ = 1) to show the check has teeth.
    """
    rng = np.random.default_rng(seed)
    threshold = math.log(len(AnalysisSettings().weights()) / 0.01)
    first = np.full(seeds, np.inf)
    for s in range(seeds):
        lam = rng.lognormal(0, 1.5, users)
        lam *= 400.0 / lam.sum()
        prop = rng.gamma(0.5, 2.0, users)
        bucket = rng.integers(0, 10_000, users)
        arm = (bucket >= 500).astype(int)  # 0 = candidate
        group = arm * CLUSTERS + bucket % CLUSTERS
        # A group of users' requests and errors are Poisson processes at the summed rates.
        rate = np.bincount(group, lam, 2 * CLUSTERS)
        bad = np.bincount(group, lam * prop, 2 * CLUSTERS)
        share = np.where(rate > 0, bad / np.where(rate > 0, rate, 1), 0).reshape(2, CLUSTERS)
        rate = rate.reshape(2, CLUSTERS)
        req = np.zeros((2, CLUSTERS))
        err = np.zeros((2, CLUSTERS))
        for t in range(1, seconds + 1):
            n = rng.poisson(rate)
            storm = 10.0 if incident and 60 <= t < 120 else 1.0
            p = np.minimum(np.array(p_rate)[:, None] * share * storm, 1.0)
            req += n
            err += rng.binomial(n, p)
            ll = label_loglik(err[0].sum(), req[0].sum(), err[1].sum(), req[1].sum(), 0.0, UP_GRID)
            phi = (
                rate_dispersion(
                    err[0][None], req[0][None], err[1][None], req[1][None], np.array([0.05])
                )
                if correct
                else np.array(1.0)
            )
            if float(rate_log_evalue(ll, phi)) >= threshold:
                first[s] = t
                break
    return first


@pytest.mark.slow
def test_sticky_uneven_users_rarely_roll_back_an_identical_candidate() -> None:
    corrected = simulate_rates(100, 240, users=2000, p_rate=(0.01, 0.01))
    assert np.isfinite(corrected).mean() <= 0.025
    naive = simulate_rates(100, 240, users=2000, p_rate=(0.01, 0.01), correct=False)
    assert np.isfinite(naive).mean() >= 3 * max(np.isfinite(corrected).mean(), 0.01)


@pytest.mark.slow
def test_a_shared_incident_does_not_roll_back_an_identical_candidate() -> None:
    first = simulate_rates(80, 240, users=20_000, p_rate=(0.01, 0.01), incident=True)
    assert np.isfinite(first).mean() <= 0.025


@pytest.mark.slow
def test_a_fivefold_error_rate_is_caught_on_sticky_traffic() -> None:
    """Sticky, uneven users carry less information than independent requests (here the
    clustering makes each event worth ~1/4 of one), so the effect is larger than the
    bench's independent-traffic ones; it must still be caught, and quickly."""
    first = simulate_rates(20, 300, users=20_000, p_rate=(0.05, 0.01))
    assert np.isfinite(first).mean() >= 0.9
