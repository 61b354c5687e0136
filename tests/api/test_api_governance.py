"""Approvals, policies and checks, evaluations, signatures, notes and tokens over the real API."""

from __future__ import annotations

import httpx
import pytest
from api_support import Lumen

from airlock.demo import scenario

pytestmark = pytest.mark.anyio


async def test_policy_check_and_two_approvals(api: httpx.AsyncClient, lumen: Lumen) -> None:
    r = await api.put(
        "/api/v1/policies/lumen", json={"document": scenario.POLICY, "reason": "demo rules"}
    )
    assert r.status_code == 200
    assert r.json()["created"] is True
    assert r.json()["policy"]["version"] == 1
    again = (await api.put("/api/v1/policies/lumen", json={"document": scenario.POLICY})).json()
    assert again["created"] is False
    assert (await api.get("/api/v1/policies/lumen")).json()["document"] == scenario.POLICY
    assert [p["version"] for p in (await api.get("/api/v1/policies")).json()] == [1]

    check = await api.get("/api/v1/releases/lumen@1.1.0/check", params={"stage": "stable"})
    verdict = check.json()
    assert verdict["ok"] is False
    failing = {r["rule"] for r in verdict["rules"] if not r["passed"]}
    assert any("approval" in rule for rule in failing)

    for user in ("alice", "bob"):
        r = await api.post(
            "/api/v1/releases/lumen@1.1.0/approve",
            json={"stage": "stable", "comment": "looks good"},
            headers=lumen.auth(user),
        )
        assert r.status_code == 200, r.text
        assert r.json()["recorded"] is True
    approvals = (await api.get("/api/v1/releases/lumen@1.1.0/approvals")).json()
    assert [(a["actor"], a["decision"]) for a in approvals] == [
        ("alice", "approve"),
        ("bob", "approve"),
    ]
    again = await api.post(
        "/api/v1/releases/lumen@1.1.0/approve", json={"stage": "stable"}, headers=lumen.auth("bob")
    )
    assert again.status_code == 409, again.text
    assert "bob already approved lumen@1.1.0 for stable" in again.json()["error"]["message"]
    verdict = (
        await api.get("/api/v1/releases/lumen@1.1.0/check", params={"stage": "stable"})
    ).json()
    failing = {r["rule"] for r in verdict["rules"] if not r["passed"]}
    assert not any("approval" in rule for rule in failing)


async def test_four_eyes_roles_and_rejections(api: httpx.AsyncClient, lumen: Lumen) -> None:
    body = {"stage": "production", "comment": ""}
    own = await api.post(
        "/api/v1/releases/lumen@1.1.0/approve", json=body, headers=lumen.auth("carol")
    )
    assert own.status_code == 403
    assert own.json()["error"]["code"] == "forbidden"
    viewer = await api.post(
        "/api/v1/releases/lumen@1.1.0/approve", json=body, headers=lumen.auth("vic")
    )
    assert viewer.status_code == 403
    assert "viewer" in viewer.json()["error"]["message"]
    no_reason = await api.post(
        "/api/v1/releases/lumen@1.1.0/reject", json=body, headers=lumen.auth("bob")
    )
    assert no_reason.status_code == 400
    assert no_reason.json()["error"]["hint"]
    rejected = await api.post(
        "/api/v1/releases/lumen@1.1.0/reject",
        json={"stage": "production", "comment": "answers are too long"},
        headers=lumen.auth("bob"),
    )
    assert rejected.json()["decision"] == "reject"
    policy = await api.put(
        "/api/v1/policies/lumen", json={"document": scenario.POLICY}, headers=lumen.auth("olga")
    )
    assert policy.status_code == 403


async def test_evaluations_run_list_and_show(api: httpx.AsyncClient) -> None:
    r = await api.post(
        "/api/v1/releases/lumen@1.1.0/evaluations",
        json={"suite": "quality", "baseline": "lumen@1.0.0"},
    )
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["suite"] == "quality"
    assert run["baseline"] == "lumen@1.0.0"
    assert run["pass_rate"] > run["baseline_pass_rate"]  # v1.1.0 knows the new lamp
    assert len(run["record"]["cases"]) == run["cases"]
    listed = (await api.get("/api/v1/releases/lumen@1.1.0/evaluations")).json()
    assert [(e["id"], e["baseline"]) for e in listed] == [(run["id"], "lumen@1.0.0")]
    shown = (await api.get(f"/api/v1/evaluations/{run['id']}")).json()
    assert shown["record"]["summary"]["cases"] == run["cases"]
    inline = await api.post(
        "/api/v1/releases/lumen@1.0.0/evaluations",
        json={"suite": "name: tiny\ncases:\n  - {id: a, prompt: Hi, checks: [{max_chars: 900}]}\n"},
    )
    assert inline.status_code == 200, inline.text
    assert inline.json()["suite"] == "tiny"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"suite": "nonsense"}, "invalid_input"),
        ({"suite": "quality", "baseline": "lumen@1.1.0"}, "invalid_input"),
        ({"suite": "quality", "baseline": "lumen@7.0.0"}, "not_found"),
        ({"suite": "quality", "confidence": 2}, "invalid_input"),
        ({"suite": "quality", "surprise": 1}, "invalid_input"),
    ],
)
async def test_evaluation_errors(
    api: httpx.AsyncClient, body: dict[str, object], code: str
) -> None:
    r = await api.post("/api/v1/releases/lumen@1.1.0/evaluations", json=body)
    assert r.json()["error"]["code"] == code
    assert r.status_code in (400, 404)


async def test_signatures_keys_and_notes(api: httpx.AsyncClient) -> None:
    sigs = (await api.get("/api/v1/releases/lumen@1.1.0/signatures")).json()
    assert sigs == {"ref": "lumen@1.1.0", "signed": False, "valid": False, "signatures": []}
    assert (await api.get("/api/v1/keys")).json() == []
    notes = await api.get("/api/v1/releases/lumen@1.1.0/notes")
    assert notes.headers["content-type"].startswith("text/plain")
    assert "Knows the new Lumen lamp" in notes.text
    assert "## Approvals" in notes.text
    first = await api.get("/api/v1/releases/lumen@1.0.0/notes")
    assert "First release" in first.text
    missing = await api.get("/api/v1/releases/lumen@4.0.0/notes")
    assert missing.status_code == 404


async def test_tokens_whoami_create_list_revoke(api: httpx.AsyncClient, lumen: Lumen) -> None:
    me = (await api.get("/api/v1/whoami", headers=lumen.auth("olga"))).json()
    assert (me["user"], me["role"]) == ("olga", "operator")
    assert "rollout.rollback" in me["may"]
    issued = await api.post(
        "/api/v1/tokens", json={"user": "dana", "role": "viewer", "expires_in": "1d"}
    )
    assert issued.status_code == 201
    secret = issued.json()["secret"]
    assert secret.startswith("alk_")
    dana = {"Authorization": f"Bearer {secret}"}
    assert (await api.get("/api/v1/whoami", headers=dana)).json()["user"] == "dana"
    all_users = {t["user"] for t in (await api.get("/api/v1/tokens")).json()}
    assert all_users == {"alice", "bob", "carol", "olga", "vic", "dana"}
    own = (await api.get("/api/v1/tokens", headers=dana)).json()
    assert [t["user"] for t in own] == ["dana"]
    assert "secret" not in own[0]
    denied = await api.post("/api/v1/tokens", json={"user": "x", "role": "admin"}, headers=dana)
    assert denied.status_code == 403
    revoked = await api.post(f"/api/v1/tokens/{issued.json()['id']}/revoke", json={"reason": "t"})
    assert revoked.json()["state"] == "revoked"
    after = await api.get("/api/v1/whoami", headers=dana)
    assert after.status_code == 401  # a revoked token no longer says who calls
    assert after.headers["www-authenticate"].startswith("Bearer")
    assert "revoked" in after.json()["error"]["message"]
    bad = await api.post("/api/v1/tokens", json={"user": "x", "role": "king"})
    assert bad.status_code == 400
    bad_duration = await api.post(
        "/api/v1/tokens", json={"user": "x", "role": "viewer", "expires_in": "soon"}
    )
    assert bad_duration.json()["error"]["code"] == "invalid_input"


async def test_requests_without_a_valid_token_are_refused(api: httpx.AsyncClient) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer alk_nope"}):
        r = await api.get("/api/v1/services", headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert set(r.json()["error"]) == {"code", "message", "hint"}


@pytest.mark.parametrize(
    ("method", "url", "status", "code"),
    [
        ("GET", "/api/v1/policies/ghost", 404, "not_found"),
        ("GET", "/api/v1/policies/lumen?version=0", 400, "invalid_input"),
        ("GET", "/api/v1/evaluations/999", 404, "not_found"),
        ("GET", "/api/v1/releases/lumen@1.1.0/check", 400, "invalid_input"),
        ("GET", "/api/v1/releases/lumen@1.1.0/check?stage=Not%20An%20Alias", 400, "invalid_input"),
        ("GET", "/api/v1/releases/ghost@1.0.0/signatures", 404, "not_found"),
        ("GET", "/api/v1/releases/ghost@1.0.0/approvals", 404, "not_found"),
        ("GET", "/api/v1/releases/lumen@1.1.0/evaluations/x", 404, "not_found"),
        ("POST", "/api/v1/tokens/0123456789ab/revoke", 404, "not_found"),
        ("GET", "/api/v1/services/ghost/telemetry", 404, "not_found"),
        ("GET", "/api/v1/services/lumen-support/rollout", 404, "not_found"),
        ("GET", "/api/v1/services/ghost/rollouts", 404, "not_found"),
        ("DELETE", "/api/v1/tokens", 405, "method_not_allowed"),
    ],
)
async def test_error_shapes(
    api: httpx.AsyncClient, method: str, url: str, status: int, code: str
) -> None:
    r = await api.request(method, url, json={} if method == "POST" else None)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code
    assert error["message"]
    assert set(error) == {"code", "message", "hint"}


async def test_audit_verify_checks_checkpoints(api: httpx.AsyncClient, lumen: Lumen) -> None:
    first = (await api.get("/api/v1/audit/events", params={"limit": 1})).json()["events"][0]
    mark = f"{first['seq']}:{first['hash']}"
    held = (await api.get("/api/v1/audit/verify", params={"expect": mark})).json()
    assert held["ok"] is True and held["head_seq"] > first["seq"]
    wrong = f"{first['seq']}:{'0' * 64}"
    broken = (await api.get("/api/v1/audit/verify", params={"expect": wrong})).json()
    assert broken["ok"] is False and broken["problem"]["kind"] == "rewritten"
    bad = await api.get("/api/v1/audit/verify", params={"expect": "one:two"})
    assert bad.status_code == 400 and "SEQ:HASH" in bad.json()["error"]["message"]
