"""SQL for service quality: a service's default quality settings and the judged pairs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from airlock.catalog.schema import judged_pairs, service_quality
from airlock.core.quality import QualitySettings, ServiceQuality
from airlock.core.transcripts import JudgedPair, parse_prompt, prompt_json


def _upsert(conn: Connection) -> Any:
    return pg_insert if conn.dialect.name == "postgresql" else sqlite_insert


# -- a service's defaults ------------------------------------------------------------------------


def defaults(conn: Connection, service: str) -> ServiceQuality | None:
    t = service_quality.c
    r = conn.execute(
        select(t.settings, t.updated_at, t.updated_by).where(t.service == service)
    ).first()
    if r is None:
        return None
    return ServiceQuality(service, QualitySettings.model_validate_json(r[0]), r[1], r[2])


def put_defaults(conn: Connection, value: ServiceQuality) -> None:
    text = value.settings.model_dump_json()
    values = {
        "service": value.service,
        "settings": text,
        "updated_at": value.updated_at,
        "updated_by": value.updated_by,
    }
    stmt = _upsert(conn)(service_quality).values(**values)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["service"], set_={k: v for k, v in values.items() if k != "service"}
        )
    )


def clear_defaults(conn: Connection, service: str) -> bool:
    stmt = delete(service_quality).where(service_quality.c.service == service)
    return bool(conn.execute(stmt).rowcount)


# -- judged pairs -------------------------------------------------------------------------------


def insert_pairs(conn: Connection, pairs: Sequence[JudgedPair], *, gateway: str) -> None:
    if not pairs:
        return
    rows = [
        {
            "service": p.service,
            "request_id": p.request_id,
            "at": p.at,
            "stable_release": p.stable_release,
            "candidate_release": p.candidate_release,
            "judge": p.judge,
            "outcome": p.outcome,
            "prompt": prompt_json(p.prompt),
            "stable_answer": p.stable_answer,
            "candidate_answer": p.candidate_answer,
            "gateway": gateway,
        }
        for p in pairs
    ]
    conn.execute(judged_pairs.insert(), rows)


def pairs_page(
    conn: Connection,
    service: str,
    *,
    before_id: int | None,
    limit: int,
    candidate: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[tuple[int, JudgedPair]]:
    """Up to ``limit`` pairs of ``service`` newest first, with id < ``before_id`` (keyset)."""
    t = judged_pairs.c
    q = select(
        t.id,
        t.service,
        t.request_id,
        t.at,
        t.stable_release,
        t.candidate_release,
        t.judge,
        t.outcome,
        t.prompt,
        t.stable_answer,
        t.candidate_answer,
    ).where(t.service == service)
    if before_id is not None:
        q = q.where(t.id < before_id)
    if candidate is not None:
        q = q.where(t.candidate_release == candidate)
    if since is not None:
        q = q.where(t.at >= since)
    if until is not None:
        q = q.where(t.at < until)
    out = []
    for r in conn.execute(q.order_by(t.id.desc()).limit(limit)).all():
        pair = JudgedPair(r[1], r[2], r[3], r[4], r[5], r[6], r[7], parse_prompt(r[8]), r[9], r[10])
        out.append((int(r[0]), pair))
    return out


def pair_counts(
    conn: Connection,
    service: str,
    *,
    candidate: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, int]:
    """How many stored pairs of each outcome (``win``, ``tie``, ``loss``)."""
    t = judged_pairs.c
    q = select(t.outcome, func.count()).where(t.service == service).group_by(t.outcome)
    if candidate is not None:
        q = q.where(t.candidate_release == candidate)
    if since is not None:
        q = q.where(t.at >= since)
    if until is not None:
        q = q.where(t.at < until)
    return {str(o): int(n) for o, n in conn.execute(q).all()}


def delete_pairs_before(conn: Connection, service: str, cutoff: datetime) -> int:
    t = judged_pairs
    gone = conn.execute(delete(t).where(t.c.service == service, t.c.at < cutoff)).rowcount
    return int(gone or 0)


__all__ = [
    "clear_defaults",
    "defaults",
    "delete_pairs_before",
    "insert_pairs",
    "pair_counts",
    "pairs_page",
    "put_defaults",
]
