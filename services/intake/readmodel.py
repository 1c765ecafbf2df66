"""The citizen-facing status: intake mirrors routing's ticket events (and notify's delivery
outcomes, shown to the reporter only) into its own tables."""

from __future__ import annotations

import functools
import logging
from datetime import UTC

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Engine

from lapor.v1 import common_pb2
from services.infra import db, events
from services.infra.db import first_delivery
from services.intake import storage

log = logging.getLogger(__name__)
CONSUMER = "intake"

CHANNEL_NAMES = {"email": "email", "sms": "SMS", "whatsapp": "WhatsApp",
                 "webhook": "sistem instansi"}


def _state(value: int) -> str:
    return common_pb2.TicketState.Name(value).removeprefix("TICKET_STATE_")


# Statements built once, values bound when run: building them per event cost more than
# running them (docs/performance.md).
_KNOWN = db.Statement(sa.select(storage.reports.c.tracking_id).where(
    storage.reports.c.tracking_id == sa.bindparam("tracking_id")))
_ENTRY_COLUMNS = ("tracking_id", "at", "status", "note", "agency_name", "private",
                  "private_note", "source_event_id")
_ENTRY_DEFAULTS = {"note": "", "agency_name": "", "private": False, "private_note": ""}


def _entry_once(insert) -> db.Statement:
    """The timeline entry an event makes, written only for a report intake has and only
    once for the event (the entry's source event is unique): INSERT … SELECT … WHERE EXISTS
    … ON CONFLICT DO NOTHING, whose count says whether it was written."""
    t, r = storage.timeline, storage.reports
    values = sa.select(*(sa.bindparam(name, type_=t.c[name].type) for name in _ENTRY_COLUMNS)
                       ).where(sa.exists().where(r.c.tracking_id == sa.bindparam("tracking_id")))
    return db.Statement(insert(t).from_select(list(_ENTRY_COLUMNS), values)
                        .on_conflict_do_nothing(index_elements=["source_event_id"]))


_ENTRY_ONCE = {"postgresql": _entry_once(postgresql.insert),
               "sqlite": _entry_once(sqlite_dialect.insert)}
# A batch's entries on PostgreSQL: _ENTRY_ONCE for each row of the arrays, one statement.
_ENTRIES_ONCE = db.Statement(sa.text(
    "INSERT INTO report_timeline (" + ", ".join(_ENTRY_COLUMNS) + ") "
    "SELECT e.* FROM unnest(CAST(:tracking_id AS VARCHAR[]), "
    "CAST(:at AS TIMESTAMP WITH TIME ZONE[]), CAST(:status AS VARCHAR[]), "
    "CAST(:note AS TEXT[]), CAST(:agency_name AS VARCHAR[]), CAST(:private AS BOOLEAN[]), "
    "CAST(:private_note AS TEXT[]), CAST(:source_event_id AS VARCHAR[])) "
    "AS e(" + ", ".join(_ENTRY_COLUMNS) + ") "
    "WHERE EXISTS (SELECT 1 FROM reports r WHERE r.tracking_id = e.tracking_id) "
    "ON CONFLICT (source_event_id) DO NOTHING"))


def _write_entries(conn, rows: list[dict]) -> int:
    """The entries of several events, each as _ENTRY_ONCE would write it; how many were
    written."""
    if db.is_postgres(conn):
        return _ENTRIES_ONCE.execute(conn, {name: [row[name] for row in rows]
                                            for name in _ENTRY_COLUMNS})
    return _ENTRY_ONCE["sqlite"].execute(conn, rows)  # executemany: no round trip on SQLite


@functools.cache
def _status_update(columns: tuple[str, ...], versioned: bool) -> db.Statement:
    """The status update setting `columns` (bound as b_<column>), applied only when the
    event is newer than what is shown.

    Newer means a higher ticket version (routing numbers every change), decided in the
    UPDATE itself, so events arriving out of order, two replicas applying events of one
    ticket at once, or routing's clock running behind intake's never roll a status back.
    """
    r = storage.reports
    at = sa.bindparam("b_at")
    update = r.update().where(r.c.tracking_id == sa.bindparam("b_tracking_id")).values(
        **{name: sa.bindparam(f"b_{name}") for name in columns}, status_at=at, updated_at=at)
    if versioned:
        return db.Statement(update.where(r.c.version < sa.bindparam("b_version")).values(
            version=sa.bindparam("b_version")))
    # An event from before ticket versions: the old rule, by time, until the first
    # versioned event has been applied.
    return db.Statement(update.where(r.c.version == 0, r.c.status_at <= at))


class ReadModel:
    def __init__(self, engine: Engine):
        self.engine = engine

    def handle(self, envelope) -> str:
        payload = events.payload(envelope)
        occurred = envelope.occurred_at.ToDatetime(tzinfo=UTC)
        linked = envelope.type == "ticket.linked"
        change, entry = ({}, None) if linked else self._interpret(envelope.type, payload)
        if not linked and not change and entry is None:
            # Nothing anybody sees here changes (an agency's webhook went out, a notice was
            # skipped): nothing to write, so nothing to remember either. Half of the
            # notification outcomes of a report are such.
            return "processed"
        with db.begin(self.engine) as conn:
            if linked:
                if not first_delivery(conn, CONSUMER, envelope.event_id):
                    return "duplicate"
                if not self._known(conn, envelope.aggregate_id):
                    return "processed"
                self._linked(conn, envelope.aggregate_id, payload.master_tracking_id)
                return "processed"
            # No dedupe row and no look for the report first (decision 80): the entry is
            # written once per event and only for a report intake has, in one statement,
            # and the status moves only to a newer ticket version, so an event applied
            # again changes nothing by itself.
            memo = db.batch_memo(conn)
            if entry is not None:
                row = {**_ENTRY_DEFAULTS, **entry, "tracking_id": envelope.aggregate_id,
                       "at": occurred, "source_event_id": envelope.event_id}
                if memo is not None:
                    # In a batch the entries go in together just before it commits
                    # (decision 94): nothing in the batch reads them, and whether one was
                    # written before changes nothing below, since the status moves only to
                    # a newer version. An event applied again counts as processed.
                    db.hold_until_commit(conn, "entries", [row], self._save_entries)
                elif not _ENTRY_ONCE[conn.dialect.name].execute(conn, row):
                    # applied before (its entry is there), or not ours
                    return "duplicate" if self._known(conn, envelope.aggregate_id) \
                        else "processed"
            if change:
                version = getattr(payload, "ticket_version", 0)
                _status_update(tuple(sorted(change)), bool(version)).execute(conn, {
                    **{f"b_{name}": value for name, value in change.items()},
                    "b_tracking_id": envelope.aggregate_id, "b_at": occurred,
                    "b_version": version})
        return "processed"

    @classmethod
    def _save_entries(cls, conn, rows: list[dict]) -> None:
        if _write_entries(conn, rows) < len(rows):
            # Applied before, or for a report intake does not have (logged, as alone).
            for tracking_id in dict.fromkeys(row["tracking_id"] for row in rows):
                cls._known(conn, tracking_id)

    @staticmethod
    def _known(conn, tracking_id: str) -> bool:
        if _KNOWN.first(conn, {"tracking_id": tracking_id}) is None:
            log.warning("event for a report intake does not have; ignored")
            return False
        return True

    @staticmethod
    def _linked(conn, tracking_id: str, master: str) -> None:
        """Routing linked the report to an open, near-identical one: its views show that one's
        status from now on (read when shown), and it counts as that one's support. Not by
        version: the link's ticket.status_changed has the same version and may come first."""
        r = storage.reports
        linked = conn.execute(r.update().where(r.c.tracking_id == tracking_id,
                                               r.c.linked_to == "")
                              .values(linked_to=master)).rowcount
        if linked:
            conn.execute(r.update().where(r.c.tracking_id == master)
                         .values(support_count=r.c.support_count + 1))

    @staticmethod
    def _interpret(event_type: str, p) -> tuple[dict, dict | None]:
        """(columns of the status to set, the timeline entry or None) for one event.

        An entry's `note` is public; `private_note` only the reporter sees (the question of a
        hold, the agency's response, a relayed message, the reason of an archive); a
        `private` entry is the reporter's alone."""
        if event_type == "ticket.dispatched":
            change = {"status": "DISPATCHED", "agency_code": p.agency.code,
                      "category": p.category,
                      "agency_name": p.agency.name, "deadline": _deadline(p),
                      "deadline_zone": p.deadline_zone}
            if p.ticket_version > 1:
                # A later hand-over (verify, pelimpahan, forward, appeal, escalation) comes
                # with a ticket.status_changed of the same version whose note says it.
                return change, None
            return change, {"status": "DISPATCHED", "agency_name": p.agency.name,
                            "note": f"Terdisposisi ke {p.agency.name}", "private": False}
        if event_type == "ticket.status_changed":
            state = _state(p.to_state)
            change = {"status": state, "agency_code": p.agency.code, "agency_name": p.agency.name,
                      "deadline": _deadline(p), "deadline_zone": p.deadline_zone}
            if p.action == "appeal":
                change["appealed"] = True
            # Routing writes the public note for everyone (for a confidential report it leaves
            # the response out); the reporter note is for the reporter only, shown beside it
            # unless it says the same.
            private = p.reporter_note if p.reporter_note != p.public_note else ""
            return change, {"status": state, "agency_name": p.agency.name,
                            "note": p.public_note, "private_note": private, "private": False}
        if event_type == "ticket.escalated":
            change = {"agency_code": p.to_agency.code, "agency_name": p.to_agency.name,
                      "deadline": _deadline(p), "status": _state(p.stage)}
            if p.kind in ("parent", "national", "verification"):
                # Announced with its own ticket.status_changed (same version) and public note;
                # a second entry would show the escalation twice.
                return change, None
            return change, {"status": _state(p.stage), "agency_name": p.to_agency.name,
                            "note": f"Dieskalasi ke {p.to_agency.name}" if p.kind != "oversight"
                            else "Belum selesai dalam 60 hari: ditandai untuk Ombudsman",
                            "private": False}
        if event_type == "ticket.message":
            # Relayed between the agency and the reporter: the reporter's own timeline only.
            note = ("Pesan dari instansi" if p.direction == "to_reporter"
                    else "Pesan Anda diteruskan ke instansi")
            return {}, {"status": "MESSAGE", "note": note, "agency_name": p.agency.name,
                        "private_note": p.text, "private": True}
        if event_type == "ticket.sla_warning":
            return {}, {"status": _state(p.stage), "agency_name": p.agency.name,
                        "note": "Batas waktu tindak lanjut segera berakhir", "private": False}
        # notification.delivered / .failed / .skipped: only the reporter's own messages that
        # went out or could not; "nobody to tell" (skipped) is not news to the reporter.
        if p.audience != "reporter" or p.outcome == "skipped":
            return {}, None
        channel = CHANNEL_NAMES.get(p.channel, p.channel)
        note = (f"Pemberitahuan terkirim lewat {channel}" if p.outcome == "delivered"
                else f"Pemberitahuan lewat {channel} gagal terkirim")
        return {}, {"status": "NOTIFICATION", "note": note, "private": True}


def _deadline(p):
    """The event's deadline, or None when it has none (closed, archived, on hold)."""
    return p.deadline.ToDatetime(tzinfo=UTC) if p.HasField("deadline") else None
