"""serving: services and their traffic plans, opt-outs, release telemetry, shadow samples

Revision ID: 0002_serving
Revises: 0001_foundation
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from airlock.catalog.schema import UTCDateTime

revision = "0002_serving"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "services",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("stable_release", sa.String(256), nullable=False),
        sa.Column("plan", sa.Text, nullable=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("updated_by", sa.String(128), nullable=False),
    )
    op.create_table(
        "service_plans",
        sa.Column("service_id", sa.Integer, sa.ForeignKey("services.id"), primary_key=True),
        sa.Column("generation", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("plan", sa.Text, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("event_seq", sa.BigInteger, nullable=True),
    )
    op.create_table(
        "service_opt_outs",
        sa.Column("service_id", sa.Integer, sa.ForeignKey("services.id"), primary_key=True),
        sa.Column("user_key", sa.String(256), primary_key=True),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "release_telemetry",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("release", sa.String(256), nullable=False),
        sa.Column("traffic", sa.String(8), nullable=False),
        sa.Column("gateway", sa.String(256), nullable=False),
        sa.Column("window_start", UTCDateTime, nullable=False),
        sa.Column("window_end", UTCDateTime, nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        sa.Column("errors", sa.BigInteger, nullable=False),
        sa.Column("rejected", sa.BigInteger, nullable=False),
        sa.Column("errors_by_kind", sa.Text, nullable=False),
        sa.Column("guardrail_flags", sa.BigInteger, nullable=False),
        sa.Column("fallbacks", sa.BigInteger, nullable=False),
        sa.Column("shadow_drops", sa.BigInteger, nullable=False),
        sa.Column("tokens_in", sa.BigInteger, nullable=False),
        sa.Column("tokens_out", sa.BigInteger, nullable=False),
        sa.Column("feedback_sum", sa.Float, nullable=False),
        sa.Column("feedback_count", sa.BigInteger, nullable=False),
        sa.Column("latency_histogram", sa.Text, nullable=False),
    )
    op.create_index(
        "ix_release_telemetry_service_window", "release_telemetry", ["service", "window_start"]
    )
    op.create_table(
        "shadow_samples",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("release", sa.String(256), nullable=False),
        sa.Column("primary_release", sa.String(256), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("primary_output", sa.Text, nullable=False),
        sa.Column("error_kind", sa.String(64), nullable=True),
    )
    op.create_index("ix_shadow_samples_service_at", "shadow_samples", ["service", "at"])


def downgrade() -> None:
    op.drop_index("ix_shadow_samples_service_at", "shadow_samples")
    op.drop_index("ix_release_telemetry_service_window", "release_telemetry")
    for table in (
        "shadow_samples",
        "release_telemetry",
        "service_opt_outs",
        "service_plans",
        "services",
    ):
        op.drop_table(table)
