"""Where ``airlock feedback``, ``airlock judge`` and ``airlock webhook`` send their work.

``open_feedback()`` picks the transport once (:func:`airlock.cli.backend.open_side`):
:class:`LocalFeedback` calls the services (:class:`~airlock.services.transcripts.Transcripts`,
:class:`~airlock.services.webhooks.Webhooks`) as the caller's token;
:class:`RemoteFeedback` calls the REST API as the same token and rebuilds the same values.
Who may export, label and manage webhooks is decided by the services either way.

Remotely, the export is written and audited on the server (redacted there, as locally)
and streamed here, checked against the sha256 its audit event recorded; webhook
deliveries (``test``, ``deliver --once``) go out from the server, which is where the
subscriptions, their secrets and the outbox live.

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from airlock.client import Client
    from airlock.core.calibration import Agreement
    from airlock.core.webhooks import Webhook, WebhookAttempt, WebhookDelivery
    from airlock.services.feedback_export import ExportResult
    from airlock.services.webhooks import AttemptResult, DispatchReport, NewWebhook
    from airlock.services.workspace import Workspace

ProgressFn = Callable[[int], None]


class FeedbackSide(Protocol):
    """What the feedback, judge and webhook commands call; local and remote alike."""

    remote: bool

    def export(
        self,
        service: str,
        out: Path,
        *,
        since: datetime | None,
        release: str | None,
        min_score: float | None,
        force: bool,
        on_start: ProgressFn | None = None,
        on_bytes: ProgressFn | None = None,
    ) -> ExportResult: ...

    def label(self, response_id: str, good: bool, *, reason: str) -> str:
        """Record the label; the answer's service."""
        ...

    def judge_agreement(self, service: str, judge: str, *, threshold: float) -> Agreement: ...

    def add_webhook(self, url: str, *, events: str, secret: str | None, fmt: str) -> NewWebhook: ...

    def webhooks(self, *, include_removed: bool) -> list[Webhook]:
        """Subscriptions; remotely ``secret`` is empty and ``url`` has no path."""
        ...

    def remove_webhook(self, webhook_id: str, *, reason: str) -> Webhook: ...

    def deliveries(
        self, *, limit: int | None, webhook_id: str | None, attempts: bool
    ) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
        """Deliveries, newest first, each with its attempts (none unless ``attempts``)."""
        ...

    def test_webhook(self, webhook_id: str) -> list[AttemptResult]: ...

    def deliver_once(self, *, timeout: float) -> DispatchReport: ...

    def deliver_forever(
        self, *, interval: float, timeout: float, on_pass: Callable[[DispatchReport], None]
    ) -> None:
        """Deliver until interrupted (Ctrl-C): here the dispatcher's thread; against a server,
        one pass there every ``interval`` seconds (``on_pass`` hears each)."""
        ...


@contextmanager
def open_feedback() -> Iterator[FeedbackSide]:
    """The remote side when a server is configured, else the local workspace's."""
    from airlock.cli.backend import open_side

    local: Callable[[Workspace], FeedbackSide] = LocalFeedback
    remote: Callable[[Client], FeedbackSide] = RemoteFeedback
    with open_side(local, remote) as side:
        yield side


class LocalFeedback:
    remote = False

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def _actor(self) -> Any:
        from airlock.cli.common import actor

        return actor(self.ws)

    def export(
        self,
        service: str,
        out: Path,
        *,
        since: datetime | None,
        release: str | None,
        min_score: float | None,
        force: bool,
        on_start: ProgressFn | None = None,
        on_bytes: ProgressFn | None = None,
    ) -> ExportResult:
        from airlock.services.feedback_export import FeedbackExport

        return FeedbackExport(self.ws).export(
            service,
            out,
            actor=self._actor(),
            since=since,
            release=release,
            min_score=min_score,
            force=force,
        )

    def label(self, response_id: str, good: bool, *, reason: str) -> str:
        from airlock.services.transcripts import Transcripts

        return Transcripts(self.ws).label(response_id, good, actor=self._actor(), reason=reason)

    def judge_agreement(self, service: str, judge: str, *, threshold: float) -> Agreement:
        from airlock.services.transcripts import Transcripts

        return Transcripts(self.ws).judge_agreement(service, judge, threshold=threshold)

    def add_webhook(self, url: str, *, events: str, secret: str | None, fmt: str) -> NewWebhook:
        from airlock.services.webhooks import Webhooks

        return Webhooks(self.ws).add(
            url, events=events, actor=self._actor(), secret=secret, fmt=fmt
        )

    def webhooks(self, *, include_removed: bool) -> list[Webhook]:
        from airlock.services.webhooks import Webhooks

        return Webhooks(self.ws).subscriptions(include_removed=include_removed)

    def remove_webhook(self, webhook_id: str, *, reason: str) -> Webhook:
        from airlock.services.webhooks import Webhooks

        return Webhooks(self.ws).remove(webhook_id, actor=self._actor(), reason=reason)

    def deliveries(
        self, *, limit: int | None, webhook_id: str | None, attempts: bool
    ) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
        from airlock.services.webhooks import Webhooks

        hooks = Webhooks(self.ws)
        rows = hooks.deliveries(limit=limit, webhook_id=webhook_id)
        return [(d, hooks.attempts(d.id) if attempts else []) for d in rows]

    def test_webhook(self, webhook_id: str) -> list[AttemptResult]:
        from airlock.services.webhooks import Webhooks

        return Webhooks(self.ws).send_test(webhook_id, actor=self._actor())

    def deliver_once(self, *, timeout: float) -> DispatchReport:
        from airlock.services.webhooks import WebhookDispatcher, WebhookSettings

        return WebhookDispatcher(self.ws.db, WebhookSettings(timeout=timeout)).run_once()

    def deliver_forever(
        self, *, interval: float, timeout: float, on_pass: Callable[[DispatchReport], None]
    ) -> None:
        import time

        from airlock.services.webhooks import WebhookDispatcher, WebhookSettings

        settings = WebhookSettings(timeout=timeout, interval=interval)
        dispatcher = WebhookDispatcher(self.ws.db, settings)
        dispatcher.start()
        try:
            while True:
                time.sleep(3600)
        finally:
            dispatcher.stop()


class RemoteFeedback:
    """The same calls through the REST API; the bodies parsed back into the same values."""

    remote = True

    def __init__(self, client: Client) -> None:
        self.client = client

    def export(
        self,
        service: str,
        out: Path,
        *,
        since: datetime | None,
        release: str | None,
        min_score: float | None,
        force: bool,
        on_start: ProgressFn | None = None,
        on_bytes: ProgressFn | None = None,
    ) -> ExportResult:
        return self.client.export_feedback(
            service,
            out,
            since=since,
            release=release,
            min_score=min_score,
            force=force,
            on_start=on_start,
            on_bytes=on_bytes,
        )

    def label(self, response_id: str, good: bool, *, reason: str) -> str:
        return str(self.client.label(response_id, good=good, reason=reason)["service"])

    def judge_agreement(self, service: str, judge: str, *, threshold: float) -> Agreement:
        from airlock.cli.rollout_backend import rebuild
        from airlock.core.calibration import Agreement

        out = self.client.judge_agreement(service, judge=judge, threshold=threshold)
        return rebuild(Agreement, out)

    def add_webhook(self, url: str, *, events: str, secret: str | None, fmt: str) -> NewWebhook:
        from airlock.services.webhooks import NewWebhook

        out = self.client.add_webhook(url, events=events, secret=secret, fmt=fmt)
        return NewWebhook(_webhook(out["webhook"]), out["secret"])

    def webhooks(self, *, include_removed: bool) -> list[Webhook]:
        return [_webhook(w) for w in self.client.webhooks(include_removed=include_removed)]

    def remove_webhook(self, webhook_id: str, *, reason: str) -> Webhook:
        return _webhook(self.client.remove_webhook(webhook_id, reason=reason))

    def deliveries(
        self, *, limit: int | None, webhook_id: str | None, attempts: bool
    ) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
        from airlock.cli.rollout_backend import rebuild
        from airlock.core.webhooks import WebhookAttempt, WebhookDelivery

        found = self.client.webhook_deliveries(
            limit=limit or 0, webhook_id=webhook_id, attempts=attempts
        )
        return [
            (rebuild(WebhookDelivery, d), [rebuild(WebhookAttempt, a) for a in d["attempt_log"]])
            for d in found
        ]

    def test_webhook(self, webhook_id: str) -> list[AttemptResult]:
        return [_attempt(a) for a in self.client.test_webhook(webhook_id)]

    def deliver_once(self, *, timeout: float) -> DispatchReport:
        from airlock.services.webhooks import DispatchReport

        out = self.client.deliver_webhooks(timeout=timeout)
        return DispatchReport(int(out["queued"]), tuple(_attempt(a) for a in out["attempts"]))

    def deliver_forever(
        self, *, interval: float, timeout: float, on_pass: Callable[[DispatchReport], None]
    ) -> None:
        import time

        while True:
            on_pass(self.deliver_once(timeout=timeout))
            time.sleep(interval)


def _webhook(d: Mapping[str, Any]) -> Webhook:
    """A subscription as the API shows it: never its secret, so ``secret`` is empty here."""
    from airlock.cli.rollout_backend import rebuild
    from airlock.core.webhooks import Webhook

    return rebuild(Webhook, d, secret="", events=tuple(d["events"]))


def _attempt(d: Mapping[str, Any]) -> AttemptResult:
    from airlock.cli.rollout_backend import rebuild
    from airlock.services.webhooks import AttemptResult

    return rebuild(AttemptResult, d)


__all__ = ["FeedbackSide", "LocalFeedback", "RemoteFeedback", "open_feedback"]
