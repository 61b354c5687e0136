"""Migration 0005_integrity on a catalog that already holds decisions (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from airlock.catalog import migrate
from airlock.catalog.engine import Database
from airlock.catalog.schema import approvals, models, releases


def _at(db: Database, *revisions: str) -> None:
    with db.write() as conn:
        cfg = migrate._config()
        cfg.attributes["connection"] = conn
        for rev in revisions:
            command.upgrade(cfg, rev)


def test_existing_decisions_get_their_turns_and_repeats_are_refused(db_url: str) -> None:
    db = Database.open(db_url)
    try:
        _at(db, "0003_governance", "0004_rollouts")
        now = datetime.now(UTC)
        with db.write() as conn:
            conn.execute(insert(models).values(id=1, name="chat", created_at=now))
            conn.execute(
                insert(releases).values(
                    id=1,
                    model_id=1,
                    version="1.0.0",
                    digest="sha256:" + "a" * 64,
                    content_key="k",
                    manifest="{}",
                    author="alice",
                    created_at=now,
                    total_size=0,
                    file_count=0,
                    has_pickle=False,
                )
            )
            for actor, decision in [
                ("bob", "approve"),
                ("carol", "approve"),
                ("bob", "reject"),
                ("bob", "approve"),
            ]:
                conn.execute(
                    insert(approvals).values(
                        release_id=1,
                        release_digest="sha256:" + "a" * 64,
                        stage="production",
                        decision=decision,
                        actor=actor,
                        role="approver",
                        comment="",
                        at=now,
                    )
                )
        assert migrate.upgrade(db)
        assert migrate.current_revisions(db) == migrate.head_revisions()
        assert not migrate.upgrade(db)  # re-runnable: nothing left to apply
        with db.read() as conn:
            turns = conn.execute(
                select(approvals.c.actor, approvals.c.turn).order_by(approvals.c.id)
            ).all()
        assert [tuple(t) for t in turns] == [("bob", 1), ("carol", 1), ("bob", 2), ("bob", 3)]
        with pytest.raises(IntegrityError), db.write() as conn:
            conn.execute(
                insert(approvals).values(
                    release_id=1,
                    release_digest="sha256:" + "a" * 64,
                    stage="production",
                    decision="approve",
                    actor="carol",
                    role="approver",
                    comment="",
                    at=now,
                    turn=1,
                )
            )
    finally:
        db.dispose()
