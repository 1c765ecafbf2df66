"""The consumer's handler: each event becomes contact updates and deliveries, written in one
transaction together with the event id (dedupe), so a redelivered event changes nothing."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lapor.v1 import events_pb2
from services.infra import db, events
from services.notify import payloads, store
from services.notify.store import Contact

log = logging.getLogger(__name__)

# Status changes the reporter hears about by email. DISPATCHED comes with its own
# ticket.dispatched email; REPORTER_REPLIED is the reporter's own doing.
REPORTER_STATES = {
    "SUBMITTED": "received",
    "ON_HOLD": "status",
    "FOLLOWED_UP": "status",
    "CLOSED": "status",
    "ARCHIVED": "status",
}
TRIAGE_LEVEL = "triage"
WAITING_FOR_CONTACT = "contact not yet known"


class StorageError(RuntimeError):
    """The database failed; the message goes down the consumer's retry path."""


class EventHandler:
    """Called by messaging.Consumer for each event on notify's queue."""

    def __init__(self, engine: Engine, on_new_deliveries: Callable[[], None] = lambda: None):
        self.engine = engine
        self.on_new_deliveries = on_new_deliveries

    def __call__(self, envelope: events_pb2.EventEnvelope) -> str:
        message = events.payload(envelope)
        try:
            with self.engine.begin() as conn:
                if not db.first_delivery(conn, store.CONSUMER, envelope.event_id):
                    log.info("%s already handled", envelope.type)
                    return "duplicate"
                created = self._handle(conn, envelope, message)
        except sa.exc.StatementError as exc:
            # SQLAlchemy's message lists the statement's parameters (a contact's email and
            # phone); the consumer logs what we raise, so raise it without them.
            raise StorageError(f"{envelope.type}: database error "
                               f"({type(exc.orig or exc).__name__})") from None
        if created:
            self.on_new_deliveries()
        log.info("%s handled", envelope.type, extra={"deliveries": created})
        return "processed"

    def _handle(self, conn: Connection, envelope, message) -> int:
        kind = envelope.type
        tracking_id = getattr(message, "tracking_id", "") or envelope.aggregate_id
        if kind == "reporter.registered":
            return self._registered(conn, message, tracking_id)
        if kind == "ticket.dispatched":
            return self._dispatched(conn, envelope, message, tracking_id)
        if kind == "ticket.status_changed":
            return self._status_changed(conn, envelope, message, tracking_id)
        if kind == "ticket.escalated":
            return self._escalated(conn, envelope, message, tracking_id)
        if kind == "ticket.sla_warning":
            return self._sla_warning(conn, envelope, message, tracking_id)
        return 0  # other ticket.* types are not notify's business (yet)

    # -- per event type ----------------------------------------------------------------------
    def _registered(self, conn: Connection, msg: events_pb2.ReporterRegistered,
                    tracking_id: str) -> int:
        store.save_contact(conn, Contact(
            tracking_id=tracking_id, name=msg.name.strip(), email=msg.email.strip(),
            phone=msg.phone.strip(), language=msg.language.strip().lower() or "id",
            anonymous=msg.anonymous))
        # Emails that were waiting for this contact (events arrive out of order) go now:
        # every one not yet attempted, whether or not a worker has looked at it yet. Never
        # one being sent: that one was claimed with its attempt counted and the wait cleared,
        # and waking it would hand it to a second worker.
        d = store.deliveries
        woken = conn.execute(d.update().where(
            d.c.tracking_id == tracking_id, d.c.channel == "email", d.c.status == "pending",
            sa.or_(d.c.attempts == 0, d.c.last_error == WAITING_FOR_CONTACT),
        ).values(next_attempt_at=db.utcnow())).rowcount
        return woken

    def _dispatched(self, conn: Connection, envelope, msg: events_pb2.TicketDispatched,
                    tracking_id: str) -> int:
        if not msg.agency.code:
            raise events.BadEvent("ticket.dispatched without an agency code")
        contact = store.load_contact(conn, tracking_id)
        delivery_id = str(uuid.uuid4())
        body = payloads.dispatched_webhook(envelope.type, msg, delivery_id, contact)
        self._add(conn, envelope, tracking_id, "webhook", "agency", msg.agency.code, body,
                  delivery_id)
        fields = payloads.email_fields(
            "dispatched", tracking_id, agency_name=msg.agency.name or msg.agency.code,
            deadline=payloads.when(msg, "deadline"), deadline_zone=msg.deadline_zone)
        self._add(conn, envelope, tracking_id, "email", "reporter", "reporter", fields)
        return 2

    def _status_changed(self, conn: Connection, envelope, msg: events_pb2.TicketStatusChanged,
                        tracking_id: str) -> int:
        created = 0
        to_state = payloads.state_name(msg.to_state)
        template = REPORTER_STATES.get(to_state)
        if template:
            fields = payloads.email_fields(
                template, tracking_id, agency_name=msg.agency.name,
                deadline=payloads.when(msg, "deadline"), deadline_zone=msg.deadline_zone,
                state=to_state, note=msg.public_note)
            self._add(conn, envelope, tracking_id, "email", "reporter", "reporter", fields)
            created += 1
        # The agency holding the ticket hears of changes it did not make itself (a reply, a
        # closure by the admin); DISPATCHED has its own ticket.dispatched webhook.
        if (msg.agency.code and msg.agency.level != TRIAGE_LEVEL
                and to_state not in ("", "DISPATCHED")
                and not msg.actor_role.startswith("agency")):
            delivery_id = str(uuid.uuid4())
            body = payloads.status_changed_webhook(envelope.type, msg, delivery_id)
            self._add(conn, envelope, tracking_id, "webhook", "agency", msg.agency.code, body,
                      delivery_id)
            created += 1
        return created

    def _escalated(self, conn: Connection, envelope, msg: events_pb2.TicketEscalated,
                   tracking_id: str) -> int:
        fields = payloads.email_fields(
            "escalated", tracking_id, agency_name=msg.to_agency.name or msg.to_agency.code,
            deadline=payloads.when(msg, "deadline"))
        self._add(conn, envelope, tracking_id, "email", "reporter", "reporter", fields)
        if not msg.to_agency.code:
            return 1
        delivery_id = str(uuid.uuid4())
        body = payloads.escalated_webhook(envelope.type, msg, delivery_id)
        self._add(conn, envelope, tracking_id, "webhook", "agency", msg.to_agency.code, body,
                  delivery_id)
        return 2

    def _sla_warning(self, conn: Connection, envelope, msg: events_pb2.TicketSlaWarning,
                     tracking_id: str) -> int:
        if not msg.agency.code or msg.agency.level == TRIAGE_LEVEL:
            return 0
        delivery_id = str(uuid.uuid4())
        body = payloads.sla_warning_webhook(envelope.type, msg, delivery_id)
        self._add(conn, envelope, tracking_id, "webhook", "agency", msg.agency.code, body,
                  delivery_id)
        return 1

    @staticmethod
    def _add(conn: Connection, envelope, tracking_id: str, channel: str, audience: str,
             target: str, payload: dict, delivery_id: str | None = None) -> None:
        now = db.utcnow()
        conn.execute(sa.insert(store.deliveries).values(
            delivery_id=delivery_id or str(uuid.uuid4()), tracking_id=tracking_id,
            channel=channel, audience=audience, target=target,
            trigger_event_id=envelope.event_id, trigger_type=envelope.type,
            payload=payloads.encode(payload), status="pending", attempts=0,
            next_attempt_at=now, created_at=now, updated_at=now))
