"""Upstream failures never hand a client the upstream's raw answer or a credential: against a
real loopback upstream that echoes its request headers, and a base URL with a password.
The client gets a short message and an error id; the log has the detail under that id,
with every credential masked."""

from __future__ import annotations

import base64
import json
import logging
import socket
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from airlock.core.masking import mask_secrets, safe_url
from gateway.support import Releases, Server, chat, plan, serve_gateway

API_KEY = "sk-live-0123456789abcdefSECRET"
PASSWORD = "hunter2-pw-SECRET"


def echo_headers_app() -> Starlette:
    """An upstream that answers with the headers it was sent, in the ways upstreams fail."""

    async def handler(request: Request) -> Response:
        body = json.loads(await request.body())
        headers = dict(request.headers)
        model = body["model"]
        if model == "echo-500":
            return JSONResponse({"detail": "crashed", "request_headers": headers}, 500)
        if model == "echo-400":
            return JSONResponse({"error": {"message": f"bad request; you sent {headers}"}}, 400)
        if model == "short-400":
            return JSONResponse({"error": {"message": "max_tokens is too large"}}, 400)
        if model == "text-502":
            return Response(f"proxy error, headers were {headers}", 502)
        if model == "stream-error":

            async def events() -> Any:
                yield f"data: {json.dumps({'error': {'message': str(headers)}})}\n\n"

            return StreamingResponse(events(), media_type="text/event-stream")
        message = {"role": "assistant", "content": headers.get("authorization", "")}
        return JSONResponse({"choices": [{"message": message, "finish_reason": "stop"}]})

    return Starlette(routes=[Route("/v1/chat/completions", handler, methods=["POST"])])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(releases: Releases, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("ECHO_KEY", API_KEY)
    with Server(echo_headers_app()) as upstream:
        with_key = f"http://user:{PASSWORD}@127.0.0.1:{upstream.port}"
        refs = {
            model: releases.upstream(
                "echo", f"1.{i}.0", with_key, model=model, api_key_env="ECHO_KEY"
            )
            for i, model in enumerate(
                ["echo-500", "echo-400", "short-400", "text-502", "stream-error", "ok"]
            )
        }
        refs["basic"] = releases.upstream("basic", "1.0.0", with_key, model="ok")
        refs["down"] = releases.upstream(
            "down", "1.0.0", f"http://user:{PASSWORD}@127.0.0.1:{_free_port()}", model="ok"
        )
        gateway = releases.gateway()
        with serve_gateway(gateway) as server:
            for name, ref in refs.items():
                server.call(gateway.apply_plan(plan(name, ref)))
            yield server


def _no_secret(text: str) -> None:
    assert API_KEY not in text and PASSWORD not in text
    assert "request_headers" not in text and "headers were" not in text


@pytest.mark.parametrize(
    ("service", "status"),
    [("echo-500", 502), ("echo-400", 400), ("text-502", 502), ("down", 502)],
)
def test_clients_get_a_sanitised_message_and_an_error_id(
    served: Any, service: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="airlock.runtime.upstream"):
        r = chat(served, service)
    assert r.status_code == status, r.text
    _no_secret(r.text)
    message = r.json()["error"]["message"]
    assert "error id upstream-" in message
    eid = message.split("error id ")[1].split(")")[0].split(";")[0]
    logged = [rec.getMessage() for rec in caplog.records if eid in rec.getMessage()]
    assert logged, "the detail is logged under the error id"
    _no_secret(logged[0].replace("request_headers", "").replace("headers were", ""))
    if service != "down":
        assert "***" in logged[0]  # the echoed credential, masked


def test_a_short_upstream_message_is_still_shown(served: Any) -> None:
    r = chat(served, "short-400")
    assert r.status_code == 400
    assert "max_tokens is too large" in r.json()["error"]["message"]


def test_a_stream_error_is_sanitised(served: Any) -> None:
    r = chat(served, "stream-error", stream=True)
    assert r.status_code == 502  # it failed before its first piece: no stream was opened
    _no_secret(r.text)
    assert "error id upstream-" in r.text


def test_credentials_in_the_base_url_are_sent_as_basic_auth(served: Any) -> None:
    answered = chat(served, "basic").json()["choices"][0]["message"]["content"]
    assert answered == "Basic " + base64.b64encode(f"user:{PASSWORD}".encode()).decode()
    assert chat(served, "ok").json()["choices"][0]["message"]["content"] == f"Bearer {API_KEY}"


def test_mask_secrets_covers_headers_keys_and_urls() -> None:
    text = (
        "Authorization: Bearer abc.def-ghi123 "
        "{'authorization': 'Basic dXNlcjpwYXNz', 'x-api-key': 'k-123456'} "
        "url=https://bob:pw%40x@host:8000/v1 api_key=s3cr3t&x=1 sk-proj-ABCDEFGH12345678 "
        "password: letmein mine-known-secret"
    )
    masked = mask_secrets(text, known=["mine-known-secret"])
    for secret in (
        "abc.def-ghi123",
        "dXNlcjpwYXNz",
        "k-123456",
        "bob:pw",
        "s3cr3t",
        "sk-proj-ABCDEFGH12345678",
        "letmein",
        "mine-known-secret",
    ):
        assert secret not in masked, secret
    assert "Authorization: Bearer ***" in masked and "https://***@host:8000/v1" in masked
    assert mask_secrets("nothing to see here: chat@1.2.0") == "nothing to see here: chat@1.2.0"
    assert safe_url("http://u:p@h:1/v1") == "http://h:1/v1"
    assert safe_url("http://h/v1") == "http://h/v1"
