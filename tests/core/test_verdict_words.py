"""The latency verdict said in words (core/verdict_text.py ``in_words``), from real analyses."""

from __future__ import annotations

import io
import math

import pytest
from rich.console import Console

from airlock.cli.render import verdict_table
from airlock.core.analysis import AnalysisSettings, AnalysisVerdict, analyze
from airlock.core.verdict import MetricVerdict
from airlock.core.verdict_text import explain, in_words, theta, tolerance
from airlock.core.window import CELLS, CLUSTERS, ReleaseWindow, latency_cell


def _window(requests: int, latencies_ms: tuple[float, ...]) -> ReleaseWindow:
    """``requests`` spread evenly over the clusters, cycling through ``latencies_ms``."""
    cells: dict[int, int] = {}
    per_cluster = [0.0] * CLUSTERS
    for i in range(requests):
        g = i % CLUSTERS
        per_cluster[g] += 1
        key = g * CELLS + latency_cell(latencies_ms[i % len(latencies_ms)])
        cells[key] = cells.get(key, 0) + 1
    zeros = tuple(0.0 for _ in range(CLUSTERS))
    return ReleaseWindow(
        requests=requests,
        clusters={"requests": tuple(per_cluster), "errors": zeros, "guardrail_flags": zeros},
        latency_cells=cells,
    )


STABLE_MS = (80.0, 90.0, 100.0, 110.0, 125.0)


def _verdict(slowdown: float, tolerance_: float = 0.1) -> AnalysisVerdict:
    candidate = _window(3000, tuple(ms * slowdown for ms in STABLE_MS))
    stable = _window(20_000, STABLE_MS)
    settings = AnalysisSettings.model_validate(
        {"metrics": {"latency": {"tolerance": tolerance_}}, "min_requests": 50}
    )
    return analyze(candidate, stable, settings)


def test_a_slower_candidate_reads_as_its_share_of_slower_pairs() -> None:
    m = _verdict(1.5).metric("latency")
    assert m.outcome == "fail" and m.effect > 0.5
    assert tolerance(m) == pytest.approx(0.1)
    words = in_words(m)
    assert words is not None
    share = f"{m.effect * 100:.0f} %"
    assert words.startswith(
        f"latency: the candidate is more than 10 % slower than stable in {share} of request pairs"
    )
    assert (
        f"(θ = {theta(m.effect)}; harm above 0.500, i.e. in more than half of the pairs)" in words
    )
    assert f"anytime-valid range {m.ci_low * 100:.0f} % to {m.ci_high * 100:.0f} %" in words
    assert explain(m).startswith(words)


def test_the_words_follow_the_specs_tolerance() -> None:
    m = _verdict(1.0, tolerance_=0.25).metric("latency")
    assert m.outcome == "pass" and m.effect < 0.5
    assert tolerance(m) == pytest.approx(0.25)
    words = in_words(m)
    assert words is not None and "more than 25 % slower than stable" in words


def test_rates_keep_their_ratio_and_no_data_says_so() -> None:
    verdict = _verdict(1.0)
    assert in_words(verdict.metric("error_rate")) is None
    empty = MetricVerdict(
        "ttft", "inconclusive", 0.0, 0.0, 0.5, 0.0, 1.0, 0.5, 0, 0, "", "no data", mde=math.inf
    )
    assert in_words(empty) == (
        "time to first token: no request pairs to compare yet "
        "(harm above 0.500, i.e. in more than half of the pairs)"
    )


def test_rollout_status_tables_print_the_words_under_the_theta() -> None:
    report = _verdict(1.5).report()
    console = Console(width=300, file=io.StringIO())
    console.print(verdict_table(report))
    assert isinstance(console.file, io.StringIO)
    text = console.file.getvalue()
    assert "θ " in text and in_words(report.metric("latency")) in text
    brief = Console(width=300, file=io.StringIO())
    brief.print(verdict_table(report, brief=True))
    assert isinstance(brief.file, io.StringIO)
    assert "request pairs" not in brief.file.getvalue()  # the narrated demo keeps it short
