"""Audit verification, feedback export, judge labels and webhooks over REST: a laptop with
only AIRLOCK_URL and a token sees the same output and the same errors as the server's own
workspace; the audit chain is recomputed on the laptop (a rewritten or edited chain is
found there, whatever the server says); the exported dataset is the same bytes; nothing
local is created."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from airlock.api.app import create_app
from airlock.api.auth import token_authenticator
from airlock.catalog.schema import events
from airlock.config import Settings
from airlock.core.quality import JUDGE_METRIC
from airlock.core.transcripts import FeedbackEntry, TranscriptEntry
from airlock.services.identity import Actor
from airlock.services.tokens import Tokens
from airlock.services.transcripts import Transcripts
from airlock.services.workspace import Workspace
from airlock_testkit import Cli, Server, rewrite_chain, write_model

T0 = datetime.now(UTC) - timedelta(hours=1)
WHERE = "verified on this machine: the events were downloaded from"


@dataclass
class Sides:
    local: Cli  # the server's own workspace, as alice (admin, the owner's token file)
    laptop: Cli  # only AIRLOCK_URL and alice's token
    ws: Workspace
    root: Path
    secrets: dict[str, str]  # user -> token secret
    received: list[dict[str, Any]]  # what the webhook receiver got
    receiver: str  # its URL

    def as_user(self, user: str, *, remote: bool) -> Cli:
        base = self.laptop if remote else self.local
        return Cli(
            Path(base.env["AIRLOCK_HOME"]), {**base.env, "AIRLOCK_TOKEN": self.secrets[user]}
        )

    def same_error(self, *args: str, user: str = "alice") -> str:
        a = self.as_user(user, remote=True)(*args, ok=False)
        b = self.as_user(user, remote=False)(*args, ok=False)
        new_ids = re.compile(r"wh-[0-9a-f]{12}")  # a webhook being added gets a fresh id
        assert (a.exit_code, new_ids.sub("wh-ID", a.output)) == (
            b.exit_code,
            new_ids.sub("wh-ID", b.output),
        ), args
        assert a.exit_code != 0 and "error:" in a.output
        return str(a.output)


def _receiver(received: list[dict[str, Any]]) -> Starlette:
    async def hook(request: Request) -> JSONResponse:
        received.append({"body": await request.json(), "headers": dict(request.headers)})
        return JSONResponse({"ok": True})

    return Starlette(routes=[Route("/hook/secret-path", hook, methods=["POST"])])


def _transcripts(ws: Workspace) -> None:
    entries = [
        TranscriptEntry(
            response_id=f"chatcmpl-{n}",
            service="chat",
            release="chat@1.0.0" if n % 2 else "chat@1.1.0",
            arm="stable" if n % 2 else "candidate",
            cluster=n % 4,
            kind="chat",
            at=T0 + timedelta(minutes=n),
            prompt=(("system", "be brief"), ("user", f"question {n} — café [EMAIL]")),
            answer=f"answer {n}",
        )
        for n in range(1, 9)
    ]
    feedback = [
        FeedbackEntry(
            f"chatcmpl-{n}", "chat", n / 8, T0 + timedelta(minutes=n), T0 + timedelta(hours=1)
        )
        for n in range(1, 7)
    ]
    store = Transcripts(ws)
    store.write(entries, feedback, gateway="g1")
    for n in range(1, 7):
        store.update_scores(f"chatcmpl-{n}", {JUDGE_METRIC: 0.9 if n % 3 else 0.1}, "judge@1.0.0")


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sides]:
    root = tmp_path_factory.mktemp("remote-audit")
    home = root / "server" / ".airlock"
    local = Cli(home, {})
    local("init")
    for version, seed in (("1.0.0", 1), ("1.1.0", 2)):
        model = write_model(root / f"m{seed}", seed=seed)
        local("push", model, "--name", "chat", "--version", version)
    local("service", "create", "chat", "--stable", "chat@1.0.0", "--reason", "launch")
    local("service", "transcripts", "chat", "--on", "--retention", "7d")
    ws = Workspace.open(Settings(home=home, user="alice"))
    _transcripts(ws)
    admin = Actor("alice", "admin")
    secrets = {"alice": (home / "token").read_text().strip()}
    for user, role in (("olga", "operator"), ("vic", "viewer")):
        secrets[user] = Tokens(ws).create(user=user, role=role, actor=admin).secret
    received: list[dict[str, Any]] = []
    with (
        Server(create_app(ws, authenticate=token_authenticator(ws))) as server,
        Server(_receiver(received)) as hooks,
    ):
        laptop = Cli(
            root / "laptop" / ".airlock",  # never created: nothing local is opened
            {
                "AIRLOCK_URL": server.url,
                "AIRLOCK_TOKEN": secrets["alice"],
                "XDG_CACHE_HOME": str(root / "laptop-cache"),
                "XDG_CONFIG_HOME": str(root / "laptop-config"),
            },
        )
        yield Sides(local, laptop, ws, root, secrets, received, f"{hooks.url}/hook/secret-path")
    ws.close()
    assert not (root / "laptop").exists()


def _without_where(output: str) -> str:
    """A remote verify's output without the line saying where the chain was verified."""
    lines = output.splitlines(keepends=True)
    assert sum(WHERE in line for line in lines) == 1, output
    return "".join(line for line in lines if WHERE not in line)


# -- audit ---------------------------------------------------------------------------------


def test_audit_verify_and_head_match_local_and_run_on_this_machine(sides: Sides) -> None:
    laptop, local = sides.laptop, sides.local
    head = local("audit", "head").output
    assert laptop("audit", "head").output == head
    seq, digest = head.split()
    for args in (
        ("audit", "verify"),
        ("audit", "verify", "--expect", f"{seq}:{digest}", "--expect", f"1:{_hash_at(sides, 1)}"),
        ("audit", "verify", "--expect-head", digest),
    ):
        remote = laptop(*args).output
        assert _without_where(remote) == local(*args).output, args
        assert f"downloaded from {laptop.env['AIRLOCK_URL']}" in remote
    assert f"ok: {seq} event(s) verified; head {seq} {digest}" in remote
    sides.same_error("audit", "verify", "--expect", "3:nothex")
    sides.same_error("audit", "verify", "--checkpoint", str(sides.root / "nowhere.json"))
    # a head that was never in the chain: the same finding, exit 1 on both
    a = laptop("audit", "verify", "--expect-head", "ab" * 32, ok=False)
    b = local("audit", "verify", "--expect-head", "ab" * 32, ok=False)
    assert a.exit_code == b.exit_code == 1
    assert _without_where(a.output) == b.output and "no event has the expected hash" in b.output


def test_a_checkpoint_is_signed_on_the_laptop_with_a_key_that_stays_there(sides: Sides) -> None:
    laptop, local = sides.laptop, sides.local
    kept = sides.root / "kept" / "checkpoints.jsonl"
    signed = json.loads(laptop("audit", "checkpoint", "--out", kept).output)
    key = sides.root / "laptop-config" / "airlock" / "keys" / "audit.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert signed["seq"] == int(local("audit", "head").output.split()[0])
    assert json.loads(kept.read_text()) == signed

    ok = laptop("audit", "verify", "--checkpoint", kept).output
    assert "the chain contains all 1 checkpoint(s) given" in ok and WHERE in ok
    # the server's workspace does not know the laptop's key until it is given
    refused = local("audit", "verify", "--checkpoint", kept, ok=False).output
    assert "neither this workspace's audit key nor a trusted key" in refused
    pub = f"{key}.pub"
    for args in (
        ("audit", "verify", "--checkpoint", str(kept), "--public-key", pub),
        ("audit", "verify", "--from-checkpoint", str(kept), "--public-key", pub),
    ):
        assert _without_where(laptop(*args).output) == local(*args).output, args
    incremental = laptop("audit", "verify", "--from-checkpoint", kept).output
    assert f"from checkpoint {signed['seq']} (signature ok):" in incremental
    assert "ok: 0 event(s) verified" in incremental  # nothing new since: nothing downloaded

    # a checkpoint the server signed with its own audit key counts remotely once given
    server_kept = sides.root / "server-checkpoint.json"
    server_kept.write_text(local("audit", "checkpoint").output)
    unknown = laptop("audit", "verify", "--checkpoint", server_kept, ok=False).output
    assert "neither this workspace's audit key nor a trusted key" in unknown
    server_pub = Path(sides.local.env["AIRLOCK_HOME"]) / "keys" / "audit.key.pub"
    given = laptop("audit", "verify", "--checkpoint", server_kept, "--public-key", server_pub)
    assert "the chain contains all 1 checkpoint(s) given" in given.output


def test_an_edited_or_rewritten_chain_is_found_on_the_laptop(sides: Sides) -> None:
    laptop, local = sides.laptop, sides.local
    kept = sides.root / "before-tampering.json"
    kept.write_text(laptop("audit", "checkpoint").output)
    with sides.ws.db.read() as conn:
        original = list(conn.execute(events.select().order_by(events.c.seq)))
    try:
        with sides.ws.db.write() as conn:  # an edit, hashes left alone
            conn.execute(update(events).where(events.c.seq == 3).values(actor="mallory"))
        a, b = laptop("audit", "verify", ok=False), local("audit", "verify", ok=False)
        assert a.exit_code == b.exit_code == 1
        assert _without_where(a.output) == b.output
        assert "audit chain broken at event 3: event 3 was edited" in a.output
        refused = laptop("audit", "checkpoint", ok=False).output
        assert "refusing to sign a checkpoint of it" in refused

        _recompute_from(sides.ws, 3)  # every later hash recomputed: the chain alone verifies
        assert "ok:" in laptop("audit", "verify").output
        a = laptop("audit", "verify", "--checkpoint", kept, ok=False)
        assert a.exit_code == 1 and "the chain was rewritten" in a.output and WHERE in a.output
        a = laptop("audit", "verify", "--from-checkpoint", kept, ok=False)
        assert a.exit_code == 1 and "the stored event has hash" in a.output
    finally:
        with sides.ws.db.write() as conn:
            for row in original:
                values = row._asdict()
                conn.execute(update(events).where(events.c.seq == row.seq).values(**values))
    assert "ok:" in laptop("audit", "verify", "--checkpoint", kept).output


def _hash_at(sides: Sides, seq: int) -> str:
    with sides.ws.db.read() as conn:
        return str(conn.execute(events.select().where(events.c.seq == seq)).one().hash)


def _recompute_from(ws: Workspace, seq: int) -> None:
    with ws.db.write() as conn:
        rewrite_chain(conn, seq)


# -- feedback export -------------------------------------------------------------------------


def _normalised(path: Path) -> bytes:
    """The file with each line's export time taken out (the only field that differs)."""
    lines = []
    for line in path.read_bytes().splitlines(keepends=True):
        record = json.loads(line)
        stamp = record["provenance"]["exported_at"]
        lines.append(line.replace(stamp.encode(), b"T"))
    return b"".join(lines)


def test_feedback_export_downloads_the_same_bytes_the_server_audited(sides: Sides) -> None:
    laptop, local = sides.laptop, sides.local
    there, here = sides.root / "remote.jsonl", sides.root / "local.jsonl"
    for args in ((), ("--release", "chat@1.0.0", "--min-score", "0.3")):
        there.unlink(missing_ok=True)
        here.unlink(missing_ok=True)
        a = laptop("feedback", "export", "chat", "--out", there, *args).output
        b = local("feedback", "export", "chat", "--out", here, *args).output
        sha = hashlib.sha256(there.read_bytes()).hexdigest()
        other = hashlib.sha256(here.read_bytes()).hexdigest()
        assert a.replace(str(there), "F").replace(sha, "S") == b.replace(str(here), "F").replace(
            other, "S"
        )
        assert _normalised(there) == _normalised(here) and there.read_bytes()
        assert f"sha256 {sha}" in a
        recorded = json.loads(
            local(
                "audit", "log", "--json", "--action", "feedback.export", "--limit", "2"
            ).output.splitlines()[0]
        )
        assert recorded["details"]["sha256"] == sha  # the laptop's bytes are what was audited
        assert recorded["details"]["path"] == str(there.resolve())
    assert "exported 2 transcripts of chat" in a  # of chat@1.0.0 scored ≥ 0.3: 3 and 5

    there.unlink()
    as_json = json.loads(laptop("feedback", "export", "chat", "--out", there, "--json").output)
    assert (
        as_json["count"] == 8
        and as_json["sha256"] == hashlib.sha256(there.read_bytes()).hexdigest()
    )
    assert set(as_json) == {"path", "service", "count", "sha256", "filter", "event_seq"}

    sides.same_error("feedback", "export", "chat", "--out", str(there))  # exists: no --force
    sides.same_error("feedback", "export", "nope", "--out", str(sides.root / "n.jsonl"))
    sides.same_error("feedback", "export", "chat", "--out", str(sides.root / "x" / "y.jsonl"))
    sides.same_error("feedback", "export", "chat", "--out", "n.jsonl", "--min-score", "2")
    denied = sides.same_error(
        "feedback", "export", "chat", "--out", str(sides.root / "v.jsonl"), user="vic"
    )
    assert "vic" in denied and "service.configure" in denied
    assert not (sides.root / "v.jsonl").exists()
    assert not [p for p in sides.root.iterdir() if p.name.startswith(".remote.jsonl")]


# -- judge -------------------------------------------------------------------------------------


def test_judge_labels_and_agreement_match_local(sides: Sides) -> None:
    laptop, local = sides.laptop, sides.local
    a = laptop("judge", "label", "chatcmpl-7", "--good", "--reason", "fine").output
    b = local("judge", "label", "chatcmpl-8", "--bad").output
    assert a == "labelled chatcmpl-7 of chat as good\n"
    assert b == "labelled chatcmpl-8 of chat as bad\n"
    for args in (
        ("judge", "agreement", "chat", "--judge", "judge@1.0.0"),
        ("judge", "agreement", "chat", "--judge", "judge@1.0.0", "--threshold", "0.95", "--json"),
        ("judge", "agreement", "chat", "--judge", "other@1.0.0"),
    ):
        assert laptop(*args).output == local(*args).output, args
    assert (
        "agrees with people on"
        in laptop("judge", "agreement", "chat", "--judge", "judge@1.0.0").output
    )
    sides.same_error("judge", "label", "chatcmpl-404", "--good")
    sides.same_error("judge", "label", "pasted/with spaces?", "--good")
    denied = sides.same_error("judge", "label", "chatcmpl-1", "--bad", user="vic")
    assert "vic" in denied
    labelled = local("audit", "log", "--json", "--action", "judge.label").output.splitlines()
    assert [json.loads(x)["details"]["response"] for x in labelled] == ["chatcmpl-7", "chatcmpl-8"]


# -- webhooks ----------------------------------------------------------------------------------


def test_webhooks_are_managed_and_delivered_remotely_like_locally(sides: Sides) -> None:
    laptop, local = sides.laptop, sides.local
    secret = sides.root / "hook.secret"
    secret.write_text("s" * 32)
    secret.chmod(0o600)
    add = ("webhook", "add", sides.receiver, "--events", "alias.move")
    a = laptop(*add, "--secret-file", secret).output
    b = local(*add, "--secret-file", secret).output
    first, second = a.split()[1], b.split()[1]
    assert first.startswith("wh-") and a.replace(first, "ID") == b.replace(second, "ID")
    assert "secret-path" not in a  # the URL's path is a credential: never printed
    generated = laptop("webhook", "add", sides.receiver, "--events", "rollout.*").output
    assert "secret (shown once" in generated

    for args in (("webhook", "ls"), ("webhook", "ls", "--json"), ("webhook", "ls", "--all")):
        assert laptop(*args).output == local(*args).output, args
    listed = json.loads(laptop("webhook", "ls", "--json").output)
    assert all("secret" not in w and "secret-path" not in w["url"] for w in listed)

    a = laptop("webhook", "test", first).output
    b = local("webhook", "test", second).output
    assert "webhook.test" in a and ": delivered (attempt 1, HTTP 200)" in a
    assert a.split(" ", 1)[1].replace(first, "ID") == b.split(" ", 1)[1].replace(second, "ID")
    assert len(sides.received) == 2

    local("alias", "set", "beta", "chat@1.1.0", "--reason", "ship")
    passed = json.loads(laptop("webhook", "deliver", "--once", "--json").output)
    assert passed["queued"] == 2 and {x["state"] for x in passed["attempts"]} == {"delivered"}
    assert [r["body"]["action"] for r in sides.received[2:]] == ["alias.move", "alias.move"]
    assert "queued 0, delivered 0" in laptop("webhook", "deliver", "--once").output
    for args in (
        ("webhook", "deliveries"),
        ("webhook", "deliveries", "--attempts", "--limit", "0"),
        ("webhook", "deliveries", "--json", "--webhook", first),
    ):
        assert laptop(*args).output == local(*args).output, args

    sides.same_error("webhook", "add", sides.receiver, "--events", "alias.move", user="olga")
    sides.same_error("webhook", "add", "ftp://x", "--events", "alias.move")
    sides.same_error("webhook", "rm", "wh-nope")
    sides.same_error("webhook", "test", first, user="vic")
    # a pass on the server's outbox is an admin's call (locally: whoever can open the catalog)
    denied = sides.as_user("olga", remote=True)("webhook", "deliver", "--once", ok=False)
    assert denied.exit_code == 1 and "olga" in denied.output and "webhook.manage" in denied.output
    a = laptop("webhook", "rm", first, "--reason", "done").output
    b = local("webhook", "rm", second, "--reason", "done").output
    assert a.replace(first, "ID") == b.replace(second, "ID") == "removed webhook ID\n"
    sides.same_error("webhook", "test", first)  # removed
