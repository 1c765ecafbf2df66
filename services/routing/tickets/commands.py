"""What people and clocks do to tickets: the national admin's triage, the agency's actions,
the reporter's replies, ratings and appeals, and the SLA clock's warnings, escalations and
auto-close. Each command runs in one transaction: it locks the ticket, checks who may act
(scope, then the lifecycle table in statemachine), moves it, writes the audit trail, and puts
the events in the outbox. Queries (inbox, one ticket, audit trail) apply the same scope.

Errors say what happened in words a caller can act on; the servicer maps them to gRPC codes
(NotFound/NotYours -> PERMISSION_DENIED for staff, so nothing leaks whether a ticket exists
elsewhere; NotAllowed -> FAILED_PRECONDITION; Stale -> ABORTED; Invalid -> INVALID_ARGUMENT).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lapor.v1 import common_pb2, events_pb2
from services.infra import db, events, randomness
from services.infra.db import as_utc, is_postgres, reading, utcnow
from services.infra.outbox import Outbox
from services.routing import storage
from services.routing.metrics import count_follow_up
from services.routing.principal import Principal
from services.routing.rules import TRIAGE_AGENCY, AgencyRef
from services.routing.tickets import duplicates
from services.routing.tickets.statemachine import (
    ACTIVE,
    APPEAL_DAYS,
    ARCHIVE_REASONS,
    AUTO_CLOSE_DAYS,
    COMPLEXITY_DAYS,
    UNRESOLVED_DAYS,
    VERIFY_DAYS,
    Action,
    Clock,
    Complexity,
    NotAllowed,
    Role,
    State,
    allowed_actions,
    step,
)
from services.routing.workdays import WIB, WIT, WITA, WorkCalendar, zone_for_label, zone_label
from services.routing.workflow import agency_proto, clock_zone

log = logging.getLogger(__name__)

SYSTEM = Principal("system", Role.SYSTEM)
CITIZEN = Principal("citizen", Role.CITIZEN)
MAX_TEXT = 10_000
MAX_NOTE = 2_000


# Statements built once: SQLAlchemy walks a statement built anew to find its cached
# compilation, which cost about as much as running it (docs/performance.md).
_INSERT_HISTORY = db.Insert(storage.ticket_history)
_LOAD = sa.select(storage.tickets).where(
    storage.tickets.c.tracking_id == sa.bindparam("tracking_id"))
_LOAD_LOCKED = _LOAD.with_for_update()
# The SET clause comes from the parameters' other keys (the columns a command changes).
_UPDATE_VERSION = storage.tickets.update().where(
    storage.tickets.c.ticket_id == sa.bindparam("where_ticket_id"),
    storage.tickets.c.version == sa.bindparam("where_version"))


class TicketError(Exception):
    """A command or query that cannot be done, with a message for the caller."""


class NotFound(TicketError):
    def __init__(self, tracking_id: str):
        super().__init__(f"no ticket {tracking_id}")


class NotYours(TicketError):
    """The ticket is not the caller's agency's to see or to act on."""

    def __init__(self):
        super().__init__("this ticket is not your agency's")


class Stale(TicketError):
    """expected_version is not the ticket's version any more."""

    def __init__(self, expected: int, actual: int):
        super().__init__(f"the ticket changed since version {expected} (it is at version "
                         f"{actual}): reload it and try again")


class Refused(TicketError):
    """The ticket's state does not allow it (already rated, appeal window over...)."""


class Invalid(TicketError):
    def __init__(self, violations: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in violations.items()))
        self.violations = violations


@dataclass
class _Move:
    """What a command changes besides the state: the values it sets and what it says."""

    values: dict = field(default_factory=dict)
    agency: AgencyRef | None = None       # a new holder
    chain_reason: str = ""                # why the new holder got it (ChainEntry.reason)
    public_note: str = ""
    reporter_note: str = ""
    reason: str = ""                      # for the audit trail only
    note: str = ""                        # the staff member's own note (audit trail)
    target: State | None = None
    clock_start: datetime | None = None   # default: now
    keep_deadline: bool = False


class Tickets:
    """Commands and queries on tickets. `now` is injectable: tests (and the end-to-end SLA
    test, through ROUTING_CLOCK_FILE) move time instead of waiting for it."""

    def __init__(self, engine: Engine, outbox: Outbox, calendar: WorkCalendar,
                 now: Callable[[], datetime] = utcnow):
        self.engine = engine
        self.outbox = outbox
        self.calendar = calendar
        self.now = now

    # -- scope -------------------------------------------------------------------------------
    def _agency(self, conn: Connection, code: str) -> AgencyRef | None:
        """An active agency of the directory (the triage queue always exists), or None."""
        if code == TRIAGE_AGENCY:
            return storage.SqlDirectory(conn).agency(code) or AgencyRef(
                TRIAGE_AGENCY, "Admin Nasional SP4N-LAPOR!", "triage")
        return storage.SqlDirectory(conn).agency(code) if code else None

    def _holder(self, conn: Connection, code: str) -> AgencyRef:
        """The agency holding a ticket, even one deactivated since it got it."""
        found = self._agency(conn, code)
        if found is not None:
            return found
        a = storage.agencies
        row = conn.execute(sa.select(a).where(a.c.code == code)).first()
        if row is None:
            return AgencyRef(code, code, "")
        return AgencyRef(row.code, row.name, row.level, row.region_code, row.parent_code)

    def _scope(self, conn: Connection, principal: Principal) -> list[str] | None:
        """Agency codes whose tickets the caller sees; None for everything."""
        if principal.sees_everything:
            return None
        if not principal.agency_code:
            return []
        return [principal.agency_code, *storage.SqlDirectory(conn).units_of(
            principal.agency_code)]

    def _visible(self, conn: Connection, principal: Principal, row) -> None:
        scope = self._scope(conn, principal)
        if scope is not None and row.agency_code not in scope:
            raise NotYours()

    def _may_act(self, principal: Principal, row) -> None:
        """Staff act only on what their own agency holds (a unit acts on its own)."""
        if principal.acting_role in (Role.AGENCY_ADMIN, Role.AGENCY_OFFICER) and \
                row.agency_code != principal.agency_code:
            raise NotYours()

    def _load(self, conn: Connection, tracking_id: str, *, lock: bool):
        query = _LOAD_LOCKED if lock and is_postgres(conn) else _LOAD
        row = conn.execute(query, {"tracking_id": tracking_id}).first()
        if row is None:
            raise NotFound(tracking_id)
        return row

    # -- the one way a ticket changes --------------------------------------------------------
    def _apply(self, conn: Connection, row, principal: Principal, action: Action,
               move: _Move, expected_version: int = 0):
        now = self.now()
        if expected_version and expected_version != row.version:
            raise Stale(expected_version, row.version)
        source = State(row.state)
        the_step = step(action, source, principal.acting_role, move.target)
        agency = move.agency or self._holder(conn, row.agency_code)
        values = dict(move.values)
        complexity = Complexity(values.get("complexity", row.complexity))
        tz = clock_zone(agency, row.region_code)
        start = move.clock_start or now
        deadline, paused = as_utc(row.deadline), None
        if move.keep_deadline:
            pass
        elif the_step.clock == Clock.VERIFY:
            days = row.paused_days if source == State.ON_HOLD and row.paused_days else VERIFY_DAYS
            deadline = self.calendar.add_working_days(start, days, tz)
        elif the_step.clock == Clock.RESPOND:
            deadline = self.calendar.add_working_days(start, COMPLEXITY_DAYS[complexity], tz)
        elif the_step.clock == Clock.AUTO_CLOSE:
            deadline = self.calendar.add_working_days(start, AUTO_CLOSE_DAYS, tz)
        elif the_step.clock == Clock.PAUSED:
            paused = max(1, self.calendar.working_days_between(now, deadline, tz)) \
                if deadline and deadline > now else 1
            deadline = None
        else:
            deadline = None
        version = row.version + 1
        values.update(state=the_step.target.value, version=version, updated_at=now,
                      agency_code=agency.code, clock=the_step.clock.value, paused_days=paused,
                      deadline=deadline.astimezone(UTC) if deadline else None,
                      deadline_zone=zone_label(tz))
        if deadline != as_utc(row.deadline):
            values["warned_deadline"] = None
        updated = conn.execute(_UPDATE_VERSION, dict(
            values, where_ticket_id=row.ticket_id, where_version=row.version))
        if updated.rowcount != 1:
            raise Stale(row.version, row.version + 1)
        _INSERT_HISTORY.execute(conn, dict(
            ticket_id=row.ticket_id, at=now, from_state=source.value,
            to_state=the_step.target.value, actor_role=principal.acting_role.value,
            actor=principal.username, action=action.value, agency_code=agency.code,
            from_agency=row.agency_code, note=move.public_note or "",
            reason=" — ".join(filter(None, [move.reason, move.note])), version=version))
        new = self._load(conn, row.tracking_id, lock=False)
        self._announce(conn, new, source, principal, action, agency, move, deadline)
        log.info("ticket %s: %s -> %s", action.value, source.value, the_step.target.value,
                 extra={"actor_role": principal.acting_role.value, "version": version,
                        "agency": agency.code})
        return new

    def _announce(self, conn: Connection, row, source: State, principal: Principal,
                  action: Action, agency: AgencyRef, move: _Move, deadline) -> None:
        agency_pb = _agency_proto(agency)
        changed = events_pb2.TicketStatusChanged(
            tracking_id=row.tracking_id, ticket_id=row.ticket_id,
            from_state=_state_pb(source), to_state=_state_pb(State(row.state)),
            actor_role=principal.acting_role.value, deadline_zone=row.deadline_zone,
            public_note=move.public_note, agency=agency_pb, ticket_version=row.version,
            action=action.value, reporter_note=move.reporter_note,
            confidential=row.confidential)
        if deadline is not None:
            changed.deadline.CopyFrom(events.timestamp(deadline))
        self.outbox.add(conn, events.new("ticket.status_changed", row.tracking_id, changed,
                                         producer="routing"))
        if move.agency is not None and agency.level != "triage":
            self.outbox.add(conn, self.dispatched_event(conn, row, agency, move.chain_reason,
                                                        principal))
        self.outbox.wake()

    def dispatched_event(self, conn: Connection, row, agency: AgencyRef, reason: str,
                         principal: Principal) -> events_pb2.EventEnvelope:
        """ticket.dispatched for the agency now holding the ticket, with what it needs."""
        dispatched = events_pb2.TicketDispatched(
            tracking_id=row.tracking_id, ticket_id=row.ticket_id, agency=_agency_proto(agency),
            deadline_zone=row.deadline_zone,
            working_days=COMPLEXITY_DAYS[Complexity(row.complexity)], category=row.category,
            confidence=row.confidence, decision=row.decision or reason,
            report=report_content(conn, row), actor_role=principal.acting_role.value,
            ticket_version=row.version, subcategory=row.subcategory)
        if row.deadline is not None:
            dispatched.deadline.CopyFrom(events.timestamp(as_utc(row.deadline)))
        return events.new("ticket.dispatched", row.tracking_id, dispatched, producer="routing")

    def _message(self, conn: Connection, row, direction: str, principal: Principal,
                 text: str) -> None:
        conn.execute(storage.ticket_messages.insert().values(
            ticket_id=row.ticket_id, at=self.now(), direction=direction,
            author_role=principal.acting_role.value, author=principal.username, text=text))
        message = events_pb2.TicketMessage(
            tracking_id=row.tracking_id, ticket_id=row.ticket_id,
            agency=_agency_proto(self._holder(conn, row.agency_code)), direction=direction,
            text=text, ticket_version=row.version, confidential=row.confidential)
        self.outbox.add(conn, events.new("ticket.message", row.tracking_id, message,
                                         producer="routing"))
        self.outbox.wake()

    def _command(self, principal: Principal, tracking_id: str, body):
        """Runs `body(conn, row)` on the locked ticket after the scope check."""
        with self.engine.begin() as conn:
            row = self._load(conn, tracking_id, lock=True)
            if principal.acting_role not in (Role.CITIZEN, Role.SYSTEM):
                self._visible(conn, principal, row)
                self._may_act(principal, row)
            return body(conn, row)

    # -- national admin -----------------------------------------------------------------------
    def verify(self, principal: Principal, tracking_id: str, *, expected_version: int = 0,
               agency_code: str = "", category: str = "", note: str = ""):
        note = _text("note", note, MAX_NOTE, required=False)

        def body(conn, row):
            code = agency_code or row.suggested_agency
            if not code:
                raise Invalid({"agency_code": "routing suggested no agency for this ticket: "
                                              "name the agency to dispatch it to"})
            agency = self._agency(conn, code)
            if agency is None or agency.level == "triage":
                raise Invalid({"agency_code": f"no active agency {code[:40]!r} in the "
                                              "directory"})
            values = {}
            if category:
                chosen, sub = self._category(conn, category)
                values = {"category": chosen, "subcategory": sub}
                if (chosen, sub) != (row.category, row.subcategory):
                    self._correction(conn, row, chosen, sub)
            return self._apply(conn, row, principal, Action.VERIFY, _Move(
                values=values, agency=agency, chain_reason="dispatched", note=note,
                public_note=f"Terverifikasi dan terdisposisi ke {agency.name}"),
                expected_version)
        return self._command(principal, tracking_id, body)

    def _category(self, conn: Connection, code: str) -> tuple[str, str]:
        """(category, subcategory) for a category or subcategory code of the taxonomy."""
        c = storage.categories
        row = conn.execute(sa.select(c.c.code, c.c.parent_code).where(
            c.c.code == code, c.c.active.is_(True))).first()
        if row is None:
            raise Invalid({"category": f"no active category or subcategory {code[:40]!r} in "
                                       "the directory"})
        return (row.parent_code, row.code) if row.parent_code else (row.code, "")

    def _correction(self, conn: Connection, row, category: str, subcategory: str) -> None:
        """A person put the report in another category than routing did: a labelled example
        for the next retraining. After a hand-over (not our authority) it says so."""
        handed_over = conn.execute(sa.select(storage.ticket_history.c.id).where(
            storage.ticket_history.c.ticket_id == row.ticket_id,
            storage.ticket_history.c.action == Action.NOT_OUR_AUTHORITY.value).limit(1)
        ).first() is not None
        conn.execute(storage.corrections.insert().values(
            tracking_id=row.tracking_id, title=row.title, body=row.body,
            region_code=row.region_code, predicted=row.subcategory or row.category,
            category=category, subcategory=subcategory,
            source="not_our_authority" if handed_over else "recategorised",
            created_at=self.now()))

    def hold(self, principal: Principal, tracking_id: str, *, question: str,
             expected_version: int = 0):
        question = _text("question", question, MAX_NOTE)
        return self._command(principal, tracking_id, lambda conn, row: self._apply(
            conn, row, principal, Action.HOLD, _Move(
                public_note="Ditunda: menunggu kelengkapan dari pelapor",
                reporter_note=question, reason=question), expected_version))

    def archive(self, principal: Principal, tracking_id: str, *, reason: str, note: str = "",
                expected_version: int = 0):
        if reason not in ARCHIVE_REASONS:
            raise Invalid({"reason": "one of " + ", ".join(ARCHIVE_REASONS)})
        note = _text("note", note, MAX_NOTE, required=False)
        label = ARCHIVE_REASONS[reason]
        return self._command(principal, tracking_id, lambda conn, row: self._apply(
            conn, row, principal, Action.ARCHIVE, _Move(
                values={"closed_at": self.now()}, public_note=f"Diarsipkan: {label}",
                reporter_note=label, reason=reason, note=note), expected_version))

    # -- the agency ------------------------------------------------------------------------------
    def accept(self, principal: Principal, tracking_id: str, *,
               complexity: Complexity = Complexity.SIMPLE, expected_version: int = 0):
        def body(conn, row):
            # The follow-up clock counts from when this agency got the ticket.
            received = self._received_at(conn, row)
            agency = self._holder(conn, row.agency_code)
            return self._apply(conn, row, principal, Action.ACCEPT, _Move(
                values={"complexity": complexity.value, "accepted_at": self.now()},
                clock_start=received, reason=complexity.value,
                public_note=f"Diterima oleh {agency.name}"),
                expected_version)
        return self._command(principal, tracking_id, body)

    def forward(self, principal: Principal, tracking_id: str, *, unit_code: str,
                note: str = "", expected_version: int = 0):
        note = _text("note", note, MAX_NOTE, required=False)

        def body(conn, row):
            unit = self._agency(conn, unit_code)
            if unit is None or unit.parent_code != row.agency_code:
                raise Invalid({"unit_code": "an active unit of your agency (an agency whose "
                                            "parent is yours)"})
            return self._apply(conn, row, principal, Action.FORWARD, _Move(
                agency=unit, chain_reason="forwarded", keep_deadline=True, note=note,
                public_note=f"Diteruskan ke {unit.name}"), expected_version)
        return self._command(principal, tracking_id, body)

    def decline(self, principal: Principal, tracking_id: str, *, reason: str,
                suggested_agency_code: str = "", expected_version: int = 0):
        """Not our authority (bukan wewenang): the next candidate agency that has not had the
        ticket yet, the one the agency suggests first, or the triage queue."""
        reason = _text("reason", reason, MAX_NOTE)

        def body(conn, row):
            had = self._chain_codes(conn, row)
            directory = storage.SqlDirectory(conn)
            candidates = []
            if suggested_agency_code:
                suggested = directory.agency(suggested_agency_code)
                if suggested is None or suggested.level == "triage":
                    raise Invalid({"suggested_agency_code": "an active agency of the "
                                                            "directory, or leave it out"})
                candidates.append(suggested)
            if row.category:
                candidates += directory.handlers_for(row.category, row.region_code,
                                                     row.subcategory)
            following = next((a for a in candidates if a.code not in had), None)
            if following is not None:
                return self._apply(conn, row, principal, Action.NOT_OUR_AUTHORITY, _Move(
                    agency=following, chain_reason="not_our_authority",
                    target=State.DISPATCHED, reason=reason,
                    values={"accepted_at": None, "complexity": Complexity.SIMPLE.value},
                    public_note=f"Dilimpahkan ke {following.name}"), expected_version)
            triage = self._agency(conn, TRIAGE_AGENCY)
            return self._apply(conn, row, principal, Action.NOT_OUR_AUTHORITY, _Move(
                agency=triage, chain_reason="not_our_authority", target=State.SUBMITTED,
                reason=reason, values={"accepted_at": None, "suggested_agency": ""},
                public_note="Dikembalikan ke admin nasional untuk didisposisi ulang"),
                expected_version)
        return self._command(principal, tracking_id, body)

    def follow_up(self, principal: Principal, tracking_id: str, *, response: str,
                  expected_version: int = 0):
        response = _text("response", response, MAX_TEXT)

        def body(conn, row):
            public = "Ditindaklanjuti" if row.confidential else response
            return count_follow_up(row, self._apply(conn, row, principal, Action.FOLLOW_UP, _Move(
                values={"followed_up_at": self.now()}, public_note=public,
                reporter_note=response), expected_version))
        return self._command(principal, tracking_id, body)

    def close(self, principal: Principal, tracking_id: str, *, note: str = "",
              expected_version: int = 0):
        note = _text("note", note, MAX_NOTE, required=False)
        return self._command(principal, tracking_id, lambda conn, row: self._apply(
            conn, row, principal, Action.CLOSE, _Move(
                values={"closed_at": self.now()}, note=note,
                public_note="Selesai"), expected_version))

    def message_reporter(self, principal: Principal, tracking_id: str, *, text: str,
                         expected_version: int = 0):
        text = _text("text", text, MAX_TEXT)

        def body(conn, row):
            if State(row.state) not in ACTIVE:
                raise NotAllowed(Action.FOLLOW_UP, State(row.state))
            if expected_version and expected_version != row.version:
                raise Stale(expected_version, row.version)
            self._message(conn, row, "to_reporter", principal, text)
            _INSERT_HISTORY.execute(conn, dict(
                ticket_id=row.ticket_id, at=self.now(), from_state=row.state,
                to_state=row.state, actor_role=principal.acting_role.value,
                actor=principal.username, action="message", agency_code=row.agency_code,
                from_agency=row.agency_code, note="", reason="", version=row.version))
            return row
        return self._command(principal, tracking_id, body)

    # -- the reporter (through intake) ----------------------------------------------------------
    def reporter_reply(self, tracking_id: str, message: str) -> tuple[str, object]:
        """A reply to a follow-up, information for a held report, or else a message to the
        agency. Returns (outcome, ticket)."""
        message = _text("message", message, MAX_TEXT)

        def body(conn, row):
            state = State(row.state)
            if state == State.FOLLOWED_UP:
                self._message(conn, row, "to_agency", CITIZEN, message)
                return "replied", self._apply(conn, row, CITIZEN, Action.REPLY, _Move(
                    public_note="Pelapor menanggapi tindak lanjut"))
            if state == State.ON_HOLD:
                self._message(conn, row, "to_agency", CITIZEN, message)
                return "information_added", self._apply(conn, row, CITIZEN, Action.ADD_INFO,
                                                        _Move(public_note="Pelapor melengkapi "
                                                              "laporan"))
            if state in ACTIVE:
                self._message(conn, row, "to_agency", CITIZEN, message)
                _INSERT_HISTORY.execute(conn, dict(
                    ticket_id=row.ticket_id, at=self.now(), from_state=row.state,
                    to_state=row.state, actor_role=Role.CITIZEN.value, actor="citizen",
                    action="message", agency_code=row.agency_code,
                    from_agency=row.agency_code, note="", reason="", version=row.version))
                return "message_sent", row
            raise NotAllowed(Action.REPLY, state)
        return self._command(CITIZEN, tracking_id, body)

    def reporter_confirm(self, tracking_id: str, comment: str = ""):
        comment = _text("comment", comment, MAX_NOTE, required=False)
        return self._command(CITIZEN, tracking_id, lambda conn, row: self._apply(
            conn, row, CITIZEN, Action.CONFIRM, _Move(
                values={"closed_at": self.now()}, note=comment,
                public_note="Selesai: pelapor puas dengan tindak lanjut")))

    def rate(self, tracking_id: str, rating: int, comment: str = ""):
        if not 1 <= rating <= 5:
            raise Invalid({"rating": "a whole number from 1 to 5"})
        comment = _text("comment", comment, MAX_NOTE, required=False)

        def body(conn, row):
            if row.state != State.CLOSED:
                raise Refused(f"only a closed ticket can be rated; this one is {row.state}")
            if row.rating is not None:
                raise Refused("this ticket has been rated already")
            t = storage.tickets
            conn.execute(t.update().where(t.c.ticket_id == row.ticket_id).values(
                rating=rating, rating_comment=comment, updated_at=self.now()))
            _INSERT_HISTORY.execute(conn, dict(
                ticket_id=row.ticket_id, at=self.now(), from_state=row.state,
                to_state=row.state, actor_role=Role.CITIZEN.value, actor="citizen",
                action="rate", agency_code=row.agency_code, from_agency=row.agency_code,
                note="", reason=f"{rating}/5 {comment}".strip(), version=row.version))
            return self._load(conn, tracking_id, lock=False)
        return self._command(CITIZEN, tracking_id, body)

    def appeal(self, tracking_id: str, reason: str):
        """Reopens a closed ticket at the parent of the agency that closed it (its atasan),
        within APPEAL_DAYS working days of the closure, once."""
        reason = _text("reason", reason, MAX_NOTE)

        def body(conn, row):
            if row.state != State.CLOSED:
                raise NotAllowed(Action.APPEAL, State(row.state))
            if row.appealed_at is not None:
                raise Refused("this ticket has been appealed already")
            closer = self._holder(conn, row.agency_code)
            tz = clock_zone(closer, row.region_code)
            closed = as_utc(row.closed_at) or as_utc(row.updated_at)
            until = self.calendar.add_working_days(closed, APPEAL_DAYS, tz)
            if self.now() > until:
                raise Refused(f"the appeal window ended on "
                                  f"{until.astimezone(tz):%d-%m-%Y %H:%M} {zone_label(tz)} "
                                  f"({APPEAL_DAYS} working days after the closure)")
            parent = self._agency(conn, closer.parent_code) if closer.parent_code else None
            values = {"appealed_at": self.now(), "closed_at": None, "accepted_at": None,
                      "escalation_level": row.escalation_level + 1}
            if parent is not None and parent.level != "triage":
                return self._apply(conn, row, CITIZEN, Action.APPEAL, _Move(
                    agency=parent, chain_reason="appeal", target=State.DISPATCHED,
                    values=values, reason=reason,
                    public_note=f"Banding pelapor: diteruskan ke {parent.name}"))
            return self._apply(conn, row, CITIZEN, Action.APPEAL, _Move(
                agency=self._agency(conn, TRIAGE_AGENCY), chain_reason="appeal",
                target=State.SUBMITTED, values=values, reason=reason,
                public_note="Banding pelapor: diteruskan ke admin nasional"))
        return self._command(CITIZEN, tracking_id, body)

    # -- the clock (SLA job) -------------------------------------------------------------------
    WARN_WORKING_DAYS = 1  # ticket.sla_warning goes out this many working days before
    DUE_BATCH = 500        # tickets of each kind `due` lists at most

    def warning_time(self, deadline: datetime, zone: str) -> datetime:
        """When the warning about `deadline` is due: the same local time one working day
        before it (a deadline on Monday 16:00 is warned about on Friday at 16:00), in the
        ticket's zone (WIB when a ticket has none)."""
        try:
            tz = zone_for_label(zone)
        except ValueError:
            tz = zone_for_label("WIB")
        return self.calendar.working_days_before(deadline, self.WARN_WORKING_DAYS, tz)

    def due(self, conn: Connection, now: datetime) -> dict[str, list]:
        """Tracking ids needing the clock's attention: warnings, escalations, auto-closes
        and oversight flags (read only; each is re-checked under its lock)."""
        now = now.astimezone(UTC)  # SQLite compares the stored UTC wall-clock text
        t = storage.tickets
        active = [s.value for s in ACTIVE if s != State.ON_HOLD]
        overdue = conn.execute(sa.select(t.c.tracking_id).where(
            t.c.state.in_(active), t.c.deadline.is_not(None), t.c.deadline <= now)
            .order_by(t.c.deadline).limit(self.DUE_BATCH)).scalars().all()
        # A deadline is warned about from one working day before it, so none after the end
        # of the next working day (in the zone whose day ends last) can be due yet; the exact
        # working-day check is in Python, on the few candidates with the nearest deadlines.
        horizon = max(datetime.combine(
            self.calendar.next_working_day(now.astimezone(tz).date()) + timedelta(days=1),
            time(0), tzinfo=tz) for tz in (WIB, WITA, WIT)).astimezone(UTC)
        candidates = conn.execute(sa.select(t.c.tracking_id, t.c.deadline, t.c.deadline_zone)
                                  .where(t.c.state.in_(active), t.c.deadline.is_not(None),
                                         t.c.deadline > now, t.c.deadline < horizon,
                                         sa.or_(t.c.warned_deadline.is_(None),
                                                t.c.warned_deadline != t.c.deadline))
                                  .order_by(t.c.deadline).limit(self.DUE_BATCH)).all()
        warn = [c.tracking_id for c in candidates
                if self.warning_time(as_utc(c.deadline), c.deadline_zone) <= now]
        unresolved = conn.execute(sa.select(t.c.tracking_id).where(
            t.c.state.in_([s.value for s in ACTIVE]), t.c.oversight_flagged_at.is_(None),
            t.c.submitted_at <= now - timedelta(days=UNRESOLVED_DAYS)).limit(self.DUE_BATCH)
        ).scalars().all()
        return {"overdue": list(overdue), "warn": warn, "unresolved": list(unresolved)}

    def warn(self, tracking_id: str) -> str:
        """ticket.sla_warning for the ticket's current deadline, once, from one working day
        before it; returns the clock warned about ("" when nothing was due)."""
        def body(conn, row):
            deadline = as_utc(row.deadline)
            now = self.now()
            if (row.state not in _CLOCKED or deadline is None or deadline <= now
                    or self.warning_time(deadline, row.deadline_zone) > now
                    or as_utc(row.warned_deadline) == deadline):
                return ""
            t = storage.tickets
            conn.execute(t.update().where(t.c.ticket_id == row.ticket_id)
                         .values(warned_deadline=row.deadline))
            agency = self._holder(conn, row.agency_code)
            warning = events_pb2.TicketSlaWarning(
                tracking_id=row.tracking_id, ticket_id=row.ticket_id,
                stage=_state_pb(State(row.state)), deadline=events.timestamp(deadline),
                agency=_agency_proto(agency), ticket_version=row.version, clock=row.clock,
                deadline_zone=row.deadline_zone)
            self.outbox.add(conn, events.new("ticket.sla_warning", row.tracking_id, warning,
                                             producer="routing"))
            return row.clock
        return self._command(SYSTEM, tracking_id, body)

    def expire(self, tracking_id: str) -> str:
        """The deadline passed: auto-close a followed-up ticket, escalate the rest. Returns
        what happened ("" when nothing was due any more)."""
        def body(conn, row):
            deadline = as_utc(row.deadline)
            if row.state not in _CLOCKED or deadline is None or deadline > self.now():
                return ""
            state = State(row.state)
            if state == State.FOLLOWED_UP:
                self._apply(conn, row, SYSTEM, Action.AUTO_CLOSE, _Move(
                    values={"closed_at": self.now()},
                    public_note="Selesai otomatis: tidak ada tanggapan pelapor dalam "
                                f"{AUTO_CLOSE_DAYS} hari kerja"))
                return "auto_closed"
            return self._escalate(conn, row)
        return self._command(SYSTEM, tracking_id, body)

    def _escalate(self, conn: Connection, row) -> str:
        state = State(row.state)
        current = self._holder(conn, row.agency_code)
        level = row.escalation_level + 1
        if state == State.SUBMITTED:
            # Verification is overdue: the national admin is told; the clock restarts so the
            # next reminder comes after another verification period, not every minute.
            kind, target = "verification", current
        else:
            # First to the agency's parent (atasan); if the ticket was escalated to an agency
            # before and is late again, to the national admin.
            parent = self._agency(conn, current.parent_code) if current.parent_code else None
            if parent is not None and parent.level != "triage" and \
                    not self._escalated_to_an_agency(conn, row):
                kind, target = "parent", parent
            else:
                kind, target = "national", self._agency(conn, TRIAGE_AGENCY)
        move = _Move(values={"escalation_level": level}, reason=f"deadline passed ({kind})",
                     target=state,
                     public_note=(f"Dieskalasi ke {target.name}" if kind != "verification"
                                  else "Verifikasi melewati batas waktu: diingatkan ke admin "
                                       "nasional"))
        if kind in ("parent", "national"):
            move.agency, move.chain_reason = target, "escalated"
            move.values["accepted_at"] = None
            if kind == "national":
                # The national admin decides again: back to the triage queue.
                move.target = State.SUBMITTED
        new = self._apply(conn, row, SYSTEM, Action.ESCALATE, move)
        escalated = events_pb2.TicketEscalated(
            tracking_id=row.tracking_id, ticket_id=row.ticket_id,
            stage=_state_pb(State(new.state)), level=level,
            from_agency=_agency_proto(current), to_agency=_agency_proto(target),
            reason=f"batas waktu {row.clock} terlewati", ticket_version=new.version,
            kind=kind, deadline_zone=new.deadline_zone)
        if new.deadline is not None:
            escalated.deadline.CopyFrom(events.timestamp(as_utc(new.deadline)))
        self.outbox.add(conn, events.new("ticket.escalated", row.tracking_id, escalated,
                                         producer="routing"))
        return f"escalated_{kind}"

    def flag_oversight(self, tracking_id: str) -> bool:
        """60 calendar days unresolved: flagged for the Ombudsman (oversight), once."""
        def body(conn, row):
            if row.state not in {s.value for s in ACTIVE} or row.oversight_flagged_at or \
                    as_utc(row.submitted_at) > self.now() - timedelta(days=UNRESOLVED_DAYS):
                return False
            now = self.now()
            t = storage.tickets
            version = row.version + 1
            conn.execute(t.update().where(t.c.ticket_id == row.ticket_id).values(
                oversight_flagged_at=now, version=version, updated_at=now))
            _INSERT_HISTORY.execute(conn, dict(
                ticket_id=row.ticket_id, at=now, from_state=row.state, to_state=row.state,
                actor_role=Role.SYSTEM.value, actor="system", action="flag_oversight",
                agency_code=row.agency_code, from_agency=row.agency_code,
                note="Belum selesai dalam 60 hari: ditandai untuk Ombudsman",
                reason="", version=version))
            agency = _agency_proto(self._holder(conn, row.agency_code))
            escalated = events_pb2.TicketEscalated(
                tracking_id=row.tracking_id, ticket_id=row.ticket_id,
                stage=_state_pb(State(row.state)), level=row.escalation_level,
                from_agency=agency, to_agency=agency, ticket_version=version,
                reason=f"belum selesai dalam {UNRESOLVED_DAYS} hari", kind="oversight",
                deadline_zone=row.deadline_zone)
            if row.deadline is not None:
                escalated.deadline.CopyFrom(events.timestamp(as_utc(row.deadline)))
            self.outbox.add(conn, events.new("ticket.escalated", row.tracking_id, escalated,
                                             producer="routing"))
            return True
        return self._command(SYSTEM, tracking_id, body)

    # -- history helpers ------------------------------------------------------------------------
    def _chain_codes(self, conn: Connection, row) -> set[str]:
        """Every agency that has held the ticket (and routing's first suggestion)."""
        h = storage.ticket_history
        codes = {row.agency_code, row.suggested_agency} - {""}
        for entry in conn.execute(sa.select(h.c.agency_code, h.c.from_agency).where(
                h.c.ticket_id == row.ticket_id)):
            codes |= {entry.agency_code, entry.from_agency} - {""}
        return codes

    def _escalated_to_an_agency(self, conn: Connection, row) -> bool:
        h = storage.ticket_history
        return conn.execute(sa.select(h.c.id).where(
            h.c.ticket_id == row.ticket_id, h.c.action == Action.ESCALATE.value,
            h.c.agency_code != h.c.from_agency).limit(1)).first() is not None

    def _received_at(self, conn: Connection, row) -> datetime:
        h = storage.ticket_history
        at = conn.execute(sa.select(sa.func.max(h.c.at)).where(
            h.c.ticket_id == row.ticket_id, h.c.agency_code == row.agency_code,
            h.c.from_agency != row.agency_code)).scalar()
        if at is None:
            at = conn.execute(sa.select(sa.func.min(h.c.at)).where(
                h.c.ticket_id == row.ticket_id, h.c.to_state == State.DISPATCHED.value)
            ).scalar()
        return as_utc(at) or as_utc(row.created_at)

    # -- duplicates -----------------------------------------------------------------------------
    def link_duplicate(self, principal: Principal, tracking_id: str, *,
                       master_tracking_id: str, expected_version: int = 0):
        """National admin: links a report to an open ticket it repeats (its master), on a
        suggestion or on a pair the admin found: archived as DUPLICATE, its reporter follows
        the master, and it counts as the master's support. Only what the admin may archive
        (a report still in triage) can be linked."""
        if master_tracking_id == tracking_id:
            raise Invalid({"master_tracking_id": "another ticket than the one to link"})

        def body(conn, row):
            if expected_version and expected_version != row.version:
                raise Stale(expected_version, row.version)
            try:
                step(Action.ARCHIVE, State(row.state), principal.acting_role)
            except NotAllowed:
                raise Refused(f"{row.tracking_id} is {row.state}: only a report still in triage "
                              "(SUBMITTED or ON_HOLD) can be linked to another") from None
            master = self._load(conn, master_tracking_id, lock=True)
            similarity = duplicates.pair_similarity(conn, row.tracking_id, master.tracking_id)
            return self._link(conn, row, master, principal, similarity)
        return self._command(principal, tracking_id, body)

    def link_on_arrival(self, conn: Connection, tracking_id: str, master_tracking_id: str,
                        similarity: float):
        """Routing's own link of a ticket it has just opened (in triage) to a near-identical
        open ticket; in the opening's transaction. Returns the linked ticket, or None when
        the master closed meanwhile (the caller suggests the pair instead)."""
        row = self._load(conn, tracking_id, lock=True)
        try:
            master = self._load(conn, master_tracking_id, lock=True)
            return self._link(conn, row, master, SYSTEM, similarity)
        except Refused:
            return None

    def _link(self, conn: Connection, row, master, principal: Principal, similarity: float):
        if row.duplicate_of:
            raise Refused(f"{row.tracking_id} is linked to {row.duplicate_of} already")
        if master.state not in {s.value for s in ACTIVE} or master.duplicate_of:
            raise Refused(f"{master.tracking_id} is {master.state}: only an open ticket can be "
                          "the one a report is linked to")
        t = storage.tickets
        followers = conn.execute(sa.select(sa.func.count()).where(
            t.c.duplicate_of == row.tracking_id)).scalar()
        if followers:
            raise Refused(f"{followers} report(s) are linked to {row.tracking_id}: it cannot "
                          "itself be linked to another")
        now = self.now()
        version = row.version + 1
        # The master's support counts the linked report; its version stays, so an officer's
        # expected_version is not made stale by a citizen's duplicate.
        conn.execute(t.update().where(t.c.ticket_id == master.ticket_id)
                     .values(support_count=t.c.support_count + 1))
        updated = conn.execute(t.update().where(
            t.c.ticket_id == row.ticket_id, t.c.version == row.version).values(
            state=State.ARCHIVED.value, duplicate_of=master.tracking_id, clock="none",
            deadline=None, paused_days=None, warned_deadline=None, closed_at=now,
            version=version, updated_at=now))
        if updated.rowcount != 1:
            raise Stale(row.version, row.version + 1)
        note = f"Digabung dengan laporan {master.tracking_id}"
        _INSERT_HISTORY.execute(conn, dict(
            ticket_id=row.ticket_id, at=now, from_state=row.state,
            to_state=State.ARCHIVED.value, actor_role=principal.acting_role.value,
            actor=principal.username, action="link", agency_code=row.agency_code,
            from_agency=row.agency_code, note=note,
            reason=f"DUPLICATE — kemiripan {similarity:.2f} dengan {master.tracking_id}",
            version=version))
        d = storage.duplicate_suggestions
        pair = sa.or_(sa.and_(d.c.tracking_id == row.tracking_id,
                              d.c.candidate == master.tracking_id),
                      sa.and_(d.c.tracking_id == master.tracking_id,
                              d.c.candidate == row.tracking_id))
        if not conn.execute(d.update().where(pair).values(resolution="linked")).rowcount:
            conn.execute(d.insert().values(tracking_id=row.tracking_id,
                                           candidate=master.tracking_id,
                                           similarity=similarity, created_at=now,
                                           resolution="linked"))
        holder = self._holder(conn, row.agency_code)
        changed = events_pb2.TicketStatusChanged(
            tracking_id=row.tracking_id, ticket_id=row.ticket_id,
            from_state=_state_pb(State(row.state)), to_state=_state_pb(State.ARCHIVED),
            actor_role=principal.acting_role.value, deadline_zone=row.deadline_zone,
            public_note=note, agency=_agency_proto(holder), ticket_version=version,
            action="link", confidential=row.confidential,
            reporter_note=f"Laporan Anda {row.tracking_id} sama dengan laporan "
                          f"{master.tracking_id} yang sedang ditangani; Anda akan menerima "
                          "kabar perkembangannya")
        linked = events_pb2.TicketLinked(
            tracking_id=row.tracking_id, master_tracking_id=master.tracking_id,
            similarity=similarity, ticket_version=version,
            actor_role=principal.acting_role.value,
            master_state=_state_pb(State(master.state)),
            master_agency=_agency_proto(self._holder(conn, master.agency_code)),
            master_deadline_zone=master.deadline_zone)
        if master.deadline is not None:
            linked.master_deadline.CopyFrom(events.timestamp(as_utc(master.deadline)))
        self.outbox.add(conn, events.new("ticket.status_changed", row.tracking_id, changed,
                                         producer="routing"))
        self.outbox.add(conn, events.new("ticket.linked", row.tracking_id, linked,
                                         producer="routing"))
        self.outbox.wake()
        duplicates.DUPLICATES.labels("linked").inc()
        log.info("ticket linked to an open one as its duplicate",
                 extra={"actor_role": principal.acting_role.value, "version": version,
                        "similarity": round(similarity, 3)})
        return self._load(conn, row.tracking_id, lock=False)

    def dismiss_duplicate(self, principal: Principal, tracking_id: str, *, candidate: str,
                          expected_version: int = 0):
        """National admin: the suggested pair (either side) is not a duplicate. The ticket
        stays where it is (in triage it waits for verification as any other)."""
        def body(conn, row):
            if expected_version and expected_version != row.version:
                raise Stale(expected_version, row.version)
            d = storage.duplicate_suggestions
            pair = sa.or_(sa.and_(d.c.tracking_id == tracking_id, d.c.candidate == candidate),
                          sa.and_(d.c.tracking_id == candidate, d.c.candidate == tracking_id))
            found = conn.execute(sa.select(d).where(pair)).first()
            if found is None:
                raise Refused(f"no duplicate suggestion pairs {tracking_id} with {candidate}")
            if found.resolution == "linked":
                raise Refused(f"{found.tracking_id} is linked to {found.candidate} already")
            if found.resolution == "dismissed":
                return row  # dismissed before: the same answer, nothing written twice
            conn.execute(d.update().where(pair).values(resolution="dismissed"))
            _INSERT_HISTORY.execute(conn, dict(
                ticket_id=row.ticket_id, at=self.now(), from_state=row.state,
                to_state=row.state, actor_role=principal.acting_role.value,
                actor=principal.username, action="dismiss_duplicate",
                agency_code=row.agency_code, from_agency=row.agency_code, note="",
                reason=f"bukan duplikat {candidate} (kemiripan {found.similarity:.2f})",
                version=row.version))
            return row
        return self._command(principal, tracking_id, body)

    # -- queries -------------------------------------------------------------------------------
    def agency_of(self, row) -> AgencyRef:
        with reading(self.engine) as conn:
            return self._holder(conn, row.agency_code)

    def get(self, principal: Principal, tracking_id: str, *,
            after_acting: bool = False) -> TicketView:
        """The ticket as `principal` may see it. `after_acting`: the answer to a command the
        caller just took, shown even when it moved the ticket out of their agency (they
        handed it on and may see where it went; they can do nothing more with it)."""
        with reading(self.engine) as conn:
            row = self._load(conn, tracking_id, lock=False)
            if principal.acting_role not in (Role.CITIZEN, Role.SYSTEM) and not after_acting:
                self._visible(conn, principal, row)
            return self._view(conn, row, principal)

    def _view(self, conn: Connection, row, principal: Principal) -> TicketView:
        h, m, d = storage.ticket_history, storage.ticket_messages, storage.ticket_deliveries
        history = conn.execute(sa.select(h).where(h.c.ticket_id == row.ticket_id)
                               .order_by(h.c.at, h.c.id)).all()
        messages = conn.execute(sa.select(m).where(m.c.ticket_id == row.ticket_id)
                                .order_by(m.c.at, m.c.id)).all()
        deliveries = conn.execute(sa.select(d).where(d.c.tracking_id == row.tracking_id)
                                  .order_by(d.c.at)).all()
        agencies = {}
        for code in {row.agency_code, *(e.agency_code for e in history)} - {""}:
            agencies[code] = self._holder(conn, code)
        chain = []
        for entry in history:
            if entry.agency_code and (not chain or chain[-1][0] != entry.agency_code):
                reason = _CHAIN_REASON.get(entry.action, "dispatched")
                chain.append((entry.agency_code, reason, as_utc(entry.at)))
        chain = [(agencies.get(code), reason, at) for code, reason, at in chain
                 if agencies.get(code) is not None and agencies[code].level != "triage"]
        held_elsewhere = principal.acting_role in (Role.AGENCY_ADMIN, Role.AGENCY_OFFICER) \
            and row.agency_code != principal.agency_code
        actions = [] if held_elsewhere else allowed_actions(State(row.state),
                                                             principal.acting_role)
        return TicketView(row=row, agency=agencies.get(row.agency_code), history=history,
                          messages=messages, deliveries=deliveries, chain=chain,
                          allowed=[a.value for a in actions],
                          overdue=_overdue(row, self.now()),
                          content=report_content(conn, row),
                          candidates=duplicates.suggestions_of(conn, row.tracking_id)
                          if principal.sees_everything else [])

    def audit(self, principal: Principal, tracking_id: str) -> list:
        with reading(self.engine) as conn:
            row = self._load(conn, tracking_id, lock=False)
            h = storage.ticket_history
            return conn.execute(sa.select(h).where(h.c.ticket_id == row.ticket_id)
                                .order_by(h.c.at, h.c.id)).all()

    def inbox(self, principal: Principal, *, states: list[State], overdue_only: bool,
              category: str, region_code: str, text: str, agency_code: str, offset: int,
              limit: int) -> list:
        t = storage.tickets
        now = self.now()
        with reading(self.engine) as conn:
            query = sa.select(t)
            scope = self._scope(conn, principal)
            if scope is not None:
                query = query.where(t.c.agency_code.in_(scope))
            if agency_code:
                query = query.where(t.c.agency_code == agency_code)
            query = query.where(t.c.state.in_([s.value for s in (states or ACTIVE)]))
            if overdue_only:
                query = query.where(t.c.deadline.is_not(None), t.c.deadline < now,
                                    t.c.state != State.ON_HOLD.value)
            if category:
                query = query.where(t.c.category == category)
            if region_code:
                query = query.where(sa.or_(t.c.region_code == region_code,
                                           t.c.region_code.like(f"{region_code}.%")))
            if text:
                needle = f"%{_like_escape(text.lower())}%"
                query = query.where(sa.or_(sa.func.lower(t.c.title).like(needle, escape="\\"),
                                           sa.func.lower(t.c.body).like(needle, escape="\\")))
            query = query.order_by(t.c.deadline.is_(None), t.c.deadline, t.c.tracking_id)
            rows = conn.execute(query.offset(offset).limit(limit)).all()
            names = {code: self._holder(conn, code) for code in {r.agency_code for r in rows}}
        return [(r, names.get(r.agency_code), _overdue(r, now)) for r in rows]

    # -- facts from other services ---------------------------------------------------------------
    def record_support(self, conn: Connection, tracking_id: str, count: int) -> None:
        """Intake's count (dukungan), which includes the reports linked to this one once
        intake has heard of them; never lowered, so a count that crossed a link in flight
        does not undo the link's."""
        t = storage.tickets
        conn.execute(t.update().where(t.c.tracking_id == tracking_id,
                                      t.c.support_count < count).values(support_count=count))

    def record_delivery(self, conn: Connection, outcome: events_pb2.NotificationOutcome,
                        at: datetime) -> None:
        """The delivery's latest outcome by the event's time (two per report: statements
        built once): an outcome that arrives late, or again, does not undo a newer one."""
        self.record_deliveries(conn, [(outcome, at)])

    @staticmethod
    def record_deliveries(conn: Connection,
                          outcomes: list[tuple[events_pb2.NotificationOutcome, datetime]]
                          ) -> None:
        """record_delivery of each, in order, in as few statements as db.upsert_many
        takes."""
        rows = [dict(delivery_id=outcome.delivery_id, tracking_id=outcome.tracking_id, at=at,
                     channel=outcome.channel[:16], audience=outcome.audience[:16],
                     outcome=outcome.outcome[:16], reason=outcome.reason[:200])
                for outcome, at in outcomes]
        db.upsert_many(conn, storage.ticket_deliveries, "delivery_id", rows,
                       _DELIVERY_COLUMNS, newest="at")


_DELIVERY_COLUMNS = ("tracking_id", "at", "channel", "audience", "outcome", "reason")
_CLOCKED = {State.SUBMITTED.value, State.DISPATCHED.value, State.FOLLOWED_UP.value,
            State.REPORTER_REPLIED.value}
_CHAIN_REASON = {"verify": "dispatched", "forward": "forwarded",
                 "not_our_authority": "not_our_authority", "escalate": "escalated",
                 "appeal": "appeal"}


@dataclass
class TicketView:
    row: object
    agency: AgencyRef | None
    history: list
    messages: list
    deliveries: list
    chain: list
    allowed: list[str]
    overdue: bool
    content: common_pb2.ReportContent
    # Duplicate suggestions this ticket is part of (national admin and oversight only).
    candidates: list[duplicates.Suggestion] = field(default_factory=list)


def _overdue(row, now: datetime) -> bool:
    deadline = as_utc(row.deadline)
    return row.state in _CLOCKED and deadline is not None and deadline < now


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _text(name: str, value: str, limit: int, *, required: bool = True) -> str:
    value = (value or "").strip()
    if required and not value:
        raise Invalid({name: "is required"})
    if len(value) > limit:
        raise Invalid({name: f"at most {limit} characters (got {len(value)})"})
    if "\x00" in value:
        raise Invalid({name: "must not contain NUL characters"})
    return value


def _state_pb(state: State) -> int:
    return common_pb2.TicketState.Value("TICKET_STATE_" + state.value)


def _agency_proto(agency: AgencyRef | None) -> common_pb2.Agency:
    return agency_proto(agency) if agency is not None else common_pb2.Agency()


def report_content(conn: Connection, row) -> common_pb2.ReportContent:
    """The report as the handling agency sees it (the allow-list for agency-facing events
    and views): never contacts, and no name when the reporter is anonymous."""
    content = common_pb2.ReportContent(
        kind=common_pb2.ReportKind.Value("REPORT_KIND_" + row.kind), title=row.title,
        body=row.body, region_code=row.region_code,
        region_name=storage.SqlDirectory(conn).region_name(row.region_code),
        category=row.category, anonymous=row.anonymous, confidential=row.confidential,
        reporter_name="" if row.anonymous else row.reporter_name, channel=row.channel,
        incident_date=row.incident_date, address=row.address,
        target_agency=row.target_agency,
        submitted_at=events.timestamp(as_utc(row.submitted_at)))
    if row.latitude is not None and row.longitude is not None:
        content.location.latitude = row.latitude
        content.location.longitude = row.longitude
    return content


def new_ticket_id() -> str:
    return randomness.uuid4()
