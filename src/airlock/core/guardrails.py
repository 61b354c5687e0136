"""Guardrails: a release's safety policy and the pure function that applies it to text.

A ``SafetyPolicy`` (``parse_safety_policy`` reads YAML or JSON) holds three kinds of rules:

``term``   ``blocked_terms`` (always ``block``) and named ``terms`` lists; case-insensitive,
           whole words only, any whitespace between the words of a phrase
``regex``  named regular expressions
``pii``    built-in detectors: email, phone, credit_card (Luhn-checked), iban (mod-97
           checked), ipv4, ssn

Each rule has an action — ``flag`` (report), ``redact`` (replace the match with the
policy's ``redaction`` text) or ``block`` (answer with the policy's ``refusal``) — and
the directions it watches (``input``: the request; ``output``: the model's answer).
``apply`` returns a ``GuardrailResult``; ``redact_for_log`` scrubs text before it is
logged: every built-in PII detector always, plus what the release's policy redacts (a
release can add patterns to the log's redaction, never remove one).
Patterns are compiled once per distinct policy.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from airlock.core.documents import parse_model
from airlock.errors import InvalidInput

Action = Literal["flag", "redact", "block"]
Direction = Literal["input", "output"]
RuleKind = Literal["term", "regex", "pii"]
PiiType = Literal["email", "phone", "credit_card", "iban", "ipv4", "ssn"]

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# The email pattern has no look-arounds, so a match never depends on its neighbours:
# after every match is replaced by bracketed text, none can be left or newly formed.
_PII_PATTERNS: dict[str, str] = {
    "email": r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
    r"\.(?:xn--[A-Za-z0-9-]+|[A-Za-z]{2,})",
    "phone": r"(?<![\w+])(?<!\d[ .-])(?:\+\d{7,15}|(?:\+\d{1,3}[ .-]?)?"
    r"(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]?\d{3,4})(?![ .-]?\d)(?!\w)",
    "credit_card": r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])",
    "iban": r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b",
    "ipv4": rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)",
    "ssn": r"(?<![\w-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])",
}
PII_TYPES: tuple[str, ...] = tuple(_PII_PATTERNS)


def _luhn(match: str) -> bool:
    digits = [int(c) for c in match if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        total += d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2)
    return total % 10 == 0


def _iban(match: str) -> bool:
    compact = match.replace(" ", "")
    rotated = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rotated)) % 97 == 1


_PII_CHECKS: dict[str, Callable[[str], bool]] = {"credit_card": _luhn, "iban": _iban}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Rule(_Frozen):
    action: Action = "flag"
    directions: tuple[Direction, ...] = Field(default=("input", "output"), min_length=1)


class TermRule(_Rule):
    """Words or phrases matched case-insensitively as whole words."""

    name: str = Field(min_length=1)
    terms: tuple[str, ...] = Field(min_length=1)
    action: Action = "block"

    @field_validator("terms")
    @classmethod
    def _no_blank(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(not t.strip() for t in v):
            raise ValueError("terms must not be blank")
        return tuple(t.strip() for t in v)


class RegexRule(_Rule):
    """A named regular expression (Python syntax)."""

    name: str = Field(min_length=1)
    pattern: str = Field(min_length=1)
    ignore_case: bool = False

    @model_validator(mode="after")
    def _compiles(self) -> RegexRule:
        try:
            re.compile(self.pattern)
        except re.error as exc:
            raise ValueError(f"regex rule {self.name!r} has an invalid pattern: {exc}") from exc
        return self


class PiiRule(_Rule):
    """A built-in PII detector; a bare name in YAML means ``redact``."""

    type: PiiType
    action: Action = "redact"


class SafetyPolicy(_Frozen):
    """What a release refuses, redacts and flags, in both directions."""

    refusal: str = "Sorry, I can't help with that request."
    redaction: str = "[REDACTED:{rule}]"
    blocked_terms: tuple[str, ...] = ()
    terms: tuple[TermRule, ...] = ()
    regexes: tuple[RegexRule, ...] = ()
    pii: tuple[PiiRule, ...] = ()

    @field_validator("pii", mode="before")
    @classmethod
    def _bare_names(cls, v: Any) -> Any:
        if isinstance(v, list | tuple):
            return [{"type": item} if isinstance(item, str) else item for item in v]
        return v

    @field_validator("blocked_terms")
    @classmethod
    def _no_blank_terms(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if any(not t.strip() for t in v):
            raise ValueError("blocked terms must not be blank")
        return tuple(t.strip() for t in v)

    @model_validator(mode="after")
    def _unique_names(self) -> SafetyPolicy:
        names = [t.name for t in self.terms] + [r.name for r in self.regexes]
        names += [p.type for p in self.pii]
        names += ["blocked_terms"] if self.blocked_terms else []
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique; repeated: {', '.join(dupes)}")
        return self


@dataclass(frozen=True, slots=True)
class Flag:
    """One match: which rule, its kind and action, and where (start, end) in the checked text."""

    rule: str
    kind: RuleKind
    action: Action
    span: tuple[int, int]


@dataclass(frozen=True, slots=True)
class GuardrailResult:
    """``text`` is the redacted text, or the policy's refusal when ``blocked``."""

    text: str
    flags: tuple[Flag, ...]
    blocked: bool

    @property
    def redacted(self) -> bool:
        return not self.blocked and any(f.action == "redact" for f in self.flags)


@dataclass(frozen=True, slots=True)
class _Matcher:
    rule: str
    kind: RuleKind
    action: Action
    directions: frozenset[str]
    regex: re.Pattern[str]
    check: Callable[[str], bool] | None = None


def parse_safety_policy(data: str | bytes | Mapping[str, Any]) -> SafetyPolicy:
    """Read a policy from YAML/JSON text or a mapping; any problem is ``InvalidInput``."""
    return parse_model(
        SafetyPolicy,
        data,
        "safety policy",
        hint=f"actions are flag, redact, block; PII types are {', '.join(PII_TYPES)}",
    )


def apply(policy: SafetyPolicy, text: str, *, direction: Direction) -> GuardrailResult:
    """Check ``text`` against every rule watching ``direction``; redact or refuse as needed."""
    if direction not in ("input", "output"):
        raise InvalidInput(f"direction must be 'input' or 'output', got {direction!r}")
    flags = _scan(_compile(policy), text, direction)
    if any(f.action == "block" for f in flags):
        return GuardrailResult(policy.refusal, flags, blocked=True)
    redactions = [f for f in flags if f.action == "redact"]
    return GuardrailResult(_redact(text, redactions, policy.redaction), flags, blocked=False)


def redact_pii(policy: SafetyPolicy, text: str) -> str:
    """Replace every match of the policy's PII detectors, whatever their action or direction."""
    matchers = tuple(m for m in _compile(policy) if m.kind == "pii")
    flags = _scan(matchers, text, None)
    return _redact(text, flags, policy.redaction)


_LOG_REDACTION = "[REDACTED:{rule}]"
DEFAULT_LOG_POLICY = SafetyPolicy.model_validate({"pii": list(PII_TYPES)})


def redact_for_log(policy: SafetyPolicy | None, text: str) -> str:
    """``text`` fit for a log: every built-in PII detector, whatever ``policy`` says, plus
    the rules of ``policy`` that redact (its own regexes, terms and PII), in any direction."""
    matchers = _compile(DEFAULT_LOG_POLICY)
    if policy is not None:
        matchers += tuple(m for m in _compile(policy) if m.action == "redact")
    return _redact(text, _scan(matchers, text, None), _LOG_REDACTION)


@functools.lru_cache(maxsize=256)
def _compile(policy: SafetyPolicy) -> tuple[_Matcher, ...]:
    matchers: list[_Matcher] = []
    if policy.blocked_terms:
        regex = _terms_regex(policy.blocked_terms)
        both = frozenset(("input", "output"))
        matchers.append(_Matcher("blocked_terms", "term", "block", both, regex))
    for t in policy.terms:
        regex = _terms_regex(t.terms)
        matchers.append(_Matcher(t.name, "term", t.action, frozenset(t.directions), regex))
    for r in policy.regexes:
        regex = re.compile(r.pattern, re.IGNORECASE if r.ignore_case else 0)
        matchers.append(_Matcher(r.name, "regex", r.action, frozenset(r.directions), regex))
    for p in policy.pii:
        regex = re.compile(_PII_PATTERNS[p.type])
        check = _PII_CHECKS.get(p.type)
        matchers.append(_Matcher(p.type, "pii", p.action, frozenset(p.directions), regex, check))
    return tuple(matchers)


def _terms_regex(terms: tuple[str, ...]) -> re.Pattern[str]:
    phrases = sorted({r"\s+".join(map(re.escape, t.split())) for t in terms}, key=len, reverse=True)
    return re.compile(rf"(?<!\w)(?:{'|'.join(phrases)})(?!\w)", re.IGNORECASE)


def _scan(matchers: tuple[_Matcher, ...], text: str, direction: str | None) -> tuple[Flag, ...]:
    flags = []
    for m in matchers:
        if direction is not None and direction not in m.directions:
            continue
        for match in m.regex.finditer(text):
            if match.end() > match.start() and (m.check is None or m.check(match.group())):
                flags.append(Flag(m.rule, m.kind, m.action, match.span()))
    return tuple(sorted(flags, key=lambda f: (f.span, f.rule)))


def _redact(text: str, flags: tuple[Flag, ...] | list[Flag], template: str) -> str:
    """Replace each run of overlapping spans once, labelled with its first rule."""
    pieces: list[str] = []
    pos, run_end, label = 0, -1, ""
    for f in sorted(flags, key=lambda f: f.span):
        start, end = f.span
        if start < run_end:  # overlaps the current run: widen it
            run_end = max(run_end, end)
            continue
        if run_end >= 0:
            pieces.append(template.replace("{rule}", label))
            pos = run_end
        pieces.append(text[pos:start])
        run_end, label = end, f.rule
    if run_end >= 0:
        pieces.append(template.replace("{rule}", label))
        pos = run_end
    pieces.append(text[pos:])
    return "".join(pieces)


__all__ = [
    "DEFAULT_LOG_POLICY",
    "PII_TYPES",
    "Action",
    "Direction",
    "Flag",
    "GuardrailResult",
    "PiiRule",
    "RegexRule",
    "SafetyPolicy",
    "TermRule",
    "apply",
    "parse_safety_policy",
    "redact_for_log",
    "redact_pii",
]
