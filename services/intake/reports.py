"""Accepting a report and showing it: the submit transaction (report, idempotency key and
outgoing events together), the allow-listed views of a report for the public and for its
reporter, and what the reporter may still do with it."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import fields as dataclass_fields
from datetime import UTC, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lapor.v1 import common_pb2, events_pb2
from services.infra import db, events, group_commit, logs
from services.infra.db import as_utc, reading, utcnow
from services.infra.outbox import Outbox
from services.intake import idempotency, ids, storage
from services.intake.validation import NewReport, Reporter

log = logging.getLogger(__name__)

IDEMPOTENCY_WINDOW = timedelta(hours=24)

STATUS_LABELS = {
    "SUBMITTED": "Belum terverifikasi",
    "ON_HOLD": "Ditunda (butuh kelengkapan)",
    "DISPATCHED": "Terdisposisi",
    "FOLLOWED_UP": "Ditindaklanjuti",
    "REPORTER_REPLIED": "Ditanggapi pelapor",
    "CLOSED": "Selesai",
    "ARCHIVED": "Diarsipkan",
}
# Owner-only timeline entries that are not states.
ENTRY_LABELS = {**STATUS_LABELS, "NOTIFICATION": "Pemberitahuan", "MESSAGE": "Pesan"}


# Built once, each compiled once per database and run on the driver's cursor: through
# SQLAlchemy's execute each cost more Python than the driver's INSERT itself (decision 63).
_INSERT_REPORT = db.Insert(storage.reports)
_INSERT_TIMELINE = db.Insert(storage.timeline)
_INSERT_KEY = db.Insert(storage.idempotency_keys)
_PREVIOUS_ANSWER = sa.select(storage.idempotency_keys.c.sealed_answer).where(
    storage.idempotency_keys.c.key_hash == sa.bindparam("key_hash"))


_REPORT_FIELDS = tuple(f.name for f in dataclass_fields(NewReport))
_REPORTER_FIELDS = tuple(f.name for f in dataclass_fields(Reporter))


class IdempotencyConflict(Exception):
    """The key was used before for a different request."""


def request_fingerprint(report: NewReport) -> str:
    """What makes a retry the same request: the report's fields as sorted JSON, hashed. The
    same text `dataclasses.asdict` gives, which stored keys were sealed with (answers
    sealed before an upgrade still open after it), built without asdict's deep copy of
    every value: that was a tenth of a submission's time in process."""
    fields = {name: getattr(report, name) for name in _REPORT_FIELDS}
    fields["reporter"] = {name: getattr(report.reporter, name) for name in _REPORTER_FIELDS}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def report_content(report: NewReport, submitted_at) -> common_pb2.ReportContent:
    """What routing and the handling agency may see; the allow-list for report.submitted.
    Contact details never; the name only when the reporter is not anonymous."""
    content = common_pb2.ReportContent(
        kind=common_pb2.ReportKind.Value("REPORT_KIND_" + report.kind), title=report.title,
        body=report.body, region_code=report.region_code, category=report.category,
        anonymous=report.anonymous, confidential=report.confidential,
        reporter_name="" if report.anonymous else report.reporter.name,
        channel=report.channel, incident_date=report.incident_date, address=report.address,
        target_agency=report.target_agency, submitted_at=events.timestamp(submitted_at))
    if report.latitude is not None:
        content.location.latitude = report.latitude
        content.location.longitude = report.longitude
    return content


def submit(engine: Engine, outbox: Outbox, report: NewReport,
           idempotency_key: str | None,
           also: Callable[[Connection, str], None] | None = None) -> tuple[dict, bool]:
    """Stores the report and its events in one transaction; returns (answer, replayed).
    `also(conn, tracking_id)`, when given, writes what belongs with the report (a media URL
    to fetch, the gateway message it came in) in the same transaction.

    The answer holds the access token in clear: this is the only time it is shown (and to a
    retry with the same Idempotency-Key and report, which gets the same answer).
    """
    fingerprint = request_fingerprint(report) if idempotency_key else ""
    key_hash = idempotency.key_hash(idempotency_key) if idempotency_key else ""
    for _ in range(5):
        # Everything but the statements is prepared before the transaction: on SQLite the
        # write transactions of a process run one at a time, so whatever work sits inside
        # one makes every other submission wait.
        answer, rows = _prepare(outbox, report)
        if idempotency_key:
            key_row = {"key_hash": key_hash, "tracking_id": answer["tracking_id"],
                       "sealed_answer": idempotency.seal(idempotency_key, fingerprint, answer),
                       "created_at": utcnow()}
        # The key first: a retry of an earlier submission fails on it (the key is unique)
        # without a lookup in every first submission.
        inserts = [(_INSERT_KEY, key_row)] if idempotency_key else []
        inserts += [(_INSERT_REPORT, rows["report"]), (_INSERT_TIMELINE, rows["timeline"]),
                    outbox.insert_of(rows["outbox"])]
        try:
            # On SQLite with the submissions that arrive while another group commits, in
            # one transaction (group_commit, decision 88); alone when that group failed,
            # with `also`, and on PostgreSQL, where groups measured no gain.
            if also is not None or db.is_postgres(engine) or \
                    not group_commit.of(engine).write(inserts):
                with engine.connect() as conn, (
                        conn.begin() if also is not None else db.each_committed(conn)):
                    # On PostgreSQL one statement (db.insert_together), atomic by itself:
                    # with nothing else to write it runs on its own, one round trip in all.
                    db.insert_together(conn, inserts)
                    if also is not None:
                        also(conn, answer["tracking_id"])
        except sa.exc.IntegrityError:
            # The key was used before (its answer, or a conflict), or a tracking id
            # collision (the next round draws a fresh one).
            if idempotency_key:
                with reading(engine) as conn:
                    previous = _previous_answer(conn, idempotency_key, fingerprint)
                if previous is not None:
                    return previous, True
            continue
        outbox.wake()
        with logs.bound(tracking_id=answer["tracking_id"]):
            log.info("report accepted", extra={"channel": report.channel, "kind": report.kind})
        return answer, False
    raise RuntimeError("could not store the report after 5 attempts")


def _previous_answer(conn: Connection, key: str, fingerprint: str) -> dict | None:
    row = conn.execute(_PREVIOUS_ANSWER, {"key_hash": idempotency.key_hash(key)}).first()
    if row is None:
        return None
    answer = idempotency.unseal(key, fingerprint, row.sealed_answer)
    if answer is None:
        raise IdempotencyConflict(key)
    return answer


def _prepare(outbox: Outbox, report: NewReport) -> tuple[dict, dict]:
    """The answer to the reporter and the rows of one submission: the report, its first
    timeline entry and its two events."""
    now = utcnow()
    tracking_id = ids.new_tracking_id()
    token = ids.new_access_token()
    reporter = report.reporter
    rows = {
        "report": {
            "tracking_id": tracking_id, "kind": report.kind, "title": report.title,
            "body": report.body, "region_code": report.region_code,
            "category": report.category, "target_agency": report.target_agency,
            "incident_date": report.incident_date, "latitude": report.latitude,
            "longitude": report.longitude, "address": report.address,
            "channel": report.channel, "anonymous": report.anonymous,
            "confidential": report.confidential, "language": reporter.language,
            "access_token_hash": ids.hash_token(token), "status": "SUBMITTED",
            "status_at": now, "created_at": now, "updated_at": now},
        "timeline": {"tracking_id": tracking_id, "at": now, "status": "SUBMITTED",
                     "note": "Laporan diterima", "private": False},
        "outbox": outbox.rows((
            events.new("report.submitted", tracking_id, events_pb2.ReportSubmitted(
                tracking_id=tracking_id, report=report_content(report, now)),
                producer="intake"),
            events.new("reporter.registered", tracking_id, events_pb2.ReporterRegistered(
                tracking_id=tracking_id, name=reporter.name, email=reporter.email,
                phone=reporter.phone, language=reporter.language,
                anonymous=report.anonymous, channel=report.channel), producer="intake"))),
    }
    answer = {"tracking_id": tracking_id, "access_token": token, "status": "SUBMITTED",
              "status_label": STATUS_LABELS["SUBMITTED"]}
    return answer, rows


def with_master() -> sa.Select:
    """Reports with the status, agency and deadline of the report each is linked to (None
    when not linked) as master_* columns: what the views show of a linked report."""
    r, master = storage.reports, storage.reports.alias("master")
    return (sa.select(r, master.c.status.label("master_status"),
                      master.c.agency_code.label("master_agency_code"),
                      master.c.agency_name.label("master_agency_name"),
                      master.c.deadline.label("master_deadline"),
                      master.c.deadline_zone.label("master_deadline_zone"))
            .select_from(r.outerjoin(master, sa.and_(r.c.linked_to != "",
                                                     master.c.tracking_id == r.c.linked_to))))


@functools.cache
def _loads() -> tuple[db.Statement, db.Statement]:
    """load()'s two SELECTs, built once and run on the driver's cursor: built anew for each
    status read, SQLAlchemy walked each to find its compiled form, and the two took a
    status read as long as the rest of it."""
    by_id = sa.bindparam("tracking_id")
    return (db.Statement(with_master().where(storage.reports.c.tracking_id == by_id)),
            db.Statement(sa.select(storage.timeline)
                         .where(storage.timeline.c.tracking_id == by_id)
                         .order_by(storage.timeline.c.at, storage.timeline.c.id)))


def load(conn: Connection, tracking_id: str):
    """The report (with the status of the report it is linked to, if any, as master_*
    columns) and its timeline; (None, []) when there is no such report. Rows are named
    tuples by column key."""
    report_of, timeline_of = _loads()
    report = report_of.first(conn, {"tracking_id": tracking_id})
    if report is None:
        return None, []
    return report, timeline_of.all(conn, {"tracking_id": tracking_id})


def token_hash_query(tracking_id: str):
    """The stored hash of a report's access token (no row: no such report)."""
    return sa.select(storage.reports.c.access_token_hash).where(
        storage.reports.c.tracking_id == tracking_id)


def _iso(value) -> str | None:
    value = as_utc(value)
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def category_scores(scores) -> list[dict]:
    """Routing's CategoryScore list as answered to clients: the directory's name, the code
    beside it, the confidence to three places."""
    return [{"category": c.category, "category_code": c.category_code,
             "confidence": round(c.confidence, 3)} for c in scores]


def iso_timestamp(value) -> str | None:
    """A protobuf Timestamp as the API shows times (UTC, ISO 8601), None when unset."""
    if value is None or (value.seconds == 0 and value.nanos == 0):
        return None
    return _iso(value.ToDatetime(tzinfo=UTC))


def _status_label(status: str, agency_name: str) -> str:
    if status == "DISPATCHED" and agency_name:
        return f"Terdisposisi ke {agency_name}"
    return STATUS_LABELS.get(status, status)


def _status(row) -> dict:
    label = _status_label(row.status, row.agency_name)
    if row.linked_to:
        label = f"Digabung dengan laporan {row.linked_to}"
    return {"status": row.status, "status_label": label}


def _linked_to(row) -> dict | None:
    """The open report this one was linked to as a duplicate, and its status now: the
    reporter follows that one (read when shown, so it is never behind)."""
    if not row.linked_to:
        return None
    status = getattr(row, "master_status", None)
    return {
        "tracking_id": row.linked_to,
        "status": status,
        "status_label": (_status_label(status, row.master_agency_name or "")
                         if status else None),
        "agency": ({"code": row.master_agency_code, "name": row.master_agency_name}
                   if status and row.master_agency_code else None),
        "deadline": _iso(row.master_deadline) if status else None,
        "deadline_zone": (row.master_deadline_zone or None) if status else None,
    }


def public_view(row, entries) -> dict:
    """What anyone may see. Never the reporter; no content when confidential."""
    view = {
        "tracking_id": row.tracking_id,
        "kind": row.kind,
        **_status(row),
        "agency": ({"code": row.agency_code, "name": row.agency_name}
                   if row.agency_code else None),
        "deadline": _iso(row.deadline),
        "deadline_zone": row.deadline_zone or None,
        "region_code": row.region_code,
        "category": row.category or None,
        "confidential": row.confidential,
        "support_count": row.support_count,
        "linked_to": _linked_to(row),
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "timeline": [_entry(e) for e in entries if not e.private],
    }
    if not row.confidential:
        view["title"] = row.title
        view["body"] = row.body
    return view


def owner_view(row, entries) -> dict:
    """What the holder of the report's access token sees: the report as they sent it (but
    their contacts, which only notify keeps), and all of the timeline including the delivery
    of their own notifications."""
    view = public_view(row, [])
    view.update({
        "title": row.title,
        "body": row.body,
        "anonymous": row.anonymous,
        "channel": row.channel,
        "incident_date": row.incident_date or None,
        "location": ({"latitude": row.latitude, "longitude": row.longitude}
                     if row.latitude is not None else None),
        "address": row.address or None,
        "target_agency": row.target_agency or None,
        # Contacts went to notify with reporter.registered; intake does not keep them.
        "reporter": {"language": row.language},
        "timeline": [_entry(e, owner=True) for e in entries],
        "rating": row.rating,
        "actions": reporter_actions(row.status, rated=row.rating is not None,
                                    appealed=row.appealed),
    })
    return view


def reporter_actions(status: str, *, rated: bool, appealed: bool) -> list[str]:
    """What the reporter may do now (routing has the last word: an appeal after its window,
    for one, is refused there). A reply in any open state reaches whoever holds the report:
    it answers a follow-up, completes a held report, or is a message to the agency."""
    if status == "FOLLOWED_UP":
        return ["reply", "confirm"]
    if status in ("SUBMITTED", "ON_HOLD", "DISPATCHED", "REPORTER_REPLIED"):
        return ["reply"]
    if status == "CLOSED":
        return [*([] if rated else ["rate"]), *([] if appealed else ["appeal"])]
    return []


def record_action(conn: Connection, tracking_id: str, answer, *, rating: int | None = None
                  ) -> None:
    """Shows the reporter's action at once (routing's events follow with the timeline): the
    state and holder routing answered, applied only when newer, as the read model does; the
    rating and the appeal, which the owner view offers only once."""
    r = storage.reports
    now = utcnow()
    marks = {}
    if rating is not None:
        marks["rating"] = rating
    if answer.outcome == "appealed":
        marks["appealed"] = True
    if marks:
        conn.execute(r.update().where(r.c.tracking_id == tracking_id).values(**marks))
    state = common_pb2.TicketState.Name(answer.state).removeprefix("TICKET_STATE_")
    if state not in STATUS_LABELS or not answer.version:
        return
    conn.execute(r.update().where(r.c.tracking_id == tracking_id,
                                  r.c.version < answer.version).values(
        status=state, version=answer.version, agency_code=answer.agency.code,
        agency_name=answer.agency.name, deadline_zone=answer.deadline_zone,
        deadline=(answer.deadline.ToDatetime(tzinfo=UTC) if answer.HasField("deadline")
                  else None),
        status_at=now, updated_at=now))


def _entry(entry, owner: bool = False) -> dict:
    shown = {"at": _iso(entry.at), "status": entry.status,
             "status_label": ENTRY_LABELS.get(entry.status, entry.status),
             "note": entry.note or None, "agency_name": entry.agency_name or None}
    if owner:
        shown["private_note"] = entry.private_note or None
    return shown
