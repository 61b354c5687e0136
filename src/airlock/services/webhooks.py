"""Webhooks: subscriptions to audit actions, delivered by a dispatcher off the action's path.

The outbox is the audit log itself. Nothing is added to the write path of any
action: the :class:`WebhookDispatcher` reads the events after its stored cursor
(``webhook_cursor``), queues one delivery per matching subscription and event
(unique in the catalog, so two dispatchers cannot queue one twice), and POSTs
each due delivery with a bounded timeout. A slow or dead receiver delays only
its own deliveries; the action that caused the event committed long before.

Each delivery is retried with exponential backoff until it gets a 2xx answer or
has made ``max_attempts`` attempts (then it is ``failed``); every attempt is
logged with its status, error and duration (``airlock webhook deliveries``).

Wiring (the composition root, e.g. ``airlock serve`` or ``airlock controller``)::

    dispatcher = WebhookDispatcher(workspace.db, WebhookSettings())
    dispatcher.start()   # a daemon thread: queue + deliver every `interval` seconds
    ...
    dispatcher.stop()    # waits for the attempt in flight (at most `timeout` seconds)

Without it, ``airlock webhook deliver --once`` (cron) does one pass.
"""

from __future__ import annotations

import os
import secrets
import stat
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from airlock import audit
from airlock.catalog import events as event_sql
from airlock.catalog import webhooks as sql
from airlock.catalog.engine import Database
from airlock.core import webhooks as rules
from airlock.core.paging import Page, cursor_int, cursor_time, decode_cursor, page_limit, page_of
from airlock.core.roles import Action
from airlock.core.webhooks import Webhook, WebhookAttempt, WebhookDelivery
from airlock.errors import AirlockError, InvalidInput, NotFound
from airlock.services.access import authorize
from airlock.services.identity import Actor
from airlock.services.workspace import Workspace

MIN_SECRET = 16


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    timeout: float = 5.0  # seconds for one POST (connect + answer)
    max_attempts: int = 6  # then the delivery is failed
    backoff_base: float = 10.0  # seconds after the first failure; doubles each time
    backoff_cap: float = 3600.0
    batch: int = 200  # events queued / deliveries attempted per pass
    interval: float = 1.0  # seconds between passes of the started dispatcher

    @property
    def lease(self) -> timedelta:
        """How long a claimed delivery is left to its dispatcher before another may retry it."""
        return timedelta(seconds=self.timeout * 2 + 30)


@dataclass(frozen=True, slots=True)
class NewWebhook:
    row: Webhook
    secret: str | None  # the generated secret, shown once; None when given from a file


@dataclass(frozen=True, slots=True)
class AttemptResult:
    delivery_id: str
    webhook_id: str
    action: str
    attempt: int
    status: int | None
    error: str | None
    state: str  # delivered | pending (retry later) | failed


@dataclass(frozen=True, slots=True)
class DispatchReport:
    queued: int
    attempts: tuple[AttemptResult, ...]

    @property
    def delivered(self) -> int:
        return sum(a.state == "delivered" for a in self.attempts)

    @property
    def failed(self) -> int:
        return sum(a.state == "failed" for a in self.attempts)


def read_secret_file(path: Path) -> str:
    """A secret from a file readable by its owner only (like a private key)."""
    try:
        st = path.stat()
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise NotFound(f"no secret file at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read the secret file {path}: {exc}") from exc
    if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InvalidInput(
            f"the secret file {path} can be read by others (mode {stat.S_IMODE(st.st_mode):o})",
            hint=f"chmod 600 {path}",
        )
    if len(text) < MIN_SECRET or len(text) > 256:
        raise InvalidInput(f"the secret in {path} must be {MIN_SECRET} to 256 characters long")
    return text


class Webhooks:
    """Managing subscriptions (admin) and reading the delivery log."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.db = workspace.db

    def add(
        self,
        url: str,
        *,
        events: str | list[str],
        actor: Actor,
        secret: str | None = None,
        fmt: str = "json",
    ) -> NewWebhook:
        url = rules.check_url(url)
        patterns = rules.parse_events(events)
        rules.check_format(fmt)
        if secret is not None and not MIN_SECRET <= len(secret) <= 256:
            raise InvalidInput(f"a webhook secret is {MIN_SECRET} to 256 characters long")
        generated = secrets.token_hex(32) if secret is None else None
        key = secret or generated
        assert key is not None
        wid = f"wh-{secrets.token_hex(6)}"
        authorize(self.db, actor, Action.WEBHOOK_MANAGE, f"webhook:{wid}")
        with self.db.write() as conn:
            event = audit.append(
                conn,
                actor=actor.name,
                action="webhook.add",
                subject=f"webhook:{wid}",
                details={"url": rules.redacted_url(url), "events": list(patterns), "format": fmt},
            )
            sql.insert_webhook(
                conn,
                id=wid,
                url=url,
                events=patterns,
                format=fmt,
                secret=key,
                after_seq=event.seq,
                at=datetime.now(UTC),
                by=actor.name,
            )
            row = sql.webhook(conn, wid)
        assert row is not None
        return NewWebhook(row, generated)

    def subscriptions(self, *, include_removed: bool = False) -> list[Webhook]:
        with self.db.read() as conn:
            return sql.all_webhooks(conn, include_removed=include_removed)

    def subscription_page(
        self, *, include_removed: bool = False, limit: int | None = None, cursor: str | None = None
    ) -> Page[Webhook]:
        """``subscriptions`` a page at a time, in creation order (keyset on the time and id)."""
        size = page_limit(limit)
        after = decode_cursor(cursor, arity=2)
        key = (cursor_time(after[0]), str(after[1])) if after else None
        with self.db.read() as conn:
            rows = sql.all_webhooks(
                conn, include_removed=include_removed, after=key, limit=size + 1
            )
        return page_of(rows, size, lambda w: [w.created_at.isoformat(), w.id])

    def get(self, webhook_id: str) -> Webhook:
        with self.db.read() as conn:
            row = sql.webhook(conn, webhook_id)
        if row is None:
            raise NotFound(f"no webhook {webhook_id!r}", hint="run `airlock webhook ls`")
        return row

    def remove(self, webhook_id: str, *, actor: Actor, reason: str = "") -> Webhook:
        authorize(self.db, actor, Action.WEBHOOK_MANAGE, f"webhook:{webhook_id}")
        with self.db.write() as conn:
            row = sql.webhook(conn, webhook_id)
            if row is None:
                raise NotFound(f"no webhook {webhook_id!r}", hint="run `airlock webhook ls`")
            if sql.remove_webhook(conn, webhook_id, at=datetime.now(UTC), by=actor.name):
                audit.append(
                    conn,
                    actor=actor.name,
                    action="webhook.remove",
                    subject=f"webhook:{webhook_id}",
                    details={"url": rules.redacted_url(row.url), "reason": reason},
                )
            updated = sql.webhook(conn, webhook_id)
        assert updated is not None
        return updated

    def deliveries(
        self, *, limit: int | None = None, webhook_id: str | None = None
    ) -> list[WebhookDelivery]:
        with self.db.read() as conn:
            return sql.deliveries(conn, webhook_id=webhook_id, limit=limit)

    def delivery_page(
        self, *, webhook_id: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[WebhookDelivery]:
        """The delivery log a page at a time, newest first (keyset on the time, the event's
        sequence number and the delivery id)."""
        size = page_limit(limit)
        after = decode_cursor(cursor, arity=3)
        key = (cursor_time(after[0]), cursor_int(after[1]), str(after[2])) if after else None
        with self.db.read() as conn:
            rows = sql.deliveries(conn, webhook_id=webhook_id, limit=size + 1, before=key)
        return page_of(rows, size, lambda d: [d.created_at.isoformat(), d.event_seq, d.id])

    def attempts(self, delivery_id: str) -> list[WebhookAttempt]:
        with self.db.read() as conn:
            return sql.attempts(conn, delivery_id)

    def test(self, webhook_id: str, *, actor: Actor) -> str:
        """Queue a ``webhook.test`` delivery to one subscription; returns its delivery id."""
        authorize(self.db, actor, Action.WEBHOOK_MANAGE, f"webhook:{webhook_id}")
        row = self.get(webhook_id)
        if row.removed_at is not None:
            raise InvalidInput(f"webhook {webhook_id} was removed")
        did = str(uuid.uuid4())
        now = datetime.now(UTC)
        event = {
            "seq": 0,
            "at": now.isoformat(timespec="microseconds"),
            "actor": actor.name,
            "action": rules.TEST_ACTION,
            "subject": f"webhook:{webhook_id}",
            "details": {"message": "a test delivery from airlock webhook test"},
        }
        body = rules.body_for(row.format, did, event).decode("utf-8")
        with self.db.write() as conn:
            sql.insert_delivery(
                conn,
                id=did,
                webhook_id=webhook_id,
                event_seq=-(time.time_ns() // 1000),
                action=rules.TEST_ACTION,
                at=now,
                payload=body,
            )
        return did

    def send_test(
        self, webhook_id: str, *, actor: Actor, settings: WebhookSettings | None = None
    ) -> list[AttemptResult]:
        """Queue a ``webhook.test`` delivery (:meth:`test`) and attempt it now, from here."""
        did = self.test(webhook_id, actor=actor)
        return WebhookDispatcher(self.db, settings).deliver_due(only=did)

    def deliver_pass(
        self, *, actor: Actor, settings: WebhookSettings | None = None
    ) -> DispatchReport:
        """One dispatcher pass run for a caller of the API (admin): what ``airlock webhook
        deliver --once`` does on the server's own workspace."""
        authorize(self.db, actor, Action.WEBHOOK_MANAGE, "webhook:*")
        return WebhookDispatcher(self.db, settings).run_once()


class WebhookDispatcher:
    """Queues deliveries from the audit log and POSTs them; ``start()``/``stop()`` a thread.

    ``transport`` is for tests of the layer above (``httpx.MockTransport``); by
    default a real ``httpx.Client`` with ``settings.timeout`` is used.
    """

    def __init__(
        self,
        db: Database,
        settings: WebhookSettings | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.db = db
        self.settings = settings or WebhookSettings()
        self._transport = transport
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None  # of the last pass that failed (for /health)

    # -- one pass ------------------------------------------------------------------------
    def queue_new_events(self) -> int:
        """Queue a delivery for each new audit event and matching subscription."""
        queued = 0
        while True:
            with self.db.write() as conn:
                cursor = sql.lock_cursor(conn)
                subs = sql.all_webhooks(conn)
                head = event_sql.head(conn)
                head_seq = head[0] if head else 0
                start = cursor
                if start is None:
                    start = min((s.after_seq for s in subs), default=head_seq)
                events = list(audit.entries(conn, after_seq=start, limit=self.settings.batch))
                now = datetime.now(UTC)
                for e in events:
                    for s in subs:
                        if e.seq > s.after_seq and rules.matches(s.events, e.action):
                            queued += sql.insert_delivery(
                                conn,
                                id=str(uuid.uuid4()),
                                webhook_id=s.id,
                                event_seq=e.seq,
                                action=e.action,
                                at=now,
                            )
                last = events[-1].seq if events else start
                if last != cursor:
                    sql.set_cursor(conn, last, exists=cursor is not None)
            if len(events) < self.settings.batch:
                return queued

    def deliver_due(self, *, only: str | None = None) -> list[AttemptResult]:
        """Attempt every due delivery once (or only the delivery ``only``)."""
        now = datetime.now(UTC)
        with self.db.read() as conn:
            if only is None:
                due = sql.due(conn, now, self.settings.batch)
            else:
                one = sql.delivery(conn, only)
                due = [one] if one and one.state == "pending" and one.next_attempt_at <= now else []
        results = []
        with httpx.Client(
            timeout=self.settings.timeout, transport=self._transport, follow_redirects=False
        ) as client:
            for d in due:
                if self._stop.is_set():
                    break
                result = self._attempt(client, d)
                if result is not None:
                    results.append(result)
        return results

    def run_once(self) -> DispatchReport:
        queued = self.queue_new_events()
        return DispatchReport(queued, tuple(self.deliver_due()))

    def _attempt(self, client: httpx.Client, d: WebhookDelivery) -> AttemptResult | None:
        with self.db.write() as conn:
            if not sql.claim(conn, d, until=datetime.now(UTC) + self.settings.lease):
                return None  # another dispatcher has it
            hook = sql.webhook(conn, d.webhook_id)
            event = None
            if d.payload is None:
                found = list(audit.entries(conn, after_seq=d.event_seq - 1, limit=1))
                event = found[0] if found and found[0].seq == d.event_seq else None
        attempt = d.attempts + 1
        status: int | None = None
        error: str | None = None
        started = time.perf_counter()
        if hook is None or hook.removed_at is not None:
            error = "the subscription was removed"
        elif d.payload is None and event is None:
            error = f"audit event {d.event_seq} not found"
        else:
            body = (
                d.payload.encode("utf-8")
                if d.payload is not None
                else rules.body_for(hook.format, d.id, event.to_dict() if event else {})
            )
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "airlock-webhooks",
                rules.EVENT_HEADER: d.action,
                rules.DELIVERY_HEADER: d.id,
                rules.SIGNATURE_HEADER: rules.signature(hook.secret, body),
            }
            try:
                response = client.post(hook.url, content=body, headers=headers)
                status = response.status_code
                if not 200 <= status < 300:
                    error = f"HTTP {status}"
            except httpx.TimeoutException:
                error = f"timed out after {self.settings.timeout:g}s"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
        duration_ms = (time.perf_counter() - started) * 1000
        now = datetime.now(UTC)
        permanent = (
            hook is None or hook.removed_at is not None or (d.payload is None and event is None)
        )
        if error is None:
            state, next_at = "delivered", now
        elif permanent or attempt >= self.settings.max_attempts:
            state, next_at = "failed", now
        else:
            wait = rules.backoff_seconds(
                attempt, base=self.settings.backoff_base, cap=self.settings.backoff_cap
            )
            state, next_at = "pending", now + timedelta(seconds=wait)
        with self.db.write() as conn:
            sql.finish_attempt(
                conn,
                d.id,
                attempt=attempt,
                at=now,
                status=status,
                error=error,
                duration_ms=duration_ms,
                state=state,
                next_attempt_at=next_at,
            )
        return AttemptResult(d.id, d.webhook_id, d.action, attempt, status, error, state)

    # -- the background thread --------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="airlock-webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout if timeout is not None else self.settings.timeout + 5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
                self.last_error = None
            except AirlockError as exc:  # the catalog is unreachable: try again next pass
                self.last_error = exc.message
            except Exception as exc:  # never let the thread die: report, retry next pass
                self.last_error = f"{type(exc).__name__}: {exc}"
            self._stop.wait(self.settings.interval)
