"""The dashboard's new pages over HTTP (``airlock serve`` on a loopback port): the rollout page
and its chart ranges, the keyset list of rollouts, health figures on the overview, where a
release serves; and bad input answered with a page naming what is wrong, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from airlock.core.telemetry import TelemetryRecord
from airlock.demo import Demo, prepare, scenario
from airlock.serve import AirlockApp, RunningServer, ServeSettings
from airlock.services.rollouts import Rollouts
from airlock.services.serving import Serving

SETTINGS = ServeSettings(port=0, sync_seconds=0.5)
SLOW = {
    "strategy": "canary",
    "steps": [{"weight_pct": 10, "bake_seconds": 600}, {"weight_pct": 100, "bake_seconds": 600}],
    "analysis": {"max_step_seconds": 900},
}


@pytest.fixture
def signed_in(tmp_path: Path) -> Iterator[tuple[httpx.Client, Demo]]:
    demo = prepare(tmp_path / "demo")
    running = RunningServer(AirlockApp(demo.ws, SETTINGS)).start()
    try:
        running.wait_ready()
        with httpx.Client(base_url=running.url) as http:
            http.post("/login", data={"token": demo.secrets["olga"], "next": "/"})
            yield http, demo
    finally:
        running.stop()
        demo.ws.close()


def test_rollout_pages_ranges_and_health_over_http(signed_in: tuple[httpx.Client, Demo]) -> None:
    http, demo = signed_in
    olga = demo.people["olga"]
    view = Rollouts(demo.ws).start(scenario.SERVICE, "lumen@1.1.0", SLOW, actor=olga).rollout
    now = datetime.now(UTC).replace(microsecond=0)
    Serving(demo.ws).flush(
        [
            TelemetryRecord(
                scenario.SERVICE, release, "live", now - timedelta(seconds=s),
                now - timedelta(seconds=s - 1), requests=50, errors=errors,
            )
            for s in range(1, 30)
            for release, errors in (("lumen@1.0.0", 0), ("lumen@1.1.0", 1))
        ],
        gateway="test",
    )  # fmt: skip

    page = http.get(f"/rollouts/{view.id}")
    assert page.status_code == 200, page.text
    for words in ("Rollout #1", "lumen@1.1.0", "10 min 00 s bake", "left", "Decisions", "start"):
        assert words in page.text
    assert 'data-chart-key="error_rate"' in page.text and 'class="line candidate"' in page.text
    day = http.get(f"/rollouts/{view.id}", params={"range": "24h"})
    assert day.status_code == 200 and "one point per 12 min 00 s" in day.text
    bad = http.get(f"/rollouts/{view.id}", params={"range": "7d"})
    assert bad.status_code == 400 and "unknown chart range" in bad.text
    assert http.get("/rollouts/abc").status_code == 400
    missing = http.get("/rollouts/99")
    assert missing.status_code == 404 and "no rollout #99" in missing.text

    listing = http.get("/rollouts")
    assert listing.status_code == 200 and f'href="/rollouts/{view.id}"' in listing.text
    assert http.get("/rollouts", params={"before": "x"}).status_code == 400
    assert f'href="/rollouts/{view.id}"' in http.get(f"/services/{scenario.SERVICE}").text

    home = http.get("/")
    assert home.status_code == 200
    assert f'data-health="{scenario.SERVICE}"' in home.text
    assert "2.00 %" in home.text  # the candidate's 1 error in 50

    release = http.get("/releases/lumen@1.1.0")
    assert release.status_code == 200 and 'id="serving"' in release.text
    assert "10 % of users" in release.text

    hour = http.get(f"/services/{scenario.SERVICE}/live.json", params={"range": "1h"}).json()
    assert hour["step_seconds"] == 30
    assert all(len(s["points"]) <= 120 for s in hour["series"]) and hour["series"]
    wrong = http.get(f"/services/{scenario.SERVICE}/live.json", params={"range": "2h"})
    assert wrong.status_code == 400 and "unknown chart range" in wrong.text
