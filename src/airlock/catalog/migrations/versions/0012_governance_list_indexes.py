"""governance list indexes: keyset pages of approvals, evaluation runs and trusted keys

Revision ID: 0012_governance_list_indexes
Revises: 0003_governance

A release's approvals page by (at, id), its evaluation runs by id, trusted keys by
(added_at, key_id); each through its own index, from the cursor on.
"""

from __future__ import annotations

from alembic import op

revision = "0012_governance_list_indexes"
down_revision = "0003_governance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_approvals_release_at", "approvals", ["release_id", "at", "id"])
    op.create_index("ix_eval_runs_release_id", "eval_runs", ["release_id", "id"])
    op.create_index("ix_trusted_keys_added_at", "trusted_keys", ["added_at", "key_id"])


def downgrade() -> None:
    op.drop_index("ix_trusted_keys_added_at", "trusted_keys")
    op.drop_index("ix_eval_runs_release_id", "eval_runs")
    op.drop_index("ix_approvals_release_at", "approvals")
