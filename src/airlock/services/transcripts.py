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
* ``update_scores(response_id, scores, judge)`` adds named quality scores and the
  judge release that gave them to a stored transcript.
* ``export(service, path, ...)`` writes JSON Lines for the next training set,
  with provenance (audited as ``feedback.export``, with the file's sha256, which
  is the digest ``airlock push --dataset feedback=FILE.jsonl`` records).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Connection

from airlock import __version__, audit
from airlock.catalog import serving as serving_sql
from airlock.catalog import transcripts as sql
from airlock.core.calibration import Agreement, agreement
from airlock.core.quality import JUDGE_METRIC
from airlock.core.roles import Action
from airlock.core.transcripts import (
    DEFAULT_RETENTION_S,
    REDACTION,
    FeedbackEntry,
    TranscriptEntry,
    TranscriptSetting,
    export_record,
)
from airlock.errors import Conflict, InvalidInput, NotFound
from airlock.services.access import authorize
from airlock.services.identity import Actor
from airlock.services.workspace import Workspace

log = logging.getLogger("airlock.transcripts")

MIN_RETENTION_S = 60
MAX_RETENTION_S = 10 * 366 * 86_400
_PAGE = 1_000


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


@dataclass(frozen=True, slots=True)
class ExportFilter:
    since: datetime | None = None
    release: str | None = None
    min_score: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "since": None if self.since is None else self.since.isoformat(),
            "release": self.release,
            "min_score": self.min_score,
        }


@dataclass(frozen=True, slots=True)
class ExportResult:
    path: Path
    service: str
    count: int
    sha256: str  # hex of the file's bytes
    filter: ExportFilter
    exported_at: datetime
    event_seq: int

    @property
    def digest(self) -> str:
        return f"sha256:{self.sha256}"


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
            _require_service(conn, service)
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
            _require_service(conn, service)
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
    ) -> None:
        """One gateway flush: redacted transcripts and scores, in one transaction."""
        if not entries and not feedback:
            return
        with self.db.write() as conn:
            sql.insert_entries(conn, entries, gateway=gateway)
            sql.upsert_feedback(conn, feedback)

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
        gone = scored = 0
        touched: list[str] = []
        with self.db.write() as conn:
            if service is not None:
                _require_service(conn, service)
            for s in sql.settings(conn):
                if service is not None and s.service != service:
                    continue
                cutoff = now - timedelta(seconds=s.retention_s)
                n, m = sql.delete_before(conn, s.service, cutoff)
                if n or m:
                    touched.append(s.service)
                gone, scored = gone + n, scored + m
            if actor is not None:
                audit.append(
                    conn,
                    actor=actor.name,
                    action="transcripts.purge",
                    subject=service or "*",
                    details={"transcripts": gone, "feedback": scored, "now": now.isoformat()},
                )
        if gone or scored:
            log.info("deleted %d expired transcripts and %d scores", gone, scored)
        return PurgeResult(gone, scored, tuple(touched))

    # -- export ------------------------------------------------------------------------------------
    def export(
        self,
        service: str,
        path: Path,
        *,
        actor: Actor,
        since: datetime | None = None,
        release: str | None = None,
        min_score: float | None = None,
        force: bool = False,
    ) -> ExportResult:
        """Write the service's transcripts as JSON Lines to ``path`` (see the module docstring).

        Refuses an existing ``path`` unless ``force``. The file appears whole or not at all
        (a temporary file in the same folder, renamed when the audit event is written).
        """
        check_min_score(min_score)
        authorize(self.db, actor, Action.SERVICE_CONFIGURE, f"service:{service}")
        path = check_export_target(Path(path), force=force)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                written = self._write_export(out, service, since, release, min_score)
            with self.db.write() as conn:
                result = self._record_export(conn, actor, written, str(path.resolve()))
                if path.exists() and not force:  # appeared while exporting
                    raise Conflict(f"{path} appeared while exporting; nothing was written")
                os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return dataclasses.replace(result, path=path)

    def export_spooled(
        self,
        service: str,
        *,
        actor: Actor,
        destination: str,
        since: datetime | None = None,
        release: str | None = None,
        min_score: float | None = None,
    ) -> SpooledExport:
        """The same export into a temporary file here, for a client that downloads it to
        ``destination`` (the path it names, kept in the audit event): the caller sends the
        file and deletes it. The event is written once the file is complete, as locally."""
        check_min_score(min_score)
        authorize(self.db, actor, Action.SERVICE_CONFIGURE, f"service:{service}")
        fd, tmp_name = tempfile.mkstemp(prefix=".airlock-feedback-", suffix=".jsonl")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                written = self._write_export(out, service, since, release, min_score)
            with self.db.write() as conn:
                result = self._record_export(conn, actor, written, destination)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return SpooledExport(tmp, tmp.stat().st_size, result)

    def _write_export(
        self,
        out: BinaryIO,
        service: str,
        since: datetime | None,
        release: str | None,
        min_score: float | None,
    ) -> ExportResult:
        """Write the JSON Lines to ``out`` (fsynced); the result without its path and event."""
        with self.db.read() as conn:
            _require_service(conn, service)
            release = _release_ref(self.ws, conn, release)
        filt = ExportFilter(since=since, release=release, min_score=min_score)
        exported_at = datetime.now(UTC)
        provenance = {
            "source": "airlock transcripts",
            "service": service,
            "exported_at": exported_at.isoformat(),
            "airlock_version": __version__,
            "filter": filt.to_dict(),
            "redaction": REDACTION,
        }
        digest = hashlib.sha256()
        count = 0
        after = 0
        while True:
            with self.db.read() as conn:
                rows = sql.page(
                    conn,
                    service,
                    after_id=after,
                    limit=_PAGE,
                    since=since,
                    release=release,
                    min_score=min_score,
                )
            for row_id, transcript in rows:
                after = row_id
                line = json.dumps(
                    export_record(transcript, provenance),
                    ensure_ascii=False,
                    sort_keys=True,
                    separators=(",", ":"),
                )
                data = (line + "\n").encode("utf-8")
                digest.update(data)
                out.write(data)
                count += 1
            if len(rows) < _PAGE:
                break
        out.flush()
        os.fsync(out.fileno())
        return ExportResult(Path(), service, count, digest.hexdigest(), filt, exported_at, 0)

    def _record_export(
        self, conn: Connection, actor: Actor, written: ExportResult, path: str
    ) -> ExportResult:
        event = audit.append(
            conn,
            actor=actor.name,
            action="feedback.export",
            subject=written.service,
            details={
                "path": path,
                "count": written.count,
                "sha256": written.sha256,
                "filter": written.filter.to_dict(),
            },
        )
        return dataclasses.replace(written, path=Path(path), event_seq=event.seq)


@dataclass(frozen=True, slots=True)
class SpooledExport:
    """An export written to a temporary ``file`` of ``size`` bytes, to send and delete."""

    file: Path
    size: int
    result: ExportResult


def check_min_score(min_score: float | None) -> None:
    if min_score is not None and not (math.isfinite(min_score) and 0.0 <= min_score <= 1.0):
        raise InvalidInput(f"--min-score must be in [0, 1], got {min_score!r}")


def check_export_target(path: Path, *, force: bool) -> Path:
    """``path`` if an export may be written there: not an existing file (unless ``force``),
    not a folder, in a folder that exists."""
    if path.exists() and not force:
        raise Conflict(
            f"{path} already exists",
            hint="choose another --out, or pass --force to replace it",
        )
    if path.is_dir():
        raise InvalidInput(f"{path} is a folder; --out names the .jsonl file to write")
    if not path.parent.is_dir():
        raise NotFound(f"no folder {path.parent} to write {path.name} into")
    return path


def _check_retention(seconds: float) -> float:
    if not math.isfinite(seconds) or seconds < MIN_RETENTION_S:
        raise InvalidInput(
            f"a retention must be at least {MIN_RETENTION_S} s, got {seconds:g} s",
            hint="e.g. --retention 30d",
        )
    if seconds > MAX_RETENTION_S:
        raise InvalidInput("a retention can be at most 10 years", hint="e.g. --retention 365d")
    return seconds


def _require_service(conn: Connection, service: str) -> None:
    if serving_sql.get(conn, service) is None:
        raise NotFound(
            f"service {service!r} does not exist",
            hint="see the services with `airlock service ls`",
        )


def _release_ref(ws: Workspace, conn: Connection, ref: str | None) -> str | None:
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
    "ExportFilter",
    "ExportResult",
    "PurgeResult",
    "TranscriptStatus",
    "Transcripts",
]
