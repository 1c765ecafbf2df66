"""Report attachments and media URLs waiting to be fetched.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Frozen: this script must not import the service's live table definitions.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "attachments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("tracking_id", sa.String(length=20), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=80), nullable=False),
        sa.Column("public_key", sa.String(length=80), nullable=True),
        sa.Column("location_kept", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tracking_id"], ["reports.tracking_id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tracking_id", "sha256", name="uq_attachments_tracking_id_sha256"),
    )
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_attachments_tracking_id"), ["tracking_id"],
                              unique=False)
    op.create_table(
        "media_fetches",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("tracking_id", sa.String(length=20), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=200), nullable=False),
        sa.Column("attachment_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tracking_id"], ["reports.tracking_id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("media_fetches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_media_fetches_next_attempt_at"),
                              ["next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("media_fetches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_media_fetches_next_attempt_at"))
    op.drop_table("media_fetches")
    with op.batch_alter_table("attachments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_attachments_tracking_id"))
    op.drop_table("attachments")
