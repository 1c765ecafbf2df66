"""Routing's event handling: a submitted report becomes a ticket, dispatched to an agency
or queued for the national admin, with its first working-day deadline."""

from __future__ import annotations

import json
import logging
from datetime import UTC

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.engine import Connection, Engine

from lapor.v1 import common_pb2, events_pb2
from services.infra import db, events, randomness
from services.infra.db import first_delivery, utcnow
from services.infra.outbox import Outbox
from services.routing import storage
from services.routing.rules import (
    AUTO_DISPATCH_CONFIDENCE,
    TRIAGE_AGENCY,
    AgencyRef,
    Decision,
    Draft,
    decide,
    valid_region_code,
)
from services.routing.tickets import duplicates
from services.routing.workdays import WorkCalendar, timezone_for_region, zone_label

log = logging.getLogger(__name__)

CONSUMER = "routing"
NATIONAL_ZONE_REGION = "31"  # national bodies keep Jakarta's office hours (WIB)
VERIFY_WORKING_DAYS = 3
FOLLOW_UP_WORKING_DAYS = 5

TICKETS_CREATED = Counter("lapor_tickets_created_total", "Tickets created from reports",
                          ["outcome"])
for _outcome in ("dispatched", "triage"):
    TICKETS_CREATED.labels(_outcome)

State = common_pb2.TicketState


# Built once: SQLAlchemy walks a statement built anew to find its cached compilation, which
# cost a ticket's creation as much as running the statements (docs/performance.md).
_INSERT_TICKET = db.Insert(storage.tickets)
_INSERT_HISTORY = db.Insert(storage.ticket_history)
_TICKET_OF_REPORT = db.Statement(sa.select(storage.tickets.c.ticket_id).where(
    storage.tickets.c.tracking_id == sa.bindparam("tracking_id")))
_TICKETED = db.Listed(lambda binds: sa.select(storage.tickets.c.tracking_id).where(
    storage.tickets.c.tracking_id.in_(binds)), storage.tickets.c.tracking_id.type)
# Every audit-trail row of a new ticket names every column: an executemany takes its
# columns from the first row and would drop a later row's reason.
_HISTORY_ROW = dict(from_state="", agency_code="", note="", reason="")


def state_name(value: int) -> str:
    return State.Name(value).removeprefix("TICKET_STATE_")


def agency_proto(agency: AgencyRef) -> common_pb2.Agency:
    return common_pb2.Agency(code=agency.code, name=agency.name, level=agency.level,
                             region_code=agency.region_code, parent_code=agency.parent_code)


def clock_zone(agency: AgencyRef, report_region: str):
    """Deadlines end at close of business where the agency sits."""
    national = agency.level == "triage" or not agency.region_code
    candidates = [] if national else [agency.region_code, report_region]
    for region in [*filter(None, candidates), NATIONAL_ZONE_REGION]:
        try:
            return timezone_for_region(region)
        except ValueError:
            continue  # a region code from outside the official list: fall back to WIB
    raise AssertionError("unreachable: the national zone is always known")


class Workflow:
    """Routing's consumer: reports become tickets; the public's support and notify's
    delivery outcomes are recorded on them."""

    def __init__(self, engine: Engine, outbox: Outbox, calendar: WorkCalendar, tickets=None,
                 duplicates_finder: duplicates.Duplicates | None = None, *, classifier=None,
                 threshold: float = AUTO_DISPATCH_CONFIDENCE):
        self.engine = engine
        self.outbox = outbox
        self.calendar = calendar
        self.tickets = tickets
        self.classifier = classifier
        self.threshold = threshold
        # Linking needs the ticket commands; without them (some tests) nothing is compared.
        self.duplicates = duplicates_finder or duplicates.Duplicates()
        # The tickets' clock (injectable), so deadlines of new tickets follow it too.
        self.now = tickets.now if tickets is not None else utcnow
        # One handler per event type; messaging.QUEUES["routing"] binds each of them.
        self.handlers = {
            "report.submitted": self._report_submitted,
            "report.updated": self._report_updated,
            "report.supported": self._report_supported,
            "notification.delivered": self._notification,
            "notification.failed": self._notification,
            "notification.skipped": self._notification,
        }

    def prepare(self, envelopes: list[events_pb2.EventEnvelope]) -> None:
        """The consumer's read-ahead for a batch (messaging.Consumer's `prepare`): which of
        its new reports have a ticket already, in one statement, where each report.submitted
        asked on its own (on PostgreSQL a round trip each). Kept in the batch's memo;
        _report_submitted adds the tickets it opens, for a report submitted twice in it."""
        reports = sorted({e.aggregate_id for e in envelopes
                          if e.type == "report.submitted" and e.aggregate_id})
        if not reports:
            return
        with db.begin(self.engine) as conn:
            memo = db.batch_memo(conn)
            if memo is not None:
                memo["asked"] = set(reports)
                memo["ticketed"] = {row.tracking_id for row in _TICKETED.all(conn, reports)}

    def handle(self, envelope: events_pb2.EventEnvelope) -> str:
        """Consumer entry point: returns "processed" or "duplicate"; raises to retry."""
        handler = self.handlers.get(envelope.type)
        if handler is None:
            raise events.BadEvent(f"routing does not handle {envelope.type}")
        outcome = handler(envelope, events.payload(envelope))
        if handler != self._notification:  # the one handler that never adds an event
            db.after_commit(self.engine, self.outbox.wake)
        return outcome

    def _report_submitted(self, envelope, payload: events_pb2.ReportSubmitted) -> str:
        report = payload.report
        if not payload.tracking_id or not valid_region_code(report.region_code):
            raise events.BadEvent("report.submitted without tracking id or valid region code")
        with db.begin(self.engine) as conn:
            # No dedupe row: a report has one ticket (tickets.tracking_id is unique), so the
            # ticket is what says the event was handled, under any event id and for good.
            # Two replicas handling it at once: one insert fails on the key, and its retry
            # finds the ticket.
            memo = db.batch_memo(conn)
            if memo is not None and payload.tracking_id in memo.get("asked", ()):
                ticketed = payload.tracking_id in memo["ticketed"]
            else:
                ticketed = _TICKET_OF_REPORT.first(
                    conn, {"tracking_id": payload.tracking_id}) is not None
            if ticketed:
                log.info("ticket already exists for this report; nothing to do")
                return "duplicate"
            directory = storage.SqlDirectory(conn)
            decision = decide(Draft(report.title, report.body, report.region_code,
                                    report.category, report.target_agency), directory,
                              self.classifier.predict(report.title, report.body),
                              threshold=self.threshold)
            verdict, decision = self._screen_duplicates(conn, payload, decision, directory)
            region_name = directory.region_name(report.region_code)
            self._open_ticket(conn, payload, decision, region_name)
            if memo is not None and "ticketed" in memo:
                memo["ticketed"].add(payload.tracking_id)
            self._settle_duplicates(conn, payload.tracking_id, verdict)
        created = TICKETS_CREATED.labels("dispatched" if decision.auto_dispatch else "triage")
        db.after_commit(self.engine, lambda: created.inc())
        db.log_after_commit(self.engine, log, "ticket opened: %s to %s",
                            "dispatched" if decision.auto_dispatch else "triage",
                            decision.agency.code, extra={"category": decision.category,
                                                         "confidence": decision.confidence})
        return "processed"

    def _screen_duplicates(self, conn: Connection, payload: events_pb2.ReportSubmitted,
                           decision: Decision, directory: storage.SqlDirectory):
        """Whether the new report repeats an open ticket (docs/duplicates.md); if it may,
        it goes to the triage queue rather than to an agency."""
        if self.tickets is None:
            return duplicates.Verdict(), decision
        report = payload.report
        submitted_at = (report.submitted_at.ToDatetime(tzinfo=UTC)
                        if report.HasField("submitted_at") else self.now())
        verdict = self.duplicates.find(
            conn, payload.tracking_id, title=report.title, body=report.body,
            address=report.address, region_code=report.region_code,
            category=decision.category, submitted_at=submitted_at)
        triage = directory.agency(TRIAGE_AGENCY) or AgencyRef(
            TRIAGE_AGENCY, "Admin Nasional SP4N-LAPOR!", "triage")
        return verdict, duplicates.hold_for_admin(decision, verdict, triage)

    def _settle_duplicates(self, conn: Connection, tracking_id: str,
                           verdict: duplicates.Verdict) -> None:
        """After the ticket is opened: linked to its master, or its near matches stored for
        the national admin (also when the master closed in the meantime)."""
        if verdict.master is not None:
            master = verdict.master
            if self.tickets.link_on_arrival(conn, tracking_id, master.tracking_id,
                                            master.similarity) is not None:
                return
            verdict = duplicates.Verdict(suggestions=(master,))
        if verdict.suggestions:
            self.duplicates.suggest(conn, tracking_id, verdict.suggestions, self.now())

    def _report_supported(self, envelope, payload: events_pb2.ReportSupported) -> str:
        with db.begin(self.engine) as conn:
            if not first_delivery(conn, CONSUMER, envelope.event_id):
                return "duplicate"
            self.tickets.record_support(conn, payload.tracking_id, payload.count)
        return "processed"

    def _notification(self, envelope, payload: events_pb2.NotificationOutcome) -> str:
        # Not deduplicated by event id (two such events per report): the delivery's row is
        # written by its id and the newer outcome by the event's time wins, so an event
        # handled again, or late, changes nothing.
        at = envelope.occurred_at.ToDatetime(tzinfo=UTC)
        with db.begin(self.engine) as conn:
            memo = db.batch_memo(conn)
            if memo is None:
                self.tickets.record_delivery(conn, payload, at)
            else:
                # Nothing in the batch reads these rows: the batch's outcomes are written
                # together just before it commits (on PostgreSQL one statement, not one
                # round trip each).
                db.hold_until_commit(conn, "delivery_outcomes", [(payload, at)],
                                     self.tickets.record_deliveries)
        return "processed"

    def _open_ticket(self, conn: Connection, payload: events_pb2.ReportSubmitted,
                     decision: Decision, region_name: str) -> None:
        report = payload.report
        now = self.now()
        submitted_at = (report.submitted_at.ToDatetime(tzinfo=UTC)
                        if report.HasField("submitted_at") else now)
        tz = clock_zone(decision.agency, report.region_code)
        if decision.auto_dispatch:
            state, days, clock_start = State.TICKET_STATE_DISPATCHED, FOLLOW_UP_WORKING_DAYS, now
        else:
            # The verification clock runs from submission, however long the queue was.
            state, days, clock_start = State.TICKET_STATE_SUBMITTED, VERIFY_WORKING_DAYS, \
                submitted_at
        deadline = self.calendar.add_working_days(clock_start, days, tz)
        ticket_id = randomness.uuid4()
        located = report.HasField("location")
        ticket = dict(
            ticket_id=ticket_id, tracking_id=payload.tracking_id, state=state_name(state),
            agency_code=decision.agency.code, category=decision.category,
            confidence=decision.confidence, decision=decision.explanation,
            subcategory=decision.subcategory, model_version=decision.model_version,
            decision_detail=json.dumps(decision.detail(), ensure_ascii=False),
            kind=common_pb2.ReportKind.Name(report.kind).removeprefix("REPORT_KIND_"),
            title=report.title, body=report.body, region_code=report.region_code,
            anonymous=report.anonymous, confidential=report.confidential,
            reporter_name="" if report.anonymous else report.reporter_name,
            address=report.address, incident_date=report.incident_date,
            latitude=report.location.latitude if located else None,
            longitude=report.location.longitude if located else None,
            channel=report.channel or "web", target_agency=report.target_agency,
            suggested_agency=decision.suggested.code if decision.suggested else "",
            clock="respond" if decision.auto_dispatch else "verify", complexity="SIMPLE",
            # In UTC: SQLite keeps a datetime's wall-clock time and drops its offset, so a
            # 16:00 WIB deadline would read back as 16:00 UTC (23:00 WIB).
            submitted_at=submitted_at, deadline=deadline.astimezone(UTC),
            deadline_zone=zone_label(tz),
            created_at=now, updated_at=now, version=1)
        history = [dict(at=submitted_at, from_state="", to_state="SUBMITTED", actor_role="citizen",
                        actor="citizen", action="submit", agency_code="",
                        note="Laporan diterima", version=1)]
        if decision.auto_dispatch:
            history.append(dict(at=now, from_state="SUBMITTED", to_state="DISPATCHED",
                                actor_role="system", actor="system", action="dispatch",
                                agency_code=decision.agency.code, version=1,
                                note=f"Terdisposisi ke {decision.agency.name}",
                                reason=decision.explanation))
        else:
            history[0]["agency_code"] = decision.agency.code
            history[0]["reason"] = decision.explanation
        history = [dict(_HISTORY_ROW, **h, ticket_id=ticket_id) for h in history]

        content = common_pb2.ReportContent()
        content.CopyFrom(report)
        content.region_name = region_name
        if report.anonymous:
            content.reporter_name = ""
        if decision.auto_dispatch:
            dispatched = events_pb2.TicketDispatched(
                tracking_id=payload.tracking_id, ticket_id=ticket_id,
                agency=agency_proto(decision.agency), deadline=events.timestamp(deadline),
                deadline_zone=zone_label(tz), working_days=days, category=decision.category,
                confidence=decision.confidence, decision=decision.explanation, report=content,
                actor_role="system", ticket_version=1, subcategory=decision.subcategory)
            event = events.new("ticket.dispatched", payload.tracking_id, dispatched,
                               producer="routing")
        else:
            changed = events_pb2.TicketStatusChanged(
                tracking_id=payload.tracking_id, ticket_id=ticket_id,
                from_state=State.TICKET_STATE_UNSPECIFIED, to_state=state, actor_role="system",
                deadline=events.timestamp(deadline), deadline_zone=zone_label(tz),
                public_note="Laporan menunggu verifikasi admin nasional",
                agency=agency_proto(decision.agency), ticket_version=1)
            event = events.new("ticket.status_changed", payload.tracking_id, changed,
                               producer="routing")
        # The ticket, its history and its event in one statement on PostgreSQL.
        db.insert_together(conn, [(_INSERT_TICKET, ticket), (_INSERT_HISTORY, history),
                                  self.outbox.insert_of(self.outbox.rows((event,)))])

    def _report_updated(self, envelope, payload: events_pb2.ReportUpdated) -> str:
        with db.begin(self.engine) as conn:
            if not first_delivery(conn, CONSUMER, envelope.event_id):
                return "duplicate"
            ticket = conn.execute(sa.select(storage.tickets).where(
                storage.tickets.c.tracking_id == payload.tracking_id)).first()
            if ticket is None:
                # The report.submitted it follows has not been handled yet: retry later.
                raise LookupError("update for a report routing has not seen yet")
            at = payload.at.ToDatetime(tzinfo=UTC) if payload.HasField("at") else self.now()
            _INSERT_HISTORY.execute(conn, dict(
                ticket_id=ticket.ticket_id, at=at, from_state=ticket.state,
                to_state=ticket.state, actor_role="citizen", actor="citizen", action="update",
                agency_code=ticket.agency_code, from_agency=ticket.agency_code,
                note="Pelapor menambahkan informasi", version=ticket.version))
        return "processed"

