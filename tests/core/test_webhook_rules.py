"""The pure webhook rules: matching, parsing, bodies, signatures, backoff, redaction."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airlock.core import webhooks as rules
from airlock.errors import InvalidInput


def test_patterns_match_exact_prefix_and_everything() -> None:
    assert rules.matches(["alias.move"], "alias.move")
    assert not rules.matches(["alias.move"], "alias.moved")
    assert rules.matches(["rollout.*"], "rollout.rollback")
    assert not rules.matches(["rollout.*"], "rollouts.x")
    assert rules.matches(["*"], "access.denied")
    assert not rules.matches([], "alias.move")


def test_events_are_parsed_sorted_and_checked() -> None:
    assert rules.parse_events(" rollout.rollback, alias.move,,alias.move") == (
        "alias.move",
        "rollout.rollback",
    )
    for bad in ("", " , ", "Alias.Move", "alias..move", "alias.move;drop", "*.move"):
        with pytest.raises(InvalidInput):
            rules.parse_events(bad)


@given(st.text(min_size=16, max_size=64), st.binary(max_size=512))
def test_the_signature_is_githubs_hmac_sha256_of_the_body(secret: str, body: bytes) -> None:
    header = rules.signature(secret, body)
    assert header == "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert rules.signature_matches(secret, body, header)
    assert not rules.signature_matches(secret, body + b"x", header)


def test_backoff_doubles_up_to_the_cap() -> None:
    waits = [rules.backoff_seconds(n, base=10, cap=60) for n in range(1, 6)]
    assert waits == [10, 20, 40, 60, 60]


def test_bodies() -> None:
    event = {
        "seq": 7,
        "action": "alias.move",
        "actor": "a",
        "subject": "chat@prod",
        "details": {"reason": "go", "n": {"x": 1}},
    }
    doc = json.loads(rules.json_body("d-1", event))
    assert doc["delivery"] == "d-1" and doc["event"] == "alias.move" and doc["seq"] == 7
    assert json.loads(rules.slack_body(event)) == {
        "text": "[airlock] a alias.move chat@prod (reason=go)"
    }


def test_urls_are_checked_and_redacted() -> None:
    assert rules.check_url(" https://h.example/x ") == "https://h.example/x"
    with pytest.raises(InvalidInput):
        rules.check_url("file:///etc/passwd")
    assert (
        rules.redacted_url("https://hooks.slack.com/services/T/B/SECRET")
        == "https://hooks.slack.com/…"
    )
    assert rules.redacted_url("http://127.0.0.1:8080/") == "http://127.0.0.1:8080/"
