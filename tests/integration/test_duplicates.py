"""Duplicates and dukungan across the three services.

Routing (on SQLite and PostgreSQL, the clock in the test's hand): a second near-identical
report in Sijunjung within 30 days is linked to the first (archived as DUPLICATE, never sent
to an agency, counted as the first's support, announced); a near match waits in triage with
a suggestion both tickets show, and the national admin links or dismisses it; nothing links
after 30 days, to a closed or archived ticket, across regencies or categories.
Notify (real broker and SMTP server): the linked report's reporter hears of the link, then of
the master's progress, in their own language and about their own report, never what was
written for the master's reporter alone. Intake: the linked report shows "digabung dengan
laporan …" and the master's status; the master shows the linked report as support."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from lapor.v1 import common_pb2, events_pb2
from services.infra import db, events
from services.infra.outbox import Outbox
from services.notify import store
from services.routing import storage, workflow
from services.routing.principal import Principal
from services.routing.tickets.commands import NotFound, Refused, Tickets
from services.routing.tickets.statemachine import Complexity, Forbidden, Role
from services.routing.workdays import WIB, WorkCalendar
from services.routing.workflow import Workflow
from tests.integration import test_notify as notify_base
from tests.integration.helpers import (
    SIJUNJUNG_PUPR,
    dead_amqp_url,
    status_changed,
    ticket_dispatched,
    wait_for,
)
from tests.integration.test_readmodel import Citizen, make_app

pytestmark = pytest.mark.integration

smtp, start_notify, publish = notify_base.smtp, notify_base.start_notify, notify_base.publish

NATIONAL = Principal("admin", Role.NATIONAL_ADMIN)
OVERSIGHT = Principal("ombudsman", Role.OVERSIGHT)
PUPR = Principal("siti", Role.AGENCY_OFFICER, "PUPR-13.03")

ROAD = ("Jalan rusak berlubang di Nagari Muaro",
        "Jalan kabupaten di depan Pasar Muaro Sijunjung berlubang besar dan aspalnya rusak, "
        "sudah tiga bulan tidak diperbaiki. Banyak pengendara motor jatuh kalau hujan.")
# The same report as another resident sends it: slang, abbreviations, digits (linked).
ROAD_AGAIN = ("jalan rusak nagari muaro",
              "jln kabupaten di depan pasar muaro sijunjung berlubang besar dan aspalnya rusak, "
              "udah 3 bulan gak diperbaiki. banyak pengendara motor jatuh kalo hujan. tolong pak")
# Typed in a hurry: the same report, but too far from it to link on its own (suggested).
ROAD_TYPOS = ("Jalan rusak berlobang di Nagari Muaro",
              "Jalan kabupatn di depan Pasar Muaro Sijunjung berlobang besar dan aspal nya "
              "rusak, sudah tiga bulan tdk di perbaiki. Bnyak pengendara motor jatuh kalau "
              "hujan.")
# The same street, another problem (neither linked nor suggested).
DRAIN = ("Drainase depan Pasar Muaro tersumbat",
         "Saluran air di depan Pasar Muaro Sijunjung tersumbat sampah plastik. Setiap hujan air "
         "menggenang di jalan kabupaten setinggi betis dan masuk ke kios pedagang.")


# -- routing -----------------------------------------------------------------------------------
class Clock:
    def __init__(self, start: datetime):
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock():
    # Wednesday 2 December 2026, 10:00 WIB.
    return Clock(datetime(2026, 12, 2, 10, 0, tzinfo=WIB).astimezone(UTC))


@pytest.fixture
def engine(database_url):
    engine = db.make_engine(database_url)
    db.migrate(engine, "routing", storage.MIGRATIONS, after=storage.seed_demo)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def classifier():
    from services.routing.classify.store import ModelStore, model_dir
    from services.routing.classify.training import load_or_build

    return load_or_build(ModelStore(model_dir()))


@pytest.fixture
def tickets(engine, clock, classifier):
    outbox = Outbox(engine, storage.outbox, "test-routing", publisher_factory=lambda: None)
    tickets = Tickets(engine, outbox, WorkCalendar(), now=clock)
    # Routing's consumer, as the service wires it.
    tickets.workflow = Workflow(engine, outbox, tickets.calendar, tickets,
                                classifier=classifier)
    return tickets


def submit(tickets, tracking_id: str, text: tuple[str, str], *, region: str = "13.03.01",
           target_agency: str = "PUPR-13.03") -> None:
    """A report as intake sends it, submitted at the clock's time (for Sijunjung's PUPR, so
    that the first of a kind goes there whatever the classifier makes of it)."""
    report = common_pb2.ReportContent(
        kind=common_pb2.REPORT_KIND_PENGADUAN, title=text[0], body=text[1],
        region_code=region, reporter_name="Rina Marlina", channel="web",
        target_agency=target_agency, submitted_at=events.timestamp(tickets.now()))
    envelope = events.new("report.submitted", tracking_id, events_pb2.ReportSubmitted(
        tracking_id=tracking_id, report=report), producer="intake")
    assert tickets.workflow.handle(envelope) == "processed"


def dispatched(tickets, tracking_id: str, text=ROAD, **where) -> None:
    """A report that reached Sijunjung's PUPR (verified by the admin if it waited)."""
    submit(tickets, tracking_id, text, **where)
    if tickets.get(NATIONAL, tracking_id).row.state == "SUBMITTED":
        tickets.verify(NATIONAL, tracking_id, agency_code="PUPR-13.03")
    assert tickets.get(NATIONAL, tracking_id).row.state == "DISPATCHED"


def row_of(tickets, tracking_id: str):
    return tickets.get(NATIONAL, tracking_id).row


def published(engine, tracking_id: str | None = None) -> list:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(storage.outbox).order_by(storage.outbox.c.id)).all()
    found = [events.decode(r.body) for r in rows]
    return [(e.type, events.payload(e)) for e in found
            if tracking_id is None or e.aggregate_id == tracking_id]


def audit(tickets, tracking_id: str) -> list[tuple]:
    return [(e.action, e.actor, e.from_state, e.to_state, e.reason)
            for e in tickets.audit(NATIONAL, tracking_id)]


def candidates(tickets, tracking_id: str, principal=NATIONAL) -> list[tuple]:
    return [(c.tracking_id, c.resolution) for c in tickets.get(principal, tracking_id).candidates]


def test_a_second_near_identical_report_in_sijunjung_is_linked_to_the_first(tickets, clock):
    dispatched(tickets, "LPR-AAA-AAA-AA1")
    clock.advance(days=2)
    submit(tickets, "LPR-AAA-AAA-AA2", ROAD_AGAIN, region="13.03.04")

    linked = row_of(tickets, "LPR-AAA-AAA-AA2")
    assert (linked.state, linked.duplicate_of, linked.deadline) == (
        "ARCHIVED", "LPR-AAA-AAA-AA1", None)
    assert row_of(tickets, "LPR-AAA-AAA-AA1").support_count == 1
    trail = audit(tickets, "LPR-AAA-AAA-AA2")
    assert [(a, actor, f, t) for a, actor, f, t, _ in trail] == [
        ("submit", "citizen", "", "SUBMITTED"), ("link", "system", "SUBMITTED", "ARCHIVED")]
    assert trail[1][4].startswith("DUPLICATE — kemiripan 0.9")

    # The duplicate never reached an agency; its reporter is told it follows the first.
    sent = published(tickets.engine, "LPR-AAA-AAA-AA2")
    assert [t for t, _ in sent] == ["ticket.status_changed", "ticket.status_changed",
                                    "ticket.linked"]
    archived, link = sent[1][1], sent[2][1]
    assert (archived.action, archived.to_state, archived.ticket_version) == (
        "link", common_pb2.TICKET_STATE_ARCHIVED, 2)
    assert archived.public_note == "Digabung dengan laporan LPR-AAA-AAA-AA1"
    assert (link.tracking_id, link.master_tracking_id, link.ticket_version,
            link.actor_role) == ("LPR-AAA-AAA-AA2", "LPR-AAA-AAA-AA1", 2, "system")
    assert link.similarity >= 0.85
    assert (link.master_state, link.master_agency.code) == (
        common_pb2.TICKET_STATE_DISPATCHED, "PUPR-13.03")
    assert link.HasField("master_deadline") and link.master_deadline_zone == "WIB"

    # Both tickets show the pair, settled; the agency holding the master sees no candidates.
    assert candidates(tickets, "LPR-AAA-AAA-AA1") == [("LPR-AAA-AAA-AA2", "linked")]
    assert candidates(tickets, "LPR-AAA-AAA-AA2") == [("LPR-AAA-AAA-AA1", "linked")]
    assert candidates(tickets, "LPR-AAA-AAA-AA1", PUPR) == []

    # Intake's count, which includes the link once intake has heard of it, never lowers it.
    with tickets.engine.begin() as conn:
        tickets.record_support(conn, "LPR-AAA-AAA-AA1", 1)
    assert row_of(tickets, "LPR-AAA-AAA-AA1").support_count == 1
    with tickets.engine.begin() as conn:
        tickets.record_support(conn, "LPR-AAA-AAA-AA1", 3)
    assert row_of(tickets, "LPR-AAA-AAA-AA1").support_count == 3


def test_a_third_copy_links_to_the_earliest_open_one(tickets, clock):
    dispatched(tickets, "LPR-AAA-AAA-AA1")
    clock.advance(hours=1)
    submit(tickets, "LPR-AAA-AAA-AA2", ROAD_TYPOS)       # a suggestion, waiting in triage
    clock.advance(hours=1)
    submit(tickets, "LPR-AAA-AAA-AA3", ROAD)             # the same text once more
    assert row_of(tickets, "LPR-AAA-AAA-AA3").duplicate_of == "LPR-AAA-AAA-AA1"
    assert row_of(tickets, "LPR-AAA-AAA-AA1").support_count == 1


def test_a_near_match_is_suggested_on_both_tickets_and_waits_for_the_admin(tickets, clock):
    dispatched(tickets, "LPR-AAA-AAA-AA1")
    clock.advance(days=1)
    submit(tickets, "LPR-AAA-AAA-AA2", ROAD_TYPOS)

    near = row_of(tickets, "LPR-AAA-AAA-AA2")
    # Not merged silently, not sent to the agency either: the admin decides first.
    assert (near.state, near.agency_code, near.duplicate_of) == (
        "SUBMITTED", "ADMIN-NASIONAL", "")
    assert near.suggested_agency == "PUPR-13.03"
    assert "mirip laporan terbuka LPR-AAA-AAA-AA1" in near.decision
    assert candidates(tickets, "LPR-AAA-AAA-AA2") == [("LPR-AAA-AAA-AA1", "")]
    assert candidates(tickets, "LPR-AAA-AAA-AA1") == [("LPR-AAA-AAA-AA2", "")]
    assert candidates(tickets, "LPR-AAA-AAA-AA1", OVERSIGHT) == [("LPR-AAA-AAA-AA2", "")]
    assert row_of(tickets, "LPR-AAA-AAA-AA1").support_count == 0
    assert not [t for t, _ in published(tickets.engine) if t == "ticket.linked"]

    # Another problem on the same street is neither linked nor suggested.
    submit(tickets, "LPR-AAA-AAA-AA3", DRAIN)
    assert candidates(tickets, "LPR-AAA-AAA-AA3") == []
    assert row_of(tickets, "LPR-AAA-AAA-AA3").duplicate_of == ""


def test_the_admin_links_a_suggestion(tickets, clock):
    dispatched(tickets, "LPR-AAA-AAA-AA1")
    submit(tickets, "LPR-AAA-AAA-AA2", ROAD_TYPOS)
    clock.advance(hours=3)
    with pytest.raises(Forbidden):  # only the national admin decides
        tickets.link_duplicate(OVERSIGHT, "LPR-AAA-AAA-AA2",
                               master_tracking_id="LPR-AAA-AAA-AA1")

    row = tickets.link_duplicate(NATIONAL, "LPR-AAA-AAA-AA2",
                                 master_tracking_id="LPR-AAA-AAA-AA1", expected_version=1)
    assert (row.state, row.duplicate_of, row.version) == ("ARCHIVED", "LPR-AAA-AAA-AA1", 2)
    assert row_of(tickets, "LPR-AAA-AAA-AA1").support_count == 1
    assert audit(tickets, "LPR-AAA-AAA-AA2")[-1][:4] == ("link", "admin", "SUBMITTED",
                                                          "ARCHIVED")
    assert candidates(tickets, "LPR-AAA-AAA-AA1") == [("LPR-AAA-AAA-AA2", "linked")]
    [(_, link)] = [e for e in published(tickets.engine, "LPR-AAA-AAA-AA2")
                   if e[0] == "ticket.linked"]
    assert (link.actor_role, link.master_tracking_id) == ("national_admin", "LPR-AAA-AAA-AA1")
    assert 0.6 <= link.similarity < 0.85  # the suggestion's own score

    # Once linked, it stays so.
    with pytest.raises(Refused, match="linked to LPR-AAA-AAA-AA1 already"):
        tickets.dismiss_duplicate(NATIONAL, "LPR-AAA-AAA-AA1", candidate="LPR-AAA-AAA-AA2")


def test_the_admin_may_only_link_a_report_in_triage_to_an_open_ticket(tickets, clock):
    dispatched(tickets, "LPR-AAA-AAA-AA1")
    dispatched(tickets, "LPR-AAA-AAA-AA2", DRAIN)
    submit(tickets, "LPR-AAA-AAA-AA3", ROAD_TYPOS)
    with pytest.raises(Refused, match="LPR-AAA-AAA-AA2 is DISPATCHED: only a report still in "
                                      "triage"):
        tickets.link_duplicate(NATIONAL, "LPR-AAA-AAA-AA2", master_tracking_id="LPR-AAA-AAA-AA1")
    with pytest.raises(NotFound):
        tickets.link_duplicate(NATIONAL, "LPR-AAA-AAA-AA3", master_tracking_id="LPR-ZZZ-ZZZ-ZZ9")
    closed(tickets, "LPR-AAA-AAA-AA1")
    with pytest.raises(Refused, match="LPR-AAA-AAA-AA1 is CLOSED: only an open ticket"):
        tickets.link_duplicate(NATIONAL, "LPR-AAA-AAA-AA3", master_tracking_id="LPR-AAA-AAA-AA1")
    assert row_of(tickets, "LPR-AAA-AAA-AA3").state == "SUBMITTED"


def test_the_admin_dismisses_a_suggestion_and_dispatches_the_report(tickets, clock):
    dispatched(tickets, "LPR-AAA-AAA-AA1")
    submit(tickets, "LPR-AAA-AAA-AA2", ROAD_TYPOS)
    with pytest.raises(Refused, match="no duplicate suggestion pairs"):
        tickets.dismiss_duplicate(NATIONAL, "LPR-AAA-AAA-AA2", candidate="LPR-ZZZ-ZZZ-ZZ9")

    # From either ticket of the pair, as often as the admin clicks: one decision.
    for _ in range(2):
        row = tickets.dismiss_duplicate(NATIONAL, "LPR-AAA-AAA-AA1",
                                        candidate="LPR-AAA-AAA-AA2")
        assert row.tracking_id == "LPR-AAA-AAA-AA1"
    assert candidates(tickets, "LPR-AAA-AAA-AA2") == [("LPR-AAA-AAA-AA1", "dismissed")]
    assert [a[0] for a in audit(tickets, "LPR-AAA-AAA-AA1")].count("dismiss_duplicate") == 1
    assert row_of(tickets, "LPR-AAA-AAA-AA2").state == "SUBMITTED"
    row = tickets.verify(NATIONAL, "LPR-AAA-AAA-AA2")
    assert (row.state, row.agency_code, row.duplicate_of) == ("DISPATCHED", "PUPR-13.03", "")
    assert row_of(tickets, "LPR-AAA-AAA-AA1").support_count == 0


def test_after_30_days_the_same_report_is_a_new_ticket(tickets, clock):
    dispatched(tickets, "LPR-AAA-AAA-AA1")
    clock.advance(days=31)
    submit(tickets, "LPR-AAA-AAA-AA2", ROAD)
    row = row_of(tickets, "LPR-AAA-AAA-AA2")
    assert (row.state, row.duplicate_of) == ("DISPATCHED", "")
    assert candidates(tickets, "LPR-AAA-AAA-AA2") == []

    clock.advance(days=29)  # within 30 days of the second: linked to it, not to the first
    submit(tickets, "LPR-AAA-AAA-AA3", ROAD_AGAIN)
    assert row_of(tickets, "LPR-AAA-AAA-AA3").duplicate_of == "LPR-AAA-AAA-AA2"


def closed(tickets, tracking_id: str) -> None:
    tickets.accept(PUPR, tracking_id, complexity=Complexity.SIMPLE)
    tickets.follow_up(PUPR, tracking_id, response="Lubang sudah ditambal.")
    tickets.close(PUPR, tracking_id)


def test_a_closed_or_archived_ticket_is_no_master(tickets, clock):
    dispatched(tickets, "LPR-AAA-AAA-AA1")
    submit(tickets, "LPR-AAA-AAA-AA2", ROAD_TYPOS)          # waits in triage...
    tickets.archive(NATIONAL, "LPR-AAA-AAA-AA2", reason="SPAM")  # ...and is archived
    closed(tickets, "LPR-AAA-AAA-AA1")
    clock.advance(hours=1)
    # Word for word the archived one, and near-identical to the closed one: a new ticket.
    dispatched(tickets, "LPR-AAA-AAA-AA3", ROAD_TYPOS)
    assert row_of(tickets, "LPR-AAA-AAA-AA3").duplicate_of == ""
    assert candidates(tickets, "LPR-AAA-AAA-AA3") == []
    assert row_of(tickets, "LPR-AAA-AAA-AA1").support_count == 0


def test_reports_of_another_regency_or_category_are_never_linked(tickets, clock):
    dispatched(tickets, "LPR-AAA-AAA-AA1")
    submit(tickets, "LPR-AAA-AAA-AA2", ROAD, region="13.04", target_agency="")
    assert row_of(tickets, "LPR-AAA-AAA-AA2").duplicate_of == ""
    assert candidates(tickets, "LPR-AAA-AAA-AA2") == []

    # The same text, but the admin put the first in another category.
    with tickets.engine.begin() as conn:
        conn.execute(storage.tickets.update().where(
            storage.tickets.c.tracking_id == "LPR-AAA-AAA-AA1").values(category="LAINNYA"))
    submit(tickets, "LPR-AAA-AAA-AA3", ROAD)
    assert row_of(tickets, "LPR-AAA-AAA-AA3").duplicate_of == ""


def test_a_report_handled_by_two_replicas_at_once_gets_one_ticket(tickets, clock):
    """Both find no ticket and both open one: the second's insert fails on the report's
    key, and handled again (its retry) it finds the ticket. No dedupe row decides it, so
    the same holds for a second relay's copy under another event id."""
    import threading

    report = common_pb2.ReportContent(
        kind=common_pb2.REPORT_KIND_PENGADUAN, title=ROAD[0], body=ROAD[1],
        region_code="13.03", channel="web", submitted_at=events.timestamp(clock()))
    copies = [events.new("report.submitted", "LPR-AAA-AAA-AA1", events_pb2.ReportSubmitted(
        tracking_id="LPR-AAA-AAA-AA1", report=report), producer="intake") for _ in range(2)]
    start, outcomes = threading.Barrier(2), []

    def handle(envelope):
        start.wait()
        try:
            outcomes.append(tickets.workflow.handle(envelope))
        except sa.exc.IntegrityError:
            outcomes.append(tickets.workflow.handle(envelope))  # the retry

    threads = [threading.Thread(target=handle, args=(e,)) for e in copies]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["duplicate", "processed"]
    with tickets.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(storage.tickets)).scalar() == 1
    assert len([t for t, _ in published(tickets.engine) if t == "ticket.dispatched"]) <= 1


def test_a_redelivered_report_links_once(tickets, clock):
    dispatched(tickets, "LPR-AAA-AAA-AA1")
    report = common_pb2.ReportContent(
        kind=common_pb2.REPORT_KIND_PENGADUAN, title=ROAD_AGAIN[0], body=ROAD_AGAIN[1],
        region_code="13.03", channel="web", submitted_at=events.timestamp(clock()))
    envelope = events.new("report.submitted", "LPR-AAA-AAA-AA2", events_pb2.ReportSubmitted(
        tracking_id="LPR-AAA-AAA-AA2", report=report), producer="intake")
    assert tickets.workflow.handle(envelope) == "processed"
    assert tickets.workflow.handle(envelope) == "duplicate"
    assert row_of(tickets, "LPR-AAA-AAA-AA1").support_count == 1
    assert len([t for t, _ in published(tickets.engine) if t == "ticket.linked"]) == 1


def test_a_batch_asks_once_which_of_its_reports_have_a_ticket(tickets, clock):
    """Routing's consumer hands a batch's events to Workflow.prepare first: one statement
    says which of its reports have a ticket, where each report asked on its own (on
    PostgreSQL a round trip each). A report ticketed before the batch and one submitted
    twice within it are duplicates all the same, and each report gets one ticket."""
    dispatched(tickets, "LPR-AAA-AAA-AA1")

    def submitted(tracking_id, text):
        report = common_pb2.ReportContent(
            kind=common_pb2.REPORT_KIND_PENGADUAN, title=text[0], body=text[1],
            region_code="13.03.01", channel="web", target_agency="PUPR-13.03",
            submitted_at=events.timestamp(clock()))
        return events.new("report.submitted", tracking_id, events_pb2.ReportSubmitted(
            tracking_id=tracking_id, report=report), producer="intake")

    batch = [submitted("LPR-AAA-AAA-AA1", ROAD), submitted("LPR-AAA-AAA-AA2", DRAIN),
             submitted("LPR-AAA-AAA-AA3", ROAD_AGAIN), submitted("LPR-AAA-AAA-AA2", DRAIN)]
    asked: list[str] = []
    sa.event.listen(tickets.engine, "before_cursor_execute",
                    lambda _c, _cur, statement, *_rest: asked.append(statement))
    with db.batch(tickets.engine):
        tickets.workflow.prepare(batch)
        outcomes = [tickets.workflow.handle(envelope) for envelope in batch]
    assert outcomes == ["duplicate", "processed", "processed", "duplicate"]
    with tickets.engine.connect() as conn:
        opened = conn.execute(sa.select(storage.tickets.c.tracking_id)).scalars().all()
    assert sorted(opened) == ["LPR-AAA-AAA-AA1", "LPR-AAA-AAA-AA2", "LPR-AAA-AAA-AA3"]
    one_by_one = workflow._TICKET_OF_REPORT._plan(tickets.engine.dialect)[0]
    assert one_by_one not in asked
    assert len([s for s in asked if "tickets.tracking_id IN" in s]) == 1, asked


# -- notify ---------------------------------------------------------------------------------------
MASTER_EMAIL, FOLLOWER_EMAIL, OTHER_EMAIL = (
    "rina@example.id", "budi@example.id", "ani@example.org")
AGENCY = common_pb2.Agency(code="PUPR-13.03", name="Dinas PUPR Kabupaten Sijunjung",
                           level="regency", region_code="13.03")


def registered(tid, address, language="id"):
    return events.new("reporter.registered", tid, events_pb2.ReporterRegistered(
        tracking_id=tid, name="Pelapor", email=address, language=language), "intake")


def linked(tid, master, version=2):
    msg = events_pb2.TicketLinked(
        tracking_id=tid, master_tracking_id=master, similarity=0.93, ticket_version=version,
        actor_role="system", master_state=common_pb2.TICKET_STATE_DISPATCHED,
        master_agency=AGENCY, master_deadline_zone="WIB",
        master_deadline=events.timestamp(datetime(2026, 12, 9, 9, 0, tzinfo=UTC)))
    return events.new("ticket.linked", tid, msg, "routing")


def changed(tid, action, to_state, version, *, public_note, reporter_note="",
            confidential=False):
    return events.new("ticket.status_changed", tid, events_pb2.TicketStatusChanged(
        tracking_id=tid, ticket_id="T-" + tid, from_state=common_pb2.TICKET_STATE_DISPATCHED,
        to_state=to_state, actor_role="agency_officer", deadline_zone="WIB",
        public_note=public_note, reporter_note=reporter_note, agency=AGENCY,
        ticket_version=version, action=action, confidential=confidential), "routing")


def relayed(tid, text):
    return events.new("ticket.message", tid, events_pb2.TicketMessage(
        tracking_id=tid, ticket_id="T-" + tid, agency=AGENCY, direction="to_reporter",
        text=text, ticket_version=3), "routing")


def texts(smtp, address) -> list[tuple[str, str]]:
    return [(m["Subject"], m.get_body(("plain",)).get_content()) for m in smtp.to(address)]


def test_followers_hear_of_the_link_and_then_of_the_masters_progress(start_notify, publish,
                                                                     smtp):
    service = start_notify()
    master, follower, other = "LPR-MMM-MMM-MM1", "LPR-FFF-FFF-FF1", "LPR-FFF-FFF-FF2"
    for tid, address, language in ((master, MASTER_EMAIL, "id"),
                                   (follower, FOLLOWER_EMAIL, "id"),
                                   (other, OTHER_EMAIL, "en")):
        publish(registered(tid, address, language))
    publish(linked(follower, master))
    publish(linked(other, master))
    first = wait_for(lambda: texts(smtp, FOLLOWER_EMAIL), what="the link's email")
    assert first[0][0] == f"[LAPOR!] Laporan Anda {follower} digabung dengan {master}"
    assert f"Laporan Anda {follower} digabung dengan laporan {master}" in first[0][1]
    assert "Terdisposisi (Dinas PUPR Kabupaten Sijunjung)" in first[0][1]
    assert "Rabu, 9 Desember 2026 pukul 16.00 WIB" in first[0][1]
    english = wait_for(lambda: texts(smtp, OTHER_EMAIL), what="the English link email")
    assert english[0][0] == f"[LAPOR!] Your report {other} was linked to {master}"

    # The master's reporter hears of the follow-up with the response; the report is
    # confidential, so followers hear only that it was followed up.
    publish(changed(master, "follow_up", common_pb2.TICKET_STATE_FOLLOWED_UP, 4,
                    public_note="Ditindaklanjuti", confidential=True,
                    reporter_note="Lubang di depan rumah Ibu Rina sudah kami tambal."))
    # A message relayed to the master's reporter is theirs alone.
    publish(relayed(master, "Mohon kirim foto lubang yang tersisa, Bu Rina."))
    publish(changed(master, "close", common_pb2.TICKET_STATE_CLOSED, 5, public_note="Selesai"))

    wait_for(lambda: len(smtp.to(MASTER_EMAIL)) == 3, what="the master's three emails")
    wait_for(lambda: len(smtp.to(FOLLOWER_EMAIL)) == 3 and len(smtp.to(OTHER_EMAIL)) == 3,
             what="each follower's three emails")
    subjects = [s for s, _ in texts(smtp, FOLLOWER_EMAIL)]
    assert subjects[1:] == [
        f"[LAPOR!] Laporan {follower} (digabung dengan {master}): Ditindaklanjuti",
        f"[LAPOR!] Laporan {follower} (digabung dengan {master}): Selesai"]
    update = texts(smtp, FOLLOWER_EMAIL)[1][1]
    assert f"Laporan Anda {follower} digabung dengan laporan {master}" in update
    assert f"/api/v1/reports/{follower}" in update  # their own report's page
    assert [s for s, _ in texts(smtp, OTHER_EMAIL)][2] == \
        f"[LAPOR!] Report {other} (linked to {master}): Closed"
    for address in (FOLLOWER_EMAIL, OTHER_EMAIL):
        for _, body in texts(smtp, address):
            assert "Ibu Rina" not in body and "Bu Rina" not in body and "foto" not in body
    assert any("Ibu Rina" in body for _, body in texts(smtp, MASTER_EMAIL))

    with service.engine.connect() as conn:
        following = conn.execute(sa.select(store.followers.c.follower).where(
            store.followers.c.master == master).order_by(store.followers.c.follower)).scalars()
        assert list(following) == [follower, other]
        # Each follower's emails are theirs: their tracking id, their delivery outcomes.
        mine = conn.execute(sa.select(store.deliveries.c.payload).where(
            store.deliveries.c.tracking_id == follower)).scalars().all()
    assert {json.loads(p)["template"] for p in mine} == {"linked", "following"}


def test_a_redelivered_master_event_emails_each_follower_once(start_notify, publish, smtp):
    start_notify()
    master, follower = "LPR-MMM-MMM-MM2", "LPR-FFF-FFF-FF3"
    publish(registered(follower, FOLLOWER_EMAIL))
    publish(registered(master, MASTER_EMAIL))
    publish(linked(follower, master))
    wait_for(lambda: smtp.to(FOLLOWER_EMAIL), what="the link's email")
    event = changed(master, "accept", common_pb2.TICKET_STATE_DISPATCHED, 3,
                    public_note="Diterima oleh Dinas PUPR Kabupaten Sijunjung")
    publish(event)
    publish(event)
    wait_for(lambda: len(smtp.to(FOLLOWER_EMAIL)) == 2, what="the follower's update")
    wait_for(lambda: len(smtp.to(MASTER_EMAIL)) == 1, what="the master's email")
    assert len(smtp.to(FOLLOWER_EMAIL)) == 2


# -- intake ----------------------------------------------------------------------------------------
@pytest.fixture
def intake(database_url):
    from services.intake import readmodel

    app = make_app(database_url, dead_amqp_url(), workers=False)
    yield app, readmodel.ReadModel(app.extensions["lapor"].engine).handle
    ctx = app.extensions["lapor"]
    ctx.routing.close()
    ctx.engine.dispose()


def test_the_linked_report_shows_the_masters_status_and_counts_as_its_support(intake):
    app, feed = intake
    master, follower = Citizen(app), Citizen(app)
    feed(ticket_dispatched(master.tracking_id, version=1))
    feed(status_changed(follower.tracking_id, "SUBMITTED", version=1,
                        agency=common_pb2.Agency(code="ADMIN-NASIONAL",
                                                 name="Admin Nasional SP4N-LAPOR!")))
    link = events.new("ticket.linked", follower.tracking_id, events_pb2.TicketLinked(
        tracking_id=follower.tracking_id, master_tracking_id=master.tracking_id,
        similarity=0.93, ticket_version=2, actor_role="system",
        master_state=common_pb2.TICKET_STATE_DISPATCHED), "routing")
    archived = status_changed(follower.tracking_id, "ARCHIVED", version=2,
                              note=f"Digabung dengan laporan {master.tracking_id}")
    # In either order, and twice: the same outcome.
    feed(archived)
    feed(link)
    feed(link)

    for view in (follower.public(), follower.own()):
        assert view["status"] == "ARCHIVED"
        assert view["status_label"] == f"Digabung dengan laporan {master.tracking_id}"
        assert view["linked_to"]["tracking_id"] == master.tracking_id
        assert view["linked_to"]["status"] == "DISPATCHED"
        assert view["linked_to"]["agency"]["code"] == SIJUNJUNG_PUPR.code
        assert view["linked_to"]["status_label"] == f"Terdisposisi ke {SIJUNJUNG_PUPR.name}"
    assert master.public()["support_count"] == 1
    assert master.public()["linked_to"] is None

    # The master moves on: the linked report shows it at once.
    feed(status_changed(master.tracking_id, "FOLLOWED_UP", version=3, note="Sudah ditambal"))
    assert follower.public()["linked_to"]["status"] == "FOLLOWED_UP"
    assert follower.own()["actions"] == []
    # Supporting the linked report is refused: its support goes to the master.
    answer = follower.client.post(f"/api/v1/reports/{follower.tracking_id}/support")
    assert answer.status_code == 409 and answer.get_json()["code"] == "report_archived"
    support = master.client.post(f"/api/v1/reports/{master.tracking_id}/support",
                                 headers={"X-Client-Key": "client-0001"})
    assert support.get_json()["support_count"] == 2
