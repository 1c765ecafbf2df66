"""A timeline entry's source event is unique: the read model writes an event's entry with
ON CONFLICT DO NOTHING instead of recording the event in processed_events first.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

Frozen: this script must not import the service's live table definitions.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Until now an event's entry was kept from being written twice by the event's dedupe
    # row, which retention deletes: an event replayed after that could have written its
    # entry again. The first of such twins stays. An index first, so that finding a
    # row's earlier twin is a lookup, not a scan of the table for every row.
    op.create_index("ix_report_timeline_source_event_id_twins", "report_timeline",
                    ["source_event_id"])
    op.execute(sa.text(
        "DELETE FROM report_timeline WHERE source_event_id IS NOT NULL AND EXISTS ("
        "SELECT 1 FROM report_timeline AS earlier "
        "WHERE earlier.source_event_id = report_timeline.source_event_id "
        "AND earlier.id < report_timeline.id)"))
    op.create_index("uq_report_timeline_source_event_id", "report_timeline",
                    ["source_event_id"], unique=True)
    op.drop_index("ix_report_timeline_source_event_id_twins", table_name="report_timeline")


def downgrade() -> None:
    op.drop_index("uq_report_timeline_source_event_id", table_name="report_timeline")
