"""The REST API through the real ASGI app (httpx.ASGITransport) on a real workspace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from airlock.api.app import create_app
from airlock.errors import Unauthorized
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace

MakeModel = Callable[..., Path]
TOKENS = {"t-alice": Actor("alice", "admin"), "t-vic": Actor("vic", "viewer")}
pytestmark = pytest.mark.anyio


def authenticate(token: str | None) -> Actor:
    if token is None or token not in TOKENS:
        raise Unauthorized("a valid API token is required")
    return TOKENS[token]


@pytest.fixture
async def client(
    workspace: Workspace, make_model: MakeModel, alice: Actor
) -> AsyncIterator[httpx.AsyncClient]:
    reg = Registry(workspace)
    reg.push(make_model(seed=1), name="chat", version="1.0.0", actor=alice, metrics={"acc": 0.5})
    reg.push(
        make_model(seed=2, **{"safety_policy.yaml": "blocked_terms: [x]"}),
        name="chat",
        version="1.1.0",
        actor=alice,
        parent="chat@1.0.0",
        metrics={"acc": 0.6},
    )
    app = create_app(workspace, authenticate=authenticate)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://airlock",
        headers={"Authorization": "Bearer t-alice"},
    ) as c:
        yield c


async def test_models_releases_and_show(client: httpx.AsyncClient) -> None:
    models = (await client.get("/api/v1/models")).json()
    assert models == [{"name": "chat", "releases": 2, "aliases": {}}]
    rels = (await client.get("/api/v1/models/chat/releases")).json()
    assert [r["version"] for r in rels] == ["1.0.0", "1.1.0"]
    shown = (await client.get("/api/v1/releases/chat@1.1.0")).json()
    assert shown["manifest"]["lineage"]["parent"] == "chat@1.0.0"
    assert shown["digest"].startswith("sha256:")
    by_digest = await client.get(f"/api/v1/releases/{shown['digest'][:20]}")
    assert by_digest.json()["ref"] == "chat@1.1.0"


async def test_diff_notes_and_lineage(client: httpx.AsyncClient) -> None:
    diff = (
        await client.get("/api/v1/releases/chat@1.1.0/diff", params={"against": "chat@1.0.0"})
    ).json()
    assert diff["components"][0]["key"] == "safety_policy"
    assert {m["name"] for m in diff["metrics"]} == {"acc"}
    notes = await client.get("/api/v1/releases/chat@1.1.0/notes")
    assert notes.headers["content-type"].startswith("text/plain")
    assert "| acc | 0.5 | 0.6 |" in notes.text
    lineage = (await client.get("/api/v1/releases/chat@1.1.0/lineage")).json()
    ids = {n["id"] for n in lineage["nodes"]}
    assert {"release:chat@1.1.0", "release:chat@1.0.0"} <= ids
    assert {
        "source": "release:chat@1.1.0",
        "target": "release:chat@1.0.0",
        "label": "parent",
    } in lineage["edges"]


async def test_alias_moves_and_history(client: httpx.AsyncClient) -> None:
    r = await client.put(
        "/api/v1/models/chat/aliases/production", json={"release": "1.0.0", "reason": "launch"}
    )
    assert r.status_code == 200
    assert r.json()["to_version"] == "1.0.0"
    r = await client.put(
        "/api/v1/models/chat/aliases/production", json={"release": "chat@1.1.0", "reason": "better"}
    )
    assert r.json()["from_version"] == "1.0.0"
    hist = (await client.get("/api/v1/models/chat/aliases/production/history")).json()
    assert [(h["to_version"], h["actor"], h["reason"]) for h in hist] == [
        ("1.0.0", "alice", "launch"),
        ("1.1.0", "alice", "better"),
    ]
    aliases = (await client.get("/api/v1/models/chat/aliases")).json()
    assert aliases[0]["version"] == "1.1.0"


async def test_audit_events_page_and_verify(client: httpx.AsyncClient) -> None:
    page = (await client.get("/api/v1/audit/events", params={"limit": 1})).json()
    assert [e["seq"] for e in page["events"]] == [1]
    assert page["next_after_seq"] == 1
    rest = (await client.get("/api/v1/audit/events", params={"after_seq": 1})).json()
    assert [e["action"] for e in rest["events"]] == ["release.push"]
    assert rest["next_after_seq"] is None
    chain = (await client.get("/api/v1/audit/verify")).json()
    assert chain["ok"] is True
    assert chain["checked"] == 2
    assert (await client.post("/api/v1/verify")).json()["ok"] is True


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "code"),
    [
        ("GET", "/api/v1/releases/chat@9.9.9", None, 404, "not_found"),
        ("GET", "/api/v1/releases/Chat@1", None, 400, "invalid_input"),
        ("GET", "/api/v1/models/ghost/releases", None, 404, "not_found"),
        (
            "PUT",
            "/api/v1/models/chat/aliases/production",
            {"release": "1.0.0", "reason": ""},
            400,
            "invalid_input",
        ),
        (
            "PUT",
            "/api/v1/models/chat/aliases/1.0.0",
            {"release": "1.0.0", "reason": "x"},
            400,
            "invalid_input",
        ),
        ("GET", "/api/v1/nothing-here", None, 404, "not_found"),
    ],
)
async def test_error_shapes(
    client: httpx.AsyncClient, method: str, url: str, body: object, status: int, code: str
) -> None:
    r = await client.request(method, url, json=body)
    assert r.status_code == status
    err = r.json()["error"]
    assert err["code"] == code
    assert err["message"]


async def test_a_token_is_required(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/v1/models", headers={"Authorization": ""})
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["www-authenticate"].startswith("Bearer")
    r = await client.get("/api/v1/models", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401
