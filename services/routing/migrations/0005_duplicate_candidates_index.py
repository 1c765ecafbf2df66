"""An index for duplicate screening's candidates query (category, regency, newest first):
without it each new report went through every open ticket of the country (by the state
index) and sorted them. On PostgreSQL the region column is in pattern order
(varchar_pattern_ops): a report's regency also finds its districts' tickets with
LIKE '13.03.%', which an index in the database's collation cannot serve unless it is C.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Frozen: this script must not import the service's live table definitions.
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.create_index("ix_tickets_category_region_submitted",
                              ["category", "region_code", "submitted_at"], unique=False,
                              postgresql_ops={"region_code": "varchar_pattern_ops"})


def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_category_region_submitted")
