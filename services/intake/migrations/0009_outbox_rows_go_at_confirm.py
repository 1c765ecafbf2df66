"""The outbox deletes a row once the broker confirms it (decision 96): the table holds only
events still to send, so the retention job's index on `published_at` has nothing left to
find, and it was one more entry to write for every event. Rows confirmed before are
deleted here: their bodies were cleared at the confirm, and logs name every event id.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

Frozen: this script must not import the service's live table definitions.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("DELETE FROM outbox WHERE published_at IS NOT NULL"))
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.drop_index("ix_outbox_published_at")


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch_op:
        batch_op.create_index("ix_outbox_published_at", ["published_at"], unique=False)
