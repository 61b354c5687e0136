"""End to end: a service opts in to transcripts, the gateway answers (the real ASGI app through
httpx.ASGITransport, synced with the catalog like `airlock gateway`), a user sends feedback,
`airlock feedback export` writes the redacted dataset, and `airlock push --dataset
feedback=FILE.jsonl` records its digest in the next release's lineage."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from airlock.config import Settings
from airlock.gateway.server import workspace_app
from airlock.runtime.builtin_model import train
from airlock.services.workspace import Workspace
from airlock_testkit import Cli
from gateway.support import MOON, Releases

POLICY = {"regexes": [{"name": "ticket", "pattern": r"TICKET-\d+", "action": "redact"}]}
SECRET = "I am bob@example.com, call +1 415 555 0100 about TICKET-4711"


@pytest.fixture
def home(cli: Cli, tmp_path: Path) -> Path:
    cli("init")
    ws = Workspace.open(Settings(home=tmp_path / ".airlock", user="alice"))
    try:
        Releases(ws, tmp_path / "folders").builtin(
            "chat", "1.0.0", MOON, files={"safety_policy.yaml": POLICY}
        )
    finally:
        ws.close()
    cli("service", "create", "chat", "--stable", "chat@1.0.0")
    cli("service", "create", "quiet", "--stable", "chat@1.0.0")
    return tmp_path


async def _traffic(home: Path) -> dict[str, Any]:
    ws = Workspace.open(Settings(home=home / ".airlock", user="alice"))
    app, gateway, sync = workspace_app(ws, interval=3600)
    await gateway.start()
    await sync.start()
    out: dict[str, Any] = {}
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:

            async def ask(model: str, text: str, **kw: Any) -> httpx.Response:
                body = {"model": model, "messages": [{"role": "user", "content": text}]}
                r = await client.post("/v1/chat/completions", json={**body, "max_tokens": 8, **kw})
                assert r.status_code == 200, r.text
                return r

            liked = (await ask("chat", SECRET)).json()["id"]
            streamed = await ask("chat", "Tell me about the moon", stream=True)
            assert "[DONE]" in streamed.text
            await ask("quiet", "this service keeps no transcripts")
            f = await client.post("/v1/feedback", json={"id": liked, "score": 1})
            assert f.status_code == 200, f.text
            await sync.flush()
            gateway.transcripts.capacity = 0  # full: answers are dropped and counted
            await ask("chat", "dropped")
            out = {
                "liked": liked,
                "dropped": gateway.transcripts.dropped,
                "recorded": gateway.transcripts.recorded,
            }
    finally:
        await sync.stop()
        await gateway.aclose()
        ws.close()
    return out


def test_feedback_export_then_push_records_the_dataset_digest(
    cli: Cli, home: Path, tmp_path: Path
) -> None:
    on = cli("service", "transcripts", "chat", "--on", "--retention", "7d").output
    assert "on, kept 7d" in on
    seen = asyncio.run(_traffic(home))
    assert seen["recorded"] == 2 and seen["dropped"] == 1

    out = tmp_path / "feedback.jsonl"
    exported = cli("feedback", "export", "chat", "--out", str(out)).output
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    assert "exported 2 transcripts" in exported and sha in exported
    rows = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert len(rows) == 2
    [liked] = [r for r in rows if r["response_id"] == seen["liked"]]
    text = json.dumps(rows)
    assert "bob@example.com" not in text and "555 0100" not in text and "4711" not in text
    assert liked["prompt"] == [
        {
            "role": "user",
            "content": "I am [REDACTED:email], call [REDACTED:phone] about [REDACTED:ticket]",
        }
    ]
    assert liked["score"] == 1.0 and liked["release"] == "chat@1.0.0"
    assert liked["arm"] == "stable" and liked["answer"]
    assert liked["provenance"]["service"] == "chat"
    assert all(r["score"] is None for r in rows if r is not liked)
    quiet = cli("feedback", "export", "quiet", "--out", str(tmp_path / "quiet.jsonl")).output
    assert "exported 0 transcripts" in quiet

    again = cli("feedback", "export", "chat", "--out", str(out), ok=False)
    assert again.exit_code == 1 and "already exists" in again.output
    assert "--force" in again.output

    good = cli(
        "feedback",
        "export",
        "chat",
        "--since",
        "1h",
        "--min-score",
        "0.5",
        "--release",
        "chat@1.0.0",
        "--out",
        str(tmp_path / "good.jsonl"),
        "--json",
    ).output
    assert json.loads(good)["count"] == 1

    folder = tmp_path / "chat-1.1.0"
    train(MOON).save(folder)
    cli(
        "push",
        str(folder),
        "--name",
        "chat",
        "--version",
        "1.1.0",
        "--dataset",
        f"feedback={out}",
        "--parent",
        "chat@1.0.0",
    )
    manifest = json.loads(cli("show", "chat@1.1.0", "--json").output)
    [dataset] = manifest["lineage"]["datasets"]
    assert dataset["name"] == "feedback" and dataset["digest"] == f"sha256:{sha}"
    shown = cli("show", "chat@1.1.0").output
    assert "dataset feedback" in shown and sha[:12] in shown

    events = [json.loads(e) for e in cli("audit", "log", "--json").output.splitlines()]
    actions = [e["action"] for e in events]
    assert "service.transcripts" in actions
    [first] = [e for e in events if e["action"] == "feedback.export"][:1]
    assert first["details"]["sha256"] == sha and first["details"]["count"] == 2


def test_transcripts_off_stops_recording_and_says_what_remains(cli: Cli, home: Path) -> None:
    cli("service", "transcripts", "chat", "--on", "--retention", "30d")
    asyncio.run(_traffic(home))
    off = cli("service", "transcripts", "chat", "--off").output
    assert "off, kept 30d" in off and "2 stored" in off and "no new ones" in off
    seen = asyncio.run(_traffic(home))
    assert seen["recorded"] == 0
    status = json.loads(cli("service", "transcripts", "chat", "--json").output)
    assert status["stored"] == 2 and status["enabled"] is False
    purged = cli("service", "transcripts", "chat", "--purge").output
    assert "purged 0 transcripts" in purged  # nothing is 30 days old
    bad = cli("service", "transcripts", "chat", "--on", "--retention", "soon", ok=False)
    assert bad.exit_code == 1 and "is not a duration" in bad.output
