"""Transcripts: opt-in per service, retention, feedback, scores, and the export to a dataset.

* ``configure(service, enabled=..., retention_s=...)`` turns a service's transcripts
  on or off (an operator's or admin's action, audited as ``service.transcripts``).
  Gateways read the settings every flush (:mod:`airlock.gateway.transcripts`), so a
  change reaches every replica within a second. Turning them off stops the
  recording; the rows kept so far stay until their retention has passed
  (:class:`TranscriptStatus` says how many and when the last one goes).
* ``write(entries, feedback)`` is a gateway's flush: already-redacted transcripts
  and users' scores, in one transaction, without an audit event (a measurement,
  like telemetry).
* ``purge_expired(now)`` deletes, for every service, the transcripts (and their
  feedback) of responses older than its retention. Gateways call it from their
  flush loop at most every ``purge_every`` seconds; ``airlock service transcripts
  SERVICE --purge`` calls it for one service (audited as ``transcripts.purge``).
  Judged pairs (prompt and both arms' answers, shadow phases) go with them.
* ``update_scores(response_id, scores, judge)`` adds named quality scores and the
  judge release that gave them to a stored transcript.
* ``export(service, path, ...)`` writes JSON Lines for the next training set,
  with provenance (audited as ``feedback.export``, with the file's sha256, which
  is the digest ``airlock push --dataset feedback=FILE.jsonl`` records).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from airlock import audit
from airlock.catalog import quality as pairs_sql
from airlock.catalog import serving as serving_sql
from airlock.catalog import transcripts as sql
from airlock.core.calibration import Agreement, agreement
from airlock.core.quality import JUDGE_METRIC
from airlock.core.roles import Action
from airlock.core.transcripts import (
    DEFAULT_RETENTION_S,
    FeedbackEntry,
    JudgedPair,
    TranscriptEntry,
    TranscriptSetting,
)
from airlock.errors import InvalidInput, NotFound
from airlock.services.access import authorize
from airlock.services.identity import Actor
from airlock.services.workspace import Workspace

if TYPE_CHECKING:
    pass

log = logging.getLogger("airlock.transcripts")

MIN_RETENTION_S = 60
MAX_RETENTION_S = 10 * 366 * 86_400


@dataclass(frozen=True, slots=True)
class TranscriptStatus:
    """A service's setting and what it holds: how many rows, and when they expire."""

    service: str
    enabled: bool
    retention_s: int
    stored: int
    oldest: datetime | None
    newest: datetime | None
    updated_at: datetime | None
    updated_by: str | None

    @property
    def next_expiry(self) -> datetime | None:
        """When the oldest stored row is deleted."""
        return None if self.oldest is None else self.oldest + timedelta(seconds=self.retention_s)

    @property
    def all_gone_at(self) -> datetime | None:
        """When the newest stored row is deleted (none is added while transcripts are off)."""
        return None if self.newest is None else self.newest + timedelta(seconds=self.retention_s)


@dataclass(frozen=True, slots=True)
class PurgeResult:
    transcripts: int
    feedback: int
    services: tuple[str, ...]  # the services that lost rows
    pairs: int = 0  # judged pairs (they hold prompts too)


class Transcripts:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.db = workspace.db

    # -- settings ---------------------------------------------------------------------------
    def configure(
        self,
        service: str,
        *,
        enabled: bool,
        retention_s: float | None = None,
        actor: Actor,
        reason: str = "",
    ) -> TranscriptStatus:
        """Turn a service's transcripts on or off; ``retention_s`` None keeps the current one
        (30 days for a service never configured)."""
        if retention_s is not None:
            retention_s = _check_retention(retention_s)
        authorize(self.db, actor, Action.SERVICE_CONFIGURE, f"service:{service}")
        with self.db.write() as conn:
            require_service(conn, service)
            before = sql.setting(conn, service)
            keep = before.retention_s if before is not None else DEFAULT_RETENTION_S
            value = TranscriptSetting(
                service=service,
                enabled=enabled,
                retention_s=int(retention_s) if retention_s is not None else keep,
                updated_at=datetime.now(UTC),
                updated_by=actor.name,
            )
            sql.put_setting(conn, value)
            audit.append(
                conn,
                actor=actor.name,
                action="service.transcripts",
                subject=service,
                details={
                    "enabled": value.enabled,
                    "retention_s": value.retention_s,
                    "was_enabled": None if before is None else before.enabled,
                    "was_retention_s": None if before is None else before.retention_s,
                    "reason": reason,
                },
            )
            return _status(conn, service, value)

    def status(self, service: str) -> TranscriptStatus:
        with self.db.read() as conn:
            require_service(conn, service)
            return _status(conn, service, sql.setting(conn, service))

    def settings(self) -> tuple[TranscriptSetting, ...]:
        """Every service's setting (what a gateway polls)."""
        with self.db.read() as conn:
            return tuple(sql.settings(conn))

    # -- what gateways write ------------------------------------------------------------------
    def write(
        self,
        entries: Sequence[TranscriptEntry],
        feedback: Sequence[FeedbackEntry] = (),
        *,
        gateway: str,
        pairs: Sequence[JudgedPair] = (),
    ) -> None:
        """One gateway flush: redacted transcripts, scores and judged pairs, in one
        transaction."""
        if not entries and not feedback and not pairs:
            return
        with self.db.write() as conn:
            sql.insert_entries(conn, entries, gateway=gateway)
            sql.upsert_feedback(conn, feedback)
            pairs_sql.insert_pairs(conn, pairs, gateway=gateway)

    def update_scores(
        self, response_id: str, scores: Mapping[str, float], judge: str | None
    ) -> bool:
        """Add named scores (merged over earlier ones) and the judge release to a transcript.

        False when no transcript has that id (its service does not keep them, or it expired).
        """
        clean: dict[str, float] = {}
        for name, value in scores.items():
            if not isinstance(name, str) or not name or len(name) > 64:
                raise InvalidInput(f"score name {str(name)[:40]!r} must be 1 to 64 characters")
            number = float(value)
            if not math.isfinite(number):
                raise InvalidInput(f"score {name!r} must be a finite number, got {value!r}")
            clean[name] = number
        with self.db.write() as conn:
            stored = sql.scores(conn, response_id)
            if stored is None:
                return False
            return sql.set_scores(conn, response_id, {**stored, **clean}, judge)

    # -- people's labels and the judge ---------------------------------------------------------
    def label(self, response_id: str, good: bool, *, actor: Actor, reason: str = "") -> str:
        """Record a person's verdict on a kept answer (as its feedback); returns its service."""
        with self.db.read() as conn:
            found = sql.issued(conn, response_id)
        if found is None:
            raise NotFound(
                f"no kept transcript has response id {response_id[:80]!r}",
                hint="labels need the service to keep transcripts: "
                "airlock service transcripts SERVICE --on",
            )
        service, at = found
        authorize(self.db, actor, Action.SERVICE_CONFIGURE, f"service:{service}")
        with self.db.write() as conn:
            now = datetime.now(UTC)
            entry = FeedbackEntry(
                response_id, service, 1.0 if good else 0.0, at, now, {"label": 1.0}
            )
            sql.upsert_feedback(conn, [entry])
            audit.append(
                conn,
                actor=actor.name,
                action="judge.label",
                subject=service,
                details={"response": response_id, "good": good, "reason": reason},
            )
        return service

    def judge_agreement(
        self, service: str, judge: str, *, threshold: float = 0.5, limit: int = 5000
    ) -> Agreement:
        """How often ``judge``'s pass/fail (score ≥ ``threshold``) matches people's, on the
        newest answers of ``service`` that both rated (feedback thumbs and labels)."""
        with self.db.read() as conn:
            pairs = sql.judged_pairs(conn, service, judge, metric=JUDGE_METRIC, limit=limit)
        judged = [1.0 if j >= threshold else 0.0 for j, _ in pairs]
        return agreement(judged, [h for _, h in pairs])

    # -- retention -------------------------------------------------------------------------------
    def purge_expired(
        self, now: datetime, *, service: str | None = None, actor: Actor | None = None
    ) -> PurgeResult:
        """Delete every transcript (and its feedback) older than its service's retention.

        With an ``actor`` (``airlock service transcripts --purge``) the deletion is an
        audit event; the gateways' periodic sweep carries out the stored setting and
        only logs what it deleted.
        """
        if actor is not None:
            authorize(self.db, actor, Action.SERVICE_CONFIGURE, f"service:{service or '*'}")
        gone = scored = paired = 0
        touched: list[str] = []
        with self.db.write() as conn:
            if service is not None:
                require_service(conn, service)
            for s in sql.settings(conn):
                if service is not None and s.service != service:
                    continue
                cutoff = now - timedelta(seconds=s.retention_s)
                n, m = sql.delete_before(conn, s.service, cutoff)
                k = pairs_sql.delete_pairs_before(conn, s.service, cutoff)  # they hold prompts
                if n or m or k:
                    touched.append(s.service)
                gone, scored, paired = gone + n, scored + m, paired + k
            if actor is not None:
                audit.append(
                    conn,
                    actor=actor.name,
                    action="transcripts.purge",
                    subject=service or "*",
                    details={
                        "transcripts": gone,
                        "feedback": scored,
                        "pairs": paired,
                        "now": now.isoformat(),
                    },
                )
        if gone or scored or paired:
            log.info(
                "deleted %d expired transcripts, %d scores and %d judged pairs",
                gone,
                scored,
                paired,
            )
        return PurgeResult(gone, scored, tuple(touched), paired)


def _check_retention(seconds: float) -> float:
    if not math.isfinite(seconds) or seconds < MIN_RETENTION_S:
        raise InvalidInput(
            f"a retention must be at least {MIN_RETENTION_S} s, got {seconds:g} s",
            hint="e.g. --retention 30d",
        )
    if seconds > MAX_RETENTION_S:
        raise InvalidInput("a retention can be at most 10 years", hint="e.g. --retention 365d")
    return seconds


def require_service(conn: Connection, service: str) -> None:
    if serving_sql.get(conn, service) is None:
        raise NotFound(
            f"service {service!r} does not exist",
            hint="see the services with `airlock service ls`",
        )


def release_ref(ws: Workspace, conn: Connection, ref: str | None) -> str | None:
    """An exact ``name@version`` for ``--release`` (an alias is resolved now)."""
    if ref is None:
        return None
    from airlock.services.registry import Registry

    return Registry(ws).resolve_in(conn, ref).ref


def _status(conn: Connection, service: str, value: TranscriptSetting | None) -> TranscriptStatus:
    stored = sql.span(conn, service)
    return TranscriptStatus(
        service=service,
        enabled=value is not None and value.enabled,
        retention_s=value.retention_s if value is not None else DEFAULT_RETENTION_S,
        stored=stored.count,
        oldest=stored.oldest,
        newest=stored.newest,
        updated_at=None if value is None else value.updated_at,
        updated_by=None if value is None else value.updated_by,
    )


__all__ = [
    "PurgeResult",
    "TranscriptStatus",
    "Transcripts",
]
