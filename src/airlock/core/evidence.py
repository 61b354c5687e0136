"""E-processes: evidence against "the candidate is no worse", valid at every look.

The controller looks at a rollout every second, for as long as it runs. A test
that is valid at one fixed sample size, repeated at every look, rolls back a
harmless candidate far more often than its level. An *e-process* ``E_t`` is a
non-negative process with ``E[E_τ] ≤ 1`` at any stopping time τ when the null
holds, so by Ville's inequality (Ville 1939; Ramdas, Grünwald, Vovk & Shafer
2023, *Game-theoretic statistics and safe anytime-valid inference*)::

    P(E_t ≥ 1/α for some t) ≤ α

The controller may look as often as it likes and roll back the first time the
evidence reaches ``1/α``. Evidence multiplies across the steps of a rollout
(each step's likelihood ratio is a supermartingale started where the last one
ended), so **one α covers the whole rollout**, every step and every look.

Two kinds of e-process live here, both written for numpy arrays with any
leading shape so the detection benchmark runs thousands of simulated rollouts
through the very same functions.

Rates: the arm-label test (exact under independent requests)
------------------------------------------------------------
Bad events (errors, guardrail flags, bad feedback, a scorer's failures) of
either release form a point process. Condition on the traffic of a step:
``n_c`` candidate and ``n_s`` stable requests, a candidate share
``s = n_c / (n_c + n_s)``. If the candidate's rate is ``r`` times stable's,
each bad event is the candidate's with probability::

    p(r) = r·s / (r·s + 1 − s)        logit p = log r + logit s

whatever the common rate is — an upstream incident that raises both arms'
errors tenfold changes nothing. This is the multinomial/Poisson-process
reduction of Lindon & Malek (2022, *Anytime-valid inference for multinomial
count data*, NeurIPS). Under the null ``r ≤ r₀`` the likelihood ratio of
``r > r₀`` against ``r₀`` is a supermartingale (a one-parameter exponential
family in ``log r``: monotone likelihood ratio), and so is any mixture of
them over alternatives. We mix over a fixed grid of log-ratio offsets
``δ = log r − log r₀ ∈ {0.025, 0.05, …, 4}`` with half-normal weights (scale 1,
i.e. a factor e): the mixture costs ``log(1/π(δ*)) + ½·log(information)``
nats over the oracle that knows the effect. No asymptotics are involved.

Clustered traffic. Requests of one user stay on one release, so events are
over-dispersed relative to the label model. The statistic is *tempered*: its
log-likelihood is divided by the dispersion ``φ ≥ 1`` estimated from the
between-cluster spread (see :func:`rate_dispersion`). For a score with
variance ``φ·V`` this keeps ``E[exp(ℓ/φ)] ≈ 1`` (the quasi-likelihood of
Wedderburn 1974; the "tempered" or power likelihood of Grünwald 2012). With
``φ = 1`` (independent requests) the test is exact; under clustering it is
valid as the clusters grow, which ``bench detection`` checks by simulation.

Continuous effects: the normal mixture (latency body, TTFT)
----------------------------------------------------------
For an estimate ``d_k`` of an effect with variance ``V_k`` in step ``k``, the
Gaussian log-likelihood ratio of effect ``δ`` against 0, summed over steps, is
``δ·Z − δ²·I/2`` with ``Z = Σ d_k/V_k`` and ``I = Σ 1/V_k``. Mixed over a
half-normal prior of scale ``τ`` it has the closed form of Robbins' mixture
(Robbins 1970; Howard, Ramdas, McAuliffe & Sekhon 2021, *Time-uniform,
nonparametric, nonasymptotic confidence sequences*, §3)::

    E = 2/√(1 + τ²I) · exp(τ²Z² / (2(1 + τ²I))) · Φ(τZ / √(1 + τ²I))

Validity is asymptotic in the plug-in variance (Waudby-Smith, Arbour,
Sinha, Kennedy & Ramdas 2021, *Time-uniform central limit theory*); the
variances used are cluster-robust and never below their independent value.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import log_ndtr

Array = NDArray[np.float64]

ETA_STEP = 0.025
"""Spacing of the log-ratio grid."""
N_ALT = 160
"""Alternatives above (or below) a null: offsets ETA_STEP·1 … ETA_STEP·N_ALT (up to e⁴ ≈ 55×)."""
HALF = 200
"""The grid spans null ± HALF·ETA_STEP (±5 in log ratio) for confidence bounds."""
GRID = ETA_STEP * np.arange(-HALF, HALF + 1, dtype=np.float64)
"""Log-ratio offsets from the tolerated ratio at which the label log-likelihood is kept."""
USER_VARIATION = 4.0
"""Assumed squared coefficient of variation of users' propensities (see :func:`rate_dispersion`)."""
UP_GRID = GRID[HALF : HALF + N_ALT + 1]
"""The null and the alternatives above it: all a test (without bounds) needs."""
_OFFSETS = ETA_STEP * np.arange(1, N_ALT + 1, dtype=np.float64)
_PRIOR_SCALE = 1.0
LOG_PRIOR = -0.5 * (_OFFSETS / _PRIOR_SCALE) ** 2
LOG_PRIOR = LOG_PRIOR - np.log(np.exp(LOG_PRIOR).sum())


def logsumexp(a: Array, axis: int = -1) -> Array:
    top = np.max(a, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):  # every term -inf: the sum is 0, its log -inf
        out = np.squeeze(top, axis=axis) + np.log(np.sum(np.exp(a - top), axis=axis))
    return np.asarray(out, dtype=np.float64)


# -- rates ---------------------------------------------------------------------------------


def label_loglik(
    x_c: ArrayLike,
    n_c: ArrayLike,
    x_s: ArrayLike,
    n_s: ArrayLike,
    log_r0: float,
    grid: Array = GRID,
) -> Array:
    """Log-likelihood of the arm labels at ``log r = log_r0 + grid``; shape ``(..., len(grid))``.

    ``x`` are bad events and ``n`` exposures (requests, feedback, trials) of one
    step; zero where a side has no exposure (no comparison possible yet). Pass
    ``grid=UP_GRID`` when only the test at ``log_r0`` is needed (no bounds).
    """
    xc, nc, xs, ns = (np.asarray(a, dtype=np.float64) for a in (x_c, n_c, x_s, n_s))
    both = (nc > 0) & (ns > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        logit_s = np.where(both, np.log(np.where(both, nc, 1.0) / np.where(both, ns, 1.0)), 0.0)
    t = (logit_s[..., None] + log_r0) + grid  # logit p(r)
    log_p = -np.logaddexp(0.0, -t)
    log_q = -np.logaddexp(0.0, t)
    out = xc[..., None] * log_p + xs[..., None] * log_q
    return np.where(both[..., None], out, 0.0)


def rate_log_evalue(loglik: Array, dispersion: ArrayLike) -> Array:
    """Log e-value against ``r ≤ r₀`` from summed :func:`label_loglik` on ``GRID`` or ``UP_GRID``."""
    phi = np.maximum(np.asarray(dispersion, dtype=np.float64), 1.0)
    start = HALF if loglik.shape[-1] == len(GRID) else 0
    up = loglik[..., start + 1 : start + 1 + N_ALT] - loglik[..., start : start + 1]
    return logsumexp(LOG_PRIOR + up / phi[..., None])


def rate_bounds(
    loglik: Array, dispersion: float, log_threshold: float, log_r0: float
) -> tuple[float, float]:
    """Anytime-valid (lower, upper) bounds on ``log r`` by inverting the test at every grid null.

    The lower bound is the largest null ``log r`` that the data reject in favour of a
    bigger ratio; ``-inf``/``inf`` where no null on the grid is rejected.
    """
    ell = np.asarray(loglik, dtype=np.float64) / max(float(dispersion), 1.0)
    n = ell.shape[-1]
    low, high = -math.inf, math.inf
    nulls = np.arange(n)
    padded = np.concatenate([np.full(N_ALT, -np.inf), ell, np.full(N_ALT, -np.inf)])
    index = nulls[:, None] + N_ALT + np.arange(1, N_ALT + 1)[None, :]
    above = padded[index] - ell[:, None]
    below = padded[nulls[:, None] + N_ALT - np.arange(1, N_ALT + 1)[None, :]] - ell[:, None]
    e_up = logsumexp(LOG_PRIOR[None, :] + above)
    e_down = logsumexp(LOG_PRIOR[None, :] + below)
    rejected_low = np.nonzero(e_up >= log_threshold)[0]
    rejected_high = np.nonzero(e_down >= log_threshold)[0]
    if rejected_low.size:
        low = log_r0 + float(GRID[rejected_low.max()])
    if rejected_high.size:
        high = log_r0 + float(GRID[rejected_high.min()])
    return low, high


def rate_dispersion(
    bad_c: Array,
    exposure_c: Array,
    bad_s: Array,
    exposure_s: Array,
    share: Array,
    user_variation: float = USER_VARIATION,
) -> Array:
    """Over-dispersion ``φ ≥ 1`` of the label statistic from per-cluster counts.

    Inputs have shape ``(..., steps, clusters)`` (``share``: ``(..., steps)``).
    For each release, the cluster-robust ("sandwich") variance of its total
    bad count over the variance the label model assumes (Poisson)::

        φ = G/(G − 1) · Σ_g (x_g − e_g)² / Σ_g e_g,    e_g = Σ_k rate_k · exposure_{g,k}

    where ``G`` counts the clusters with exposure. A cluster's expected count
    pools the steps at each step's own rate, so a rate that moves from step to
    step — an incident — is not mistaken for clustering, while a user who stays
    on one release across steps (sticky routing) adds up in one cluster, as it
    should. This is a ratio of sums, not a mean of per-cluster ratios (Pearson's
    statistic): one heavy user in one cluster dominates the variance of the
    total, and the ratio of sums sees it even when every other cluster looks
    Poisson.

    Both releases serve random halves of one user population, so their
    dispersion per request, ``1 + p·CV²·Σn_u²/Σn_u`` (CV: how much users'
    propensities vary; ``Σn_u²/Σn_u``: how concentrated requests are in heavy
    users) is the same in expectation: the larger of the two estimates is used.
    That matters early in a canary, when the candidate's few events cannot
    show its clustering yet but the stable release's many events already do.
    A floor that needs no events: few bad events cannot show clustering at
    all, but the request counts already show how concentrated traffic is. Under
    independent requests a cluster's count is Poisson, ``E Σ_g n_g² = n²/G + n``;
    the excess ``Σ_g n_g²/n − n/G − 1`` estimates ``Σ_u n_u²/n`` of the heavy
    users, and ``1 + p·user_variation·excess`` is the dispersion if their
    propensities vary with a squared coefficient of variation ``user_variation``
    (an assumption, until the events themselves can be measured), capped at
    ``1 + (1 − p)·excess``: a propensity lies in [0, 1], so ``Var(p_u) ≤ p(1 − p)``
    whatever the users (the cap binds only for common events, p > 0.2, such as
    a pairwise judge's wins and losses). It is ≈ 1 on independent traffic. Returns 1 where there is nothing to estimate from (no
    cluster detail, or fewer than two clusters).
    """
    del share  # kept in the signature: the combination below does not need it
    out = []
    for bad, exposure in ((bad_c, exposure_c), (bad_s, exposure_s)):
        b = np.asarray(bad, dtype=np.float64)
        e = np.asarray(exposure, dtype=np.float64)
        total_b = b.sum(axis=-1, keepdims=True)
        total_e = e.sum(axis=-1, keepdims=True)
        rate = np.where(total_e > 0, total_b / np.where(total_e > 0, total_e, 1.0), 0.0)
        expected = (rate * e).sum(axis=-2)  # (..., clusters)
        observed = b.sum(axis=-2)
        used = (e.sum(axis=-2) > 0).sum(axis=-1).astype(np.float64)
        spread = ((observed - expected) ** 2).sum(axis=-1)
        mean_count = expected.sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            phi = np.where(
                (used >= 2) & (mean_count > 0),
                used
                / np.maximum(used - 1.0, 1.0)
                * spread
                / np.where(mean_count > 0, mean_count, 1.0),
                1.0,
            )
        out.append(np.maximum(phi, 1.0))
        n_g = e.sum(axis=-2)
        n = n_g.sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            excess = np.where(
                (n > 0) & (used > 0),
                (n_g * n_g).sum(axis=-1) / np.where(n > 0, n, 1.0)
                - n / np.maximum(used, 1.0)
                - 1.0,
                0.0,
            )
            rate_all = np.where(n > 0, b.sum(axis=(-2, -1)) / np.where(n > 0, n, 1.0), 0.0)
        # Var(p_u)/p = p·CV² cannot exceed 1 − p when each request is pass/fail (a
        # propensity lies in [0, 1]): the cap keeps the floor a bound, not a guess, at high rates.
        per_request = np.minimum(rate_all * user_variation, np.maximum(1.0 - rate_all, 0.0))
        out.append(1.0 + per_request * np.maximum(excess, 0.0))
    return np.asarray(np.maximum.reduce(out), dtype=np.float64)


# -- continuous effects -----------------------------------------------------------------------


def normal_log_evalue(z: ArrayLike, info: ArrayLike, tau: float) -> Array:
    """Log of the one-sided half-normal mixture e-value (harm = positive effect)."""
    z_arr = np.asarray(z, dtype=np.float64)
    i_arr = np.asarray(info, dtype=np.float64)
    a = 1.0 + tau * tau * i_arr
    out = (
        math.log(2.0)
        - 0.5 * np.log(a)
        + tau * tau * z_arr * z_arr / (2.0 * a)
        + log_ndtr(tau * z_arr / np.sqrt(a))
    )
    return np.asarray(out, dtype=np.float64)


def normal_bounds(z: float, info: float, tau: float, log_threshold: float) -> tuple[float, float]:
    """Anytime-valid (lower, upper) bounds on the effect, by inverting the mixture test."""
    if info <= 0:
        return -math.inf, math.inf
    lo, hi = -50.0 * math.sqrt(info) - 50.0, 50.0 * math.sqrt(info) + 50.0
    for _ in range(80):  # the z at which the one-sided evidence reaches the threshold
        mid = (lo + hi) / 2
        if float(normal_log_evalue(mid, info, tau)) >= log_threshold:
            hi = mid
        else:
            lo = mid
    crit = hi
    return (z - crit) / info, (z + crit) / info


def normal_tau(target_info: float, alpha: float) -> float:
    """The prior scale that makes the mixture sharpest when the information reaches ``target_info``.

    Howard et al. (2021, eq. 14): ρ = v / (2 log(1/(2α)) + log(1 + 2 log(1/(2α)))) for
    intrinsic time ``v``; here ``τ² = 1/ρ`` in units where the information is ``v``.
    """
    log_term = math.log(1.0 / (2.0 * alpha))
    rho = target_info / (2.0 * log_term + math.log(1.0 + 2.0 * log_term))
    return 1.0 / math.sqrt(rho)


def detectable_effect(info: float, log_threshold: float, tau: float | None = None) -> float:
    """The effect (in the units whose information is ``info``) whose expected evidence reaches
    the threshold: ``δ²·I/2 − ½·log(1 + τ²I) + log 2 = log(1/α)`` (``inf`` without information).

    With ``tau=None`` the rate grid's prior is used (scale 1 on the log ratio).
    """
    if info <= 0:
        return math.inf
    scale = _PRIOR_SCALE if tau is None else tau
    need = log_threshold + 0.5 * math.log1p(scale * scale * info) - math.log(2.0)
    return math.sqrt(2.0 * max(need, 0.0) / info)


__all__ = [
    "ETA_STEP",
    "GRID",
    "HALF",
    "LOG_PRIOR",
    "N_ALT",
    "UP_GRID",
    "USER_VARIATION",
    "detectable_effect",
    "label_loglik",
    "logsumexp",
    "normal_bounds",
    "normal_log_evalue",
    "normal_tau",
    "rate_bounds",
    "rate_dispersion",
    "rate_log_evalue",
]
