"""An index for a region's handling rules: routing reads every rule of a region at once
(remembered by region), and the table's key begins with the category, so each read went
through all the rules of the country (17,195 in the national directory) on SQLite and
PostgreSQL alike. A national stream asks about some 500 regencies and their provinces,
each again when the directory changes or its memory expires.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07

Frozen: this script must not import the service's live table definitions.
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("handling_rules", schema=None) as batch_op:
        batch_op.create_index("ix_handling_rules_region_code", ["region_code"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("handling_rules", schema=None) as batch_op:
        batch_op.drop_index("ix_handling_rules_region_code")
