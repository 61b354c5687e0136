"""scale: a sortable version key on releases and the indexes keyset pages and look-ups use

Revision ID: 0010_scale_indexes
Revises: 0004_rollouts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from airlock.core.paging import version_key

revision = "0010_scale_indexes"
down_revision = "0004_rollouts"
branch_labels = None
depends_on = None

_BATCH = 1000


def upgrade() -> None:
    # releases.version_key: semantic-version order as plain text, so a model's releases are
    # paged by (version_key, id) through an index instead of sorted in Python.
    op.add_column("releases", sa.Column("version_key", sa.String(512), nullable=True))
    conn = op.get_bind()
    table = sa.table(
        "releases",
        sa.column("id", sa.Integer),
        sa.column("version", sa.String),
        sa.column("version_key", sa.String),
    )
    last = 0
    while True:
        rows = conn.execute(
            sa.select(table.c.id, table.c.version)
            .where(table.c.id > last)
            .order_by(table.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        conn.execute(
            sa.update(table)
            .where(table.c.id == sa.bindparam("rid"))
            .values(version_key=sa.bindparam("vk")),
            [{"rid": r[0], "vk": version_key(r[1])} for r in rows],
        )
        last = rows[-1][0]
    op.create_index("ix_releases_model_version_key", "releases", ["model_id", "version_key", "id"])
    op.create_index("ix_releases_created_at", "releases", ["created_at", "id"])
    op.create_index("ix_alias_history_model_alias_id", "alias_history", ["model_id", "alias", "id"])
    op.create_index("ix_alias_history_model_id", "alias_history", ["model_id", "id"])
    op.create_index("ix_events_actor", "events", ["actor", "seq"])
    op.create_index("ix_events_subject_seq", "events", ["subject", "seq"])
    op.create_index("ix_release_telemetry_window_end", "release_telemetry", ["window_end"])
    op.create_index("ix_rollout_history_at", "rollout_history", ["at"])


def downgrade() -> None:
    op.drop_index("ix_rollout_history_at", "rollout_history")
    op.drop_index("ix_release_telemetry_window_end", "release_telemetry")
    op.drop_index("ix_events_subject_seq", "events")
    op.drop_index("ix_events_actor", "events")
    op.drop_index("ix_alias_history_model_id", "alias_history")
    op.drop_index("ix_alias_history_model_alias_id", "alias_history")
    op.drop_index("ix_releases_created_at", "releases")
    op.drop_index("ix_releases_model_version_key", "releases")
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("version_key")
