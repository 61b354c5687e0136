"""foundation: models, releases, files, components, lineage, aliases, events

Revision ID: 0001_foundation
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from airlock.catalog.schema import UTCDateTime

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "releases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("digest", sa.String(71), nullable=False, unique=True),
        sa.Column("content_key", sa.String(71), nullable=False),
        sa.Column("manifest", sa.Text, nullable=False),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("total_size", sa.BigInteger, nullable=False),
        sa.Column("file_count", sa.Integer, nullable=False),
        sa.Column("parameters", sa.BigInteger, nullable=True),
        sa.Column("has_pickle", sa.Boolean, nullable=False),
        sa.UniqueConstraint("model_id", "version", name="uq_releases_model_version"),
    )
    op.create_table(
        "release_files",
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), primary_key=True),
        sa.Column("path", sa.String(1024), primary_key=True),
        sa.Column("digest", sa.String(71), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("media_type", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(32), nullable=True),
    )
    op.create_index("ix_release_files_digest", "release_files", ["digest"])
    op.create_table(
        "components",
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), primary_key=True),
        sa.Column("role", sa.String(128), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(1024), nullable=False),
    )
    op.create_table(
        "datasets",
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), primary_key=True),
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("uri", sa.String(2048), nullable=True),
        sa.Column("digest", sa.String(71), nullable=True),
    )
    op.create_index("ix_datasets_digest", "datasets", ["digest"])
    op.create_table(
        "lineage",
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), primary_key=True),
        sa.Column("parent_ref", sa.String(256), nullable=True),
        sa.Column("parent_release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=True),
        sa.Column("code_repo", sa.String(1024), nullable=True),
        sa.Column("code_commit", sa.String(128), nullable=True),
    )
    op.create_table(
        "aliases",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "alias_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_id", sa.Integer, sa.ForeignKey("models.id"), nullable=False),
        sa.Column("alias", sa.String(128), nullable=False),
        sa.Column("from_release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=True),
        sa.Column("to_release_id", sa.Integer, sa.ForeignKey("releases.id"), nullable=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("event_seq", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_alias_history_model_alias", "alias_history", ["model_id", "alias"])
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(512), nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_events_action", "events", ["action"])
    op.create_index("ix_events_subject", "events", ["subject"])


def downgrade() -> None:
    for table in (
        "events",
        "alias_history",
        "aliases",
        "lineage",
        "datasets",
        "components",
        "release_files",
        "releases",
        "models",
    ):
        op.drop_table(table)
