"""The dashboard in headless Chromium (Debian's, driven by Playwright): sign in, watch a
rollout in flight, take a screenshot, and roll it back with a click; read the overview's health
figures and a rollout's own page (bake time left, decisions, charts with data points)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from airlock.demo import Demo, prepare, scenario
from airlock.demo.traffic import UserTraffic
from airlock.serve import AirlockApp, RunningServer, ServeSettings
from airlock.services.controller import ControllerSettings
from airlock.services.rollouts import Rollouts

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SLOW_CANARY = {
    "strategy": "canary",
    "steps": [{"weight_pct": 30, "bake_seconds": 600}, {"weight_pct": 100, "bake_seconds": 600}],
    "analysis": {"alpha": 0.001, "min_requests": 50, "max_step_seconds": 1200},
}

if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
    if os.environ.get("CI"):
        pytest.fail("Debian's chromium is missing: .ci/run installs it (apt-get install chromium)")
    pytest.skip(
        "no /usr/bin/chromium here (install it: apt-get install -y chromium)",
        allow_module_level=True,
    )

sync_api = pytest.importorskip("playwright.sync_api")


@dataclass
class Stage:
    demo: Demo
    server: RunningServer
    traffic: UserTraffic

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture
def stage(tmp_path: Path) -> Iterator[Stage]:
    """airlock serve on a loopback port, customers sending requests, a canary of 1.1.0 in flight."""
    demo = prepare(tmp_path / "demo")
    settings = ServeSettings(
        port=0, sync_seconds=0.5, controller=ControllerSettings(tick_seconds=0.5)
    )
    server = RunningServer(AirlockApp(demo.ws, settings)).start()
    traffic = UserTraffic(server.url, rps=40).start()
    try:
        server.wait_ready()
        Rollouts(demo.ws).start(
            scenario.SERVICE,
            "lumen@1.1.0",
            SLOW_CANARY,
            actor=demo.people["olga"],
            reason="the new lamp",
        )
        yield Stage(demo, server, traffic)
    finally:
        traffic.stop()
        server.stop()
        demo.ws.close()


@pytest.fixture
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def sign_in(page: object, url: str, token: str) -> None:
    page.goto(f"{url}/services/{scenario.SERVICE}")  # type: ignore[attr-defined]
    page.fill("#token", token)  # type: ignore[attr-defined]
    page.click("button[type=submit]")  # type: ignore[attr-defined]
    page.wait_for_selector("#rollout")  # type: ignore[attr-defined]


def test_watch_a_rollout_and_roll_it_back_with_a_click(
    stage: Stage, browser: object, tmp_path: Path
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    sign_in(page, stage.url, stage.demo.secrets["olga"])
    assert "lumen@1.1.0" in page.inner_text("#rollout")
    # the live parts: the split bar, a chart line per release, a verdict from the controller
    page.wait_for_selector(".split .seg.candidate")
    page.wait_for_selector("[data-chart=error_rate] path.line", state="attached", timeout=15_000)
    page.wait_for_selector("#verdict-body .badge", timeout=15_000)
    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 20_000

    page.fill("#reason", "customers report odd answers")
    page.click("#rollback")
    page.wait_for_selector(".flash.ok")
    assert "rolled_back" in page.inner_text(".flash.ok")

    token = stage.demo.secrets["maya"]
    with httpx.Client(base_url=stage.url, headers={"Authorization": f"Bearer {token}"}) as api:
        rollout = api.get(f"/api/v1/services/{scenario.SERVICE}/rollout").json()
        assert rollout["phase"] == "rolled_back"
        assert rollout["reason"] == "customers report odd answers"
        service = api.get(f"/api/v1/services/{scenario.SERVICE}").json()
        assert service["stable"] == "lumen@1.0.0"
        assert service["plan"]["candidates"] == []
        events = api.get("/api/v1/audit/events", params={"action": "rollout.rollback"}).json()
        assert [e["actor"] for e in events["events"]] == ["olga"]
        for user in range(20):  # every user, also those the canary had, is on stable again
            body = scenario.user_request(scenario.random.Random(user), user)
            answer = api.post("/v1/chat/completions", json=body)
            assert answer.status_code == 200
            assert answer.headers["x-airlock-release"] == "lumen@1.0.0"


def test_a_viewer_sees_the_rollout_but_cannot_steer_it(stage: Stage, browser: object) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    sign_in(page, stage.url, stage.demo.secrets["carol"])  # an author: no rollout role
    assert page.is_disabled("#rollback")
    assert "can watch but not steer" in page.inner_text("#rollout")
    page.goto(f"{stage.url}/releases/lumen@1.1.0")
    assert "integrity verified" in page.inner_text("#integrity")
    assert page.locator("svg.lineage .node.dataset").count() >= 1
    page.goto(f"{stage.url}/audit")
    assert "chain verified" in page.inner_text("#chain-status")


def test_the_rollout_page_and_the_overview_health_figures(stage: Stage, browser: object) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})  # type: ignore[attr-defined]
    sign_in(page, stage.url, stage.demo.secrets["olga"])
    rollout = Rollouts(stage.demo.ws).active(scenario.SERVICE)
    assert rollout is not None
    # the overview: requests/s, error % and p95 per release; the page refreshes them itself
    page.goto(f"{stage.url}/")
    row = page.locator(f"[data-health={scenario.SERVICE}] tr[data-release='lumen@1.0.0']")
    page.wait_for_function(
        """(sel) => { const c = document.querySelector(sel); return c && +c.textContent > 0; }""",
        arg=f"[data-health={scenario.SERVICE}] tr[data-release='lumen@1.0.0'] .rps",
        timeout=20_000,
    )
    assert float(row.locator(".rps").inner_text()) > 0
    assert row.locator(".err").inner_text().endswith("%")
    assert row.locator(".p95").inner_text().endswith(" ms")
    candidate = page.locator(f"[data-health={scenario.SERVICE}] tr[data-release='lumen@1.1.0']")
    assert "candidate 30 %" in candidate.inner_text()

    # the rollout page: steps with bake time left, the decisions, charts with data points
    page.click(f"a[href='/rollouts/{rollout.id}']")
    page.wait_for_selector("#rollout-steps li.current .left")
    assert "left" in page.inner_text("#rollout-steps li.current")
    assert "start" in page.inner_text("#decisions")
    line = page.locator("[data-chart-key=error_rate] path.line.stable")
    assert int(line.get_attribute("data-points") or 0) > 0
    assert page.locator("[data-chart-key=requests] svg text.tick").count() >= 2
    page.click("#ranges a:text('1h')")
    page.wait_for_url("**range=1h")
    assert "one point per 30 s" in page.inner_text("main")
    points = page.locator("[data-chart-key=requests] path.line.stable").get_attribute("data-points")
    assert int(points or 0) > 0
    page.goto(f"{stage.url}/rollouts")
    assert page.locator(f"#rollout-list tr[data-rollout='{rollout.id}']").count() == 1
