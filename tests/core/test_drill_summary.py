"""Drill faults as users write them, and the drill's numbers from what its client saw."""

from __future__ import annotations

import pytest

from airlock.core.drill import Observation, describe, parse_faults, saw_fault, summarize
from airlock.errors import InvalidInput

FAULTY, STABLE = "chat@1.0.0-drill.1", "chat@1.0.0"


@pytest.mark.parametrize(
    ("texts", "expected"),
    [
        (["errors=0.2"], {"error_rate": 0.2}),
        (["errors=20%"], {"error_rate": 0.2}),
        (["latency=+300ms"], {"latency_ms": 300.0}),
        (["latency=0.5s"], {"latency_ms": 500.0}),
        (["latency=+75"], {"latency_ms": 75.0}),
        (["unsafe=0.1", "errors=1"], {"unsafe_rate": 0.1, "error_rate": 1.0}),
        ([" Errors = 0.5 "], {"error_rate": 0.5}),
    ],
)
def test_faults_parse(texts: list[str], expected: dict[str, float]) -> None:
    assert parse_faults(texts) == expected


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        ([], "at least one fault"),
        (["errors"], "not a fault"),
        (["slow=1"], "not a fault"),
        (["errors=0"], r"must be in \(0, 1\]"),
        (["errors=1.5"], r"must be in \(0, 1\]"),
        (["errors=abc"], "not a fault rate"),
        (["errors=nan"], r"must be in \(0, 1\]"),
        (["latency=-3ms"], "not an added latency"),
        (["latency=+0ms"], "must be in"),
        (["errors=0.1", "errors=0.2"], "given twice"),
    ],
)
def test_bad_faults_are_refused_with_a_hint(texts: list[str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as caught:
        parse_faults(texts)
    assert "errors=0.2" in caught.value.hint


def test_describe_round_trips_the_user_syntax() -> None:
    faults = {"error_rate": 0.2, "latency_ms": 300.0, "unsafe_rate": 0.05}
    assert describe(faults) == "errors=20%, latency=+300ms, unsafe=5%"
    assert parse_faults(describe(faults).split(", ")) == faults


def _obs(at: float, routed: str, status: int = 200, **kw: object) -> Observation:
    return Observation(
        at,
        routed,
        status,
        bool(kw.get("fallback", False)),
        kw.get("guardrail"),  # type: ignore[arg-type]
        0.01,
    )


def test_which_requests_saw_the_fault() -> None:
    errors = {"error_rate": 0.5}
    assert saw_fault(_obs(0, FAULTY, fallback=True), FAULTY, errors)
    assert saw_fault(_obs(0, FAULTY, 502), FAULTY, errors)
    assert not saw_fault(_obs(0, FAULTY), FAULTY, errors)
    assert not saw_fault(_obs(0, STABLE, 502), FAULTY, errors)  # stable's own failure
    assert saw_fault(_obs(0, FAULTY), FAULTY, {"latency_ms": 100.0})  # every call waits
    unsafe = {"unsafe_rate": 0.1}
    assert saw_fault(_obs(0, FAULTY, guardrail="redacted"), FAULTY, unsafe)
    assert not saw_fault(_obs(0, FAULTY, guardrail=None), FAULTY, unsafe)


def test_summary_of_a_detected_drill() -> None:
    observations = [
        _obs(100.00, STABLE),
        _obs(100.10, FAULTY),  # first exposure
        _obs(100.20, FAULTY, fallback=True),
        _obs(100.30, STABLE),
        _obs(101.00, FAULTY, 502),  # sent after the decision at 100.99: still on the candidate
        _obs(101.02, STABLE),  # the first request after which all are on stable
        _obs(101.05, STABLE),
    ]
    s = summarize(
        list(reversed(observations)),  # order of arrival does not matter
        faulty=FAULTY,
        faults={"error_rate": 0.3},
        started_at=99.9,
        decided_at=100.99,
    )
    assert s.outcome == "detected"
    assert s.detect_seconds == pytest.approx(0.89)
    assert s.revert_seconds == pytest.approx(0.03)
    assert (s.requests, s.faulty_requests, s.faulted_requests, s.user_errors) == (7, 3, 2, 1)
    assert s.exposure_seconds == pytest.approx(0.2)


def test_summary_of_a_missed_drill_and_of_no_exposure() -> None:
    missed = summarize(
        [_obs(1.0, FAULTY), _obs(2.0, STABLE)],
        faulty=FAULTY,
        faults={"error_rate": 0.1},
        started_at=0.5,
        decided_at=None,
    )
    assert (missed.outcome, missed.detect_seconds, missed.revert_seconds) == ("missed", None, None)
    unexposed = summarize(
        [_obs(1.0, STABLE), _obs(3.0, STABLE)],
        faulty=FAULTY,
        faults={"error_rate": 0.1},
        started_at=0.5,
        decided_at=2.5,
    )
    assert unexposed.detect_seconds == pytest.approx(2.0)  # from the start, as nothing was exposed
    assert unexposed.revert_seconds == pytest.approx(0.5)
    assert unexposed.exposure_seconds is None and unexposed.faulty_requests == 0
