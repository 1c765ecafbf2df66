"""Followers: reporters of reports linked to an earlier, near-identical one hear of its
progress.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

Frozen: this script must not import the service's live table definitions.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "followers",
        sa.Column("master", sa.String(length=32), nullable=False),
        sa.Column("follower", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("master", "follower"),
    )


def downgrade() -> None:
    op.drop_table("followers")
