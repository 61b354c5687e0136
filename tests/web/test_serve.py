"""`airlock serve` on a loopback port: routing, readiness, the dashboard's sign-in and forms,
and a graceful shutdown that lets requests finish and flushes their telemetry."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from airlock.demo import Demo, prepare, scenario
from airlock.serve import AirlockApp, RunningServer, ServeSettings
from airlock.services.registry import Registry
from airlock.services.rollouts import Rollouts
from airlock.services.serving import Serving
from airlock.web.app import COOKIE

SETTINGS = ServeSettings(port=0, sync_seconds=0.5, graceful_seconds=5)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    staged = prepare(tmp_path / "demo")
    try:
        yield staged
    finally:
        staged.ws.close()


@pytest.fixture
def server(demo: Demo) -> Iterator[RunningServer]:
    running = RunningServer(AirlockApp(demo.ws, SETTINGS)).start()
    try:
        running.wait_ready()
        yield running
    finally:
        running.stop()


def test_one_port_serves_gateway_api_dashboard_and_health(
    server: RunningServer, demo: Demo
) -> None:
    with httpx.Client(base_url=server.url) as http:
        ready = http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"]["plans"] == {"ok": True, "services": 1, "lagging": {}}
        assert ready.json()["checks"]["catalog"]["ok"] is True
        assert http.get("/healthz").json() == {"status": "ok"}
        models = http.get("/v1/models").json()
        assert scenario.SERVICE in {m["id"] for m in models["data"]}
        assert "airlock_gateway" in http.get("/metrics").text
        assert http.get("/api/v1/services").status_code == 401
        token = {"Authorization": f"Bearer {demo.secrets['bob']}"}
        assert http.get("/api/v1/services", headers=token).json()[0]["stable"] == "lumen@1.0.0"
        assert "/api/v1/rollouts" in http.get("/openapi.json").json()["paths"]
        page = http.get("/", follow_redirects=False)
        assert (page.status_code, page.headers["location"]) == (303, "/login?next=/")


def test_sign_in_forms_and_csrf(server: RunningServer, demo: Demo) -> None:
    with httpx.Client(base_url=server.url) as http:
        bad = http.post("/login", data={"token": "alk_nope", "next": "/"})
        assert bad.status_code == 403
        assert "not an Airlock API token" in bad.text
        elsewhere = http.post(
            "/login",
            data={"token": demo.secrets["olga"], "next": "//evil.example/x"},
            follow_redirects=False,
        )
        assert elsewhere.headers["location"] == "/"  # no open redirect
        cookie = elsewhere.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
        assert http.cookies.get(COOKIE) == demo.secrets["olga"]
        Rollouts(demo.ws).start(
            scenario.SERVICE,
            "lumen@1.1.0",
            {"strategy": "canary", "steps": [{"weight_pct": 10, "bake_seconds": 600}],
             "analysis": {"max_step_seconds": 900}},
            actor=demo.people["olga"],
        )  # fmt: skip
        page = http.get(f"/services/{scenario.SERVICE}")
        assert page.status_code == 200
        assert "Rollout #1" in page.text
        live = http.get(f"/services/{scenario.SERVICE}/live.json").json()
        assert live["rollout"]["candidate"] == "lumen@1.1.0"
        assert {s["role"] for s in live["split"]} == {"stable", "candidate"}
        forged = http.post(
            f"/services/{scenario.SERVICE}/rollout/rollback",
            data={"reason": "x", "csrf": "forged"},
        )
        assert forged.status_code == 403
        assert Rollouts(demo.ws).active(scenario.SERVICE) is not None
        for path in ("/models/lumen", "/releases/lumen@1.1.0", "/audit?action=rollout."):
            assert http.get(path).status_code == 200, path
        missing = http.get("/releases/lumen@9.9.9")
        assert missing.status_code == 404
        assert "versions of lumen: 1.0.0, 1.1.0, 1.2.0" in missing.text  # the hint
        http.post("/logout")
        assert http.get("/", follow_redirects=False).status_code == 303


def test_graceful_shutdown_finishes_requests_and_flushes_telemetry(demo: Demo) -> None:
    slow = dataclasses.replace(
        scenario.RELEASES[0], version="1.0.1-slow", faults={"latency_ms": 1500.0}
    )
    Registry(demo.ws).push(
        scenario.build_folder(demo.folder / "slow", slow),
        name=scenario.MODEL,
        version=slow.version,
        actor=demo.people["carol"],
    )
    Serving(demo.ws).create("slow", "lumen@1.0.1-slow", actor=demo.people["maya"], reason="t")
    running = RunningServer(AirlockApp(demo.ws, SETTINGS)).start()
    running.wait_ready()
    answers: list[httpx.Response] = []

    def ask() -> None:
        body = {"model": "slow", "messages": [{"role": "user", "content": "Hi"}], "user": "u1"}
        answers.append(httpx.post(f"{running.url}/v1/chat/completions", json=body, timeout=30))

    asking = threading.Thread(target=ask)
    asking.start()
    deadline = time.monotonic() + 10  # until the request is in flight, held by the slow release
    while "airlock_gateway_requests_in_flight 1.0" not in httpx.get(f"{running.url}/metrics").text:
        assert time.monotonic() < deadline, "the request never reached the gateway"
        time.sleep(0.02)
    running.stop()
    asking.join(30)
    assert [a.status_code for a in answers] == [200]
    assert answers[0].headers["x-airlock-release"] == "lumen@1.0.1-slow"
    flushed = Serving(demo.ws).telemetry("slow")
    assert flushed["lumen@1.0.1-slow"].requests == 1  # written at shutdown, not lost


def test_a_drill_started_over_the_api_is_rolled_back_and_recorded(
    server: RunningServer, demo: Demo
) -> None:
    maya = {"Authorization": f"Bearer {demo.secrets['maya']}"}
    spec = {
        "strategy": "canary",
        "steps": [{"weight_pct": 30, "bake_seconds": 30}],
        "analysis": {"min_requests": 50, "max_step_seconds": 60},
    }
    with httpx.Client(base_url=server.url, headers=maya) as api:
        started = api.post(
            f"/api/v1/services/{scenario.SERVICE}/drills",
            json={"faults": ["errors=0.5"], "rps": 80, "spec": spec},
        )
        assert started.status_code == 202, started.text
        assert started.json()["faults"] == {"error_rate": 0.5}
        deadline = time.monotonic() + 90
        drills: list[dict[str, object]] = []
        while not drills and time.monotonic() < deadline:
            time.sleep(0.5)
            drills = api.get("/api/v1/drills").json()
        assert len(drills) == 1
        assert drills[0]["outcome"] == "detected"
        assert drills[0]["release"] == "lumen@1.0.0-drill.1"
        rollout = api.get(f"/api/v1/services/{scenario.SERVICE}/rollout").json()
        assert (rollout["kind"], rollout["phase"]) == ("drill", "rolled_back")


def test_the_audit_page_shows_a_tampered_chain(server: RunningServer, demo: Demo) -> None:
    from sqlalchemy import text

    with httpx.Client(base_url=server.url) as http:
        http.post("/login", data={"token": demo.secrets["bob"], "next": "/"})
        assert "chain verified" in http.get("/audit").text
        with demo.ws.db.write() as conn:
            conn.execute(text("UPDATE events SET actor = 'mallory' WHERE seq = 3"))
        page = http.get("/audit").text
        assert "chain BROKEN at event 3" in page
        assert "airlock audit verify" in page
