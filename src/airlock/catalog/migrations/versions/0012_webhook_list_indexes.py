"""webhook list indexes: keyset pages of subscriptions and of the delivery log

Revision ID: 0012_webhook_list_indexes
Revises: 0008_webhooks

Subscriptions page in creation order, (created_at, id); the delivery log newest first,
(created_at, event_seq, id), of every webhook or of one (0012_list_indexes holds the
indexes of the tables from the 0004_rollouts head).
"""

from __future__ import annotations

from alembic import op

revision = "0012_webhook_list_indexes"
down_revision = "0008_webhooks"
branch_labels = None
depends_on = None

_DELIVERY_ORDER = ["created_at", "event_seq", "id"]


def upgrade() -> None:
    op.create_index("ix_webhooks_created_at", "webhooks", ["created_at", "id"])
    op.create_index("ix_webhook_deliveries_created", "webhook_deliveries", _DELIVERY_ORDER)
    op.create_index(
        "ix_webhook_deliveries_webhook", "webhook_deliveries", ["webhook_id", *_DELIVERY_ORDER]
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_webhook", "webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_created", "webhook_deliveries")
    op.drop_index("ix_webhooks_created_at", "webhooks")
