"""What the demo says, as text from values: durations, audit details, the policy check, and
which signal of an analysis verdict fired (pure; the demo prints these with Rich markup).

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from __future__ import annotations

from typing import Any

from airlock.core.digest import short
from airlock.core.quality import JUDGE_METRIC, PAIRWISE_METRIC, QUALITY_PREFIX
from airlock.core.verdict import MetricVerdict, VerdictReport

CUSTOM = "custom."
_SIGNALS = {
    "error_rate": ("error rate", "the error-rate test"),
    "guardrail_rate": ("guardrail flag rate", "the guardrail-flag test"),
    "fallback_rate": ("fallback rate", "the fallback test"),
    "feedback": ("share of negative feedback", "the user-feedback test"),
    "latency": ("latency", "the latency test"),
    "latency_tail": ("share of slow requests", "the latency-tail test"),
    "ttft": ("time to first token", "the time-to-first-token test"),
}


def secs(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s"


def pct(x: float) -> str:
    return f"{x * 100:.0f} %"


def blocked(verdict: Any) -> str:
    failing = [r.rule for r in verdict.failures]
    return "blocked by " + ", ".join(failing) if failing else "passes"


def detail(details: dict[str, Any]) -> str:
    for key in ("reason", "comment", "to", "stable", "suite"):
        value = details.get(key)
        if value:
            return str(value)[:70]
    digest = details.get("digest")
    return short(str(digest)) if digest else ""


def detectable(verdict: VerdictReport | None) -> str:
    """The smallest effects the evidence so far could catch (the minimum detectable effect)."""
    from airlock.core.verdict_text import detectable as mde

    parts = mde(verdict) if verdict is not None else ""
    return f" [dim]— could detect {parts}[/]" if parts else ""


def fired(verdict: VerdictReport) -> MetricVerdict | None:
    """The metric whose evidence rolled the candidate back (the first that failed)."""
    return next((m for m in verdict.per_metric if m.outcome == "fail"), None)


def signal_name(metric: str) -> str:
    """Who raised the alarm: ``custom.quality.no_refusal`` → the online no_refusal scorer."""
    name = metric.removeprefix(CUSTOM)
    if name.startswith(QUALITY_PREFIX):
        scorer = name.removeprefix(QUALITY_PREFIX)
        what = "refusal" if scorer == "no_refusal" else scorer
        return f"the online {what} scorer ({name})"
    if name in (JUDGE_METRIC, PAIRWISE_METRIC):
        return f"the LLM judge ({name})"
    return _SIGNALS.get(name, (name, f"the {name} test"))[1]


def rate_name(metric: str) -> str:
    """What a rate metric's values are: ``custom.quality.no_refusal`` → refusal rate."""
    name = metric.removeprefix(CUSTOM)
    if name == QUALITY_PREFIX + "no_refusal":
        return "refusal rate"
    if name.startswith(QUALITY_PREFIX):
        return f"{name.removeprefix(QUALITY_PREFIX)} failure rate"
    return _SIGNALS.get(name, (name, ""))[0]


def quiet_signals(verdict: VerdictReport) -> str:
    """Errors and latency as the verdict saw them, and whether either found harm:
    ``error rate 0 % → 0 %, latency p50 8.1 ms → 8.4 ms: no harm found``."""
    parts, failed = [], []
    for name in ("error_rate", "latency"):
        try:
            m = verdict.metric(name)
        except KeyError:
            continue
        if m.outcome == "fail":
            failed.append(rate_name(name))
        if name == "latency":
            parts.append(f"latency p50 {m.stable_value:.1f} ms → {m.candidate_value:.1f} ms")
        else:
            parts.append(f"error rate {pct(m.stable_value)} → {pct(m.candidate_value)}")
    verdict_words = f"{' and '.join(failed)} failed too" if failed else "no harm found"
    return f"{', '.join(parts)}: {verdict_words}" if parts else "no error or latency data"


def fired_signal(verdict: VerdictReport) -> str:
    """``refusal rate 0 % → 42 % on 180 scored answers (…): the online refusal scorer … fired``."""
    m = fired(verdict)
    if m is None:
        return "no metric failed"
    if m.metric.startswith(CUSTOM):
        counted = (
            f"on {m.n_candidate + m.n_stable} scored answers ({m.n_candidate} candidate, "
            f"{m.n_stable} stable)"
        )
    else:
        counted = f"on {m.n_candidate + m.n_stable} requests"
    return (
        f"{rate_name(m.metric)} {pct(m.stable_value)} → {pct(m.candidate_value)} {counted}: "
        f"{signal_name(m.metric)} fired"
    )


__all__ = [
    "blocked",
    "detail",
    "detectable",
    "fired",
    "fired_signal",
    "pct",
    "quiet_signals",
    "rate_name",
    "secs",
    "signal_name",
]
