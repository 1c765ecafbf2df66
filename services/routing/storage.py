"""Routing's tables: the directory (regions, agencies, who handles what where), tickets with
their append-only history, and the outbox. Only routing reads or writes them."""

from __future__ import annotations

import contextlib
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from services.infra.db import BigId, Statement, processed_events_table, reading, utcnow
from services.infra.migrations import MigrationPlan
from services.infra.outbox import outbox_table
from services.infra.regions import LEVELS, Region, read_regions_csv  # noqa: F401 (re-exported)
from services.infra.regions import parent_code as _parent_code
from services.routing.directory import document, generator, matching, provinces
from services.routing.directory import taxonomy as tax
from services.routing.directory.matching import RuleMatch
from services.routing.directory.taxonomy import Category, Taxonomy
from services.routing.rules import AgencyRef, region_ancestry
from services.routing.seed import AgencyRow, demo_agencies, demo_regions

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
# A region's rules (SqlDirectory._rules_in): the key begins with the category (migration 0007).
sa.Index("ix_handling_rules_region_code", handling_rules.c.region_code)

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
# Duplicate screening's candidates: the open tickets of one category in one regency, most
# recent first (tickets/duplicates.py); without it that query went through every open
# ticket of the country. On PostgreSQL the region in pattern order, so that the districts'
# LIKE '13.03.%' is a range of the index whatever the database's collation.
sa.Index("ix_tickets_category_region_submitted", tickets.c.category, tickets.c.region_code,
         tickets.c.submitted_at, postgresql_ops={"region_code": "varchar_pattern_ops"})

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

# One row: a number every change of the directory (regions, categories, agencies, rules)
# raises in its own transaction. Each process looks at it about once a second and forgets
# what it remembered of the directory when it moved (SqlDirectory._remembered).
directory_version = sa.Table(
    "directory_version", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True)),
)

outbox = outbox_table(metadata)
processed_events = processed_events_table(metadata)


MIGRATIONS = MigrationPlan("routing", metadata, Path(__file__).with_name("migrations"))


def _agency_ref(row) -> AgencyRef:
    # The level and regions repeat across a region's offices: kept once (what is remembered).
    return AgencyRef(row.code, row.name, sys.intern(row.level), sys.intern(row.region_code),
                     sys.intern(row.parent_code))


# The lookups every decision makes when the answer is not remembered (with a national mix
# of regencies and categories, most rule lookups), built once with bound values.
_AGENCY = Statement(sa.select(agencies).where(agencies.c.code == sa.bindparam("code"),
                                              agencies.c.active.is_(True)))
# A report's rule keys are at most two codes (subcategory, category) by at most five regions
# (village, district, regency, province, national): the lists are padded to that shape so
# that one statement, compiled once, runs on the driver's cursor (db.Statement) for every
# report; a list given as it comes made SQLAlchemy build its text again at each lookup.
_RULE_CODES, _RULE_REGIONS_MAX = 2, 5
_RULES_BY_KEYS = Statement(
    sa.select(agencies, handling_rules.c.category.label("rule_code"),
              handling_rules.c.region_code.label("rule_region"))
    .join(handling_rules, handling_rules.c.agency_code == agencies.c.code)
    .where(handling_rules.c.category.in_([sa.bindparam(f"code{i}")
                                          for i in range(_RULE_CODES)]),
           handling_rules.c.region_code.in_([sa.bindparam(f"region{i}")
                                             for i in range(_RULE_REGIONS_MAX)]),
           agencies.c.active.is_(True)))


_RULES_IN_REGION = Statement(
    sa.select(agencies, handling_rules.c.category)
    .join(handling_rules, handling_rules.c.agency_code == agencies.c.code)
    .where(handling_rules.c.region_code == sa.bindparam("region")))


def _padded(name: str, values: list[str], size: int) -> dict[str, str]:
    """`values` as the binds name0..name{size-1}, the last one repeated to fill them."""
    return {f"{name}{i}": values[min(i, len(values) - 1)] for i in range(size)}


_REGION_NAME = sa.select(regions.c.name).where(regions.c.code == sa.bindparam("code"))
_RULE_REGIONS = sa.select(handling_rules.c.region_code).distinct()


class SqlDirectory:
    """The directory as routing's decisions see it, read inside the caller's transaction
    (or, through `reading_directory`, one opened only when something is not remembered)."""

    def __init__(self, conn: Connection):
        self.conn = conn
        self._database: str | None = None  # the key of what is remembered, by database

    def _remembered(self, name: str, args: tuple, read: Callable[[], object],
                    names: bool = False):
        """What the directory answered to the same question since its version last moved:
        every decision asks the same few questions, and the directory changes only when an
        operator loads a file (this process forgets at once, others within
        VERSION_CHECK_SECONDS). An answer is read again after DIRECTORY_TTL in any case,
        for changes made behind the version's back (SQL by hand). Region names (`names`)
        are remembered apart: a report's village is seldom asked again, and a stream of
        them must not push the directory's rules out."""
        if self._database is None:
            engine = self.conn.engine
            self._database = _DATABASES.get(engine)
            if self._database is None:
                self._database = _DATABASES[engine] = sys.intern(str(engine.url))
        now = time.monotonic()
        seen = _SEEN.get(self._database)
        if seen is None or now >= seen.next_look:
            self._look_at_version(now, seen)
        memory, most = (_NAMES, NAMES_MAX) if names else (_REMEMBERED, REMEMBERED_MAX)
        key = (self._database, name, args)
        found = memory.get(key)
        if found is not None and now - found[0] < DIRECTORY_TTL:
            return found[1]
        if len(memory) >= most:
            _forget_expired(memory, most, now)
        value = read()
        memory[key] = (now, value)
        return value

    def _look_at_version(self, now: float, seen: _Seen | None) -> None:
        row = _VERSION.first(self.conn)
        version = row.version if row else 0
        if seen is None:
            # The first look (or the first since forget_directory): whatever is remembered
            # of this database may predate the version just read.
            _forget(self._database)
            _SEEN[self._database] = _Seen(version, now + VERSION_CHECK_SECONDS)
            return
        if version != seen.version or (seen.settle_at is not None and now >= seen.settle_at):
            # Forgotten twice: now, and once more SETTLE_SECONDS later. A transaction that
            # began before the change and reads after this look still sees the directory
            # as it was (a snapshot on SQLite); what it remembers meanwhile goes then.
            _forget(self._database)
            seen.settle_at = now + SETTLE_SECONDS if version != seen.version else None
            seen.version = version
        seen.next_look = now + VERSION_CHECK_SECONDS

    def agency(self, code: str) -> AgencyRef | None:
        def read():
            row = _AGENCY.first(self.conn, {"code": code})
            return _agency_ref(row) if row else None
        return self._remembered("agency", (code,), read)

    def categories(self) -> Taxonomy:
        """The active categories and subcategories with their names: the national taxonomy
        and what operators added. Before the taxonomy was first loaded: the national one.
        Every decision asks for it, and it changes only when an operator loads a directory
        file: it is read again at most every DIRECTORY_TTL seconds per database."""
        return self._remembered("categories", (), self._read_categories)

    def _read_categories(self) -> Taxonomy:
        rows = self.conn.execute(sa.select(categories.c.code, categories.c.name,
                                           categories.c.parent_code)
                                 .where(categories.c.active.is_(True))).all()
        if not rows:
            return tax.national()
        return Taxonomy(_in_taxonomy_order(
            Category(r.code, r.name, r.parent_code or "") for r in rows)).active()

    def rule_for(self, category: str, subcategory: str, region_code: str) -> RuleMatch | None:
        """The rule that decides who handles the report: the subcategory's rules first, the
        category's next, each from the report's own region up to the national rule; rules
        whose agency is inactive are passed over (the first of rules_for, from memory)."""
        named = self._rule_regions()
        for code, region in matching.rule_keys(category, subcategory, region_code):
            if region not in named:
                continue
            agency = self._rules_in(region).get(code)  # None too when it is inactive
            if agency is not None:
                return RuleMatch(agency, code, region,
                                 self.region_name(region) if region else "")
        return None

    def _rule_regions(self) -> frozenset[str]:
        """The regions some handling rule names ("" for the national rules)."""
        return self._remembered("rule_regions", (), lambda: frozenset(
            self.conn.execute(_RULE_REGIONS).scalars()))

    def _rules_in(self, region: str) -> dict[str, AgencyRef | None]:
        """The rules of one region: their agencies (None when inactive) by category or
        subcategory code. Remembered by region, not by the question: a national stream asks
        about some 500 regencies (and their provinces), but in tens of thousands of
        combinations of category, subcategory and region, most of them new within minutes.
        An agency named by several rules of the region is kept once, and its level and
        regions are shared: every region's rules of the national directory take 5 MB so
        (9 MB with an agency for each rule)."""
        def read():
            found: dict[str, AgencyRef | None] = {}
            rules = {}
            for r in _RULES_IN_REGION.all(self.conn, {"region": region}):
                if r.code not in found:
                    found[r.code] = _agency_ref(r) if r.active else None
                rules[sys.intern(r.category)] = found[r.code]
            return rules
        return self._remembered("rules_in", (region,), read)

    def rules_for(self, category: str, subcategory: str, region_code: str) -> list[RuleMatch]:
        """Every rule that applies with an active agency, best first, each agency once."""
        keys = matching.rule_keys(category, subcategory, region_code)
        if not keys:
            return []
        codes = sorted({code for code, _ in keys})
        region_codes = sorted({region for _, region in keys})
        if len(codes) > _RULE_CODES or len(region_codes) > _RULE_REGIONS_MAX:
            raise ValueError(f"region {region_code!r} is deeper than a village")
        rows = _RULES_BY_KEYS.all(self.conn, {
            **_padded("code", codes, _RULE_CODES),
            **_padded("region", region_codes, _RULE_REGIONS_MAX)})
        return matching.ordered(((r.rule_code, r.rule_region, _agency_ref(r)) for r in rows),
                                keys)

    def handler_for(self, category: str, region_code: str,
                    subcategory: str = "") -> AgencyRef | None:
        """The agency handling `category` (or a subcategory code) where the report is."""
        found = self.handlers_for(category, region_code, subcategory)
        return found[0] if found else None

    def handlers_for(self, category: str, region_code: str,
                     subcategory: str = "") -> list[AgencyRef]:
        """Every active agency handling the report's subcategory, then its category, most
        specific region first: the candidates a ticket is handed on to (pelimpahan). A
        subcategory code (KESEHATAN.BPJS) may be passed as the category."""
        return [m.agency for m in self.rules_for(category, subcategory, region_code)]

    def units_of(self, code: str) -> list[str]:
        """Codes of the active agencies whose parent is `code` (its units)."""
        return list(self.conn.execute(sa.select(agencies.c.code).where(
            agencies.c.parent_code == code, agencies.c.active.is_(True))).scalars())

    def region_name(self, code: str) -> str:
        return self._remembered("region_name", (code,), lambda: self.conn.execute(
            _REGION_NAME, {"code": code}).scalar() or "", names=True)

    def list_agencies(self, region_code: str, offset: int, limit: int) -> list[AgencyRef]:
        query = sa.select(agencies).where(agencies.c.active.is_(True))
        if region_code:
            query = query.where(agencies.c.region_code.in_(region_ancestry(region_code)))
        rows = self.conn.execute(query.order_by(
            sa.func.length(agencies.c.region_code).desc(), agencies.c.code)
            .offset(offset).limit(limit)).all()
        return [_agency_ref(r) for r in rows]


class _OnDemand:
    """A read-only transaction opened at the first query, if any comes."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._reading = None
        self._conn = None

    def _open(self):
        if self._conn is None:
            self._reading = reading(self.engine)
            self._conn = self._reading.__enter__()
        return self._conn

    def __getattr__(self, name: str):
        # execute(), and what db.Statement reads of a connection (its dialect, its driver
        # connection, its events), from the transaction opened at the first use.
        return getattr(self._open(), name)

    def close(self) -> None:
        if self._reading is not None:
            self._reading.__exit__(None, None, None)
            self._reading = self._conn = None


@contextlib.contextmanager
def reading_directory(engine: Engine) -> Iterator[SqlDirectory]:
    """The directory for a decision: what it remembers costs no database round trip."""
    on_demand = _OnDemand(engine)
    try:
        yield SqlDirectory(on_demand)
    finally:
        on_demand.close()


# How often a process looks at the directory's version, and how long after it saw the
# version move it forgets once more (see SqlDirectory._look_at_version).
VERSION_CHECK_SECONDS = 1.0
SETTLE_SECONDS = 5.0
# An answer is read again after this long even if the version did not move: a directory
# changed by hand in SQL, or by a process from before the version (in a rolling upgrade),
# is seen within it.
DIRECTORY_TTL = 300.0
# Answers remembered at most. The directory's: each region's rules (553 regions in the
# national directory, 5 MB for all of them), agencies by code (half a kilobyte each), the
# categories. Region names apart: a report's village is one of 83,762, a few hundred bytes
# each. Routing has 150 MB in all.
REMEMBERED_MAX = 10_000
NAMES_MAX = 10_000
_REMEMBERED: dict[tuple, tuple[float, object]] = {}
_NAMES: dict[tuple, tuple[float, object]] = {}
_VERSION = Statement(sa.select(directory_version.c.version)
                     .where(directory_version.c.id == 1))
_BUMP = Statement(directory_version.update().where(directory_version.c.id == 1)
                  .values(version=directory_version.c.version + 1,
                          changed_at=sa.bindparam("now")))


@dataclass
class _Seen:
    """The directory's version as this process last saw it in one database."""

    version: int
    next_look: float
    settle_at: float | None = None


_SEEN: dict[str, _Seen] = {}
# Each engine's URL as text, the key of what is remembered: a SqlDirectory is made for every
# decision, and rendering the URL each time was 0.5% of routing's time.
_DATABASES: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def _forget_expired(memory: dict, most: int, now: float) -> None:
    """Drops the answers past their TTL; all of them when most are still current."""
    # list() copies the items in one step: other threads add answers meanwhile.
    for key in [k for k, (at, _) in list(memory.items()) if now - at >= DIRECTORY_TTL]:
        memory.pop(key, None)
    if len(memory) >= most // 2:
        memory.clear()


def _forget(database: str | None = None) -> None:
    """Drops what is remembered of `database`, or of every database."""
    for memory in (_REMEMBERED, _NAMES):
        if database is None:
            memory.clear()
            continue
        for key in [k for k in list(memory) if k[0] == database]:
            memory.pop(key, None)


def forget_directory() -> None:
    """Drops what the directory answered, and the versions seen (this process changed it,
    or a test starts afresh)."""
    _forget()
    _SEEN.clear()


def directory_changed(conn: Connection) -> None:
    """Raises the directory's version in `conn`'s transaction, so that every process forgets
    what it remembered within a second of the commit; this one forgets at once (and again
    when it sees the new version). The row is migration 0006's."""
    _BUMP.execute(conn, {"now": utcnow()})
    _forget()


def _in_taxonomy_order(found: Iterable[Category]) -> list[Category]:
    """National categories in categories.yaml's order, then the others by code; each
    category followed by its subcategories."""
    order = {c.code: i for i, c in enumerate(tax.national())}
    found = sorted(found, key=lambda c: (order.get(c.code, len(order)), c.code))
    children: dict[str, list[Category]] = {}
    for c in found:
        if c.parent_code:
            children.setdefault(c.parent_code, []).append(c)
    out = []
    for category in found:
        if not category.parent_code:
            out.append(category)
            out += children.pop(category.code, [])
    # Subcategories added to a category that is not in the list (a national one).
    return out + [c for rest in children.values() for c in rest]


# -- regions --------------------------------------------------------------------------------------

def _region_values(region: Region) -> dict:
    province = region.level == "provinsi"
    return {"code": region.code, "name": region.name, "level": region.level,
            "parent_code": _parent_code(region.code),
            "iso_code": provinces.iso_code(region.code) if province else None,
            "timezone": provinces.timezone_name(region.code) if province else None}


def upsert_regions(conn: Connection, rows: Iterable[Region], batch: int = 5000) -> int:
    """Inserts regions, or updates the ones that changed (name, level, a province's ISO
    3166-2 code and time zone); returns how many rows were written."""
    columns = ("name", "level", "parent_code", "iso_code", "timezone")
    existing = {r.code: tuple(r[1:]) for r in conn.execute(
        sa.select(regions.c.code, *(regions.c[c] for c in columns)))}
    new, changed = [], []
    for region in rows:
        values = _region_values(region)
        wanted = tuple(values[c] for c in columns)
        have = existing.get(region.code)
        if have is None:
            new.append(values)
        elif have != wanted:
            changed.append(values)
        existing[region.code] = wanted
    for i in range(0, len(new), batch):
        conn.execute(regions.insert(), new[i:i + batch])
    if changed:
        conn.execute(regions.update().where(regions.c.code == sa.bindparam("b_code"))
                     .values({c: sa.bindparam(f"b_{c}") for c in columns}),
                     [{f"b_{k}": v for k, v in values.items()} for values in changed])
    if new or changed:
        directory_changed(conn)
    return len(new) + len(changed)


# -- the taxonomy and the directory ---------------------------------------------------------------

@dataclass
class Changes:
    added: int = 0
    changed: int = 0
    deactivated: int = 0  # for rules: removed


@dataclass
class LoadSummary:
    """What loading a directory file changed; all zero when it was loaded already."""

    categories: Changes = field(default_factory=Changes)
    agencies: Changes = field(default_factory=Changes)
    rules: Changes = field(default_factory=Changes)

    @property
    def unchanged(self) -> bool:
        return self == LoadSummary()

    def lines(self) -> list[str]:
        return [f"{what:<11} {c.added:,} added, {c.changed:,} changed, {c.deactivated:,} {gone}"
                for what, c, gone in (("categories:", self.categories, "deactivated"),
                                      ("agencies:", self.agencies, "deactivated"),
                                      ("rules:", self.rules, "removed"))]


def load_taxonomy(conn: Connection, national: Taxonomy | None = None) -> Changes:
    """The national categories (categories.yaml) into `categories`, active; idempotent.
    Categories operators added are left as they are."""
    national = national if national is not None else tax.national()
    return _sync_categories(conn, national, {}, deactivate=False)


def _sync_categories(conn: Connection, national: Taxonomy, extra: dict[str, Category], *,
                     deactivate: bool) -> Changes:
    wanted = {c.code: (c.name, c.parent_code or None, True) for c in national}
    wanted.update({c.code: (c.name, c.parent_code or None, c.active) for c in extra.values()})
    have = {r.code: (r.name, r.parent_code, r.active) for r in conn.execute(
        sa.select(categories.c.code, categories.c.name, categories.c.parent_code,
                  categories.c.active))}
    now = utcnow()
    changes = Changes()
    new = [{"code": code, "name": name, "parent_code": parent, "active": active,
            "updated_at": now} for code, (name, parent, active) in wanted.items()
           if code not in have]
    changed = [{"b_code": code, "b_name": name, "b_parent": parent, "b_active": active}
               for code, (name, parent, active) in wanted.items()
               if code in have and have[code] != (name, parent, active)]
    gone = [code for code, (_, _, active) in have.items()
            if deactivate and active and code not in wanted]
    if new:
        conn.execute(categories.insert(), new)
    if changed:
        conn.execute(categories.update().where(categories.c.code == sa.bindparam("b_code"))
                     .values(name=sa.bindparam("b_name"), parent_code=sa.bindparam("b_parent"),
                             active=sa.bindparam("b_active"), updated_at=now), changed)
    _deactivate(conn, categories, gone, updated_at=now)
    changes.added, changes.changed, changes.deactivated = len(new), len(changed), len(gone)
    if new or changed or gone:
        directory_changed(conn)
    return changes


def _deactivate(conn: Connection, table: sa.Table, codes: list[str], **values) -> None:
    for i in range(0, len(codes), 500):
        conn.execute(table.update().where(table.c.code.in_(codes[i:i + 500]))
                     .values(active=False, **values))


_AGENCY_COLUMNS = ("name", "level", "region_code", "parent_code", "active")


def load_directory(conn: Connection, directory: document.Directory,
                   national: Taxonomy | None = None) -> LoadSummary:
    """Makes the database hold exactly `directory` (an expanded directory file): categories,
    agencies and rules are added or changed; categories and agencies no longer in it are
    deactivated (tickets and accounts point at them), rules no longer in it removed.
    Idempotent: loading the same directory again changes nothing (not even the
    directory's version)."""
    national = national if national is not None else tax.national()
    summary = LoadSummary()
    summary.categories = _sync_categories(conn, national, directory.categories,
                                          deactivate=True)
    have = {r.code: tuple(r[1:]) for r in conn.execute(
        sa.select(agencies.c.code, *(agencies.c[c] for c in _AGENCY_COLUMNS)))}
    new, changed = [], []
    for agency in directory.agencies.values():
        wanted = tuple(getattr(agency, c) for c in _AGENCY_COLUMNS)
        if agency.code not in have:
            new.append({"code": agency.code, **dict(zip(_AGENCY_COLUMNS, wanted,
                                                        strict=True))})
        elif have[agency.code] != wanted:
            changed.append({f"b_{c}": v for c, v in zip(("code", *_AGENCY_COLUMNS),
                                                        (agency.code, *wanted), strict=True)})
    gone = [code for code, values in have.items()
            if code not in directory.agencies and values[-1]]
    for i in range(0, len(new), 5000):
        conn.execute(agencies.insert(), new[i:i + 5000])
    if changed:
        conn.execute(agencies.update().where(agencies.c.code == sa.bindparam("b_code"))
                     .values({c: sa.bindparam(f"b_{c}") for c in _AGENCY_COLUMNS}), changed)
    _deactivate(conn, agencies, gone)
    summary.agencies = Changes(len(new), len(changed), len(gone))

    rule = handling_rules.c
    have_rules = {(r.category, r.region_code): r.agency_code for r in conn.execute(
        sa.select(rule.category, rule.region_code, rule.agency_code))}
    new_rules = [{"category": c, "region_code": r, "agency_code": a}
                 for (c, r), a in directory.rules.items() if (c, r) not in have_rules]
    changed_rules = [{"b_category": c, "b_region": r, "b_agency": a}
                     for (c, r), a in directory.rules.items()
                     if (c, r) in have_rules and have_rules[(c, r)] != a]
    gone_rules = [{"b_category": c, "b_region": r} for (c, r) in have_rules
                  if (c, r) not in directory.rules]
    if gone_rules:
        conn.execute(handling_rules.delete().where(
            rule.category == sa.bindparam("b_category"),
            rule.region_code == sa.bindparam("b_region")), gone_rules)
    for i in range(0, len(new_rules), 5000):
        conn.execute(handling_rules.insert(), new_rules[i:i + 5000])
    if changed_rules:
        conn.execute(handling_rules.update().where(
            rule.category == sa.bindparam("b_category"),
            rule.region_code == sa.bindparam("b_region"))
            .values(agency_code=sa.bindparam("b_agency")), changed_rules)
    summary.rules = Changes(len(new_rules), len(changed_rules), len(gone_rules))
    if new or changed or gone or new_rules or changed_rules or gone_rules:
        directory_changed(conn)
    return summary


def read_directory(conn: Connection, national: Taxonomy | None = None) -> document.Directory:
    """What the database holds, as an expanded directory: the categories beyond the
    national ones, every agency (inactive ones too) and every rule."""
    national = national if national is not None else tax.national()
    out = document.Directory()
    rows = conn.execute(sa.select(categories).order_by(categories.c.code)).all()
    extra = [Category(r.code, r.name, r.parent_code or "", r.active) for r in rows
             if r.code not in national]
    out.categories = {c.code: c for c in _in_taxonomy_order(extra)}
    # The triage queue and national bodies first, then region by region.
    for r in conn.execute(sa.select(agencies).order_by(
            agencies.c.level != "triage", agencies.c.region_code != "",
            agencies.c.region_code, agencies.c.code)):
        out.agencies[r.code] = document.Agency(r.code, r.name, r.level, r.region_code or "",
                                               r.parent_code or "", bool(r.active))
    rule = handling_rules.c
    for r in conn.execute(sa.select(rule.category, rule.region_code, rule.agency_code)
                          .order_by(rule.region_code, rule.category)):
        out.rules[(r.category, r.region_code)] = r.agency_code
    return out


def export_directory(conn: Connection) -> str:
    """The directory file of what the database holds (`directory export`), written with
    the standard kinds of office wherever they describe it."""
    names = {r.code: generator.office_region_name(Region(r.code, r.name, r.level))
             for r in conn.execute(sa.select(regions.c.code, regions.c.name, regions.c.level)
                                   .where(regions.c.level.in_(("provinsi", "kabupaten_kota")))
                                   .order_by(regions.c.code))}
    return document.dump(document.compress(read_directory(conn), generator.OFFICE_KINDS,
                                           names))


def regions_missing(conn: Connection, directory: document.Directory) -> list[str]:
    """Region codes of the directory's agencies that the region list does not have."""
    used = {a.region_code for a in directory.agencies.values() if a.region_code}
    known = set(conn.execute(sa.select(regions.c.code).where(regions.c.code.in_(used)))
                .scalars()) if used else set()
    return sorted(used - known)


# -- start-up and the demo -----------------------------------------------------------------------

def after_migrate(seed_demo: bool = False) -> Callable[[Connection], None]:
    """What runs under the migration lock at start: the national taxonomy, and the demo
    directory when asked (db.migrate(..., after=after_migrate(...)))."""

    def prepare(conn: Connection) -> None:
        load_taxonomy(conn)
        if seed_demo:
            seed_directory(conn, demo_regions(), demo_agencies())

    return prepare


def seed_demo(conn: Connection) -> None:
    """The national taxonomy and the demo directory (Sumatera Barat, ministries, the triage
    queue); idempotent."""
    after_migrate(seed_demo=True)(conn)


def seed_directory(conn: Connection, region_rows: Iterable[Region],
                   agency_rows: Iterable[AgencyRow]) -> None:
    """Idempotent: running it again changes nothing that is already there."""
    upsert_regions(conn, region_rows)
    known = set(conn.execute(sa.select(agencies.c.code)).scalars())
    rules = set(conn.execute(sa.select(handling_rules.c.category, handling_rules.c.region_code)))
    added = False
    for row in agency_rows:
        if row.code not in known:
            conn.execute(agencies.insert().values(
                code=row.code, name=row.name, level=row.level, region_code=row.region_code,
                parent_code=row.parent_code, active=True))
            added = True
        for category in row.handles:
            if (category, row.region_code) not in rules:
                conn.execute(handling_rules.insert().values(
                    category=category, region_code=row.region_code, agency_code=row.code))
                rules.add((category, row.region_code))
                added = True
    if added:
        directory_changed(conn)
