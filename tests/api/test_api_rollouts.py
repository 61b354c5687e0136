"""Rollouts over the real API: start, status, pause, resume, promote, roll back, history."""

from __future__ import annotations

import httpx
import pytest
from api_support import Lumen

from airlock.demo import scenario

pytestmark = pytest.mark.anyio
SERVICE = scenario.SERVICE
CANARY = {
    "strategy": "canary",
    "steps": [{"weight_pct": 10, "bake_seconds": 60}, {"weight_pct": 100, "bake_seconds": 60}],
}


async def start(api: httpx.AsyncClient, lumen: Lumen, **extra: object) -> httpx.Response:
    body = {"candidate": "lumen@1.1.0", "spec": CANARY, "reason": "new lamp", **extra}
    return await api.post(
        f"/api/v1/services/{SERVICE}/rollouts", json=body, headers=lumen.auth("olga")
    )


async def test_start_status_pause_resume_promote(api: httpx.AsyncClient, lumen: Lumen) -> None:
    r = await start(api, lumen)
    assert r.status_code == 201, r.text
    started = r.json()
    assert started["action"] == "start"
    assert started["rollout"]["phase"] == "progressing"
    assert started["rollout"]["candidate_weight_pct"] == 10
    service = (await api.get(f"/api/v1/services/{SERVICE}")).json()
    assert service["rollout"]["id"] == started["rollout"]["id"]
    assert service["plan"]["candidates"][0]["weight_pct"] == 10

    olga = lumen.auth("olga")
    paused = await api.post(f"/api/v1/services/{SERVICE}/rollout/pause", json={}, headers=olga)
    assert paused.json()["rollout"]["phase"] == "paused"
    again = await api.post(f"/api/v1/services/{SERVICE}/rollout/pause", json={}, headers=olga)
    assert again.status_code == 409
    resumed = await api.post(f"/api/v1/services/{SERVICE}/rollout/resume", json={}, headers=olga)
    assert resumed.json()["rollout"]["phase"] == "progressing"
    promoted = await api.post(
        f"/api/v1/services/{SERVICE}/rollout/promote", json={"reason": "looks great"}, headers=olga
    )
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["rollout"]["phase"] == "promoted"
    shown = (await api.get(f"/api/v1/services/{SERVICE}")).json()
    assert shown["stable"] == "lumen@1.1.0"
    assert shown["rollout"] is None
    aliases = (await api.get("/api/v1/models/lumen/aliases")).json()
    assert {a["alias"]: a["version"] for a in aliases}["stable"] == "1.1.0"

    status = (await api.get(f"/api/v1/services/{SERVICE}/rollout")).json()
    assert status["phase"] == "promoted"
    detail = (await api.get(f"/api/v1/rollouts/{status['id']}")).json()
    assert [h["action"] for h in detail["history"]] == ["start", "pause", "resume", "promote"]
    assert [r["id"] for r in (await api.get(f"/api/v1/services/{SERVICE}/rollouts")).json()] == [
        status["id"]
    ]
    assert len((await api.get("/api/v1/rollouts")).json()) == 1
    assert (await api.get("/api/v1/drills")).json() == []


async def test_rollback_and_error_shapes(api: httpx.AsyncClient, lumen: Lumen) -> None:
    assert (await start(api, lumen)).status_code == 201
    twice = await start(api, lumen)
    assert twice.status_code == 409
    assert twice.json()["error"]["code"] == "conflict"
    olga = lumen.auth("olga")
    url = f"/api/v1/services/{SERVICE}/rollout/rollback"
    no_reason = await api.post(url, json={}, headers=olga)
    assert no_reason.status_code == 400
    viewer = await api.post(url, json={"reason": "x"}, headers=lumen.auth("vic"))
    assert viewer.status_code == 403
    rolled = await api.post(url, json={"reason": "users complain"}, headers=olga)
    assert rolled.json()["rollout"]["phase"] == "rolled_back"
    service = (await api.get(f"/api/v1/services/{SERVICE}")).json()
    assert service["stable"] == "lumen@1.0.0"
    assert service["plan"]["candidates"] == []
    nothing = await api.post(url, json={"reason": "again"}, headers=olga)
    assert nothing.status_code == 404
    bad_verb = await api.post(f"/api/v1/services/{SERVICE}/rollout/explode", json={}, headers=olga)
    assert bad_verb.status_code == 400
    bad_spec = await start(api, lumen, spec={"strategy": "canary", "steps": []})
    assert bad_spec.status_code == 400
    assert "steps" in bad_spec.json()["error"]["message"]
    unknown = await api.post(
        "/api/v1/services/ghost/rollouts",
        json={"candidate": "lumen@1.1.0", "spec": CANARY},
        headers=olga,
    )
    assert unknown.status_code == 404
    missing = await api.get("/api/v1/rollouts/999")
    assert missing.status_code == 404


async def test_the_policy_gates_a_rollout(api: httpx.AsyncClient, lumen: Lumen) -> None:
    await api.put("/api/v1/policies/lumen", json={"document": scenario.POLICY})
    blocked = await start(api, lumen)
    assert blocked.status_code == 422
    assert blocked.json()["error"]["code"] == "policy_violation"
    assert "airlock check" in blocked.json()["error"]["hint"]
    for user in ("alice", "bob"):
        await api.post(
            "/api/v1/releases/lumen@1.1.0/approve",
            json={"stage": "stable"},
            headers=lumen.auth(user),
        )
    still = await start(api, lumen)
    assert "safety" in still.json()["error"]["message"]  # approved, but never evaluated
    await api.post("/api/v1/releases/lumen@1.1.0/evaluations", json={"suite": "safety"})
    assert (await start(api, lumen)).status_code == 201


async def test_drills_need_the_server_and_a_valid_fault(
    api: httpx.AsyncClient, lumen: Lumen
) -> None:
    url = f"/api/v1/services/{SERVICE}/drills"
    no_server = await api.post(url, json={"faults": ["errors=0.5"]})
    assert no_server.status_code == 503
    assert "airlock drill" in no_server.json()["error"]["hint"]
    bad = await api.post(url, json={"faults": ["explode=1"]})
    assert bad.status_code == 400
    author = await api.post(url, json={"faults": ["errors=0.5"]}, headers=lumen.auth("carol"))
    assert author.status_code in (403, 503)
