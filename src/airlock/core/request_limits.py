"""Request limits as values, and the pure checks every HTTP edge applies before trusting a body.

=====================  =========  =====================================================
``max_body_bytes``     1 MiB      bytes of one request body (413 beyond)
``max_messages``       1,000      chat messages in one request (400 beyond)
``max_json_depth``     32         nesting of arrays and objects in a JSON body (400 beyond)
``max_prompt_tokens``  none       estimated tokens of the prompt a service accepts (400)
=====================  =========  =====================================================

The gateway reads them from a YAML/JSON document (``airlock gateway --limits FILE``,
``airlock serve --limits FILE``), with per-service overrides::

    max_body_bytes: 1MiB          # an integer, or a size: 512KiB, 4MiB, 2MB
    max_messages: 1000
    max_json_depth: 32
    max_prompt_tokens: 8192       # unset: no limit
    services:
      chat: {max_body_bytes: 4MiB, max_prompt_tokens: 32000}

Error messages built here quote client input only through :func:`clip`, so no
error ever echoes an unbounded value back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from airlock.core.documents import parse_model
from airlock.errors import InvalidInput, PayloadTooLarge

KiB = 1 << 10
MiB = 1 << 20
_SIZE_RE = re.compile(r"^\s*(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$", re.IGNORECASE)
_UNITS = {
    None: 1,
    "b": 1,
    "k": KiB,
    "kib": KiB,
    "kb": 1000,
    "m": MiB,
    "mib": MiB,
    "mb": 1000**2,
    "g": 1 << 30,
    "gib": 1 << 30,
    "gb": 1000**3,
}
# Tokens as the built-in estimate counts them: runs of letters and digits, and every other
# non-space character on its own (``runtime.base.count_tokens``, here as one C-level regex).
_TOKEN_RE = re.compile(r"[^\W_]+|[^\w\s]|_")
CLIP = 64


@dataclass(frozen=True, slots=True)
class RequestLimits:
    max_body_bytes: int = MiB
    max_messages: int = 1000
    max_json_depth: int = 32
    max_prompt_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class GatewayLimits:
    """The gateway's limits and the services that override some of them."""

    default: RequestLimits = RequestLimits()
    services: Mapping[str, RequestLimits] = field(default_factory=dict)

    def for_service(self, service: str) -> RequestLimits:
        return self.services.get(service, self.default)

    @property
    def largest_body(self) -> int:
        """What the HTTP layer may read before it knows the service: the largest limit."""
        return max(
            [self.default.max_body_bytes, *(s.max_body_bytes for s in self.services.values())]
        )

    @property
    def largest_messages(self) -> int:
        """What a body may hold before its service is known: the largest ``max_messages``."""
        return max([self.default.max_messages, *(s.max_messages for s in self.services.values())])


def parse_size(value: int | str) -> int:
    """``1048576``, ``"512KiB"``, ``"4MiB"``, ``"2MB"`` -> bytes (a positive integer)."""
    if isinstance(value, bool):
        raise InvalidInput(f"{value!r} is not a size")
    if isinstance(value, int):
        size = value
    else:
        m = _SIZE_RE.match(str(value))
        if not m:
            raise InvalidInput(
                f"{clip(str(value))!r} is not a size", hint="write bytes, or e.g. 512KiB, 4MiB"
            )
        size = int(m.group(1)) * _UNITS[(m.group(2) or "").lower() or None]
    if size < 1:
        raise InvalidInput(f"a size must be at least 1 byte, got {size}")
    return size


class _LimitsDoc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_body_bytes: int | None = Field(default=None, ge=1)
    max_messages: int | None = Field(default=None, ge=1)
    max_json_depth: int | None = Field(default=None, ge=2, le=512)
    max_prompt_tokens: int | None = Field(default=None, ge=1)

    @field_validator("max_body_bytes", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        if isinstance(v, str | int) and not isinstance(v, bool):
            try:
                return parse_size(v)
            except InvalidInput as exc:
                raise ValueError(exc.message) from exc
        return v

    def over(self, base: RequestLimits) -> RequestLimits:
        own = {k: v for k, v in self.model_dump(exclude_none=True).items() if k != "services"}
        return replace(base, **own)


class _GatewayDoc(_LimitsDoc):
    services: dict[str, _LimitsDoc] = Field(default_factory=dict)


def parse_limits(data: str | bytes | Mapping[str, Any]) -> GatewayLimits:
    """Read a limits document (see the module docstring); any problem is ``InvalidInput``."""
    doc = parse_model(
        _GatewayDoc,
        data,
        "limits",
        hint="fields: max_body_bytes, max_messages, max_json_depth, max_prompt_tokens, "
        "services: {NAME: {...}}",
    )
    default = doc.over(RequestLimits())
    return GatewayLimits(default, {name: s.over(default) for name, s in doc.services.items()})


# -- the checks -------------------------------------------------------------------------------


def clip(text: str, limit: int = CLIP) -> str:
    """At most ``limit`` characters of ``text``, marked when cut: safe to put in a message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_body_size(size: int, limit: int, *, where: str = "the request body") -> None:
    if size > limit:
        raise PayloadTooLarge(
            f"{where} is {size} bytes; the limit is {limit} bytes (max_body_bytes)",
            hint="send a smaller request, or ask the operator to raise max_body_bytes",
        )


def loads_json(body: bytes, *, max_depth: int, what: str = "the request body") -> Any:
    """Parse JSON whose arrays and objects nest at most ``max_depth`` levels deep.

    The nesting is measured on the bytes first (:func:`nesting_exceeds`), so a deeply
    nested body is a clear 400 before the parser could recurse, never a crash.
    """
    if nesting_exceeds(body, max_depth):
        raise too_deep(what, max_depth)
    try:
        return json.loads(body)
    except RecursionError:  # not reached after the scan; kept as the parser's own guard
        raise too_deep(what, max_depth) from None
    except ValueError as exc:  # not UTF-8/16/32, not JSON, an integer of too many digits
        raise InvalidInput(f"{what} is not valid JSON: {clip(str(exc), 120)}") from exc


_OPENERS, _CLOSERS = b"[{", b"]}"
_ONLY_BRACKETS = bytes.maketrans(_OPENERS + _CLOSERS, b"(())")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _OPENERS + _CLOSERS)


def nesting_exceeds(body: bytes, limit: int) -> bool:
    """Whether arrays and objects in the JSON text ``body`` nest deeper than ``limit``.

    Only C-speed byte operations, no recursion and no parse: escapes are dropped (then
    every ``"`` delimits a string) and strings cut out, every byte but the brackets
    dropped, and each pass removes the innermost ``()`` pairs; the text nests at most
    ``limit`` deep iff ``limit`` passes leave nothing. (Broken JSON may count as too
    deep when it has more brackets than ``limit``; the parser would refuse it anyway.)
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside_strings = b"".join(unescaped.split(b'"')[::2])
    brackets = outside_strings.translate(_ONLY_BRACKETS, _NOT_BRACKETS)
    for _ in range(limit):
        inner = brackets.replace(b"()", b"")
        if len(inner) == len(brackets):
            break  # no innermost pair left: unbalanced (or already empty)
        brackets = inner
    return bool(brackets)


def values_exceed(body: bytes, limit: int) -> bool:
    """Whether the JSON text ``body`` holds more than ``limit`` array elements and object
    members in all (commas outside strings, plus one), by C-speed byte operations: a bound
    checked before a validator builds an error per element while holding the GIL."""
    if body.count(b",") < limit:
        return False  # the common case: one pass, no copy
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside_strings = b"".join(unescaped.split(b'"')[::2])
    return outside_strings.count(b",") >= limit


def json_depth(value: Any) -> int:
    """How deep arrays and objects nest in a parsed ``value`` (a scalar is 0); iterative."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return deepest


def too_deep(what: str, limit: int) -> InvalidInput:
    return InvalidInput(
        f"{what} nests arrays and objects more than {limit} levels deep (max_json_depth)",
        hint="flatten the request",
    )


def check_messages(count: int, limit: int) -> None:
    if count > limit:
        raise InvalidInput(
            f"'messages' has {count} entries; the limit is {limit} (max_messages)",
            hint="send fewer messages, e.g. summarise or drop the oldest turns",
        )


def estimate_tokens(text: str) -> int:
    """The built-in token estimate (words and punctuation), counted in C."""
    return sum(1 for _ in _TOKEN_RE.finditer(text))


def check_prompt_tokens(text: str, limit: int | None, *, service: str) -> None:
    """Refuse a prompt over the service's ``max_prompt_tokens`` (never more tokens than chars)."""
    if limit is None or len(text) <= limit:
        return
    n = estimate_tokens(text)
    if n > limit:
        raise InvalidInput(
            f"the prompt has about {n} tokens; {clip(service)!r} accepts at most {limit} "
            "(max_prompt_tokens)",
            hint="shorten the prompt, or ask the operator to raise the service's max_prompt_tokens",
        )


__all__ = [
    "GatewayLimits",
    "KiB",
    "MiB",
    "RequestLimits",
    "check_body_size",
    "check_messages",
    "check_prompt_tokens",
    "clip",
    "estimate_tokens",
    "json_depth",
    "loads_json",
    "nesting_exceeds",
    "parse_limits",
    "parse_size",
    "too_deep",
    "values_exceed",
]
