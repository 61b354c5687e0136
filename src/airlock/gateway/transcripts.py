"""Transcripts off the request path: a bounded buffer the engine fills, flushed with telemetry.

The request path calls :meth:`TranscriptBuffer.record` once an answer is complete
(``Gateway._after``) and :meth:`TranscriptBuffer.feedback` when a score is accepted.
Both cost one set look-up for a service that keeps no transcripts, and one list
append for one that does: no redaction, no I/O, never a wait. When the buffer
holds ``capacity`` answers, more are dropped and counted (``dropped``).

:class:`TranscriptSink` is driven by the catalog sync's flush (every second, see
:mod:`airlock.gateway.sync`). In a worker thread it redacts what was recorded —
every built-in PII detector plus the release's safety-policy redactions
(:func:`airlock.core.transcripts.redact_entry`) — writes it with the scores in one
transaction, reads which services keep transcripts (so a change reaches the
gateway within one flush), and, at most every ``purge_every`` seconds, deletes
what outlived its service's retention. A failed write keeps up to ``backlog``
rows for the next flush.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from airlock.core.guardrails import SafetyPolicy
from airlock.core.response_ids import ResponseTicket
from airlock.core.traffic import TrafficPlan
from airlock.core.transcripts import (
    Arm,
    FeedbackEntry,
    JudgedPair,
    Prompt,
    TranscriptEntry,
    TranscriptSetting,
    redact_entry,
    redact_pair,
)
from airlock.errors import AirlockError
from airlock.gateway.openai_wire import OpenAIRequest
from airlock.runtime.loader import LoadedRelease

log = logging.getLogger("airlock.gateway.transcripts")

ReadTicket = Callable[[str], ResponseTicket]


class TranscriptStore(Protocol):
    """What the sink needs of :class:`airlock.services.transcripts.Transcripts`."""

    def write(
        self,
        entries: Sequence[TranscriptEntry],
        feedback: Sequence[FeedbackEntry] = (),
        *,
        gateway: str,
        pairs: Sequence[JudgedPair] = (),
    ) -> None: ...

    def settings(self) -> tuple[TranscriptSetting, ...]: ...

    def purge_expired(self, now: datetime, *, service: str | None = None) -> Any: ...

    def update_scores(
        self, response_id: str, scores: Mapping[str, float], judge: str | None
    ) -> bool: ...


@dataclass(frozen=True, slots=True)
class _Recorded:
    """An answer as recorded on the request path: raw, redacted at flush."""

    at: float
    plan: TrafficPlan
    release: str
    safety: SafetyPolicy | None
    request: OpenAIRequest
    response_id: str
    answer: str
    cluster: int


class TranscriptBuffer:
    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._services: frozenset[str] = frozenset()
        self._answers: list[_Recorded] = []
        self._scores: list[FeedbackEntry] = []
        self._judged: list[tuple[str, dict[str, float], str | None]] = []
        self._pairs: list[tuple[JudgedPair, SafetyPolicy | None, SafetyPolicy | None]] = []
        self.recorded = 0
        self.dropped = 0

    @property
    def services(self) -> frozenset[str]:
        """The services whose answers are recorded."""
        return self._services

    def set_services(self, names: Iterable[str]) -> None:
        self._services = frozenset(names)

    # -- the request path -------------------------------------------------------------------
    def record(
        self,
        plan: TrafficPlan,
        release: LoadedRelease,
        request: OpenAIRequest,
        response_id: str,
        answer: str,
        cluster: int,
    ) -> None:
        """Keep one complete answer of ``plan.service`` if that service keeps transcripts."""
        if plan.service not in self._services:
            return
        if len(self._answers) >= self.capacity:
            self.dropped += 1
            return
        self._answers.append(
            _Recorded(
                time.time(),
                plan,
                release.ref,
                release.safety,
                request,
                response_id,
                answer,
                cluster,
            )
        )
        self.recorded += 1

    def feedback(
        self,
        response_id: str,
        ticket: ResponseTicket,
        score: float,
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        """Keep an accepted score for a response of a service that keeps transcripts."""
        if ticket.service not in self._services:
            return
        if len(self._scores) >= self.capacity:
            self.dropped += 1
            return
        self._scores.append(
            FeedbackEntry(
                response_id=response_id,
                service=ticket.service,
                score=float(score),
                issued_at=datetime.fromtimestamp(ticket.issued_at, UTC),
                at=datetime.now(UTC),
                metrics=dict(metrics or {}),
            )
        )

    def scored(
        self, service: str, response_id: str, scores: Mapping[str, float], judge: str | None
    ) -> None:
        """Keep the online scores (and the judge) of an answer whose service keeps transcripts."""
        if service not in self._services:
            return
        if len(self._judged) >= self.capacity:
            self.dropped += 1
            return
        self._judged.append((response_id, dict(scores), judge))

    # -- the flush ------------------------------------------------------------------------------
    def paired(
        self, pair: JudgedPair, stable: SafetyPolicy | None, candidate: SafetyPolicy | None
    ) -> None:
        """Keep a judged pair (raw; redacted at flush) if its service keeps transcripts."""
        if pair.service not in self._services:
            return
        if len(self._pairs) >= self.capacity:
            self.dropped += 1
            return
        self._pairs.append((pair, stable, candidate))

    def drain_pairs(self) -> list[tuple[JudgedPair, SafetyPolicy | None, SafetyPolicy | None]]:
        pairs, self._pairs = self._pairs, []
        return pairs

    def drain_scored(self) -> list[tuple[str, dict[str, float], str | None]]:
        judged, self._judged = self._judged, []
        return judged

    def drain(self) -> tuple[list[_Recorded], list[FeedbackEntry]]:
        answers, self._answers = self._answers, []
        scores, self._scores = self._scores, []
        return answers, scores

    def __len__(self) -> int:
        return len(self._answers)


def entry_of(recorded: _Recorded, read_ticket: ReadTicket | None = None) -> TranscriptEntry:
    """The redacted :class:`TranscriptEntry` of one recorded answer (runs at flush)."""
    plan, release = recorded.plan, recorded.release
    arm: Arm
    if release == plan.stable:
        arm = "stable"
        if plan.candidates and read_ticket is not None:
            try:  # the signed id names the arm's release: a fallback answer counts there
                if read_ticket(recorded.response_id).release != release:
                    arm = "fallback"
            except AirlockError:
                pass
    elif any(c.release == release for c in plan.candidates):
        arm = "candidate"
    else:
        arm = "pinned"
    req = recorded.request
    prompt: Prompt
    if req.kind == "chat":
        prompt = tuple((str(m.get("role", "")), str(m.get("content") or "")) for m in req.messages)
    else:
        prompt = req.prompt
    raw = TranscriptEntry(
        response_id=recorded.response_id,
        service=plan.service,
        release=release,
        arm=arm,
        cluster=recorded.cluster,
        kind=req.kind,
        at=datetime.fromtimestamp(recorded.at, UTC),
        prompt=prompt,
        answer=recorded.answer,
    )
    return redact_entry(recorded.safety, raw)


class TranscriptSink:
    """Flushes a :class:`TranscriptBuffer` to a store (see the module docstring)."""

    def __init__(
        self,
        buffer: TranscriptBuffer,
        store: TranscriptStore,
        *,
        gateway_id: str,
        read_ticket: ReadTicket | None = None,
        purge_every: float = 60.0,
        backlog: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.buffer = buffer
        self.store = store
        self.gateway_id = gateway_id
        self.read_ticket = read_ticket
        self.purge_every = purge_every
        self.backlog = backlog
        self.clock = clock
        self._entries: list[TranscriptEntry] = []
        self._scores: list[FeedbackEntry] = []
        self._pairs: list[JudgedPair] = []
        self._last_purge: float | None = None
        self.flushes = 0
        self.purges = 0

    async def flush(self) -> None:
        """Write what was recorded, re-read the settings, purge when due. Never raises
        (a failure is logged; the rows wait for the next flush)."""
        answers, scores = self.buffer.drain()
        judged = self.buffer.drain_scored()
        pairs = self.buffer.drain_pairs()
        try:
            enabled = await asyncio.to_thread(self._flush, answers, scores, judged, pairs)
        except AirlockError as exc:
            log.warning("transcript flush failed (%s); keeping %d rows", exc, len(self._entries))
            return
        except Exception:  # never let transcripts keep the telemetry from being flushed
            log.exception("transcript flush failed; keeping %d rows", len(self._entries))
            return
        self.buffer.set_services(enabled)

    def _flush(
        self,
        answers: list[Any],
        scores: list[FeedbackEntry],
        judged: Sequence[tuple[str, dict[str, float], str | None]] = (),
        pairs: Sequence[tuple[JudgedPair, SafetyPolicy | None, SafetyPolicy | None]] = (),
    ) -> list[str]:
        self._entries.extend(entry_of(a, self.read_ticket) for a in answers)
        self._scores.extend(scores)
        self._pairs.extend(redact_pair(stable, cand, pair) for pair, stable, cand in pairs)
        self._entries = self._entries[-self.backlog :]
        self._scores = self._scores[-self.backlog :]
        self._pairs = self._pairs[-self.backlog :]
        if self._entries or self._scores or self._pairs:
            self.store.write(
                self._entries, self._scores, gateway=self.gateway_id, pairs=self._pairs
            )
            self._entries, self._scores, self._pairs = [], [], []
            self.flushes += 1
        for response_id, named, judge in judged:  # after the answers they score
            self.store.update_scores(response_id, named, judge)
        enabled = [s.service for s in self.store.settings() if s.enabled]
        now = self.clock()
        if self._last_purge is None or now - self._last_purge >= self.purge_every:
            self._last_purge = now
            self.store.purge_expired(datetime.fromtimestamp(now, UTC))
            self.purges += 1
        return enabled


__all__ = ["TranscriptBuffer", "TranscriptSink", "TranscriptStore", "entry_of"]
