"""Request limits on the gateway under uvicorn: per-service body sizes and prompt tokens, message
counts and JSON nesting, each refused with OpenAI's error shape naming the limit; and the pure
checks behind them."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

from airlock.core.request_limits import (
    MiB,
    estimate_tokens,
    json_depth,
    loads_json,
    nesting_exceeds,
    parse_limits,
    parse_size,
)
from airlock.errors import InvalidInput, PayloadTooLarge
from airlock.gateway.engine import GatewaySettings
from airlock.runtime.base import count_tokens
from gateway.support import Releases, chat, plan, post, serve_gateway

LIMITS = """
max_messages: 5
max_json_depth: 8
services:
  small: {max_body_bytes: 2KiB, max_prompt_tokens: 20}
  large: {max_body_bytes: 3MiB, max_prompt_tokens: 50}
"""


@pytest.fixture
def served(releases: Releases) -> Any:
    moon = releases.builtin("moon", "1.0.0")
    gateway = releases.gateway(GatewaySettings(limits=parse_limits(LIMITS)))
    with serve_gateway(gateway) as server:
        for name in ("small", "large", "open"):
            server.call(gateway.apply_plan(plan(name, moon)))
        yield server


def _error(r: Any) -> dict[str, Any]:
    error: dict[str, Any] = r.json()["error"]
    assert {"message", "type", "code"} <= set(error)
    return error


def test_each_service_has_its_own_body_limit(served: Any) -> None:
    small = chat(served, "small", "moon " * 500)  # ~2.5 KB: over the small service's 2 KiB
    assert small.status_code == 413
    assert "max_body_bytes" in _error(small)["message"]
    assert chat(served, "open", "moon " * 500).status_code == 200  # the default: 1 MiB
    # 1.5 MiB passes the HTTP layer only because "large" allows 3 MiB; then its prompt
    # token limit answers (a 400 naming it, not a 413)
    large = chat(served, "large", "moon " * 300_000)
    assert large.status_code == 400
    assert "max_prompt_tokens" in _error(large)["message"]
    assert chat(served, "open", "moon " * 300_000).status_code == 413


def test_prompt_token_limit_names_the_setting(served: Any) -> None:
    assert chat(served, "small", "Tell me about the moon").status_code == 200
    over = chat(served, "small", "the moon " * 15)
    assert over.status_code == 400
    error = _error(over)
    assert error["type"] == "invalid_request_error"
    assert "max_prompt_tokens" in error["message"] and "'small'" in error["message"]
    client = openai.OpenAI(base_url=f"{served.url}/v1", api_key="unused", max_retries=0)
    with client, pytest.raises(openai.BadRequestError, match="max_prompt_tokens"):
        client.completions.create(model="small", prompt="the moon " * 15)


def test_message_count_and_nesting_limits(served: Any) -> None:
    five = [{"role": "user", "content": "moon"}] * 5
    assert chat(served, "open", messages=five).status_code == 200
    many = chat(served, "open", messages=[*five, {"role": "user", "content": "moon"}])
    assert many.status_code == 400
    assert "max_messages" in _error(many)["message"]
    nested = post(
        f"{served.url}/v1/chat/completions",
        {"model": "open", "messages": five, "metadata": json.loads("[" * 9 + "]" * 9)},
    )
    assert nested.status_code == 400
    assert "max_json_depth" in _error(nested)["message"]
    feedback = post(f"{served.url}/v1/feedback", {"id": json.loads("[" * 9 + "]" * 9)})
    assert feedback.status_code == 400
    assert "max_json_depth" in _error(feedback)["message"]


def test_error_messages_do_not_echo_the_input(served: Any) -> None:
    r = post(f"{served.url}/v1/chat/completions", {"model": "x" * 5000, "messages": []})
    assert r.status_code == 400 and len(r.content) < 500
    r = post(f"{served.url}/v1/feedback", {"id": "y" * 5000, "score": 1})
    assert r.status_code == 400 and len(r.content) < 500


# -- the pure checks ----------------------------------------------------------------------------


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab', max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=30,
)


@given(json_values, st.integers(min_value=1, max_value=8))
def test_the_byte_scan_measures_nesting_like_the_parsed_value(value: Any, limit: int) -> None:
    body = json.dumps(value).encode()
    assert nesting_exceeds(body, limit) == (json_depth(value) > limit)


def test_loads_json_refuses_deep_nesting_without_recursing() -> None:
    with pytest.raises(InvalidInput, match="max_json_depth"):
        loads_json(b"[" * 1_000_000, max_depth=32)
    assert loads_json(b"[" * 32 + b"]" * 32, max_depth=32) is not None
    assert loads_json(b'{"a": "[[[[[[[[[[", "b": "\\\\\\"[[[["}', max_depth=2)["a"]
    with pytest.raises(InvalidInput, match="not valid JSON"):
        loads_json(b"{", max_depth=32)


def test_limits_documents_and_sizes() -> None:
    limits = parse_limits(LIMITS)
    assert limits.default.max_body_bytes == MiB and limits.default.max_messages == 5
    assert limits.for_service("small").max_body_bytes == 2048
    assert limits.for_service("small").max_json_depth == 8  # inherited
    assert limits.for_service("unknown") == limits.default
    assert limits.largest_body == 3 * MiB
    assert parse_size("4MB") == 4_000_000 and parse_size(12) == 12
    for bad in ("lots", "0", "-1KiB"):
        with pytest.raises(InvalidInput):
            parse_size(bad)
    with pytest.raises(InvalidInput, match="max_mesages"):
        parse_limits("max_mesages: 3")
    with pytest.raises(InvalidInput, match="max_body_bytes"):
        parse_limits("max_body_bytes: huge")
    assert issubclass(PayloadTooLarge, InvalidInput) and PayloadTooLarge.status == 413


@pytest.mark.parametrize(
    "text", ["", "Hello, world!", "a_b  c3.14 ünïcödé — done?", "tabs\tand\nlines..."]
)
def test_the_fast_token_estimate_matches_the_builtin_one(text: str) -> None:
    assert estimate_tokens(text) == count_tokens(text)
