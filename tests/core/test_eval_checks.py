"""Evaluation suites as data: every check kind passes and fails on the right answers."""

from __future__ import annotations

from typing import Any

import pytest

from airlock.core.evalsuite import (
    Case,
    Check,
    Observation,
    ScorerInput,
    looks_like_refusal,
    outcomes_from_record,
    parse_suite,
    percentile,
    run_check,
    score_case,
)
from airlock.errors import InvalidInput

CASE = Case(id="c", prompt="How do I charge it?", reference="USB-C")
REFUSAL = "Sorry, I can only help with questions about your Lumen lamp."


def check(spec: dict[str, Any], text: str, **obs: Any) -> tuple[bool, str]:
    result = run_check(Check.model_validate(spec), CASE, Observation(text, 10.0, **obs), {})
    return result.passed, result.detail


@pytest.mark.parametrize(
    ("spec", "text", "passed"),
    [
        ({"exact": "Use USB-C."}, "  use usb-c. ", True),
        ({"exact": "Use USB-C.", "case_sensitive": True}, "use usb-c.", False),
        ({"contains": ["usb-c", "cable"]}, "Use the USB-C cable", True),
        ({"contains": ["usb-c", "cable"]}, "Use USB-C", False),
        ({"contains_any": ["usb-c", "wireless"]}, "charges wirelessly", True),
        ({"contains_any": ["micro usb"]}, "charges wirelessly", False),
        ({"not_contains": "micro USB"}, "Use the micro usb port", False),
        ({"regex": r"\b\d+ hours?\b"}, "about 12 hours", True),
        ({"not_regex": r"https?://"}, "see http://x", False),
        ({"matches_reference": "contains"}, "plug in USB-C", True),
        ({"matches_reference": "exact"}, "plug in USB-C", False),
        ({"json": True}, '{"a": 1}', True),
        ({"json": True}, "{a: 1}", False),
        ({"json": True, "required_keys": ["a", "b"]}, '{"a": 1}', False),
        ({"json": False}, "plain text", True),
        ({"refusal": True}, "Nope.", False),  # unknown wording, no guardrail ...
        ({"refusal": True}, "I'm sorry, I can't help with that.", True),  # ... known wording
        ({"refusal": True}, REFUSAL, True),
        ({"refusal": False}, "Touch the button.", True),
        ({"min_chars": 5}, "ok", False),
        ({"max_chars": 5}, "ok", True),
        ({"max_words": 2}, "one two three", False),
        ({"max_latency_ms": 5}, "fast?", False),
        ({"max_latency_ms": 50}, "fast?", True),
    ],
)
def test_each_check_kind(spec: dict[str, Any], text: str, passed: bool) -> None:
    assert check(spec, text)[0] is passed


def test_refusal_and_safety_use_what_the_guardrails_did() -> None:
    assert check({"refusal": True}, "Nope.", refusal_text="Nope.")[0]
    assert check({"refusal": True}, REFUSAL, blocked="input")[0]
    ok, why = check({"refusal": False}, REFUSAL, blocked="output")
    assert not ok and "blocked by the output guardrail" in why
    assert check({"safety": "blocked"}, "x", blocked="input")[0]
    assert not check({"safety": "clean"}, "x", flags=("competitor",))[0]
    assert check({"safety": "clean"}, "x")[0]
    spec = {"safety": {"max_flags": 0, "rules": ["email"]}}
    assert check(spec, "x", flags=("competitor",))[0]
    assert not check(spec, "x", flags=("email",))[0]
    ok, why = check({"contains": "x"}, "", error="connect failed")
    assert not ok and why == "no answer: connect failed"


def test_refusal_wording() -> None:
    assert looks_like_refusal("I cannot help with that request.")
    assert looks_like_refusal("As an AI, I won't do that")
    assert not looks_like_refusal("Hold the button for ten seconds.")
    assert looks_like_refusal(" custom no ", "custom no")


def test_case_score_is_the_mean_of_its_checks_and_scorers_plug_in() -> None:
    suite = parse_suite(
        """
checks: [{max_chars: 100}]
cases:
  - {id: a, prompt: p, reference: blue lamp, checks: [{contains: lamp}, {scorer: half}]}
""",
        default_name="s",
    )

    def half(x: ScorerInput) -> float:
        assert x.prompt == "p" and x.reference == "blue lamp"
        return 0.5

    result = score_case(suite, suite.cases[0], Observation("a lamp", 3.0), {"half": half})
    assert result.passed and result.score == pytest.approx((1 + 1 + 0.5) / 3)
    strict = Check(scorer="half", threshold=0.9)
    assert not run_check(strict, suite.cases[0], Observation("x", 1.0), {"half": half}).passed
    weird = run_check(strict, suite.cases[0], Observation("x", 1.0), {"half": lambda x: 7})
    assert not weird.passed and "not in [0, 1]" in weird.detail
    missing = run_check(strict, suite.cases[0], Observation("x", 1.0), {})
    assert "is not loaded" in missing.detail


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cases: []", "at least one case"),
        ("cases: [{prompt: p}]", "has no checks"),
        ("cases: [{checks: [{max_chars: 1}]}]", "exactly one of prompt or messages"),
        ("cases: [{prompt: p, checks: [{contains: a, regex: b}]}]", "exactly one of"),
        ("cases: [{prompt: p, checks: [{regex: '('}]}]", "bad regular expression"),
        ("cases: [{prompt: p, checks: [{matches_reference: exact}]}]", "needs a reference"),
        ("cases: [{id: a, prompt: p, checks: [{max_chars: 1}]}, {id: a, prompt: q}]", "unique"),
        ("name: Bad Name\ncases: [{prompt: p, checks: [{max_chars: 1}]}]", "invalid suite name"),
        ("cases: [{prompt: p, checks: [{typo: 1}]}]", "typo"),
        ("[1, 2", "not valid YAML"),
    ],
)
def test_bad_suites_are_named(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_suite(text, default_name="s")
    assert message in info.value.message


def test_suite_digest_is_stable_and_content_sensitive() -> None:
    a = parse_suite("cases: [{prompt: p, checks: [{max_chars: 1}]}]", default_name="s")
    b = parse_suite("cases:\n  - prompt: p\n    checks:\n      - max_chars: 1\n", default_name="s")
    c = parse_suite("cases: [{prompt: p, checks: [{max_chars: 2}]}]", default_name="s")
    assert a.digest() == b.digest() != c.digest()


def test_outcomes_and_percentiles() -> None:
    record = {
        "cases": [
            {"passed": True, "score": 1.0, "baseline": {"passed": False, "score": 0.0}},
            {"passed": False, "score": 0.5, "baseline": {"passed": False, "score": 0.5}},
        ]
    }
    out = outcomes_from_record(record)
    assert out.passed == (True, False) and out.baseline_passed == (False, False)
    assert outcomes_from_record({"cases": [{"passed": True, "score": 1}]}).baseline_passed is None
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert percentile([5.0, 1.0, 3.0, 2.0, 4.0], 95) == 5.0 and percentile([], 50) == 0.0
