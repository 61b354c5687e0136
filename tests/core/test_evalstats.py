"""Paired statistics for evaluation runs: exactness, coverage and determinism."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from airlock.core import evalstats
from airlock.errors import InvalidInput


def test_mcnemar_matches_the_exact_binomial_test() -> None:
    cases = [(0, 0), (5, 0), (3, 9), (10, 10), (1, 14), (40, 22), (1500, 1400), (600, 400)]
    for improved, regressed in cases:  # the last two take the log-space path
        p = evalstats.mcnemar_exact(improved, regressed)
        m = improved + regressed
        expected = 1.0 if m == 0 else stats.binomtest(improved, m, 0.5).pvalue
        assert p == pytest.approx(expected, rel=1e-9)


def test_pass_rate_comparison_counts_discordant_pairs() -> None:
    cand = [True] * 30 + [True] * 12 + [False] * 2 + [False] * 6
    base = [True] * 30 + [False] * 12 + [True] * 2 + [False] * 6
    c = evalstats.compare_pass_rates(cand, base)
    assert (c.n, c.improved, c.regressed) == (50, 12, 2)
    assert c.candidate == pytest.approx(42 / 50) and c.baseline == pytest.approx(32 / 50)
    assert c.delta == pytest.approx(0.2)
    assert c.p_value == pytest.approx(stats.binomtest(2, 14, 0.5).pvalue)
    assert c.significant() and c.ci.low > 0 and c.delta in c.ci


def test_identical_outcomes_are_not_a_difference() -> None:
    same = [True, False, True, True, False] * 8
    c = evalstats.compare_pass_rates(same, same)
    assert c.delta == 0 and c.p_value == 1.0 and c.ci.low < 0 < c.ci.high


def test_newcombe_interval_covers_the_true_difference() -> None:
    """Coverage of the 95 % interval over simulated paired data stays near 95 %."""
    rng = np.random.default_rng(7)
    n, trials, p_both, p_c_only, p_b_only = 60, 1500, 0.5, 0.15, 0.05
    truth = p_c_only - p_b_only
    probs = [p_both, p_c_only, p_b_only, 1 - p_both - p_c_only - p_b_only]
    hits = 0
    for _ in range(trials):
        cells = rng.choice(4, size=n, p=probs)
        cand = (cells == 0) | (cells == 1)
        base = (cells == 0) | (cells == 2)
        ci = evalstats.paired_proportion_interval(list(cand), list(base), 0.95)
        hits += ci.low <= truth <= ci.high
    assert 0.925 <= hits / trials <= 0.985


@given(
    st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=80),
    st.sampled_from([0.8, 0.9, 0.95, 0.99]),
)
@settings(max_examples=150, deadline=None)
def test_newcombe_interval_is_ordered_bounded_and_contains_the_estimate(
    pairs: list[tuple[bool, bool]], confidence: float
) -> None:
    cand = [a for a, _ in pairs]
    base = [b for _, b in pairs]
    ci = evalstats.paired_proportion_interval(cand, base, confidence)
    delta = (sum(cand) - sum(base)) / len(pairs)
    assert -1.0 <= ci.low <= delta + 1e-12 and delta - 1e-12 <= ci.high <= 1.0
    wider = evalstats.paired_proportion_interval(cand, base, min(0.999, confidence + 0.009))
    assert wider.low <= ci.low + 1e-12 and wider.high >= ci.high - 1e-12


def test_bootstrap_is_deterministic_and_covers_a_clear_shift() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, size=200)
    cand = np.clip(base + 0.1 + rng.normal(0, 0.05, size=200), 0, 1)
    c1 = evalstats.compare_scores(list(cand), list(base))
    c2 = evalstats.compare_scores(list(cand), list(base))
    assert c1 == c2
    assert 0.05 < c1.ci.low < c1.delta < c1.ci.high < 0.15
    assert c1.p_value < 0.001


def test_signflip_is_exact_for_small_samples() -> None:
    # diffs 1, 2, 3: |sum| = 6 is reached only by all-plus or all-minus -> p = 2/8
    assert evalstats.signflip_pvalue([1.0, 2.0, 3.0], [0.0, 0.0, 0.0]) == pytest.approx(0.25)
    assert evalstats.signflip_pvalue([0.5, 0.5], [0.5, 0.5]) == 1.0


def test_no_difference_gives_a_large_p_value() -> None:
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 1, size=100)
    cand = base + rng.normal(0, 0.01, size=100)
    c = evalstats.compare_scores(list(cand), list(base))
    assert not c.significant() and c.ci.low < 0 < c.ci.high


def test_one_sided_lower_bound_is_the_two_sided_interval_at_2c_minus_1() -> None:
    cand = [True] * 40 + [False] * 10
    base = [True] * 35 + [False] * 15
    low = evalstats.lower_bound("pass_rate", cand, base, 0.95)
    two = evalstats.paired_proportion_interval(cand, base, 0.90)
    assert low == two.low
    assert evalstats.lower_bound("pass_rate", cand, base, 0.99) < low


def test_bad_inputs_are_named() -> None:
    with pytest.raises(InvalidInput, match="differ in length"):
        evalstats.compare_pass_rates([True], [True, False])
    with pytest.raises(InvalidInput, match="confidence"):
        evalstats.wilson_interval(1, 2, 1.5)
    with pytest.raises(InvalidInput, match="finite"):
        evalstats.compare_scores([float("nan")], [0.0])


def test_newcombe_interval_of_agreeing_pairs_has_no_rounding_width() -> None:
    # every pair agrees (phi = 1) at p = 0.5: the interval is exactly [0, 0], and a higher
    # confidence cannot make it narrower (once it came out as ±3.7e-9 from cancellation)
    pairs = [False] * 3 + [True] * 3
    ci = evalstats.paired_proportion_interval(pairs, pairs, 0.95)
    wider = evalstats.paired_proportion_interval(pairs, pairs, 0.959)
    assert abs(ci.low) < 1e-12 and abs(ci.high) < 1e-12
    assert wider.low <= ci.low + 1e-12 and wider.high >= ci.high - 1e-12
