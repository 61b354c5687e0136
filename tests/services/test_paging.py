"""Keyset pages: a model's releases in version order, page by page, through the service,
the REST API (Link / X-Next-Cursor headers) and the CLI (--limit / --cursor)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from airlock.api.app import create_app
from airlock.core.paging import decode_cursor, encode_cursor, version_key
from airlock.core.semver import Version
from airlock.errors import InvalidInput
from airlock.services.identity import Actor
from airlock.services.promotion import Promotion
from airlock.services.registry import Registry
from airlock.services.workspace import Workspace
from airlock_testkit import Cli

VERSIONS = ["2.0.0", "1.0.0-rc.1", "10.0.0", "1.0.0", "1.0.0-rc.10", "1.0.0-alpha", "9.1.0"]


def test_version_key_sorts_as_semver_ranks() -> None:
    texts = [*VERSIONS, "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-beta.11"]
    by_key = sorted(texts, key=version_key)
    assert by_key == sorted(texts, key=Version.parse)
    assert all(set(version_key(t)) <= set("0123456789abcdef") for t in texts)


def test_a_bad_cursor_or_limit_is_invalid_input() -> None:
    assert decode_cursor(encode_cursor(["k", 3]), arity=2) == ("k", 3)
    nul = encode_cursor(["k\x00", 3])  # PostgreSQL text cannot hold it: refused, not a 500
    for bad in ("!!", encode_cursor(["k"]), encode_cursor([True, 1]), "x" * 5000, nul):
        with pytest.raises(InvalidInput, match="page cursor"):
            decode_cursor(bad, arity=2)


@pytest.fixture
def reg(workspace: Workspace, alice: Actor, make_model: Callable[..., Path]) -> Registry:
    registry = Registry(workspace)
    folder = make_model(shards=1, rows=4)
    for v in VERSIONS:
        (folder / "note.txt").write_text(v)
        registry.push(folder, name="chat", version=v, actor=alice)
    registry.push(folder, name="other", version="1.0.0", actor=alice)
    Promotion(workspace).set_alias("production", "chat@2.0.0", actor=alice, reason="go")
    Promotion(workspace).set_alias("production", "chat@9.1.0", actor=alice, reason="go")
    return registry


def test_pages_walk_every_release_once_in_version_order(reg: Registry) -> None:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = reg.release_page("chat", limit=3, cursor=cursor)
        seen += [r.version for r in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [r.version for r in reg.releases("chat")]
    assert seen == sorted(VERSIONS, key=Version.parse) and pages == 3
    models = reg.model_page(limit=1)
    assert [m.name for m in models.items] == ["chat"] and models.next_cursor
    rest = reg.model_page(limit=1, cursor=models.next_cursor)
    assert [m.name for m in rest.items] == ["other"] and rest.next_cursor is None
    moves = reg.alias_history_page("chat", "production", limit=1)
    assert moves.items[0].to_version == "2.0.0"
    last = reg.alias_history_page("chat", "production", limit=1, cursor=moves.next_cursor)
    assert last.items[0].to_version == "9.1.0" and last.next_cursor is None
    with pytest.raises(InvalidInput, match="limit"):
        reg.release_page("chat", limit=0)


@pytest.mark.anyio
async def test_rest_pages_through_link_headers(reg: Registry, workspace: Workspace) -> None:
    app = create_app(workspace, authenticate=lambda _: Actor("alice", "admin"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://airlock"
    ) as client:
        url: str | None = "/api/v1/models/chat/releases?limit=4"
        seen = []
        while url:
            r = await client.get(url)
            assert r.status_code == 200, r.text
            seen += [x["version"] for x in r.json()]
            url = r.links.get("next", {}).get("url")
            assert (url is None) == ("X-Next-Cursor" not in r.headers)
        assert seen == sorted(VERSIONS, key=Version.parse)
        bad = await client.get("/api/v1/models/chat/releases?cursor=nonsense")
        assert bad.status_code == 400 and "page cursor" in bad.text
        assert (await client.get("/api/v1/models?limit=5000")).status_code == 400


def test_cli_prints_a_page_and_the_next_cursor_on_stderr(
    reg: Registry, workspace: Workspace
) -> None:
    settings = workspace.settings
    cli = Cli(settings.home, {"AIRLOCK_DATABASE_URL": settings.catalog_url})
    first = cli("ls", "chat", "--limit", "4")
    assert "more: run again with --cursor" in first.stderr
    cursor = first.stderr.split("--cursor")[1].split()[0]
    rest = cli("ls", "chat", "--limit", "4", "--cursor", cursor)
    assert "10.0.0" in rest.stdout and "1.0.0-alpha" not in rest.stdout
    assert "more:" not in rest.stderr
    everything = cli("ls", "chat")  # a small catalog: one page, no hint
    assert "more:" not in everything.stderr and "10.0.0" in everything.stdout
