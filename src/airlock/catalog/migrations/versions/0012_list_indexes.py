"""list indexes: keyset pages of a service's rollouts and drills

Revision ID: 0012_list_indexes
Revises: 0004_rollouts

Each REST list walks an index in its order from the cursor on (no offset scans): a
service's rollouts and drills newest first by id. Policies, plan history and services
already have the index their order needs (a unique key or the primary key). The tables
of the other heads get theirs from 0012_governance_list_indexes (on 0003_governance) and
0012_webhook_list_indexes (on 0008_webhooks).
"""

from __future__ import annotations

from alembic import op

revision = "0012_list_indexes"
down_revision = "0004_rollouts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_rollouts_service_id", "rollouts", ["service", "id"])
    op.create_index("ix_drills_service_id", "drills", ["service", "id"])


def downgrade() -> None:
    op.drop_index("ix_drills_service_id", "drills")
    op.drop_index("ix_rollouts_service_id", "rollouts")
