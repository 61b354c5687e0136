"""SQL for models and releases (every function takes an open connection)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, Select, and_, bindparam, func, insert, or_, select

from airlock.catalog.schema import (
    aliases,
    components,
    datasets,
    lineage,
    models,
    release_files,
    releases,
)
from airlock.core.paging import FINAL_KEY_SUFFIX, version_key
from airlock.core.records import ModelSummary, Release

if TYPE_CHECKING:
    from airlock.core.manifest import Manifest

_RELEASE_COLUMNS = (
    releases.c.id,
    models.c.name,
    releases.c.version,
    releases.c.digest,
    releases.c.content_key,
    releases.c.author,
    releases.c.created_at,
    releases.c.total_size,
    releases.c.file_count,
    releases.c.parameters,
    releases.c.has_pickle,
    releases.c.manifest,
)


def _release_select() -> Select[Any]:
    return select(*_RELEASE_COLUMNS).join(models, models.c.id == releases.c.model_id)


def _row(r: Row[Any]) -> Release:
    return Release(*r)  # type: ignore[call-arg]


# The resolve path's statements, built once: SQLAlchemy memoizes a statement's cache key, so
# executing one of these skips building and hashing the expression tree on every call.
_BY_VERSION = _release_select().where(
    models.c.name == bindparam("name"), releases.c.version == bindparam("version")
)
_BY_ALIAS = (
    _release_select()
    .join(aliases, aliases.c.release_id == releases.c.id)
    .where(
        models.c.name == bindparam("name"),
        aliases.c.name == bindparam("alias"),
        aliases.c.model_id == models.c.id,
    )
)
_BY_ID = _release_select().where(releases.c.id == bindparam("id"))
_MODEL_ID = select(models.c.id).where(models.c.name == bindparam("name"))


def model_id(conn: Connection, name: str, *, create: bool = False) -> int | None:
    found = conn.execute(_MODEL_ID, {"name": name}).scalar_one_or_none()
    if found is not None or not create:
        return found
    return int(
        conn.execute(
            insert(models).values(name=name, created_at=datetime.now(UTC)).returning(models.c.id)
        ).scalar_one()
    )


def insert_release(
    conn: Connection, manifest: Manifest, manifest_json: str, parent_id: int | None
) -> int:
    mid = model_id(conn, manifest.name, create=True)
    rid = int(
        conn.execute(
            insert(releases)
            .values(
                model_id=mid,
                version=manifest.version,
                version_key=version_key(manifest.version),
                digest=manifest.digest(),
                content_key=manifest.content_key(),
                manifest=manifest_json,
                author=manifest.author,
                created_at=manifest.created_at,
                total_size=manifest.total_size,
                file_count=len(manifest.files),
                parameters=manifest.parameters,
                has_pickle=manifest.has_pickle,
            )
            .returning(releases.c.id)
        ).scalar_one()
    )
    if manifest.files:
        conn.execute(
            insert(release_files),
            [
                {
                    "release_id": rid,
                    "path": f.path,
                    "digest": f.digest,
                    "size": f.size,
                    "media_type": f.media_type,
                    "kind": f.format.kind if f.format else None,
                }
                for f in manifest.files
            ],
        )
    if manifest.components:
        conn.execute(
            insert(components),
            [
                {
                    "release_id": rid,
                    "role": role,
                    "kind": "ref" if c.ref else ("digest" if c.digest else "path"),
                    "target": c.ref or c.digest or c.path,
                }
                for role, c in manifest.components.items()
            ],
        )
    if manifest.lineage.datasets:
        conn.execute(
            insert(datasets),
            [
                {"release_id": rid, "name": d.name, "uri": d.uri, "digest": d.digest}
                for d in manifest.lineage.datasets
            ],
        )
    code = manifest.lineage.code
    conn.execute(
        insert(lineage).values(
            release_id=rid,
            parent_ref=manifest.lineage.parent,
            parent_release_id=parent_id,
            code_repo=code.repo if code else None,
            code_commit=code.commit if code else None,
        )
    )
    return rid


def by_version(conn: Connection, name: str, version: str) -> Release | None:
    r = conn.execute(_BY_VERSION, {"name": name, "version": version}).first()
    return _row(r) if r else None


def by_alias(conn: Connection, name: str, alias: str) -> Release | None:
    """The release ``name@alias`` points at, in one indexed query (None: no such alias)."""
    r = conn.execute(_BY_ALIAS, {"name": name, "alias": alias}).first()
    return _row(r) if r else None


def latest(conn: Connection, model_id: int) -> Release | None:
    """The highest final release, else the highest pre-release (one index walk each)."""
    q = _release_select().where(releases.c.model_id == model_id)
    order = (releases.c.version_key.desc(), releases.c.id.desc())
    final = FINAL_KEY_SUFFIX
    r = conn.execute(
        q.where(releases.c.version_key.endswith(final)).order_by(*order).limit(1)
    ).first()
    if r is None:
        r = conn.execute(q.order_by(*order).limit(1)).first()
    return _row(r) if r else None


def by_id(conn: Connection, release_id: int) -> Release | None:
    r = conn.execute(_BY_ID, {"id": release_id}).first()
    return _row(r) if r else None


def by_digest_prefix(conn: Connection, prefix: str, limit: int = 5) -> list[Release]:
    rows = conn.execute(
        _release_select().where(releases.c.digest.startswith(prefix)).limit(limit)
    ).all()
    return [_row(r) for r in rows]


def of_model(conn: Connection, name: str) -> list[Release]:
    rows = conn.execute(_release_select().where(models.c.name == name)).all()
    return [_row(r) for r in rows]


def page_of_model(
    conn: Connection,
    model_id: int,
    *,
    after: tuple[str, int] | None,
    limit: int,
    newest_first: bool = False,
) -> list[Release]:
    """Up to ``limit`` releases of the model in version order (or the reverse), after the
    (version_key, id) ``after``; walks ix_releases_model_version_key, never the releases
    before the page."""
    key_col, id_col = releases.c.version_key, releases.c.id
    q = _release_select().where(releases.c.model_id == model_id)
    if after is not None:
        key, rid = after
        if newest_first:
            q = q.where(or_(key_col < key, and_(key_col == key, id_col < rid)))
        else:
            q = q.where(or_(key_col > key, and_(key_col == key, id_col > rid)))
    order = (key_col.desc(), id_col.desc()) if newest_first else (key_col, id_col)
    q = q.order_by(*order).limit(limit)
    return [_row(r) for r in conn.execute(q).all()]


def page_models(conn: Connection, *, after: str | None, limit: int) -> list[ModelSummary]:
    """Up to ``limit`` models by name after ``after``, each with its release count."""
    page = select(models.c.id, models.c.name, models.c.created_at).order_by(models.c.name)
    if after is not None:
        page = page.where(models.c.name > after)
    sub = page.limit(limit).subquery()
    count = (
        select(func.count(releases.c.id)).where(releases.c.model_id == sub.c.id).scalar_subquery()
    )
    rows = conn.execute(
        select(sub.c.id, sub.c.name, sub.c.created_at, count).order_by(sub.c.name)
    ).all()
    return [ModelSummary(r[0], r[1], r[2], int(r[3])) for r in rows]


def all_releases(conn: Connection) -> list[Release]:
    return [_row(r) for r in conn.execute(_release_select().order_by(releases.c.id)).all()]


def list_models(conn: Connection) -> list[ModelSummary]:
    count = func.count(releases.c.id)
    rows = conn.execute(
        select(models.c.id, models.c.name, models.c.created_at, count)
        .select_from(models.outerjoin(releases, releases.c.model_id == models.c.id))
        .group_by(models.c.id, models.c.name, models.c.created_at)
        .order_by(models.c.name)
    ).all()
    return [ModelSummary(r[0], r[1], r[2], int(r[3])) for r in rows]


def releases_using_blob(conn: Connection, digests: list[str]) -> dict[str, list[str]]:
    """For each blob digest, the refs of the releases whose files use it."""
    out: dict[str, list[str]] = {d: [] for d in digests}
    if not digests:
        return out
    rows = conn.execute(
        select(release_files.c.digest, models.c.name, releases.c.version, release_files.c.path)
        .join(releases, releases.c.id == release_files.c.release_id)
        .join(models, models.c.id == releases.c.model_id)
        .where(release_files.c.digest.in_(digests))
        .order_by(models.c.name, releases.c.id)
    ).all()
    for digest, name, version, path in rows:
        out[digest].append(f"{name}@{version}:{path}")
    return out


def file_digests(conn: Connection, release_ids: list[int] | None = None) -> set[str]:
    q = select(release_files.c.digest).distinct()
    if release_ids is not None:
        q = q.where(release_files.c.release_id.in_(release_ids))
    return {r[0] for r in conn.execute(q).all()}


def manifest_digests(conn: Connection) -> set[str]:
    return {r[0] for r in conn.execute(select(releases.c.digest)).all()}
