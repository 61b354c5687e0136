"""The LLM judge's wire: the prompt it is given and how its answer is read (pure).

A judge prompt is a template with ``{prompt}``, ``{answer}`` and ``{reference}``
(pointwise) or ``{prompt}``, ``{answer_a}`` and ``{answer_b}`` (pairwise); the
built-in ones below are used when the spec pins none. The judge must answer
with a score (``Score: 7``, 1–10) or a choice (``A``, ``B`` or ``tie``); an
answer that says neither is a *judge failure* — counted on its own, never
against the candidate.

Pairwise judges prefer the first answer they read (position bias: Zheng et al.
2023, "Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena", §3.3). The
order of the two answers is therefore drawn from a hash of the request id
(:func:`candidate_first`), so half the pairs show the candidate first and the
bias cancels between arms instead of favouring one.
"""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass
from typing import Literal

from airlock.errors import InvalidInput

Outcome = Literal["win", "tie", "loss"]

POINTWISE_PROMPT = """You grade answers of an AI assistant.

Question:
{prompt}

Answer:
{answer}

Reference answer (may be empty):
{reference}

Is the answer helpful, correct and on topic? A refusal of a harmless question is bad.
Reply with one line: "Score: N", N from 1 (useless) to 10 (excellent)."""

PAIRWISE_PROMPT = """You compare two answers of AI assistants to the same question.

Question:
{prompt}

Answer A:
{answer_a}

Answer B:
{answer_b}

Which answer is more helpful, correct and on topic? A refusal of a harmless question is bad.
Reply with one word: A, B or tie."""

_FIELDS = {
    "pointwise": frozenset({"prompt", "answer", "reference"}),
    "pairwise": frozenset({"prompt", "answer_a", "answer_b"}),
}
_SCORE = re.compile(r"(?i)\bscore\s*[:=]?\s*(\d+(?:\.\d+)?)(?:\s*/\s*10)?")
_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:/\s*10)?\s*$")
_CHOICE = re.compile(r"(?i)^\W*(?:verdict\s*[:=]\s*)?(?:answer\s+)?(a|b|tie|draw|equal)\b")


class JudgeUnreadable(ValueError):
    """The judge answered something that is neither a score nor a choice."""


def check_template(template: str, mode: Literal["pointwise", "pairwise"]) -> None:
    """Refuse a judge prompt that misses a field of ``mode`` or names an unknown one."""
    try:
        used = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise InvalidInput(f"judge prompt is not a valid template: {exc}") from exc
    want = _FIELDS[mode]
    unknown = sorted(used - want)
    if unknown:
        raise InvalidInput(
            f"judge prompt names {', '.join('{' + u + '}' for u in unknown)}, "
            f"which a {mode} judge does not fill",
            hint=f"use {', '.join('{' + w + '}' for w in sorted(want))}",
        )
    needed = want - {"reference"}
    if not needed <= used:
        missing = ", ".join("{" + m + "}" for m in sorted(needed - used))
        raise InvalidInput(f"judge prompt lacks {missing}: the judge would not see it")


def pointwise_prompt(template: str, prompt: str, answer: str, reference: str | None) -> str:
    return template.format(prompt=prompt, answer=answer, reference=reference or "")


def candidate_first(request_id: str) -> bool:
    """Whether the candidate's answer is shown as "A" for this request (a fair coin)."""
    return (
        hashlib.blake2b(request_id.encode(), digest_size=1, person=b"airlock-j").digest()[0] < 128
    )


def pairwise_prompt(
    template: str, prompt: str, candidate: str, stable: str, *, candidate_is_a: bool
) -> str:
    a, b = (candidate, stable) if candidate_is_a else (stable, candidate)
    return template.format(prompt=prompt, answer_a=a, answer_b=b)


def read_score(text: str) -> float:
    """A pointwise judge's answer as a score in [0, 1] (1 → 0, 10 → 1)."""
    found = _SCORE.search(text) or _NUMBER.match(text)
    if found is None:
        raise JudgeUnreadable(f"no score in the judge's answer {text[:80]!r}")
    value = float(found.group(1))
    if not 1.0 <= value <= 10.0:
        raise JudgeUnreadable(f"judge score {value:g} is outside 1..10")
    return (value - 1.0) / 9.0


def read_choice(text: str, *, candidate_is_a: bool) -> Outcome:
    """A pairwise judge's answer as the candidate's outcome."""
    found = _CHOICE.match(text.strip())
    if found is None:
        raise JudgeUnreadable(f"no choice (A, B or tie) in the judge's answer {text[:80]!r}")
    choice = found.group(1).lower()
    if choice in ("tie", "draw", "equal"):
        return "tie"
    picked_candidate = (choice == "a") == candidate_is_a
    return "win" if picked_candidate else "loss"


@dataclass(frozen=True, slots=True)
class JudgeCost:
    """What judging cost so far: calls, tokens, and calls that gave no usable answer."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    failures: int = 0
    timeouts: int = 0

    def __add__(self, other: JudgeCost) -> JudgeCost:
        return JudgeCost(
            self.calls + other.calls,
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.failures + other.failures,
            self.timeouts + other.timeouts,
        )
