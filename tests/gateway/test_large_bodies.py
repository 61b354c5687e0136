"""Large request bodies (a raised ``max_body_bytes``): parsed member by member with the message
list counted as it is read, in a worker process, and answered exactly as small ones are.

The pure parse (:func:`loads_bounded`) is held to ``json.loads``: the same value for every
valid object it accepts, a refusal naming the limit for the element after it, whatever the
strings hold. The gateway tests send multi-megabyte bodies to a real server on loopback."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from airlock.core.bounded_json import loads_bounded
from airlock.core.request_limits import json_depth, parse_limits, values_exceed
from airlock.errors import InvalidInput
from airlock.gateway.body_parse import BodyParser, parse_completion
from airlock.gateway.engine import GatewaySettings
from airlock.gateway.openai_wire import INLINE_BYTES, parse_request
from gateway.support import Releases, plan, serve_gateway

LISTED = {"messages": (5, "max_messages")}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet='[]{}",:\\ab\u00e9\u2603 \n', max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=30,
)
messages = st.lists(
    st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant"]), "content": json_values}),
    max_size=8,
)


@given(st.dictionaries(st.text(max_size=5), json_values, max_size=5), messages, st.booleans())
def test_it_reads_what_json_loads_reads_or_refuses_by_the_limit(
    members: dict[str, Any], listed: list[Any], indent: bool
) -> None:
    doc = {**members, "messages": listed}
    body = json.dumps(doc, indent=2 if indent else None, ensure_ascii=False).encode()
    depth = json_depth(doc)
    if len(listed) > 5:
        with pytest.raises(InvalidInput, match=r"more than 5 entries.*\(max_messages\)"):
            loads_bounded(body, max_depth=64, max_items=LISTED)
    elif depth > 6:
        with pytest.raises(InvalidInput, match="max_json_depth"):
            loads_bounded(body, max_depth=6, max_items=LISTED)
    else:
        assert loads_bounded(body, max_depth=6, max_items=LISTED) == json.loads(body)


def test_role_and_brackets_inside_strings_count_for_nothing() -> None:
    trick = '"}, {"role": "user", "content": "' * 50 + "[[[[[[[[[[" + '\\\\\\"]'
    doc = {"model": "chat", "messages": [{"role": "user", "content": trick}] * 5}
    assert loads_bounded(json.dumps(doc).encode(), max_depth=4, max_items=LISTED) == doc


def test_the_element_after_the_limit_is_refused_before_the_rest_is_read() -> None:
    head = b'{"model": "chat", "messages": [' + b'{"role": "user", "content": "a"},' * 6
    with pytest.raises(InvalidInput, match="more than 5 entries"):
        loads_bounded(head + b"this is not JSON at all", max_depth=32, max_items=LISTED)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"messages": ' + b"[" * 1_000_000, "max_json_depth"),
        (b'{"a": ' + b"[" * 40 + b"]" * 40 + b"}", "max_json_depth"),
        (b'{"messages": [' + b"[" * 40 + b"]" * 40 + b"]}", "max_json_depth"),
        (b'{"a": 1} x', "Extra data"),
        (b'{"a" 1}', "':' delimiter"),
        (b'{"a": 1 "b": 2}', "',' delimiter"),
        (b'{"messages": [1 2]}', "',' delimiter"),
        (b"{a: 1}", "property name"),
        (b'{"a": }', "Expecting value"),
        (b'{"a": "\xff"}', "not valid JSON"),
        (b'{"n": ' + b"9" * 5000 + b"}", "not valid JSON"),
        (b"[1, 2, 3]", "must be a JSON object"),
    ],
)
def test_bad_bodies_are_refused_by_name(body: bytes, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        loads_bounded(body, max_depth=32, max_items=LISTED)


def _values(value: Any) -> int:
    """Array elements and object members, nested ones included."""
    if isinstance(value, dict):
        return len(value) + sum(_values(v) for v in value.values())
    if isinstance(value, list):
        return len(value) + sum(_values(v) for v in value)
    return 0


@given(json_values, st.integers(min_value=1, max_value=12))
def test_the_value_count_on_bytes_never_refuses_a_body_within_the_limit(
    value: Any, limit: int
) -> None:
    body = json.dumps(value, ensure_ascii=False).encode()
    if _values(value) <= limit:
        assert not values_exceed(body, limit)
    flat = json.dumps([value] * (limit + 1)).encode()  # limit + 1 elements at least
    assert values_exceed(flat, limit)


def test_a_utf8_bom_and_utf16_read_as_json_loads_reads_them() -> None:
    doc = {"model": "chat", "messages": []}
    for body in (b"\xef\xbb\xbf" + json.dumps(doc).encode(), json.dumps(doc).encode("utf-16")):
        assert loads_bounded(body, max_depth=32, max_items=LISTED) == json.loads(body) == doc


def _chat_body(count: int, content: str = "moon") -> bytes:
    one = json.dumps({"role": "user", "content": content}).encode()
    return b'{"messages": [' + b",".join([one] * count) + b'], "model": "chat"}'


def test_a_large_body_parses_as_a_small_one() -> None:
    limits = parse_limits("max_body_bytes: 16MiB")
    body = _chat_body(1000, "x" * 600)  # 0.6 MB: past the inline size, within the limits
    assert len(body) > INLINE_BYTES
    big = parse_request(body, "chat", limits=limits)
    assert len(big.messages) == 1000
    small = parse_request(_chat_body(1000, "x"), "chat", limits=limits)
    assert big.service == small.service == "chat" and big.options == small.options


# -- the gateway, served on loopback -------------------------------------------------------------


@pytest.fixture
def served(releases: Releases) -> Any:
    moon = releases.builtin("moon", "1.0.0")
    limits = parse_limits("max_body_bytes: 48MiB\nservices: {roomy: {max_messages: 300000}}")
    gateway = releases.gateway(GatewaySettings(limits=limits))
    with serve_gateway(gateway) as server:
        for name in ("chat", "roomy"):
            server.call(gateway.apply_plan(plan(name, moon)))
        yield server


def _post(url: str, body: bytes) -> httpx.Response:
    return httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=120)


def test_a_million_messages_under_a_raised_body_limit_is_a_400_naming_max_messages(
    served: Any,
) -> None:
    body = _chat_body(1_000_000, "hi")  # 34 MB: under the 48 MiB body limit
    r = _post(f"{served.url}/v1/chat/completions", body)
    assert r.status_code == 400, r.text[:300]
    error = r.json()["error"]
    assert "max_messages" in error["message"] and "300000" in error["message"]
    assert error["type"] == "invalid_request_error"
    # the exact per-service check still applies after the bounded read: 'chat' allows 1,000
    r = _post(f"{served.url}/v1/chat/completions", _chat_body(1001, "x" * 300))
    assert r.status_code == 400 and "'messages' has 1001 entries" in r.json()["error"]["message"]


def test_large_bodies_are_served_and_refused_like_small_ones(served: Any) -> None:
    url = f"{served.url}/v1/chat/completions"
    ok = _post(url, _chat_body(600, "Tell me about the moon " * 30))  # ~0.5 MB
    assert ok.status_code == 200, ok.text[:300]
    assert ok.json()["choices"][0]["message"]["role"] == "assistant"
    wrong = json.loads(_chat_body(600, "y" * 600))
    wrong["messages"][3]["role"] = "wizard"
    bad = _post(url, json.dumps(wrong).encode())  # a refusal with a param, from the worker
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "messages[3].role"
    stop = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stop": [0] * 2**21}
    r = _post(url, json.dumps(stop).encode())  # a huge array where none belongs
    assert r.status_code == 400 and "stop" in r.json()["error"]["message"]
    deep = b'{"model": "chat", "messages": [], "x": ' + b"[" * 2_000_000 + b"]" * 2_000_000 + b"}"
    r = _post(url, deep)
    assert r.status_code == 400 and "max_json_depth" in r.json()["error"]["message"]
    resp = {"model": "chat", "input": [{"role": "user", "content": "hi"}] * 400_000}
    r = _post(f"{served.url}/v1/responses", json.dumps(resp).encode())
    assert r.status_code == 400 and "max_messages" in r.json()["error"]["message"]
    assert httpx.get(f"{served.url}/healthz").status_code == 200


def test_feedback_bodies_stop_at_64_kib_whatever_the_body_limit(served: Any) -> None:
    r = _post(f"{served.url}/v1/feedback", json.dumps({"id": "x" * 70_000, "score": 1}).encode())
    assert r.status_code == 413 and "max_body_bytes" in r.json()["error"]["message"]


@pytest.mark.anyio
async def test_the_parser_runs_small_bodies_in_place_and_large_ones_in_its_worker() -> None:
    parser = BodyParser(inline_bytes=1000)
    limits = parse_limits("max_body_bytes: 16MiB")
    try:
        small = await parser.run(_chat_body(3), parse_completion, "chat", limits)
        assert parser.off_loop == 0
        big = await parser.run(_chat_body(300), parse_completion, "chat", limits)
        assert parser.off_loop == 1
        assert small.messages == big.messages[:3]
        with pytest.raises(InvalidInput, match="max_messages"):
            await parser.run(_chat_body(1001), parse_completion, "chat", limits)
    finally:
        parser.close()
