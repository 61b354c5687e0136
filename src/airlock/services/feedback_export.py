"""The feedback export: a service's transcripts, feedback and scores as a JSON Lines dataset.

``FeedbackExport.export(service, path, ...)`` writes the file locally (``airlock feedback
export``); ``export_spooled`` writes the same bytes into a temporary file on the server for
a client that downloads it (``POST /api/v1/services/{name}/feedback/export``). Either way
the rows are read in pages by id, already redacted by the gateway that kept them, each
line carries its provenance (service, export time, airlock version, the filter), only
operators and admins may export, and the export is audited as ``feedback.export`` with
the file's sha256 (the digest ``airlock push --dataset feedback=FILE.jsonl`` records).

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Connection

from airlock import __version__, audit
from airlock.catalog import transcripts as sql
from airlock.core.roles import Action
from airlock.core.transcripts import REDACTION, export_record
from airlock.errors import Conflict, InvalidInput, NotFound
from airlock.services.access import authorize
from airlock.services.identity import Actor
from airlock.services.transcripts import release_ref, require_service
from airlock.services.workspace import Workspace

_PAGE = 1_000


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


class FeedbackExport:
    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace
        self.db = workspace.db

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
            require_service(conn, service)
            release = release_ref(self.ws, conn, release)
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


__all__ = [
    "ExportFilter",
    "ExportResult",
    "FeedbackExport",
    "SpooledExport",
    "check_export_target",
    "check_min_score",
]
