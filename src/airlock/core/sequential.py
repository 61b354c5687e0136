"""Anytime-valid comparisons of a candidate with its stable release.

Why anytime-valid
-----------------
The rollout controller looks at the data every second. A classical test run at
level α on every look rejects a perfectly good candidate far more often than α
(with thousands of looks, almost surely). A *confidence sequence* is a sequence
of intervals that contain the true effect at **every** time simultaneously with
probability ≥ 1 − α, so the controller may look as often as it likes, stop as
soon as an interval excludes "no harm", and the chance that this ever happens to
a harmless candidate stays ≤ α.

The boundary
------------
Every metric is reduced to an estimate ``θ̂`` of a harm-oriented effect (bigger
= candidate worse), its estimated variance ``V`` and an *intrinsic time*
``v = n_c·n_s / (n_c + n_s)`` (the effective number of independent pairs; with
traffic shares fixed during a step, ``v`` grows in proportion to the
information ``1/V``). Standardised, ``S_v = (θ̂ − θ)·v/√(V·v)`` behaves like a
Brownian motion in ``v``, and the one-sided normal-mixture boundary of Howard,
Ramdas, McAuliffe and Sekhon (2021, *Time-uniform, nonparametric, nonasymptotic
confidence sequences*, eq. 14)::

    u(v) = sqrt( 2 (v + ρ) · log( sqrt((v + ρ)/ρ) / (2α) + 1 ) )

is crossed by ``S_v`` with probability ≤ α over all ``v``. This is Robbins'
mixture SPRT (the "mSPRT" of Johari et al., *Always valid inference*, 2017)
with a half-normal mixing distribution of precision ``ρ`` over standardised
effects. So the radius of the one-sided bound is ``r = u(v)/√v · √V`` and

* ``θ̂ − r`` is a lower confidence sequence for the harm (level 1 − α),
* ``θ̂ + r`` is an upper confidence sequence for the harm (level 1 − α).

``ρ`` is the one tuning knob: :func:`mixture_precision` picks the ``ρ`` that
makes the boundary tightest when ``v`` reaches a target (``mixture_requests``
in the analysis settings). Far from the target the boundary is a little wider,
never invalid. Very early, ``u(v)/√v`` is huge, which is what protects against
the small-sample artefacts of a plug-in variance.

The variance is a plug-in estimate, so validity is *asymptotic* (Waudby-Smith
et al. 2021, *Time-uniform central limit theory and asymptotic confidence
sequences*): the tests in ``tests/core/test_analysis.py`` and ``bench
detection`` check the false-rollback rate on simulated A/A traffic instead of
taking it on faith. Variances are regularised (half a pseudo-observation) so a
side with zero events never gets a zero variance.

Every function accepts numpy arrays (any matching shapes) as well as scalars,
so the benchmark can run millions of looks at once with the very code that
:func:`airlock.core.analysis.analyze` uses.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]

# The standardised variance a Mann-Whitney structural component has when both
# samples come from one continuous distribution; the latency variance is shrunk
# towards it by _PRIOR_COMPONENTS pseudo-observations.
_NULL_COMPONENT_VARIANCE = 1.0 / 12.0
_PRIOR_COMPONENTS = 2.0


class Estimate(NamedTuple):
    """A harm-oriented effect estimate (bigger = candidate worse)."""

    effect: Array
    variance: Array
    intrinsic_time: Array  # v = n_c n_s / (n_c + n_s); 0 when a side has no data


def mixture_precision(target: float, alpha: float) -> float:
    """The mixing precision ρ that makes the boundary tightest at ``v = target``."""
    if target <= 0 or not 0 < alpha < 0.5:
        raise ValueError("target must be > 0 and alpha in (0, 0.5)")
    log_term = math.log(1.0 / (2.0 * alpha))
    return target / (2.0 * log_term + math.log(1.0 + 2.0 * log_term))


def z_boundary(v: ArrayLike, alpha: float, rho: float) -> Array:
    """The boundary in z units, ``u(v)/√v``; ``inf`` where ``v == 0``."""
    v_arr = np.asarray(v, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.sqrt(
            2.0 * (v_arr + rho) / v_arr * np.log(np.sqrt((v_arr + rho) / rho) / (2.0 * alpha) + 1)
        )
    return np.where(v_arr > 0, z, np.inf)


def confidence_bounds(estimate: Estimate, alpha: float, rho: float) -> tuple[Array, Array]:
    """One-sided (1 − α) anytime-valid lower and upper bounds on the effect.

    Each bound on its own holds at every time with probability ≥ 1 − α; where
    a side has no data the bounds are (−inf, inf).
    """
    with np.errstate(invalid="ignore"):  # inf * 0 where a side has no data
        radius = z_boundary(estimate.intrinsic_time, alpha, rho) * np.sqrt(estimate.variance)
    radius = np.where(estimate.intrinsic_time > 0, radius, np.inf)
    return estimate.effect - radius, estimate.effect + radius


def _intrinsic_time(n_c: Array, n_s: Array) -> Array:
    with np.errstate(divide="ignore", invalid="ignore"):
        v = n_c * n_s / (n_c + n_s)
    return np.where((n_c > 0) & (n_s > 0), v, 0.0)


def _safe_ratio(num: Array, den: Array) -> Array:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)


def proportion_difference(
    x_c: ArrayLike, n_c: ArrayLike, x_s: ArrayLike, n_s: ArrayLike
) -> Estimate:
    """Candidate rate minus stable rate, for events that are bad (errors, flags).

    Also serves for bounded means in [0, 1] given as (sum, count): the
    Bernoulli variance ``m(1 − m)`` is the largest variance a [0, 1] variable
    with mean ``m`` can have, so the bound stays conservative. Swap the sides
    for events that are good (the harm is then stable − candidate).
    """
    xc, nc, xs, ns = (np.asarray(a, dtype=np.float64) for a in (x_c, n_c, x_s, n_s))
    p_c, p_s = _safe_ratio(xc, nc), _safe_ratio(xs, ns)
    # Variance at (x + 1/2)/(n + 1): never zero, negligible once n is large.
    pt_c, pt_s = (xc + 0.5) / (nc + 1.0), (xs + 0.5) / (ns + 1.0)
    variance = _safe_ratio(pt_c * (1 - pt_c), nc) + _safe_ratio(pt_s * (1 - pt_s), ns)
    return Estimate(p_c - p_s, variance, _intrinsic_time(nc, ns))


def tolerance_kernel(n_buckets: int, shift_buckets: float) -> Array:
    """``K[i, j] = P(candidate in bucket i beats a stable value in bucket j, shifted)``.

    Buckets are assumed equally wide on the log scale and values uniform (on
    that scale) inside a bucket; the stable value is multiplied by the
    tolerance, i.e. shifted up by ``shift_buckets`` bucket widths. With
    ``A, B ~ U(0, 1)`` the probability is ``P(A − B > shift − (i − j))``, the
    triangular distribution's CDF at ``(i − j) − shift``.
    """
    lag = np.subtract.outer(np.arange(n_buckets), np.arange(n_buckets)) - shift_buckets
    lag = lag.astype(np.float64)
    return np.where(
        lag <= -1,
        0.0,
        np.where(
            lag <= 0,
            (1 + lag) ** 2 / 2,
            np.where(lag < 1, 1 - (1 - np.minimum(lag, 1)) ** 2 / 2, 1.0),
        ),
    )


def latency_exceedance(hist_c: ArrayLike, hist_s: ArrayLike, kernel: Array) -> Estimate:
    """``θ = P(candidate latency > (1 + tolerance) · stable latency)`` from two histograms.

    This is the Mann-Whitney parameter of the candidate against the stable
    release slowed down by the tolerance (see :func:`tolerance_kernel`). For a
    pure slow-down by a factor λ, ``θ > 1/2`` exactly when ``λ > 1 + tolerance``;
    more generally ``θ > 1/2`` means a random candidate request is more likely
    than not to be slower than a random stable one by more than the tolerance.
    The variance is the delta-method (Hoeffding/DeLong) variance of the
    two-sample U-statistic on bucketed data, shrunk towards its continuous-null
    value 1/12 by two pseudo-observations per side.

    Histograms have shape ``(..., n_buckets)``; the effect is ``θ − 1/2`` so
    that, like every other metric, harm means effect > tolerance-threshold 0.
    """
    hc = np.asarray(hist_c, dtype=np.float64)
    hs = np.asarray(hist_s, dtype=np.float64)
    n_c, n_s = hc.sum(axis=-1), hs.sum(axis=-1)
    p = hc / np.where(n_c > 0, n_c, 1.0)[..., None]
    q = hs / np.where(n_s > 0, n_s, 1.0)[..., None]
    g = q @ kernel.T  # g[i]: P(candidate value in bucket i beats a random stable one)
    h = p @ kernel  # h[j]: P(a random candidate beats a stable value in bucket j)
    theta = np.einsum("...i,...i->...", p, g)
    var_g = np.maximum(np.einsum("...i,...i->...", p, g * g) - theta**2, 0.0)
    var_h = np.maximum(np.einsum("...i,...i->...", q, h * h) - theta**2, 0.0)
    k = _PRIOR_COMPONENTS
    var_g = (n_c * var_g + k * _NULL_COMPONENT_VARIANCE) / (n_c + k)
    var_h = (n_s * var_h + k * _NULL_COMPONENT_VARIANCE) / (n_s + k)
    variance = _safe_ratio(var_g, n_c) + _safe_ratio(var_h, n_s)
    v = _intrinsic_time(n_c, n_s)
    return Estimate(np.where(v > 0, theta - 0.5, 0.0), variance, v)


__all__ = [
    "Estimate",
    "confidence_bounds",
    "latency_exceedance",
    "mixture_precision",
    "proportion_difference",
    "tolerance_kernel",
    "z_boundary",
]
