"""The hash chain, pure: how an event is hashed and how a chain is checked.

Each event's hash is sha256 over the canonical JSON of
``{seq, at, actor, action, subject, details, prev}``, where ``prev`` is the
hash of the event before it (64 zeros for the first). Editing any field of
any event, removing one, or swapping two breaks the recomputation at that
point; ``verify_chain`` names the first such event and what is wrong with it.
A removed *tail*, or a chain rewritten from some event on with every later hash
recomputed, cannot be seen from the chain alone: compare it with checkpoints
(``seq``, ``hash``) recorded elsewhere (``airlock audit checkpoint``). The chain
must still contain each checkpoint: the event at that sequence with that hash.
Events appended after a checkpoint do not disturb it.
"""

from __future__ import annotations

import hashlib
import json
import json.encoder
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

from airlock.core.digest import canonical_json

# The escaping json.dumps(ensure_ascii=False) applies to a string (the C accelerator).
_quote: Callable[[str], str] = json.encoder.encode_basestring

GENESIS = "0" * 64

ProblemKind = Literal[
    "edited", "missing", "reordered", "broken_link", "head_mismatch", "rewritten", "cut"
]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A point of the chain recorded elsewhere: event ``seq`` had hash ``hash``."""

    seq: int
    hash: str

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """``SEQ:HASH`` as printed by ``airlock audit head``/``checkpoint``."""
        seq, sep, digest = text.strip().replace(" ", ":", 1).partition(":")
        digest = digest.strip().lower()
        if not sep or not seq.isdigit() or int(seq) < 1 or not _is_hex64(digest):
            raise ValueError(f"{text[:100]!r} is not SEQ:HASH (e.g. 42:3fa9…, 64 hex digits)")
        return cls(int(seq), digest)

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"


def _is_hex64(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)


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
    """sha256 of the canonical JSON of the event's body (see :func:`event_body`)."""
    return hashlib.sha256(
        event_body(seq, at, actor, action, subject, details, prev_hash)
    ).hexdigest()


def event_body(
    seq: int, at: str, actor: str, action: str, subject: str, details: str, prev_hash: str
) -> bytes:
    """``canonical_json({seq, at, actor, action, subject, details, prev})``, byte for byte,
    written out directly (keys in sorted order, strings escaped as ``json.dumps`` escapes
    them): ``audit verify`` hashes millions of these, and this is three times faster."""
    if type(seq) is not int:  # bool or anything else: the general path decides
        return canonical_json(
            {
                "seq": seq,
                "at": at,
                "actor": actor,
                "action": action,
                "subject": subject,
                "details": details,
                "prev": prev_hash,
            }
        )
    q = _quote
    return (
        f'{{"action":{q(action)},"actor":{q(actor)},"at":{q(at)},"details":{q(details)},'
        f'"prev":{q(prev_hash)},"seq":{seq},"subject":{q(subject)}}}'
    ).encode()


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


class EventRow(NamedTuple):
    """An event as stored, field by field: what the chain walk reads (a plain tuple in the
    same order works as well)."""

    seq: int
    at: str
    actor: str
    action: str
    subject: str
    details: str
    prev_hash: str
    hash: str


def _no_lookup(_digest: str) -> int | None:  # pragma: no cover - never called (see feed)
    raise AssertionError("a linked event needs no lookup")


class ChainWalk:
    """:func:`verify_chain`, fed in batches of rows (``(seq, at, actor, action, subject,
    details, prev_hash, hash)`` tuples, oldest first), for a chain too long to hold at once.

    ``feed`` checks every event exactly as ``verify_chain`` does (each hash recomputed from
    the stored fields; the link; the sequence; the checkpoints) and returns False at the first
    one that fails; ``report`` then names the problem. An event that does not link to the one
    before it is diagnosed in ``report`` (``find_seq`` may query the store, which is free
    again by then): was it reordered, or was its predecessor edited?
    """

    def __init__(
        self,
        *,
        expected_head: str | None = None,
        checkpoints: Sequence[Checkpoint] = (),
        start: Checkpoint | None = None,
        remember_hashes: bool = True,
    ) -> None:
        self.wanted = {c.seq: c.hash for c in checkpoints}
        self.expected_head = expected_head
        self.prev_hash = GENESIS if start is None else start.hash
        self.expected_seq = 1 if start is None else start.seq + 1
        self.head_found = expected_head is None or (
            start is not None and start.hash == expected_head
        )
        self.seen: dict[str, int] | None = {} if remember_hashes else None
        self.checked = 0
        self.problem: ChainProblem | None = None
        self.suspect: EventRow | None = None  # does not link: diagnosed by report()

    def feed(self, rows: Iterable[tuple[int, str, str, str, str, str, str, str]]) -> bool:
        """Check ``rows`` in order; False once an event fails (the walk stops there)."""
        if self.problem is not None or self.suspect is not None:
            return False
        sha256, body = hashlib.sha256, event_body
        wanted, seen, head = self.wanted, self.seen, self.expected_head
        prev, expected, checked = self.prev_hash, self.expected_seq, self.checked
        head_found = self.head_found
        ok = True
        for row in rows:
            seq, at, actor, action, subject, details, prev_hash, digest = row
            if not (
                seq == expected
                and prev_hash == prev
                and type(seq) is int
                and sha256(body(seq, at, actor, action, subject, details, prev)).hexdigest()
                == digest
                and (seq not in wanted or wanted[seq] == digest)
            ):
                event = EventRow(*row)
                if seq != expected or prev_hash != prev:
                    self.suspect = event
                    ok = False
                    break
                self.problem = _check_one(event, expected, prev, _no_lookup) or _rewritten(
                    event, wanted
                )
                if self.problem is not None:
                    ok = False
                    break
            if seen is not None:
                seen[digest] = seq
            if not head_found and digest == head:
                head_found = True
            prev = digest
            expected = seq + 1
            checked += 1
        self.prev_hash, self.expected_seq, self.checked = prev, expected, checked
        self.head_found = head_found
        return ok

    def report(self, find_seq: Callable[[str], int | None] | None = None) -> ChainReport:
        """The verdict on what was fed: the first problem, or a cut tail, or a missing head."""
        checked, prev_hash, head_seq = self.checked, self.prev_hash, self.expected_seq - 1
        problem = self.problem
        if self.suspect is not None:
            lookup = find_seq or (self.seen or {}).get
            problem = _check_one(self.suspect, self.expected_seq, prev_hash, lookup)
            assert problem is not None  # an event out of sequence or not linked is a problem
        if problem is not None:
            return ChainReport(checked, head_seq, prev_hash, problem)
        beyond = sorted(seq for seq in self.wanted if seq > head_seq)
        if beyond:
            problem = ChainProblem(
                head_seq,
                "cut",
                f"the chain ends at event {head_seq}, but a checkpoint recorded event "
                f"{beyond[-1]}: events {head_seq + 1}–{beyond[-1]} or more were removed "
                "from the end",
            )
            return ChainReport(checked, head_seq, prev_hash, problem)
        if not self.head_found:
            assert self.expected_head is not None
            problem = ChainProblem(
                head_seq,
                "head_mismatch",
                f"no event has the expected hash {self.expected_head[:16]}… (the chain ends at "
                f"event {head_seq} with hash {prev_hash[:16]}…): events were removed at the "
                "end, or the chain was rewritten",
            )
            return ChainReport(checked, head_seq, prev_hash, problem)
        return ChainReport(checked, head_seq, prev_hash, None)


def verify_chain(
    events: Iterable[EventLike],
    *,
    expected_head: str | None = None,
    checkpoints: Sequence[Checkpoint] = (),
    start: Checkpoint | None = None,
    find_seq: Callable[[str], int | None] | None = None,
) -> ChainReport:
    """Walk events in stored order (ascending seq) and report the first problem.

    ``start``: a checkpoint already trusted; ``events`` are those after it, and the first
    must link to its hash. ``find_seq``: where an event with a given hash is (to tell a
    reordered event from an edited one); without it the hashes seen are kept in memory,
    with it memory stays flat however long the chain is.

    ``checkpoints``: each must still be in the chain (same hash at the same sequence).
    ``expected_head``: a hash recorded earlier (``audit head``) that the chain must
    still contain, at any sequence: the head then, an older event now.
    """
    walk = ChainWalk(
        expected_head=expected_head,
        checkpoints=checkpoints,
        start=start,
        remember_hashes=find_seq is None,
    )
    walk.feed(
        (e.seq, e.at, e.actor, e.action, e.subject, e.details, e.prev_hash, e.hash) for e in events
    )
    return walk.report(find_seq)


def _rewritten(ev: EventLike, wanted: dict[int, str]) -> ChainProblem | None:
    if ev.seq in wanted and wanted[ev.seq] != ev.hash:
        return ChainProblem(
            ev.seq,
            "rewritten",
            f"event {ev.seq} has hash {ev.hash[:16]}…, but a checkpoint recorded "
            f"{wanted[ev.seq][:16]}…: the chain was rewritten at or before event {ev.seq} "
            "(every later hash recomputed)",
        )
    return None


def _check_one(
    ev: EventLike, expected_seq: int, prev_hash: str, seen: Callable[[str], int | None]
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
        linked = seen(ev.prev_hash)
        if linked is not None and linked < expected_seq:
            return ChainProblem(
                ev.seq,
                "reordered",
                f"event {ev.seq} links to event {linked}, not to event {ev.seq - 1}: "
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
