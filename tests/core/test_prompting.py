"""Prompt templates render chat messages; decoding defaults merge with request values."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airlock.core.prompting import (
    DecodingDefaults,
    DecodingParams,
    PromptTemplate,
    merge_decoding,
    parse_decoding_defaults,
    parse_prompt_template,
)
from airlock.errors import InvalidInput

EXAMPLES = files("airlock") / "examples"


def test_default_template_is_a_chat_transcript_ending_with_the_assistant_turn() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "How do I charge it?"},
    ]

    assert PromptTemplate().render(messages) == (
        "System: Be brief.\nUser: Hi\nAssistant: Hello!\nUser: How do I charge it?\nAssistant:"
    )


def test_the_default_system_prompt_is_used_only_when_the_request_has_none() -> None:
    template = PromptTemplate(system="You help with lamps.")

    assert template.render_prompt("Hi") == "System: You help with lamps.\nUser: Hi\nAssistant:"
    own = template.render(
        [{"role": "system", "content": "Pirate talk."}, {"role": "user", "content": "Hi"}]
    )
    assert own == "System: Pirate talk.\nUser: Hi\nAssistant:"


def test_a_template_naming_system_takes_it_out_of_the_messages() -> None:
    template = PromptTemplate(
        system="Default.",
        template="<<{system}>>\n{messages}>",
        message_format="[{role}] {content}\n",
        roles={"user": "Q", "assistant": "A"},
    )
    rendered = template.render(
        [{"role": "system", "content": "Given."}, {"role": "user", "content": "one"}]
    )

    assert rendered == "<<Given.>>\n[Q] one\n>"
    assert template.render_prompt("two") == "<<Default.>>\n[Q] two\n>"


def test_prompt_placeholder_is_the_last_user_message() -> None:
    template = parse_prompt_template(
        (EXAMPLES / "prompt_template.yaml").read_text(encoding="utf-8")
    )
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "How do I "},
                {"type": "text", "text": "reset it?"},
            ],
        },
    ]

    assert template.render(messages) == "How do I reset it?\n\n"


def test_braces_in_messages_are_text_not_placeholders() -> None:
    assert PromptTemplate(template="{{{prompt}}}").render_prompt("{system} {0}") == "{{system} {0}}"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"template": "{question}"}, "template"),
        ({"template": "{prompt!r}"}, "template"),
        ({"template": "{prompt"}, "template"),
        ({"message_format": "{name}: {content}"}, "message_format"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_templates_are_invalid_input(fields: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_prompt_template(fields)


@pytest.mark.parametrize(
    "messages",
    [
        [],
        [{"role": "system", "content": "only a system prompt"}],
        [{"content": "no role"}],
        [{"role": "user", "content": 42}],
    ],
)
def test_bad_messages_are_invalid_input(messages: list[dict[str, Any]]) -> None:
    with pytest.raises(InvalidInput, match="messages"):
        PromptTemplate().render(messages)


def test_request_values_override_the_defaults() -> None:
    defaults = DecodingDefaults(
        temperature=0.7, top_p=0.9, max_tokens=64, stop=("\nUser:",), seed=1
    )

    assert merge_decoding(defaults) == DecodingParams(0.7, 0.9, 64, ("\nUser:",), 1)
    merged = merge_decoding(
        defaults,
        {
            "temperature": 0,
            "top_p": 0.5,
            "max_tokens": 10,
            "stop": "END",
            "seed": 9,
            "model": "chat",
        },
    )
    assert merged == DecodingParams(0.0, 0.5, 10, ("\nUser:", "END"), 9)
    assert merged.as_kwargs()["stop"] == ("\nUser:", "END")


def test_none_means_not_given_and_max_completion_tokens_is_understood() -> None:
    defaults = DecodingDefaults()
    merged = merge_decoding(
        defaults, {"temperature": None, "max_completion_tokens": 7, "stop": None}
    )

    assert merged.temperature == defaults.temperature
    assert merged.max_tokens == 7
    assert merged.stop == ()


def test_repeated_stop_sequences_are_kept_once() -> None:
    defaults = DecodingDefaults(stop=("\nUser:", "###"))

    assert merge_decoding(defaults, {"stop": ["###", "\nUser:", "END"]}).stop == (
        "\nUser:",
        "###",
        "END",
    )


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"temperature": -0.01}, "temperature"),
        ({"temperature": 2.5}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": "warm"}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"top_p": 1.01}, "top_p"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 4097}, "max_tokens"),
        ({"max_tokens": 3.5}, "max_tokens"),
        ({"max_tokens": True}, "max_tokens"),
        ({"seed": "seven"}, "seed"),
        ({"stop": ""}, "stop"),
        ({"stop": ["a", 1]}, "stop"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
    ],
)
def test_out_of_range_requests_are_invalid_input(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        merge_decoding(DecodingDefaults(max_tokens_cap=4096), overrides)


def test_defaults_are_checked_too() -> None:
    with pytest.raises(InvalidInput, match="max_tokens"):
        parse_decoding_defaults("max_tokens: 100\nmax_tokens_cap: 50")
    with pytest.raises(InvalidInput, match="temperature"):
        parse_decoding_defaults({"temperature": -1})


def test_the_example_decoding_defaults_load() -> None:
    defaults = parse_decoding_defaults((EXAMPLES / "decoding.yaml").read_text(encoding="utf-8"))

    assert defaults.stop == ("\n\n",)
    assert 0 < defaults.temperature < 1


OPTIONAL_FLOAT = st.none() | st.floats(min_value=0, max_value=2)


@given(
    temperature=OPTIONAL_FLOAT,
    top_p=st.none() | st.floats(min_value=0, max_value=1, exclude_min=True),
    max_tokens=st.none() | st.integers(min_value=1, max_value=512),
    seed=st.none() | st.integers(min_value=0, max_value=2**32),
    stop=st.lists(st.text(min_size=1, max_size=5), max_size=4),
)
def test_merge_takes_each_given_value_and_defaults_the_rest(
    temperature: float | None,
    top_p: float | None,
    max_tokens: int | None,
    seed: int | None,
    stop: list[str],
) -> None:
    defaults = DecodingDefaults(
        temperature=0.5, top_p=0.8, max_tokens=32, max_tokens_cap=512, seed=3
    )
    request = {
        "temperature": temperature,
        "top_p": top_p,
        "max_tokens": max_tokens,
        "seed": seed,
        "stop": stop,
    }

    merged = merge_decoding(defaults, request)

    assert merged.temperature == (0.5 if temperature is None else temperature)
    assert merged.top_p == (0.8 if top_p is None else top_p)
    assert merged.max_tokens == (32 if max_tokens is None else max_tokens)
    assert merged.seed == (3 if seed is None else seed)
    assert set(merged.stop) == set(stop)
    assert len(merged.stop) == len(set(merged.stop))


@given(st.floats(max_value=0, exclude_max=True) | st.floats(min_value=2, exclude_min=True))
def test_any_temperature_out_of_range_is_refused(temperature: float) -> None:
    with pytest.raises(InvalidInput, match="temperature"):
        merge_decoding(DecodingDefaults(), {"temperature": temperature})
