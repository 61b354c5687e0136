"""Safety policies applied on the request path: flag, redact and block, whole and streamed,
and prompts logged with their PII redacted."""

from __future__ import annotations

import logging
from typing import Any

import openai
import pytest

from airlock.core.traffic import TrafficPlan
from airlock.gateway.engine import GatewaySettings
from gateway.support import Releases, Server, chat, serve_gateway

POLICY = {
    "refusal": "I can't help with that.",
    "blocked_terms": ["detonator"],
    "terms": [{"name": "secrets", "terms": ["launch code"], "directions": ["output"]}],
    "regexes": [
        {"name": "greeting", "pattern": "hello", "ignore_case": True, "action": "flag"},
    ],
    "pii": ["email"],
}


@pytest.fixture
def guarded(releases: Releases, upstream: tuple[Server, list[dict[str, Any]]]) -> Any:
    up, calls = upstream
    ref = releases.upstream("chat", "1.0.0", up.url, "echo", files={"safety_policy.yaml": POLICY})
    gateway = releases.gateway(GatewaySettings(log_prompts=True, stream_holdback=32))
    with serve_gateway(gateway) as server:
        server.call(gateway.apply_plan(TrafficPlan.all_stable("chat", ref)))
        yield server, gateway, calls, ref


def test_flag_keeps_the_answer_and_counts(guarded: Any) -> None:
    server, gateway, _, ref = guarded
    response = chat(server, "chat", "hello world")
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "upstream says: hello world"
    assert response.headers["x-airlock-guardrail"] == "flagged"
    assert gateway.telemetry.windows()[("chat", ref)].guardrail_flags == 1


def test_redact_pii_in_the_request_and_the_log(
    guarded: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server, _, calls, _ = guarded
    with caplog.at_level(logging.INFO, logger="airlock.gateway.requests"):
        response = chat(server, "chat", "write to bob@example.com today")
    text = response.json()["choices"][0]["message"]["content"]
    assert "bob@example.com" not in text
    assert "[REDACTED:email]" in text
    assert calls[-1]["messages"][-1]["content"] == "write to [REDACTED:email] today"
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "[REDACTED:email]" in logged
    assert "bob@example.com" not in logged


def test_block_on_input_and_on_output(guarded: Any) -> None:
    server, gateway, calls, ref = guarded
    blocked = chat(server, "chat", "how do I build a detonator")
    assert blocked.status_code == 400
    assert blocked.json()["error"]["code"] == "content_filter"
    assert "I can't help with that." in blocked.json()["error"]["message"]
    assert not any("detonator" in str(c) for c in calls)  # never reached the model

    out = chat(server, "chat", "tell me the launch code")  # input is fine, the echo is not
    assert out.status_code == 200
    choice = out.json()["choices"][0]
    assert choice["message"]["content"] == "I can't help with that."
    assert choice["finish_reason"] == "content_filter"
    assert out.headers["x-airlock-guardrail"] == "blocked"
    window = gateway.telemetry.windows()[("chat", ref)]
    assert window.guardrail_flags == 2
    assert window.errors == 0


def test_streams_are_redacted_and_blocked_before_anything_leaks(guarded: Any) -> None:
    server, _, _, _ = guarded
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
    with client:
        with client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "mail carol@example.org about it"}],
            stream=True,
        ) as stream:
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert "carol@example.org" not in text
        assert "example.org" not in text
        assert text.strip() == "upstream says: mail [REDACTED:email] about it"

        with client.chat.completions.create(
            model="chat",
            messages=[{"role": "user", "content": "the launch code"}],
            stream=True,
        ) as stream:
            chunks = [c for c in stream if c.choices]
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        assert "launch" not in text
        assert chunks[-1].choices[0].finish_reason == "content_filter"
