"""SQL for transcripts: per-service settings, the redacted rows, their feedback and scores."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from airlock.catalog.schema import transcript_feedback, transcript_settings, transcripts
from airlock.core.transcripts import (
    FeedbackEntry,
    Transcript,
    TranscriptEntry,
    TranscriptSetting,
    parse_prompt,
    prompt_json,
)


@dataclass(frozen=True, slots=True)
class StoredSpan:
    """How many transcripts a service holds, and the times of its oldest and newest."""

    count: int
    oldest: datetime | None
    newest: datetime | None


def _upsert(conn: Connection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


# -- settings --------------------------------------------------------------------------------

_SETTING = (
    transcript_settings.c.service,
    transcript_settings.c.enabled,
    transcript_settings.c.retention_s,
    transcript_settings.c.updated_at,
    transcript_settings.c.updated_by,
)


def _setting(r: Any) -> TranscriptSetting:
    return TranscriptSetting(r[0], bool(r[1]), int(r[2]), r[3], r[4])


def settings(conn: Connection) -> list[TranscriptSetting]:
    rows = conn.execute(select(*_SETTING).order_by(transcript_settings.c.service)).all()
    return [_setting(r) for r in rows]


def setting(conn: Connection, service: str) -> TranscriptSetting | None:
    r = conn.execute(select(*_SETTING).where(transcript_settings.c.service == service)).first()
    return _setting(r) if r else None


def put_setting(conn: Connection, value: TranscriptSetting) -> None:
    t = transcript_settings
    values = {
        "service": value.service,
        "enabled": value.enabled,
        "retention_s": value.retention_s,
        "updated_at": value.updated_at,
        "updated_by": value.updated_by,
    }
    stmt = _upsert(conn)(t).values(**values)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["service"], set_={k: v for k, v in values.items() if k != "service"}
        )
    )


# -- rows --------------------------------------------------------------------------------------


def insert_entries(conn: Connection, entries: Sequence[TranscriptEntry], *, gateway: str) -> None:
    """Insert ``entries``; one already stored (a retried flush) is skipped."""
    if not entries:
        return
    rows = [
        {
            "response_id": e.response_id,
            "service": e.service,
            "release": e.release,
            "arm": e.arm,
            "cluster": e.cluster,
            "kind": e.kind,
            "at": e.at,
            "prompt": prompt_json(e.prompt),
            "answer": e.answer,
            "gateway": gateway,
        }
        for e in entries
    ]
    stmt = _upsert(conn)(transcripts).on_conflict_do_nothing(index_elements=["response_id"])
    conn.execute(stmt, rows)


def upsert_feedback(conn: Connection, feedback: Sequence[FeedbackEntry]) -> None:
    """Store each score; a later score of the same response replaces the earlier one."""
    t = transcript_feedback
    for f in feedback:
        values = {
            "response_id": f.response_id,
            "service": f.service,
            "score": f.score,
            "metrics": json.dumps(dict(f.metrics), sort_keys=True),
            "issued_at": f.issued_at,
            "at": f.at,
        }
        stmt = _upsert(conn)(t).values(**values)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["response_id"],
                set_={"score": f.score, "metrics": values["metrics"], "at": f.at},
            )
        )


def issued(conn: Connection, response_id: str) -> tuple[str, datetime] | None:
    """The service and time of the transcript of ``response_id`` (None: none kept)."""
    t = transcripts
    r = conn.execute(select(t.c.service, t.c.at).where(t.c.response_id == response_id)).first()
    return (str(r[0]), r[1]) if r else None


def judged_pairs(
    conn: Connection, service: str, judge: str, *, metric: str, limit: int
) -> list[tuple[float, float]]:
    """(the judge's score, people's score) of the newest answers both rated, at most ``limit``."""
    t, f = transcripts, transcript_feedback
    rows = conn.execute(
        select(t.c.scores, f.c.score)
        .select_from(t.join(f, f.c.response_id == t.c.response_id))
        .where(t.c.service == service, t.c.judge == judge)
        .order_by(t.c.id.desc())
        .limit(limit)
    ).all()
    out = []
    for scored, human in rows:
        value = json.loads(scored or "{}").get(metric)
        if value is not None:
            out.append((float(value), float(human)))
    return out


def scores(conn: Connection, response_id: str) -> dict[str, float] | None:
    """The stored scores of a transcript ({} when none yet); None when there is no such row."""
    r = conn.execute(
        select(transcripts.c.scores).where(transcripts.c.response_id == response_id)
    ).first()
    if r is None:
        return None
    return {str(k): float(v) for k, v in json.loads(r[0] or "{}").items()}


def set_scores(
    conn: Connection, response_id: str, values: Mapping[str, float], judge: str | None
) -> bool:
    stmt = (
        update(transcripts)
        .where(transcripts.c.response_id == response_id)
        .values(scores=json.dumps(dict(values), sort_keys=True), judge=judge)
    )
    return bool(conn.execute(stmt).rowcount)


def span(conn: Connection, service: str) -> StoredSpan:
    t = transcripts
    r = conn.execute(
        select(func.count(), func.min(t.c.at), func.max(t.c.at)).where(t.c.service == service)
    ).one()
    return StoredSpan(int(r[0]), r[1], r[2])  # min()/max() keep the column's type (UTC)


def delete_before(conn: Connection, service: str, cutoff: datetime) -> tuple[int, int]:
    """Delete the service's transcripts and feedback of responses given before ``cutoff``."""
    gone = conn.execute(
        delete(transcripts).where(transcripts.c.service == service, transcripts.c.at < cutoff)
    ).rowcount
    f = transcript_feedback
    scored = conn.execute(delete(f).where(f.c.service == service, f.c.issued_at < cutoff)).rowcount
    return int(gone or 0), int(scored or 0)


def page(
    conn: Connection,
    service: str,
    *,
    after_id: int,
    limit: int,
    since: datetime | None = None,
    release: str | None = None,
    min_score: float | None = None,
) -> list[tuple[int, Transcript]]:
    """Up to ``limit`` transcripts with id > ``after_id``, oldest first, with their feedback."""
    t, f = transcripts, transcript_feedback
    query = (
        select(
            t.c.id,
            t.c.response_id,
            t.c.service,
            t.c.release,
            t.c.arm,
            t.c.cluster,
            t.c.kind,
            t.c.at,
            t.c.prompt,
            t.c.answer,
            t.c.scores,
            t.c.judge,
            f.c.score,
            f.c.metrics,
            f.c.issued_at,
            f.c.at,
        )
        .select_from(t.outerjoin(f, f.c.response_id == t.c.response_id))
        .where(t.c.service == service, t.c.id > after_id)
        .order_by(t.c.id)
        .limit(limit)
    )
    if since is not None:
        query = query.where(t.c.at >= since)
    if release is not None:
        query = query.where(t.c.release == release)
    if min_score is not None:
        query = query.where(f.c.score >= min_score)
    out = []
    for r in conn.execute(query).all():
        feedback = None
        if r[12] is not None:
            metrics = {str(k): float(v) for k, v in json.loads(r[13] or "{}").items()}
            feedback = FeedbackEntry(r[1], r[2], float(r[12]), r[14], r[15], metrics)
        scored = {str(k): float(v) for k, v in json.loads(r[10] or "{}").items()}
        out.append(
            (
                int(r[0]),
                Transcript(
                    response_id=r[1],
                    service=r[2],
                    release=r[3],
                    arm=r[4],
                    cluster=int(r[5]),
                    kind=r[6],
                    at=r[7],
                    prompt=parse_prompt(r[8]),
                    answer=r[9],
                    scores=scored,
                    judge=r[11],
                    feedback=feedback,
                ),
            )
        )
    return out


__all__ = [
    "StoredSpan",
    "delete_before",
    "insert_entries",
    "page",
    "put_setting",
    "scores",
    "set_scores",
    "setting",
    "settings",
    "span",
    "upsert_feedback",
]
