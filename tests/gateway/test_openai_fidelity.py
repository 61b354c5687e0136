"""OpenAI parameters are honoured, forwarded to an upstream that honours them, or refused with a
400 naming them (never silently dropped); unknown roles and fields are refused; and
``models.retrieve`` works. With the official ``openai`` client against the gateway under
uvicorn and a real OpenAI-compatible upstream on loopback that echoes what it received."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airlock.core.traffic import TrafficPlan, WeightedRelease
from airlock.gateway.parameters import ParameterError, requested_options
from gateway.support import MOON, Releases, Server, get, plan, post, serve_gateway

LOGPROBS = {"content": [{"token": "ok", "logprob": -0.25, "bytes": [111, 107], "top_logprobs": []}]}


def echo_upstream(calls: list[dict[str, Any]]) -> Starlette:
    """An OpenAI-compatible server whose answer is the JSON of the fields it received (so a
    JSON response format gets JSON), with logprobs when asked for them."""

    async def answer(request: Request) -> Response:
        body = json.loads(await request.body())
        calls.append(body)
        received = {k: v for k, v in body.items() if k not in ("messages", "prompt", "model")}
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop"}
        if "messages" in body:
            choice["message"] = {"role": "assistant", "content": json.dumps(received)}
            choice["logprobs"] = LOGPROBS if body.get("logprobs") else None
        else:
            choice["text"] = json.dumps(received)
        usage = {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}
        return JSONResponse({"id": "x", "choices": [choice], "usage": usage})

    return Starlette(
        routes=[
            Route("/v1/chat/completions", answer, methods=["POST"]),
            Route("/v1/completions", answer, methods=["POST"]),
        ]
    )


@pytest.fixture
def served(releases: Releases) -> Any:
    calls: list[dict[str, Any]] = []
    with Server(echo_upstream(calls)) as up:
        builtin = releases.builtin("chat", "1.0.0", MOON)
        remote = releases.upstream("remote", "1.0.0", up.url, extra_params=["top_k"])
        remote_b = releases.upstream("mixed", "1.0.0", up.url)
        local_b = releases.builtin("mixed", "1.1.0", MOON)
        gateway = releases.gateway()
        with serve_gateway(gateway) as server:
            server.call(gateway.apply_plan(plan("chat", builtin)))
            server.call(gateway.apply_plan(plan("remote", remote)))
            # a rollout: the upstream is stable, a builtin candidate takes no traffic yet
            candidates = [WeightedRelease(local_b, 0)]
            server.call(gateway.apply_plan(plan("mixed", remote_b, candidates=candidates)))
            client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
            try:
                yield server, gateway, client, calls
            finally:
                client.close()


MSG = [{"role": "user", "content": "Tell me about the moon"}]


def _refused(excinfo: pytest.ExceptionInfo[openai.BadRequestError]) -> dict[str, Any]:
    body = excinfo.value.body
    assert isinstance(body, dict)
    assert body["type"] == "invalid_request_error"
    return body


def test_upstream_receives_and_honours_every_openai_parameter(served: Any) -> None:
    _, _, client, calls = served
    reply = client.chat.completions.create(
        model="remote",
        messages=MSG,
        response_format={"type": "json_object"},
        logprobs=True,
        top_logprobs=2,
        presence_penalty=0.5,
        frequency_penalty=0.25,
        logit_bias={"50256": -100},
        seed=7,
        max_tokens=9,
        extra_body={"top_k": 5},  # this release declares it in extra_params
    )
    sent = calls[-1]
    assert sent["response_format"] == {"type": "json_object"}
    assert (sent["logprobs"], sent["top_logprobs"]) == (True, 2)
    assert (sent["presence_penalty"], sent["frequency_penalty"]) == (0.5, 0.25)
    assert sent["logit_bias"] == {"50256": -100}
    assert (sent["seed"], sent["max_tokens"], sent["top_k"]) == (7, 9, 5)
    content = reply.choices[0].message.content
    assert content is not None and json.loads(content)["response_format"]  # valid JSON back
    assert reply.choices[0].logprobs is not None
    assert reply.choices[0].logprobs.content is not None
    assert reply.choices[0].logprobs.content[0].token == "ok"


def test_upstream_completions_forward_echo_and_best_of(served: Any) -> None:
    _, _, client, calls = served
    client.completions.create(model="remote", prompt="The", echo=True, best_of=2, logprobs=1)
    assert (calls[-1]["echo"], calls[-1]["best_of"], calls[-1]["logprobs"]) == (True, 2, 1)


@pytest.mark.parametrize(
    ("param", "extra"),
    [
        ("response_format", {"response_format": {"type": "json_object"}}),
        ("logprobs", {"logprobs": True}),
        ("presence_penalty", {"presence_penalty": 0.5}),
        ("frequency_penalty", {"frequency_penalty": 1.0}),
        ("logit_bias", {"logit_bias": {"1": 5}}),
    ],
)
def test_builtin_refuses_what_it_cannot_honour(served: Any, param: str, extra: Any) -> None:
    _, gateway, client, _ = served
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="chat", messages=MSG, **extra)
    body = _refused(refused)
    assert (body["param"], body["code"]) == (param, "unsupported_parameter")
    assert "builtin" in body["message"]
    assert ("chat", "chat@1.0.0", "live") not in gateway.telemetry.totals()  # never generated


def test_builtin_completions_refuse_echo_and_best_of(served: Any) -> None:
    _, _, client, _ = served
    for extra in ({"echo": True}, {"best_of": 3}, {"logprobs": 2}):
        with pytest.raises(openai.BadRequestError) as refused:
            client.completions.create(model="chat", prompt="The", max_tokens=4, **extra)
        assert _refused(refused)["param"] == next(iter(extra))


def test_openai_defaults_ask_for_nothing_and_pass_everywhere(served: Any) -> None:
    _, _, client, _ = served
    reply = client.chat.completions.create(
        model="chat",
        messages=MSG,
        max_tokens=6,
        presence_penalty=0,
        frequency_penalty=0,
        logprobs=False,
        logit_bias={},
        response_format={"type": "text"},
        n=1,
        user="u1",
        metadata={"team": "search"},
        store=False,
        tools=[],
    )
    assert reply.choices[0].message.content


def test_unknown_fields_are_refused_like_openai_does(served: Any) -> None:
    _, _, client, calls = served
    for model in ("chat", "remote"):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(model=model, messages=MSG, extra_body={"tempreature": 1})
        body = _refused(refused)
        assert (body["param"], body["code"]) == ("tempreature", "unknown_parameter")
        assert "Unrecognized request argument supplied: tempreature" in body["message"]
    with pytest.raises(openai.BadRequestError) as refused:  # declared by another release only
        client.chat.completions.create(model="chat", messages=MSG, extra_body={"top_k": 5})
    assert _refused(refused)["param"] == "top_k"
    assert not calls


def test_tools_and_streamed_logprobs_are_refused_by_name(served: Any) -> None:
    _, _, client, _ = served
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="remote", messages=MSG, tools=[tool])  # type: ignore[list-item]
    assert _refused(refused)["param"] == "tools"
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="remote", messages=MSG, logprobs=True, stream=True)
    assert _refused(refused)["param"] == "logprobs"


def test_during_a_rollout_every_answering_release_must_honour_a_parameter(served: Any) -> None:
    """The fair rule: the stable upstream could honour response_format, the builtin candidate
    could not; refusing only on the candidate's arm would bias the comparison, so a
    plan-routed request is refused for every user, and counted against no release."""
    server, gateway, client, calls = served
    for user in ("u1", "u2", "u3"):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(
                model="mixed", messages=MSG, user=user, response_format={"type": "json_object"}
            )
        body = _refused(refused)
        assert body["param"] == "response_format"
        assert "rollout" in body["message"]
    assert not [k for k in gateway.telemetry.totals() if k[0] == "mixed"]
    assert not calls
    # a pin has one release: the upstream one honours it
    reply = client.chat.completions.create(
        model="mixed@1.0.0", messages=MSG, response_format={"type": "json_object"}
    )
    assert json.loads(reply.choices[0].message.content or "")["response_format"]
    # without the parameter both arms serve as usual
    assert post(
        f"{server.url}/v1/chat/completions", {"model": "mixed", "messages": MSG}
    ).status_code == (200)


def test_unknown_roles_are_refused_and_developer_is_system(served: Any) -> None:
    _, _, client, calls = served
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="chat",
            messages=[{"role": "wizard", "content": "hi"}],  # type: ignore[list-item, misc]
        )
    body = _refused(refused)
    assert body["param"] == "messages[0].role"
    assert "wizard" in body["message"]
    client.chat.completions.create(
        model="remote",
        messages=[{"role": "developer", "content": "Be brief."}, *MSG],  # type: ignore[list-item]
    )
    assert [m["role"] for m in calls[-1]["messages"]] == ["system", "user"]
    reply = client.chat.completions.create(
        model="chat", messages=[{"role": "developer", "content": "Be brief."}, *MSG], max_tokens=5
    )  # type: ignore[list-item]
    assert reply.choices[0].finish_reason in ("stop", "length")  # served as a system message


def test_logprobs_are_refused_where_a_safety_policy_reads_the_output(
    releases: Releases,
) -> None:
    calls: list[dict[str, Any]] = []
    policy = {"pii": ["email"]}
    with Server(echo_upstream(calls)) as up:
        ref = releases.upstream("safe", "1.0.0", up.url, files={"safety_policy.yaml": policy})
        gateway = releases.gateway()
        with serve_gateway(gateway) as server:
            server.call(gateway.apply_plan(TrafficPlan.all_stable("safe", ref)))
            body = {"model": "safe", "messages": MSG, "logprobs": True}
            refused = post(f"{server.url}/v1/chat/completions", body)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "logprobs"
    assert "safety policy" in refused.json()["error"]["message"]
    assert not calls


def test_models_retrieve(served: Any) -> None:
    server, _, client, _ = served
    listed = {m.id: m for m in client.models.list()}
    for model_id in ("chat", "chat@1.0.0", "mixed@1.1.0"):
        found = client.models.retrieve(model_id)
        assert found.id == model_id
        assert found.object == "model"
        assert found == listed[model_id]
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("nope")
    assert "nope" in str(missing.value)
    raw = get(f"{server.url}/v1/models/chat@9.9.9")
    assert raw.status_code == 404
    assert raw.json()["error"]["type"] == "not_found_error"


def test_requested_options_leave_out_defaults_and_check_values() -> None:
    asked = requested_options(
        {
            "model": "c",
            "messages": [],
            "temperature": 0.5,
            "presence_penalty": 0,
            "logprobs": False,
            "response_format": {"type": "text"},
            "metadata": {"a": "b"},
            "top_k": 3,
        },
        "chat",
    )
    assert asked == {"temperature": 0.5, "top_k": 3}
    for data, kind, param in [
        ({"top_logprobs": 2}, "chat", "top_logprobs"),
        ({"logprobs": "yes"}, "chat", "logprobs"),
        ({"logprobs": 9}, "completion", "logprobs"),
        ({"response_format": {"type": "xml"}}, "chat", "response_format"),
        ({"tool_choice": "required"}, "chat", "tool_choice"),
        ({"modalities": ["text", "audio"]}, "chat", "modalities"),
    ]:
        with pytest.raises(ParameterError) as refused:
            requested_options(data, kind)  # type: ignore[arg-type]
        assert refused.value.param == param
