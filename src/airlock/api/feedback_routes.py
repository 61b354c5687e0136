"""REST routes over people's feedback: the dataset export, labels and the judge's agreement.

``POST /api/v1/services/{name}/feedback/export`` writes the export on the server exactly
as ``airlock feedback export`` does locally (redacted server-side, operators and admins
only, audited as ``feedback.export`` with the file's sha256), then streams the file:
JSON Lines, with its size, line count, sha256 and audit event in the headers, so the
client checks every byte it wrote against the digest the audit log recorded.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from airlock.api.deps import ActorDep, WorkspaceDep
from airlock.api.derive import From, Out
from airlock.core.calibration import Agreement
from airlock.services.feedback_export import FeedbackExport
from airlock.services.transcripts import Transcripts

router = APIRouter(prefix="/api/v1", tags=["feedback"])

CHUNK = 1 << 20


class FeedbackExportIn(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    since: datetime | None = Field(default=None, description="only answers at or after this")
    release: str | None = Field(
        default=None, max_length=256, description="only answers of this release (or alias)"
    )
    min_score: float | None = Field(default=None, description="only answers scored at least this")
    path: str = Field(
        default="", max_length=4096, description="where the client writes it (audit details)"
    )


class LabelIn(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    response_id: str = Field(min_length=1, max_length=4096, description="chatcmpl-...")
    good: bool
    reason: str = Field(default="", max_length=4000)


class LabelOut(BaseModel):
    model_config = ConfigDict(frozen=True)

    response_id: str
    service: str
    good: bool


class AgreementOut(Out):
    __value__ = From(Agreement)


@router.post(
    "/services/{name}/feedback/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
def export_feedback(
    name: str, body: FeedbackExportIn, ws: WorkspaceDep, who: ActorDep
) -> StreamingResponse:
    """Export the service's transcripts with feedback and scores as JSON Lines (operators,
    admins). Headers: ``X-Airlock-Count``, ``X-Airlock-Sha256``, ``X-Airlock-Event-Seq``,
    ``X-Airlock-Exported-At``, ``X-Airlock-Filter`` (JSON)."""
    spooled = FeedbackExport(ws).export_spooled(
        name,
        actor=who,
        destination=body.path,
        since=body.since,
        release=body.release,
        min_score=body.min_score,
    )
    result = spooled.result
    headers = {
        "Content-Length": str(spooled.size),
        "X-Airlock-Count": str(result.count),
        "X-Airlock-Sha256": result.sha256,
        "X-Airlock-Event-Seq": str(result.event_seq),
        "X-Airlock-Exported-At": result.exported_at.isoformat(),
        "X-Airlock-Filter": json.dumps(result.filter.to_dict(), sort_keys=True),
    }
    return StreamingResponse(
        _send(spooled.file),
        media_type="application/x-ndjson",
        headers=headers,
        background=BackgroundTask(_delete, spooled.file),
    )


def _send(file: Path) -> Iterator[bytes]:
    try:
        with file.open("rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk
    finally:
        _delete(file)


def _delete(file: Path) -> None:
    with contextlib.suppress(OSError):
        file.unlink()


@router.post("/transcripts/labels", response_model=LabelOut)
def label(body: LabelIn, ws: WorkspaceDep, who: ActorDep) -> LabelOut:
    """Record a person's verdict on a kept answer (operators, admins); it counts as that
    answer's feedback. The response id travels in the body: it is pasted text."""
    service = Transcripts(ws).label(body.response_id, body.good, actor=who, reason=body.reason)
    return LabelOut(response_id=body.response_id, service=service, good=body.good)


@router.get("/services/{name}/judge-agreement", response_model=AgreementOut)
def judge_agreement(
    name: str,
    ws: WorkspaceDep,
    _: ActorDep,
    judge: str = Query(..., max_length=256, description="the judge release (name@version)"),
    threshold: float = Query(0.5, ge=0.0, le=1.0, description="a judged score at or above passes"),
) -> AgreementOut:
    """How often the judge's pass/fail matched people's (feedback and labels)."""
    return AgreementOut.of(Transcripts(ws).judge_agreement(name, judge, threshold=threshold))
