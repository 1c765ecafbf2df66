"""The region list intake checks reports against, and reports linked to an earlier,
near-identical one. The first release's category codes become the national taxonomy's.

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
    op.create_table(
        "regions",
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("level", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("linked_to", sa.String(length=20), server_default="", nullable=False)
        )
    for old, new in (("INFRASTRUKTUR", "PUPR"), ("BANSOS", "SOSIAL")):
        op.execute(f"UPDATE reports SET category = '{new}' WHERE category = '{old}'")



def downgrade() -> None:
    with op.batch_alter_table("reports", schema=None) as batch_op:
        batch_op.drop_column("linked_to")

    op.drop_table("regions")
