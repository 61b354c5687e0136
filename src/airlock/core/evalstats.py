"""Paired comparison of two releases on the same evaluation cases (pure, numpy only).

Every case of a suite is answered by both the candidate and the baseline, so the
outcomes are *paired*: comparing them pair by pair removes the case-to-case
variance that dwarfs most real differences.

==========================  ==============================================================
pass/fail per case          McNemar's exact test (binomial on the discordant pairs) for
                            "is there a difference", and Newcombe's hybrid score interval
                            (method 10, Wilson-based) for the difference in pass rates
score per case in [0, 1]    paired bootstrap percentile interval for the difference in
                            mean score, and a sign-flip randomisation test for its p-value
==========================  ==============================================================

Deltas are always ``candidate − baseline``: positive means the candidate is better.
Both procedures are deterministic (the bootstrap and the randomisation test use a
fixed seed), so a stored run and a policy re-checking it agree exactly.

``lower_bound(..., confidence=C)`` is the one-sided bound a policy uses for
"not worse than the baseline by more than X with confidence C": the lower end of
the two-sided interval at level ``2C − 1``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from statistics import NormalDist
from typing import Literal

import numpy as np
import numpy.typing as npt

from airlock.errors import InvalidInput

Method = Literal["mcnemar-newcombe", "bootstrap-signflip"]
_CHUNK = 2_000_000  # resampled indices held in memory at once
_EXACT_INTEGERS = 1000  # McNemar in exact integer arithmetic up to this many discordant pairs
Scores = Sequence[float] | npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Interval:
    low: float
    high: float
    confidence: float

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True, slots=True)
class Comparison:
    """Candidate vs baseline on ``n`` paired cases."""

    method: Method
    n: int
    candidate: float  # pass rate or mean score
    baseline: float
    ci: Interval  # for delta
    p_value: float  # two-sided, H0: no difference
    improved: int = 0  # cases the candidate passes and the baseline fails (pass/fail only)
    regressed: int = 0  # cases the baseline passes and the candidate fails

    @property
    def delta(self) -> float:
        return self.candidate - self.baseline

    def significant(self, alpha: float = 0.05) -> bool:
        return self.p_value < alpha

    def to_dict(self) -> dict[str, float | int | str]:
        return {
            "method": self.method,
            "n": self.n,
            "candidate": self.candidate,
            "baseline": self.baseline,
            "delta": self.delta,
            "ci_low": self.ci.low,
            "ci_high": self.ci.high,
            "confidence": self.ci.confidence,
            "p_value": self.p_value,
            "improved": self.improved,
            "regressed": self.regressed,
        }


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise InvalidInput(f"confidence must be between 0 and 1 (exclusive), got {confidence}")


def _z(confidence: float) -> float:
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a proportion (well-behaved at 0 %, 100 % and small n)."""
    _check_confidence(confidence)
    if n <= 0:
        return Interval(0.0, 1.0, confidence)
    z = _z(confidence)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(max(0.0, centre - half), min(1.0, centre + half), confidence)


def mcnemar_exact(improved: int, regressed: int) -> float:
    """Two-sided exact McNemar p-value from the two discordant counts."""
    m = improved + regressed
    if m == 0:
        return 1.0
    k = min(improved, regressed)
    if m <= _EXACT_INTEGERS:  # P(X <= k), X ~ Binomial(m, 1/2), in exact integers
        tail = Fraction(sum(math.comb(m, i) for i in range(k + 1)), 2**m)
        return float(min(Fraction(1), 2 * tail))
    # larger runs: the same sum in log space (relative error ~1e-12, milliseconds)
    logs = [
        math.lgamma(m + 1) - math.lgamma(i + 1) - math.lgamma(m - i + 1) - m * math.log(2)
        for i in range(k + 1)
    ]
    top = max(logs)
    return min(1.0, 2.0 * math.exp(top) * math.fsum(math.exp(x - top) for x in logs))


def _paired_table(candidate: Sequence[bool], baseline: Sequence[bool]) -> tuple[int, int, int, int]:
    if len(candidate) != len(baseline):
        raise InvalidInput(
            f"paired outcomes differ in length: {len(candidate)} vs {len(baseline)}",
            hint="both releases must answer the same cases",
        )
    c = np.asarray(candidate, dtype=bool)
    b = np.asarray(baseline, dtype=bool)
    both = int(np.sum(c & b))
    improved = int(np.sum(c & ~b))
    regressed = int(np.sum(~c & b))
    neither = int(np.sum(~c & ~b))
    return both, improved, regressed, neither


def paired_proportion_interval(
    candidate: Sequence[bool], baseline: Sequence[bool], confidence: float = 0.95
) -> Interval:
    """Newcombe's hybrid score interval (method 10) for p_candidate − p_baseline, paired."""
    _check_confidence(confidence)
    e, f, g, h = _paired_table(candidate, baseline)
    n = e + f + g + h
    if n == 0:
        return Interval(-1.0, 1.0, confidence)
    p1, p2 = (e + f) / n, (e + g) / n
    w1 = wilson_interval(e + f, n, confidence)
    w2 = wilson_interval(e + g, n, confidence)
    denom = (e + f) * (g + h) * (e + g) * (f + h)
    phi = (e * h - f * g) / math.sqrt(denom) if denom > 0 else 0.0
    d1, u1 = p1 - w1.low, w1.high - p1
    d2, u2 = p2 - w2.low, w2.high - p2
    delta = p1 - p2
    # a² − 2φab + b² written as (a − b)² + 2(1 − φ)ab: the same number, without the
    # cancellation that turns a rounding error into a √ε-wide interval when φ = 1.
    below = math.sqrt(max(0.0, (d1 - u2) ** 2 + 2 * (1 - phi) * d1 * u2))
    above = math.sqrt(max(0.0, (u1 - d2) ** 2 + 2 * (1 - phi) * u1 * d2))
    return Interval(max(-1.0, delta - below), min(1.0, delta + above), confidence)


def compare_pass_rates(
    candidate: Sequence[bool], baseline: Sequence[bool], confidence: float = 0.95
) -> Comparison:
    """McNemar exact test + Newcombe interval for paired pass/fail outcomes."""
    e, f, g, h = _paired_table(candidate, baseline)
    n = e + f + g + h
    return Comparison(
        method="mcnemar-newcombe",
        n=n,
        candidate=(e + f) / n if n else 0.0,
        baseline=(e + g) / n if n else 0.0,
        ci=paired_proportion_interval(candidate, baseline, confidence),
        p_value=mcnemar_exact(f, g),
        improved=f,
        regressed=g,
    )


def _as_scores(values: Scores, what: str) -> npt.NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise InvalidInput(f"{what} scores must be a flat sequence of finite numbers")
    return arr


def paired_bootstrap_interval(
    candidate: Scores,
    baseline: Scores,
    confidence: float = 0.95,
    *,
    resamples: int = 10_000,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval for mean(candidate − baseline), resampling pairs."""
    _check_confidence(confidence)
    diffs = _as_scores(candidate, "candidate") - _paired_baseline(candidate, baseline)
    n = diffs.size
    if n == 0:
        return Interval(-math.inf, math.inf, confidence)
    if np.all(diffs == diffs[0]):
        return Interval(float(diffs[0]), float(diffs[0]), confidence)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    rows = max(1, _CHUNK // n)
    for start in range(0, resamples, rows):
        stop = min(resamples, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = diffs[idx].mean(axis=1)
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return Interval(float(low), float(high), confidence)


def signflip_pvalue(
    candidate: Scores,
    baseline: Scores,
    *,
    resamples: int = 10_000,
    seed: int = 0,
) -> float:
    """Two-sided randomisation test of mean difference 0, flipping the sign of each pair.

    Exact (all 2^n sign patterns) for n ≤ 16; Monte Carlo with the +1 correction otherwise.
    """
    diffs = _as_scores(candidate, "candidate") - _paired_baseline(candidate, baseline)
    diffs = diffs[diffs != 0.0]
    n = diffs.size
    if n == 0:
        return 1.0
    observed = abs(float(diffs.sum()))
    tolerance = 1e-12 * max(1.0, observed)
    if n <= 16:
        patterns = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2 - 1
        sums = np.abs(patterns @ diffs)
        return float(np.mean(sums >= observed - tolerance))
    rng = np.random.default_rng(seed)
    hits = 0
    rows = max(1, _CHUNK // n)
    for start in range(0, resamples, rows):
        stop = min(resamples, start + rows)
        signs = rng.integers(0, 2, size=(stop - start, n)) * 2 - 1
        hits += int(np.sum(np.abs(signs @ diffs) >= observed - tolerance))
    return (hits + 1) / (resamples + 1)


def _paired_baseline(candidate: Scores, baseline: Scores) -> npt.NDArray[np.float64]:
    base = _as_scores(baseline, "baseline")
    if base.size != len(candidate):
        raise InvalidInput(
            f"paired scores differ in length: {len(candidate)} vs {base.size}",
            hint="both releases must answer the same cases",
        )
    return base


def compare_scores(
    candidate: Scores,
    baseline: Scores,
    confidence: float = 0.95,
    *,
    resamples: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Paired bootstrap interval + sign-flip test for paired per-case scores."""
    cand = _as_scores(candidate, "candidate")
    base = _paired_baseline(candidate, baseline)
    n = cand.size
    return Comparison(
        method="bootstrap-signflip",
        n=n,
        candidate=float(cand.mean()) if n else 0.0,
        baseline=float(base.mean()) if n else 0.0,
        ci=paired_bootstrap_interval(cand, base, confidence, resamples=resamples, seed=seed),
        p_value=signflip_pvalue(cand, base, resamples=resamples, seed=seed),
        improved=int(np.sum(cand > base)),
        regressed=int(np.sum(cand < base)),
    )


def lower_bound(
    kind: Literal["pass_rate", "score"],
    candidate: Sequence[float] | Sequence[bool],
    baseline: Sequence[float] | Sequence[bool],
    confidence: float,
) -> float:
    """One-sided lower confidence bound (level ``confidence``) on candidate − baseline."""
    _check_confidence(confidence)
    two_sided = 2.0 * confidence - 1.0
    if two_sided <= 0.0:
        raise InvalidInput(
            f"a one-sided confidence of {confidence} is too low to mean anything",
            hint="use a confidence of at least 0.6, typically 0.9 or 0.95",
        )
    if kind == "pass_rate":
        return paired_proportion_interval(
            [bool(x) for x in candidate], [bool(x) for x in baseline], two_sided
        ).low
    return paired_bootstrap_interval(
        [float(x) for x in candidate], [float(x) for x in baseline], two_sided
    ).low
