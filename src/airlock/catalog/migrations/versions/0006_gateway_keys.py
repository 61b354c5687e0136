"""gateway keys: clients' keys to /v1 (hashed, scoped, rate-limited), the fleet's
response-id secret, and the versions gateways poll for keys and opt-outs

Revision ID: 0006_gateway_keys
Revises: 0004_rollouts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from airlock.catalog.schema import UTCDateTime

revision = "0006_gateway_keys"
down_revision = "0004_rollouts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("can_pin", sa.Boolean, nullable=False),
        sa.Column("can_opt_out", sa.Boolean, nullable=False),
        sa.Column("can_feedback", sa.Boolean, nullable=False),
        sa.Column("rpm", sa.BigInteger, nullable=True),
        sa.Column("tpm", sa.BigInteger, nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=True),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
        sa.Column("revoked_by", sa.String(128), nullable=True),
        sa.UniqueConstraint("service", "name", name="uq_gateway_keys_service_name"),
    )
    op.create_table(
        "gateway_secrets",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "gateway_sync_versions",
        sa.Column("topic", sa.String(160), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("gateway_sync_versions")
    op.drop_table("gateway_secrets")
    op.drop_table("gateway_keys")
