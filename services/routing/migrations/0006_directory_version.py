"""The directory's version: one row whose number every change of regions, categories,
agencies or rules raises in its own transaction. Each routing process looks at it about
once a second and forgets what it remembered of the directory when it moved, instead of
re-reading every answer each 30 seconds whether anything changed or not.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

Frozen: this script must not import the service's live table definitions.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "directory_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(table, [{"id": 1, "version": 0, "changed_at": None}])


def downgrade() -> None:
    op.drop_table("directory_version")
