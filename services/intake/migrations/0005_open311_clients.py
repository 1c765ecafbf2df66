"""Open311 API clients and request tokens.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

Frozen: this script must not import the service's live table definitions.
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
