"""``--log-prompts`` on a release whose safety policy has no PII rule still redacts PII."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from airlock.core.traffic import TrafficPlan
from airlock.gateway.engine import GatewaySettings
from gateway.support import Releases, Server, chat, serve_gateway


def test_log_prompts_redacts_default_pii_whatever_the_policy(
    releases: Releases,
    upstream: tuple[Server, list[dict[str, Any]]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    up, _ = upstream
    policy = {"blocked_terms": ["detonator"], "pii": [{"type": "email", "action": "flag"}]}
    ref = releases.upstream("chat", "1.0.0", up.url, "echo", files={"safety_policy.yaml": policy})
    gateway = releases.gateway(GatewaySettings(log_prompts=True))
    with serve_gateway(gateway) as server:
        server.call(gateway.apply_plan(TrafficPlan.all_stable("chat", ref)))
        with caplog.at_level(logging.INFO, logger="airlock.gateway.requests"):
            r = chat(server, "chat", "I am bob@example.com, call me on +1 415 555 0100")
    assert r.status_code == 200
    logged = " ".join(rec.getMessage() for rec in caplog.records)
    assert "chat@1.0.0" in logged
    assert "bob@example.com" not in logged and "555 0100" not in logged
    assert "[REDACTED:email]" in logged and "[REDACTED:phone]" in logged
