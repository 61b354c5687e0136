"""The hash chain, pure: how an event is hashed and how a chain is checked.

Each event's hash is sha256 over the canonical JSON of
``{seq, at, actor, action, subject, details, prev}``, where ``prev`` is the
hash of the event before it (64 zeros for the first). Editing any field of
any event, removing one, or swapping two breaks the recomputation at that
point; ``verify_chain`` names the first such event and what is wrong with it.
A removed *tail* cannot be seen from the chain alone: compare the head hash
with one recorded elsewhere (``expected_head``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from airlock.core.digest import canonical_json

GENESIS = "0" * 64

ProblemKind = Literal["edited", "missing", "reordered", "broken_link", "head_mismatch"]


class EventLike(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def at(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def details(self) -> str: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...


def event_hash(
    *, seq: int, at: str, actor: str, action: str, subject: str, details: str, prev_hash: str
) -> str:
    body = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "subject": subject,
        "details": details,
        "prev": prev_hash,
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()


def hash_of(event: EventLike) -> str:
    return event_hash(
        seq=event.seq,
        at=event.at,
        actor=event.actor,
        action=event.action,
        subject=event.subject,
        details=event.details,
        prev_hash=event.prev_hash,
    )


@dataclass(frozen=True, slots=True)
class ChainProblem:
    seq: int
    kind: ProblemKind
    message: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    checked: int
    head_seq: int
    head_hash: str
    problem: ChainProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_chain(events: Iterable[EventLike], *, expected_head: str | None = None) -> ChainReport:
    """Walk events in stored order (ascending seq) and report the first problem."""
    prev_hash = GENESIS
    expected_seq = 1
    seen_hashes: dict[str, int] = {}
    checked = 0
    for ev in events:
        problem = _check_one(ev, expected_seq, prev_hash, seen_hashes)
        if problem is not None:
            return ChainReport(checked, expected_seq - 1, prev_hash, problem)
        seen_hashes[ev.hash] = ev.seq
        prev_hash = ev.hash
        expected_seq = ev.seq + 1
        checked += 1
    if expected_head is not None and expected_head != prev_hash:
        problem = ChainProblem(
            expected_seq - 1,
            "head_mismatch",
            f"the chain ends at event {expected_seq - 1} with hash {prev_hash[:16]}…, "
            f"not at the expected head {expected_head[:16]}…: events were removed or added at the end",
        )
        return ChainReport(checked, expected_seq - 1, prev_hash, problem)
    return ChainReport(checked, expected_seq - 1, prev_hash, None)


def _check_one(
    ev: EventLike, expected_seq: int, prev_hash: str, seen: dict[str, int]
) -> ChainProblem | None:
    if ev.seq > expected_seq:
        gap = (
            f"event {expected_seq}"
            if ev.seq == expected_seq + 1
            else f"events {expected_seq}–{ev.seq - 1}"
        )
        return ChainProblem(
            expected_seq, "missing", f"{gap} missing: the sequence jumps to {ev.seq}"
        )
    if ev.seq < expected_seq:
        return ChainProblem(
            ev.seq, "reordered", f"event {ev.seq} appears after event {expected_seq - 1}"
        )
    if ev.prev_hash != prev_hash:
        if ev.prev_hash in seen:
            return ChainProblem(
                ev.seq,
                "reordered",
                f"event {ev.seq} links to event {seen[ev.prev_hash]}, not to event {ev.seq - 1}: "
                "events were reordered",
            )
        if hash_of(ev) == ev.hash:
            return ChainProblem(
                ev.seq,
                "broken_link",
                f"event {ev.seq} does not link to event {ev.seq - 1}: the event before it "
                "was edited, replaced or removed",
            )
        return ChainProblem(ev.seq, "edited", f"event {ev.seq} was edited: its hash does not match")
    if hash_of(ev) != ev.hash:
        return ChainProblem(
            ev.seq, "edited", f"event {ev.seq} was edited: its content does not match its hash"
        )
    return None
