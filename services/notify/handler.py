"""The consumer's handler: each event becomes contact updates and deliveries, written in one
transaction together with the event id (dedupe), so a redelivered event changes nothing.

Who hears what (docs/webhooks.md has the agency's side):
* the reporter, on one channel (email, SMS or WhatsApp: reach.py), of every change that
  concerns them: the ticket reaching an agency, a hold with the admin's question,
  acceptance, a follow-up with the response, closure, archiving with the reason, the
  auto-close warning, escalations, the agency's messages;
* the agency holding the ticket, by signed webhook: new tickets, changes it did not make,
  the reporter's messages, deadline warnings and escalations to it;
* the national admin, by email (NOTIFY_NATIONAL_ADMIN_EMAILS) and by the webhook registered
  for ADMIN-NASIONAL: escalations that reach national level or oversight;
* followers, the reporters of reports linked to an open near-identical one (ticket.linked):
  told of the link, then of each change of that master the master's reporter is told of.
Whether there is anybody to tell (an email address, a phone and a gateway, an endpoint) is
looked up when sending; when there is none the delivery ends `skipped` and
notification.skipped says so (a reporter's notice then goes on their next channel).
contact.opted_out records a number's STOP or START on the SMS or WhatsApp line."""

from __future__ import annotations

import functools
import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lapor.v1 import events_pb2
from services.infra import db, events, randomness
from services.notify import payloads, reach, store
from services.notify.metrics import REPORTER_CHANNELS
from services.notify.store import Contact

log = logging.getLogger(__name__)

TRIAGE_LEVEL = "triage"
# The national admin's agency code in routing's directory (its triage queue); the national
# admin's webhook is the endpoint registered for it, never the default one.
NATIONAL_ADMIN_CODE = "ADMIN-NASIONAL"
WAITING_FOR_CONTACT = "contact not yet known"

REPORTER = "reporter"
AGENCY = "agency"
NATIONAL_ADMIN = "national_admin"

# ticket.status_changed: the reporter's email for each action. None: no email, because
# another event of the same change tells them (verify, forward, not-our-authority to another
# agency: ticket.dispatched; escalate: ticket.escalated) or it was their own doing.
ACTION_TEMPLATES: dict[str, str | None] = {
    "hold": "held",
    "accept": "accepted",
    "follow_up": "followed_up",
    "close": "closed",
    "confirm": "closed",
    "auto_close": "closed",
    "archive": "archived",
    "verify": None,
    "forward": None,
    "escalate": None,
    "reply": None,
    "add_info": None,
    "appeal": None,
    # Linked to an open, near-identical ticket: ticket.linked tells them (and whom they follow).
    "link": None,
}
# The master's emails its followers also get, each about their own report: not the relayed
# messages nor the auto-close warning, which are the master's reporter's alone; of the rest
# they hear the public side (a hold is "on hold", not the admin's question to that reporter).
FOLLOWER_TEMPLATES = frozenset({"dispatched", "accepted", "held", "followed_up", "closed",
                                "archived", "status", "escalated"})
# Changes the holding agency made itself, or that come to it as ticket.dispatched or
# ticket.escalated, are not sent back to it as ticket.status_changed.
_NOT_FOR_AGENCY_ACTIONS = {"escalate"}
# ticket.escalated kinds the national admin hears of (verification: the triage queue they
# hold is late; routing says "the national admin is told").
NATIONAL_KINDS = {"national", "oversight", "verification"}
# Kinds the reporter hears of: not a late verification, which is a reminder to the admin.
REPORTER_KINDS = {"", "parent", "national", "oversight"}
# One email to the reporter per change of the ticket: an escalation to the parent agency
# comes as ticket.dispatched and ticket.escalated with the same version; the first tells.
_ONE_PER_VERSION = ("ticket.dispatched", "ticket.escalated")


_INSERT_DELIVERY = db.Insert(store.deliveries)
# The deliveries an event makes, gathered while it is handled and inserted together at its
# end: on PostgreSQL one statement for the agency's webhook and the reporter's email.
_made = threading.local()
# Statements run for most events, built once (store.py says why).
_d = store.deliveries
_WAITING = (_d.c.channel.in_(REPORTER_CHANNELS), _d.c.audience == REPORTER,
            _d.c.status == "pending",
            sa.or_(_d.c.attempts == 0, _d.c.last_error == WAITING_FOR_CONTACT))
_WAKE_WAITING = db.Statement(_d.update().where(
    _d.c.tracking_id == sa.bindparam("b_tracking_id"), *_WAITING,
).values(next_attempt_at=sa.bindparam("b_now")))
# The same for the reporters a batch registered (EventHandler._save_registered).
_WAKE_WAITING_OF = db.Listed(lambda binds: _d.update().where(
    _d.c.tracking_id.in_(binds), *_WAITING).values(next_attempt_at=sa.bindparam("b_now")),
    _d.c.tracking_id.type, "t")
_FOLLOWERS = db.Statement(sa.select(store.followers.c.follower)
                          .where(store.followers.c.master == sa.bindparam("master"))
                          .order_by(store.followers.c.follower))
_TOLD = db.Statement(sa.select(_d.c.payload).where(
    _d.c.tracking_id == sa.bindparam("tracking_id"), _d.c.audience == REPORTER,
    _d.c.trigger_type.in_(_ONE_PER_VERSION)))
# The followers of several masters (EventHandler.prepare).
_FOLLOWERS_OF = db.Listed(lambda binds: sa.select(store.followers.c.master,
                                                  store.followers.c.follower)
                          .where(store.followers.c.master.in_(binds))
                          .order_by(store.followers.c.master, store.followers.c.follower),
                          store.followers.c.master.type)


def _followers_of(conn: Connection, masters: list[str]) -> dict[str, list[str]]:
    """{master: its followers in order} for each of `masters`, in one statement."""
    found: dict[str, list[str]] = {master: [] for master in masters}
    for row in _FOLLOWERS_OF.all(conn, masters):
        found[row.master].append(row.follower)
    return found


class StorageError(RuntimeError):
    """The database failed; the message goes down the consumer's retry path."""


def _reporter_text(template: str, msg: events_pb2.TicketStatusChanged) -> dict[str, str]:
    """reporter_note is written for the reporter: the admin's question (hold), the agency's
    response (follow_up), the archive reason; otherwise the public note says what happened."""
    note = msg.reporter_note or msg.public_note
    if template == "held":
        return {"question": msg.reporter_note}
    if template == "followed_up":
        return {"response": msg.reporter_note}
    if template == "archived":
        return {"reason": note}
    return {"note": note}


def _public_side(envelope) -> tuple[str, str]:
    """(state, public note) of a change of the master, as its followers hear of it."""
    msg = events.payload(envelope)
    if envelope.type == "ticket.dispatched":
        return "DISPATCHED", f"Terdisposisi ke {msg.agency.name or msg.agency.code}"
    if envelope.type == "ticket.escalated":
        target = msg.to_agency.name or msg.to_agency.code
        note = ("Belum selesai dalam 60 hari: ditandai untuk Ombudsman" if msg.kind == "oversight"
                else f"Dieskalasi ke {target}")
        return payloads.state_name(msg.stage), note
    if envelope.type == "ticket.status_changed":
        return payloads.state_name(msg.to_state), msg.public_note
    return "", ""


def _holder_is_agency(agency) -> bool:
    """An agency that gets webhooks: not the national admin's triage queue."""
    return bool(agency.code) and agency.level != TRIAGE_LEVEL \
        and agency.code != NATIONAL_ADMIN_CODE


class EventHandler:
    """Called by messaging.Consumer for each event on notify's queue."""

    def __init__(self, engine: Engine,
                 on_new_deliveries: Callable[[int], None] = lambda _count: None):
        self.engine = engine
        self.on_new_deliveries = on_new_deliveries
        # One handler per event type; other types on the queue are not notify's business.
        self.handlers: dict[str, Callable[..., int]] = {
            "reporter.registered": self._registered,
            "contact.opted_out": self._opted_out,
            "ticket.dispatched": self._dispatched,
            "ticket.status_changed": self._status_changed,
            "ticket.sla_warning": self._sla_warning,
            "ticket.escalated": self._escalated,
            "ticket.message": self._message,
            "ticket.linked": self._linked,
        }

    def prepare(self, envelopes: list[events_pb2.EventEnvelope]) -> None:
        """The consumer's read-ahead for a batch (messaging.Consumer's `prepare`), in the
        batch's transaction: handled one by one, each event read which events are new,
        its ticket's contact and its followers with a statement each (on PostgreSQL a
        round trip each). Here each is one statement for the whole batch, kept in the
        batch's memo (db.batch_memo), which the handlers read and keep up to date as they
        write; and the batch's deliveries are inserted together just before it commits."""
        if not envelopes:
            return
        with db.begin(self.engine) as conn:
            memo = db.batch_memo(conn)
            if memo is None:
                return
            ids = [envelope.event_id for envelope in envelopes]
            tickets = sorted({envelope.aggregate_id for envelope in envelopes
                              if envelope.aggregate_id})
            memo["new"] = db.first_deliveries(conn, store.CONSUMER, ids)
            memo["covered"] = set(ids)
            if tickets:
                found = store.load_contacts(conn, tickets)
                memo["contacts"] = {tid: found.get(tid) for tid in tickets}
                memo["followers"] = _followers_of(conn, tickets)

    def __call__(self, envelope: events_pb2.EventEnvelope) -> str:
        message = events.payload(envelope)
        try:
            with db.begin(self.engine) as conn:
                memo = db.batch_memo(conn)
                if not self._first_delivery(conn, memo, envelope.event_id):
                    log.info("%s already handled", envelope.type)
                    return "duplicate"
                _made.rows = []
                try:
                    created = self._handle(conn, envelope, message)
                    if memo is None:
                        db.insert_together(conn, [(_INSERT_DELIVERY, _made.rows)])
                    elif _made.rows:
                        db.hold_until_commit(conn, "deliveries", _made.rows, _write_deliveries)
                finally:
                    _made.rows = None
        except sa.exc.StatementError as exc:
            # SQLAlchemy's message lists the statement's parameters (a contact's email and
            # phone); the consumer logs what we raise, so raise it without them.
            raise StorageError(f"{envelope.type}: database error "
                               f"({type(exc.orig or exc).__name__})") from None
        if created:
            # One sending thread per delivery made, not all of them: a woken thread that
            # finds nothing due has spent a claim for nothing.
            db.after_commit(self.engine, functools.partial(self.on_new_deliveries, created))
        db.log_after_commit(self.engine, log, "%s handled", envelope.type,
                            extra={"deliveries": created})
        return "processed"

    @staticmethod
    def _first_delivery(conn: Connection, memo: dict | None, event_id: str) -> bool:
        """db.first_delivery, or what prepare() found of the event (an event twice in a
        batch is new once)."""
        if memo is None or event_id not in memo.get("covered", ()):
            return db.first_delivery(conn, store.CONSUMER, event_id)
        if event_id in memo["new"]:
            memo["new"].discard(event_id)
            return True
        return False

    def _handle(self, conn: Connection, envelope, message) -> int:
        handler = self.handlers.get(envelope.type)
        if handler is None:
            return 0
        tracking_id = getattr(message, "tracking_id", "") or envelope.aggregate_id
        return handler(conn, envelope, message, tracking_id)

    # -- per event type ----------------------------------------------------------------------
    def _registered(self, conn: Connection, envelope, msg: events_pb2.ReporterRegistered,
                    tracking_id: str) -> int:
        contact = Contact(
            tracking_id=tracking_id, name=msg.name.strip(), email=msg.email.strip(),
            phone=msg.phone.strip(), language=msg.language.strip().lower() or "id",
            anonymous=msg.anonymous, channel=msg.channel.strip().lower())
        memo = db.batch_memo(conn)
        if memo is not None and "contacts" in memo:
            # In a batch the later events read the contact from the memo; it is written, and
            # what waited for it woken, for all the batch's reporters at once just before
            # the batch commits (_save_registered): on PostgreSQL a round trip or two a
            # batch instead of two an event.
            memo["contacts"][tracking_id] = contact
            db.hold_until_commit(conn, "registered", [contact], self._save_registered)
            return 0
        store.save_contact(conn, contact)
        _insert_deliveries(conn)  # the batch's so far, which the next statement wakes
        # Notices that were waiting for this contact (events arrive out of order) go now:
        # every one not yet attempted, whether or not a worker has looked at it yet. Never
        # one being sent: that one was claimed with its attempt counted and the wait cleared,
        # and waking it would hand it to a second worker.
        return _WAKE_WAITING.execute(conn, {"b_tracking_id": tracking_id,
                                             "b_now": db.utcnow()})

    def _save_registered(self, conn: Connection, contacts: list[Contact]) -> None:
        """The batch's reporter.registered, as _registered writes one outside a batch: the
        contacts saved (of two for one ticket the later), then the notices that waited for
        them woken, the count handed to the sending threads once the batch has committed."""
        store.save_contacts(conn, contacts)
        woken = _WAKE_WAITING_OF.execute(conn, sorted({c.tracking_id for c in contacts}),
                                         {"b_now": db.utcnow()})
        if woken:
            db.after_commit(self.engine, functools.partial(self.on_new_deliveries, woken))

    def _opted_out(self, conn: Connection, envelope, msg: events_pb2.ContactOptedOut,
                   tracking_id: str) -> int:
        """STOP (or START) from a number on the SMS or WhatsApp line: recorded as of the
        event's time; deliveries check it when they are sent."""
        channel = msg.channel.strip().lower()
        if channel not in reach.PHONE_CHANNELS:
            raise events.BadEvent(f"contact.opted_out for channel {channel!r}: expected "
                                  f"sms or whatsapp")
        if not store.e164(msg.phone):
            raise events.BadEvent("contact.opted_out without a phone number")
        changed_at = (envelope.occurred_at.ToDatetime(tzinfo=UTC)
                      if envelope.HasField("occurred_at") else db.utcnow())
        store.set_opt_out(conn, channel, msg.phone, msg.opted_out, changed_at)
        return 0

    def _dispatched(self, conn: Connection, envelope, msg: events_pb2.TicketDispatched,
                    tracking_id: str) -> int:
        """A ticket reached an agency: first dispatch, verification, pelimpahan after not our
        authority, a forward to a unit, an appeal, an escalation to the parent."""
        if not msg.agency.code:
            raise events.BadEvent("ticket.dispatched without an agency code")
        contact = _load_contact(conn, tracking_id)
        created = self._webhook(conn, envelope, tracking_id, AGENCY, msg.agency.code,
                                lambda delivery_id: payloads.dispatched_webhook(
                                    envelope.type, msg, delivery_id, contact))
        return created + self._reporter_email(conn, envelope, tracking_id, payloads.email_fields(
            "dispatched", tracking_id, agency_name=msg.agency.name or msg.agency.code,
            deadline=payloads.when(msg, "deadline"), deadline_zone=msg.deadline_zone,
            ticket_version=msg.ticket_version), channel=reach.first_channel(contact))

    def _status_changed(self, conn: Connection, envelope, msg: events_pb2.TicketStatusChanged,
                        tracking_id: str) -> int:
        created = 0
        to_state = payloads.state_name(msg.to_state)
        template = self._template_for(msg.action, to_state)
        if template:
            created += self._reporter_email(conn, envelope, tracking_id, payloads.email_fields(
                template, tracking_id, deadline=payloads.when(msg, "deadline"),
                deadline_zone=msg.deadline_zone, agency_name=msg.agency.name,
                state=to_state, **_reporter_text(template, msg)))
        # The agency holding the ticket hears of changes it did not make itself (a reply, a
        # closure by the admin or the clock); DISPATCHED has its own ticket.dispatched.
        if (_holder_is_agency(msg.agency) and to_state not in ("", "DISPATCHED")
                and not msg.actor_role.startswith("agency")
                and msg.action not in _NOT_FOR_AGENCY_ACTIONS):
            created += self._webhook(conn, envelope, tracking_id, AGENCY, msg.agency.code,
                                     lambda delivery_id: payloads.status_changed_webhook(
                                         envelope.type, msg, delivery_id))
        return created

    @staticmethod
    def _template_for(action: str, to_state: str) -> str | None:
        if action in ACTION_TEMPLATES:
            return ACTION_TEMPLATES[action]
        if action == "not_our_authority":
            # To another agency: ticket.dispatched names it. Back to triage: say so.
            return None if to_state == "DISPATCHED" else "status"
        # A new report in triage (no action, or one routing names later), or an action this
        # release does not know: the state and its note, rather than silence.
        if to_state == "SUBMITTED" and action in ("", "submit"):
            return "received"
        if to_state in ("", "DISPATCHED", "REPORTER_REPLIED"):
            return None
        return "status"

    def _sla_warning(self, conn: Connection, envelope, msg: events_pb2.TicketSlaWarning,
                     tracking_id: str) -> int:
        created = 0
        if msg.clock == "auto_close":
            # The reporter has a working day left to reply before the ticket closes.
            created += self._reporter_email(conn, envelope, tracking_id, payloads.email_fields(
                "auto_close_warning", tracking_id, agency_name=msg.agency.name,
                deadline=payloads.when(msg, "deadline"), deadline_zone=msg.deadline_zone))
        if _holder_is_agency(msg.agency):
            created += self._webhook(conn, envelope, tracking_id, AGENCY, msg.agency.code,
                                     lambda delivery_id: payloads.sla_warning_webhook(
                                         envelope.type, msg, delivery_id))
        return created

    def _escalated(self, conn: Connection, envelope, msg: events_pb2.TicketEscalated,
                   tracking_id: str) -> int:
        created = 0
        deadline = payloads.when(msg, "deadline")
        if msg.kind in REPORTER_KINDS:
            created += self._reporter_email(conn, envelope, tracking_id, payloads.email_fields(
                "escalated", tracking_id, agency_name=msg.to_agency.name or msg.to_agency.code,
                kind=msg.kind or "parent", deadline=deadline, deadline_zone=msg.deadline_zone,
                ticket_version=msg.ticket_version))
        if _holder_is_agency(msg.to_agency):
            created += self._webhook(conn, envelope, tracking_id, AGENCY, msg.to_agency.code,
                                     lambda delivery_id: payloads.escalated_webhook(
                                         envelope.type, msg, delivery_id))
        if msg.kind in NATIONAL_KINDS:
            # Only what the admin needs to find the ticket: no report content, no contact.
            self._add(conn, envelope, tracking_id, "email", NATIONAL_ADMIN, NATIONAL_ADMIN,
                      payloads.email_fields(
                          "national_escalated", tracking_id, ticket_id=msg.ticket_id,
                          kind=msg.kind, stage=payloads.state_name(msg.stage),
                          level=int(msg.level), from_agency=msg.from_agency.name
                          or msg.from_agency.code, to_agency=msg.to_agency.name
                          or msg.to_agency.code, deadline=deadline,
                          deadline_zone=msg.deadline_zone, reason=msg.reason))
            created += 1 + self._webhook(conn, envelope, tracking_id, NATIONAL_ADMIN,
                                         NATIONAL_ADMIN_CODE,
                                         lambda delivery_id: payloads.escalated_webhook(
                                             envelope.type, msg, delivery_id))
        return created

    def _message(self, conn: Connection, envelope, msg: events_pb2.TicketMessage,
                 tracking_id: str) -> int:
        """A message relayed through the platform (the agency never learns who an anonymous
        reporter is, and no agency learns a reporter's address)."""
        if msg.direction == "to_reporter":
            return self._reporter_email(conn, envelope, tracking_id, payloads.email_fields(
                "message", tracking_id, agency_name=msg.agency.name or msg.agency.code,
                message=msg.text))
        if msg.direction == "to_agency":
            if not _holder_is_agency(msg.agency):
                return 0  # held in triage: the national admin reads it on the ticket
            return self._webhook(conn, envelope, tracking_id, AGENCY, msg.agency.code,
                                 lambda delivery_id: payloads.message_webhook(
                                     envelope.type, msg, delivery_id))
        raise events.BadEvent(f"ticket.message with direction {msg.direction!r}")

    def _linked(self, conn: Connection, envelope, msg: events_pb2.TicketLinked,
                tracking_id: str) -> int:
        """The report was linked to an open, near-identical one (its master): its reporter
        follows the master from now on, and hears so first."""
        if not msg.master_tracking_id or msg.master_tracking_id == tracking_id:
            raise events.BadEvent("ticket.linked without another ticket to follow")
        f = store.followers
        if conn.execute(sa.select(f.c.follower).where(
                f.c.master == msg.master_tracking_id, f.c.follower == tracking_id)).first() \
                is None:
            conn.execute(f.insert().values(master=msg.master_tracking_id, follower=tracking_id,
                                           created_at=db.utcnow()))
            known = _followers_read_ahead(conn, msg.master_tracking_id)
            if known is not None:
                known.append(tracking_id)
                known.sort()
        return self._reporter_email(conn, envelope, tracking_id, payloads.email_fields(
            "linked", tracking_id, master_tracking_id=msg.master_tracking_id,
            state=payloads.state_name(msg.master_state), agency_name=msg.master_agency.name,
            deadline=payloads.when(msg, "master_deadline"),
            deadline_zone=msg.master_deadline_zone))

    # -- deliveries ----------------------------------------------------------------------------
    def _reporter_email(self, conn: Connection, envelope, tracking_id: str,
                        fields: dict, channel: str = "") -> int:
        """The reporter's notice of the event (and each follower's); `channel` when the
        caller has read the contact in this transaction already (_channel_for)."""
        version = fields.get("ticket_version") or 0
        # Version 1 is the ticket as opened: only its first dispatch has it (an escalation
        # changes the ticket), so no other event of that change can have told the reporter.
        if version > 1 and envelope.type in _ONE_PER_VERSION and \
                self._reporter_told(conn, tracking_id, version):
            return 0
        self._add(conn, envelope, tracking_id, channel or self._channel_for(conn, tracking_id),
                  REPORTER, REPORTER, fields)
        return 1 + self._follower_emails(conn, envelope, tracking_id, fields)

    @staticmethod
    def _channel_for(conn: Connection, tracking_id: str) -> str:
        """The reporter's channel as far as notify knows now; the worker settles it when the
        notice is first sent (the contact may come after the event)."""
        return reach.first_channel(_load_contact(conn, tracking_id))

    def _follower_emails(self, conn: Connection, envelope, master: str, fields: dict) -> int:
        """The master's reporter is emailed: so is each follower, about their own report
        (their contact, their language, their tracking id), with only what the public may
        see of the change: never the text written for the master's reporter alone."""
        if fields["template"] not in FOLLOWER_TEMPLATES:
            return 0
        known = _followers_read_ahead(conn, master)
        followers = list(known) if known is not None else [
            row.follower for row in _FOLLOWERS.all(conn, {"master": master})]
        if not followers:
            return 0
        state, note = _public_side(envelope)
        for follower in followers:
            update = payloads.email_fields(
                "following", follower, master_tracking_id=master, state=state, note=note,
                agency_name=fields.get("agency_name") or "")
            update["deadline"], update["deadline_zone"] = (fields.get("deadline"),
                                                           fields.get("deadline_zone"))
            # One delivery per follower and event: keyed by a trigger id derived from both,
            # the same on every redelivery of the event.
            self._add(conn, envelope, follower, self._channel_for(conn, follower), REPORTER,
                      REPORTER, update,
                      trigger_event_id=str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                      f"{envelope.event_id}/{follower}")))
        return len(followers)

    @staticmethod
    def _reporter_told(conn: Connection, tracking_id: str, version: int) -> bool:
        """Whether another event of this change of the ticket already emailed the reporter."""
        _insert_deliveries(conn)  # the batch's so far: one of them may have told
        stored = _TOLD.all(conn, {"tracking_id": tracking_id})
        return any(json.loads(row.payload).get("ticket_version") == version for row in stored)

    def _webhook(self, conn: Connection, envelope, tracking_id: str, audience: str,
                 target: str, body: Callable[[str], dict]) -> int:
        delivery_id = randomness.uuid4()
        self._add(conn, envelope, tracking_id, "webhook", audience, target, body(delivery_id),
                  delivery_id)
        return 1

    @staticmethod
    def _add(conn: Connection, envelope, tracking_id: str, channel: str, audience: str,
             target: str, payload: dict, delivery_id: str | None = None,
             trigger_event_id: str | None = None) -> None:
        now = db.utcnow()
        row = dict(
            delivery_id=delivery_id or randomness.uuid4(), tracking_id=tracking_id,
            channel=channel, audience=audience, target=target,
            trigger_event_id=trigger_event_id or envelope.event_id, trigger_type=envelope.type,
            payload=payloads.encode(payload), status="pending", attempts=0,
            next_attempt_at=now, created_at=now, updated_at=now)
        _made.rows.append(row)  # inserted at the end of the event's handling (__call__)


def _load_contact(conn: Connection, tracking_id: str) -> Contact | None:
    """store.load_contact, or the contact prepare() read for the batch (None: none yet)."""
    memo = db.batch_memo(conn)
    known = memo.get("contacts") if memo else None
    if known is not None and tracking_id in known:
        return known[tracking_id]
    return store.load_contact(conn, tracking_id)


def _followers_read_ahead(conn: Connection, master: str) -> list[str] | None:
    """The master's followers as prepare() read them for the batch (the list itself, which
    a link made in the batch extends); None when they were not read ahead."""
    memo = db.batch_memo(conn)
    return memo.get("followers", {}).get(master) if memo else None


def _insert_deliveries(conn: Connection) -> None:
    """Inserts the deliveries the batch's events have made so far (a statement that reads
    or wakes deliveries must see them); the batch's commit writes the rest."""
    db.write_held(conn, "deliveries", _write_deliveries)


def _write_deliveries(conn: Connection, rows: list[dict]) -> None:
    db.insert_together(conn, [(_INSERT_DELIVERY, rows)])
