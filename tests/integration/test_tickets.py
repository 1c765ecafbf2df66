"""The ticket workflow's commands on SQLite and PostgreSQL, with the clock in the test's hand:
a report through triage, dispatch, hand-over (pelimpahan), acceptance, follow-ups, the
reporter's reply, closure, rating and appeal; holds and archives; who sees and acts on what;
deadlines in working days; the audit trail and the events each change puts in the outbox."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from lapor.v1 import common_pb2, events_pb2
from services.infra import db, events
from services.infra.outbox import Outbox
from services.routing import storage
from services.routing.principal import Principal
from services.routing.seed import AgencyRow
from services.routing.tickets.commands import Invalid, NotFound, NotYours, Refused, Stale, Tickets
from services.routing.tickets.statemachine import Complexity, Forbidden, NotAllowed, Role
from services.routing.workdays import WIB, WorkCalendar
from services.routing.workflow import Workflow
from tests.integration.helpers import classifier

pytestmark = pytest.mark.integration

NATIONAL = Principal("admin", Role.NATIONAL_ADMIN)
OVERSIGHT = Principal("ombudsman", Role.OVERSIGHT)
PUPR = Principal("siti", Role.AGENCY_OFFICER, "PUPR-13.03")
PUPR_ADMIN = Principal("budi", Role.AGENCY_ADMIN, "PUPR-13.03")
DINKES = Principal("dewi", Role.AGENCY_OFFICER, "DINKES-13.03")
PROVINCE = Principal("rudi", Role.AGENCY_OFFICER, "PEMPROV-13")
UNIT = Principal("tono", Role.AGENCY_OFFICER, "PUPR-13.03-JALAN")


class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def to(self, when: datetime) -> None:
        self.now = when


@pytest.fixture
def clock():
    # Wednesday 2 December 2026, 10:00 WIB.
    return Clock(datetime(2026, 12, 2, 10, 0, tzinfo=WIB).astimezone(UTC))


@pytest.fixture
def engine(database_url):
    engine = db.make_engine(database_url)
    db.migrate(engine, "routing", storage.MIGRATIONS, after=storage.seed_demo)
    with engine.begin() as conn:  # a unit of Sijunjung's PUPR, for internal forwarding
        storage.seed_directory(conn, [], [AgencyRow(
            "PUPR-13.03-JALAN", "Bidang Jalan dan Jembatan PUPR Sijunjung", "regency", "13.03",
            "PUPR-13.03")])
    yield engine
    engine.dispose()


@pytest.fixture
def tickets(engine, clock):
    outbox = Outbox(engine, storage.outbox, "test-routing", publisher_factory=lambda: None)
    return Tickets(engine, outbox, WorkCalendar(), now=clock)


def submit(engine, tickets, tracking_id, *, body="Jalan utama berlubang besar di depan pasar "
           "Muaro dan aspalnya rusak parah.", title="Jalan rusak berlubang", anonymous=False,
           confidential=False) -> None:
    report = common_pb2.ReportContent(
        kind=common_pb2.REPORT_KIND_PENGADUAN, title=title, body=body, region_code="13.03",
        anonymous=anonymous, confidential=confidential,
        reporter_name="" if anonymous else "Rina Marlina", channel="web",
        address="Jl. Lintas Sumatera km 3", incident_date="2026-11-30",
        submitted_at=events.timestamp(tickets.now()))
    report.location.latitude, report.location.longitude = -0.66, 100.95
    workflow = Workflow(engine, tickets.outbox, tickets.calendar, tickets,
                        classifier=classifier())
    envelope = events.new("report.submitted", tracking_id, events_pb2.ReportSubmitted(
        tracking_id=tracking_id, report=report), producer="intake")
    assert workflow.handle(envelope) == "processed"


def published(engine, *types) -> list:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(storage.outbox).order_by(storage.outbox.c.id)).all()
    found = [events.decode(r.body) for r in rows if not types or r.event_type in types]
    return [(e.type, events.payload(e)) for e in found]


def clear_outbox(engine) -> None:
    with engine.begin() as conn:
        conn.execute(storage.outbox.delete())


def wib(row_deadline) -> datetime:
    return db.as_utc(row_deadline).astimezone(WIB)


def test_a_report_from_triage_to_an_appeal(engine, tickets, clock):
    # A body too short for auto-dispatch: it waits in triage, with routing's suggestion.
    submit(engine, tickets, "LPR-AAA-AAA-AA1", body="Jalan rusak parah.")
    view = tickets.get(NATIONAL, "LPR-AAA-AAA-AA1")
    assert (view.row.state, view.row.agency_code, view.row.suggested_agency) == (
        "SUBMITTED", "ADMIN-NASIONAL", "PUPR-13.03")
    assert wib(view.row.deadline) == datetime(2026, 12, 7, 16, 0, tzinfo=WIB), "3 working days"
    assert view.allowed == ["archive", "hold", "verify"]
    clear_outbox(engine)

    # The national admin verifies: dispatched to the suggested agency, 5 working days.
    row = tickets.verify(NATIONAL, "LPR-AAA-AAA-AA1", expected_version=1)
    assert (row.state, row.agency_code, row.version, row.clock) == (
        "DISPATCHED", "PUPR-13.03", 2, "respond")
    assert wib(row.deadline) == datetime(2026, 12, 9, 16, 0, tzinfo=WIB)
    sent = published(engine)
    assert [t for t, _ in sent] == ["ticket.status_changed", "ticket.dispatched"]
    changed, dispatched = sent[0][1], sent[1][1]
    assert (changed.action, changed.ticket_version, changed.agency.code) == (
        "verify", 2, "PUPR-13.03")
    assert dispatched.report.address == "Jl. Lintas Sumatera km 3"
    assert dispatched.report.reporter_name == "Rina Marlina"
    assert dispatched.report.location.latitude == pytest.approx(-0.66)

    # Not our authority: to the next candidate that has not had it (the province).
    clock.to(clock.now + timedelta(hours=2))
    row = tickets.decline(PUPR, "LPR-AAA-AAA-AA1", reason="Jalan provinsi, bukan kabupaten")
    assert (row.state, row.agency_code) == ("DISPATCHED", "PEMPROV-13")
    with pytest.raises(NotYours):  # Sijunjung's PUPR does not hold it any more
        tickets.get(PUPR, "LPR-AAA-AAA-AA1")

    # The province accepts it as a dispute: 14 working days from when it received it.
    row = tickets.accept(PROVINCE, "LPR-AAA-AAA-AA1", complexity=Complexity.DISPUTE)
    assert row.complexity == "DISPUTE" and row.accepted_at is not None
    assert wib(row.deadline) == datetime(2026, 12, 22, 16, 0, tzinfo=WIB)
    row = tickets.follow_up(PROVINCE, "LPR-AAA-AAA-AA1", response="Perbaikan dijadwalkan "
                            "minggu depan oleh UPTD Jalan Provinsi.")
    assert (row.state, row.clock) == ("FOLLOWED_UP", "auto_close")
    assert wib(row.deadline) == datetime(2026, 12, 16, 16, 0, tzinfo=WIB), "10 working days"

    # The reporter replies: back with the province, its follow-up clock restarted.
    clock.to(clock.now + timedelta(days=1))
    outcome, row = tickets.reporter_reply("LPR-AAA-AAA-AA1", "Belum ada perbaikan sama sekali.")
    assert (outcome, row.state, row.agency_code) == ("replied", "REPORTER_REPLIED",
                                                     "PEMPROV-13")
    row = tickets.follow_up(PROVINCE, "LPR-AAA-AAA-AA1", response="Sudah diperbaiki.")
    row = tickets.close(PROVINCE, "LPR-AAA-AAA-AA1", note="Pelapor setuju lewat telepon")
    assert row.state == "CLOSED"
    row = tickets.rate("LPR-AAA-AAA-AA1", 2, "Lambat")
    assert row.rating == 2
    with pytest.raises(Refused, match="rated already"):
        tickets.rate("LPR-AAA-AAA-AA1", 5)

    # An appeal reopens it at the province's parent (the ministry of home affairs).
    row = tickets.appeal("LPR-AAA-AAA-AA1", "Jalan kembali rusak")
    assert (row.state, row.agency_code, row.escalation_level) == (
        "DISPATCHED", "KEMENDAGRI", 1)
    with pytest.raises(NotAllowed, match="DISPATCHED"):
        tickets.appeal("LPR-AAA-AAA-AA1", "Lagi")

    view = tickets.get(OVERSIGHT, "LPR-AAA-AAA-AA1")
    assert [(a.code, reason) for a, reason, _ in view.chain] == [
        ("PUPR-13.03", "dispatched"), ("PEMPROV-13", "not_our_authority"),
        ("KEMENDAGRI", "appeal")]
    assert [m.direction for m in view.messages] == ["to_agency"]
    trail = tickets.audit(OVERSIGHT, "LPR-AAA-AAA-AA1")
    assert [(e.action, e.actor) for e in trail] == [
        ("submit", "citizen"), ("verify", "admin"), ("not_our_authority", "siti"),
        ("accept", "rudi"), ("follow_up", "rudi"), ("reply", "citizen"),
        ("follow_up", "rudi"), ("close", "rudi"), ("rate", "citizen"), ("appeal", "citizen")]
    assert "Jalan provinsi" in trail[2].reason
    assert [e.version for e in trail if e.action not in ("rate",)] == list(range(1, 10))


def test_a_held_report_keeps_the_time_it_had_left(engine, tickets, clock):
    submit(engine, tickets, "LPR-AAA-AAA-AA2", body="Jalan rusak parah.")
    clock.to(datetime(2026, 12, 3, 11, 0, tzinfo=WIB).astimezone(UTC))  # Thursday
    row = tickets.hold(NATIONAL, "LPR-AAA-AAA-AA2", question="Di ruas jalan mana tepatnya?")
    assert (row.state, row.clock, row.deadline, row.paused_days) == ("ON_HOLD", "paused",
                                                                    None, 2)
    changed = published(engine, "ticket.status_changed")[-1][1]
    assert changed.reporter_note == "Di ruas jalan mana tepatnya?"
    assert "ruas jalan" not in changed.public_note, "the question is for the reporter only"

    clock.to(datetime(2026, 12, 10, 9, 0, tzinfo=WIB).astimezone(UTC))  # a week later
    outcome, row = tickets.reporter_reply("LPR-AAA-AAA-AA2", "Ruas Muaro - Sijunjung km 3")
    assert (outcome, row.state) == ("information_added", "SUBMITTED")
    assert wib(row.deadline) == datetime(2026, 12, 14, 16, 0, tzinfo=WIB), (
        "the two working days that were left, counted from the answer")


def test_archive_needs_a_reason_from_the_list(engine, tickets):
    submit(engine, tickets, "LPR-AAA-AAA-AA3", body="Jalan rusak parah.")
    with pytest.raises(Invalid) as bad:
        tickets.archive(NATIONAL, "LPR-AAA-AAA-AA3", reason="BORING")
    assert "SPAM" in str(bad.value)
    row = tickets.archive(NATIONAL, "LPR-AAA-AAA-AA3", reason="DUPLICATE", note="sama dengan X")
    assert row.state == "ARCHIVED" and row.deadline is None
    with pytest.raises(NotAllowed, match="ARCHIVED"):
        tickets.verify(NATIONAL, "LPR-AAA-AAA-AA3")


def test_staff_see_their_agency_and_its_units_and_act_only_on_their_own(engine, tickets):
    submit(engine, tickets, "LPR-AAA-AAA-AA4")  # dispatched straight to Sijunjung's PUPR
    assert tickets.get(PUPR, "LPR-AAA-AAA-AA4").row.agency_code == "PUPR-13.03"
    for outsider in (DINKES, UNIT):
        with pytest.raises(NotYours):
            tickets.get(outsider, "LPR-AAA-AAA-AA4")
        with pytest.raises(NotYours):
            tickets.accept(outsider, "LPR-AAA-AAA-AA4")
    with pytest.raises(NotFound):
        tickets.get(DINKES, "LPR-ZZZ-ZZZ-ZZ9")
    with pytest.raises(Forbidden):
        tickets.forward(PUPR, "LPR-AAA-AAA-AA4", unit_code="PUPR-13.03-JALAN")
    with pytest.raises(Forbidden):
        tickets.accept(OVERSIGHT, "LPR-AAA-AAA-AA4")

    with pytest.raises(Invalid, match="unit of your agency"):
        tickets.forward(PUPR_ADMIN, "LPR-AAA-AAA-AA4", unit_code="DINKES-13.03")
    row = tickets.forward(PUPR_ADMIN, "LPR-AAA-AAA-AA4", unit_code="PUPR-13.03-JALAN")
    assert row.agency_code == "PUPR-13.03-JALAN"
    assert tickets.get(PUPR, "LPR-AAA-AAA-AA4").allowed == [], (
        "the parent still sees its unit's ticket, but the unit acts on it")
    assert tickets.accept(UNIT, "LPR-AAA-AAA-AA4").accepted_at is not None
    with pytest.raises(NotYours):
        tickets.follow_up(PUPR, "LPR-AAA-AAA-AA4", response="Sudah")


def test_a_stale_version_is_refused(engine, tickets):
    submit(engine, tickets, "LPR-AAA-AAA-AA5")
    tickets.accept(PUPR, "LPR-AAA-AAA-AA5", expected_version=1)
    with pytest.raises(Stale, match="version 1"):
        tickets.follow_up(PUPR, "LPR-AAA-AAA-AA5", response="Sudah", expected_version=1)


def test_with_no_candidate_left_a_declined_ticket_returns_to_triage(engine, tickets):
    submit(engine, tickets, "LPR-AAA-AAA-AA6")
    tickets.decline(PUPR, "LPR-AAA-AAA-AA6", reason="bukan kami")
    tickets.decline(PROVINCE, "LPR-AAA-AAA-AA6", reason="bukan kami juga")
    ministry = Principal("ani", Role.AGENCY_OFFICER, "KEMENPU")
    row = tickets.decline(ministry, "LPR-AAA-AAA-AA6", reason="jalan kabupaten",
                          suggested_agency_code="PUPR-13.03")
    assert (row.state, row.agency_code, row.clock) == ("SUBMITTED", "ADMIN-NASIONAL", "verify")
    changed = published(engine, "ticket.status_changed")[-1][1]
    assert changed.public_note.startswith("Dikembalikan ke admin nasional")


def test_the_follow_up_stays_off_the_public_timeline_of_a_confidential_report(engine, tickets):
    submit(engine, tickets, "LPR-AAA-AAA-AA7", confidential=True, anonymous=True)
    tickets.follow_up(PUPR, "LPR-AAA-AAA-AA7", response="Petugas sudah memeriksa rumah "
                      "sakit dan menegur dokter jaga.")
    changed = published(engine, "ticket.status_changed")[-1][1]
    assert changed.public_note == "Ditindaklanjuti" and changed.confidential
    assert "menegur" in changed.reporter_note
    view = tickets.get(PUPR, "LPR-AAA-AAA-AA7")
    assert view.content.reporter_name == "" and view.content.anonymous


def test_messages_are_relayed_both_ways(engine, tickets):
    submit(engine, tickets, "LPR-AAA-AAA-AA8", anonymous=True)
    tickets.message_reporter(PUPR, "LPR-AAA-AAA-AA8", text="Mohon kirim foto lokasi.")
    outcome, _ = tickets.reporter_reply("LPR-AAA-AAA-AA8", "Foto sudah saya unggah.")
    assert outcome == "message_sent"
    sent = [(p.direction, p.text) for _, p in published(engine, "ticket.message")]
    assert sent == [("to_reporter", "Mohon kirim foto lokasi."),
                    ("to_agency", "Foto sudah saya unggah.")]
    view = tickets.get(PUPR, "LPR-AAA-AAA-AA8")
    assert [m.direction for m in view.messages] == ["to_reporter", "to_agency"]


def test_a_missed_deadline_escalates_to_the_parent_agency(engine, tickets, clock):
    submit(engine, tickets, "LPR-AAA-AAA-AA9")
    clear_outbox(engine)
    clock.to(datetime(2026, 12, 9, 16, 1, tzinfo=WIB).astimezone(UTC))
    assert tickets.expire("LPR-AAA-AAA-AA9") == "escalated_parent"
    row = tickets.get(NATIONAL, "LPR-AAA-AAA-AA9").row
    assert (row.agency_code, row.escalation_level, row.state) == ("PEMDA-13.03", 1,
                                                                 "DISPATCHED")
    assert [t for t, _ in published(engine)] == ["ticket.status_changed", "ticket.dispatched",
                                                 "ticket.escalated"]
    escalated = published(engine, "ticket.escalated")[0][1]
    assert (escalated.kind, escalated.from_agency.code, escalated.to_agency.code) == (
        "parent", "PUPR-13.03", "PEMDA-13.03")
    assert tickets.expire("LPR-AAA-AAA-AA9") == "", "nothing is due at the parent yet"


def test_the_inbox_is_scoped_filtered_and_sorted_by_deadline(engine, tickets, clock):
    submit(engine, tickets, "LPR-BBB-BBB-BB1")
    clock.to(clock.now + timedelta(days=1))
    submit(engine, tickets, "LPR-BBB-BBB-BB2", title="Jembatan gantung putus",
           body="Jembatan gantung di Nagari Palangki putus sejak banjir minggu lalu, "
           "anak sekolah harus menyeberangi sungai.")
    submit(engine, tickets, "LPR-BBB-BBB-BB3", body="Jalan rusak parah.")  # triage

    def ids(principal, **filters):
        options = dict(states=[], overdue_only=False, category="", region_code="", text="",
                       agency_code="", offset=0, limit=50)
        options.update(filters)
        return [r.tracking_id for r, _, _ in tickets.inbox(principal, **options)]

    assert ids(PUPR) == ["LPR-BBB-BBB-BB1", "LPR-BBB-BBB-BB2"]
    assert ids(DINKES) == []
    assert ids(NATIONAL) == ["LPR-BBB-BBB-BB3", "LPR-BBB-BBB-BB1", "LPR-BBB-BBB-BB2"], (
        "soonest deadline first: triage verifies within 3 working days")
    assert ids(PUPR, text="JEMBATAN") == ["LPR-BBB-BBB-BB2"]
    assert ids(PUPR, text="50%_") == []
    assert ids(NATIONAL, agency_code="ADMIN-NASIONAL") == ["LPR-BBB-BBB-BB3"]
    assert ids(PUPR, offset=1, limit=1) == ["LPR-BBB-BBB-BB2"]
    clock.to(datetime(2026, 12, 10, 9, 0, tzinfo=WIB).astimezone(UTC))
    assert ids(PUPR, overdue_only=True) == ["LPR-BBB-BBB-BB1"]


def _outcome(tracking_id: str, kind: str, delivery_id: str, channel: str, audience: str,
             reason: str, minute: int):
    """notify's notification.<kind> for one delivery, `minute` minutes after 9:00 UTC on
    8 December 2026."""
    return events.new(f"notification.{kind}", tracking_id, events_pb2.NotificationOutcome(
        tracking_id=tracking_id, delivery_id=delivery_id, channel=channel, audience=audience,
        attempt=1, outcome=kind, reason=reason, trigger_type="ticket.dispatched"),
        producer="notify",
        occurred_at=datetime(2026, 12, 8, 9, 0, tzinfo=UTC) + timedelta(minutes=minute))


def test_staff_see_each_notification_once_with_its_latest_outcome(engine, tickets, clock):
    """notify's notification.* events: one line per delivery in the staff view, the latest
    outcome by the event's time winning (a retried webhook that failed, then went through),
    also when the older event is handled again, or comes late."""
    submit(engine, tickets, "LPR-NOTIF-0001")
    workflow = Workflow(engine, tickets.outbox, tickets.calendar, tickets,
                        classifier=classifier())

    def outcome(kind: str, delivery_id: str, channel: str, audience: str, reason: str = "",
                minute: int = 0):
        return _outcome("LPR-NOTIF-0001", kind, delivery_id, channel, audience, reason, minute)

    def shown():
        view = tickets.get(NATIONAL, "LPR-NOTIF-0001")
        return sorted((d.channel, d.audience, d.outcome, d.reason or "")
                      for d in view.deliveries)

    failed_hook = outcome("failed", "d-hook", "webhook", "agency", "HTTP 503", minute=1)
    late_mail = outcome("failed", "d-mail", "email", "reporter", "550 mailbox full", minute=1)
    for envelope in (failed_hook, outcome("delivered", "d-mail", "email", "reporter", minute=2),
                     outcome("delivered", "d-hook", "webhook", "agency", minute=3)):
        assert workflow.handle(envelope) == "processed"
    delivered = [("email", "reporter", "delivered", ""), ("webhook", "agency", "delivered", "")]
    assert shown() == delivered

    # The webhook's failure handled again (its ack lost), the email's older failure late.
    for envelope in (failed_hook, late_mail):
        assert workflow.handle(envelope) == "processed"
    assert shown() == delivered


def test_a_batch_of_notification_outcomes_is_written_in_one_statement(engine, tickets, clock):
    """The consumer's batch of notify's outcomes: written just before the batch commits, in
    one statement for the batch where each event took its own, with what one by one
    writes: the newest outcome of each delivery by the event's time, whatever the order in
    the batch, also for a delivery with several outcomes in it."""
    submit(engine, tickets, "LPR-NOTIF-0002")
    workflow = Workflow(engine, tickets.outbox, tickets.calendar, tickets,
                        classifier=classifier())

    def outcome(kind: str, delivery_id: str, channel: str, audience: str, minute: int):
        return _outcome("LPR-NOTIF-0002", kind, delivery_id, channel, audience,
                        "HTTP 503" if kind == "failed" else "", minute)

    batch = [outcome("delivered", "d-hook", "webhook", "agency", 3),
             outcome("failed", "d-hook", "webhook", "agency", 1),   # older, after the newer
             outcome("failed", "d-mail", "email", "reporter", 1),
             outcome("delivered", "d-mail", "email", "reporter", 2),
             outcome("skipped", "d-sms", "sms", "reporter", 2)]
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_rest):
        if "ticket_deliveries" in statement:
            seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        with db.batch(engine):
            workflow.prepare(batch)
            assert [workflow.handle(envelope) for envelope in batch] == ["processed"] * 5
            assert seen == []  # nothing written before the batch commits
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert len(seen) == 1
    view = tickets.get(NATIONAL, "LPR-NOTIF-0002")
    assert sorted((d.channel, d.audience, d.outcome) for d in view.deliveries) == [
        ("email", "reporter", "delivered"), ("sms", "reporter", "skipped"),
        ("webhook", "agency", "delivered")]
