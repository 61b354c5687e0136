"""What the demo says about a verdict: which signal fired, on how many samples, and whether
errors and latency saw anything (pure text from a VerdictReport)."""

from __future__ import annotations

from airlock.core.verdict import MetricVerdict, VerdictReport
from airlock.demo import narration, scenario


def metric(
    name: str, outcome: str, stable: float, candidate: float, n_c: int, n_s: int
) -> MetricVerdict:
    return MetricVerdict.from_dict(
        {
            "metric": name,
            "outcome": outcome,
            "candidate_value": candidate,
            "stable_value": stable,
            "effect": 1.0,
            "ci_low": 1.0,
            "ci_high": None,
            "threshold": 1.0,
            "n_candidate": n_c,
            "n_stable": n_s,
            "effect_label": "",
            "reason": "",
        }
    )


def report(*metrics: MetricVerdict) -> VerdictReport:
    return VerdictReport("fail", 40, 160, "analysis failed", tuple(metrics))


def test_a_failing_refusal_scorer_is_named_with_its_rates_and_scored_answers() -> None:
    verdict = report(
        metric("error_rate", "inconclusive", 0.0, 0.0, 40, 160),
        metric("latency", "inconclusive", 8.1, 8.4, 40, 160),
        metric(scenario.REFUSAL_METRIC, "fail", 0.03, 0.41, 21, 94),
    )

    assert narration.fired(verdict) == verdict.per_metric[2]
    assert narration.fired_signal(verdict) == (
        "refusal rate 3 % → 41 % on 115 scored answers (21 candidate, 94 stable): "
        "the online refusal scorer (quality.no_refusal) fired"
    )
    assert narration.quiet_signals(verdict) == (
        "error rate 0 % → 0 %, latency p50 8.1 ms → 8.4 ms: no harm found"
    )


def test_errors_that_failed_too_are_not_called_normal() -> None:
    verdict = report(
        metric("error_rate", "fail", 0.0, 0.1, 40, 160),
        metric("latency", "pass", 8.1, 8.4, 40, 160),
    )

    assert narration.quiet_signals(verdict).endswith("error rate failed too")
    assert narration.fired_signal(verdict).endswith("the error-rate test fired")
    assert narration.signal_name("custom.judge.score") == "the LLM judge (judge.score)"


def test_a_verdict_without_a_failure_names_no_signal() -> None:
    verdict = report(metric("error_rate", "pass", 0.0, 0.0, 40, 160))

    assert narration.fired(verdict) is None
    assert narration.fired_signal(verdict) == "no metric failed"
