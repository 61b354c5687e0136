"""``POST /v1/responses`` with the official ``openai`` client: text in, text out, streaming with
the typed events, on the same routing, telemetry and release headers as chat completions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from airlock.core.traffic import WeightedRelease
from airlock.gateway import openai_wire as wire
from airlock.gateway.responses_wire import ResponseEvents
from airlock.runtime.base import RuntimeFailure
from gateway.support import COOKING, MOON, Releases, Server, plan, post, serve_gateway


@pytest.fixture
def served(releases: Releases, upstream: tuple[Server, list[dict[str, Any]]]) -> Any:
    up, calls = upstream
    moon = releases.builtin("chat", "1.0.0", MOON)
    cooking = releases.builtin("chat", "1.1.0", COOKING)
    remote = releases.upstream("remote", "1.0.0", up.url)
    gateway = releases.gateway()
    with serve_gateway(gateway) as server:
        # half the users go to the cooking candidate
        candidates = [WeightedRelease(cooking, 5_000)]
        server.call(gateway.apply_plan(plan("chat", moon, candidates=candidates)))
        server.call(gateway.apply_plan(plan("remote", remote)))
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        try:
            yield server, gateway, client, calls, (moon, cooking)
        finally:
            client.close()


def test_text_in_text_out(served: Any) -> None:
    server, gateway, client, _, refs = served
    raw = client.responses.with_raw_response.create(
        model="chat", input="Tell me about the moon", max_output_tokens=12, user="amy"
    )
    response = raw.parse()
    assert response.object == "response"
    assert response.status in ("completed", "incomplete")
    assert response.output[0].type == "message"
    assert response.output_text  # the SDK's convenience over output[].content[]
    assert response.usage is not None
    assert response.usage.output_tokens >= 1 and response.usage.input_tokens >= 1
    release = raw.headers["x-airlock-release"]
    assert release in refs and response.model == release
    # sticky: the same user gets the same release every time, as with chat completions
    for _ in range(3):
        again = client.responses.with_raw_response.create(
            model="chat", input="moon", max_output_tokens=4, user="amy"
        )
        assert again.headers["x-airlock-release"] == release
    assert gateway.telemetry.totals()[("chat", release, "live")].requests == 4
    # the response id takes feedback like a chat completion's
    feedback = post(f"{server.url}/v1/feedback", {"id": response.id, "score": 1})
    assert feedback.status_code == 200 and feedback.json()["release"] == release


def test_instructions_and_message_lists_reach_the_model(served: Any) -> None:
    _, _, client, calls, _ = served
    response = client.responses.create(
        model="remote",
        instructions="Answer briefly.",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "Hi "}]},
            {"role": "assistant", "content": "Hello."},
            {"role": "developer", "content": [{"type": "input_text", "text": "Mind the tone."}]},
            {"role": "user", "content": [{"type": "input_text", "text": "What is the moon?"}]},
        ],
        max_output_tokens=20,
        temperature=0.2,
    )
    sent = calls[-1]
    roles = [(m["role"], m["content"]) for m in sent["messages"]]
    assert roles == [
        ("system", "Answer briefly."),
        ("user", "Hi "),
        ("assistant", "Hello."),
        ("system", "Mind the tone."),
        ("user", "What is the moon?"),
    ]
    assert (sent["max_tokens"], sent["temperature"]) == (20, 0.2)
    assert response.output_text == "upstream says: What is the moon?"
    assert response.status == "completed"


def test_streaming_with_typed_events(served: Any) -> None:
    _, gateway, client, _, _ = served
    stream = client.responses.create(
        model="chat@1.0.0", input="moon", max_output_tokens=16, stream=True
    )
    types, deltas, done, final = [], [], None, None
    with stream:
        for event in stream:
            types.append(event.type)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            elif event.type == "response.output_text.done":
                done = event.text
            elif event.type in ("response.completed", "response.incomplete"):
                final = event.response
    assert types[0] == "response.created"
    assert "response.output_text.delta" in types
    assert types.index("response.output_text.done") > types.index("response.output_text.delta")
    assert types[-1] in ("response.completed", "response.incomplete")
    assert done == "".join(deltas) and done
    assert final is not None and final.output_text == done
    assert final.usage is not None and final.usage.output_tokens >= 1
    assert final.model == "chat@1.0.0"
    # the same text as the whole answer; counted once in telemetry
    totals = gateway.telemetry.totals()[("chat", "chat@1.0.0", "live")]
    assert totals.requests == 1


def test_streaming_from_an_upstream(served: Any) -> None:
    _, _, client, calls, _ = served
    with client.responses.create(model="remote", input="a b c", stream=True) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
    assert text.strip() == "upstream says: a b c"
    assert calls[-1]["stream"] is True


def test_refusals_name_the_field(served: Any) -> None:
    _, gateway, client, calls, _ = served
    cases: list[tuple[dict[str, Any], str]] = [
        ({"previous_response_id": "resp_1"}, "previous_response_id"),
        ({"tools": [{"type": "web_search"}]}, "tools"),
        ({"input": [{"role": "wizard", "content": "x"}]}, "input[0].role"),
        ({"input": [{"type": "function_call_output", "call_id": "1"}]}, "input[0]"),
        ({"text": {"format": {"type": "json_object"}}}, "response_format"),
        ({"extra_body": {"frobnicate": True}}, "frobnicate"),
    ]
    for extra, param in cases:
        kwargs = {"model": "chat", "input": "moon", **extra}
        with pytest.raises(openai.BadRequestError) as refused:
            client.responses.create(**kwargs)
        body = refused.value.body
        assert isinstance(body, dict) and body["param"] == param, (extra, body)
        assert body["type"] == "invalid_request_error"
    assert not gateway.telemetry.totals()
    # the same JSON format on an upstream is forwarded as the chat response_format
    client.responses.create(
        model="remote",
        input="x",
        text={"format": {"type": "json_schema", "name": "a", "schema": {"type": "object"}}},
    )
    assert calls[-1]["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "a", "schema": {"type": "object"}},
    }


def test_unknown_model_is_an_openai_404(served: Any) -> None:
    server, _, client, _, _ = served
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="nope", input="x")
    raw = post(f"{server.url}/v1/responses", {"model": "chat", "input": 3})
    assert raw.status_code == 400
    assert json.loads(raw.content)["error"]["param"] == "input"


def test_a_stream_failing_midway_ends_with_error_and_response_failed() -> None:
    """The gateway's own chat chunks, as ``gateway.stream`` sends them when a release fails
    after its first piece, become ``error`` and ``response.failed`` events."""
    rid, model = "chatcmpl-abc", "chat@1.0.0"
    chunks = [
        wire.chunk("chat", rid, 1, model, text="", role=True),
        wire.chunk("chat", rid, 1, model, text="The moon"),
        wire.error_event(RuntimeFailure("chat@1.0.0 ended its stream early", kind="bad_response")),
        wire.DONE,
    ]

    async def source() -> AsyncIterator[bytes]:
        for c in chunks:
            yield c

    async def collect() -> list[dict[str, Any]]:
        events = ResponseEvents({"model": "chat", "input": "moon"}, rid)
        out = []
        async for raw in events.translate(source()):
            name, data = raw.decode().split("\n")[:2]
            payload = json.loads(data.removeprefix("data: "))
            assert name == f"event: {payload['type']}"
            out.append(payload)
        return out

    events = asyncio.run(collect())
    types = [e["type"] for e in events]
    assert types[0] == "response.created"
    assert types[-2:] == ["error", "response.failed"]
    assert [e["delta"] for e in events if e["type"] == "response.output_text.delta"] == ["The moon"]
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and "early" in failed["error"]["message"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
