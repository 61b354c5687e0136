"""The audit chain as stored, event by event, and its verification anywhere: pure, no catalog.

``airlock audit verify`` against a server must not take the server's word for it: a
server that rewrote its log can as well answer "ok". So the server hands out its stored
events (``GET /api/v1/audit/chain``, JSON Lines, paged by sequence), exactly as stored:
``details`` is the stored text the hash covers, not a re-encoding of it. The client
recomputes every hash and link here (:func:`check_chain`, the same rule as the
catalog's own verification: :func:`airlock.audit.chain.verify_chain`) and compares the
result with the checkpoints and the head it holds.

Memory stays flat however long the chain: events are streamed, and to tell a reordered
event from an edited one only the hashes of the last ``RECENT`` events are kept.

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from airlock.audit.chain import ChainProblem, ChainReport, Checkpoint, verify_chain
from airlock.errors import IntegrityError

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
RECENT = 65_536  # hashes kept to name a reordered event (about 10 MB)


@dataclass(frozen=True, slots=True)
class ChainEvent:
    """One event exactly as stored: ``details`` is the canonical JSON text its hash covers."""

    seq: int
    at: str
    actor: str
    action: str
    subject: str
    details: str
    prev_hash: str
    hash: str

    def to_json(self) -> str:
        return _dumps(
            {
                "seq": self.seq,
                "at": self.at,
                "actor": self.actor,
                "action": self.action,
                "subject": self.subject,
                "details": self.details,
                "prev_hash": self.prev_hash,
                "hash": self.hash,
            }
        )

    @classmethod
    def from_dict(cls, data: Any) -> ChainEvent:
        """An event from one line of the chain download; a malformed one is an IntegrityError."""
        try:
            if type(data["seq"]) is not int:
                raise TypeError(f"seq {data['seq']!r} is not an integer")
            texts = [data[k] for k in ("at", "actor", "action", "subject", "details")]
            hashes = [data["prev_hash"], data["hash"]]
            if not all(isinstance(t, str) for t in [*texts, *hashes]):
                raise TypeError("a field that is text is not")
        except (KeyError, TypeError) as exc:
            raise IntegrityError(
                f"the server sent an audit event that is not one ({exc})",
                hint="retry; if it persists, the server's log or its API is damaged",
            ) from None
        return cls(data["seq"], *texts, *hashes)


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The newest event's sequence and hash (0 and 64 zeros for an empty log)."""

    seq: int
    hash: str


class _Recent:
    """The hashes of the last ``size`` events seen, to find where a stray link points."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.seqs: OrderedDict[str, int] = OrderedDict()

    def remember(self, events: Iterable[ChainEvent]) -> Iterator[ChainEvent]:
        for ev in events:
            yield ev
            self.seqs.setdefault(ev.hash, ev.seq)
            if len(self.seqs) > self.size:
                self.seqs.popitem(last=False)

    def find(self, digest: str) -> int | None:
        return self.seqs.get(digest)


def check_chain(
    events: Iterable[ChainEvent],
    *,
    expected_head: str | None = None,
    checkpoints: Sequence[Checkpoint] = (),
    start: Checkpoint | None = None,
    reaches: ChainHead | None = None,
    recent: int = RECENT,
) -> ChainReport:
    """Recompute the chain from ``events`` (ascending sequence) and check it holds
    ``expected_head`` and every checkpoint.

    With ``start`` (a checkpoint whose signature the caller checked) ``events`` begin with
    the event at ``start.seq``: it must still have the checkpoint's hash, and only the
    events after it are walked. ``reaches``: the head the server named before sending the
    events; the chain sent must reach it (events are only ever appended), else it was cut
    (or the download was).
    """
    stream = iter(events)
    if start is not None:
        first = next(stream, None)
        stored = first if first is not None and first.seq == start.seq else None
        if stored is None or stored.hash != start.hash:
            return ChainReport(0, start.seq, start.hash, _start_problem(start, stored))
    seen = _Recent(recent)
    named: list[str] = []  # the hash of the event at the server's head, as sent

    def watched(evs: Iterator[ChainEvent]) -> Iterator[ChainEvent]:
        for ev in evs:
            if reaches is not None and ev.seq == reaches.seq:
                named.append(ev.hash)
            yield ev

    report = verify_chain(
        seen.remember(watched(stream)),
        expected_head=expected_head,
        checkpoints=[c for c in checkpoints if start is None or c.seq > start.seq],
        start=start,
        find_seq=seen.find,
    )
    if report.ok and reaches is not None and report.head_seq < reaches.seq:
        problem = ChainProblem(
            report.head_seq,
            "cut",
            f"the server's head is event {reaches.seq}, but the events it sent end at event "
            f"{report.head_seq}: events were removed from the end (or the download was cut)",
        )
        return ChainReport(report.checked, report.head_seq, report.head_hash, problem)
    if report.ok and reaches is not None and named and named[0] != reaches.hash:
        problem = ChainProblem(
            reaches.seq,
            "head_mismatch",
            f"the server named event {reaches.seq} with hash {reaches.hash[:16]}… as its head, "
            f"but the event it sent there has hash {named[0][:16]}…",
        )
        return ChainReport(report.checked, report.head_seq, report.head_hash, problem)
    return report


def _start_problem(start: Checkpoint, stored: ChainEvent | None) -> ChainProblem:
    # the words of the catalog's own check (airlock.audit.log.verify), so local and remote agree
    found = "is missing" if stored is None else f"has hash {stored.hash[:16]}…"
    return ChainProblem(
        start.seq,
        "rewritten",
        f"the checkpoint records event {start.seq} with hash {start.hash[:16]}…, but "
        f"the stored event {found}: the chain was rewritten or cut at or before it",
    )


__all__ = ["RECENT", "ChainEvent", "ChainHead", "check_chain"]
