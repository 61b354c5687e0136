"""Sample-ratio mismatch: does the candidate get the share of traffic the plan gives it?

A broken router, a candidate that crashes before it is counted, or a client
that retries elsewhere all change the candidate's share of requests — and
make every other comparison meaningless (the candidate looks healthy because
its failures never reach the counters). Each step of a split rollout plans a
share ``s₀ = weight / 10000``; given the step's requests, the candidate's count
is binomial with probability ``s₀``. The test mixes the binomial likelihood
ratio over log-odds offsets on both sides (the grid and prior of
:mod:`airlock.core.evidence`), multiplies across steps, and is tempered by the
over-dispersion of request counts between clusters (heavy users make counts
lumpy: one user with a thousand requests is one draw, not a thousand). Like
every e-process here it may be checked at every tick (Ville's inequality);
its own α (``srm_alpha``) is separate from the rollback budget, because a
mismatch pauses the rollout rather than rolling it back (Fabijan et al. 2019,
*Diagnosing sample ratio mismatch in online controlled experiments*, KDD;
Lindon & Malek 2022 for the sequential multinomial test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from airlock.core.evidence import GRID, HALF, LOG_PRIOR, N_ALT, logsumexp
from airlock.core.traffic import BUCKETS
from airlock.core.window import CLUSTERS

Array = NDArray[np.float64]


def planned_buckets(weight_bp: int) -> tuple[Array, Array]:
    """Routing buckets per cluster that the candidate (buckets ``0..w−1``) and stable own."""
    g = np.arange(CLUSTERS)
    total = (BUCKETS - g + CLUSTERS - 1) // CLUSTERS
    cand = np.where(g < weight_bp, (weight_bp - g + CLUSTERS - 1) // CLUSTERS, 0)
    return cand.astype(np.float64), (total - cand).astype(np.float64)


def share_loglik(n_c: ArrayLike, n_s: ArrayLike, planned_share: float) -> Array:
    """Log-likelihood of the candidate's request count at ``logit s = logit s₀ + GRID``."""
    nc = np.asarray(n_c, dtype=np.float64)
    ns = np.asarray(n_s, dtype=np.float64)
    t = math.log(planned_share / (1.0 - planned_share)) + GRID
    return nc[..., None] * -np.logaddexp(0.0, -t) + ns[..., None] * -np.logaddexp(0.0, t)


def request_dispersion(requests_c: Array, requests_s: Array, weight_bp: int | Array) -> float:
    """Over-dispersion of per-cluster request counts against the routing plan (≥ 1).

    ``requests_*`` are ``(steps, CLUSTERS)`` (or one step, ``(CLUSTERS,)``) and
    ``weight_bp`` the planned weight of each step. A cluster's expected count is
    its share of the release's routing buckets times the release's requests,
    summed over steps, so a heavy user — who stays in one cluster, step after
    step — shows as the cluster-robust (sandwich) spread
    ``G/(G − 1) · Σ_g (n_g − e_g)² / Σ_g e_g``.
    """
    n_c = np.atleast_2d(np.asarray(requests_c, dtype=np.float64))
    n_s = np.atleast_2d(np.asarray(requests_s, dtype=np.float64))
    weights_bp = np.broadcast_to(np.asarray(weight_bp), (n_c.shape[0],))
    phis, sizes = [], []
    for side in (0, 1):
        observed = np.zeros(CLUSTERS)
        expected = np.zeros(CLUSTERS)
        for k, w in enumerate(weights_bp):
            buckets = planned_buckets(int(w))[side]
            counts = (n_c if side == 0 else n_s)[k]
            if buckets.sum() > 0:
                expected += counts.sum() * buckets / buckets.sum()
            observed += counts
        used = expected > 0
        g = int(used.sum())
        total = float(expected.sum())
        if g < 2 or total <= 0:
            phis.append(1.0)
            sizes.append(0.0)
            continue
        spread = float(np.sum((observed[used] - expected[used]) ** 2))
        phis.append(max(1.0, g / (g - 1) * spread / total))
        share = float(np.mean(weights_bp)) / BUCKETS
        sizes.append(total * ((1 - share) ** 2 if side == 0 else share**2))
    weight = sum(sizes)
    return sum(p * s for p, s in zip(phis, sizes, strict=True)) / weight if weight > 0 else 1.0


def share_log_evalue(loglik: Array, dispersion: float) -> float:
    """Two-sided log e-value against "the share is as planned" (half the prior each side)."""
    ell = np.asarray(loglik, dtype=np.float64) / max(dispersion, 1.0)
    up = ell[HALF + 1 : HALF + 1 + N_ALT] - ell[HALF]
    down = ell[HALF - 1 : HALF - 1 - N_ALT : -1] - ell[HALF]
    both = np.concatenate([LOG_PRIOR + up, LOG_PRIOR + down]) + math.log(0.5)
    return float(logsumexp(both))


@dataclass(frozen=True, slots=True)
class SrmCheck:
    """The sample-ratio check of a rollout so far."""

    mismatch: bool
    observed_share: float
    planned_share: float
    log_evidence: float
    log_threshold: float
    n_candidate: int
    n_stable: int

    @property
    def reason(self) -> str:
        return (
            f"sample ratio mismatch: the candidate got {self.observed_share:.2%} of "
            f"{self.n_candidate + self.n_stable} requests in this step, the plan gives it "
            f"{self.planned_share:.2%} (a broken router, or candidate requests that are "
            "never counted)"
        )


__all__ = ["SrmCheck", "planned_buckets", "request_dispersion", "share_log_evalue", "share_loglik"]
