"""rollouts: rollout state and history, the controller's leader lease, drill results

Revision ID: 0004_rollouts
Revises: 0002_serving
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from airlock.catalog.schema import UTCDateTime

revision = "0004_rollouts"
down_revision = "0002_serving"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("active_service", sa.String(128), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("candidate", sa.String(256), nullable=False),
        sa.Column("stable", sa.String(256), nullable=False),
        sa.Column("strategy", sa.String(16), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("step_index", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("last_verdict", sa.Text, nullable=True),
        sa.Column("verdict_at", UTCDateTime, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.UniqueConstraint("active_service", name="uq_rollouts_active_service"),
    )
    op.create_index("ix_rollouts_service", "rollouts", ["service"])
    op.create_table(
        "rollout_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("step_index", sa.Integer, nullable=False),
        sa.Column("candidate_weight", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("verdict", sa.Text, nullable=True),
        sa.Column("plan_generation", sa.BigInteger, nullable=True),
        sa.Column("event_seq", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_rollout_history_rollout", "rollout_history", ["rollout_id", "id"])
    op.create_table(
        "controller_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("acquired_at", UTCDateTime, nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "drills",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("rollout_id", sa.Integer, sa.ForeignKey("rollouts.id"), nullable=True),
        sa.Column("release", sa.String(256), nullable=False),
        sa.Column("stable", sa.String(256), nullable=False),
        sa.Column("fault", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=False),
        sa.Column("detect_seconds", sa.Float, nullable=True),
        sa.Column("revert_seconds", sa.Float, nullable=True),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("faulty_requests", sa.BigInteger, nullable=False),
        sa.Column("faulted_requests", sa.BigInteger, nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("event_seq", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_drills_service", "drills", ["service"])


def downgrade() -> None:
    op.drop_index("ix_drills_service", "drills")
    op.drop_table("drills")
    op.drop_table("controller_leases")
    op.drop_index("ix_rollout_history_rollout", "rollout_history")
    op.drop_table("rollout_history")
    op.drop_index("ix_rollouts_service", "rollouts")
    op.drop_table("rollouts")
