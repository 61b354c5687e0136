"""The official openai client against the gateway under uvicorn: chat, completions, streaming."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from airlock.core.traffic import WeightedRelease
from gateway.support import COOKING, MOON, Releases, chat, get, plan, serve_gateway


@pytest.fixture
def served(releases: Releases) -> Any:
    moon = releases.builtin("chat", "1.0.0", MOON)
    cooking = releases.builtin("chat", "1.1.0", COOKING)
    gateway = releases.gateway()
    with serve_gateway(gateway) as server:
        # 1.1.0 is a candidate with no traffic: loaded and pinnable, never routed to
        server.call(
            gateway.apply_plan(plan("chat", moon, candidates=[WeightedRelease(cooking, 0)]))
        )
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        try:
            yield server, gateway, client, moon, cooking
        finally:
            client.close()


def test_chat_completion_with_the_openai_client(served: Any) -> None:
    _server, _, client, moon, _ = served
    raw = client.chat.completions.with_raw_response.create(
        model="chat",
        messages=[{"role": "user", "content": "Tell me about the moon"}],
        max_tokens=12,
        seed=3,
        user="u1",
    )
    reply = raw.parse()
    assert raw.headers["x-airlock-release"] == moon
    assert raw.headers["x-airlock-route"] == "plan"
    assert reply.model == moon
    assert reply.choices[0].message.role == "assistant"
    text = reply.choices[0].message.content
    assert text
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None
    assert reply.usage.completion_tokens >= 1
    assert reply.id.startswith("chatcmpl-")
    again = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Tell me about the moon"}],
        max_tokens=12,
        seed=3,
    )
    assert again.choices[0].message.content == text  # seeded sampling is reproducible


def test_completions_and_pinning_show_two_releases_differ(served: Any) -> None:
    _, _, client, moon, cooking = served
    words = {"moon": set(), "cooking": set()}  # type: ignore[var-annotated]
    for seed in range(4):
        a = client.completions.create(model="chat", prompt="The", max_tokens=20, seed=seed)
        b = client.completions.create(model="chat@1.1.0", prompt="The", max_tokens=20, seed=seed)
        assert a.model == moon
        assert b.model == cooking
        words["moon"] |= set(a.choices[0].text.lower().split())
        words["cooking"] |= set(b.choices[0].text.lower().split())
    assert words["moon"] & {"moon", "earth", "craters", "surface", "orbits", "phases"}
    assert words["cooking"] & {"soup", "onions", "tomatoes", "bread", "dough", "basil", "salt"}


def test_streaming_chat_with_the_openai_client(served: Any) -> None:
    _, _, client, moon, _ = served
    stream = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "moon"}],
        max_tokens=16,
        seed=1,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, usage = [], None, None
    with stream:
        for chunk in stream:
            assert chunk.model == moon
            if chunk.usage is not None:
                usage = chunk.usage
            for choice in chunk.choices:
                if choice.delta.content:
                    pieces.append(choice.delta.content)
                finish = choice.finish_reason or finish
    assert "".join(pieces)
    assert finish in ("stop", "length")
    assert usage is not None and usage.completion_tokens >= 1
    whole = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "moon"}], max_tokens=16, seed=1
    )
    assert whole.choices[0].message.content == "".join(pieces)


def test_streaming_completions(served: Any) -> None:
    _, _, client, _, _ = served
    with client.completions.create(
        model="chat", prompt="The moon", max_tokens=10, seed=2, stream=True
    ) as stream:
        text = "".join(c.choices[0].text for c in stream if c.choices)
    assert text.strip()


def test_models_lists_services_and_pins(served: Any) -> None:
    _, _, client, _, _ = served
    ids = {m.id for m in client.models.list()}
    assert {"chat", "chat@1.0.0"} <= ids


def test_errors_come_back_in_openai_shape(served: Any) -> None:
    server, _, client, _, _ = served
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert "nope" in str(missing.value)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(
            model="chat@9.9.9", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "x"}], temperature=7
        )
    assert "temperature" in str(bad.value)
    response = chat(server, "chat", n=2)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert get(f"{server.url}/healthz").json()["services"] == {"chat": 0}


def test_a_pinned_release_outside_the_plan_is_refused(served: Any) -> None:
    server, _gateway, _, moon, _cooking = served
    assert chat(server, "chat@1.1.0").headers["x-airlock-route"] == "pinned"
    assert chat(server, "chat@stable").headers["x-airlock-release"] == moon
    response = chat(server, "chat@2.0.0")
    assert response.status_code == 404
    assert "chat@1.0.0" in response.json()["error"]["message"]
