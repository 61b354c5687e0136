"""transcripts: prompts and answers of services that opt in, with their feedback and a
retention after which both are deleted

Revision ID: 0009_transcripts
Revises: 0004_rollouts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from airlock.catalog.schema import UTCDateTime

revision = "0009_transcripts"
down_revision = "0004_rollouts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "transcript_settings",
        sa.Column("service", sa.String(128), primary_key=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("retention_s", sa.BigInteger, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "transcripts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("response_id", sa.String(1024), nullable=False),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("release", sa.String(256), nullable=False),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("cluster", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("scores", sa.Text, nullable=True),
        sa.Column("judge", sa.String(256), nullable=True),
        sa.Column("gateway", sa.String(256), nullable=False),
        sa.UniqueConstraint("response_id", name="uq_transcripts_response_id"),
    )
    op.create_index("ix_transcripts_service_at", "transcripts", ["service", "at"])
    op.create_table(
        "transcript_feedback",
        sa.Column("response_id", sa.String(1024), primary_key=True),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("issued_at", UTCDateTime, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
    )
    op.create_index(
        "ix_transcript_feedback_service_issued", "transcript_feedback", ["service", "issued_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_transcript_feedback_service_issued", "transcript_feedback")
    op.drop_table("transcript_feedback")
    op.drop_index("ix_transcripts_service_at", "transcripts")
    op.drop_table("transcripts")
    op.drop_table("transcript_settings")
