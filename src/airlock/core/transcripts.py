"""Transcripts: what a service that opted in keeps of its traffic, and how it is exported (pure).

A gateway records, for each answer of a service whose transcripts are on, one
:class:`TranscriptEntry` — the response id, the release that wrote the answer,
its arm (``stable``, ``candidate``, ``pinned``, or ``fallback``: the stable
release answering for a failed candidate), the user's analysis cluster, the time,
the prompt and the answer — **redacted** by :func:`redact_entry` before it leaves
the process: every built-in PII detector, plus whatever the release's safety
policy redacts (:func:`airlock.core.guardrails.redact_for_log`). A user's score
for a response is a :class:`FeedbackEntry`, joined to its transcript by response
id. Scorers later add named ``scores`` and the ``judge`` release that gave them.

:func:`export_record` turns one stored :class:`Transcript` into the JSON object of
one line of ``airlock feedback export``, with the provenance that makes a dataset
built from it traceable (service, export time, Airlock version, the filter).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from airlock.core.guardrails import SafetyPolicy, redact_for_log

Arm = Literal["stable", "candidate", "pinned", "fallback"]
Prompt = str | tuple[tuple[str, str], ...]  # completion text, or chat (role, content) pairs

DEFAULT_RETENTION_S = 30 * 86_400
REDACTION = "every built-in PII detector plus the release's safety-policy redactions"


@dataclass(frozen=True, slots=True)
class TranscriptSetting:
    """Whether a service keeps transcripts, and how long (seconds) a row is kept."""

    service: str
    enabled: bool
    retention_s: int
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    """One answer as a gateway flushes it: prompt and answer already redacted."""

    response_id: str
    service: str
    release: str
    arm: Arm
    cluster: int
    kind: str  # chat | completion
    at: datetime
    prompt: Prompt
    answer: str


@dataclass(frozen=True, slots=True)
class FeedbackEntry:
    """A user's score for a response (the latest replaces an earlier one)."""

    response_id: str
    service: str
    score: float
    issued_at: datetime  # when the response was given (from its signed id)
    at: datetime
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Transcript:
    """A stored transcript with its feedback and scores, as export reads it."""

    response_id: str
    service: str
    release: str
    arm: str
    cluster: int
    kind: str
    at: datetime
    prompt: Prompt
    answer: str
    scores: Mapping[str, float] = field(default_factory=dict)
    judge: str | None = None
    feedback: FeedbackEntry | None = None

    @property
    def score(self) -> float | None:
        return None if self.feedback is None else self.feedback.score


PairOutcome = Literal["win", "tie", "loss"]


@dataclass(frozen=True, slots=True)
class JudgedPair:
    """One prompt answered by both arms and compared by a pairwise judge (shadow phases).

    ``outcome`` is the candidate's. Prompt and answers are redacted before they are stored
    (:func:`redact_pair`), and kept only for services that keep transcripts.
    """

    service: str
    request_id: str
    at: datetime
    stable_release: str
    candidate_release: str
    judge: str
    outcome: PairOutcome
    prompt: Prompt
    stable_answer: str
    candidate_answer: str


def redact_pair(
    stable: SafetyPolicy | None, candidate: SafetyPolicy | None, pair: JudgedPair
) -> JudgedPair:
    """``pair`` redacted for storage: each answer by its release's policy, the prompt by both."""

    def both(text: str) -> str:
        return redact_for_log(candidate, redact_for_log(stable, text))

    prompt: Prompt
    if isinstance(pair.prompt, str):
        prompt = both(pair.prompt)
    else:
        prompt = tuple((role, both(text)) for role, text in pair.prompt)
    return JudgedPair(
        pair.service,
        pair.request_id,
        pair.at,
        pair.stable_release,
        pair.candidate_release,
        pair.judge,
        pair.outcome,
        prompt,
        redact_for_log(stable, pair.stable_answer),
        redact_for_log(candidate, pair.candidate_answer),
    )


def redact_entry(policy: SafetyPolicy | None, entry: TranscriptEntry) -> TranscriptEntry:
    """``entry`` with its prompt and answer redacted for storage (see the module docstring)."""
    prompt: Prompt
    if isinstance(entry.prompt, str):
        prompt = redact_for_log(policy, entry.prompt)
    else:
        prompt = tuple((role, redact_for_log(policy, text)) for role, text in entry.prompt)
    return TranscriptEntry(
        entry.response_id,
        entry.service,
        entry.release,
        entry.arm,
        entry.cluster,
        entry.kind,
        entry.at,
        prompt,
        redact_for_log(policy, entry.answer),
    )


def prompt_json(prompt: Prompt) -> str:
    """How a prompt is stored: a JSON string, or a JSON list of ``{role, content}``."""
    if isinstance(prompt, str):
        return json.dumps(prompt, ensure_ascii=False)
    return json.dumps([{"role": r, "content": c} for r, c in prompt], ensure_ascii=False)


def parse_prompt(text: str) -> Prompt:
    value = json.loads(text)
    if isinstance(value, str):
        return value
    return tuple((str(m.get("role", "")), str(m.get("content", ""))) for m in value)


def export_record(t: Transcript, provenance: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON object of one export line (see ``docs/transcripts.md`` for the fields)."""
    prompt: Any = (
        t.prompt
        if isinstance(t.prompt, str)
        else [{"role": role, "content": content} for role, content in t.prompt]
    )
    feedback = (
        None
        if t.feedback is None
        else {
            "score": t.feedback.score,
            "metrics": dict(t.feedback.metrics),
            "at": t.feedback.at.isoformat(),
        }
    )
    return {
        "response_id": t.response_id,
        "service": t.service,
        "release": t.release,
        "arm": t.arm,
        "cluster": t.cluster,
        "kind": t.kind,
        "time": t.at.isoformat(),
        "prompt": prompt,
        "answer": t.answer,
        "score": t.score,
        "scores": dict(t.scores),
        "judge": t.judge,
        "feedback": feedback,
        "provenance": dict(provenance),
    }


__all__ = [
    "DEFAULT_RETENTION_S",
    "REDACTION",
    "Arm",
    "FeedbackEntry",
    "JudgedPair",
    "PairOutcome",
    "Prompt",
    "Transcript",
    "TranscriptEntry",
    "TranscriptSetting",
    "export_record",
    "parse_prompt",
    "prompt_json",
    "redact_entry",
    "redact_pair",
]
