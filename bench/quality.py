"""Does live quality scoring catch a release that answers fast and wrongly, and never a good one?

Scenarios (issue 12), at 20 canary requests/s (a 20 % canary of 100 req/s) with
10 % of answers scored:

* **refusal 2 % → 6 %, unpaired** — an online refusal scorer on both arms:
  the analysis compares the arms' refusal rates per scored answer
  (``quality.no_refusal``).
* **refusal 2 % → 6 %, paired shadow** — the same regression seen by a
  pairwise judge in a shadow phase: every sampled request is answered by both
  releases and judged (a loss when only the candidate refuses, a win when only
  stable does, a tie otherwise).
* **pairwise loss 50 % → 60 %, paired shadow** — a candidate that loses 60 %
  of the decisive comparisons (20 % of pairs are ties).
* the three **A/A** versions (no regression): false rollbacks must stay ≤ 1 %.

Traffic as the gateway produces it: 5,000 sticky users with lognormal request
rates (σ = 1.5), hashed to routing buckets by the real router
(:func:`airlock.core.traffic.bucket_of`) and to analysis clusters; each user has
an own refusal propensity (gamma, mean 1, shape 0.5) and an own share of
pairwise losses (beta around the scenario's share, intra-user correlation 0.05).
Each look (every ``--look`` seconds) feeds the cumulative per-cluster counts to
the real :func:`airlock.core.analysis.analyze` with the default analysis
settings plus the quality metric (α = 0.01 shared by weight with the built-in
metrics, which see no data here and so cannot fire).

Reference: the **oracle SPRT** — Wald's test that knows the true rates, at the
quality metric's α share — its expected number of scored samples
(unpaired: candidate's scored answers; paired: judged pairs), from Wald's
approximation ``log(1/α) / KL``.

**Overhead** (``--part overhead``): the real ``airlock gateway`` in its own
process in front of a fast upstream on loopback (the processes and the open-loop
load generator of ``bench/gateway.py``), once without quality scoring and once
with a refusal and a JSON scorer on 10 % and on 100 % of answers; the added p99
at 200 RPS is the scoring setup's p99 minus the plain setup's, same run,
interleaved repeats (medians).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from airlock.core.analysis import AnalysisSettings, MetricSettings, analyze
from airlock.core.quality import PAIRWISE_METRIC, QualitySettings, analysis_metrics
from airlock.core.traffic import bucket_of
from airlock.core.window import CLUSTERS, ReleaseWindow, cluster_of, custom_field
from bench._report import report

Array = NDArray[np.float64]
REFUSAL = "quality.no_refusal"


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "unpaired" | "paired"
    stable_refusal: float = 0.02
    candidate_refusal: float = 0.02
    loss_share: float = 0.5  # pairwise, among decisive pairs (kind "paired", no refusal model)
    refusal_pairs: bool = False  # paired scenario driven by the refusal model

    @property
    def harmless(self) -> bool:
        if self.kind == "unpaired" or self.refusal_pairs:
            return self.candidate_refusal <= self.stable_refusal
        return self.loss_share <= 0.5


SCENARIOS = (
    Scenario("A/A refusal, unpaired", "unpaired"),
    Scenario("refusal 2→6 %, unpaired", "unpaired", candidate_refusal=0.06),
    Scenario("A/A refusal, paired shadow", "paired", refusal_pairs=True),
    Scenario("refusal 2→6 %, paired shadow", "paired", candidate_refusal=0.06, refusal_pairs=True),
    Scenario("A/A pairwise, paired shadow", "paired"),
    Scenario("pairwise loss 50→60 %, paired shadow", "paired", loss_share=0.6),
)


def settings(kind: str) -> AnalysisSettings:
    if kind == "unpaired":
        q = QualitySettings.model_validate(
            {"scorers": {"no_refusal": {"check": {"refusal": False}}}}
        )
    else:
        q = QualitySettings.model_validate(
            {"judge": {"release": "judge@1.0.0", "mode": "pairwise"}}
        )
    return AnalysisSettings(metrics=MetricSettings(custom=analysis_metrics(q)), srm_alpha=0.0)


@dataclass
class Users:
    rate: Array  # requests per second
    cluster: NDArray[np.int64]
    canary: NDArray[np.bool_]
    refusal_factor: Array
    loss_share: Array


def users(
    rng: np.random.Generator, n: int, total_rps: float, canary_pct: float, loss: float
) -> Users:
    rate = rng.lognormal(0.0, 1.5, n)
    rate *= total_rps / rate.sum()
    keys = [f"user-{rng.integers(1 << 62)}" for _ in range(n)]
    buckets = np.array([bucket_of("chat", k) for k in keys])
    cluster = np.array([cluster_of(int(b)) for b in buckets])
    canary = buckets < canary_pct / 100 * 10_000
    spread = 19.0  # beta concentration: intra-user correlation 1/(1 + 19) = 0.05
    return Users(
        rate=rate,
        cluster=cluster,
        canary=canary,
        refusal_factor=rng.gamma(0.5, 2.0, n),
        loss_share=rng.beta(spread * loss, spread * (1 - loss), n),
    )


def window(bad: Array, trials: Array, requests: Array, metric: str) -> ReleaseWindow:
    return ReleaseWindow(
        requests=int(requests.sum()),
        custom={metric: (float(bad.sum()), float(trials.sum()))},
        clusters={
            "requests": tuple(requests),
            custom_field(metric, "successes"): tuple(bad),
            custom_field(metric, "trials"): tuple(trials),
        },
    )


def by_cluster(u: Users, values: Array, mask: NDArray[np.bool_] | None = None) -> Array:
    w = values if mask is None else np.where(mask, values, 0.0)
    return np.bincount(u.cluster, weights=w, minlength=CLUSTERS).astype(np.float64)


def run_one(
    scenario: Scenario, seed: int, horizon_s: int, look_s: int, sample: float
) -> tuple[float, float]:
    """(seconds to roll back or inf, scored samples by then) for one seed."""
    rng = np.random.default_rng(seed)
    u = users(rng, 5000, 100.0, 20.0, scenario.loss_share)
    cfg = settings(scenario.kind)
    zero = np.zeros(CLUSTERS)
    acc = {k: zero.copy() for k in ("n_c", "n_s", "t_c", "t_s", "b_c", "b_s")}
    for look in range(1, horizon_s // look_s + 1):
        requests = rng.poisson(u.rate * look_s).astype(np.float64)
        scored = rng.binomial(requests.astype(np.int64), sample).astype(np.float64)
        if scenario.kind == "unpaired":
            p = np.where(u.canary, scenario.candidate_refusal, scenario.stable_refusal)
            p = np.minimum(p * u.refusal_factor, 1.0)
            refusals = rng.binomial(scored.astype(np.int64), p).astype(np.float64)
            acc["n_c"] += by_cluster(u, requests, u.canary)
            acc["n_s"] += by_cluster(u, requests, ~u.canary)
            acc["t_c"] += by_cluster(u, scored, u.canary)
            acc["t_s"] += by_cluster(u, scored, ~u.canary)
            # the scorer passes when the answer is no refusal: "bad" = refusal
            acc["b_c"] += by_cluster(u, refusals, u.canary)
            acc["b_s"] += by_cluster(u, refusals, ~u.canary)
            c = window(acc["t_c"] - acc["b_c"], acc["t_c"], acc["n_c"], REFUSAL)
            s = window(acc["t_s"] - acc["b_s"], acc["t_s"], acc["n_s"], REFUSAL)
            samples = float(acc["t_c"].sum())
        else:
            if scenario.refusal_pairs:
                pc = np.minimum(scenario.candidate_refusal * u.refusal_factor, 1.0)
                ps = np.minimum(scenario.stable_refusal * u.refusal_factor, 1.0)
                loss, win = pc * (1 - ps), ps * (1 - pc)
                probs = np.stack([loss, 1 - loss - win, win], axis=1)
            else:
                probs = np.stack(
                    [0.8 * u.loss_share, np.full(len(u.rate), 0.2), 0.8 * (1 - u.loss_share)],
                    axis=1,
                )
            outcome = rng.multinomial(scored.astype(np.int64), probs).astype(np.float64)
            acc["n_c"] += by_cluster(u, requests)
            acc["t_c"] += by_cluster(u, scored)
            acc["b_c"] += by_cluster(u, outcome[:, 0])
            acc["b_s"] += by_cluster(u, outcome[:, 2])
            c = window(acc["b_c"], acc["t_c"], acc["n_c"], PAIRWISE_METRIC)
            s = window(acc["b_s"], acc["t_c"], acc["n_c"], PAIRWISE_METRIC)
            samples = float(acc["t_c"].sum())
        if analyze(c, s, cfg, mirror=scenario.kind == "paired").outcome == "fail":
            return float(look * look_s), samples
    return math.inf, math.nan


def oracle_samples(scenario: Scenario, alpha: float) -> float:
    """Wald's expected sample size of the SPRT that knows the effect (per scored sample)."""
    if scenario.harmless:
        return math.nan
    log_a = math.log(1 / alpha)
    if scenario.kind == "unpaired":
        # the candidate's scored answers, with stable's rate known exactly
        p1, p0 = scenario.candidate_refusal, scenario.stable_refusal
        kl = p1 * math.log(p1 / p0) + (1 - p1) * math.log((1 - p1) / (1 - p0))
        return log_a / kl
    if scenario.refusal_pairs:
        pc, ps = scenario.candidate_refusal, scenario.stable_refusal
        loss, win = pc * (1 - ps), ps * (1 - pc)
        decisive, q = loss + win, loss / (loss + win)
    else:
        decisive, q = 0.8, scenario.loss_share
    kl = q * math.log(q / 0.5) + (1 - q) * math.log((1 - q) / 0.5)
    return log_a / kl / decisive


def _serve_gateway(port: int, upstream_port: int, home: Path, sample: float) -> None:
    from airlock.config import Settings
    from airlock.core.traffic import TrafficPlan, WeightedRelease, quality_text
    from airlock.gateway.server import run
    from airlock.services.identity import Actor
    from airlock.services.registry import Registry
    from airlock.services.serving import Serving
    from airlock.services.workspace import Workspace

    ws = Workspace.open(Settings(home=home, user="bench"), create=True)
    actor = Actor("bench")
    refs = []
    for version in ("1.0.0", "1.1.0"):
        folder = home.parent / f"release-{version}"
        folder.mkdir(exist_ok=True)
        config = {
            "runtime": "upstream",
            "base_url": f"http://127.0.0.1:{upstream_port}/v1",
            "model": "echo",
            "timeout_s": 10,
        }
        (folder / "config.json").write_text(json.dumps(config))
        refs.append(Registry(ws).push(folder, name="echo", version=version, actor=actor).ref)
    serving = Serving(ws)
    serving.create("chat", refs[0], actor=actor, reason="benchmark")
    quality = None
    if sample > 0:
        scorers = {
            "no_refusal": {"check": {"refusal": False}},
            "valid_json": {"check": {"json": True}},
        }
        quality = quality_text({"sample": sample, "scorers": scorers})
    plan = TrafficPlan(
        "chat", refs[0], (WeightedRelease(refs[1], 5_000),), generation=1, quality=quality
    )
    serving.set_plan(plan, actor=actor, reason="benchmark")
    run(ws, host="127.0.0.1", port=port, log_level="warning")


def overhead(rate: float, requests: int, warmup: int, repeat: int) -> list[list[Any]]:
    from bench import gateway as gw
    from bench._processes import start, stop

    work = Path(tempfile.mkdtemp(prefix="airlock-bench-quality-"))
    procs: list[subprocess.Popen[bytes]] = []
    me = [sys.executable, "-m", "bench.quality"]
    rows: list[list[Any]] = []
    try:
        up_port = gw._free_port()
        procs.append(start([*me, "_upstream", "--port", str(up_port)], log=work / "up.log"))
        gw._wait_http(up_port, "/v1/models", procs[-1], 30)
        setups: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
        for name, sample in (("scoring off", 0.0), ("scoring 10 %", 0.1), ("scoring 100 %", 1.0)):
            port = gw._free_port()
            home = work / name.replace(" ", "-").replace("%", "pct") / ".airlock"
            cmd = [*me, "_gateway", "--port", str(port), "--upstream-port", str(up_port)]
            proc = start(
                [*cmd, "--home", str(home), "--sample", str(sample)], log=work / f"{port}.log"
            )
            procs.append(proc)
            gw._wait_http(port, "/healthz", proc, 60)
            setups[name] = (port, proc)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in setups}
        for _ in range(repeat):
            for name, (port, _proc) in setups.items():
                gw._only_running({n: p for n, (_, p) in setups.items()}, name)
                runs[name].append(
                    gw._run_load(port, "/v1/chat/completions", rate, requests, warmup, "x")
                )
        base = gw._median_run(runs["scoring off"])
        for name in setups:
            med = gw._median_run(runs[name])
            rows.append(
                [
                    name,
                    f"{rate:g}",
                    f"{med['p50']:.2f}",
                    f"{med['p99']:.2f}",
                    f"{med['p99'] - base['p99']:+.2f}",
                    med["errors"],
                ]
            )
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench quality")
    parser.add_argument("--seeds", type=int, default=40, help="runs per regression scenario")
    parser.add_argument("--aa-seeds", type=int, default=100, help="runs per A/A scenario")
    parser.add_argument("--horizon", type=int, default=1200, help="seconds of traffic per run")
    parser.add_argument("--look", type=int, default=10, help="seconds between analysis looks")
    parser.add_argument("--sample", type=float, default=0.1, help="share of answers scored")
    parser.add_argument("--seed", type=int, default=20_261_202)
    parser.add_argument("--only", default="", help="run only scenarios whose name contains this")
    parser.add_argument("--part", choices=("sim", "overhead", "all"), default="all")
    parser.add_argument("--rate", type=float, default=200.0, help="overhead: requests/s")
    parser.add_argument("--requests", type=int, default=3000, help="overhead: per run")
    parser.add_argument("--repeat", type=int, default=3, help="overhead: interleaved runs")
    parser.add_argument("role", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upstream-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "_upstream":
        from bench.gateway import _serve_upstream

        _serve_upstream(args.port)
        return 0
    if args.role == "_gateway":
        _serve_gateway(args.port, args.upstream_port, Path(args.home), args.sample)
        return 0
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    if args.part in ("overhead", "all"):
        over = overhead(args.rate, args.requests, 300, args.repeat)
        report(
            "quality-overhead",
            ["setup", "RPS", "p50 ms", "p99 ms", "added p99 ms", "errors"],
            over,
            {"settings": vars(args)},
        )
        extra["overhead"] = over
        if args.part == "overhead":
            return 0
    rows: list[list[Any]] = []
    results: dict[str, Any] = {}
    for index, scenario in enumerate(SCENARIOS):
        if args.only and args.only not in scenario.name:
            continue
        began = time.perf_counter()
        seeds = args.aa_seeds if scenario.harmless else args.seeds
        runs = [
            run_one(scenario, args.seed + 10_000 * index + k, args.horizon, args.look, args.sample)
            for k in range(seeds)
        ]
        seconds = np.array([r[0] for r in runs])
        caught = np.isfinite(seconds)
        samples = np.array([r[1] for r in runs])[caught]
        alpha_share = settings(scenario.kind).metric_alpha(
            f"custom.{REFUSAL}" if scenario.kind == "unpaired" else f"custom.{PAIRWISE_METRIC}"
        )
        oracle = oracle_samples(scenario, alpha_share)
        canary_rps = 20.0 if scenario.kind == "unpaired" else 0.0
        med_s = float(np.median(seconds[caught])) if caught.any() else math.nan
        med_samples = float(np.median(samples)) if caught.any() else math.nan
        row = [
            scenario.name,
            seeds,
            f"{100 * caught.mean():.1f} %",
            "-" if scenario.harmless else f"{med_s:.0f}",
            "-" if scenario.harmless else f"{med_s * canary_rps:.0f}",
            "-" if scenario.harmless else f"{med_samples:.0f}",
            "-" if scenario.harmless else f"{oracle:.0f}",
            "-" if scenario.harmless else f"{med_samples / oracle:.2f}x",
        ]
        rows.append(row)
        results[scenario.name] = {
            "seeds": seeds,
            "rollback_rate": float(caught.mean()),
            "median_seconds": None if math.isnan(med_s) else med_s,
            "median_canary_requests": None if math.isnan(med_s) else med_s * canary_rps,
            "median_scored_samples": None if math.isnan(med_samples) else med_samples,
            "oracle_samples": None if math.isnan(oracle) else oracle,
            "alpha_share": alpha_share,
        }
        print(f"  {scenario.name}: {time.perf_counter() - began:.0f}s", flush=True)
    report(
        "quality",
        [
            "scenario",
            "seeds",
            "rolled back",
            "median s",
            "median canary req",
            "median scored samples",
            "oracle SPRT samples",
            "vs oracle",
        ],
        rows,
        {
            "settings": vars(args),
            "results": results,
            "seconds": time.perf_counter() - started,
            **extra,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
