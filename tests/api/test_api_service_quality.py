"""A service's default quality settings over the real API: set, read, clear; a wrong field is
a 400 naming it; a viewer is refused; a change is an audit event."""

from __future__ import annotations

import httpx
import pytest
from api_support import Lumen

from airlock.services.audit_views import AuditLog, EventFilter

pytestmark = pytest.mark.anyio
SERVICE = "lumen-support"
URL = f"/api/v1/services/{SERVICE}/quality"
REFUSALS = {"sample": 0.1, "scorers": {"no_refusal": {"check": {"refusal": False}}}}


async def test_set_read_and_clear_a_service_s_quality_defaults(
    api: httpx.AsyncClient, lumen: Lumen
) -> None:
    empty = await api.get(URL)
    assert empty.status_code == 200 and empty.json()["quality"] is None

    put = await api.put(
        URL, json={"quality": REFUSALS, "reason": "score refusals"}, headers=lumen.auth("olga")
    )
    assert put.status_code == 200, put.text
    body = put.json()
    assert body["updated_by"] == "olga"
    assert body["quality"]["scorers"]["no_refusal"]["check"]["refusal"] is False
    assert (await api.get(URL)).json()["quality"] == body["quality"]

    cleared = await api.put(URL, json={"quality": None}, headers=lumen.auth("olga"))
    assert cleared.status_code == 200 and cleared.json()["quality"] is None
    events = AuditLog(lumen.ws).events(EventFilter(action="service.quality"))
    assert [(e.actor, e.details["reason"]) for e in events] == [
        ("olga", "score refusals"),
        ("olga", ""),
    ]


async def test_bad_settings_get_a_400_naming_the_field(
    api: httpx.AsyncClient, lumen: Lumen
) -> None:
    bad = await api.put(URL, json={"quality": {"sample": 3, "scorers": REFUSALS["scorers"]}})
    assert bad.status_code == 400
    assert "quality.sample" in bad.json()["error"]["message"]
    pinned = await api.put(URL, json={"quality": {"judge": {"release": "lumen@stable"}}})
    assert (
        pinned.status_code == 400 and "quality.judge.release" in pinned.json()["error"]["message"]
    )
    missing = await api.put(URL, json={"quality": {"judge": {"release": "judge@1.0.0"}}})
    assert (
        missing.status_code == 404 and "quality.judge.release" in missing.json()["error"]["message"]
    )
    viewer = await api.put(URL, json={"quality": REFUSALS}, headers=lumen.auth("vic"))
    assert viewer.status_code == 403
    nope = await api.get("/api/v1/services/nope/quality")
    assert nope.status_code == 404
    assert (await api.get(URL)).json()["quality"] is None
