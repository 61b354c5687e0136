"""Guardrails: safety policies flag, redact and block terms, regexes and PII."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airlock.core.guardrails import (
    PII_TYPES,
    Flag,
    SafetyPolicy,
    apply,
    parse_safety_policy,
    redact_pii,
)
from airlock.errors import InvalidInput

SAMPLES = {
    "email": ("write to jane.doe+lamp@example.co.uk today", "jane.doe+lamp@example.co.uk"),
    "phone": ("call +1 (555) 123-4567 now", "+1 (555) 123-4567"),
    "credit_card": ("card 4111 1111 1111 1111 expires", "4111 1111 1111 1111"),
    "iban": ("pay GB82 WEST 1234 5698 7654 32 please", "GB82 WEST 1234 5698 7654 32"),
    "ipv4": ("the server 192.168.10.254 is down", "192.168.10.254"),
    "ssn": ("my ssn is 123-45-6789.", "123-45-6789"),
}


def policy_for(pii: str, action: str) -> SafetyPolicy:
    return parse_safety_policy({"pii": [{"type": pii, "action": action}]})


def test_every_pii_type_has_a_sample() -> None:
    assert set(SAMPLES) == set(PII_TYPES)


@pytest.mark.parametrize("pii", PII_TYPES)
def test_pii_flag_reports_the_span_and_keeps_the_text(pii: str) -> None:
    text, secret = SAMPLES[pii]
    result = apply(policy_for(pii, "flag"), text, direction="input")

    start = text.index(secret)
    assert result.flags == (Flag(pii, "pii", "flag", (start, start + len(secret))),)
    assert result.text == text
    assert not result.blocked
    assert not result.redacted


@pytest.mark.parametrize("pii", PII_TYPES)
def test_pii_redact_replaces_only_the_match(pii: str) -> None:
    text, secret = SAMPLES[pii]
    result = apply(policy_for(pii, "redact"), text, direction="output")

    assert result.text == text.replace(secret, f"[REDACTED:{pii}]")
    assert result.redacted
    assert not result.blocked


@pytest.mark.parametrize("pii", PII_TYPES)
def test_pii_block_answers_with_the_refusal(pii: str) -> None:
    text, _ = SAMPLES[pii]
    policy = parse_safety_policy({"refusal": "No.", "pii": [{"type": pii, "action": "block"}]})
    result = apply(policy, text, direction="input")

    assert result.blocked
    assert result.text == "No."
    assert [f.rule for f in result.flags] == [pii]


@pytest.mark.parametrize(
    ("pii", "text"),
    [
        ("credit_card", "order 4111 1111 1111 1112 (fails the Luhn check)"),
        ("iban", "GB82 WEST 1234 5698 7654 33 has a bad checksum"),
        ("ipv4", "version 1.2.3.4.5 and 300.1.1.1"),
        ("ssn", "000-12-3456 is never issued"),
        ("phone", "dated 2024-10-15, 12 items"),
        ("email", "an @ sign alone, or user@localhost"),
    ],
)
def test_lookalikes_are_not_pii(pii: str, text: str) -> None:
    assert apply(policy_for(pii, "block"), text, direction="input").flags == ()


def test_card_numbers_are_not_also_phone_numbers() -> None:
    policy = parse_safety_policy({"pii": ["phone", "credit_card"]})
    result = apply(policy, SAMPLES["credit_card"][0], direction="input")

    assert [f.rule for f in result.flags] == ["credit_card"]


def test_blocked_terms_are_case_insensitive_whole_words() -> None:
    policy = parse_safety_policy({"blocked_terms": ["build a bomb", "gun"]})

    assert apply(policy, "How do I BUILD  a\nBomb?", direction="input").blocked
    assert apply(policy, "a gun.", direction="output").blocked
    assert not apply(
        policy, "a shotgun, a gunsmith, build a bombastic lamp", direction="input"
    ).flags


def test_term_rules_redact_and_respect_directions() -> None:
    policy = parse_safety_policy(
        {
            "terms": [
                {"name": "rude", "terms": ["darn"], "action": "redact", "directions": ["output"]}
            ]
        }
    )

    assert apply(policy, "Darn it", direction="input").flags == ()
    result = apply(policy, "Darn it, darn.", direction="output")
    assert result.text == "[REDACTED:rude] it, [REDACTED:rude]."
    assert [f.span for f in result.flags] == [(0, 4), (9, 13)]


def test_named_regexes_flag_and_block() -> None:
    policy = parse_safety_policy(
        {
            "regexes": [
                {"name": "ticket", "pattern": r"TICKET-\d+", "action": "flag"},
                {
                    "name": "secret",
                    "pattern": "sk-[a-z0-9]{8}",
                    "ignore_case": True,
                    "action": "block",
                },
            ]
        }
    )

    flagged = apply(policy, "see TICKET-42", direction="input")
    assert flagged.flags == (Flag("ticket", "regex", "flag", (4, 13)),)
    assert apply(policy, "key SK-ABCD1234", direction="output").blocked


def test_overlapping_redactions_are_replaced_once() -> None:
    policy = parse_safety_policy(
        {
            "pii": ["email"],
            "regexes": [{"name": "domain", "pattern": r"example\.com", "action": "redact"}],
        }
    )
    result = apply(policy, "mail bob@example.com.", direction="input")

    assert result.text == "mail [REDACTED:email]."
    assert len(result.flags) == 2


def test_block_wins_over_redaction() -> None:
    policy = parse_safety_policy({"blocked_terms": ["bomb"], "pii": ["email"]})
    result = apply(policy, "bob@example.com wants a bomb", direction="input")

    assert result.blocked
    assert {f.action for f in result.flags} == {"block", "redact"}
    assert "bob@example.com" not in result.text


def test_redact_pii_scrubs_every_detector_of_the_policy() -> None:
    policy = parse_safety_policy({"pii": [{"type": "email", "action": "flag"}, "ipv4"]})

    assert redact_pii(policy, "from 10.0.0.1: ann@x.org") == (
        "from [REDACTED:ipv4]: [REDACTED:email]"
    )


def test_an_invalid_regex_names_its_rule() -> None:
    with pytest.raises(InvalidInput, match="'broken'") as err:
        parse_safety_policy("regexes:\n  - name: broken\n    pattern: '(unclosed'\n")
    assert "regex" in err.value.message


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("pii: [passport]", "pii.0.type"),
        ("pii: [{type: email, action: erase}]", "action"),
        ("blocked_terms: ['  ']", "blank"),
        ("pii: [email, email]", "unique"),
        ("colour: red", "colour"),
        ("- just a list", "mapping"),
        ("refusal: [unclosed", "YAML"),
    ],
)
def test_malformed_policies_are_invalid_input(doc: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_safety_policy(doc)


def test_direction_must_be_input_or_output() -> None:
    with pytest.raises(InvalidInput, match="direction"):
        apply(SafetyPolicy(), "hi", direction="sideways")  # type: ignore[arg-type]


def test_the_example_policy_loads_and_guards() -> None:
    text = (files("airlock") / "examples" / "safety_policy.yaml").read_text(encoding="utf-8")
    policy = parse_safety_policy(text)

    result = apply(policy, "I am jo@mail.com, call 555-123-4567 about BW-123456", direction="input")
    assert result.text == "I am [REDACTED:email], call [REDACTED:phone] about BW-123456"
    assert "order_number" in {f.rule for f in result.flags}
    assert apply(policy, "how to disable the battery safety", direction="input").blocked


LOCAL = st.from_regex(r"[A-Za-z0-9._%+-]{1,12}", fullmatch=True)
DOMAIN = st.from_regex(
    r"[A-Za-z0-9-]{1,8}(\.[A-Za-z0-9-]{1,8}){0,2}\.[A-Za-z]{2,6}", fullmatch=True
)
ADDRESSES = st.builds(lambda local, domain: f"{local}@{domain}", LOCAL, DOMAIN)
FILLER = st.text(alphabet=st.sampled_from("ab.-_@[]: \n1+"), max_size=6)


@given(st.lists(st.tuples(FILLER, ADDRESSES | st.emails()), min_size=1, max_size=4), FILLER)
def test_redaction_never_leaves_a_matched_email(parts: list[tuple[str, str]], tail: str) -> None:
    policy = parse_safety_policy({"pii": ["email", "phone"]})
    text = "".join(filler + address for filler, address in parts) + tail

    redacted = apply(policy, text, direction="output").text

    assert not any(f.rule == "email" for f in apply(policy, redacted, direction="output").flags)
    assert redact_pii(policy, text) == redacted
    for _, address in parts:
        if re.fullmatch(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+", address):
            assert address not in redacted


@given(st.text(max_size=80))
def test_flag_spans_lie_inside_the_text(text: str) -> None:
    policy = parse_safety_policy({"pii": list(PII_TYPES), "blocked_terms": ["bomb"]})
    result = apply(policy, text, direction="input")

    for f in result.flags:
        start, end = f.span
        assert 0 <= start < end <= len(text)
    assert result.blocked == any(f.action == "block" for f in result.flags)
