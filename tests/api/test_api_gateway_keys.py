"""Gateway keys over the real REST API (SQLite and PostgreSQL): operators create and revoke,
the secret is returned once, viewers are refused, bad input is a 4xx naming the field."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from api_support import Lumen
from sqlalchemy import select

from airlock.catalog.schema import gateway_keys

pytestmark = pytest.mark.anyio
SERVICE = "lumen-support"


async def test_create_list_show_revoke(api: httpx.AsyncClient, lumen: Lumen) -> None:
    created = await api.post(
        "/api/v1/gateway-keys",
        json={"service": SERVICE, "name": "web", "rpm": 60, "can_pin": True, "expires": "30d"},
        headers=lumen.auth("olga"),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith(f"ak-{body['id']}-")
    assert body["scopes"] == ["can_pin", "can_feedback"] and body["rpm"] == 60
    assert body["created_by"] == "olga" and body["expires_at"] is not None
    with lumen.ws.db.read() as conn:
        [stored] = conn.execute(select(gateway_keys.c.secret_hash)).scalars().all()
    assert stored == hashlib.sha256(body["secret"].encode()).hexdigest()

    listed = (await api.get("/api/v1/gateway-keys", headers=lumen.auth("vic"))).json()
    assert [k["name"] for k in listed] == ["web"] and "secret" not in listed[0]
    shown = (await api.get(f"/api/v1/gateway-keys/{body['id']}")).json()
    assert shown["state"] == "active"

    refused = await api.post(
        f"/api/v1/gateway-keys/{body['id']}/revoke", json={}, headers=lumen.auth("vic")
    )
    assert refused.status_code == 403
    revoked = await api.post(
        f"/api/v1/gateway-keys/{body['id']}/revoke",
        json={"reason": "leaked"},
        headers=lumen.auth("olga"),
    )
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert (await api.get("/api/v1/gateway-keys")).json() == []
    assert len((await api.get("/api/v1/gateway-keys?all=true")).json()) == 1


async def test_refusals_and_bad_input(api: httpx.AsyncClient, lumen: Lumen) -> None:
    key = {"service": SERVICE, "name": "web"}
    viewer = await api.post("/api/v1/gateway-keys", json=key, headers=lumen.auth("vic"))
    assert viewer.status_code == 403 and "gateway_key.create" in viewer.text
    author = await api.post("/api/v1/gateway-keys", json=key, headers=lumen.auth("carol"))
    assert author.status_code == 403
    assert (await api.post("/api/v1/gateway-keys", json=key)).status_code == 201
    assert (await api.post("/api/v1/gateway-keys", json=key)).status_code == 409
    missing = await api.post("/api/v1/gateway-keys", json={"service": "nope", "name": "x"})
    assert missing.status_code == 404
    for bad in (
        {**key, "name": "Bad Name"},
        {**key, "name": "x", "rpm": 0},
        {**key, "name": "x", "expires": "yesterday"},
        {**key, "name": "x", "can_fly": True},
    ):
        r = await api.post("/api/v1/gateway-keys", json=bad)
        assert r.status_code in (400, 422), (bad, r.status_code, r.text)
    assert (await api.get("/api/v1/gateway-keys/zz")).status_code == 400
    assert (await api.get("/api/v1/gateway-keys/0123456789ab")).status_code == 404


async def test_keys_and_tokens_page_by_key_with_next_links(
    api: httpx.AsyncClient, lumen: Lumen
) -> None:
    for n in range(5):
        made = await api.post("/api/v1/gateway-keys", json={"service": SERVICE, "name": f"k{n}"})
        assert made.status_code == 201, made.text
    revoked = (await api.get("/api/v1/gateway-keys?limit=1")).json()[0]["id"]
    await api.post(f"/api/v1/gateway-keys/{revoked}/revoke", json={"reason": "t"})
    names: list[str] = []
    url: str | None = "/api/v1/gateway-keys?limit=2"
    while url is not None:
        page = await api.get(url)
        assert page.status_code == 200 and len(page.json()) <= 2
        names += [k["name"] for k in page.json()]
        url = page.headers.get("X-Next-Cursor") and page.links["next"]["url"]
    assert names == ["k1", "k2", "k3", "k4"]  # active ones only, in creation order, no gaps
    everything = (await api.get("/api/v1/gateway-keys?all=true&limit=1000")).json()
    assert [k["name"] for k in everything] == ["k0", "k1", "k2", "k3", "k4"]

    for n in range(3):
        made = await api.post("/api/v1/tokens", json={"user": f"u{n}", "role": "viewer"})
        assert made.status_code == 201, made.text
    every = (await api.get("/api/v1/tokens?limit=1000")).json()
    first = await api.get("/api/v1/tokens?limit=2")
    rest = await api.get(f"/api/v1/tokens?limit=1000&cursor={first.headers['X-Next-Cursor']}")
    assert [t["id"] for t in first.json() + rest.json()] == [t["id"] for t in every]
    assert "X-Next-Cursor" not in rest.headers and len(every) >= 3
    bad = await api.get("/api/v1/tokens?cursor=nonsense")
    assert bad.status_code == 400 and "cursor" in bad.text
