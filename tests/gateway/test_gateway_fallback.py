"""A failing candidate (HTTP 500, or a timeout) is retried on stable; users get the stable
answer and the failure counts against the candidate. Shadows never touch the response."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from airlock.core.traffic import TrafficPlan, WeightedRelease
from airlock.gateway.engine import GatewaySettings
from gateway.support import MOON, Releases, Server, chat, get, post, serve_gateway


def _all_on(candidate: str, stable: str, **kw: Any) -> TrafficPlan:
    return TrafficPlan(
        service="chat", stable=stable, candidates=(WeightedRelease(candidate, 10_000),), **kw
    )


@pytest.mark.parametrize(
    ("model", "kind"), [("fail", "upstream_5xx"), ("slow", "timeout")], ids=["500", "timeout"]
)
def test_failing_candidate_falls_back_to_stable(
    releases: Releases, upstream: tuple[Server, list[dict[str, Any]]], model: str, kind: str
) -> None:
    up, _ = upstream
    stable = releases.upstream("chat", "1.0.0", up.url, "echo")
    bad = releases.upstream("chat", "1.1.0", up.url, model, timeout_s=0.2)
    gateway = releases.gateway()
    with serve_gateway(gateway) as server:
        server.call(gateway.apply_plan(_all_on(bad, stable)))
        response = chat(server, "chat", "hello there", user="amy")
        assert response.status_code == 200, response.text
        assert response.json()["choices"][0]["message"]["content"] == "upstream says: hello there"
        assert response.headers["x-airlock-release"] == stable
        assert response.headers["x-airlock-fallback-from"] == bad
        assert response.headers["x-airlock-route"] == "fallback"

        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)
        with (
            client,
            client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "stream me"}], stream=True
            ) as stream,
        ):
            text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text.strip() == "upstream says: stream me"

        feedback = post(f"{server.url}/v1/feedback", {"id": response.json()["id"], "score": 1})
        assert feedback.json()["release"] == bad  # the fallback answer is the candidate's outcome

        windows = gateway.telemetry.windows()
        assert windows[("chat", bad)].requests == 2
        assert windows[("chat", bad)].errors == 2
        assert windows[("chat", bad)].fallbacks == 2
        assert windows[("chat", bad)].feedback_count == 1
        # the fallback answers are in no window of the stable release: only their cost is
        empty = windows[("chat", stable)]
        assert (empty.requests, empty.feedback_count, empty.latency_count) == (0, 0, 0)
        assert not empty.clusters and not empty.latency_cells and not empty.ttft_cells
        totals = gateway.telemetry.totals()
        assert totals[("chat", bad, "live")].errors_by_kind == {kind: 2}
        assert totals[("chat", stable, "live")].tokens_out > 0
        assert [r.requests for r in gateway.telemetry.drain() if r.release == stable] == [0]


def test_no_fallback_for_a_pinned_candidate_or_a_failing_stable(
    releases: Releases, upstream: tuple[Server, list[dict[str, Any]]]
) -> None:
    up, _ = upstream
    stable = releases.upstream("chat", "1.0.0", up.url, "fail")
    bad = releases.upstream("chat", "1.1.0", up.url, "fail")
    gateway = releases.gateway()
    with serve_gateway(gateway) as server:
        server.call(gateway.apply_plan(_all_on(bad, stable)))
        pinned = chat(server, "chat@1.1.0")
        assert pinned.status_code == 502
        assert pinned.json()["error"]["code"] == "upstream_5xx"
        both = chat(server, "chat", user="amy")  # candidate fails, then stable fails too
        assert both.status_code == 502
        windows = gateway.telemetry.windows()
        assert windows[("chat", bad)].errors == 2
        assert windows[("chat", bad)].fallbacks == 1  # only the routed request fell back
        assert ("chat", stable) not in windows  # the failed fallback is the candidate's arm
        assert chat(server, "chat@stable").status_code == 502
        assert gateway.telemetry.windows()[("chat", stable)].errors == 1


def test_shadow_never_changes_the_answer(
    releases: Releases, upstream: tuple[Server, list[dict[str, Any]]]
) -> None:
    up, calls = upstream
    stable = releases.builtin("chat", "1.0.0", MOON)
    shadow_fail = releases.upstream("chat", "2.0.0", up.url, "fail")
    shadow_echo = releases.upstream("chat", "2.1.0", up.url, "echo")
    gateway = releases.gateway()
    with serve_gateway(gateway) as server:
        server.call(gateway.apply_plan(TrafficPlan.all_stable("chat", stable)))
        plain = chat(server, "chat", "the moon", seed=5, user="amy")
        server.call(
            gateway.apply_plan(
                TrafficPlan("chat", stable, shadows=(shadow_fail, shadow_echo), generation=1)
            )
        )
        shadowed = chat(server, "chat", "the moon", seed=5, user="amy")
        assert shadowed.status_code == 200
        assert shadowed.headers["x-airlock-release"] == stable
        answer = shadowed.json()["choices"][0]["message"]["content"]
        assert answer == plain.json()["choices"][0]["message"]["content"]
        server.call(gateway.shadows.drain())
        samples = {s.release: s for s in gateway.shadow_samples()}
        assert samples[shadow_fail].ok is False
        assert samples[shadow_fail].error_kind == "upstream_5xx"
        assert samples[shadow_echo].ok is True
        assert samples[shadow_echo].output == "upstream says: the moon"
        assert samples[shadow_echo].primary_output == answer
        assert {c["model"] for c in calls} == {"fail", "echo"}
        shadow_windows = gateway.telemetry.windows(traffic="shadow")
        assert shadow_windows[("chat", shadow_fail)].errors == 1
        assert gateway.telemetry.windows()[("chat", stable)].requests == 2


def test_full_shadow_queue_drops_and_counts(
    releases: Releases, upstream: tuple[Server, list[dict[str, Any]]]
) -> None:
    up, _ = upstream
    stable = releases.upstream("chat", "1.0.0", up.url, "echo")
    slow = releases.upstream("chat", "2.0.0", up.url, "slow", timeout_s=5)
    gateway = releases.gateway(GatewaySettings(shadow_queue_size=1, shadow_workers=1))
    with serve_gateway(gateway) as server:
        server.call(gateway.apply_plan(TrafficPlan("chat", stable, shadows=(slow,))))
        for i in range(6):
            response = chat(server, "chat", f"hello {i}")
            assert response.status_code == 200
            assert (
                response.json()["choices"][0]["message"]["content"] == f"upstream says: hello {i}"
            )
        # one copy runs, one waits; the other four were dropped, never delaying a user
        assert gateway.shadows.dropped == 4
        totals = gateway.telemetry.totals()
        assert totals[("chat", slow, "shadow")].shadow_drops == 4
        metrics = get(f"{server.url}/metrics").text
        assert (
            f'airlock_gateway_shadow_dropped_total{{release="{slow}",service="chat"}} 4.0'
            in metrics
        )


def test_candidate_timeout_caps_a_slow_canary(
    releases: Releases, upstream: tuple[Server, list[dict[str, Any]]]
) -> None:
    up, _ = upstream
    stable = releases.upstream("chat", "1.0.0", up.url, "echo")
    slow = releases.upstream("chat", "1.1.0", up.url, "slow", timeout_s=30)
    gateway = releases.gateway(GatewaySettings(candidate_timeout_s=0.2))
    with serve_gateway(gateway) as server:
        server.call(gateway.apply_plan(_all_on(slow, stable)))
        routed = chat(server, "chat", "hi", user="amy")
        assert routed.headers["x-airlock-fallback-from"] == slow
        assert gateway.telemetry.totals()[("chat", slow, "live")].errors_by_kind == {"timeout": 1}
