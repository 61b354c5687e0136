"""Latency comparisons on 2 % cells, per cluster: the body and the tail (pure, numpy).

Body: ``θ = P(candidate > (1 + tol) · stable)``
-------------------------------------------------
The Mann-Whitney parameter of the candidate against the stable release slowed
down by the tolerance. For a pure slow-down by a factor λ, ``θ > ½`` exactly
when ``λ > 1 + tol``; in general ``θ > ½`` means a random candidate request is
more likely than not to be slower than a random stable one by more than the
tolerance. It uses every request, needs no assumption on the distribution and
ignores a few huge outliers. Values are taken uniform (on the log scale)
inside a cell, so the estimate is exact up to the 2 % cell width — the 27 %
buckets of earlier versions biased it by up to a bucket, enough to roll back a
candidate 8 % slower under a 10 % tolerance and to miss one 20 % slower.

Its variance is the DeLong (Hoeffding) variance of the two-sample U-statistic
— computed both as if requests were independent and *cluster-robustly*, from
the per-cluster sums of the placement values (DeLong, DeLong & Clarke-Pearson
1988; Obuchowski 1997, *Nonparametric analysis of clustered ROC curve data*) —
and the larger of the two is used: users whose requests are all slow (long
prompts) make a release's latency clustered.

Tail: the candidate's share above stable's p99
----------------------------------------------
A p99 that doubles with the same median barely moves θ. The tail test counts
candidate requests slower than ``(1 + tol)`` × stable's p99 and stable
requests slower than stable's p99, and compares the two rates with the exact
arm-label test of :mod:`airlock.core.evidence`. The threshold is estimated on
one half of stable's clusters (odd ones) and stable's count taken on the other
half (even ones): given the threshold, both counts are then independent of it,
so under "the candidate is at most ``tol`` slower" the candidate's share above
``(1 + tol)·q`` is at most stable's share above ``q`` and the label test keeps
its level. (Estimating ``q`` on the same data would make stable's count
exactly 1 % and the test anti-conservative by a factor of up to 4.)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from airlock.core.window import CELL_LOG_WIDTH, CELLS, CLUSTERS

Array = NDArray[np.float64]

# The variance of a Mann-Whitney structural component when both samples come
# from one continuous distribution; the independent-requests variance is
# shrunk towards it by _PRIOR_COMPONENTS pseudo-observations so that a few
# requests never give a zero variance.
_NULL_COMPONENT_VARIANCE = 1.0 / 12.0
_PRIOR_COMPONENTS = 2.0
TAIL_REFERENCE_MIN = 200
"""Stable requests the reference half needs before its p99 is used."""


def dense_cells(cells: Mapping[int, int]) -> Array:
    """Sparse ``cluster * CELLS + cell`` counts as a ``(CLUSTERS, CELLS)`` array."""
    out = np.zeros(CLUSTERS * CELLS, dtype=np.float64)
    if cells:
        keys = np.fromiter(cells.keys(), dtype=np.int64, count=len(cells))
        values = np.fromiter(cells.values(), dtype=np.float64, count=len(cells))
        out[keys] = values
    return out.reshape(CLUSTERS, CELLS)


def _shift(a: Array, k: int) -> Array:
    """``b[..., i] = a[..., i − k]`` along the last axis, zero outside."""
    if k == 0:
        return a
    out = np.zeros_like(a)
    n = a.shape[-1]
    if k > 0:
        if k < n:
            out[..., k:] = a[..., : n - k]
    elif -k < n:
        out[..., : n + k] = a[..., -k:]
    return out


class BodyStats(NamedTuple):
    """One step's body comparison: ``θ − ½`` and its variance (shape of the leading axes)."""

    effect: Array
    variance: Array
    n_candidate: Array
    n_stable: Array


def body_stats(cand: Array, stab: Array, tolerance: float) -> BodyStats:
    """The Mann-Whitney body comparison from ``(..., CLUSTERS, CELLS)`` count arrays."""
    shift = math.log1p(tolerance) / CELL_LOG_WIDTH
    m = math.floor(shift)
    f = shift - m
    a_mid, a_low = 1.0 - f * f / 2.0, (1.0 - f) ** 2 / 2.0
    pc, ps = cand.sum(axis=-2), stab.sum(axis=-2)  # (..., CELLS)
    n_c, n_s = pc.sum(axis=-1), ps.sum(axis=-1)
    p = pc / np.where(n_c > 0, n_c, 1.0)[..., None]
    q = ps / np.where(n_s > 0, n_s, 1.0)[..., None]
    # g[i] = P(a candidate value in cell i beats a random stable one, slowed by the tolerance)
    q_cdf = np.cumsum(q, axis=-1)
    g = _shift(q_cdf, m + 2) + a_mid * _shift(q, m + 1) + a_low * _shift(q, m)
    # h[j] = P(a random candidate beats a stable value in cell j)
    p_tail = np.cumsum(p[..., ::-1], axis=-1)[..., ::-1]  # P(candidate cell >= i)
    h = _shift(p_tail, -(m + 2)) + a_mid * _shift(p, -(m + 1)) + a_low * _shift(p, -m)
    theta = np.einsum("...i,...i->...", p, g)
    var_g = np.maximum(np.einsum("...i,...i->...", p, g * g) - theta**2, 0.0)
    var_h = np.maximum(np.einsum("...i,...i->...", q, h * h) - theta**2, 0.0)
    k = _PRIOR_COMPONENTS
    var_g = (n_c * var_g + k * _NULL_COMPONENT_VARIANCE) / (n_c + k)
    var_h = (n_s * var_h + k * _NULL_COMPONENT_VARIANCE) / (n_s + k)
    with np.errstate(divide="ignore", invalid="ignore"):
        iid_c = np.where(n_c > 0, var_g / n_c, 0.0)
        iid_s = np.where(n_s > 0, var_h / n_s, 0.0)
        # Each side's clustering as a ratio to its independent variance. Both sides serve
        # random halves of one user population, so the larger ratio applies to both: early
        # in a canary the candidate's few requests cannot show its clustering yet, the
        # stable release's many already do.
        phi_c = np.where(iid_c > 0, _cluster_component(cand, g, theta, n_c) / iid_c, 1.0)
        phi_s = np.where(iid_s > 0, _cluster_component(stab, h, theta, n_s) / iid_s, 1.0)
    phi = np.maximum(np.maximum(phi_c, phi_s), 1.0)
    both = (n_c > 0) & (n_s > 0)
    return BodyStats(np.where(both, theta - 0.5, 0.0), phi * (iid_c + iid_s), n_c, n_s)


def _cluster_component(counts: Array, placement: Array, theta: Array, n: Array) -> Array:
    """Cluster-robust variance of one side's mean placement: ``G/(G−1) Σ_g (A_g − θ n_g)² / n²``."""
    a = np.einsum("...gi,...i->...g", counts, placement)
    n_g = counts.sum(axis=-1)
    used = (n_g > 0).sum(axis=-1).astype(np.float64)
    resid = a - theta[..., None] * n_g
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = np.where(used >= 2, used / np.maximum(used - 1.0, 1.0), 0.0)
        return np.where(n > 0, factor * (resid * resid).sum(axis=-1) / (n * n), 0.0)


class TailCounts(NamedTuple):
    """One step's tail comparison, per cluster: bad events and exposures of each side."""

    bad_c: Array  # (..., CLUSTERS) candidate requests above (1 + tol) · q
    exposure_c: Array
    bad_s: Array  # (..., CLUSTERS) stable (test half) requests above q; 0 on the reference half
    exposure_s: Array
    threshold_cell: Array  # (...) stable's p-quantile cell, -1 where the reference is too small


def tail_counts(cand: Array, stab: Array, tolerance: float, quantile: float = 0.99) -> TailCounts:
    """Exceedance counts for the tail test (see the module docstring).

    Arrays are ``(..., CLUSTERS, cells)``; the cells may be any contiguous range of
    the fine cells (the same for both sides), as in the detection benchmark.
    """
    odd = np.arange(CLUSTERS) % 2 == 1
    reference = stab[..., odd, :].sum(axis=-2)  # (..., CELLS)
    n_ref = reference.sum(axis=-1)
    cdf = np.cumsum(reference, axis=-1)
    q_cell = np.argmax(cdf >= quantile * n_ref[..., None], axis=-1)
    ok = n_ref >= TAIL_REFERENCE_MIN
    q_cell = np.where(ok, q_cell, -1)
    shift = math.ceil(math.log1p(tolerance) / CELL_LOG_WIDTH - 1e-9)
    cells = np.arange(stab.shape[-1])  # callers may pass a cropped range of cells
    above_c = cells > (q_cell[..., None] + shift)  # (..., CELLS)
    above_s = cells > q_cell[..., None]
    bad_c = np.einsum("...gi,...i->...g", cand, above_c.astype(np.float64))
    bad_s = np.einsum("...gi,...i->...g", stab, above_s.astype(np.float64))
    test = (~odd).astype(np.float64)
    okf = ok.astype(np.float64)[..., None]
    return TailCounts(
        bad_c * okf,
        cand.sum(axis=-1) * okf,
        bad_s * test * okf,
        stab.sum(axis=-1) * test * okf,
        q_cell,
    )


__all__ = [
    "TAIL_REFERENCE_MIN",
    "BodyStats",
    "TailCounts",
    "body_stats",
    "dense_cells",
    "tail_counts",
]
