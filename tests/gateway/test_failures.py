"""The one context manager that maps and counts what goes wrong in a call of a release."""

from __future__ import annotations

import asyncio

import pytest

from airlock.errors import (
    AirlockError,
    ContentBlocked,
    InvalidInput,
    NotFound,
    RateLimited,
    RuntimeFailure,
    RuntimeTimeout,
    ServiceUnavailable,
)
from airlock.gateway.failures import CountedCall
from airlock.gateway.telemetry import Key, Telemetry

KEY: Key = ("chat", "chat@1.1.0", "live")


def counters(telemetry: Telemetry) -> tuple[int, int, int, int, dict[str, int]]:
    c = telemetry.totals()[KEY]
    return c.requests, c.errors, c.rejected, c.fallbacks, dict(c.errors_by_kind)


def test_a_timeout_becomes_runtime_timeout_naming_the_budget_and_is_counted() -> None:
    telemetry = Telemetry()
    expected = r"chat@1\.1\.0 did not answer within 2\.5 s"
    with (
        pytest.raises(RuntimeTimeout, match=expected) as info,
        CountedCall(telemetry, KEY, 2.5, cluster=3, fallback=True),
    ):
        raise TimeoutError
    assert isinstance(info.value.__cause__, TimeoutError)
    assert info.value.status == 504 and info.value.kind == "timeout"
    assert counters(telemetry) == (1, 1, 0, 1, {"timeout": 1})


def test_a_runtime_failure_keeps_its_kind_and_is_raised_as_it_is() -> None:
    telemetry = Telemetry()
    failure = RuntimeFailure("upstream said 503", kind="upstream_5xx")
    with pytest.raises(RuntimeFailure) as info, CountedCall(telemetry, KEY, 1.0, cluster=0):
        raise failure
    assert info.value is failure
    assert counters(telemetry) == (1, 1, 0, 0, {"upstream_5xx": 1})


@pytest.mark.parametrize(
    ("raised", "message"),
    [
        (ValueError("bad shape"), "chat@1.1.0 failed: ValueError: bad shape"),
        (NotFound("no such file"), "no such file"),
        (StopAsyncIteration(), "chat@1.1.0 sent an empty stream"),
    ],
)
def test_anything_else_is_the_release_failing(raised: BaseException, message: str) -> None:
    telemetry = Telemetry()
    with pytest.raises(RuntimeFailure) as info, CountedCall(telemetry, KEY, 1.0, cluster=1):
        raise raised
    assert info.value.message == message and info.value.status == 502
    kind = "bad_response" if isinstance(raised, StopAsyncIteration) else "model_error"
    assert counters(telemetry) == (1, 1, 0, 0, {kind: 1})


def test_the_clients_mistake_is_a_rejection_and_a_refusal_is_flagged() -> None:
    telemetry = Telemetry()
    with pytest.raises(InvalidInput), CountedCall(telemetry, KEY, 1.0, cluster=0):
        raise InvalidInput("max_tokens must be positive")
    with pytest.raises(ContentBlocked), CountedCall(telemetry, KEY, 1.0, cluster=0):
        raise ContentBlocked("refused")
    c = telemetry.totals()[KEY]
    assert (c.requests, c.errors, c.rejected, c.guardrail_flags) == (2, 0, 2, 1)


def test_a_fallback_retry_is_counted_nowhere() -> None:
    telemetry = Telemetry()
    with pytest.raises(RuntimeTimeout), CountedCall(telemetry, KEY, 1.0, cluster=None):
        raise TimeoutError
    with pytest.raises(InvalidInput), CountedCall(telemetry, KEY, 1.0, cluster=None):
        raise InvalidInput("nope")
    assert KEY not in telemetry.totals()


def test_a_cancellation_passes_untouched_and_uncounted() -> None:
    telemetry = Telemetry()
    with pytest.raises(asyncio.CancelledError), CountedCall(telemetry, KEY, 1.0, cluster=0):
        raise asyncio.CancelledError
    assert KEY not in telemetry.totals()


def test_the_gateway_errors_are_in_the_one_tree_with_status_and_hint() -> None:
    limited = RateLimited("over 10 requests per minute", retry_after=0.2, hint="slow down")
    assert isinstance(limited, AirlockError) and limited.status == 429
    assert limited.retry_after_header == "1" and limited.hint == "slow down"
    assert issubclass(RuntimeFailure, ServiceUnavailable) and RuntimeFailure.status == 502
    assert issubclass(RuntimeTimeout, RuntimeFailure) and RuntimeTimeout.status == 504
    assert issubclass(ContentBlocked, InvalidInput) and ContentBlocked.code == "content_filter"
