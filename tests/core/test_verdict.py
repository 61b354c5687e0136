"""The stored verdict (core/verdict.py) and how it reads (core/verdict_text.py)."""

from __future__ import annotations

import json
import math

from airlock.core.analysis import AnalysisVerdict
from airlock.core.srm import SrmCheck
from airlock.core.verdict import MetricVerdict, VerdictReport
from airlock.core.verdict_text import counts, detectable, headline, metric_row, sample_ratio
from airlock_testkit import failing_errors_metric

ERRORS = failing_errors_metric()
LATENCY = MetricVerdict(
    metric="latency",
    outcome="pass",
    candidate_value=41.0,
    stable_value=40.0,
    effect=0.41,
    ci_low=0.2,
    ci_high=0.55,
    threshold=0.5,
    n_candidate=400,
    n_stable=3600,
    effect_label="P(candidate latency > 1.2 × stable's)",
    reason="no evidence of harm",
)
SRM = SrmCheck(True, 0.02, 0.1, 800.0, 5.0, 40, 3600)


def test_a_verdict_survives_its_json_with_unbounded_values() -> None:
    verdict = AnalysisVerdict("fail", (ERRORS, LATENCY), 400, 3600, "error rate rose", SRM)
    report = verdict.report()
    stored = json.loads(json.dumps(verdict.to_dict()))
    assert stored["per_metric"][0]["ci_high"] is None  # canonical JSON has no infinity
    assert stored["srm"]["evidence"] == math.exp(700.0) and stored["srm"]["mismatch"] is True
    back = VerdictReport.from_dict(stored)
    assert back == report and back.metric("error_rate").ci_high == math.inf
    assert back.to_dict() == stored
    assert VerdictReport.from_json(report.to_json()) == report
    assert VerdictReport.from_json(None) is None


def test_an_older_stored_metric_takes_the_defaults() -> None:
    old = {k: v for k, v in LATENCY.to_dict().items() if k not in ("mde", "evidence", "required")}
    m = MetricVerdict.from_dict(old)
    assert (m.mde, m.evidence, m.required) == (math.inf, 1.0, False)


def test_the_verdict_reads_the_same_wherever_it_is_shown() -> None:
    report = AnalysisVerdict("fail", (ERRORS, LATENCY), 400, 3600, "error rate rose", SRM).report()
    assert headline(report) == "fail — 400 candidate / 3600 stable requests; error rate rose"
    assert counts(report) == "fail (400/3600)"
    row = metric_row(report.metric("error_rate"))
    assert row["effect"] == "9.50×" and row["interval"] == "[3.20×, ∞]"
    assert row["candidate"] == "12.00 %" and row["evidence"] == "812 / 200"
    assert metric_row(report.metric("latency"))["stable"] == "p50 40.0 ms"
    assert detectable(report) == "error_rate 1.50×"  # latency's mde is unbounded: left out
    assert sample_ratio(report) == (
        "sample ratio: candidate 2.00% of requests, planned 10.00% — MISMATCH"
    )
