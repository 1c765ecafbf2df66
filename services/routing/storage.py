"""Routing's tables: the directory (regions, agencies, who handles what where), tickets with
their append-only history, and the outbox. Only routing reads or writes them."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from services.infra.db import BigId, processed_events_table
from services.infra.migrations import MigrationPlan
from services.infra.outbox import outbox_table
from services.routing.rules import AgencyRef, region_ancestry, valid_region_code
from services.routing.seed import AgencyRow, Region, demo_agencies, demo_regions

metadata = sa.MetaData()

regions = sa.Table(
    "regions", metadata,
    sa.Column("code", sa.String(16), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("level", sa.String(20), nullable=False),
    sa.Column("parent_code", sa.String(16)),
    # Provinces only: ISO 3166-2 code (ID-SB) and time zone (Asia/Jakarta, ...).
    sa.Column("iso_code", sa.String(8)),
    sa.Column("timezone", sa.String(32)),
)

# The taxonomy: the 19 national categories and their subcategories (parent_code set), plus
# what operators add from the directory file; inactive ones stay for old tickets' sake.
categories = sa.Table(
    "categories", metadata,
    sa.Column("code", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("parent_code", sa.String(40)),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Labelled examples from people correcting routing: an admin recategorising in triage, an
# agency saying not our authority and the ticket going elsewhere. `retrain` learns from them.
corrections = sa.Table(
    "corrections", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("tracking_id", sa.String(32), nullable=False, index=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("region_code", sa.String(16), nullable=False),
    sa.Column("predicted", sa.String(40), nullable=False, server_default=""),
    sa.Column("category", sa.String(40), nullable=False),
    sa.Column("subcategory", sa.String(40), nullable=False, server_default=""),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# Near matches routing found for a new ticket and did not link on its own: the national
# admin decides (never merged silently).
duplicate_suggestions = sa.Table(
    "duplicate_suggestions", metadata,
    sa.Column("tracking_id", sa.String(32), primary_key=True),
    sa.Column("candidate", sa.String(32), primary_key=True),
    sa.Column("similarity", sa.Float, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("resolution", sa.String(16), nullable=False, server_default=""),
)

agencies = sa.Table(
    "agencies", metadata,
    sa.Column("code", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("level", sa.String(20), nullable=False),
    sa.Column("region_code", sa.String(16), nullable=False, default=""),
    sa.Column("parent_code", sa.String(40), nullable=False, default=""),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
)

# Who handles a category where: region_code "" is the national rule.
handling_rules = sa.Table(
    "handling_rules", metadata,
    sa.Column("category", sa.String(40), primary_key=True),
    sa.Column("region_code", sa.String(16), primary_key=True),
    sa.Column("agency_code", sa.String(40), sa.ForeignKey("agencies.code"), nullable=False),
)

tickets = sa.Table(
    "tickets", metadata,
    sa.Column("ticket_id", sa.String(36), primary_key=True),
    sa.Column("tracking_id", sa.String(32), nullable=False, unique=True),
    sa.Column("state", sa.String(24), nullable=False),
    sa.Column("agency_code", sa.String(40), nullable=False),
    sa.Column("category", sa.String(40), nullable=False, default=""),
    sa.Column("confidence", sa.Float, nullable=False, default=0.0),
    sa.Column("decision", sa.Text, nullable=False, default=""),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("region_code", sa.String(16), nullable=False),
    sa.Column("anonymous", sa.Boolean, nullable=False),
    sa.Column("confidential", sa.Boolean, nullable=False),
    sa.Column("reporter_name", sa.String(200), nullable=False, default=""),
    sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("deadline", sa.DateTime(timezone=True)),
    sa.Column("deadline_zone", sa.String(8), nullable=False, default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    # Bumped by every change; events carry it so readers apply them in order.
    sa.Column("version", sa.BigInteger, nullable=False, server_default="1"),
    # The rest of what the agency needs to act (the report as routing received it).
    sa.Column("address", sa.Text, nullable=False, server_default=""),
    sa.Column("incident_date", sa.String(10), nullable=False, server_default=""),
    sa.Column("latitude", sa.Float),
    sa.Column("longitude", sa.Float),
    sa.Column("channel", sa.String(16), nullable=False, server_default="web"),
    sa.Column("target_agency", sa.String(40), nullable=False, server_default=""),
    # The agency routing's decision named (the triage queue holds the ticket meanwhile).
    sa.Column("suggested_agency", sa.String(40), nullable=False, server_default=""),
    # The clock the deadline belongs to (statemachine.Clock); while ON_HOLD the working
    # days that were left are kept in paused_days.
    sa.Column("clock", sa.String(16), nullable=False, server_default="respond"),
    sa.Column("paused_days", sa.Integer),
    sa.Column("complexity", sa.String(16), nullable=False, server_default="SIMPLE"),
    sa.Column("accepted_at", sa.DateTime(timezone=True)),
    sa.Column("followed_up_at", sa.DateTime(timezone=True)),
    sa.Column("closed_at", sa.DateTime(timezone=True)),
    # The deadline a warning went out for, so two SLA jobs never warn twice.
    sa.Column("warned_deadline", sa.DateTime(timezone=True)),
    sa.Column("escalation_level", sa.Integer, nullable=False, server_default="0"),
    sa.Column("oversight_flagged_at", sa.DateTime(timezone=True)),
    sa.Column("support_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("rating", sa.Integer),
    sa.Column("rating_comment", sa.Text, nullable=False, server_default=""),
    sa.Column("appealed_at", sa.DateTime(timezone=True)),
    # The decision, explained: rule, top categories, model version, auto or triage (JSON).
    sa.Column("subcategory", sa.String(40), nullable=False, server_default=""),
    sa.Column("model_version", sa.String(40), nullable=False, server_default=""),
    sa.Column("decision_detail", sa.Text, nullable=False, server_default="{}"),
    # A near-identical report of an open ticket: linked to it (its master), whose updates its
    # reporter follows; it counts as support of the master.
    sa.Column("duplicate_of", sa.String(32), nullable=False, server_default=""),
)
sa.Index("ix_tickets_agency_state", tickets.c.agency_code, tickets.c.state)
sa.Index("ix_tickets_state_deadline", tickets.c.state, tickets.c.deadline)

ticket_history = sa.Table(
    "ticket_history", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.String(36), sa.ForeignKey("tickets.ticket_id"), nullable=False,
              index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("from_state", sa.String(24), nullable=False, default=""),
    sa.Column("to_state", sa.String(24), nullable=False),
    sa.Column("actor_role", sa.String(32), nullable=False),
    sa.Column("agency_code", sa.String(40), nullable=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
    # The audit trail: what was done, by whom (account username, "system", "citizen"), from
    # which agency, why (a reason only staff see), and the version it produced.
    sa.Column("action", sa.String(32), nullable=False, server_default=""),
    sa.Column("actor", sa.String(64), nullable=False, server_default=""),
    sa.Column("from_agency", sa.String(40), nullable=False, server_default=""),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
)

# Messages relayed between an agency and the reporter (the agency never learns who an
# anonymous reporter is: notify delivers them).
ticket_messages = sa.Table(
    "ticket_messages", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", sa.String(36), sa.ForeignKey("tickets.ticket_id"), nullable=False,
              index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("direction", sa.String(16), nullable=False),
    sa.Column("author_role", sa.String(32), nullable=False),
    sa.Column("author", sa.String(64), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)

# What notify reported about a ticket's notifications (notification.* events).
ticket_deliveries = sa.Table(
    "ticket_deliveries", metadata,
    sa.Column("delivery_id", sa.String(36), primary_key=True),
    sa.Column("tracking_id", sa.String(32), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("audience", sa.String(16), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("reason", sa.String(200), nullable=False, server_default=""),
)

# Staff and service accounts (DESIGN §2, roles). Staff belong to one agency; national
# admins, oversight and platform services to none. A service may authenticate by its
# client certificate instead of a token (tls_subject: the certificate's common name).
accounts = sa.Table(
    "accounts", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("display_name", sa.String(200), nullable=False, server_default=""),
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("agency_code", sa.String(40)),
    sa.Column("tls_subject", sa.String(200), unique=True),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# Bearer tokens: shown once, stored as SHA-256 hashes, with an expiry, revocable.
account_tokens = sa.Table(
    "account_tokens", metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("account_id", BigId, sa.ForeignKey("accounts.id"), nullable=False,
              index=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("label", sa.String(100), nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)


MIGRATIONS = MigrationPlan("routing", metadata, Path(__file__).with_name("migrations"))


def _agency_ref(row) -> AgencyRef:
    return AgencyRef(row.code, row.name, row.level, row.region_code, row.parent_code)


class SqlDirectory:
    """The directory as routing.rules sees it, read inside the caller's transaction."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def agency(self, code: str) -> AgencyRef | None:
        row = self.conn.execute(sa.select(agencies).where(
            agencies.c.code == code, agencies.c.active.is_(True))).first()
        return _agency_ref(row) if row else None

    def handler_for(self, category: str, region_code: str) -> AgencyRef | None:
        found = self.handlers_for(category, region_code)
        return found[0] if found else None

    def handlers_for(self, category: str, region_code: str) -> list[AgencyRef]:
        """Every active agency handling `category` in the code's ancestry, most specific
        region first: the candidates a ticket is handed on to (pelimpahan)."""
        ancestry = region_ancestry(region_code)
        rows = self.conn.execute(
            sa.select(agencies, handling_rules.c.region_code.label("rule_region"))
            .join(handling_rules, handling_rules.c.agency_code == agencies.c.code)
            .where(handling_rules.c.category == category,
                   handling_rules.c.region_code.in_(ancestry),
                   agencies.c.active.is_(True))).all()
        rows.sort(key=lambda r: (ancestry.index(r.rule_region), r.code))
        return [_agency_ref(r) for r in rows]

    def units_of(self, code: str) -> list[str]:
        """Codes of the active agencies whose parent is `code` (its units)."""
        return list(self.conn.execute(sa.select(agencies.c.code).where(
            agencies.c.parent_code == code, agencies.c.active.is_(True))).scalars())

    def region_name(self, code: str) -> str:
        return self.conn.execute(sa.select(regions.c.name).where(regions.c.code == code)
                                 ).scalar() or ""

    def list_agencies(self, region_code: str, offset: int, limit: int) -> list[AgencyRef]:
        query = sa.select(agencies).where(agencies.c.active.is_(True))
        if region_code:
            query = query.where(agencies.c.region_code.in_(region_ancestry(region_code)))
        rows = self.conn.execute(query.order_by(
            sa.func.length(agencies.c.region_code).desc(), agencies.c.code)
            .offset(offset).limit(limit)).all()
        return [_agency_ref(r) for r in rows]


def _parent_code(code: str) -> str | None:
    return code.rsplit(".", 1)[0] if "." in code else None


def upsert_regions(conn: Connection, rows: Iterable[Region], batch: int = 5000) -> int:
    """Inserts or renames regions; returns how many rows were written."""
    existing = dict(conn.execute(sa.select(regions.c.code, regions.c.name)).all())
    new, changed = [], []
    for region in rows:
        values = {"code": region.code, "name": region.name, "level": region.level,
                  "parent_code": _parent_code(region.code)}
        if region.code not in existing:
            new.append(values)
            existing[region.code] = region.name
        elif existing[region.code] != region.name:
            changed.append(values)
    for i in range(0, len(new), batch):
        conn.execute(regions.insert(), new[i:i + batch])
    for values in changed:
        conn.execute(regions.update().where(regions.c.code == values["code"])
                     .values(name=values["name"], level=values["level"]))
    return len(new) + len(changed)


LEVELS = ("provinsi", "kabupaten_kota", "kecamatan", "desa_kelurahan")


def read_regions_csv(path: Path) -> list[Region]:
    """Reads the Kemendagri list (columns kode, nama, level); raises ValueError naming the
    line that is wrong."""
    out = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"kode", "nama", "level"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}; "
                             "expected kode,nama,level")
        for row in reader:
            line = reader.line_num  # the file's own line number, blank lines included
            if None in (row["kode"], row["nama"], row["level"]):
                raise ValueError(f"{path}:{line}: expected three fields kode,nama,level")
            code, name, level = row["kode"].strip(), row["nama"].strip(), row["level"].strip()
            if not valid_region_code(code):
                raise ValueError(f"{path}:{line}: {code!r} is not a Kemendagri code "
                                 "like 13 or 13.03 or 13.03.01 or 13.03.01.2001")
            if level not in LEVELS:
                raise ValueError(f"{path}:{line}: level {level!r} is not one of "
                                 f"{', '.join(LEVELS)}")
            if not name:
                raise ValueError(f"{path}:{line}: empty name for {code}")
            out.append(Region(code, name, level))
    return out


def seed_demo(conn: Connection) -> None:
    """The demo directory (Sumatera Barat, ministries, the triage queue); idempotent."""
    seed_directory(conn, demo_regions(), demo_agencies())


def seed_directory(conn: Connection, region_rows: Iterable[Region],
                   agency_rows: Iterable[AgencyRow]) -> None:
    """Idempotent: running it again changes nothing that is already there."""
    upsert_regions(conn, region_rows)
    known = set(conn.execute(sa.select(agencies.c.code)).scalars())
    rules = set(conn.execute(sa.select(handling_rules.c.category, handling_rules.c.region_code)))
    for row in agency_rows:
        if row.code not in known:
            conn.execute(agencies.insert().values(
                code=row.code, name=row.name, level=row.level, region_code=row.region_code,
                parent_code=row.parent_code, active=True))
        for category in row.handles:
            if (category, row.region_code) not in rules:
                conn.execute(handling_rules.insert().values(
                    category=category, region_code=row.region_code, agency_code=row.code))
                rules.add((category, row.region_code))

