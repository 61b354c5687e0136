"""The gateway's pure parts with plain values: stream guard, wire parsing, routing helpers,
telemetry arithmetic; and the lean HTTP/1.1 pool against a real loopback server."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airlock.core.guardrails import parse_safety_policy
from airlock.core.telemetry import TelemetryRecord
from airlock.core.traffic import TrafficPlan, WeightedRelease
from airlock.errors import InvalidInput, NotFound
from airlock.gateway import openai_wire as wire
from airlock.gateway.guard import StreamGuard, watches
from airlock.gateway.routing import choose, split_model
from airlock.gateway.telemetry import Telemetry
from airlock.runtime.http11 import HTTPError, HTTPPool
from gateway.support import Server

POLICY = parse_safety_policy({"pii": ["email"], "blocked_terms": ["kaboom"]})
TEXT = "please write to alice.smith@example.com and then to bob@example.org, thanks"


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=len(TEXT) - 1), max_size=12))
def test_stream_guard_never_leaks_an_email_however_the_text_is_split(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    pieces = [TEXT[a:b] for a, b in zip([0, *points], [*points, len(TEXT)], strict=True)]
    guard = StreamGuard(POLICY, holdback=32)
    sent = "".join(guard.feed(p) for p in pieces) + guard.finish()
    assert sent == "please write to [REDACTED:email] and then to [REDACTED:email], thanks"


def test_stream_guard_blocks_and_stops() -> None:
    guard = StreamGuard(POLICY, holdback=8)
    out = guard.feed("a long and harmless opening sentence, then ")
    out += guard.feed("kaboom")
    out += guard.finish()
    assert guard.blocked
    assert "kaboom" not in out
    assert watches(POLICY, "output")
    assert not watches(None, "output")


def test_wire_parsing_names_the_field() -> None:
    ok = wire.parse_request(
        json.dumps(
            {
                "model": "chat@1.2.0",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                "stream": True,
                "stream_options": {"include_usage": True},
                "temperature": 0.5,
                "user": "amy",
            }
        ).encode(),
        "chat",
    )
    assert (ok.service, ok.pin, ok.stream, ok.include_usage) == ("chat", "1.2.0", True, True)
    assert ok.messages[0]["content"] == "hi"
    assert ok.options == {"temperature": 0.5}
    for body, words in [
        (b"{", "not valid JSON"),
        (b"[]", "JSON object"),
        (b'{"messages": []}', "'model'"),
        (b'{"model": "chat", "messages": []}', "messages"),
        (b'{"model": "chat", "messages": [{"role": "user", "content": 3}]}', "content"),
        (b'{"model": "chat@", "messages": [{"role": "user", "content": "x"}]}', "invalid model"),
        (b'{"model": "c", "tools": [{}], "messages": [{"role": "user", "content": "x"}]}', "tools"),
    ]:
        with pytest.raises(InvalidInput, match=words):
            wire.parse_request(body, "chat")
    with pytest.raises(InvalidInput, match="prompt"):
        wire.parse_request(b'{"model": "c", "prompt": ["a", "b"]}', "completion")


def test_routing_helpers() -> None:
    assert split_model("chat") == ("chat", None)
    assert split_model("chat@stable") == ("chat", "stable")
    plan = TrafficPlan("chat", "chat@1.0.0", (WeightedRelease("chat@1.1.0", 10_000),))
    servable = ("chat@1.0.0", "chat@1.1.0")
    assert choose(plan, user_key="u", pinned=None, opted_out=False, servable=servable).fallback == (
        "chat@1.0.0"
    )
    assert choose(
        plan, user_key="u", pinned="candidate", opted_out=False, servable=servable
    ).release == ("chat@1.1.0")
    assert choose(plan, user_key=None, pinned=None, opted_out=True, servable=servable).reason == (
        "opt_out"
    )
    with pytest.raises(NotFound):
        choose(plan, user_key="u", pinned="3.0.0", opted_out=False, servable=servable)


def test_telemetry_drain_totals_and_records_add_up() -> None:
    t = Telemetry()
    key = ("chat", "chat@1.0.0", "live")
    t.success(key, 12.0, 3, 5, cluster=0, flagged=True)
    t.failure(key, "timeout", cluster=1, fallback=True)
    mark = t.mark()
    first = t.drain()
    t.success(key, 2000.0, 1, 1, cluster=2)
    t.feedback(key, 0.5, cluster=3)
    second = t.drain()
    assert [r.requests for r in first] == [2]
    assert first[0].errors_by_kind == {"timeout": 1}
    both = first[0] + second[0]
    assert both.requests == 3 and both.tokens_out == 6 and both.feedback_count == 1
    window = both.window()
    assert (window.requests, window.errors, window.fallbacks, window.guardrail_flags) == (
        3,
        1,
        1,
        1,
    )
    assert t.since(mark)[("chat", "chat@1.0.0")].requests == 1
    assert t.windows()[("chat", "chat@1.0.0")].latency_count == 2
    assert t.drain() == []
    now = datetime.now(UTC)
    with pytest.raises(InvalidInput):
        TelemetryRecord("chat", "x", "live", now, now - timedelta(seconds=1))


def test_http_pool_reuses_connections_and_survives_a_closed_one() -> None:
    opened: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        opened.append(scope["client"][1])
        await receive()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"ok"})

    with Server(app) as server:

        async def run() -> None:
            pool = HTTPPool(f"{server.url}/v1", keepalive_s=30)
            try:
                for _ in range(3):
                    assert await pool.request("POST", "/x", b"{}") == (200, b"ok")
                assert len(set(opened)) == 1  # one kept-alive connection
                pool._idle[0].writer.transport.abort()  # as if the server had closed it
                assert await pool.request("POST", "/x", b"{}") == (200, b"ok")
            finally:
                await pool.aclose()
            with pytest.raises(HTTPError):
                await HTTPPool("http://127.0.0.1:9/v1").request("POST", "/x", b"")

        asyncio.run(run())
