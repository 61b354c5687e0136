"""Governance benchmark: what the rules cost on the paths that run them.

In a temporary SQLite workspace with the Lumen example (two built-in releases trained on
the two example corpora), measures:

- ``airlock eval`` work: the 30-case quality suite through both releases' runtimes
  (verify + load both, answer, score, compare, store), and answers per second;
- the promotion gate (``Governance.check``) on a release with a full policy, one
  approval, two stored 30-case runs and a signature: median of repeated checks;
- an alias move with that gate, against the same move without a policy;
- signing a release and verifying its signature;
- the paired statistics on large runs (10 000 cases: McNemar + Newcombe; paired
  bootstrap with 10 000 resamples + sign-flip test).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from airlock.config import Settings
from airlock.core import evalstats
from airlock.runtime.builtin_model import train
from airlock.services.evals import Evals
from airlock.services.governance import Governance
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.signatures import public_pem
from airlock.services.workspace import Workspace
from bench._report import report

EXAMPLES = Path(__file__).parents[1] / "src" / "airlock" / "examples"
ADMIN, AUTHOR, BOB = Actor("alice", "admin"), Actor("carl", "author"), Actor("bob", "approver")
POLICY = """
stages:
  production:
    approvals: {required: 1}
    evals:
      - {suite: quality, min_pass_rate: 0.4, max_regression: 0.05}
      - {suite: safety, min_pass_rate: 1.0}
    require_signature: true
    max_changed_components: 3
    allow_pickle: false
risk_classes:
  - {name: safety-change, when: {components_changed: [safety_policy]}, require: {approvals: 2}}
  - {name: size-change, when: {parameters_change_pct: 10}, require: {min_canary_minutes: 30}}
"""


def _median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def _folder(root: Path, corpus: str, order: int) -> Path:
    folder = root / corpus
    train((EXAMPLES / corpus).read_text("utf-8"), order=order).save(folder)
    for name in ("prompt_template.yaml", "decoding.yaml", "safety_policy.yaml"):
        shutil.copy(EXAMPLES / name, folder / name)
    return folder


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="bench governance", description=__doc__)
    ap.add_argument("--repeats", type=int, default=50, help="repeats of the quick timings")
    ap.add_argument("--order", type=int, default=4, help="n-gram order of the built-in model")
    args = ap.parse_args(argv)
    rows: list[list[object]] = []
    extra: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="airlock-bench-gov-") as tmp:
        root = Path(tmp)
        ws = Workspace.open(Settings(home=root / ".airlock", user="alice"), create=True)
        try:
            reg, gov, evals = Registry(ws), Governance(ws), Evals(ws)
            reg.push(_folder(root, "corpus_v1.txt", args.order), name="lumen", version="1.0.0",
                     actor=AUTHOR)  # fmt: skip
            reg.push(_folder(root, "corpus_v2.txt", args.order), name="lumen", version="1.1.0",
                     actor=AUTHOR)  # fmt: skip
            reg.set_alias("production", "lumen@1.0.0", actor=ADMIN, reason="launch")

            start = time.perf_counter()
            quality = evals.run(
                "lumen@1.1.0", EXAMPLES / "suites" / "quality.yaml", baseline="lumen@1.0.0",
                actor=AUTHOR,
            )  # fmt: skip
            eval_s = time.perf_counter() - start
            evals.run("lumen@1.1.0", EXAMPLES / "suites" / "safety.yaml", baseline="lumen@1.0.0",
                      actor=AUTHOR)  # fmt: skip
            answers = 2 * quality.n
            rows.append(["eval quality suite (30 cases × 2 releases)", f"{eval_s * 1000:.0f} ms",
                          f"{answers / eval_s:.0f} answers/s"])  # fmt: skip
            assert quality.pass_rate is not None
            extra["quality"] = quality.pass_rate.to_dict()
            extra["latency_ms"] = dict(quality.latency_ms)

            def flip(alias: str) -> Callable[[], object]:
                refs = iter(["lumen@1.1.0", "lumen@1.0.0"] * (args.repeats + 1))
                return lambda: reg.set_alias(alias, next(refs), actor=ADMIN, reason="bench")

            plain_ms = _median_ms(flip("plain"), args.repeats)
            rows.append(["alias move, no policy", f"{plain_ms:.2f} ms", "median"])

            key = Ed25519PrivateKey.generate()
            gov.trust_key(public_pem(key.public_key()), name="ci", actor=ADMIN)
            sign_ms = _median_ms(lambda: gov.sign("lumen@1.1.0", key, actor=AUTHOR), 1)
            gov.sign("lumen@1.0.0", key, actor=AUTHOR)
            verify_ms = _median_ms(lambda: gov.verify_signatures("lumen@1.1.0"), args.repeats)
            rows.append(["sign a release (statement + ed25519 + store)", f"{sign_ms:.1f} ms", ""])
            rows.append(["verify its signatures", f"{verify_ms:.2f} ms", "median"])

            gov.set_policy("lumen", POLICY, actor=ADMIN)
            gov.approve("lumen@1.1.0", stage="production", actor=BOB)
            verdict = gov.check("lumen@1.1.0", "production")
            assert verdict.ok, verdict.summary()
            check_ms = _median_ms(lambda: gov.check("lumen@1.1.0", "production"), args.repeats)
            rows.append([f"policy check ({len(verdict.results)} rules, 2 stored runs)",
                         f"{check_ms:.2f} ms", "median"])  # fmt: skip

            # every move below is gated: approvals, signature, pickles, components, risk classes
            gated = POLICY.replace("production:", "gated:").replace(
                "    evals:\n      - {suite: quality, min_pass_rate: 0.4, max_regression: 0.05}\n"
                "      - {suite: safety, min_pass_rate: 1.0}\n",
                "",
            )
            gov.set_policy("lumen", gated, actor=ADMIN)
            for ref in ("lumen@1.0.0", "lumen@1.1.0"):
                gov.approve(ref, stage="gated", actor=BOB)
            gated_ms = _median_ms(flip("gated"), args.repeats)
            rows.append(["alias move through the policy gate", f"{gated_ms:.2f} ms", "median"])
        finally:
            ws.close()

    rng = np.random.default_rng(0)
    n = 10_000
    cand = rng.random(n) < 0.82
    base = rng.random(n) < 0.80
    ms = _median_ms(lambda: evalstats.compare_pass_rates(list(cand), list(base)), 5)
    rows.append([f"McNemar + Newcombe, {n:,} paired cases", f"{ms:.1f} ms", "median"])
    scores_c, scores_b = rng.random(n), rng.random(n)
    ms = _median_ms(lambda: evalstats.compare_scores(scores_c, scores_b), 3)
    rows.append([f"bootstrap (10k resamples) + sign-flip, {n:,} cases", f"{ms:.0f} ms", "median"])
    report("governance", ["what", "time", "note"], rows, extra)
    return 0
