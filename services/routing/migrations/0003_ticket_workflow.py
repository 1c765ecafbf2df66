"""The ticket workflow: staff accounts and tokens, the audit trail, relayed messages,
deliveries, and what tickets need for their clocks, escalation and the agency's view.

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
        "accounts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("display_name", sa.String(length=200), server_default="", nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("agency_code", sa.String(length=40), nullable=True),
        sa.Column("tls_subject", sa.String(length=200), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("tls_subject"),
        sa.UniqueConstraint("username"),
    )
    op.create_table(
        "ticket_deliveries",
        sa.Column("delivery_id", sa.String(length=36), nullable=False),
        sa.Column("tracking_id", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("audience", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=200), server_default="", nullable=False),
        sa.PrimaryKeyConstraint("delivery_id"),
    )
    with op.batch_alter_table("ticket_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ticket_deliveries_tracking_id"), ["tracking_id"], unique=False
        )

    op.create_table(
        "account_tokens",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=100), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("account_tokens", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_account_tokens_account_id"), ["account_id"], unique=False
        )

    op.create_table(
        "ticket_messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("ticket_id", sa.String(length=36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("author_role", sa.String(length=32), nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.ticket_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ticket_messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_ticket_messages_ticket_id"), ["ticket_id"], unique=False
        )

    with op.batch_alter_table("ticket_history", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("action", sa.String(length=32), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("actor", sa.String(length=64), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("from_agency", sa.String(length=40), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("reason", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(
            sa.Column("version", sa.BigInteger(), server_default="0", nullable=False)
        )

    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("address", sa.Text(), server_default="", nullable=False))
        batch_op.add_column(
            sa.Column("incident_date", sa.String(length=10), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("latitude", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("longitude", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("channel", sa.String(length=16), server_default="web", nullable=False)
        )
        batch_op.add_column(
            sa.Column("target_agency", sa.String(length=40), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("suggested_agency", sa.String(length=40), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("clock", sa.String(length=16), server_default="respond", nullable=False)
        )
        batch_op.add_column(sa.Column("paused_days", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("complexity", sa.String(length=16), server_default="SIMPLE", nullable=False)
        )
        batch_op.add_column(sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("followed_up_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("warned_deadline", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("escalation_level", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("oversight_flagged_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("support_count", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("rating", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("rating_comment", sa.Text(), server_default="", nullable=False)
        )
        batch_op.add_column(sa.Column("appealed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_tickets_state_deadline", ["state", "deadline"], unique=False)
    # Tickets waiting in triage run the verification clock.
    op.execute("UPDATE tickets SET clock = 'verify' WHERE state = 'SUBMITTED'")



def downgrade() -> None:
    with op.batch_alter_table("tickets", schema=None) as batch_op:
        batch_op.drop_index("ix_tickets_state_deadline")
        batch_op.drop_column("appealed_at")
        batch_op.drop_column("rating_comment")
        batch_op.drop_column("rating")
        batch_op.drop_column("support_count")
        batch_op.drop_column("oversight_flagged_at")
        batch_op.drop_column("escalation_level")
        batch_op.drop_column("warned_deadline")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("followed_up_at")
        batch_op.drop_column("accepted_at")
        batch_op.drop_column("complexity")
        batch_op.drop_column("paused_days")
        batch_op.drop_column("clock")
        batch_op.drop_column("suggested_agency")
        batch_op.drop_column("target_agency")
        batch_op.drop_column("channel")
        batch_op.drop_column("longitude")
        batch_op.drop_column("latitude")
        batch_op.drop_column("incident_date")
        batch_op.drop_column("address")

    with op.batch_alter_table("ticket_history", schema=None) as batch_op:
        batch_op.drop_column("version")
        batch_op.drop_column("reason")
        batch_op.drop_column("from_agency")
        batch_op.drop_column("actor")
        batch_op.drop_column("action")

    with op.batch_alter_table("ticket_messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_messages_ticket_id"))

    op.drop_table("ticket_messages")
    with op.batch_alter_table("account_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_account_tokens_account_id"))

    op.drop_table("account_tokens")
    with op.batch_alter_table("ticket_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ticket_deliveries_tracking_id"))

    op.drop_table("ticket_deliveries")
    op.drop_table("accounts")
