"""What ``--log-prompts`` writes: every built-in PII detector always, whatever the release's
safety policy says; a policy can only add what it redacts."""

from __future__ import annotations

import pytest

from airlock.core.guardrails import parse_safety_policy, redact_for_log

PROMPT = (
    "mail bob@example.com or call +44 20 7946 0958 about TCK-1234; card 4111 1111 1111 1111, "
    "ssn 123-45-6789, from 10.1.2.3, IBAN GB82 WEST 1234 5698 7654 32"
)
SECRETS = ("bob@example.com", "7946 0958", "4111 1111", "123-45-6789", "10.1.2.3", "GB82")


@pytest.mark.parametrize(
    "policy",
    [
        None,
        "blocked_terms: [detonator]",  # a policy with no PII rule at all
        "pii: [email]",  # one PII rule: the others still apply in the log
        "pii: [{type: phone, action: flag, directions: [output]}]",  # flag-only, output-only
    ],
)
def test_default_pii_is_always_redacted_in_logs(policy: str | None) -> None:
    logged = redact_for_log(parse_safety_policy(policy) if policy else None, PROMPT)
    for secret in SECRETS:
        assert secret not in logged, (policy, secret)
    assert "[REDACTED:email]" in logged and "[REDACTED:phone]" in logged
    assert "TCK-1234" in logged  # not PII by default


def test_a_policy_adds_its_own_redactions() -> None:
    policy = parse_safety_policy(
        "regexes: [{name: ticket, pattern: 'TCK-\\d+', action: redact},"
        " {name: mood, pattern: about, action: flag}]"
    )
    logged = redact_for_log(policy, PROMPT)
    assert "TCK-1234" not in logged and "[REDACTED:ticket]" in logged
    assert "about" in logged  # a flag rule is reported, not redacted
    assert "bob@example.com" not in logged
