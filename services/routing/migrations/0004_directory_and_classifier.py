"""The national directory and the learned classifier: the taxonomy table, provinces' ISO
codes and time zones, the decision explained on each ticket, corrections to learn from,
duplicates linked or suggested. The first release's six category codes become the national
taxonomy's (INFRASTRUKTUR is PUPR, BANSOS is SOSIAL).

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
        "categories",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("parent_code", sa.String(length=40), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "corrections",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("tracking_id", sa.String(length=32), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("region_code", sa.String(length=16), nullable=False),
        sa.Column("predicted", sa.String(length=40), server_default="", nullable=False),
        sa.Column("category", sa.String(length=40), nullable=False),
        sa.Column("subcategory", sa.String(length=40), server_default="", nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("corrections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_corrections_tracking_id"), ["tracking_id"], unique=False
        )

    op.create_table(
        "duplicate_suggestions",
        sa.Column("tracking_id", sa.String(length=32), nullable=False),
        sa.Column("candidate", sa.String(length=32), nullable=False),
        sa.Column("similarity", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolution", sa.String(length=16), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("tracking_id", "candidate"),
    )
    with op.batch_alter_table("regions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("iso_code", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("timezone", sa.String(length=32), nullable=True))

    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("subcategory", sa.String(length=40), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("model_version", sa.String(length=40), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("decision_detail", sa.Text(), server_default="{}", nullable=False)
        )
        batch_op.add_column(
            sa.Column("duplicate_of", sa.String(length=32), server_default="", nullable=False)
        )
    for old, new in (("INFRASTRUKTUR", "PUPR"), ("BANSOS", "SOSIAL")):
        for table in ("tickets", "handling_rules", "corrections"):
            op.execute(f"UPDATE {table} SET category = '{new}' WHERE category = '{old}'")



def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_column("duplicate_of")
        batch_op.drop_column("decision_detail")
        batch_op.drop_column("model_version")
        batch_op.drop_column("subcategory")

    with op.batch_alter_table("regions", schema=None) as batch_op:
        batch_op.drop_column("timezone")
        batch_op.drop_column("iso_code")

    op.drop_table("duplicate_suggestions")
    with op.batch_alter_table("corrections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_corrections_tracking_id"))

    op.drop_table("corrections")
    op.drop_table("categories")
