"""Telemetry: /metrics with per-release labels, feedback, and flushes to the catalog; services
and plans in the catalog, picked up by a running gateway."""

from __future__ import annotations

import threading
import time

import pytest

from airlock.core.analysis import LATENCY_HISTOGRAM_SIZE
from airlock.core.traffic import TrafficPlan
from airlock.errors import Conflict, InvalidInput, NotFound
from airlock.gateway.server import workspace_app
from gateway.support import ALICE, COOKING, MOON, Releases, Server, chat, get, post, serve_gateway


def test_metrics_and_feedback(releases: Releases) -> None:
    stable = releases.builtin("chat", "1.0.0", MOON)
    gateway = releases.gateway()
    with serve_gateway(gateway) as server:
        server.call(gateway.apply_plan(TrafficPlan.all_stable("chat", stable)))
        answer = chat(server, "chat", user="amy").json()
        good = post(f"{server.url}/v1/feedback", {"id": answer["id"], "score": 1})
        assert good.json() == {"ok": True, "id": answer["id"], "service": "chat", "release": stable}
        assert (
            post(f"{server.url}/v1/feedback", {"id": "chatcmpl-nope", "score": 1}).status_code
            == 404
        )
        assert (
            post(f"{server.url}/v1/feedback", {"id": answer["id"], "score": 3}).status_code == 400
        )
        assert post(f"{server.url}/v1/feedback", {"id": answer["id"]}).status_code == 400

        window = gateway.telemetry.windows()[("chat", stable)]
        assert (window.requests, window.feedback_count, window.feedback_sum) == (1, 1, 1.0)
        assert len(window.latency_histogram) == LATENCY_HISTOGRAM_SIZE

        metrics = get(f"{server.url}/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        labels = f'release="{stable}",service="chat",traffic="live"'
        text = metrics.text
        assert f"airlock_gateway_requests_total{{{labels}}} 1.0" in text
        assert f"airlock_gateway_feedback_total{{{labels}}} 1.0" in text
        assert f'airlock_gateway_tokens_total{{direction="out",{labels}}}' in text
        assert f'airlock_gateway_request_latency_seconds_bucket{{le="+Inf",{labels}}} 1.0' in text
        assert 'airlock_gateway_plan_generation{service="chat"} 0.0' in text
        assert (
            f'airlock_gateway_release_weight_bp{{release="{stable}",role="stable",service="chat"}} 10000.0'
            in text
        )


def test_mark_and_since_give_the_window_of_a_step(releases: Releases) -> None:
    stable = releases.builtin("chat", "1.0.0", MOON)
    gateway = releases.gateway()
    with serve_gateway(gateway) as server:
        server.call(gateway.apply_plan(TrafficPlan.all_stable("chat", stable)))
        chat(server, "chat")
        mark = gateway.telemetry.mark()
        chat(server, "chat")
        chat(server, "chat")
        assert gateway.telemetry.since(mark)[("chat", stable)].requests == 2
        assert gateway.telemetry.windows()[("chat", stable)].requests == 3


def test_catalog_services_plans_and_flushes(releases: Releases) -> None:
    serving = releases.serving
    stable = releases.builtin("chat", "1.0.0", MOON)
    candidate = releases.builtin("chat", "1.1.0", COOKING)
    releases.registry.set_alias("production", stable, actor=ALICE, reason="first")
    view = serving.create("chat", "chat@production", actor=ALICE, reason="launch")
    assert view.plan == TrafficPlan.all_stable("chat", stable)  # the alias, resolved
    with pytest.raises(Conflict):
        serving.create("chat", stable, actor=ALICE)
    with pytest.raises(NotFound):
        serving.get("nope")

    app, gateway, sync = workspace_app(releases.ws, interval=0.05)
    with Server(app) as server:
        assert chat(server, "chat", user="amy").headers["x-airlock-release"] == stable
        # another process (here: another Serving object) changes the plan in the catalog
        from airlock.services.serving import Serving

        other = Serving(releases.ws)
        new = other.plan("chat").with_weights({candidate: 10_000})
        other.set_plan(new, actor=ALICE, reason="canary")
        with pytest.raises(Conflict):  # derived from a stale plan
            other.set_plan(new, actor=ALICE, reason="again")
        deadline = time.monotonic() + 10
        while get(f"{server.url}/healthz").json()["services"]["chat"] != 1:
            assert time.monotonic() < deadline, "the gateway never picked up generation 1"
            time.sleep(0.05)
        assert chat(server, "chat", user="amy").headers["x-airlock-release"] == candidate
        other.set_opt_out("chat", "amy", actor=ALICE)
        serving.set_plan(
            serving.plan("chat").with_weights({candidate: 10_000}), actor=ALICE, reason="resync"
        )
        deadline = time.monotonic() + 10
        while chat(server, "chat", user="amy").headers["x-airlock-release"] != stable:
            assert time.monotonic() < deadline, "the opt-out never reached the gateway"
            time.sleep(0.05)
    # the server stopped: the sync flushed everything it had
    windows = serving.windows("chat")
    assert windows[stable].requests >= 2
    assert windows[candidate].requests >= 1
    history = serving.history("chat")
    assert [h.generation for h in history] == [0, 1, 2]
    assert history[1].reason == "canary"
    with releases.ws.db.read() as conn:
        from airlock import audit

        actions = [e.action for e in audit.entries(conn)]
    assert actions.count("service.plan") == 2
    assert "service.create" in actions
    assert "service.opt_out" in actions
    assert sync.flushes >= 1
    assert gateway.plans() == {}  # closed with the app


def test_plan_changes_need_a_reason_and_known_releases(releases: Releases) -> None:
    serving = releases.serving
    stable = releases.builtin("chat", "1.0.0", MOON)
    serving.create("chat", stable, actor=ALICE)
    nxt = serving.plan("chat").with_weights({"chat@9.9.9": 100})
    with pytest.raises(NotFound):
        serving.set_plan(nxt, actor=ALICE, reason="typo")
    with pytest.raises(InvalidInput):
        serving.set_plan(nxt, actor=ALICE, reason=" ")
    assert serving.plan("chat").generation == 0  # nothing was half-written


def _in_flight(server: Server) -> float:
    for line in get(f"{server.url}/metrics").text.splitlines():
        if line.startswith("airlock_gateway_requests_in_flight "):
            return float(line.split()[1])
    raise AssertionError("/metrics has no airlock_gateway_requests_in_flight")


@pytest.mark.parametrize("stream", [False, True])
def test_requests_in_flight_are_counted_until_the_last_byte(
    releases: Releases, stream: bool
) -> None:
    slow = releases.builtin("chat", "1.0.0", MOON, config={"faults": {"latency_ms": 800}})
    gateway = releases.gateway()
    with serve_gateway(gateway) as server:
        server.call(gateway.apply_plan(TrafficPlan.all_stable("chat", slow)))
        assert _in_flight(server) == 0
        answers: list[int] = []
        body = {"model": "chat", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
        asking = threading.Thread(
            target=lambda: answers.append(
                post(f"{server.url}/v1/chat/completions", body).status_code
            )
        )
        asking.start()
        assert _wait_for_in_flight(server, 1) == 1  # the slow release holds it
        asking.join(10)
        assert answers == [200]
        # the client may read the last byte a moment before the server's bookkeeping runs
        assert _wait_for_in_flight(server, 0) == 0


def _wait_for_in_flight(server: Server, wanted: float) -> float:
    deadline = time.monotonic() + 10
    while (seen := _in_flight(server)) != wanted and time.monotonic() < deadline:
        time.sleep(0.01)
    return seen
