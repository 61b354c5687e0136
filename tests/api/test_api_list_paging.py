"""Every REST list that grows with use pages by key (SQLite and PostgreSQL): more items than
one page, walked through the ``Link``/``X-Next-Cursor`` headers, give every item exactly once
and in the list's order; a cursor this list did not hand out is a clean 400; the SDK still
returns whole lists (or the newest N) by following the cursor."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from api_support import Lumen
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.testclient import TestClient

import airlock
from airlock.api.app import create_app
from airlock.api.auth import token_authenticator
from airlock.core.drill import DrillSummary
from airlock.core.paging import encode_cursor
from airlock.demo import scenario
from airlock.services.drills import Drills
from airlock.services.governance import Governance
from airlock.services.identity import Actor
from airlock.services.rollouts import Rollouts
from airlock.services.serving import Serving
from airlock.services.webhooks import WebhookDispatcher, Webhooks

SERVICE = scenario.SERVICE
ADMIN = Actor("alice", "admin")
OLGA = Actor("olga", "operator")
CANARY = {"strategy": "canary", "steps": [{"weight_pct": 10, "bake_seconds": 60}]}
TINY_SUITE = "name: tiny\ncases:\n  - {id: a, prompt: Hi, checks: [{max_chars: 900}]}\n"
PAGE = 2
N = 5  # of each list: three pages of two


def _pem(key: Ed25519PrivateKey) -> str:
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public.decode()


def fill(lumen: Lumen) -> None:
    """N (or more) of everything the lists below show, made through the services."""
    ws = lumen.ws
    hooks = Webhooks(ws)
    first = hooks.add("http://127.0.0.1:9/a", events="*", actor=ADMIN).row.id
    for n in range(1, N):
        hooks.add(f"http://127.0.0.1:9/{n}", events="policy.*", actor=ADMIN)
    gov = Governance(ws)
    for n in range(N):
        gov.approve("lumen@1.1.0", stage=f"stage-{n}", actor=Actor("bob", "approver"))
        gov.set_policy(f"policy-{n % 2}", f"description: v{n}\nstages: {{}}\n", actor=ADMIN)
        gov.trust_key(_pem(Ed25519PrivateKey.generate()), name=f"key-{n}", actor=ADMIN)
        Serving(ws).create(f"svc-{n}", "lumen@1.0.0", actor=ADMIN)
        ro = Rollouts(ws)
        ro.start(SERVICE, "lumen@1.1.0", CANARY, actor=OLGA, reason=f"try {n}")
        ro.abort(SERVICE, actor=OLGA, reason=f"stop {n}")
        Drills(ws).record(
            service=SERVICE if n % 2 == 0 else "svc-0",
            rollout_id=None,
            release="lumen@1.1.0",
            stable="lumen@1.0.0",
            faults={"errors": 0.2},
            summary=DrillSummary("detected", 1.0, 0.5, 100, 10, 2, 0, 0.1),
            started_at=datetime.now(UTC).timestamp(),
            finished_at=datetime.now(UTC).timestamp(),
            details={},
            actor=OLGA,
        )
    # one pass queues a delivery per event and subscription, all at the same time: the page
    # key must tell them apart by the event and the delivery id
    assert WebhookDispatcher(ws.db).queue_new_events() > 2 * N
    hooks.test(first, actor=ADMIN)


# (url, the key that orders it, the order: True = as the key sorts, False = reversed)
LISTS: list[tuple[str, Callable[[dict[str, Any]], Any], bool]] = [
    ("/api/v1/releases/lumen@1.1.0/approvals", lambda a: (a["at"], a["id"]), True),
    ("/api/v1/policies", lambda p: (p["name"], p["version"]), True),
    ("/api/v1/policies?name=policy-0", lambda p: p["version"], True),
    ("/api/v1/releases/lumen@1.1.0/evaluations", lambda r: r["id"], True),
    ("/api/v1/keys", lambda k: (k["added_at"], k["key_id"]), True),
    ("/api/v1/services", lambda s: s["name"], True),
    (f"/api/v1/services/{SERVICE}/plans", lambda p: p["generation"], True),
    (f"/api/v1/services/{SERVICE}/rollouts", lambda r: r["id"], False),
    ("/api/v1/rollouts", lambda r: r["id"], False),
    ("/api/v1/drills", lambda d: d["id"], False),
    (f"/api/v1/drills?service={SERVICE}", lambda d: d["id"], False),
    ("/api/v1/webhooks", lambda w: (w["created_at"], w["id"]), True),
    ("/api/v1/webhooks/deliveries", lambda d: (d["created_at"], d["event_seq"], d["id"]), False),
]


async def walk(api: httpx.AsyncClient, url: str, limit: int) -> tuple[list[Any], int]:
    """Every item of a list, page by page through the Link header; and the number of pages."""
    items: list[Any] = []
    pages = 0
    next_url: str | None = f"{url}{'&' if '?' in url else '?'}limit={limit}"
    while next_url is not None:
        r = await api.get(next_url)
        assert r.status_code == 200, (url, r.text)
        assert len(r.json()) <= limit
        items += r.json()
        pages += 1
        next_url = r.links.get("next", {}).get("url")
        assert (next_url is None) == ("X-Next-Cursor" not in r.headers), url
        assert pages <= 100, f"{url}: the cursor does not advance"
    return items, pages


@pytest.mark.anyio
async def test_every_growing_list_pages_by_key(api: httpx.AsyncClient, lumen: Lumen) -> None:
    fill(lumen)
    for _ in range(N):
        run = await api.post("/api/v1/releases/lumen@1.1.0/evaluations", json={"suite": TINY_SUITE})
        assert run.status_code == 200, run.text

    for url, key, ascending in LISTS:
        items, pages = await walk(api, url, PAGE)
        assert len(items) > PAGE and pages == -(-len(items) // PAGE), (url, len(items), pages)
        keys = [key(i) for i in items]
        assert len(set(keys)) == len(keys), f"{url}: an item came twice"
        assert keys == sorted(keys, reverse=not ascending), f"{url}: out of order"
        whole = await api.get(f"{url}{'&' if '?' in url else '?'}limit=1000")
        assert "X-Next-Cursor" not in whole.headers
        assert [key(i) for i in whole.json()] == keys, f"{url}: a page walk missed items"

        sep = "&" if "?" in url else "?"
        nul = [encode_cursor(["a\x00b"] * arity) for arity in (1, 2, 3)]  # PostgreSQL text can't
        for bad in ("nonsense", encode_cursor(["x", "y", "z", "w"]), encode_cursor([[1]]), *nul):
            r = await api.get(f"{url}{sep}cursor={bad}")
            assert r.status_code == 400 and "page cursor" in r.text, (url, bad, r.text)
        assert (await api.get(f"{url}{sep}limit=0")).status_code in (400, 422), url
        assert (await api.get(f"{url}{sep}limit=1001")).status_code in (400, 422), url

    # a cursor with a value of the wrong kind is refused too, not a 500
    for url, wrong in (
        ("/api/v1/rollouts", ["x"]),
        ("/api/v1/keys", ["yesterday", "k"]),
        ("/api/v1/webhooks/deliveries", [datetime.now(UTC).isoformat(), "seq", "id"]),
    ):
        r = await api.get(f"{url}?cursor={encode_cursor(wrong)}")
        assert r.status_code == 400 and "page cursor" in r.text, (url, r.text)


def test_the_sdk_follows_the_cursor(lumen: Lumen) -> None:
    """The SDK's list calls (what the remote CLI prints) return every item, or the newest N,
    however many pages the server splits them into; ``page`` hands out one page."""
    fill(lumen)
    app = create_app(lumen.ws, authenticate=token_authenticator(lumen.ws))
    with airlock.Client("http://testserver", lumen.tokens["alice"], http=TestClient(app)) as api:
        assert [s["name"] for s in api.services()] == sorted(
            [SERVICE, *(f"svc-{n}" for n in range(N))]
        )
        assert len(api.keys()) == N and len(api.approvals("lumen@1.1.0")) == N
        assert len(api.policy_history()) == N and len(api.webhooks()) == N
        assert len(api.plan_history(SERVICE)) == 1 + 2 * N
        rollouts = api.rollouts(SERVICE, limit=0)
        assert len(rollouts) == N and api.rollouts(limit=3) == rollouts[:3]
        assert [d["id"] for d in api.drills(limit=N + 1)] == sorted(
            (d["id"] for d in api.drills(limit=0)), reverse=True
        )
        log = api.webhook_deliveries(limit=0)
        assert len(log) > 2 * N and api.webhook_deliveries(limit=7) == log[:7]
        first, cursor = api.page("/api/v1/drills", limit=2, service=SERVICE)
        rest, end = api.page("/api/v1/drills", limit=2, cursor=cursor, service=SERVICE)
        assert cursor and end is None
        assert first + rest == api.drills(SERVICE, limit=0)
        with pytest.raises(airlock.InvalidInput, match="page cursor"):
            api.page("/api/v1/rollouts", cursor="nonsense")
