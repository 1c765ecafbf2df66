"""Open311 API clients and request tokens.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Frozen: this script must not import the service's live table definitions.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "open311_clients",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("key_prefix", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "open311_tokens",
        sa.Column("token", sa.String(length=40), nullable=False),
        sa.Column("tracking_id", sa.String(length=20), nullable=False),
        sa.Column("client_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["client_id"], ["open311_clients.id"]),
        sa.ForeignKeyConstraint(["tracking_id"], ["reports.tracking_id"]),
        sa.PrimaryKeyConstraint("token"),
    )
    op.create_index("ix_open311_tokens_tracking_id", "open311_tokens", ["tracking_id"],
                    unique=False)


def downgrade() -> None:
    op.drop_index("ix_open311_tokens_tracking_id", table_name="open311_tokens")
    op.drop_table("open311_tokens")
    op.drop_table("open311_clients")
