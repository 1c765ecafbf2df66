"""SMS and WhatsApp: the reporter's channel on their contact, fallback deliveries, opt-outs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

Frozen: this script must not import the service's live table definitions.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contacts") as batch_op:
        # Contacts registered before channels existed came from the web form or the app.
        batch_op.add_column(sa.Column("channel", sa.String(length=16), nullable=False,
                                      server_default=""))
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.add_column(sa.Column("replaces", sa.String(length=36), nullable=True))
    op.create_table(
        "phone_opt_outs",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("phone_hash", sa.String(length=64), nullable=False),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", "phone_hash"),
    )


def downgrade() -> None:
    op.drop_table("phone_opt_outs")
    with op.batch_alter_table("deliveries") as batch_op:
        batch_op.drop_column("replaces")
    with op.batch_alter_table("contacts") as batch_op:
        batch_op.drop_column("channel")
