"""The due-deliveries index holds only what is pending (`WHERE status = 'pending'`), on
(next_attempt_at, id), the claim's order. The index it replaces, on (status,
next_attempt_at), kept an entry for every delivery ever made and took a new one at each
delivery's record, though the claim reads only pending rows; this one drops a delivery for
good when it is delivered, failed or skipped, and its id ends the claim's sort.

Building it reads the table once. On PostgreSQL that holds notify's writes for the build
(the migration runs in one transaction under the service's lock, so not CONCURRENTLY):
deliveries wait in their queue meanwhile, nothing is lost.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07

Frozen: this script must not import the service's live table definitions.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.drop_index("ix_deliveries_due")
        batch_op.create_index("ix_deliveries_pending", ["next_attempt_at", "id"], unique=False,
                              postgresql_where=PENDING, sqlite_where=PENDING)


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.drop_index("ix_deliveries_pending")
        batch_op.create_index("ix_deliveries_due", ["status", "next_attempt_at"], unique=False)
