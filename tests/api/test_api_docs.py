"""The API page works offline: /docs references only assets this server serves, and the OpenAPI
document declares the bearer-token scheme so the page can authorise."""

from __future__ import annotations

import re

import httpx
import pytest

pytestmark = pytest.mark.anyio


async def test_docs_use_only_local_assets(api: httpx.AsyncClient) -> None:
    page = await api.get("/docs", headers={"Authorization": ""})
    assert page.status_code == 200
    html = page.text
    refs = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    refs += re.findall(r"""url:\s*["']([^"']+)["']""", html)
    assert refs, html
    assert not re.search(r"https?://", html), "the page must not load anything from elsewhere"
    assert "/openapi.json" in refs
    for ref in refs:
        assert ref.startswith("/"), ref
        r = await api.get(ref, headers={"Authorization": ""})
        assert r.status_code == 200, ref
        assert r.content
    bundle = await api.get("/docs/assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.text
    assert (await api.get("/redoc", follow_redirects=False)).headers["location"] == "/docs"


async def test_openapi_declares_the_bearer_scheme(api: httpx.AsyncClient) -> None:
    doc = (await api.get("/openapi.json")).json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["bearer"]["type"] == "http" and schemes["bearer"]["scheme"] == "bearer"
    listing = doc["paths"]["/api/v1/models"]["get"]
    assert {"bearer": []} in listing["security"]
    names = [p["name"].lower() for p in listing.get("parameters", [])]
    assert "authorization" not in names  # the scheme, not a free-text header parameter
