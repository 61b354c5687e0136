"""Online quality on a running gateway: scorers on both arms, a pairwise judge on shadow
pairs, judge failures that never count against the candidate, drops counted per release,
and the judge's pin in the audit trail. The releases and the judge are real upstream
releases answering from an OpenAI-compatible server on loopback."""

from __future__ import annotations

import asyncio
import json
import re
import zlib
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from airlock.core.quality import PAIRWISE_METRIC
from airlock.core.traffic import TrafficPlan, WeightedRelease, quality_text
from airlock.gateway.engine import Gateway, GatewaySettings
from airlock.services.audit_views import AuditLog
from airlock.services.rollouts import Rollouts
from gateway.support import ALICE, Releases, Server, chat, get, serve_gateway

REFUSAL = "I'm sorry, I can't help with that."
SCORERS = {"no_refusal": {"check": {"refusal": False}}}


def _answer(model: str, question: str) -> str:
    if model == "evasive" and zlib.crc32(question.encode()) % 2 == 0:
        return REFUSAL  # half the questions, whatever the user
    return f"Here is what I know about {question}."


def _judge(model: str, prompt: str) -> str:
    if model == "judge-broken":
        return "I would rather not say."
    if "Answer A:" in prompt:
        a = re.search(r"Answer A:\n(.*?)\n\nAnswer B:", prompt, re.S)
        b = re.search(r"Answer B:\n(.*?)\n\nWhich answer", prompt, re.S)
        assert a is not None and b is not None
        a_bad, b_bad = REFUSAL in a.group(1), REFUSAL in b.group(1)
        return "tie" if a_bad == b_bad else ("B" if a_bad else "A")
    return "Score: 2" if REFUSAL in prompt else "Score: 9"


def quality_upstream(calls: list[dict[str, Any]]) -> Starlette:
    """Chat models by name: ``helpful``, ``evasive`` (refuses half the questions),
    ``judge`` (prefers the answer that is no refusal), ``judge-broken``, ``judge-slow``."""

    async def completions(request: Request) -> Response:
        body = json.loads(await request.body())
        calls.append(body)
        model = str(body.get("model"))
        text = str(body["messages"][-1]["content"])
        if model == "judge-slow":
            await asyncio.sleep(0.5)
        out = _judge(model, text) if model.startswith("judge") else _answer(model, text)
        choice = {"index": 0, "message": {"role": "assistant", "content": out}}
        usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
        return JSONResponse(
            {"id": "x", "choices": [{**choice, "finish_reason": "stop"}], "usage": usage}
        )

    return Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])


@pytest.fixture
def models() -> Iterator[tuple[Server, list[dict[str, Any]]]]:
    calls: list[dict[str, Any]] = []
    with Server(quality_upstream(calls)) as server:
        yield server, calls


def _plan(stable: str, candidate: str, quality: dict[str, Any], *, shadow: bool) -> TrafficPlan:
    text = quality_text(quality)
    if shadow:
        return TrafficPlan("chat", stable, (), (candidate,), generation=1, quality=text)
    return TrafficPlan(
        "chat", stable, (WeightedRelease(candidate, 5_000),), generation=1, quality=text
    )


def _drain(server: Server, gateway: Gateway) -> None:
    async def settle() -> None:
        for _ in range(3):
            await gateway.shadows.drain()
            await gateway.quality.queue.drain()

    server.call(settle())


def _custom(
    gateway: Gateway, release: str, metric: str, traffic: str = "live"
) -> tuple[float, float]:
    windows = gateway.telemetry.windows(traffic=traffic)  # type: ignore[arg-type]
    return windows[("chat", release)].custom.get(metric, (0.0, 0.0))


def test_scorers_run_on_both_arms_at_the_same_rate_off_the_request_path(
    releases: Releases, models: tuple[Server, list[dict[str, Any]]]
) -> None:
    up, _ = models
    stable = releases.upstream("chat", "1.0.0", up.url, "helpful")
    evasive = releases.upstream("chat", "1.1.0", up.url, "evasive")
    gateway = releases.gateway()
    with serve_gateway(gateway) as server:
        plan = _plan(stable, evasive, {"sample": 0.5, "scorers": SCORERS}, shadow=False)
        server.call(gateway.apply_plan(plan))
        answered = {stable: 0, evasive: 0}
        for i in range(160):
            response = chat(server, "chat", f"question {i}", user=f"user-{i}")
            assert response.status_code == 200, response.text
            answered[response.headers["x-airlock-release"]] += 1
        _drain(server, gateway)
        ok_s, n_s = _custom(gateway, stable, "quality.no_refusal")
        ok_c, n_c = _custom(gateway, evasive, "quality.no_refusal")
        # the same share of each arm's answers is scored (a hash of the response id)
        assert 0.3 < n_s / answered[stable] < 0.7 and 0.3 < n_c / answered[evasive] < 0.7
        assert ok_s == n_s  # stable never refuses
        assert 0 < ok_c < n_c  # the evasive candidate fails the scorer where it refused
        assert gateway.quality.samples[("chat", evasive, "scored")] == n_c
        metrics = get(f"{server.url}/metrics").text
        assert f'airlock_quality_samples_total{{outcome="scored",release="{evasive}"' in metrics


def test_a_pairwise_judge_scores_shadow_pairs_and_its_pin_is_audited(
    releases: Releases, models: tuple[Server, list[dict[str, Any]]]
) -> None:
    up, calls = models
    stable = releases.upstream("chat", "1.0.0", up.url, "helpful")
    evasive = releases.upstream("chat", "1.1.0", up.url, "evasive")
    judge = releases.upstream("judge", "1.0.0", up.url, "judge")
    quality = {"sample": 1.0, "judge": {"release": judge, "mode": "pairwise"}}
    gateway = releases.gateway()
    with serve_gateway(gateway) as server:
        server.call(gateway.apply_plan(_plan(stable, evasive, quality, shadow=True)))
        for i in range(40):
            response = chat(server, "chat", f"question {i}", user=f"user-{i}")
            assert response.headers["x-airlock-release"] == stable
        _drain(server, gateway)
        losses, pairs = _custom(gateway, evasive, PAIRWISE_METRIC, "shadow")
        wins, pairs_s = _custom(gateway, stable, PAIRWISE_METRIC)
        refused = sum(zlib.crc32(f"question {i}".encode()) % 2 == 0 for i in range(40))
        assert (losses, wins, pairs, pairs_s) == (refused, 0, 40, 40)
        assert gateway.quality.judge_calls[(judge, "ok")] == 40
        judged = [c for c in calls if c["model"] == "judge"]
        assert len(judged) == 40 and all(c.get("temperature") == 0 for c in judged)
        # the candidate is shown first in about half of the judge prompts
        firsts = sum("Answer A:\nHere is" not in c["messages"][-1]["content"] for c in judged)
        assert 0 < firsts < 40
        assert gateway.quality.judge_cost.calls == 40
        # the judge release is held by the pool, never routed to
        assert judge in gateway.loaded() and judge not in gateway.plan("chat").releases()

    releases.serving.create("chat", stable, actor=ALICE)
    spec = {"strategy": "shadow", "duration_seconds": 60, "quality": quality}
    Rollouts(releases.ws, serving=releases.serving).start("chat", evasive, spec, actor=ALICE)
    started = [e for e in AuditLog(releases.ws).events() if e.action == "rollout.start"]
    assert started[-1].details["spec"]["quality"]["judge"]["release"] == judge
    # the plan the gateways get carries the pinned judge
    stored = releases.serving.plan("chat")
    assert stored.quality is not None and judge in stored.quality


def test_judge_failures_never_count_against_the_candidate_and_drops_are_counted(
    releases: Releases, models: tuple[Server, list[dict[str, Any]]]
) -> None:
    up, _ = models
    stable = releases.upstream("chat", "1.0.0", up.url, "helpful")
    candidate = releases.upstream("chat", "1.1.0", up.url, "helpful")
    broken = releases.upstream("judge", "1.0.0", up.url, "judge-broken")
    slow = releases.upstream("judge", "2.0.0", up.url, "judge-slow")
    gateway = releases.gateway()
    with serve_gateway(gateway) as server:
        quality = {"sample": 1.0, "judge": {"release": broken, "mode": "pairwise"}}
        server.call(gateway.apply_plan(_plan(stable, candidate, quality, shadow=True)))
        for i in range(10):
            chat(server, "chat", f"question {i}", user=f"user-{i}")
        _drain(server, gateway)
        assert gateway.quality.judge_calls[(broken, "unreadable")] == 10
        assert _custom(gateway, candidate, PAIRWISE_METRIC, "shadow") == (0.0, 0.0)
        shadow_window = gateway.telemetry.windows(traffic="shadow")[("chat", candidate)]
        assert shadow_window.errors == 0 and shadow_window.requests == 10

    tight = releases.gateway(GatewaySettings(quality_queue_size=1, quality_workers=1))
    with serve_gateway(tight) as server:
        quality = {"sample": 1.0, "judge": {"release": slow, "mode": "pointwise"}}
        plan = _plan(stable, candidate, quality, shadow=False)
        server.call(tight.apply_plan(plan))
        for i in range(12):
            chat(server, "chat", f"question {i}", user=f"user-{i}")
        dropped = sum(
            n for (_, _, outcome), n in tight.quality.samples.items() if outcome == "dropped"
        )
        assert dropped > 0  # a slow judge fills the bounded queue: samples are dropped, counted
        windows = tight.telemetry.windows()
        assert sum(w.count("quality_dropped") for w in windows.values()) == dropped
        _drain(server, tight)
        scored = sum(
            n for (_, _, outcome), n in tight.quality.samples.items() if outcome == "scored"
        )
        assert scored + dropped == 12
