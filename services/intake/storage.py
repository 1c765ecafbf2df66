"""Intake's tables: reports as submitted (with the reporter's contact, which never leaves
intake except to notify), idempotency keys, the citizen-facing status read model and its
timeline, and the outbox."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.infra.db import BigId, Migration, processed_events_table
from services.infra.outbox import outbox_table

metadata = sa.MetaData()

reports = sa.Table(
    "reports", metadata,
    sa.Column("tracking_id", sa.String(20), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("region_code", sa.String(16), nullable=False),
    sa.Column("category", sa.String(40), nullable=False, default=""),
    sa.Column("target_agency", sa.String(40), nullable=False, default=""),
    sa.Column("incident_date", sa.String(10), nullable=False, default=""),
    sa.Column("latitude", sa.Float),
    sa.Column("longitude", sa.Float),
    sa.Column("address", sa.Text, nullable=False, default=""),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("anonymous", sa.Boolean, nullable=False),
    sa.Column("confidential", sa.Boolean, nullable=False),
    sa.Column("reporter_name", sa.String(100), nullable=False, default=""),
    sa.Column("reporter_email", sa.String(254), nullable=False, default=""),
    sa.Column("reporter_phone", sa.String(20), nullable=False, default=""),
    sa.Column("language", sa.String(2), nullable=False, default="id"),
    sa.Column("access_token_hash", sa.String(64), nullable=False),
    # Read model, updated from routing's events.
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("status_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("agency_code", sa.String(40), nullable=False, default=""),
    sa.Column("agency_name", sa.String(200), nullable=False, default=""),
    sa.Column("deadline", sa.DateTime(timezone=True)),
    sa.Column("deadline_zone", sa.String(8), nullable=False, default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

idempotency_keys = sa.Table(
    "idempotency_keys", metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("request_hash", sa.String(64), nullable=False),
    sa.Column("tracking_id", sa.String(20), nullable=False),
    # The first answer, token included, so a retry gets the same answer. Kept for the
    # retry window only (see docs/decisions.md), then the row is deleted.
    sa.Column("response", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

timeline = sa.Table(
    "report_timeline", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("tracking_id", sa.String(20), sa.ForeignKey("reports.tracking_id"),
              nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("agency_name", sa.String(200), nullable=False, default=""),
    # Entries only the reporter sees (delivery of their own notifications).
    sa.Column("private", sa.Boolean, nullable=False, default=False),
    sa.Column("source_event_id", sa.String(36)),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)


def _create_all(conn: Connection) -> None:
    metadata.create_all(conn)


MIGRATIONS = [Migration(1, "reports, idempotency, read model, outbox", _create_all)]
