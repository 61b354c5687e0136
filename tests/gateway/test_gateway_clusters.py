"""The real gateway counts each request in its user's analysis cluster (the routing bucket
the router hashed, mod CLUSTERS): live answers, streams (with time to first token),
refusals, shadow copies and feedback. And both arms of a comparison get the same timeout."""

from __future__ import annotations

from collections import Counter
from typing import Any

from airlock.core.traffic import TrafficPlan, WeightedRelease, bucket_of
from airlock.core.window import CELLS, ReleaseWindow, cluster_of
from airlock.gateway.engine import GatewaySettings
from gateway.support import COOKING, MOON, Releases, Server, chat, post, serve_gateway


def _cluster(user: str) -> int:
    return cluster_of(bucket_of("chat", user))


def _users(plan: TrafficPlan, release: str, n: int, taken: set[int]) -> list[str]:
    """``n`` users routed to ``release``, each in a cluster no other chosen user is in."""
    out = []
    for i in range(10_000):
        user = f"user-{i}"
        if plan.route(user) == release and _cluster(user) not in taken:
            taken.add(_cluster(user))
            out.append(user)
            if len(out) == n:
                return out
    raise AssertionError("not enough users")


def _per_cluster(window: ReleaseWindow, field: str = "requests") -> dict[int, float]:
    return {i: v for i, v in enumerate(window.clusters.get(field, ())) if v}


def _cells_clusters(cells: Any) -> Counter[int]:
    out: Counter[int] = Counter()
    for key, count in cells.items():
        out[key // CELLS] += count
    return out


def test_each_request_is_counted_in_its_users_cluster(releases: Releases) -> None:
    stable = releases.builtin("chat", "1.0.0", MOON)
    candidate = releases.builtin("chat", "1.1.0", COOKING)
    shadow = releases.builtin("chat", "1.2.0", MOON)
    plan = TrafficPlan(
        "chat", stable, candidates=(WeightedRelease(candidate, 5000),), shadows=(shadow,)
    )
    taken: set[int] = set()
    (amy,) = _users(plan, candidate, 1, taken)
    bob, eve = _users(plan, stable, 2, taken)
    gateway = releases.gateway()
    with serve_gateway(gateway) as server:
        server.call(gateway.apply_plan(plan))
        answers = [chat(server, "chat", user=amy) for _ in range(3)]
        answers += [chat(server, "chat", headers={"x-airlock-user": bob}) for _ in range(2)]
        assert {a.headers["x-airlock-release"] for a in answers} == {candidate, stable}
        streamed = post(
            f"{server.url}/v1/chat/completions",
            {
                "model": "chat",
                "messages": [{"role": "user", "content": "the moon"}],
                "max_tokens": 4,
                "stream": True,
                "user": amy,
            },
        )
        assert streamed.status_code == 200 and "[DONE]" in streamed.text
        pinned = chat(server, "chat@stable", user=eve)  # pinned: still counted in eve's cluster
        assert pinned.headers["x-airlock-release"] == stable
        feedback = post(f"{server.url}/v1/feedback", {"id": answers[3].json()["id"], "score": 1})
        assert feedback.status_code == 200
        server.call(gateway.shadows.drain())

        live = gateway.telemetry.windows()
        on_candidate, on_stable = live[("chat", candidate)], live[("chat", stable)]
        assert _per_cluster(on_candidate) == {_cluster(amy): 4}
        assert _per_cluster(on_stable) == {_cluster(bob): 2, _cluster(eve): 1}
        assert _cells_clusters(on_candidate.latency_cells) == {_cluster(amy): 4}
        assert _cells_clusters(on_stable.latency_cells) == {_cluster(bob): 2, _cluster(eve): 1}
        # the streamed answer's time to first token, in amy's cluster; plain answers have none
        assert _cells_clusters(on_candidate.ttft_cells) == {_cluster(amy): 1}
        assert not on_stable.ttft_cells
        assert _per_cluster(on_stable, "feedback_count") == {_cluster(bob): 1}
        # a shadow copy is counted in the cluster of the request it mirrors
        mirrored = gateway.telemetry.windows(traffic="shadow")[("chat", shadow)]
        assert mirrored.requests == 7
        assert _per_cluster(mirrored) == {_cluster(amy): 4, _cluster(bob): 2, _cluster(eve): 1}

        # without a user key the request is counted in the bucket it was routed by (random)
        anonymous = chat(server, "chat")
        release = anonymous.headers["x-airlock-release"]
        window = gateway.telemetry.windows()[("chat", release)]
        assert sum(window.clusters["requests"]) == window.requests


def test_a_refusal_is_counted_in_the_users_cluster(
    releases: Releases, upstream: tuple[Server, list[dict[str, Any]]]
) -> None:
    up, _ = upstream
    policy = {"refusal": "no", "blocked_terms": ["detonator"]}
    stable = releases.upstream("chat", "1.0.0", up.url, files={"safety_policy.yaml": policy})
    gateway = releases.gateway()
    with serve_gateway(gateway) as server:
        server.call(gateway.apply_plan(TrafficPlan.all_stable("chat", stable)))
        refused = chat(server, "chat", "build a detonator", user="amy")
        assert refused.status_code == 400, refused.text
        window = gateway.telemetry.windows()[("chat", stable)]
        assert _per_cluster(window) == {_cluster("amy"): 1}
        assert _per_cluster(window, "guardrail_flags") == {_cluster("amy"): 1}


def _split(stable: str, candidate: str) -> TrafficPlan:
    return TrafficPlan("chat", stable, candidates=(WeightedRelease(candidate, 5000),))


def test_both_arms_get_the_same_timeout_while_comparing(
    releases: Releases, upstream: tuple[Server, list[dict[str, Any]]]
) -> None:
    up, _ = upstream
    # two identical slow-tailed releases (the upstream stalls 1.5 s), a 0.2 s cap
    stable = releases.upstream("chat", "1.0.0", up.url, "slow", timeout_s=30)
    candidate = releases.upstream("chat", "1.1.0", up.url, "slow", timeout_s=30)
    gateway = releases.gateway(GatewaySettings(candidate_timeout_s=0.2))
    plan = _split(stable, candidate)
    taken: set[int] = set()
    (on_stable,) = _users(plan, stable, 1, taken)
    (on_candidate,) = _users(plan, candidate, 1, taken)
    with serve_gateway(gateway) as server:
        server.call(gateway.apply_plan(TrafficPlan.all_stable("chat", stable)))
        # no comparison running: the release's own timeout, the slow answer arrives
        alone = chat(server, "chat", user=on_stable)
        assert alone.status_code == 200, alone.text
        assert gateway.telemetry.windows()[("chat", stable)].errors == 0

        server.call(
            gateway.apply_plan(
                TrafficPlan(plan.service, stable, candidates=plan.candidates, generation=1)
            )
        )
        mark = gateway.telemetry.mark()
        routed = chat(server, "chat", user=on_candidate)
        assert routed.headers["x-airlock-fallback-from"] == candidate  # the fallback waits on
        capped = chat(server, "chat", user=on_stable)
        assert capped.status_code == 504, capped.text
        assert capped.json()["error"]["code"] == "timeout"
        assert "within 0.2 s" in capped.json()["error"]["message"]
        streamed = chat(server, "chat", user=on_stable, stream=True)
        assert streamed.status_code == 504, streamed.text
        assert "within 0.2 s" in streamed.json()["error"]["message"]
        step = gateway.telemetry.since(mark)
        # identical releases, identical outcome: timeouts on both arms
        assert (step[("chat", candidate)].requests, step[("chat", candidate)].errors) == (1, 1)
        assert (step[("chat", stable)].requests, step[("chat", stable)].errors) == (2, 2)
        totals = gateway.telemetry.totals()
        assert totals[("chat", stable, "live")].errors_by_kind == {"timeout": 2}
        assert totals[("chat", candidate, "live")].errors_by_kind == {"timeout": 1}
