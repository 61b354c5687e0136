"""SQL for aliases and their full history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, insert, select, update
from sqlalchemy.exc import IntegrityError as DuplicateKey

from airlock.catalog.schema import alias_history, aliases, models, releases
from airlock.core.records import Alias, AliasMove


class AliasMovedMeanwhile(Exception):
    """The alias row appeared between the locked read and the insert."""


def _alias_select() -> Select[Any]:
    return (
        select(
            models.c.name,
            aliases.c.name,
            aliases.c.release_id,
            releases.c.version,
            aliases.c.updated_at,
            aliases.c.updated_by,
        )
        .join(models, models.c.id == aliases.c.model_id)
        .join(releases, releases.c.id == aliases.c.release_id)
    )


def get(conn: Connection, model_id: int, name: str, *, for_update: bool = False) -> Alias | None:
    """The alias; ``for_update`` locks its row until the transaction ends (PostgreSQL)."""
    q = _alias_select().where(aliases.c.model_id == model_id, aliases.c.name == name)
    if for_update and conn.dialect.name == "postgresql":
        q = q.with_for_update(of=aliases)
    r = conn.execute(q).first()
    return Alias(*r) if r else None


def of_model(conn: Connection, model_id: int | None = None) -> list[Alias]:
    q = _alias_select().order_by(models.c.name, aliases.c.name)
    if model_id is not None:
        q = q.where(aliases.c.model_id == model_id)
    return [Alias(*r) for r in conn.execute(q).all()]


def move(
    conn: Connection,
    *,
    model_id: int,
    name: str,
    from_release_id: int | None,
    to_release_id: int,
    actor: str,
    reason: str,
    at: datetime,
    event_seq: int,
) -> None:
    """Point the alias at ``to_release_id`` and append the history row, in one transaction.

    The caller read ``from_release_id`` under a lock (``get(..., for_update=True)`` after
    ``events.lock_head``), so the history row's "from" is the previous row's "to".
    """
    values = {"release_id": to_release_id, "updated_at": at, "updated_by": actor}
    if from_release_id is None:
        try:
            with conn.begin_nested():
                conn.execute(insert(aliases).values(model_id=model_id, name=name, **values))
        except DuplicateKey as exc:  # created meanwhile by a writer that skipped the lock
            raise AliasMovedMeanwhile(name) from exc
    else:
        conn.execute(
            update(aliases)
            .where(aliases.c.model_id == model_id, aliases.c.name == name)
            .values(**values)
        )
    conn.execute(
        insert(alias_history).values(
            model_id=model_id,
            alias=name,
            from_release_id=from_release_id,
            to_release_id=to_release_id,
            actor=actor,
            reason=reason,
            at=at,
            event_seq=event_seq,
        )
    )


def history(
    conn: Connection, *, model: str | None = None, alias: str | None = None
) -> list[AliasMove]:
    return [m for _, m in history_page(conn, model=model, alias=alias)]


def history_page(
    conn: Connection,
    *,
    model: str | None = None,
    alias: str | None = None,
    after_id: int | None = None,
    limit: int | None = None,
    newest_first: bool = False,
) -> list[tuple[int, AliasMove]]:
    """Alias moves oldest first with their row ids, after ``after_id``, at most ``limit``;
    with a model and alias, walks ix_alias_history_model_alias_id."""
    old = releases.alias("old")
    new = releases.alias("new")
    q = (
        select(
            models.c.name,
            alias_history.c.alias,
            old.c.version,
            new.c.version,
            alias_history.c.actor,
            alias_history.c.reason,
            alias_history.c.at,
            alias_history.c.event_seq,
            alias_history.c.id,
        )
        .join(models, models.c.id == alias_history.c.model_id)
        .outerjoin(old, and_(old.c.id == alias_history.c.from_release_id))
        .outerjoin(new, and_(new.c.id == alias_history.c.to_release_id))
        .order_by(alias_history.c.id.desc() if newest_first else alias_history.c.id)
    )
    if model is not None:  # by id, so the (model_id, …, id) indexes serve the page
        mid = select(models.c.id).where(models.c.name == model).scalar_subquery()
        q = q.where(alias_history.c.model_id == mid)
    if alias is not None:
        q = q.where(alias_history.c.alias == alias)
    if after_id is not None:
        q = q.where(
            alias_history.c.id < after_id if newest_first else alias_history.c.id > after_id
        )
    if limit is not None:
        q = q.limit(limit)
    return [(int(r[-1]), AliasMove(*r[:-1])) for r in conn.execute(q).all()]
