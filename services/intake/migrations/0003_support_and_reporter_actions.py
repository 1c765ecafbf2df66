"""Support (dukungan) counted once per client, notes only the reporter sees, and what the
reporter did that routing does not announce as a state (rating, appeal).

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
    # Who supports a report: a salted hash of the client's key, never the key or address.
    op.create_table(
        "report_supports",
        sa.Column("tracking_id", sa.String(length=20), nullable=False),
        sa.Column("supporter_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tracking_id"], ["reports.tracking_id"]),
        sa.PrimaryKeyConstraint("tracking_id", "supporter_hash"),
    )
    with op.batch_alter_table("report_timeline") as batch_op:
        batch_op.add_column(sa.Column("private_note", sa.Text(), server_default="",
                                      nullable=False))
    with op.batch_alter_table("reports") as batch_op:
        batch_op.add_column(sa.Column("support_count", sa.Integer(), server_default="0",
                                      nullable=False))
        batch_op.add_column(sa.Column("support_salt", sa.LargeBinary(length=16),
                                      nullable=True))
        batch_op.add_column(sa.Column("rating", sa.SmallInteger(), nullable=True))
        # sa.false(): FALSE on PostgreSQL, 0 on SQLite (a bare 0 is no boolean to PostgreSQL).
        batch_op.add_column(sa.Column("appealed", sa.Boolean(), server_default=sa.false(),
                                      nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("reports") as batch_op:
        batch_op.drop_column("appealed")
        batch_op.drop_column("rating")
        batch_op.drop_column("support_salt")
        batch_op.drop_column("support_count")
    with op.batch_alter_table("report_timeline") as batch_op:
        batch_op.drop_column("private_note")
    op.drop_table("report_supports")
