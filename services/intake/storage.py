"""Intake's tables: reports as submitted, idempotency keys, the citizen-facing status read
model and its timeline, the public's support (dukungan) and the outbox. Reporters' contacts
are not kept here: they pass through to notify (reporter.registered) and only notify stores
them."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from services.infra.db import BigId, processed_events_table
from services.infra.migrations import MigrationPlan
from services.infra.outbox import outbox_table

metadata = sa.MetaData()

# The official region list (reference data, the same file routing imports), so a report from
# an unknown region is refused here even while routing is down.
regions = sa.Table(
    "regions", metadata,
    sa.Column("code", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("level", sa.String(20), nullable=False),
)

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
    sa.Column("language", sa.String(2), nullable=False, default="id"),
    sa.Column("access_token_hash", sa.String(64), nullable=False),
    # Read model, updated from routing's events.
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("status_at", sa.DateTime(timezone=True), nullable=False),
    # The ticket version of the last event applied (routing numbers every change); 0 until
    # the first versioned event.
    sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("agency_code", sa.String(40), nullable=False, default=""),
    sa.Column("agency_name", sa.String(200), nullable=False, default=""),
    sa.Column("deadline", sa.DateTime(timezone=True)),
    sa.Column("deadline_zone", sa.String(8), nullable=False, default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # Dukungan: how many clients support the report (report_supports holds who, hashed), and
    # the report's random salt for those hashes, made with the first support.
    sa.Column("support_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("support_salt", sa.LargeBinary(16)),
    # What the reporter did that routing does not announce as a state: so the owner view
    # offers rating and appeal only until they are used.
    sa.Column("rating", sa.SmallInteger),
    sa.Column("appealed", sa.Boolean, nullable=False, server_default=sa.false()),
    # Routing linked this report to an earlier, near-identical one: its status follows that.
    sa.Column("linked_to", sa.String(20), nullable=False, server_default=""),
)

# One row per client supporting a report: a salted hash of the client's key (the X-Client-Key
# header, or else the address the rate limiter counts), never the key or the address itself.
report_supports = sa.Table(
    "report_supports", metadata,
    sa.Column("tracking_id", sa.String(20), sa.ForeignKey("reports.tracking_id"),
              primary_key=True),
    sa.Column("supporter_hash", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# The first answer to a keyed submission, so a retry gets the same answer, token included.
# Neither the key nor the request is stored: the answer is sealed with a key derived from
# both (services/intake/idempotency.py), so a copy of this table yields no working token.
# Kept for the retry window only, then deleted.
idempotency_keys = sa.Table(
    "idempotency_keys", metadata,
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("tracking_id", sa.String(20), nullable=False),
    sa.Column("sealed_answer", sa.LargeBinary, nullable=False),
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
    # Entries only the reporter sees (delivery of their own notifications, messages).
    sa.Column("private", sa.Boolean, nullable=False, default=False),
    # Shown to the reporter only, beside the public note: the question of a hold, the
    # agency's response, a relayed message's text, the reason of an archive.
    sa.Column("private_note", sa.Text, nullable=False, server_default=""),
    # The event an entry comes from: unique, so an event applied again adds no second
    # entry (services/intake/readmodel.py). Entries of intake's own have none.
    sa.Column("source_event_id", sa.String(36)),
    sa.Index("uq_report_timeline_source_event_id", "source_event_id", unique=True),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)

# --- Open311 clients and request tokens (open311/) ---

# Applications allowed to submit through Open311: the SHA-256 of each API key (the key is
# shown once, by `python -m services.intake open311-keys add`), never the key itself.
open311_clients = sa.Table(
    "open311_clients", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    # The key's first characters, so an operator can tell keys apart in `list`.
    sa.Column("key_prefix", sa.String(12), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
)

# The token a POST requests answers, resolved by GET tokens/{token} to the request's id once
# routing has the report.
open311_tokens = sa.Table(
    "open311_tokens", metadata,
    sa.Column("token", sa.String(40), primary_key=True),
    sa.Column("tracking_id", sa.String(20), sa.ForeignKey("reports.tracking_id"),
              nullable=False, index=True),
    sa.Column("client_id", BigId, sa.ForeignKey("open311_clients.id"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# --- SMS and WhatsApp gateway messages and conversations (inbound/) ---

# Each gateway message handled, with the reply given: a redelivery by the provider gets the
# same reply and changes nothing. Neither the sender nor the text is kept here. Deleted after
# the redelivery window (inbound/store.py MESSAGE_WINDOW).
channel_messages = sa.Table(
    "channel_messages", metadata,
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("message_id", sa.String(200), primary_key=True),
    sa.Column("reply", sa.Text, nullable=False),
    sa.Column("tracking_id", sa.String(20), nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

# A report waiting for the sender's answer to one question (where it happened): its text
# and media URL until the answer comes, BATAL, or the draft expires. The sender is a keyed
# hash (inbound/settings.py sender_hash), never the number: the answer brings it again.
channel_drafts = sa.Table(
    "channel_drafts", metadata,
    sa.Column("channel", sa.String(16), primary_key=True),
    sa.Column("sender_hash", sa.String(64), primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("media_urls", sa.Text, nullable=False, server_default=""),
    # The region codes a previous answer could mean (comma-separated), to ask between them.
    sa.Column("choices", sa.Text, nullable=False, server_default=""),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False, index=True),
)

# Which reports a sender made through a channel (keyed hash again), so STATUS shows them
# more than the public view.
channel_reports = sa.Table(
    "channel_reports", metadata,
    sa.Column("tracking_id", sa.String(20), sa.ForeignKey("reports.tracking_id"),
              primary_key=True),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("sender_hash", sa.String(64), nullable=False),
)

# --- Attachments (attachments/) ---

# A file attached to a report, after the checks: the blob holds the re-encoded image (or the
# PDF as sent), never the client's file name. `public_key` is the copy the public may fetch
# (the same blob, a copy without the GPS the reporter chose to keep, or NULL: a PDF naming
# its author is never served to the public).
attachments = sa.Table(
    "attachments", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("tracking_id", sa.String(20), sa.ForeignKey("reports.tracking_id"),
              nullable=False, index=True),
    sa.Column("content_type", sa.String(40), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("storage_key", sa.String(80), nullable=False),
    sa.Column("public_key", sa.String(80)),
    sa.Column("location_kept", sa.Boolean, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # A retried upload (a mobile app on a bad network) finds the file it already sent.
    sa.UniqueConstraint("tracking_id", "sha256", name="uq_attachments_tracking_id_sha256"),
)

# Media URLs (Open311 media_url, a WhatsApp image) waiting to be fetched in the background.
# The URL is blanked once the fetch is done or given up: it may carry the gateway's token.
media_fetches = sa.Table(
    "media_fetches", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("tracking_id", sa.String(20), sa.ForeignKey("reports.tracking_id"),
              nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("last_error", sa.String(200), nullable=False),
    sa.Column("attachment_id", sa.String(32)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


MIGRATIONS = MigrationPlan("intake", metadata, Path(__file__).with_name("migrations"))
