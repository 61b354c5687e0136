"""Migration 0010_scale_indexes on a catalog that already holds releases: every release
gets its version key, so keyset pages and ``@latest`` see the old releases in order."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import Integer, String, column, insert, select, table

from airlock.catalog import migrate
from airlock.catalog import releases as release_sql
from airlock.catalog.engine import Database
from airlock.catalog.schema import models, releases
from airlock.core.paging import version_key

VERSIONS = ["1.10.0", "1.2.0", "2.0.0-rc.1", "1.2.0-beta"]


def test_old_releases_get_their_version_keys(db_url: str) -> None:
    db = Database.open(db_url)
    try:
        with db.write() as conn:
            cfg = migrate._config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "0004_rollouts")
        # the releases table as it was before 0010 (no version_key column yet)
        old = table(
            "releases",
            *(column(c, Integer) for c in ("id", "model_id", "total_size", "file_count")),
            *(column(c, String) for c in ("version", "digest", "content_key", "manifest")),
            column("author", String),
            column("created_at"),
            column("has_pickle"),
        )
        now = datetime.now(UTC)
        with db.write() as conn:
            conn.execute(insert(models).values(id=1, name="chat", created_at=now))
            for i, v in enumerate(VERSIONS, 1):
                conn.execute(
                    insert(old).values(
                        id=i,
                        model_id=1,
                        version=v,
                        digest=f"sha256:{i:064d}",
                        content_key="k",
                        manifest="{}",
                        author="alice",
                        created_at=now,
                        total_size=0,
                        file_count=0,
                        has_pickle=False,
                    )
                )
        assert migrate.upgrade(db)
        with db.read() as conn:
            keys = dict(conn.execute(select(releases.c.version, releases.c.version_key)).all())
            page = release_sql.page_of_model(conn, 1, after=None, limit=10)
            latest = release_sql.latest(conn, 1)
        assert keys == {v: version_key(v) for v in VERSIONS}
        assert [r.version for r in page] == ["1.2.0-beta", "1.2.0", "1.10.0", "2.0.0-rc.1"]
        assert latest is not None and latest.version == "1.10.0"  # final beats pre-release
    finally:
        db.dispose()
