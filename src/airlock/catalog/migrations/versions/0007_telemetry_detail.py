"""telemetry detail: per-cluster counters and fine latency cells of each flush (JSON)

Revision ID: 0007_telemetry_detail
Revises: 0004_rollouts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_telemetry_detail"
down_revision = "0004_rollouts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL for rows flushed before: they read back with no clusters and no cells.
    op.add_column("release_telemetry", sa.Column("detail", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("release_telemetry") as batch:
        batch.drop_column("detail")
