"""Gateway keys on a running gateway (real uvicorn on loopback, real SQLite catalog, the
catalog sync loop): who may call, with which scopes, how often; revocation and opt-outs
reach the gateway without a plan change."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from airlock.core.gateway_keys import (
    GatewayKey,
    KeyScopes,
    hash_secret,
    is_loopback,
    new_key,
    parse_expiry,
)
from airlock.core.rate_limit import TokenBucket
from airlock.errors import Conflict, Forbidden, InvalidInput, NotFound, RateLimited, Unauthorized
from airlock.gateway.access import OPEN, KeyRing
from airlock.gateway.engine import GatewaySettings
from airlock.gateway.server import workspace_app
from airlock.services.gateway_keys import GatewayKeys, IssuedKey
from airlock.services.identity import Actor
from airlock.services.workspace import Workspace
from gateway.support import ALICE, COOKING, MOON, Releases, Server, chat, get

OPERATOR = Actor("olga", "operator")


def wait_until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


def bearer(issued: IssuedKey | str) -> dict[str, str]:
    secret = issued if isinstance(issued, str) else issued.secret
    return {"authorization": f"Bearer {secret}"}


@pytest.fixture
def served(releases: Releases) -> Iterator[tuple[Releases, Server, str, str]]:
    """A running gateway (sync every 50 ms) serving chat: stable 1.0.0, 1.1.0 at 100 %."""
    stable = releases.builtin("chat", "1.0.0", MOON)
    candidate = releases.builtin("chat", "1.1.0", COOKING)
    releases.serving.create("chat", stable, actor=ALICE)
    plan = releases.serving.plan("chat").with_weights({candidate: 10_000})
    releases.serving.set_plan(plan, actor=ALICE, reason="canary")
    releases.builtin("other", "1.0.0", MOON)
    releases.serving.create("other", "other@1.0.0", actor=ALICE)
    app, _, _ = workspace_app(releases.ws, interval=0.05)
    with Server(app) as server:
        yield releases, server, stable, candidate


def test_no_keys_on_loopback_stays_open(served: tuple[Releases, Server, str, str]) -> None:
    _, server, _, candidate = served
    r = chat(server, "chat", user="amy", headers={"authorization": "Bearer sk-placeholder"})
    assert r.status_code == 200
    assert r.headers["x-airlock-release"] == candidate  # open mode: today's behaviour


def test_a_key_closes_its_service_and_revocation_reaches_the_gateway(
    served: tuple[Releases, Server, str, str],
) -> None:
    releases, server, _, _ = served
    keys = GatewayKeys(releases.ws)
    issued = keys.create(service="chat", name="web", actor=OPERATOR)
    assert issued.secret.startswith(f"ak-{issued.key.id}-")
    wait_until(lambda: chat(server, "chat").status_code == 401, "the key reached the gateway")

    missing = chat(server, "chat")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    error = missing.json()["error"]
    assert error["code"] == "invalid_api_key" and "needs a gateway key" in error["message"]
    assert error["type"] == "invalid_request_error"

    wrong = chat(server, "chat", headers=bearer(f"ak-{issued.key.id}-" + "x" * 43))
    assert wrong.status_code == 401 and "unknown gateway key" in wrong.json()["error"]["message"]
    assert chat(server, "chat", headers=bearer(issued)).status_code == 200
    assert chat(server, "other").status_code == 200  # a service without keys stays open
    assert chat(server, "other", headers=bearer(issued)).status_code == 200  # not its key: open

    other_key = keys.create(service="other", name="batch", actor=OPERATOR)
    wait_until(lambda: chat(server, "other").status_code == 401, "the other key arrived")
    cross = chat(server, "chat", headers=bearer(other_key))
    assert cross.status_code == 403 and "is for service other" in cross.json()["error"]["message"]

    keys.revoke(issued.key.id, actor=OPERATOR, reason="leaked")
    wait_until(
        lambda: chat(server, "chat", headers=bearer(issued)).status_code == 401,
        "the revocation reached the gateway",
    )
    gone = chat(server, "chat", headers=bearer(issued))
    assert "was revoked" in gone.json()["error"]["message"]
    # revoking the last key does not reopen the service
    assert chat(server, "chat").status_code == 401

    metrics = get(f"{server.url}/metrics").text
    assert issued.secret not in metrics and other_key.secret not in metrics
    labels = f'key_id="{issued.key.id}",key_name="web",service="chat"'
    # one request before the revocation, plus any the wait above made before it arrived
    [served] = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(f"airlock_gateway_key_requests_total{{{labels}}}")
    ]
    assert served >= 1.0
    refused = f'key_id="{issued.key.id}",key_name="web",reason="revoked",service="chat"'
    assert f"airlock_gateway_key_rejected_total{{{refused}}}" in metrics
    assert 'key_id="-",key_name="-",reason="missing",service="chat"' in metrics


def test_scopes_pin_route_opt_out_and_what_a_key_sees(
    served: tuple[Releases, Server, str, str],
) -> None:
    releases, server, stable, _ = served
    keys = GatewayKeys(releases.ws)
    plain = keys.create(service="chat", name="plain", actor=OPERATOR)
    pinner = keys.create(service="chat", name="ops", actor=OPERATOR, scopes=KeyScopes(can_pin=True))
    opter = keys.create(
        service="chat", name="privacy", actor=OPERATOR, scopes=KeyScopes(can_opt_out=True)
    )
    wait_until(lambda: chat(server, "chat").status_code == 401, "keys reached the gateway")

    ok = chat(server, "chat", user="amy", headers=bearer(plain))
    assert ok.status_code == 200
    assert "x-airlock-release" not in ok.headers and "x-airlock-route" not in ok.headers
    assert ok.json()["model"] == "chat"  # not which release answered

    for model, headers, scope in [
        ("chat@1.0.0", {}, "can_pin"),
        ("chat@stable", {}, "can_pin"),
        ("chat", {"x-airlock-user": "amy"}, "can_pin"),
        ("chat", {"x-airlock-session": "s1"}, "can_pin"),
        ("chat", {"x-airlock-opt-out": "1"}, "can_opt_out"),
    ]:
        refused = chat(server, model, headers={**bearer(plain), **headers})
        assert refused.status_code == 403, (model, headers)
        assert scope in refused.json()["error"]["message"]

    pinned = chat(server, "chat@1.0.0", headers=bearer(pinner))
    assert pinned.status_code == 200 and pinned.headers["x-airlock-release"] == stable
    assert pinned.json()["model"] == stable
    assert (
        chat(server, "chat", headers={**bearer(pinner), "x-airlock-opt-out": "1"}).status_code
        == 403
    )
    opted = chat(server, "chat", headers={**bearer(opter), "x-airlock-opt-out": "1"})
    assert opted.status_code == 200
    assert chat(server, "chat@1.1.0", headers=bearer(opter)).status_code == 403


def test_rate_limits_answer_429_with_retry_after(served: tuple[Releases, Server, str, str]) -> None:
    releases, server, _, _ = served
    keys = GatewayKeys(releases.ws)
    per_minute = keys.create(service="chat", name="slow", actor=OPERATOR, rpm=2)
    thrifty = keys.create(service="chat", name="thrifty", actor=OPERATOR, tpm=5)
    wait_until(lambda: chat(server, "chat").status_code == 401, "keys reached the gateway")

    assert [chat(server, "chat", headers=bearer(per_minute)).status_code for _ in range(2)] == [
        200,
        200,
    ]
    limited = chat(server, "chat", headers=bearer(per_minute))
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert "2 requests per minute" in limited.json()["error"]["message"]

    first = chat(server, "chat", headers=bearer(thrifty))  # spends more than 5 tokens
    assert first.status_code == 200 and first.json()["usage"]["total_tokens"] > 5
    spent = chat(server, "chat", headers=bearer(thrifty))
    assert spent.status_code == 429 and "tokens per minute" in spent.json()["error"]["message"]

    metrics = get(f"{server.url}/metrics").text
    assert f'key_id="{per_minute.key.id}",key_name="slow",reason="rpm"' in metrics
    tokens = f'airlock_gateway_key_tokens_total{{direction="out",key_id="{thrifty.key.id}"'
    assert tokens in metrics


def test_opt_outs_reach_a_running_gateway_without_a_plan_change(
    served: tuple[Releases, Server, str, str],
) -> None:
    releases, server, stable, candidate = served
    assert chat(server, "chat", user="user-7").headers["x-airlock-release"] == candidate
    generation = releases.serving.plan("chat").generation
    assert releases.serving.set_opt_out("chat", "user-7", actor=ALICE)
    wait_until(
        lambda: chat(server, "chat", user="user-7").headers["x-airlock-release"] == stable,
        "user-7's opt-out reached the running gateway",
    )
    assert chat(server, "chat", user="user-7").headers["x-airlock-route"] == "opt_out"
    assert chat(server, "chat", user="user-8").headers["x-airlock-release"] == candidate
    releases.serving.set_opt_out("chat", "user-7", actor=ALICE, opted_out=False)
    wait_until(
        lambda: chat(server, "chat", user="user-7").headers["x-airlock-release"] == candidate,
        "user-7's opt-in reached the running gateway",
    )
    assert releases.serving.plan("chat").generation == generation  # no plan change needed


def test_a_closed_gateway_answers_401_for_services_without_keys(releases: Releases) -> None:
    releases.builtin("chat", "1.0.0", MOON)
    releases.serving.create("chat", "chat@1.0.0", actor=ALICE)
    app, _, _ = workspace_app(
        releases.ws, settings=GatewaySettings(open_access=False), interval=0.05
    )
    with Server(app) as server:
        r = chat(server, "chat")
        assert r.status_code == 401 and "has no gateway key yet" in r.json()["error"]["message"]
        issued = GatewayKeys(releases.ws).create(service="chat", name="app", actor=ALICE)
        wait_until(
            lambda: chat(server, "chat", headers=bearer(issued)).status_code == 200,
            "the first key opened the service to its holder",
        )


def test_the_gateway_refuses_to_start_open_off_loopback(releases: Releases) -> None:
    releases.builtin("chat", "1.0.0", MOON)
    releases.serving.create("chat", "chat@1.0.0", actor=ALICE)
    keys = GatewayKeys(releases.ws)
    assert keys.check_exposure("127.0.0.1", insecure_open=False) is True
    assert keys.check_exposure("::1", insecure_open=False) is True
    with pytest.raises(InvalidInput) as info:
        keys.check_exposure("0.0.0.0", insecure_open=False)
    assert "--insecure-open" in info.value.hint
    assert keys.check_exposure("0.0.0.0", insecure_open=True) is True
    keys.create(service="chat", name="app", actor=ALICE)
    assert keys.check_exposure("0.0.0.0", insecure_open=False) is False  # closed, keys needed
    with pytest.raises(InvalidInput):  # no key of the services it would serve
        keys.check_exposure("10.1.2.3", insecure_open=False, services=("other",))


def test_key_rules_in_the_service(releases: Releases) -> None:
    releases.builtin("chat", "1.0.0", MOON)
    releases.serving.create("chat", "chat@1.0.0", actor=ALICE)
    keys = GatewayKeys(releases.ws)
    with pytest.raises(NotFound):
        keys.create(service="nope", name="a", actor=ALICE)
    with pytest.raises(Forbidden):
        keys.create(service="chat", name="a", actor=Actor("vic", "viewer"))
    with pytest.raises(InvalidInput):
        keys.create(service="chat", name="a", actor=ALICE, rpm=0)
    with pytest.raises(InvalidInput):
        keys.create(service="chat", name="a", actor=ALICE, expires="yesterday")
    issued = keys.create(service="chat", name="a", actor=ALICE, expires="2h", tpm=1000)
    with pytest.raises(Conflict):
        keys.create(service="chat", name="a", actor=ALICE)
    assert [i.key.name for i in keys.list()] == ["a"]
    assert keys.list()[0].key.expires_at is not None
    keys.revoke(issued.key.id, actor=ALICE)
    assert keys.list() == [] and keys.list(include_inactive=True)[0].state == "revoked"
    with pytest.raises(InvalidInput):
        keys.revoke("not-an-id", actor=ALICE)
    with pytest.raises(NotFound):
        keys.revoke("0123456789ab", actor=ALICE)
    with releases.ws.db.read() as conn:
        from airlock import audit

        actions = [e.action for e in audit.entries(conn)]
    assert actions.count("gateway_key.create") == 1 and "gateway_key.revoke" in actions
    assert keys.response_secret() == keys.response_secret()  # created once, then shared


# -- pure parts and the key ring, with plain values ------------------------------------------


def _key(service: str = "chat", **kw: object) -> tuple[GatewayKey, str]:
    key_id, secret = new_key()
    values: dict[str, object] = {
        "id": key_id,
        "service": service,
        "name": "k",
        "secret_hash": hash_secret(secret),
        "scopes": KeyScopes(),
        "rpm": None,
        "tpm": None,
        "created_at": datetime.now(UTC),
        "created_by": "alice",
        **kw,
    }
    return GatewayKey(**values), secret  # type: ignore[arg-type]


def test_key_ring_decisions() -> None:
    clock = [0.0]
    ring = KeyRing(open_access=True, clock=lambda: clock[0])
    assert ring.authenticate("chat", None) is OPEN
    live, secret = _key(rpm=2)
    old, old_secret = _key(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    ring.load([live, old])
    with pytest.raises(Unauthorized):
        ring.authenticate("chat", None)
    with pytest.raises(Unauthorized, match="expired"):
        ring.authenticate("chat", f"Bearer {old_secret}")
    assert ring.admit("chat", f"Bearer {secret}").key_id == live.id
    ring.admit("chat", f"bearer {secret}")
    with pytest.raises(RateLimited) as info:
        ring.admit("chat", f"Bearer {secret}")
    assert info.value.retry_after == pytest.approx(30.0)
    clock[0] = 30.0
    ring.admit("chat", f"Bearer {secret}")  # one request per 30 s refilled


def test_token_bucket_and_expiry_parsing() -> None:
    bucket = TokenBucket(60, period=60.0, now=0.0)
    assert bucket.take(0.0, 60) == 0.0
    assert bucket.take(0.0) == pytest.approx(1.0)
    bucket.spend(0.0, 30)  # debt: 30 s until positive again
    assert bucket.wait(10.0) == pytest.approx(20.0)
    assert bucket.wait(31.0) == 0.0
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_expiry("90m", now) == now + timedelta(minutes=90)
    assert parse_expiry("2026-02-01", now) == datetime(2026, 2, 1, tzinfo=UTC)
    for bad in ("0d", "soon", "2025-01-01"):
        with pytest.raises(InvalidInput):
            parse_expiry(bad, now)
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")


def test_models_lists_what_the_caller_may_call(
    served: tuple[Releases, Server, str, str],
) -> None:
    releases, server, _, _ = served
    keys = GatewayKeys(releases.ws)
    plain = keys.create(service="chat", name="plain", actor=ALICE)
    pinner = keys.create(service="chat", name="pin", actor=ALICE, scopes=KeyScopes(can_pin=True))
    wait_until(lambda: chat(server, "chat").status_code == 401, "the keys reached the gateway")

    def models(headers: dict[str, str]) -> set[str]:
        with httpx.Client(base_url=server.url) as client:
            r = client.get("/v1/models", headers=headers)
        assert r.status_code == 200, r.text
        return {m["id"] for m in r.json()["data"]}

    assert models({}) == {"other", "other@1.0.0"}  # only the open service
    assert models(bearer(plain)) == {"chat", "other", "other@1.0.0"}
    assert {"chat", "chat@1.0.0", "chat@1.1.0"} <= models(bearer(pinner))


def test_the_openai_client_with_a_key_streaming_and_rate_limited(
    served: tuple[Releases, Server, str, str],
) -> None:
    import openai

    releases, server, _, _ = served
    keys = GatewayKeys(releases.ws)
    issued = keys.create(service="chat", name="sdk", actor=ALICE, rpm=2)
    wait_until(lambda: chat(server, "chat").status_code == 401, "the key reached the gateway")
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=issued.secret, max_retries=0)
    stream = client.chat.completions.create(
        model="chat",
        messages=[{"role": "user", "content": "Tell me about the moon"}],
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert {c.model for c in chunks} == {"chat"}  # a key without can_pin: no release names
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=4
    )
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
    anonymous = openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-none", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        anonymous.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], max_tokens=4
        )
    metrics = get(f"{server.url}/metrics").text
    line = next(
        x
        for x in metrics.splitlines()
        if x.startswith("airlock_gateway_key_tokens_total")
        and 'direction="out"' in x
        and issued.key.id in x
    )
    assert float(line.rsplit(" ", 1)[1]) >= chunks[-1].usage.completion_tokens


def test_keys_and_revocations_reach_a_gateway_on_sqlite_and_postgresql(
    workspace: Workspace, tmp_path: Path
) -> None:
    releases = Releases(workspace, tmp_path / "folders")
    stable = releases.builtin("chat", "1.0.0", MOON)
    releases.serving.create("chat", stable, actor=ALICE)
    app, _, _ = workspace_app(workspace, interval=0.05)
    with Server(app) as server:
        assert chat(server, "chat").status_code == 200
        issued = GatewayKeys(workspace).create(service="chat", name="app", actor=OPERATOR)
        wait_until(lambda: chat(server, "chat").status_code == 401, "the key reached it")
        assert chat(server, "chat", headers=bearer(issued)).status_code == 200
        GatewayKeys(workspace).revoke(issued.key.id, actor=OPERATOR)
        wait_until(
            lambda: chat(server, "chat", headers=bearer(issued)).status_code == 401,
            "the revocation reached it",
        )
