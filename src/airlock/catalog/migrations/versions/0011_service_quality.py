"""service quality: a service's default online-quality settings, and the pairs a pairwise
judge compared (shown on the dashboard's shadow comparisons page)

Revision ID: 0011_service_quality
Revises: 0004_rollouts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from airlock.catalog.schema import UTCDateTime

revision = "0011_service_quality"
down_revision = "0004_rollouts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "service_quality",
        sa.Column("service", sa.String(128), primary_key=True),
        sa.Column("settings", sa.Text, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "judged_pairs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(1024), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("stable_release", sa.String(256), nullable=False),
        sa.Column("candidate_release", sa.String(256), nullable=False),
        sa.Column("judge", sa.String(256), nullable=False),
        sa.Column("outcome", sa.String(8), nullable=False),
        sa.Column("prompt", sa.Text, nullable=False),
        sa.Column("stable_answer", sa.Text, nullable=False),
        sa.Column("candidate_answer", sa.Text, nullable=False),
        sa.Column("gateway", sa.String(256), nullable=False),
    )
    op.create_index("ix_judged_pairs_service_id", "judged_pairs", ["service", "id"])
    op.create_index("ix_judged_pairs_service_at", "judged_pairs", ["service", "at"])


def downgrade() -> None:
    op.drop_index("ix_judged_pairs_service_at", "judged_pairs")
    op.drop_index("ix_judged_pairs_service_id", "judged_pairs")
    op.drop_table("judged_pairs")
    op.drop_table("service_quality")
