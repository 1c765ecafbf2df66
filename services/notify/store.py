"""Notify's tables and the queries on them that are not part of the delivery loop:
contacts (only notify keeps them), agency webhook subscriptions, and the migrations."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.infra import db
from services.infra.db import BigId, as_utc, processed_events_table, utcnow
from services.infra.migrations import MigrationPlan
from services.infra.outbox import outbox_table

CONSUMER = "notify"
DEFAULT_AGENCY = "*"  # the endpoint for agencies that have none of their own

STATUSES = ("pending", "delivered", "failed", "skipped")


def pending(table: sa.Table) -> sa.ColumnElement[bool]:
    """`status = 'pending'`, the status written as a literal: ix_deliveries_pending's
    condition, and what a query that should read that index names (the note above the
    index says why a literal)."""
    return table.c.status == sa.literal_column("'pending'")


def _define(metadata: sa.MetaData) -> dict[str, sa.Table]:
    contacts = sa.Table(
        "contacts", metadata,
        sa.Column("tracking_id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, default=""),
        sa.Column("email", sa.String(320), nullable=False, default=""),
        sa.Column("phone", sa.String(40), nullable=False, default=""),
        sa.Column("language", sa.String(8), nullable=False, default="id"),
        sa.Column("anonymous", sa.Boolean, nullable=False, default=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        # Where the report came in (web, mobile, open311, sms, whatsapp): a reporter is
        # answered on the channel they used when they gave a contact for it.
        sa.Column("channel", sa.String(16), nullable=False, default=""),
    )
    subscriptions = sa.Table(
        "webhook_subscriptions", metadata,
        sa.Column("agency_code", sa.String(64), primary_key=True),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("secret", sa.String(500), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, default=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    deliveries = sa.Table(
        "deliveries", metadata,
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.String(36), nullable=False, unique=True),
        sa.Column("tracking_id", sa.String(32), nullable=False, index=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("audience", sa.String(16), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("trigger_event_id", sa.String(36), nullable=False),
        sa.Column("trigger_type", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.String(200)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        # The reporter's delivery on another channel that failed for good, when this one is
        # its fallback (the same notice, on the next channel they gave).
        sa.Column("replaces", sa.String(36)),
        sa.UniqueConstraint("trigger_event_id", "channel", "audience",
                            name="uq_deliveries_trigger"),
        sa.CheckConstraint(f"status IN {STATUSES!r}", name="ck_deliveries_status"),
    )
    # The deliveries still to send, in the order the claim takes them (migration 0006): a
    # partial index, so a delivered, failed or skipped one leaves it for good and it holds
    # what is pending, not every delivery ever made. Queries that should use it name the
    # status as a literal (PENDING below): against a bound parameter PostgreSQL's generic
    # plan cannot prove the index's condition.
    sa.Index("ix_deliveries_pending", deliveries.c.next_attempt_at, deliveries.c.id,
             postgresql_where=pending(deliveries), sqlite_where=pending(deliveries))
    attempts = sa.Table(
        "delivery_attempts", metadata,
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.String(36),
                  sa.ForeignKey("deliveries.delivery_id", ondelete="CASCADE"), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.String(200), nullable=False, default=""),
        sa.UniqueConstraint("delivery_id", "attempt", name="uq_delivery_attempts"),
    )
    # Reporters whose report was linked to an earlier, near-identical one (its master):
    # they hear of the master's progress too.
    followers = sa.Table(
        "followers", metadata,
        sa.Column("master", sa.String(32), primary_key=True),
        sa.Column("follower", sa.String(32), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    # Numbers that sent STOP to the SMS or WhatsApp line (contact.opted_out), by a hash of the
    # number: nothing goes to them there until START. changed_at is the event's time, so a
    # STOP and a START delivered out of order end as they were sent.
    opt_outs = sa.Table(
        "phone_opt_outs", metadata,
        sa.Column("channel", sa.String(16), primary_key=True),
        sa.Column("phone_hash", sa.String(64), primary_key=True),
        sa.Column("opted_out", sa.Boolean, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    return {
        "phone_opt_outs": opt_outs,
        "followers": followers,
        "contacts": contacts,
        "webhook_subscriptions": subscriptions,
        "deliveries": deliveries,
        "delivery_attempts": attempts,
        "outbox": outbox_table(metadata),
        "processed_events": processed_events_table(metadata),
    }


metadata = sa.MetaData()
_tables = _define(metadata)
contacts = _tables["contacts"]
subscriptions = _tables["webhook_subscriptions"]
deliveries = _tables["deliveries"]
delivery_attempts = _tables["delivery_attempts"]
outbox = _tables["outbox"]
processed_events = _tables["processed_events"]
followers = _tables["followers"]
phone_opt_outs = _tables["phone_opt_outs"]
PENDING = pending(deliveries)  # a delivery still to send


MIGRATIONS = MigrationPlan("notify", metadata, Path(__file__).with_name("migrations"))


# -- contacts -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Contact:
    tracking_id: str
    name: str
    email: str
    phone: str
    language: str
    anonymous: bool
    channel: str = ""

    def __repr__(self) -> str:  # a contact must never end up in a log line or traceback
        return f"Contact(tracking_id={self.tracking_id!r}, <redacted>)"


_CONTACT_FIELDS = ("name", "email", "phone", "language", "anonymous", "channel")
_LOAD_CONTACT = db.Statement(
    sa.select(contacts).where(contacts.c.tracking_id == sa.bindparam("tracking_id")))


def save_contact(conn: Connection, contact: Contact) -> None:
    save_contacts(conn, [contact])


def save_contacts(conn: Connection, contacts_: list[Contact]) -> None:
    """Inserts each contact, or replaces the stored one of its ticket; of two for one ticket
    the later in the list wins (db.upsert_many: on PostgreSQL one statement for up to
    db.TOGETHER_MAX_ROWS of them)."""
    now = utcnow()
    db.upsert_many(conn, contacts, "tracking_id", [
        {"tracking_id": c.tracking_id, "name": c.name, "email": c.email, "phone": c.phone,
         "language": c.language, "anonymous": c.anonymous, "channel": c.channel,
         "created_at": now, "updated_at": now} for c in contacts_],
        (*_CONTACT_FIELDS, "updated_at"))


def load_contact(conn: Connection, tracking_id: str) -> Contact | None:
    row = _LOAD_CONTACT.first(conn, {"tracking_id": tracking_id})
    return None if row is None else _contact(row)


def _contact(row) -> Contact:
    return Contact(row.tracking_id, row.name, row.email, row.phone, row.language,
                   bool(row.anonymous), row.channel)


_LOAD_CONTACTS = db.Listed(lambda binds: sa.select(contacts).where(
    contacts.c.tracking_id.in_(binds)), contacts.c.tracking_id.type)


def load_contacts(conn: Connection, tracking_ids: list[str]) -> dict[str, Contact]:
    """The contacts of those tickets that have one, in one statement."""
    return {row.tracking_id: _contact(row) for row in _LOAD_CONTACTS.all(conn, tracking_ids)}


# -- phone opt-outs (contact.opted_out) ------------------------------------------------------
def e164(phone: str) -> str:
    """An Indonesian number as E.164: '0812-3456-7890', '62812...' and '+62 812...' all give
    '+6281234567890'; '' when it holds no digits."""
    raw = phone.strip()
    digits = "".join(ch for ch in raw if ch.isdigit())
    if not digits:
        return ""
    if raw.startswith("+"):
        return f"+{digits}"
    if digits.startswith("0"):
        return f"+62{digits[1:]}"
    return f"+{digits}"


def phone_hash(phone: str) -> str:
    """The key of a number in phone_opt_outs: SHA-256 of its E.164 form. It keeps numbers out
    of the table's listings; it is no secret (numbers are few enough to try), which is why
    the table holds nothing else about the holder."""
    return hashlib.sha256(e164(phone).encode()).hexdigest()


def set_opt_out(conn: Connection, channel: str, phone: str, opted_out: bool,
                changed_at: datetime) -> bool:
    """Records STOP (True) or START (False) as of `changed_at`; an older change than the one
    stored changes nothing. True when the stored state is now this one."""
    key = phone_hash(phone)
    t = phone_opt_outs
    row = conn.execute(sa.select(t.c.changed_at).where(
        t.c.channel == channel, t.c.phone_hash == key)).first()
    now = utcnow()
    if row is None:
        conn.execute(t.insert().values(channel=channel, phone_hash=key, opted_out=opted_out,
                                       changed_at=changed_at, updated_at=now))
        return True
    if as_utc(row.changed_at) > changed_at:
        return False
    conn.execute(t.update().where(t.c.channel == channel, t.c.phone_hash == key).values(
        opted_out=opted_out, changed_at=changed_at, updated_at=now))
    return True


_OPTED_OUT = sa.select(phone_opt_outs.c.opted_out).where(
    phone_opt_outs.c.channel == sa.bindparam("channel"),
    phone_opt_outs.c.phone_hash == sa.bindparam("phone_hash"))


def opted_out(conn: Connection, channel: str, phone: str) -> bool:
    return bool(conn.execute(_OPTED_OUT, {"channel": channel,
                                          "phone_hash": phone_hash(phone)}).scalar())


# -- webhook subscriptions -------------------------------------------------------------------
@dataclass(frozen=True)
class Subscription:
    agency_code: str
    url: str
    secret: str
    active: bool

    def __repr__(self) -> str:
        return (f"Subscription(agency_code={self.agency_code!r}, url={self.url!r}, "
                f"active={self.active!r}, secret=<redacted>)")


def set_subscription(conn: Connection, agency_code: str, url: str, secret: str,
                     active: bool = True) -> None:
    now = utcnow()
    fields = {"url": url, "secret": secret, "active": active}
    db.upsert(conn, subscriptions, "agency_code",
            {"agency_code": agency_code, **fields, "created_at": now, "updated_at": now},
            ("url", "secret", "active", "updated_at"))


_ENDPOINTS = db.Statement(sa.select(subscriptions).where(
    subscriptions.c.agency_code.in_([sa.bindparam("agency_code"), DEFAULT_AGENCY]),
    subscriptions.c.active.is_(True)))


def endpoint_for(conn: Connection, agency_code: str) -> Subscription | None:
    """The agency's own active endpoint, else the active default ('*'), else None."""
    rows = _ENDPOINTS.all(conn, {"agency_code": agency_code})
    by_code = {row.agency_code: row for row in rows}
    row = by_code.get(agency_code) or by_code.get(DEFAULT_AGENCY)
    if row is None:
        return None
    return Subscription(row.agency_code, row.url, row.secret, bool(row.active))


def list_subscriptions(conn: Connection) -> list[dict]:
    """Every subscription without its secret."""
    rows = conn.execute(sa.select(subscriptions.c.agency_code, subscriptions.c.url,
                                  subscriptions.c.active, subscriptions.c.created_at,
                                  subscriptions.c.updated_at)
                        .order_by(subscriptions.c.agency_code)).all()
    return [dict(row._mapping) for row in rows]
