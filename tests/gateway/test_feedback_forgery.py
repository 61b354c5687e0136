"""The feedback attack, replayed against a running gateway (real uvicorn, catalog sync):
20 posts for one response id count once; forged, edited, another key's and expired ids are
refused and counted by reason; an anonymous client cannot send feedback once keys exist."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from airlock.core.gateway_keys import KeyScopes
from airlock.core.response_ids import ResponseTicket, issue_response_id, read_response_id
from airlock.gateway.engine import Gateway
from airlock.gateway.feedback import FeedbackLedger
from airlock.gateway.server import workspace_app
from airlock.gateway.telemetry import Telemetry
from airlock.services.gateway_keys import GatewayKeys, IssuedKey
from gateway.support import ALICE, MOON, Releases, Server, chat, get, post
from gateway.test_gateway_keys import bearer, wait_until


@pytest.fixture
def keyed(releases: Releases) -> Iterator[tuple[Server, Gateway, GatewayKeys, str]]:
    stable = releases.builtin("chat", "1.0.0", MOON)
    releases.serving.create("chat", stable, actor=ALICE)
    app, gateway, _ = workspace_app(releases.ws, interval=0.05)
    with Server(app) as server:
        yield server, gateway, GatewayKeys(releases.ws), stable


def feedback(server: Server, rid: str, score: float, key: IssuedKey | None) -> httpx.Response:
    return post(
        f"{server.url}/v1/feedback",
        {"id": rid, "score": score},
        headers=bearer(key) if key else {},
    )


def rejected(server: Server) -> dict[str, float]:
    out = {}
    for line in get(f"{server.url}/metrics").text.splitlines():
        if line.startswith("airlock_gateway_feedback_rejected_total{"):
            reason = line.split('reason="')[1].split('"')[0]
            out[reason] = float(line.rsplit(" ", 1)[1])
    return out


def test_the_feedback_attack(keyed: tuple[Server, Gateway, GatewayKeys, str]) -> None:
    server, gateway, keys, stable = keyed
    amy = keys.create(service="chat", name="amy-app", actor=ALICE)
    bob = keys.create(service="chat", name="bob-app", actor=ALICE)
    mute = keys.create(
        service="chat", name="no-feedback", actor=ALICE, scopes=KeyScopes(can_feedback=False)
    )
    wait_until(lambda: chat(server, "chat").status_code == 401, "keys reached the gateway")
    rid = chat(server, "chat", headers=bearer(amy)).json()["id"]
    assert rid.startswith("chatcmpl-")

    # 20 posts for one response id count once; later posts replace the score
    answers = [feedback(server, rid, score, amy) for score in [0.0] * 19 + [1.0]]
    assert all(r.status_code == 200 for r in answers)
    assert "replaced" not in answers[0].json() and answers[-1].json()["replaced"] == 0.0
    window = gateway.telemetry.windows()[("chat", stable)]
    assert window.feedback_count == 1
    assert 0.0 <= window.feedback_sum <= 1.0  # replaced in the pending window, never added

    # a forged id, an edited one, another key's, an expired one, anonymous, no scope
    payload, _, signature = rid.removeprefix("chatcmpl-").partition(".")
    edited = f"chatcmpl-{payload[:-2]}{'AA' if payload[-2:] != 'AA' else 'BB'}.{signature}"
    assert feedback(server, "chatcmpl-0123456789abcdef", 0, amy).status_code == 404
    assert feedback(server, edited, 0, amy).status_code == 404
    assert feedback(server, rid, 0, bob).status_code == 403
    ticket = read_response_id(keys.response_secret(), rid)
    old = issue_response_id(
        keys.response_secret(),
        ResponseTicket("chat", "chat", stable, amy.key.id, time.time() - 2 * 86_400, "n0"),
    )
    too_old = feedback(server, old, 0, amy)
    assert too_old.status_code == 400 and "feedback window" in too_old.json()["error"]["message"]
    anonymous = feedback(server, rid, 0, None)
    assert anonymous.status_code == 401 and "www-authenticate" in anonymous.headers
    mute_rid = chat(server, "chat", headers=bearer(mute)).json()["id"]
    scoped = feedback(server, mute_rid, 0, mute)
    assert scoped.status_code == 403 and "can_feedback" in scoped.json()["error"]["message"]
    assert ticket.key_id == amy.key.id and ticket.release == stable

    window = gateway.telemetry.windows()[("chat", stable)]
    assert window.feedback_count == 1  # none of the refused posts counted
    counts = rejected(server)
    assert counts["malformed"] == 1
    assert counts["bad_signature"] == 1
    assert counts["wrong_key"] == 1
    assert counts["expired"] == 1
    assert counts["unauthenticated"] == 1
    assert counts["no_scope"] == 1


def test_open_mode_feedback_still_works_and_cannot_be_repeated(releases: Releases) -> None:
    stable = releases.builtin("chat", "1.0.0", MOON)
    releases.serving.create("chat", stable, actor=ALICE)
    app, gateway, _ = workspace_app(releases.ws, interval=0.05)
    with Server(app) as server:
        rid = chat(server, "chat").json()["id"]
        for _ in range(20):
            assert feedback(server, rid, 0.0, None).status_code == 200
        assert gateway.telemetry.windows()[("chat", stable)].feedback_count == 1
        # once the service has keys, open-mode ids need... the key that asked: nobody
        GatewayKeys(releases.ws).create(service="chat", name="app", actor=ALICE)
        wait_until(lambda: chat(server, "chat").status_code == 401, "the key reached it")
        assert feedback(server, rid, 1.0, None).status_code == 401


def test_a_fleet_shares_its_secret_and_ids_verify_on_any_replica(releases: Releases) -> None:
    stable = releases.builtin("chat", "1.0.0", MOON)
    releases.serving.create("chat", stable, actor=ALICE)
    app_a, gateway_a, _ = workspace_app(releases.ws, interval=0.05)
    app_b, gateway_b, _ = workspace_app(releases.ws, interval=0.05)
    with Server(app_a) as a, Server(app_b) as b:
        rid = chat(a, "chat").json()["id"]
        assert feedback(b, rid, 1.0, None).status_code == 200
        assert gateway_b.telemetry.windows()[("chat", stable)].feedback_count == 1
        assert ("chat", stable) not in gateway_a.telemetry.windows() or (
            gateway_a.telemetry.windows()[("chat", stable)].feedback_count == 0
        )


def test_the_ledger_never_counts_an_evicted_id_twice() -> None:
    ledger = FeedbackLedger(capacity=2, max_age_s=100.0)
    assert ledger.record("a", issued_at=1.0, score=1.0, now=10.0) is None
    assert ledger.record("b", issued_at=2.0, score=1.0, now=10.0) is None
    assert ledger.record("b", issued_at=2.0, score=0.0, now=10.0) == 1.0  # replaced
    assert ledger.record("c", issued_at=3.0, score=1.0, now=10.0) is None  # evicts "a"
    assert len(ledger) == 2
    assert ledger.too_old(1.0, now=10.0)  # "a" is forgotten, so refused, not recounted
    assert not ledger.too_old(3.0, now=10.0)
    assert ledger.too_old(3.0, now=104.0)  # past the window


def test_a_replaced_score_moves_the_sum_not_the_count() -> None:
    telemetry = Telemetry()
    key = ("chat", "chat@1.0.0", "live")
    telemetry.feedback(key, 0.0, cluster=5)  # type: ignore[arg-type]
    telemetry.correct_feedback(key, 0.0, 1.0, cluster=5)  # type: ignore[arg-type]
    window = telemetry.windows()[("chat", "chat@1.0.0")]
    assert (window.feedback_count, window.feedback_sum) == (1, 1.0)
    assert window.clusters["feedback_sum"][5] == 1.0


def test_feedback_metrics_become_custom_metrics_in_the_users_cluster(
    keyed: tuple[Server, Gateway, GatewayKeys, str],
) -> None:
    server, gateway, keys, stable = keyed
    amy = keys.create(service="chat", name="amy-app", actor=ALICE)
    wait_until(lambda: chat(server, "chat").status_code == 401, "keys reached the gateway")
    rid = chat(server, "chat", headers=bearer(amy)).json()["id"]
    body = {"id": rid, "score": 1, "metrics": {"json_ok": 1, "helpful": 0.5}}
    assert post(f"{server.url}/v1/feedback", body, headers=bearer(amy)).status_code == 200
    again = post(f"{server.url}/v1/feedback", body, headers=bearer(amy))
    assert again.status_code == 200  # a second post replaces the score, metrics count once
    window = gateway.telemetry.windows()[("chat", stable)]
    assert window.custom == {"json_ok": (1.0, 1.0), "helpful": (0.5, 1.0)}
    cluster = read_response_id(keys.response_secret(), rid).cluster
    assert window.clusters["custom:json_ok:trials"][cluster] == 1.0
    bad = {"id": rid, "score": 1, "metrics": {"Bad Name!": 1}}
    refused = post(f"{server.url}/v1/feedback", bad, headers=bearer(amy))
    assert refused.status_code == 400 and "metric name" in refused.text
