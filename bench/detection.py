"""Does the analysis roll back bad canaries fast, and never good ones, on real traffic?

Traffic is simulated **per user**, the way the gateway really routes it: every
user has a routing bucket from the real router's hash
(:func:`airlock.core.traffic.bucket_of`), so all of a user's requests go to one
release; users are uneven — lognormal request rates (σ = 1.5: a few heavy
users), and per-user error and guardrail-flag propensities (gamma, mean 1,
shape 0.5 and 0.2: some users' prompts trip the guardrails again and again)
and latency levels (lognormal factor, σ = 0.3: long prompts are slow). Given
the users, a group of users' requests, errors and flags are Poisson processes
whose rates are the sums of its users' rates, so the simulation draws, each
second and for each (release, analysis cluster), Poisson requests and
binomial errors and flags at the group's rates, and latency cells (2 % wide)
from the group's mixture of user latency distributions every ten seconds.
"iid" scenarios have no users: every request is independent.

The judges watch the same traffic, on the same seeds:

* **airlock** — the shipped analysis (default settings: α = 0.01 over the
  enabled metrics by weight, latency tolerance 10 %), evaluated with the very
  functions :func:`airlock.core.analysis.judge` uses (``core.evidence``,
  ``core.latency``), vectorised over seeds; rates are looked at every second,
  latency every ten; evidence carries across the strata of a multi-step
  rollout. A sample of looks is re-run through ``analyze()`` itself and must
  agree (``mismatches`` must be 0).
* **oracle SPRT** — Wald's sequential probability ratio test that *knows the
  true effect* (and, for latency, the true distributions), at the α share
  Airlock gives that metric: the physical limit for any test at that level.
* **flagger (tuned)** — a Flagger analysis tuned for speed: a 30 s interval,
  ``threshold: 1`` (roll back at the first failed check), the candidate's error
  rate, guardrail-flag rate and p99 over the interval against fixed
  thresholds, calibrated on separate A/A seeds to ≤ 1 % false rollbacks.
* **kayenta** — Kayenta's NetflixACAJudge on 10 s data points: after 50
  points per metric, a Mann-Whitney test with a 98 % Hodges-Lehmann interval
  per metric, "High" when the lower bound exceeds 25 % of the estimate; a
  score below 75 fails the canary.

Reported per scenario: rollback rate (in A/A scenarios and "+8 % narrow",
which is inside the tolerance: false rollbacks), SRM pauses, and the median
and p90 canary requests served before the rollback, with the ratio to the
oracle's median.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from airlock.core.analysis import AnalysisSettings, analyze
from airlock.core.evidence import (
    GRID,
    UP_GRID,
    label_loglik,
    normal_log_evalue,
    normal_tau,
    rate_dispersion,
    rate_log_evalue,
)
from airlock.core.latency import body_stats, tail_counts
from airlock.core.srm import request_dispersion, share_log_evalue, share_loglik
from airlock.core.traffic import BUCKETS, bucket_of
from airlock.core.window import CELL_LOG_WIDTH, CELL_MIN_MS, CELLS, CLUSTERS, ReleaseWindow
from bench._report import report

Array = NDArray[np.float64]
LAT_EVERY = 10  # seconds between latency looks (and Kayenta data points)
FLAGGER_INTERVAL = 30
KAYENTA_POINTS, KAYENTA_CONF, KAYENTA_TOLERANCE, KAYENTA_MARGINAL = 50, 0.98, 0.25, 75.0
LEVELS = 17  # latency levels of users (quantised lognormal factor; the middle one is 1)
C0, C1 = 230, 560  # the range of fine cells simulated (≈ 4.7 ms .. 3.3 s with CELL_MIN_MS)


@dataclass(frozen=True)
class Scenario:
    name: str
    users: int = 0  # 0: independent requests
    rps: float = 1000.0
    steps: tuple[tuple[int, int], ...] = ((500, 1800),)  # (candidate weight bp, seconds)
    errors: tuple[float, float] = (0.01, 0.01)  # (stable, candidate)
    flags: tuple[float, float] = (0.005, 0.005)
    median_ms: float = 150.0
    sigma: float = 0.47
    slowdown: float = 1.0
    candidate_sigma: float | None = None
    incident: tuple[int, int, float] | None = None  # (start s, seconds, error multiplier)
    oracle: str | None = None  # errors | flags | latency | tail
    harmless: bool = True  # a rollback is a false rollback

    @property
    def seconds(self) -> int:
        return sum(s for _, s in self.steps)


LINEAR = tuple((1000 * k, 180) for k in range(1, 11))
SCENARIOS = (
    Scenario("A/A iid"),
    Scenario("A/A sticky 2,000 users", users=2000),
    Scenario("A/A sticky 20,000 users", users=20_000),
    Scenario("A/A incident (2 min, both arms)", users=20_000, incident=(600, 120, 10.0)),
    Scenario("A/A 5 req/s", rps=5.0, users=2000),
    Scenario("A/A 1 req/s", rps=1.0, users=2000),
    Scenario("A/A 10-step linear", users=2000, steps=LINEAR),
    Scenario("errors 1% -> 2%", errors=(0.01, 0.02), oracle="errors", harmless=False),
    Scenario("errors 1% -> 5%", errors=(0.01, 0.05), oracle="errors", harmless=False),
    Scenario("guardrail 0.5% -> 2%", flags=(0.005, 0.02), oracle="flags", harmless=False),
    Scenario("latency +20% wide", slowdown=1.2, oracle="latency", harmless=False),
    Scenario(
        "latency +20% narrow",
        median_ms=100.0,
        sigma=0.05,
        slowdown=1.2,
        oracle="latency",
        harmless=False,
    ),
    Scenario("latency +8% narrow", median_ms=100.0, sigma=0.05, slowdown=1.08),
    Scenario("p99 x2, same median", candidate_sigma=0.769, oracle="tail", harmless=False),
    Scenario("errors 1% -> 2% sticky 20k", users=20_000, errors=(0.01, 0.02), harmless=False),
)


# -- the population ---------------------------------------------------------------


@dataclass
class Population:
    """Per seed: each user's bucket, request rate and propensities (empty for iid)."""

    bucket: NDArray[np.int64]  # (S, U)
    rate: Array  # (S, U) requests per second
    err: Array  # (S, U) error-propensity multiplier
    flag: Array
    level: NDArray[np.int64]  # (S, U) latency level
    level_offset: Array  # (LEVELS,) log factor of each level


def population(scenario: Scenario, seeds: int, rng: np.random.Generator, base: int) -> Population:
    u = scenario.users
    levels = np.linspace(-2.0, 2.0, LEVELS) * 0.3
    if u == 0:
        empty = np.zeros((seeds, 0))
        return Population(
            empty.astype(np.int64), empty, empty, empty, empty.astype(np.int64), levels
        )
    bucket = np.array(
        [[bucket_of("chat", f"{base}:{s}:user-{i}") for i in range(u)] for s in range(seeds)]
    )
    rate = rng.lognormal(0.0, 1.5, (seeds, u))
    rate *= scenario.rps / rate.sum(axis=1, keepdims=True)
    err = rng.gamma(0.5, 2.0, (seeds, u))
    flag = rng.gamma(0.2, 5.0, (seeds, u))
    z = rng.normal(0.0, 1.0, (seeds, u))
    level = np.clip(np.round((z + 2.0) / 4.0 * (LEVELS - 1)), 0, LEVELS - 1).astype(np.int64)
    return Population(bucket, rate, err, flag, level, levels)


def cell_probabilities(median_ms: float, sigma: float, offsets: Array) -> Array:
    """(LEVELS, C1 − C0) probabilities of the simulated cells, per latency level."""
    bounds = np.log(CELL_MIN_MS) + CELL_LOG_WIDTH * np.arange(C0 - 1, C1)
    mu = math.log(median_ms) + offsets[:, None]
    cdf = stats.norm.cdf((bounds[None, :] - mu) / sigma)
    cdf[:, 0], cdf[:, -1] = 0.0, 1.0  # the ends of the range take the tails
    return np.diff(cdf, axis=1)


@dataclass
class Groups:
    """Rates per (seed, arm, cluster) for one stratum; arm 0 = candidate, 1 = stable."""

    requests: Array  # (S, 2, G)
    p_err: Array
    p_flag: Array
    cells: Array  # (S, 2, G, C) probability of each cell
    levels: Array  # (S, 2, G, LEVELS) cumulative share of each latency level


def groups(scenario: Scenario, pop: Population, weight: int, probs: tuple[Array, Array]) -> Groups:
    seeds = pop.rate.shape[0]
    mirror = weight in (0, BUCKETS)
    p_err = np.array([scenario.errors[1], scenario.errors[0]])
    p_flag = np.array([scenario.flags[1], scenario.flags[0]])
    cells = np.zeros((seeds, 2, CLUSTERS, C1 - C0))
    if scenario.users == 0:
        g = np.arange(CLUSTERS)
        per = (BUCKETS - g + CLUSTERS - 1) // CLUSTERS
        cand = np.where(g < weight, (weight - g + CLUSTERS - 1) // CLUSTERS, 0)
        shares = (per, per) if mirror else (cand, per - cand)
        requests = np.stack([scenario.rps * s / BUCKETS for s in shares])[None].repeat(seeds, 0)
        for arm in range(2):
            cells[:, arm] = probs[arm][LEVELS // 2]
        levels = np.zeros((seeds, 2, CLUSTERS, LEVELS))
        levels[..., LEVELS // 2 :] = 1.0
        return Groups(
            requests,
            np.broadcast_to(p_err[None, :, None], requests.shape).copy(),
            np.broadcast_to(p_flag[None, :, None], requests.shape).copy(),
            cells,
            levels,
        )
    requests = np.zeros((seeds, 2, CLUSTERS))
    err = np.zeros_like(requests)
    flag = np.zeros_like(requests)
    levels = np.zeros((seeds, 2, CLUSTERS, LEVELS))
    cluster = pop.bucket % CLUSTERS
    for arm in range(2):
        if mirror:
            member = np.ones_like(pop.rate, dtype=bool)
        else:
            member = pop.bucket < weight if arm == 0 else pop.bucket >= weight
        w = pop.rate * member
        for s in range(seeds):
            requests[s, arm] = np.bincount(cluster[s], w[s], CLUSTERS)
            err[s, arm] = np.bincount(
                cluster[s], w[s] * np.minimum(p_err[arm] * pop.err[s], 1), CLUSTERS
            )
            flag[s, arm] = np.bincount(
                cluster[s], w[s] * np.minimum(p_flag[arm] * pop.flag[s], 1), CLUSTERS
            )
            mix = np.zeros((CLUSTERS, LEVELS))
            np.add.at(mix, (cluster[s], pop.level[s]), w[s])
            cells[s, arm] = mix @ probs[arm]
            levels[s, arm] = np.cumsum(mix, axis=1) / np.maximum(mix.sum(1, keepdims=True), 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):
        total = cells.sum(-1, keepdims=True)
        cells = np.where(total > 0, cells / np.where(total > 0, total, 1), 0)
        p_e = np.where(requests > 0, err / np.where(requests > 0, requests, 1), 0)
        p_f = np.where(requests > 0, flag / np.where(requests > 0, requests, 1), 0)
    return Groups(requests, p_e, p_f, cells, levels)


# -- one scenario ------------------------------------------------------------------


@dataclass
class Run:
    """Per seed: when each judge rolled back (s; inf = never) and the canary requests then."""

    canary: Array  # (S, T) cumulative candidate requests at the end of each second
    airlock: Array  # (S,)
    srm_pause: Array  # (S,)
    oracle: Array
    points: dict[str, list[Array]] = field(default_factory=dict)  # 10 s data points
    by_metric: dict[str, Array] = field(default_factory=dict)  # first failure of each metric
    checked: int = 0
    mismatches: int = 0


def _first(record: Array, hit: NDArray[np.bool_], t: float) -> None:
    new = hit & ~np.isfinite(record)
    record[new] = t


def _p99(cells: Array) -> Array:
    """The p99 (ms) of cell counts summed over clusters, (S, C) -> (S,); nan when empty."""
    cdf = np.cumsum(cells, axis=-1)
    n = cdf[..., -1]
    idx = np.argmax(cdf >= 0.99 * n[..., None], axis=-1)
    upper = CELL_MIN_MS * np.exp(CELL_LOG_WIDTH * (C0 + idx))
    return np.where(n > 0, upper, np.nan)


def _sample_candidate(
    rng: np.random.Generator,
    cells: Array,
    successes: Array,
    levels: Array,
    mu: float,
    sigma: float,
    offsets: Array,
) -> None:
    """Add each successful candidate request's latency cell to ``cells`` (S, G, C), one by one."""
    counts = successes.astype(np.int64).ravel()
    total = int(counts.sum())
    if total == 0:
        return
    group = np.repeat(np.arange(counts.size), counts)
    u = rng.random(total)
    level = (u[:, None] > levels.reshape(-1, LEVELS)[group]).sum(axis=1)
    level = np.minimum(level, LEVELS - 1)
    log_ms = mu + offsets[level] + sigma * rng.standard_normal(total)
    cell = np.floor((log_ms - math.log(CELL_MIN_MS)) / CELL_LOG_WIDTH).astype(np.int64) + 1 - C0
    cell = np.clip(cell, 0, C1 - C0 - 1)
    flat = cells.reshape(-1)
    np.add.at(flat, group * (C1 - C0) + cell, 1.0)


def _stable_refresh(t: int, dt: int) -> bool:
    """When stable's latency cells are drawn (they change slowly: 95 % of traffic)."""
    return t in (1, 2, 5, 10, 20, 30) or t % 60 < dt


def _latency_look(t: int, dt: int) -> bool:
    return t <= 60 or t % 10 < dt


def simulate(
    scenario: Scenario, seeds: int, seed: int, settings: AnalysisSettings, crosscheck: int
) -> Run:
    rng = np.random.default_rng(seed)
    pop = population(scenario, seeds, rng, seed)
    offsets = pop.level_offset
    c_sigma = scenario.candidate_sigma or scenario.sigma
    c_mu = math.log(scenario.median_ms * scenario.slowdown)
    probs = (
        cell_probabilities(scenario.median_ms * scenario.slowdown, c_sigma, offsets),
        cell_probabilities(scenario.median_ms, scenario.sigma, offsets),
    )
    weights = settings.weights()
    total_w = sum(weights.values())
    thr = {m: math.log(total_w / (settings.alpha * w)) for m, w in weights.items()}
    tol = settings.metrics.latency.tolerance
    quantile = settings.metrics.latency.tail_quantile
    tau = normal_tau(12.0 * settings.mixture_requests, math.exp(-thr["latency"]))
    srm_thr = math.log(1.0 / settings.srm_alpha)
    oracle_metric = {
        "errors": "error_rate",
        "flags": "guardrail_rate",
        "latency": "latency",
        "tail": "latency_tail",
    }.get(scenario.oracle or "", "error_rate")
    oracle_thr = thr[oracle_metric]
    run = Run(
        canary=np.zeros((seeds, scenario.seconds)),
        airlock=np.full(seeds, np.inf),
        srm_pause=np.full(seeds, np.inf),
        oracle=np.full(seeds, np.inf),
    )
    rate_metrics = ("error_rate", "guardrail_rate", "latency_tail")
    done_ll = {m: np.zeros((seeds, len(UP_GRID))) for m in rate_metrics}
    done_disp: dict[str, list[tuple[Array, ...]]] = {m: [] for m in rate_metrics}
    done_z, done_info = np.zeros(seeds), np.zeros(seeds)
    done_srm = np.zeros((seeds, len(GRID)))
    srm_parts: list[tuple[Array, Array, int]] = []
    done_oracle = np.zeros(seeds)
    canary_total = np.zeros(seeds)
    log_e = {
        m: np.full(seeds, -np.inf)
        for m in ("error_rate", "guardrail_rate", "latency", "latency_tail")
    }
    t = 0
    for weight, seconds in scenario.steps:
        grp = groups(scenario, pop, weight, probs)
        mirror = weight in (0, BUCKETS)
        n = np.zeros((seeds, 2, CLUSTERS))
        e = np.zeros_like(n)
        f = np.zeros_like(n)
        cells_c = np.zeros((seeds, CLUSTERS, C1 - C0))
        cells_s = np.zeros((seeds, CLUSTERS, C1 - C0))
        pending = np.zeros((seeds, CLUSTERS))  # stable successes not yet drawn into cells
        point_start = (n.copy(), e.copy(), f.copy(), np.zeros((seeds, 2, C1 - C0)))
        second = 0
        while second < seconds:
            dt = 1 if t < 60 else min(5, seconds - second)  # seconds simulated at once
            second += dt
            t += dt
            p_err = grp.p_err
            if scenario.incident and scenario.incident[0] <= t < sum(scenario.incident[:2]):
                p_err = np.minimum(p_err * scenario.incident[2], 1.0)
            dn = rng.poisson(grp.requests * dt)
            de = rng.binomial(dn, p_err)
            df = rng.binomial(dn, grp.p_flag)
            n += dn
            e += de
            f += df
            _sample_candidate(
                rng, cells_c, dn[:, 0] - de[:, 0], grp.levels[:, 0], c_mu, c_sigma, offsets
            )
            pending += dn[:, 1] - de[:, 1]
            if _stable_refresh(second, dt) or second == seconds:
                cells_s += rng.poisson(pending[..., None] * grp.cells[:, 1])
                pending[:] = 0
            canary_total += dn[:, 0].sum(-1)
            run.canary[:, t - dt : t] = canary_total[:, None]
            # rates: every tick
            for metric, bad in (("error_rate", e), ("guardrail_rate", f)):
                ll = done_ll[metric] + label_loglik(
                    bad[:, 0].sum(-1),
                    n[:, 0].sum(-1),
                    bad[:, 1].sum(-1),
                    n[:, 1].sum(-1),
                    0.0,
                    UP_GRID,
                )
                phi = _dispersion([*done_disp[metric], (bad[:, 0], n[:, 0], bad[:, 1], n[:, 1])])
                log_e[metric] = rate_log_evalue(ll, phi)
            if _latency_look(t, dt) or second == seconds:
                body = body_stats(cells_c, cells_s, tol)
                ok = body.variance > 0
                z = done_z + np.where(ok, body.effect / np.where(ok, body.variance, 1), 0)
                info = done_info + np.where(ok, 1 / np.where(ok, body.variance, 1), 0)
                log_e["latency"] = np.where(info > 0, normal_log_evalue(z, info, tau), -np.inf)
                tc = tail_counts(cells_c, cells_s, tol, quantile)
                ll = done_ll["latency_tail"] + label_loglik(
                    tc.bad_c.sum(-1),
                    tc.exposure_c.sum(-1),
                    tc.bad_s.sum(-1),
                    tc.exposure_s.sum(-1),
                    0.0,
                    UP_GRID,
                )
                phi = _dispersion([*done_disp["latency_tail"], tuple(tc[:4])])
                log_e["latency_tail"] = rate_log_evalue(ll, phi)
            fail = np.zeros(seeds, dtype=bool)
            for metric, value in log_e.items():
                hit = value >= thr[metric]
                _first(run.by_metric.setdefault(metric, np.full(seeds, np.inf)), hit, t)
                fail |= hit
            _first(run.airlock, fail, t)
            if t % LAT_EVERY < dt:
                summed = np.stack([cells_c.sum(1), cells_s.sum(1)], axis=1)
                _points(run, n, e, f, summed, point_start)
                point_start = (n.copy(), e.copy(), f.copy(), summed)
                if not mirror and t % 30 < dt:  # the sample-ratio check (split steps only)
                    srm = done_srm + share_loglik(
                        n[:, 0].sum(-1), n[:, 1].sum(-1), weight / BUCKETS
                    )
                    hits = np.array(
                        [
                            share_log_evalue(
                                srm[s],
                                request_dispersion(
                                    np.stack([*(p[0][s] for p in srm_parts), n[s, 0]]),
                                    np.stack([*(p[1][s] for p in srm_parts), n[s, 1]]),
                                    np.array([*(p[2] for p in srm_parts), weight]),
                                ),
                            )
                            >= srm_thr
                            for s in range(seeds)
                        ]
                    )
                    _first(run.srm_pause, hits, t)
                if run.checked < crosscheck * 4 and t % 120 < dt and not done_disp["error_rate"]:
                    _crosscheck(
                        run, n, e, f, np.stack([cells_c, cells_s], 1), settings, weight, log_e, thr
                    )
            if scenario.oracle:
                ll_o = done_oracle + _oracle(scenario, n, e, f, cells_c, tol)
                _first(run.oracle, ll_o >= oracle_thr, t)
        # the stratum is over: keep its evidence (stable's last cells were drawn at its end)
        for metric, bad in (("error_rate", e), ("guardrail_rate", f)):
            done_ll[metric] += label_loglik(
                bad[:, 0].sum(-1), n[:, 0].sum(-1), bad[:, 1].sum(-1), n[:, 1].sum(-1), 0.0, UP_GRID
            )
            done_disp[metric].append((bad[:, 0], n[:, 0], bad[:, 1], n[:, 1]))
        body = body_stats(cells_c, cells_s, tol)
        ok = body.variance > 0
        done_z += np.where(ok, body.effect / np.where(ok, body.variance, 1), 0)
        done_info += np.where(ok, 1 / np.where(ok, body.variance, 1), 0)
        tc = tail_counts(cells_c, cells_s, tol, quantile)
        done_ll["latency_tail"] += label_loglik(
            tc.bad_c.sum(-1),
            tc.exposure_c.sum(-1),
            tc.bad_s.sum(-1),
            tc.exposure_s.sum(-1),
            0.0,
            UP_GRID,
        )
        done_disp["latency_tail"].append(tuple(tc[:4]))
        if not mirror:
            done_srm += share_loglik(n[:, 0].sum(-1), n[:, 1].sum(-1), weight / BUCKETS)
            srm_parts.append((n[:, 0].copy(), n[:, 1].copy(), weight))
        if scenario.oracle:
            done_oracle += _oracle(scenario, n, e, f, cells_c, tol)
    return run


def _dispersion(parts: list[tuple[Array, ...]]) -> Array:
    bad_c, exp_c, bad_s, exp_s = (np.stack([p[i] for p in parts], axis=1) for i in range(4))
    n_c, n_s = exp_c.sum(-1), exp_s.sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(n_c + n_s > 0, n_c / (n_c + n_s), 0.0)
    return rate_dispersion(bad_c, exp_c, bad_s, exp_s, share)


def _oracle(scenario: Scenario, n: Array, e: Array, f: Array, cells: Array, tol: float) -> Array:
    """Wald's log-likelihood ratio at the true effect, for the stratum so far."""
    if scenario.oracle in ("errors", "flags"):
        bad = e if scenario.oracle == "errors" else f
        p = scenario.errors if scenario.oracle == "errors" else scenario.flags
        log_r = math.log(p[1] / p[0])
        ll = label_loglik(
            bad[:, 0].sum(-1),
            n[:, 0].sum(-1),
            bad[:, 1].sum(-1),
            n[:, 1].sum(-1),
            0.0,
            np.array([0.0, log_r]),
        )
        return ll[:, 1] - ll[:, 0]
    cand = cells.sum(1)  # candidate cells (S, G, C) -> (S, C)
    centers = math.log(CELL_MIN_MS) + CELL_LOG_WIDTH * (np.arange(C0, C1) - 0.5)
    if scenario.oracle == "latency":
        sigma = scenario.sigma
        m0 = math.log(scenario.median_ms * (1 + tol))
        m1 = math.log(scenario.median_ms * scenario.slowdown)
        per = ((centers - m0) ** 2 - (centers - m1) ** 2) / (2 * sigma * sigma)
        return cand @ per
    # tail: the candidate's share above (1 + tol) × stable's true p99
    q = math.log(scenario.median_ms) + scenario.sigma * stats.norm.ppf(0.99) + math.log1p(tol)
    c_sigma = scenario.candidate_sigma or scenario.sigma
    p0 = 0.01
    p1 = float(stats.norm.sf((q - math.log(scenario.median_ms * scenario.slowdown)) / c_sigma))
    above = cand @ (centers > q).astype(float)
    total = cand.sum(-1)
    return above * math.log(p1 / p0) + (total - above) * math.log((1 - p1) / (1 - p0))


def _points(run: Run, n: Array, e: Array, f: Array, cells: Array, start: tuple[Array, ...]) -> None:
    """One 10 s data point; ``cells`` are both sides' cells summed over clusters, (S, 2, C)."""
    n0, e0, f0, c0 = start
    dn, de, df = n - n0, e - e0, f - f0
    dc = cells - c0
    for arm, name in ((0, "c"), (1, "s")):
        req = dn[:, arm].sum(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            run.points.setdefault(f"err_{name}", []).append(
                np.where(req > 0, de[:, arm].sum(-1) / req, np.nan)
            )
            run.points.setdefault(f"flag_{name}", []).append(
                np.where(req > 0, df[:, arm].sum(-1) / req, np.nan)
            )
        run.points.setdefault(f"n_{name}", []).append(req)
        run.points.setdefault(f"bad_{name}", []).append(de[:, arm].sum(-1))
        run.points.setdefault(f"flags_{name}", []).append(df[:, arm].sum(-1))
        run.points.setdefault(f"cells_{name}", []).append(dc[:, arm])
        run.points.setdefault(f"p99_{name}", []).append(_p99(dc[:, arm]))


def _window(n: Array, e: Array, f: Array, cells: Array, arm: int, s: int) -> ReleaseWindow:
    cells_map = {}
    nz = np.nonzero(cells[s, arm])
    for g, c in zip(*nz, strict=True):
        cells_map[int(g) * CELLS + C0 + int(c)] = int(cells[s, arm, g, c])
    req = n[s, arm]
    return ReleaseWindow(
        requests=int(req.sum()),
        errors=int(e[s, arm].sum()),
        guardrail_flags=int(f[s, arm].sum()),
        clusters={
            "requests": tuple(req),
            "errors": tuple(e[s, arm]),
            "guardrail_flags": tuple(f[s, arm]),
        },
        latency_cells=cells_map,
    )


def _crosscheck(
    run: Run,
    n: Array,
    e: Array,
    f: Array,
    cells: Array,
    settings: AnalysisSettings,
    weight: int,
    log_e: dict[str, Array],
    thr: dict[str, float],
) -> None:
    """The same look through ``analyze()`` itself (looks in the first stratum only)."""
    for s in range(min(4, n.shape[0])):
        candidate, stable = _window(n, e, f, cells, 0, s), _window(n, e, f, cells, 1, s)
        verdict = analyze(candidate, stable, settings, weight_bp=weight)
        vector = any(float(v[s]) >= thr[m] for m, v in log_e.items())
        run.mismatches += (verdict.outcome == "fail") != vector
        run.checked += 1


# -- Flagger and Kayenta ----------------------------------------------------------------


def flagger_seconds(run: Run, thresholds: dict[str, float]) -> Array:
    per = FLAGGER_INTERVAL // LAT_EVERY
    p = {k: np.stack(v, axis=1) for k, v in run.points.items()}
    points = p["n_c"].shape[1] // per * per
    shape = (p["n_c"].shape[0], points // per, per)
    req = p["n_c"][:, :points].reshape(shape).sum(-1)
    err = p["bad_c"][:, :points].reshape(shape).sum(-1)
    flg = p["flags_c"][:, :points].reshape(shape).sum(-1)
    cells = p["cells_c"][:, :points].reshape(*shape, -1).sum(2)
    with np.errstate(divide="ignore", invalid="ignore"):
        err_rate = np.where(req > 0, err / req, 0)
        flag_rate = np.where(req > 0, flg / req, 0)
    p99 = np.nan_to_num(_p99(cells), nan=0.0)
    failed = (
        (err_rate > thresholds["error"])
        | (flag_rate > thresholds["flags"])
        | (p99 > thresholds["p99_ms"])
    )
    first = np.where(failed.any(1), failed.argmax(1) + 1, 0)
    return np.where(first > 0, first * FLAGGER_INTERVAL, np.inf)


def tune_flagger(calibration: Run, target: float) -> dict[str, float]:
    """The tightest thresholds (one per-check false-alarm rate for all three) with A/A ≤ target."""
    per = FLAGGER_INTERVAL // LAT_EVERY
    p = {k: np.stack(v, axis=1) for k, v in calibration.points.items()}
    points = p["n_c"].shape[1] // per * per
    shape = (p["n_c"].shape[0], points // per, per)
    req = p["n_c"][:, :points].reshape(shape).sum(-1)
    err = p["bad_c"][:, :points].reshape(shape).sum(-1) / np.maximum(req, 1)
    flg = p["flags_c"][:, :points].reshape(shape).sum(-1) / np.maximum(req, 1)
    p99 = np.nan_to_num(_p99(p["cells_c"][:, :points].reshape(*shape, -1).sum(2)))
    tuned = {"error": 1.0, "flags": 1.0, "p99_ms": 1e9}
    for rate in (0.01, 0.005, 0.002, 0.001, 5e-4, 2e-4, 1e-4, 5e-5, 2e-5, 1e-5, 0.0):
        tuned = {
            "error": float(np.quantile(err, 1 - rate)),
            "flags": float(np.quantile(flg, 1 - rate)),
            "p99_ms": float(np.quantile(p99, 1 - rate)),
        }
        if np.isfinite(flagger_seconds(calibration, tuned)).mean() <= target:
            break
    return tuned


def hodges_lehmann_ci(x: Array, y: Array, conf: float) -> tuple[float, float, float]:
    """Shift estimate and CI of x − y from the Mann-Whitney U distribution (R's wilcox.test)."""
    diffs = np.sort(np.subtract.outer(x, y).ravel())
    m, n = len(x), len(y)
    z = stats.norm.ppf(1 - (1 - conf) / 2)
    k = int(np.floor(m * n / 2 - z * math.sqrt(m * n * (m + n + 1) / 12)))
    k = min(max(k, 0), len(diffs) - 1)
    return float(np.median(diffs)), float(diffs[k]), float(diffs[len(diffs) - 1 - k])


def kayenta_metric_high(canary: Array, baseline: Array) -> bool:
    canary, baseline = canary[np.isfinite(canary)], baseline[np.isfinite(baseline)]
    if len(canary) == 0 or len(baseline) == 0 or np.array_equal(np.sort(canary), np.sort(baseline)):
        return False
    estimate, lower, _ = hodges_lehmann_ci(canary, baseline, KAYENTA_CONF)
    mean_ratio = canary.mean() / baseline.mean() if baseline.mean() > 0 else 1.0
    return lower > KAYENTA_TOLERANCE * abs(estimate) and mean_ratio >= 1.0


def kayenta_seconds(run: Run) -> Array:
    p = {k: np.stack(v, axis=1) for k, v in run.points.items()}
    if p["err_c"].shape[1] < KAYENTA_POINTS:
        return np.full(p["err_c"].shape[0], np.inf)
    out = []
    for s in range(p["err_c"].shape[0]):
        window = slice(0, KAYENTA_POINTS)
        high = sum(
            kayenta_metric_high(p[f"{k}_c"][s, window], p[f"{k}_s"][s, window])
            for k in ("err", "p99", "flag")
        )
        out.append(
            KAYENTA_POINTS * LAT_EVERY if 100.0 * (3 - high) / 3 < KAYENTA_MARGINAL else np.inf
        )
    return np.array(out, dtype=np.float64)


# -- the table ----------------------------------------------------------------------


def requests_at(run: Run, seconds: Array) -> Array:
    index = np.clip(
        np.nan_to_num(seconds, posinf=1).astype(np.int64) - 1, 0, run.canary.shape[1] - 1
    )
    served = run.canary[np.arange(len(seconds)), index]
    return np.where(np.isfinite(seconds), served, np.inf)


def summarise(values: Array) -> tuple[float, float]:
    return tuple(float(np.percentile(values, q, method="inverted_cdf")) for q in (50, 90))  # type: ignore[return-value]


def fmt(value: float) -> str:
    return f"{value:,.0f}" if math.isfinite(value) else "never"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench detection")
    parser.add_argument("--seeds", type=int, default=200, help="runs per regression scenario")
    parser.add_argument("--aa-seeds", type=int, default=300, help="runs per harmless scenario")
    parser.add_argument("--seed", type=int, default=20_261_202)
    parser.add_argument("--only", default="", help="run only scenarios whose name contains this")
    parser.add_argument("--crosscheck", type=int, default=3)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    settings = AnalysisSettings()
    calibration = simulate(SCENARIOS[0], args.aa_seeds, args.seed + 999, settings, 0)
    tuned = tune_flagger(calibration, target=0.01)
    rows: list[list[Any]] = []
    results: dict[str, Any] = {}
    checked = mismatches = 0
    for index, scenario in enumerate(SCENARIOS):
        if args.only and args.only not in scenario.name:
            continue
        seeds = args.aa_seeds if scenario.harmless else args.seeds
        began = time.perf_counter()
        run = simulate(scenario, seeds, args.seed + index, settings, args.crosscheck)
        checked += run.checked
        mismatches += run.mismatches
        judges = {
            "airlock": run.airlock,
            "oracle SPRT": run.oracle if scenario.oracle else None,
            "flagger (tuned)": flagger_seconds(run, tuned),
            "kayenta": kayenta_seconds(run),
        }
        oracle_median = summarise(requests_at(run, run.oracle))[0] if scenario.oracle else math.nan
        for judge, seconds in judges.items():
            if seconds is None:
                continue
            served = requests_at(run, seconds)
            median, p90 = summarise(served)
            rate = float(np.isfinite(seconds).mean())
            ratio = (
                median / oracle_median
                if scenario.oracle and math.isfinite(oracle_median)
                else math.nan
            )
            srm = f"{100 * np.isfinite(run.srm_pause).mean():.1f} %" if judge == "airlock" else "-"
            rows.append(
                [
                    scenario.name,
                    judge,
                    f"{100 * rate:.1f} %",
                    srm,
                    "-" if scenario.harmless else fmt(median),
                    "-" if scenario.harmless else fmt(p90),
                    "-" if scenario.harmless else fmt(summarise(seconds)[0]),
                    f"{ratio:.2f}x" if math.isfinite(ratio) else "-",
                ]
            )
            results.setdefault(scenario.name, {})[judge] = {
                "seeds": seeds,
                "rollback_rate": rate,
                "median_canary_requests": median if math.isfinite(median) else None,
                "p90_canary_requests": p90 if math.isfinite(p90) else None,
                "median_seconds": summarise(seconds)[0]
                if math.isfinite(summarise(seconds)[0])
                else None,
                "vs_oracle": ratio if math.isfinite(ratio) else None,
            }
        results[scenario.name]["airlock"]["srm_pause_rate"] = float(
            np.isfinite(run.srm_pause).mean()
        )
        print(f"  {scenario.name}: {time.perf_counter() - began:.0f}s", flush=True)
    elapsed = time.perf_counter() - started
    report(
        "detection",
        [
            "scenario",
            "judge",
            "rolled back",
            "SRM paused",
            "median canary req",
            "p90 canary req",
            "median s",
            "vs oracle",
        ],
        rows,
        {
            "settings": vars(args),
            "analysis": settings.model_dump(mode="json"),
            "flagger_tuned_thresholds": tuned,
            "results": results,
            "analyze_crosscheck": {"looks": checked, "mismatches": mismatches},
            "seconds": round(elapsed, 1),
        },
    )
    print(
        f"flagger tuned: error > {tuned['error']:.2%}, flags > {tuned['flags']:.2%}, "
        f"p99 > {tuned['p99_ms']:.0f} ms; analyze() cross-check: {mismatches} mismatches in "
        f"{checked} looks; {elapsed:.0f}s"
    )
    return 1 if mismatches else 0
