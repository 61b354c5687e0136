"""Prompt templates and decoding defaults: how a release turns a chat request into the
text its model continues, and with which sampling parameters.

``PromptTemplate`` renders OpenAI chat messages: each message through ``message_format``
(``{role}`` is the role's label, ``{content}`` its text), then the whole through
``template``, whose placeholders are ``{messages}`` (every rendered message),
``{system}`` (the system prompt: the request's, else the template's default; when the
template names it, system messages are left out of ``{messages}``) and ``{prompt}``
(the last user message). ``{{`` and ``}}`` are literal braces.

``DecodingDefaults`` are a release's sampling defaults; ``merge_decoding`` lays a
request's values over them and checks bounds, returning the ``DecodingParams`` a
runtime uses. A request's stop sequences are added to the release's own, which encode
the prompt format and always apply.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from airlock.core.documents import parse_model
from airlock.core.request_limits import clip
from airlock.errors import InvalidInput

TEMPLATE_FIELDS = frozenset({"messages", "system", "prompt"})
MAX_TEMPERATURE = 2.0
MAX_REQUEST_STOPS = 4
_M = TypeVar("_M", bound=BaseModel)
_RANGES_HINT = "temperature 0..2, top_p in (0, 1], max_tokens from 1 to the release's cap"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PromptTemplate(_Frozen):
    """How chat messages become the prompt text a completion model continues."""

    system: str = ""
    template: str = "{messages}Assistant:"
    message_format: str = "{role}: {content}\n"
    roles: dict[str, str] = Field(
        default_factory=lambda: {
            "system": "System",
            "user": "User",
            "assistant": "Assistant",
            "tool": "Tool",
        }
    )

    @field_validator("template")
    @classmethod
    def _template_fields(cls, v: str) -> str:
        _check_fields(v, TEMPLATE_FIELDS, "template")
        return v

    @field_validator("message_format")
    @classmethod
    def _message_fields(cls, v: str) -> str:
        _check_fields(v, frozenset({"role", "content"}), "message_format")
        return v

    def render(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """Render OpenAI chat messages (``{"role": ..., "content": ...}``) into prompt text."""
        parsed = [_message(i, m) for i, m in enumerate(messages)]
        if not any(role != "system" for role, _ in parsed):
            raise InvalidInput("messages must include at least one user or assistant message")
        system_given = [content for role, content in parsed if role == "system"]
        system = "\n".join(system_given) if system_given else self.system
        names_system = "system" in _fields(self.template)
        shown = [(r, c) for r, c in parsed if not (names_system and r == "system")]
        if not names_system and not system_given and self.system:
            shown.insert(0, ("system", self.system))
        rendered = "".join(
            self.message_format.format(role=self.roles.get(r, r.capitalize()), content=c)
            for r, c in shown
        )
        prompt = next((c for r, c in reversed(parsed) if r == "user"), "")
        return self.template.format(messages=rendered, system=system, prompt=prompt)

    def render_prompt(self, prompt: str) -> str:
        """Render a plain completion prompt as one user message."""
        return self.render([{"role": "user", "content": prompt}])


class DecodingDefaults(_Frozen):
    """A release's sampling defaults and the largest ``max_tokens`` it accepts."""

    temperature: float = Field(default=1.0, ge=0, le=MAX_TEMPERATURE)
    top_p: float = Field(default=1.0, gt=0, le=1)
    max_tokens: int = Field(default=128, ge=1)
    max_tokens_cap: int = Field(default=2048, ge=1)
    stop: tuple[str, ...] = ()
    seed: int | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _within_cap(self) -> DecodingDefaults:
        if self.max_tokens > self.max_tokens_cap:
            raise ValueError(f"max_tokens {self.max_tokens} is above max_tokens_cap")
        if any(not s for s in self.stop):
            raise ValueError("stop sequences must not be empty")
        return self


@dataclass(frozen=True, slots=True)
class DecodingParams:
    """The checked parameters of one generation."""

    temperature: float
    top_p: float
    max_tokens: int
    stop: tuple[str, ...]
    seed: int | None

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for a runtime's ``generate``/``stream``."""
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "stop": self.stop,
            "seed": self.seed,
        }


def merge_decoding(
    defaults: DecodingDefaults, overrides: Mapping[str, Any] | None = None
) -> DecodingParams:
    """Request values (``None`` means not given) over the release's defaults, checked.

    Understands the OpenAI request fields ``temperature``, ``top_p``, ``max_tokens``
    (or ``max_completion_tokens``), ``stop`` (a string or a list) and ``seed``; other
    keys are ignored, so a whole request body can be passed.
    """
    req = {k: v for k, v in (overrides or {}).items() if v is not None}
    if "max_tokens" not in req and "max_completion_tokens" in req:
        req["max_tokens"] = req["max_completion_tokens"]
    temperature = _number(req, "temperature", defaults.temperature)
    if not 0 <= temperature <= MAX_TEMPERATURE:
        raise InvalidInput(
            f"temperature must be between 0 and 2, got {temperature}", hint=_RANGES_HINT
        )
    top_p = _number(req, "top_p", defaults.top_p)
    if not 0 < top_p <= 1:
        raise InvalidInput(f"top_p must be in (0, 1], got {top_p}", hint=_RANGES_HINT)
    max_tokens = _integer(req, "max_tokens", defaults.max_tokens)
    if not 1 <= max_tokens <= defaults.max_tokens_cap:
        raise InvalidInput(
            f"max_tokens must be between 1 and {defaults.max_tokens_cap}, got {max_tokens}",
            hint=_RANGES_HINT,
        )
    seed = _integer(req, "seed", 0) if "seed" in req else defaults.seed
    stop = req.get("stop", ())
    stop = [stop] if isinstance(stop, str) else stop
    if not isinstance(stop, list | tuple) or not all(isinstance(s, str) and s for s in stop):
        raise InvalidInput("stop must be a non-empty string or a list of them")
    if len(stop) > MAX_REQUEST_STOPS:
        raise InvalidInput(f"at most {MAX_REQUEST_STOPS} stop sequences, got {len(stop)}")
    merged = tuple(dict.fromkeys((*defaults.stop, *stop)))
    return DecodingParams(temperature, top_p, max_tokens, merged, seed)


def parse_prompt_template(data: str | bytes | Mapping[str, Any]) -> PromptTemplate:
    """Read a template from YAML/JSON text or a mapping; any problem is ``InvalidInput``."""
    return parse_model(PromptTemplate, data, "prompt template")


def parse_decoding_defaults(data: str | bytes | Mapping[str, Any]) -> DecodingDefaults:
    """Read decoding defaults from YAML/JSON text or a mapping; problems are ``InvalidInput``."""
    return parse_model(DecodingDefaults, data, "decoding defaults")


def _fields(fmt: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(fmt) if name is not None}


def _check_fields(fmt: str, allowed: frozenset[str], what: str) -> None:
    try:
        parsed = list(string.Formatter().parse(fmt))
    except ValueError as exc:
        raise ValueError(f"{what} is not a valid format string: {exc}") from exc
    for _, name, spec, conv in parsed:
        if name is None:
            continue
        if name not in allowed or spec or conv:
            raise ValueError(
                f"{what} may only use {', '.join('{' + a + '}' for a in sorted(allowed))}; "
                f"found {{{name}}}"
            )


def _message(i: int, message: Mapping[str, Any]) -> tuple[str, str]:
    role, content = message.get("role"), message.get("content")
    if not isinstance(role, str) or not role:
        raise InvalidInput(f"messages[{i}].role must be a string")
    if content is None:
        return role, ""
    if isinstance(content, str):
        return role, content
    if isinstance(content, list):  # OpenAI content parts: keep the text ones
        texts = [p.get("text", "") for p in content if isinstance(p, Mapping)]
        if all(isinstance(t, str) for t in texts):
            return role, "".join(texts)
    raise InvalidInput(f"messages[{i}].content must be a string or a list of text parts")


def _number(req: Mapping[str, Any], key: str, default: float) -> float:
    value = req.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"{key} must be a number, got {clip(repr(value))}")
    return float(value)


def _integer(req: Mapping[str, Any], key: str, default: int) -> int:
    value = req.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{key} must be an integer, got {clip(repr(value))}")
    return value


__all__ = [
    "DecodingDefaults",
    "DecodingParams",
    "PromptTemplate",
    "merge_decoding",
    "parse_decoding_defaults",
    "parse_prompt_template",
]
