"""SMS and WhatsApp gateway messages and conversations: the messages handled with the reply
given (redeliveries), drafts waiting for the sender's answer, and which reports a sender
made (keyed hashes of the sender, never the number).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

Frozen: this script must not import the service's live table definitions.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "channel_messages",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("reply", sa.Text(), nullable=False),
        sa.Column("tracking_id", sa.String(length=20), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", "message_id"),
    )
    op.create_index("ix_channel_messages_created_at", "channel_messages", ["created_at"])
    op.create_table(
        "channel_drafts",
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("sender_hash", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("media_urls", sa.Text(), server_default="", nullable=False),
        sa.Column("choices", sa.Text(), server_default="", nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", "sender_hash"),
    )
    op.create_index("ix_channel_drafts_expires_at", "channel_drafts", ["expires_at"])
    op.create_table(
        "channel_reports",
        sa.Column("tracking_id", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("sender_hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["tracking_id"], ["reports.tracking_id"]),
        sa.PrimaryKeyConstraint("tracking_id"),
    )


def downgrade() -> None:
    op.drop_table("channel_reports")
    op.drop_index("ix_channel_drafts_expires_at", table_name="channel_drafts")
    op.drop_table("channel_drafts")
    op.drop_index("ix_channel_messages_created_at", table_name="channel_messages")
    op.drop_table("channel_messages")
