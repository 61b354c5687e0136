"""Webhook rules as pure functions: which events a subscription takes, the bodies, the
signature header, and the retry schedule.

A subscription lists audit actions: an exact action (``alias.move``), every action
under a prefix (``rollout.*``) or everything (``*``). The JSON body is the audit
event plus the delivery id; the Slack body is ``{"text": ...}``. Every body is
signed with the subscription's secret: ``X-Airlock-Signature: sha256=<hex>`` is
the HMAC-SHA256 of the raw body bytes, as GitHub signs its webhooks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from airlock.errors import InvalidInput

FORMATS = ("json", "slack")
SIGNATURE_HEADER = "X-Airlock-Signature"
EVENT_HEADER = "X-Airlock-Event"
DELIVERY_HEADER = "X-Airlock-Delivery"
TEST_ACTION = "webhook.test"
_PATTERN = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$")
MAX_URL = 2048


def parse_events(text: str | Iterable[str]) -> tuple[str, ...]:
    """``"rollout.rollback, alias.move"`` -> ``("alias.move", "rollout.rollback")``; checked."""
    items = text.split(",") if isinstance(text, str) else list(text)
    events = sorted({e.strip() for e in items if e.strip()})
    if not events:
        raise InvalidInput(
            "no events to subscribe to",
            hint="name audit actions, e.g. --events rollout.rollback,alias.move (or rollout.*)",
        )
    bad = [e for e in events if not _PATTERN.match(e) or len(e) > 64]
    if bad:
        raise InvalidInput(
            f"not an audit action or pattern: {', '.join(repr(b) for b in bad[:5])}",
            hint="use an action such as alias.move, a prefix such as rollout.*, or *",
        )
    return tuple(events)


def check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > MAX_URL:
        raise InvalidInput(
            f"not an http(s) URL: {url[:200]!r}", hint="e.g. https://hooks.example.com/airlock"
        )
    return url


def redacted_url(url: str) -> str:
    """The URL without its path and query, which often hold a credential (Slack's do)."""
    parts = urlsplit(url)
    rest = "…" if parts.path.strip("/") or parts.query else ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/{rest}"


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown webhook format {fmt!r}", hint="use json or slack")
    return fmt


def matches(patterns: Iterable[str], action: str) -> bool:
    for p in patterns:
        if p == "*" or p == action or (p.endswith(".*") and action.startswith(p[:-1])):
            return True
    return False


def json_body(delivery_id: str, event: Mapping[str, Any]) -> bytes:
    """The JSON body: ``{"delivery": id, "event": action, ...the audit event}``."""
    doc = {"delivery": delivery_id, "event": event.get("action"), **dict(event)}
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def slack_text(event: Mapping[str, Any]) -> str:
    details = event.get("details") or {}
    shown = ", ".join(
        f"{k}={v}" for k, v in sorted(details.items()) if isinstance(v, str | int | float | bool)
    )
    line = f"[airlock] {event.get('actor')} {event.get('action')} {event.get('subject')}"
    return f"{line} ({shown[:300]})" if shown else line


def slack_body(event: Mapping[str, Any]) -> bytes:
    return json.dumps({"text": slack_text(event)}).encode("utf-8")


def body_for(fmt: str, delivery_id: str, event: Mapping[str, Any]) -> bytes:
    return slack_body(event) if fmt == "slack" else json_body(delivery_id, event)


def signature(secret: str, body: bytes) -> str:
    """The ``X-Airlock-Signature`` value: ``sha256=`` + hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def signature_matches(secret: str, body: bytes, header: str) -> bool:
    """What a receiver runs: a constant-time comparison with the expected header."""
    return hmac.compare_digest(signature(secret, body), header)


def backoff_seconds(attempt: int, *, base: float, cap: float) -> float:
    """Wait after failed attempt ``attempt`` (1-based): base, 2·base, 4·base ... at most cap."""
    return float(min(cap, base * 2 ** max(0, attempt - 1)))
