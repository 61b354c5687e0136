"""Services, plan history and telemetry series over the real API."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from api_support import Lumen

from airlock.core.telemetry import TelemetryRecord
from airlock.core.traffic import TrafficPlan, WeightedRelease
from airlock.core.window import LATENCY_HISTOGRAM_SIZE, latency_bucket
from airlock.services.identity import Actor
from airlock.services.serving import Serving

pytestmark = pytest.mark.anyio
SERVICE = "lumen-support"


def record(
    release: str, start: datetime, *, requests: int, errors: int, ms: float
) -> TelemetryRecord:
    hist = [0] * LATENCY_HISTOGRAM_SIZE
    hist[latency_bucket(ms)] = requests - errors
    return TelemetryRecord(
        service=SERVICE,
        release=release,
        traffic="live",
        window_start=start,
        window_end=start + timedelta(seconds=1),
        requests=requests,
        errors=errors,
        guardrail_flags=1,
        feedback_sum=3.0,
        feedback_count=4,
        latency_histogram=tuple(hist),
    )


async def test_services_show_plan_and_history(api: httpx.AsyncClient, lumen: Lumen) -> None:
    serving = Serving(lumen.ws)
    plan = serving.plan(SERVICE)
    canary = TrafficPlan(
        SERVICE, plan.stable, (WeightedRelease("lumen@1.1.0", 500),), generation=plan.generation + 1
    )
    serving.set_plan(canary, actor=Actor("olga", "operator"), reason="canary by hand")
    listed = (await api.get("/api/v1/services")).json()
    assert [s["name"] for s in listed] == [SERVICE]
    shown = (await api.get(f"/api/v1/services/{SERVICE}")).json()
    assert shown["stable"] == "lumen@1.0.0"
    assert shown["plan"]["candidates"] == [
        {"release": "lumen@1.1.0", "weight_bp": 500, "weight_pct": 5.0}
    ]
    assert shown["plan"]["stable_pct"] == 95.0
    assert shown["rollout"] is None
    history = (await api.get(f"/api/v1/services/{SERVICE}/plans")).json()
    assert [(h["generation"], h["reason"]) for h in history] == [
        (0, "launch"),
        (1, "canary by hand"),
    ]
    missing = await api.get("/api/v1/services/ghost")
    assert missing.status_code == 404
    assert "airlock service ls" in missing.json()["error"]["hint"]


async def test_telemetry_series_per_release(api: httpx.AsyncClient, lumen: Lumen) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = now - timedelta(seconds=30)
    records = [
        record("lumen@1.0.0", t0, requests=10, errors=0, ms=20),
        record("lumen@1.0.0", t0 + timedelta(seconds=6), requests=10, errors=1, ms=30),
        record("lumen@1.1.0", t0 + timedelta(seconds=1), requests=4, errors=2, ms=80),
    ]
    Serving(lumen.ws).flush(records, gateway="test")
    params = {"since": t0.isoformat(), "until": (t0 + timedelta(seconds=20)).isoformat(), "step": 5}
    body = (await api.get(f"/api/v1/services/{SERVICE}/telemetry", params=params)).json()
    assert body["step_seconds"] == 5
    by_release = {r["release"]: r for r in body["releases"]}
    assert set(by_release) == {"lumen@1.0.0", "lumen@1.1.0"}
    stable = by_release["lumen@1.0.0"]
    assert [p["requests"] for p in stable["points"]] == [10, 10, 0, 0]
    assert stable["totals"]["requests"] == 20
    assert stable["totals"]["error_rate"] == pytest.approx(0.05)
    assert stable["totals"]["feedback_mean"] == pytest.approx(0.75)
    assert stable["points"][2]["p95_ms"] is None
    candidate = by_release["lumen@1.1.0"]["totals"]
    assert candidate["error_rate"] == 0.5
    assert candidate["p50_ms"] > stable["totals"]["p50_ms"]
    only = (
        await api.get(
            f"/api/v1/services/{SERVICE}/telemetry", params={**params, "release": "lumen@1.1.0"}
        )
    ).json()
    assert [r["release"] for r in only["releases"]] == ["lumen@1.1.0"]
    per_release = (await api.get("/api/v1/releases/lumen@1.1.0/telemetry", params=params)).json()
    assert [t["service"] for t in per_release] == [SERVICE]


@pytest.mark.parametrize(
    "params",
    [
        {"step": 0.1},
        {"since": "2030-01-01T00:00:00Z", "until": "2029-01-01T00:00:00Z"},
        {"since": "yesterday"},
        {"since": "2000-01-01T00:00:00Z", "step": 1},  # too many points
    ],
)
async def test_telemetry_rejects_bad_windows(
    api: httpx.AsyncClient, params: dict[str, object]
) -> None:
    r = await api.get(f"/api/v1/services/{SERVICE}/telemetry", params=params)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_input"
