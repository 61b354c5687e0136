"""integrity: one decision per approver and turn, and an audit chain that cannot fork

- ``approvals.turn``: the n-th decision of one person on one release and stage
  (approve, reject, approve again ...). Unique with (release, stage, actor), so two
  concurrent "approve" calls by the same person cannot both be recorded.
- ``events.prev_hash`` unique: two events can never extend the same predecessor.

Revision ID: 0005_integrity
Revises: 0004_rollouts (and needs 0003_governance, which created approvals)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_integrity"
down_revision = "0004_rollouts"
branch_labels = None
depends_on = "0003_governance"


def upgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("turn", sa.Integer, nullable=True))
    approvals = sa.table(
        "approvals",
        sa.column("id", sa.Integer),
        sa.column("release_id", sa.Integer),
        sa.column("stage", sa.String),
        sa.column("actor", sa.String),
        sa.column("turn", sa.Integer),
    )
    conn = op.get_bind()
    turns: dict[tuple[int, str, str], int] = {}
    rows = conn.execute(
        sa.select(
            approvals.c.id, approvals.c.release_id, approvals.c.stage, approvals.c.actor
        ).order_by(approvals.c.id)
    ).all()
    for row_id, release_id, stage, actor in rows:
        key = (release_id, stage, actor)
        turns[key] = turns.get(key, 0) + 1
        conn.execute(sa.update(approvals).where(approvals.c.id == row_id).values(turn=turns[key]))
    with op.batch_alter_table("approvals") as batch:
        batch.alter_column("turn", existing_type=sa.Integer, nullable=False)
        batch.create_unique_constraint(
            "uq_approvals_release_stage_actor_turn", ["release_id", "stage", "actor", "turn"]
        )
    op.create_index("uq_events_prev_hash", "events", ["prev_hash"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_events_prev_hash", table_name="events")
    with op.batch_alter_table("approvals") as batch:
        batch.drop_constraint("uq_approvals_release_stage_actor_turn", type_="unique")
        batch.drop_column("turn")
