"""Sticky routing through plan swaps, pinning, opt-outs and hot-standby swaps, over HTTP."""

from __future__ import annotations

import httpx
import pytest

from airlock.core.traffic import TrafficPlan, WeightedRelease
from airlock.errors import Conflict
from airlock.gateway.engine import Gateway
from airlock.runtime.loader import LoadedRelease
from gateway.support import COOKING, MOON, Releases, Server, plan, serve_gateway

USERS = [f"user-{i}" for i in range(1000)]


def _release_per_user(server: Server, users: list[str]) -> dict[str, str]:
    seen = {}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for user in users:
            body = {
                "model": "chat",
                "messages": [{"role": "user", "content": "moon"}],
                "max_tokens": 1,
                "user": user,
            }
            response = client.post("/v1/chat/completions", json=body)
            assert response.status_code == 200, response.text
            seen[user] = response.headers["x-airlock-release"]
    return seen


def test_sticky_routing_for_1000_users_across_plan_swaps(releases: Releases) -> None:
    stable = releases.builtin("chat", "1.0.0", MOON)
    candidate = releases.builtin("chat", "1.1.0", COOKING)
    gateway = releases.gateway()
    with serve_gateway(gateway) as server:
        plan0 = TrafficPlan.all_stable("chat", stable)
        server.call(gateway.apply_plan(plan0))
        before = _release_per_user(server, USERS)
        assert set(before.values()) == {stable}

        plan1 = plan0.with_weights({candidate: 1000})  # 10 %
        server.call(gateway.apply_plan(plan1))
        at10 = _release_per_user(server, USERS)
        on_candidate = {u for u, r in at10.items() if r == candidate}
        assert 50 <= len(on_candidate) <= 150
        assert all(at10[u] == plan1.route(u) for u in USERS)  # what the plan says, user by user

        plan2 = plan1.with_weights({candidate: 3000})  # 30 %: everyone on it stays on it
        server.call(gateway.apply_plan(plan2))
        at30 = _release_per_user(server, USERS)
        assert on_candidate <= {u for u, r in at30.items() if r == candidate}
        assert 250 <= sum(r == candidate for r in at30.values()) <= 350

        plan3 = plan2.with_weights({candidate: 3000})  # a new generation, same buckets
        server.call(gateway.apply_plan(plan3))
        assert _release_per_user(server, USERS) == at30
        assert gateway.plan("chat").generation == 3


def test_swaps_are_reference_swaps_and_rollback_needs_no_reload(releases: Releases) -> None:
    stable = releases.builtin("chat", "1.0.0", MOON)
    candidate = releases.builtin("chat", "1.1.0", COOKING)
    loads: list[str] = []
    loader = releases.serving.loader()

    def counting_load(ref: str) -> LoadedRelease:
        loads.append(ref)
        return loader.load(ref)

    gateway = Gateway(counting_load)
    with serve_gateway(gateway) as server:
        plan0 = TrafficPlan.all_stable("chat", stable)
        plan1 = plan0.with_weights({candidate: 10_000})
        server.call(gateway.apply_plan(plan0))
        server.call(gateway.load([candidate]))
        assert sorted(loads) == sorted([stable, candidate])
        loaded = gateway.state("chat").releases[stable]

        assert gateway.swap_plan(plan1)  # synchronous, no I/O
        assert _release_per_user(server, ["u1"]) == {"u1": candidate}
        rollback = TrafficPlan(service="chat", stable=stable, generation=2)
        assert gateway.swap_plan(rollback)
        assert _release_per_user(server, ["u1"]) == {"u1": stable}
        assert gateway.state("chat").releases[stable] is loaded  # the same loaded object
        assert len(loads) == 2  # nothing was loaded again

        with pytest.raises(Conflict, match="older"):
            gateway.swap_plan(plan1)  # generation 1 < 2: stale


def test_pinning_and_opt_out_go_where_asked(releases: Releases) -> None:
    stable = releases.builtin("chat", "1.0.0", MOON)
    candidate = releases.builtin("chat", "1.1.0", COOKING)
    gateway = releases.gateway()
    everyone_on_candidate = plan("chat", stable, candidates=[WeightedRelease(candidate, 10_000)])
    with serve_gateway(gateway) as server, httpx.Client(base_url=server.url) as client:
        server.call(gateway.apply_plan(everyone_on_candidate))

        def ask(model: str, **kw: object) -> httpx.Response:
            headers = kw.pop("headers", {})
            body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **kw}
            response = client.post("/v1/chat/completions", json=body, headers=headers)  # type: ignore[arg-type]
            assert response.status_code == 200, response.text
            return response

        assert ask("chat", user="amy").headers["x-airlock-release"] == candidate
        pinned = ask("chat@1.0.0", user="amy")
        assert pinned.headers["x-airlock-release"] == stable
        assert pinned.headers["x-airlock-route"] == "pinned"
        assert ask(f"chat@{stable}").headers["x-airlock-release"] == stable
        opted = ask("chat", user="amy", headers={"X-Airlock-Opt-Out": "1"})
        assert opted.headers["x-airlock-release"] == stable
        assert opted.headers["x-airlock-route"] == "opt_out"
        gateway.set_opt_outs("chat", ["amy"])
        assert ask("chat", user="amy").headers["x-airlock-release"] == stable
        assert ask("chat", user="bob").headers["x-airlock-release"] == candidate
        by_header = ask("chat", headers={"X-Airlock-User": "amy"})
        assert by_header.headers["x-airlock-release"] == stable


def test_a_tampered_candidate_is_refused_and_the_served_plan_stays(releases: Releases) -> None:
    import os

    from airlock.errors import IntegrityError
    from airlock.store.local import LocalStore

    stable = releases.builtin("chat", "1.0.0", MOON)
    candidate = releases.builtin("chat", "1.1.0", COOKING)
    entry = releases.registry.manifest(candidate).file("tokenizer.json")
    assert entry is not None
    store = releases.ws.store
    assert isinstance(store, LocalStore)
    blob = store.path_of(entry.digest)
    os.chmod(blob, 0o644)
    blob.write_bytes(blob.read_bytes().replace(b"soup", b"soap"))
    gateway = releases.gateway()
    with serve_gateway(gateway) as server:
        plan0 = TrafficPlan.all_stable("chat", stable)
        server.call(gateway.apply_plan(plan0))
        with pytest.raises(IntegrityError, match=r"tokenizer\.json"):
            server.call(gateway.apply_plan(plan0.with_weights({candidate: 5000})))
        assert gateway.plan("chat") == plan0
        assert _release_per_user(server, USERS[:20]) == dict.fromkeys(USERS[:20], stable)
