"""Report attachments and media URLs waiting to be fetched.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

Frozen: this script must not import the service's live table definitions.
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
