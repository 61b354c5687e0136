"""Webhooks against a real HTTP receiver on loopback: signed JSON POSTs of audit events,
retries with backoff, a delivery log, a Slack body; a hanging receiver never blocks an action;
concurrent appends on PostgreSQL each get exactly one delivery."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from airlock import audit
from airlock.config import Settings
from airlock.errors import Forbidden, InvalidInput
from airlock.services.identity import Actor
from airlock.services.registry import Registry
from airlock.services.webhooks import WebhookDispatcher, Webhooks, WebhookSettings
from airlock.services.workspace import Workspace
from airlock_testkit import Cli

ALICE = Actor("alice", "admin")
SECRET = "s3cret-for-the-receiver-0123456789"
MakeModel = Callable[..., Path]


@dataclass
class Receiver:
    """Records every POST; answers with ``statuses`` in turn (then 200), or hangs."""

    url: str = ""
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    hang: threading.Event | None = None  # set: stop hanging


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            rec.posts.append(({k.lower(): v for k, v in self.headers.items()}, body))
            if rec.hang is not None:
                rec.hang.wait(30)
                return
            status = rec.statuses.pop(0) if rec.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        yield rec
    finally:
        if rec.hang is not None:
            rec.hang.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def ws(sqlite_settings: Settings) -> Iterator[Workspace]:
    w = Workspace.open(sqlite_settings, create=True)
    try:
        yield w
    finally:
        w.close()


def _release(ws: Workspace, make_model: MakeModel, version: str = "1.0.0") -> None:
    Registry(ws).push(make_model(seed=int(version[0])), name="chat", version=version, actor=ALICE)


def _wait(predicate: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


FAST = WebhookSettings(timeout=2.0, backoff_base=0.0, max_attempts=3, interval=0.05)


def test_a_matching_event_is_posted_signed_with_its_delivery_id(
    ws: Workspace, make_model: MakeModel, receiver: Receiver
) -> None:
    _release(ws, make_model)  # before the subscription: never delivered
    hook = Webhooks(ws).add(receiver.url, events="alias.move", actor=ALICE, secret=SECRET).row
    _release(ws, make_model, "2.0.0")  # release.push: not subscribed
    Registry(ws).set_alias("production", "chat@2.0.0", actor=ALICE, reason="launch")

    report = WebhookDispatcher(ws.db, FAST).run_once()
    assert report.queued == 1 and report.delivered == 1
    [(headers, body)] = receiver.posts
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-airlock-signature"], expected)
    assert headers["x-airlock-event"] == "alias.move"
    doc = json.loads(body)
    assert doc["event"] == "alias.move" and doc["subject"].startswith("chat@production")
    assert doc["actor"] == "alice" and doc["details"]["reason"] == "launch"
    [delivery] = Webhooks(ws).deliveries()
    assert delivery.id == headers["x-airlock-delivery"] == doc["delivery"]
    assert uuid.UUID(delivery.id) and delivery.webhook_id == hook.id
    assert (
        delivery.state == "delivered"
        and delivery.attempts == 1
        and delivery.event_seq == doc["seq"]
    )
    # a second pass queues nothing new and sends nothing again
    assert WebhookDispatcher(ws.db, FAST).run_once().queued == 0
    assert len(receiver.posts) == 1


def test_a_500_is_retried_with_the_same_delivery_id_then_succeeds(
    ws: Workspace, make_model: MakeModel, receiver: Receiver
) -> None:
    _release(ws, make_model)
    Webhooks(ws).add(receiver.url, events="alias.*", actor=ALICE, secret=SECRET)
    Registry(ws).set_alias("production", "chat@1.0.0", actor=ALICE, reason="launch")
    receiver.statuses = [500]
    dispatcher = WebhookDispatcher(ws.db, FAST)
    first = dispatcher.run_once()
    assert [a.state for a in first.attempts] == ["pending"] and first.attempts[0].status == 500
    second = dispatcher.run_once()
    assert [a.state for a in second.attempts] == ["delivered"]
    ids = {h["x-airlock-delivery"] for h, _ in receiver.posts}
    assert len(receiver.posts) == 2 and len(ids) == 1
    [delivery] = Webhooks(ws).deliveries()
    log = Webhooks(ws).attempts(delivery.id)
    assert [(a.attempt, a.status, a.error) for a in log] == [(1, 500, "HTTP 500"), (2, 200, None)]
    assert all(a.duration_ms >= 0 for a in log)


def test_attempts_are_bounded_then_the_delivery_fails_and_backoff_waits(
    ws: Workspace, make_model: MakeModel, receiver: Receiver
) -> None:
    _release(ws, make_model)
    Webhooks(ws).add(receiver.url, events="*", actor=ALICE, secret=SECRET)
    Registry(ws).set_alias("production", "chat@1.0.0", actor=ALICE, reason="launch")
    receiver.statuses = [503] * 10
    eager = WebhookDispatcher(ws.db, FAST)  # max 3 attempts, no wait between them
    assert [a.state for a in eager.run_once().attempts] == ["pending"]
    assert [a.state for a in eager.run_once().attempts] == ["pending"]
    assert [a.state for a in eager.run_once().attempts] == ["failed"]
    assert eager.run_once().attempts == ()
    [delivery] = Webhooks(ws).deliveries()
    assert delivery.state == "failed" and delivery.attempts == 3 and delivery.last_status == 503
    assert len(receiver.posts) == 3


def test_a_failed_attempt_waits_its_backoff(
    ws: Workspace, make_model: MakeModel, receiver: Receiver
) -> None:
    _release(ws, make_model)
    Webhooks(ws).add(receiver.url, events="alias.move", actor=ALICE, secret=SECRET)
    Registry(ws).set_alias("production", "chat@1.0.0", actor=ALICE, reason="launch")
    receiver.statuses = [502]
    patient = WebhookDispatcher(ws.db, WebhookSettings(backoff_base=3600.0))
    [first] = patient.run_once().attempts
    assert first.state == "pending" and first.error == "HTTP 502"
    assert patient.run_once().attempts == ()  # not due for an hour
    [delivery] = Webhooks(ws).deliveries()
    [attempt] = Webhooks(ws).attempts(delivery.id)
    assert (delivery.next_attempt_at - attempt.at).total_seconds() == pytest.approx(3600, abs=1)


def test_the_slack_format_posts_text(
    ws: Workspace, make_model: MakeModel, receiver: Receiver
) -> None:
    _release(ws, make_model)
    Webhooks(ws).add(receiver.url, events="alias.move", actor=ALICE, secret=SECRET, fmt="slack")
    Registry(ws).set_alias("production", "chat@1.0.0", actor=ALICE, reason="launch")
    WebhookDispatcher(ws.db, FAST).run_once()
    [(headers, body)] = receiver.posts
    doc = json.loads(body)
    assert list(doc) == ["text"] and "alice alias.move chat@production" in doc["text"]
    assert headers["x-airlock-signature"].startswith("sha256=")


def test_a_hanging_receiver_never_blocks_the_action(
    tmp_path: Path, make_model: MakeModel, receiver: Receiver
) -> None:
    cli = Cli(tmp_path / ".airlock", {})
    cli("init")
    cli("push", str(make_model(seed=1)), "--name", "chat", "--version", "1.0.0")
    cli("webhook", "add", receiver.url, "--events", "alias.move")
    receiver.hang = threading.Event()
    ws = Workspace.open(Settings(home=tmp_path / ".airlock", user="alice"))
    dispatcher = WebhookDispatcher(ws.db, WebhookSettings(timeout=1.0, interval=0.05))
    dispatcher.start()
    try:
        cli("alias", "set", "production", "chat@1.0.0", "--reason", "while the receiver hangs")
        assert Registry(ws).resolve("chat@production").ref == "chat@1.0.0"
        _wait(lambda: bool(receiver.posts), "the first POST")
        cli("alias", "set", "stable", "chat@1.0.0", "--reason", "still hanging")
        assert Registry(ws).resolve("chat@stable").ref == "chat@1.0.0"
        _wait(lambda: len(Webhooks(ws).deliveries()) == 2, "both deliveries queued")
        assert {d.state for d in Webhooks(ws).deliveries()} <= {"pending", "failed"}
        _wait(
            lambda: any(
                a.error for d in Webhooks(ws).deliveries() for a in Webhooks(ws).attempts(d.id)
            ),
            "a timed-out attempt",
        )
        errors = [a.error for d in Webhooks(ws).deliveries() for a in Webhooks(ws).attempts(d.id)]
        assert any(e and "timed out" in e for e in errors)
    finally:
        receiver.hang.set()
        dispatcher.stop()
        ws.close()


def test_a_removed_subscription_sends_nothing_more(
    ws: Workspace, make_model: MakeModel, receiver: Receiver
) -> None:
    _release(ws, make_model)
    hooks = Webhooks(ws)
    hook = hooks.add(receiver.url, events="alias.move", actor=ALICE, secret=SECRET).row
    Registry(ws).set_alias("production", "chat@1.0.0", actor=ALICE, reason="launch")
    WebhookDispatcher(ws.db, FAST).queue_new_events()
    hooks.remove(hook.id, actor=ALICE, reason="receiver retired")
    [result] = WebhookDispatcher(ws.db, FAST).deliver_due()
    assert result.state == "failed" and result.error == "the subscription was removed"
    assert receiver.posts == [] and hooks.subscriptions() == []


def test_bad_subscriptions_are_refused_and_only_admins_manage_them(ws: Workspace) -> None:
    hooks = Webhooks(ws)
    with pytest.raises(InvalidInput, match="not an http"):
        hooks.add("ftp://example.com/x", events="alias.move", actor=ALICE)
    with pytest.raises(InvalidInput, match="not an audit action"):
        hooks.add("http://127.0.0.1:9/x", events="alias.move,DROP TABLE", actor=ALICE)
    with pytest.raises(InvalidInput, match="unknown webhook format"):
        hooks.add("http://127.0.0.1:9/x", events="alias.move", actor=ALICE, fmt="xml")
    with pytest.raises(Forbidden):
        hooks.add("http://127.0.0.1:9/x", events="alias.move", actor=Actor("op", "operator"))


def test_the_cli_adds_lists_tests_delivers_and_removes(
    tmp_path: Path, make_model: MakeModel, receiver: Receiver
) -> None:
    cli = Cli(tmp_path / ".airlock", {})
    cli("init")
    loose = tmp_path / "loose-secret"
    loose.write_text(SECRET)
    loose.chmod(0o644)
    r = cli(
        "webhook", "add", receiver.url, "--events", "alias.move", "--secret-file", loose, ok=False
    )
    assert r.exit_code != 0 and "can be read by others" in r.output
    loose.chmod(0o600)
    out = cli(
        "webhook", "add", receiver.url, "--events", "alias.move", "--secret-file", loose
    ).output
    assert "secret (shown once" not in out
    hook_id = out.split()[1]
    listed = json.loads(cli("webhook", "ls", "--json").output)
    assert [h["id"] for h in listed] == [hook_id] and "secret" not in listed[0]

    assert "delivered" in cli("webhook", "test", hook_id).output
    (headers, body) = receiver.posts[-1]
    assert headers["x-airlock-event"] == "webhook.test"
    assert hmac.compare_digest(
        headers["x-airlock-signature"],
        "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest(),
    )

    cli("push", str(make_model(seed=1)), "--name", "chat", "--version", "1.0.0")
    cli("alias", "set", "production", "chat@1.0.0", "--reason", "go")
    out = cli("webhook", "deliver", "--once").output
    assert "queued 1, delivered 1" in out
    log = json.loads(cli("webhook", "deliveries", "--json").output)
    assert [d["action"] for d in log] == ["alias.move", "webhook.test"]
    assert all(d["state"] == "delivered" and d["attempt_log"] for d in log)
    assert "alias.move" in cli("webhook", "deliveries", "--limit", "1", "--attempts").output

    cli("webhook", "rm", hook_id, "--reason", "done")
    assert json.loads(cli("webhook", "ls", "--json").output) == []
    generated = cli("webhook", "add", receiver.url, "--events", "rollout.*").output
    assert "secret (shown once" in generated


@pytest.mark.postgres
def test_concurrent_appends_on_postgres_each_get_exactly_one_delivery(
    tmp_path: Path, pg_url: str
) -> None:
    ws = Workspace.open(
        Settings(home=tmp_path / ".airlock", database_url=pg_url, user="alice"), create=True
    )
    try:
        Webhooks(ws).add("http://127.0.0.1:9/unused", events="alias.move", actor=ALICE)
        stop = threading.Event()

        def dispatch() -> int:
            d = WebhookDispatcher(ws.db, WebhookSettings(batch=7))
            n = 0
            while not stop.is_set():
                n += d.queue_new_events()
            return n + d.queue_new_events()

        def append(i: int) -> int:
            with ws.db.write() as conn:
                return audit.append(
                    conn, actor="alice", action="alias.move", subject=f"chat@a{i}", details={}
                ).seq

        with ThreadPoolExecutor(max_workers=10) as pool:
            dispatchers = [pool.submit(dispatch) for _ in range(2)]
            seqs = list(pool.map(append, range(50)))
            stop.set()
            queued = sum(f.result() for f in dispatchers)
        queued += WebhookDispatcher(ws.db).queue_new_events()
        rows = Webhooks(ws).deliveries()
        assert queued == 50 and len(rows) == 50
        assert sorted(d.event_seq for d in rows) == sorted(seqs)
        assert len({d.id for d in rows}) == 50
    finally:
        ws.close()


def test_migration_0008_goes_down_and_up_again(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import inspect

    from airlock.catalog import migrate
    from airlock.catalog.engine import Database

    db = Database.open(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        migrate.upgrade(db)
        with db.write() as conn:
            cfg = migrate._config()
            cfg.attributes["connection"] = conn
            # the webhook branch, down past 0008 (its tip is 0012_webhook_list_indexes)
            command.downgrade(cfg, "0012_webhook_list_indexes@-2")
        with db.read() as conn:
            assert not inspect(conn).has_table("webhooks")
        assert migrate.upgrade(db)
        with db.read() as conn:
            tables = set(inspect(conn).get_table_names())
        assert {"webhooks", "webhook_deliveries", "webhook_attempts", "webhook_cursor"} <= tables
        assert migrate.current_revisions(db) == migrate.head_revisions()
    finally:
        db.engine.dispose()


def test_airlock_serve_delivers_subscriptions_on_its_own(
    ws: Workspace, make_model: MakeModel, receiver: Receiver
) -> None:
    from airlock.serve import AirlockApp, RunningServer, ServeSettings

    _release(ws, make_model)
    Webhooks(ws).add(receiver.url, events="alias.move", actor=ALICE, secret=SECRET)
    app = AirlockApp(ws, ServeSettings(port=0, run_controller=False))
    object.__setattr__(app.parts.webhooks, "settings", FAST)  # poll every 50 ms
    with RunningServer(app) as server:
        server.wait_ready()
        Registry(ws).set_alias("production", "chat@1.0.0", actor=ALICE, reason="launch")
        _wait(lambda: len(receiver.posts) == 1, "the server's dispatcher to deliver")
    assert json.loads(receiver.posts[0][1])["event"] == "alias.move"
    assert app.parts.webhooks._thread is None  # stopped with the server
