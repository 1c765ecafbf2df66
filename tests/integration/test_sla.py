"""The SLA clock on a real database (SQLite and PostgreSQL), with time moved through the clock
file (ROUTING_CLOCK_FILE's FileClock) instead of waited for: warnings one working day before
a deadline, escalation to the parent and then to the national admin, the verification
reminder, auto-close, the pause while on hold, the 60-day oversight flag, and two replicas
running the job at once without doing anything twice.

Dates are in July 2026 (no holidays from 1 to 31 July); WIB is UTC+7."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from lapor.v1 import common_pb2, events_pb2
from services.infra import db, events
from services.infra.outbox import Outbox
from services.routing import metrics, storage
from services.routing.principal import Principal
from services.routing.rules import TRIAGE_AGENCY
from services.routing.tickets.commands import Tickets
from services.routing.tickets.sla import FileClock, SlaJob
from services.routing.tickets.statemachine import Role
from services.routing.workdays import WIB, WorkCalendar
from services.routing.workflow import Workflow
from tests.integration.helpers import classifier, metric, scrape, scraped, start_routing, wait_for

pytestmark = pytest.mark.integration

ADMIN = Principal("admin-nasional", Role.NATIONAL_ADMIN)
OFFICER = Principal("petugas-pupr", Role.AGENCY_OFFICER, "PUPR-13.03")
PUPR, PEMDA = "PUPR-13.03", "PEMDA-13.03"


def wib(day: int, hour: int, minute: int = 0, second: int = 0, month: int = 7) -> datetime:
    return datetime(2026, month, day, hour, minute, second, tzinfo=WIB)


class ClockFile:
    """The file ROUTING_CLOCK_FILE names; `set` replaces it the way the docs say to."""

    def __init__(self, path):
        self.path = path
        self.set(wib(1, 9))

    def set(self, moment: datetime) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(moment.isoformat())
        os.replace(tmp, self.path)


class Replica:
    """What one routing replica runs for the clock: its own engine, Tickets and SLA job."""

    def __init__(self, database_url: str, clock_path):
        self.engine = db.make_engine(database_url)
        self.outbox = Outbox(self.engine, storage.outbox, "routing", lambda: None)
        calendar = WorkCalendar()
        self.tickets = Tickets(self.engine, self.outbox, calendar, now=FileClock(clock_path))
        self.workflow = Workflow(self.engine, self.outbox, calendar, self.tickets,
                                 classifier=classifier())
        self.job = SlaJob(self.tickets, interval=3600)


@pytest.fixture
def world(database_url, tmp_path):
    engine = db.make_engine(database_url)
    db.migrate(engine, "routing", storage.MIGRATIONS, after=storage.seed_demo)
    engine.dispose()
    clock = ClockFile(tmp_path / "clock")
    replicas = []

    def replica() -> Replica:
        replicas.append(Replica(database_url, clock.path))
        return replicas[-1]

    first = replica()
    first.clock, first.replica = clock, replica
    yield first
    for r in replicas:
        r.engine.dispose()


def submit(world, submitted_at: datetime, title: str = "Jalan rusak") -> str:
    """A report too short to dispatch on its own: it waits in triage (SUBMITTED) with
    PUPR-13.03 suggested; the verification clock runs from `submitted_at`."""
    tracking_id = "LAP" + uuid.uuid4().hex[:10].upper()
    report = common_pb2.ReportContent(
        kind=common_pb2.ReportKind.REPORT_KIND_PENGADUAN, title=title,
        body="Jalan berlubang.", region_code="13.03", category="PUPR",
        reporter_name="Rina Marlina", channel="web",
        submitted_at=events.timestamp(submitted_at))
    envelope = events.new("report.submitted", tracking_id, events_pb2.ReportSubmitted(
        tracking_id=tracking_id, report=report), producer="intake")
    assert world.workflow.handle(envelope) == "processed"
    assert ticket(world, tracking_id).state == "SUBMITTED"
    return tracking_id


def dispatched(world, at: datetime, title: str = "Jalan rusak") -> str:
    """Verified and dispatched to PUPR-13.03 by the national admin at `at`."""
    tracking_id = submit(world, at - timedelta(hours=1), title)
    world.clock.set(at)
    world.tickets.verify(ADMIN, tracking_id, agency_code=PUPR)
    return tracking_id


def ticket(world, tracking_id: str):
    with world.engine.connect() as conn:
        return conn.execute(sa.select(storage.tickets).where(
            storage.tickets.c.tracking_id == tracking_id)).one()


def sent(world, event_type: str, tracking_id: str | None = None) -> list:
    """The payloads of the events of that type in the outbox, oldest first."""
    o = storage.outbox
    query = sa.select(o.c.body).where(o.c.event_type == event_type).order_by(o.c.id)
    if tracking_id:
        query = query.where(o.c.aggregate_id == tracking_id)
    with world.engine.connect() as conn:
        return [events.payload(events.decode(body)) for body in conn.execute(query).scalars()]


def run_at(world, moment: datetime) -> dict:
    world.clock.set(moment)
    return world.job.run_once()


def test_warning_goes_out_one_working_day_before_the_deadline(world):
    tracking_id = dispatched(world, wib(7, 10))       # Tue 7 Jul: due Tue 14 Jul 16:00
    assert ticket(world, tracking_id).deadline_zone == "WIB"
    before = metric("lapor_sla_warnings_total", clock="respond")

    run_at(world, wib(13, 15, 59))                   # Mon 13 Jul, a minute early
    assert sent(world, "ticket.sla_warning", tracking_id) == []

    assert run_at(world, wib(13, 16, 0, 30))["warned"] == 1
    [warning] = sent(world, "ticket.sla_warning", tracking_id)
    assert warning.clock == "respond" and warning.agency.code == PUPR
    assert warning.deadline.ToDatetime().isoformat() == "2026-07-14T09:00:00"  # 16:00 WIB
    assert metric("lapor_sla_warnings_total", clock="respond") == before + 1

    run_at(world, wib(14, 12))                       # later passes do not repeat it
    assert len(sent(world, "ticket.sla_warning", tracking_id)) == 1


def test_a_monday_deadline_is_warned_about_on_friday_not_on_sunday(world):
    tracking_id = dispatched(world, wib(6, 10))       # Mon 6 Jul: due Mon 13 Jul 16:00
    run_at(world, wib(10, 15, 59))                   # Fri 10 Jul, a minute early
    assert sent(world, "ticket.sla_warning", tracking_id) == []
    run_at(world, wib(10, 16, 1))                    # Friday at 16:00, not Sunday at 16:00
    assert len(sent(world, "ticket.sla_warning", tracking_id)) == 1
    run_at(world, wib(12, 16, 1))
    assert len(sent(world, "ticket.sla_warning", tracking_id)) == 1


def test_a_missed_deadline_escalates_to_the_parent_agency(world):
    tracking_id = dispatched(world, wib(6, 10), title="Jembatan putus di Muaro")
    before = metric("lapor_ticket_escalations_total", kind="parent")

    run_at(world, wib(13, 15, 59))
    assert ticket(world, tracking_id).agency_code == PUPR
    assert run_at(world, wib(13, 16, 0, 1))["escalated"] == 1

    row = ticket(world, tracking_id)
    assert (row.state, row.agency_code, row.escalation_level) == ("DISPATCHED", PEMDA, 1)
    [escalated] = sent(world, "ticket.escalated", tracking_id)
    assert escalated.kind == "parent"
    assert (escalated.from_agency.code, escalated.to_agency.code) == (PUPR, PEMDA)
    # The parent gets the ticket with what it needs to act on it, and a fresh clock.
    handed = [d for d in sent(world, "ticket.dispatched", tracking_id) if d.agency.code == PEMDA]
    assert len(handed) == 1 and handed[0].report.title == "Jembatan putus di Muaro"
    assert handed[0].report.reporter_name == "Rina Marlina"
    assert row.deadline.replace(tzinfo=None) == datetime(2026, 7, 20, 9, 0)  # Mon 16:00 WIB
    assert metric("lapor_ticket_escalations_total", kind="parent") == before + 1



def test_when_the_parent_misses_its_deadline_too_the_national_admin_gets_it(world):
    tracking_id = dispatched(world, wib(6, 10))
    run_at(world, wib(13, 16, 0, 1))
    assert ticket(world, tracking_id).agency_code == PEMDA
    # The parent is warned about its own deadline, then misses it too.
    run_at(world, wib(17, 16, 1))
    assert [w.agency.code for w in sent(world, "ticket.sla_warning", tracking_id)] == [PEMDA]
    before = metric("lapor_ticket_escalations_total", kind="national")
    assert run_at(world, wib(20, 16, 0, 1))["escalated"] == 1
    row = ticket(world, tracking_id)
    kinds = [e.kind for e in sent(world, "ticket.escalated", tracking_id)]
    assert kinds == ["parent", "national"]
    assert (row.state, row.agency_code) == ("SUBMITTED", TRIAGE_AGENCY)
    assert row.escalation_level == 2
    assert metric("lapor_ticket_escalations_total", kind="national") == before + 1


def test_an_overdue_verification_reminds_the_national_admin(world):
    tracking_id = submit(world, wib(7, 9))           # verify by Fri 10 Jul 16:00
    before = metric("lapor_ticket_escalations_total", kind="verification")
    run_at(world, wib(9, 16, 1))
    [warning] = sent(world, "ticket.sla_warning", tracking_id)
    assert warning.clock == "verify"
    run_at(world, wib(10, 16, 1))
    [escalated] = sent(world, "ticket.escalated", tracking_id)
    assert escalated.kind == "verification"
    row = ticket(world, tracking_id)
    assert row.state == "SUBMITTED" and row.escalation_level == 1
    # The reminder repeats after another verification period, not at every pass.
    run_at(world, wib(10, 17))
    assert len(sent(world, "ticket.escalated", tracking_id)) == 1
    assert row.deadline.replace(tzinfo=None) == datetime(2026, 7, 15, 9, 0)
    assert metric("lapor_ticket_escalations_total", kind="verification") == before + 1


def test_a_followed_up_ticket_closes_itself_after_ten_working_days(world):
    tracking_id = dispatched(world, wib(6, 10))
    world.clock.set(wib(8, 10))
    on_time = metric("lapor_followups_total", on_time="true")
    world.tickets.follow_up(OFFICER, tracking_id, response="Jalan sudah ditambal.")
    assert metric("lapor_followups_total", on_time="true") == on_time + 1
    auto_closed = metric("lapor_tickets_auto_closed_total")
    # Ten working days from Wed 8 Jul: Wed 22 Jul 16:00; the reporter's warning goes out on
    # Tue 21 Jul at 16:00.
    run_at(world, wib(21, 15, 59))
    assert [w.clock for w in sent(world, "ticket.sla_warning", tracking_id)] == []
    run_at(world, wib(21, 16, 1))
    assert [w.clock for w in sent(world, "ticket.sla_warning", tracking_id)] == ["auto_close"]
    assert run_at(world, wib(22, 16, 1))["auto_closed"] == 1
    row = ticket(world, tracking_id)
    assert row.state == "CLOSED" and row.closed_at is not None
    closed = sent(world, "ticket.status_changed", tracking_id)[-1]
    assert closed.action == "auto_close"
    assert sent(world, "ticket.escalated", tracking_id) == []
    assert metric("lapor_tickets_auto_closed_total") == auto_closed + 1


def test_a_late_follow_up_counts_as_late(world):
    tracking_id = dispatched(world, wib(6, 10))      # due Mon 13 Jul 16:00
    late = metric("lapor_followups_total", on_time="false")
    world.clock.set(wib(13, 16, 30))                  # before the job escalated it
    world.tickets.follow_up(OFFICER, tracking_id, response="Maaf terlambat, sudah ditambal.")
    assert metric("lapor_followups_total", on_time="false") == late + 1


def test_on_hold_pauses_the_clock(world):
    tracking_id = submit(world, wib(7, 9))           # verify by Fri 10 Jul 16:00
    world.clock.set(wib(8, 10))
    world.tickets.hold(ADMIN, tracking_id, question="Di ruas jalan mana tepatnya?")
    for moment in (wib(9, 16, 1), wib(10, 16, 1), wib(20, 10)):
        assert run_at(world, moment) == {"warned": 0, "auto_closed": 0, "escalated": 0,
                                         "flagged": 0, "full": 0}
    assert sent(world, "ticket.sla_warning", tracking_id) == []
    assert sent(world, "ticket.escalated", tracking_id) == []
    # The reporter answers on Mon 20 Jul: the two working days that were left run again.
    world.tickets.reporter_reply(tracking_id, "Di depan kantor wali nagari.")
    row = ticket(world, tracking_id)
    assert row.state == "SUBMITTED"
    assert row.deadline.replace(tzinfo=None) == datetime(2026, 7, 22, 9, 0)
    run_at(world, wib(21, 16, 1))
    assert len(sent(world, "ticket.sla_warning", tracking_id)) == 1


def test_sixty_days_unresolved_flags_the_ticket_for_oversight_once(world):
    tracking_id = submit(world, wib(7, 9))
    world.clock.set(wib(8, 10))
    world.tickets.hold(ADMIN, tracking_id, question="Mohon lampirkan foto.")
    before = metric("lapor_ticket_escalations_total", kind="oversight")
    run_at(world, wib(5, 8, month=9))                # 59 days and 23 hours
    assert sent(world, "ticket.escalated", tracking_id) == []
    assert run_at(world, wib(5, 9, 1, month=9))["flagged"] == 1
    run_at(world, wib(6, 9, month=9))
    [flag] = sent(world, "ticket.escalated", tracking_id)
    assert flag.kind == "oversight"
    row = ticket(world, tracking_id)
    assert row.oversight_flagged_at is not None and row.state == "ON_HOLD"
    assert metric("lapor_ticket_escalations_total", kind="oversight") == before + 1


def test_two_replicas_running_the_job_at_once_warn_and_escalate_once(world):
    other = world.replica()
    ids = [dispatched(world, wib(6, 10), title=f"Jalan rusak {i}") for i in range(12)]

    def race(moment: datetime) -> None:
        world.clock.set(moment)
        start = threading.Barrier(2)
        errors = []

        def run(replica):
            try:
                start.wait(10)
                replica.job.run_once()
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(r,)) for r in (world, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors and not any(t.is_alive() for t in threads), errors

    def per_ticket(event_type: str) -> Counter:
        return Counter(e.tracking_id for e in sent(world, event_type))

    race(wib(10, 16, 1))                             # Friday: the warnings
    assert per_ticket("ticket.sla_warning") == dict.fromkeys(ids, 1)
    race(wib(13, 16, 1))                             # Monday: the escalations to the parent
    assert per_ticket("ticket.escalated") == dict.fromkeys(ids, 1)
    race(wib(17, 16, 1))                             # the parent's warnings
    assert per_ticket("ticket.sla_warning") == dict.fromkeys(ids, 2)
    race(wib(20, 16, 1))                             # the parent missed it too
    assert per_ticket("ticket.escalated") == dict.fromkeys(ids, 2)
    with world.engine.connect() as conn:
        h = storage.ticket_history
        escalations = conn.execute(sa.select(sa.func.count()).where(
            h.c.action == "escalate")).scalar()
    assert escalations == 2 * len(ids)


def test_ticket_gauges_count_by_state_and_level_and_show_the_overdue(world):
    late = dispatched(world, wib(6, 10))             # due Mon 13 Jul 16:00
    dispatched(world, wib(8, 10))                    # due Wed 15 Jul 16:00
    submit(world, wib(7, 9))                         # in triage, verify by Fri 10 Jul
    metrics.TICKETS.watch(world.tickets)
    try:
        world.clock.set(wib(9, 12))
        assert metric("lapor_tickets", state="DISPATCHED", level="regency") == 2
        assert metric("lapor_tickets", state="SUBMITTED", level="triage") == 1
        assert metric("lapor_tickets", state="CLOSED", level="national") == 0
        assert metric("lapor_tickets_overdue", level="regency") == 0

        world.clock.set(wib(14, 9))                  # the first deadline has passed...
        assert metric("lapor_tickets_overdue", level="regency") == 1
        assert metric("lapor_tickets_overdue", level="triage") == 1
        world.job.run_once()                         # ...and stays counted once escalated
        assert ticket(world, late).agency_code == PEMDA
        assert metric("lapor_tickets_overdue", level="regency") == 1
        assert metric("lapor_tickets", state="DISPATCHED", level="regency") == 2
    finally:
        metrics.TICKETS.forget(world.tickets)


def test_ticket_metrics_are_the_ones_alerts_and_dashboards_are_checked_against(world):
    from prometheus_client import REGISTRY

    from tests.deploy.test_k8s import METRICS

    dispatched(world, wib(6, 10))
    metrics.TICKETS.watch(world.tickets)
    try:
        exported = {}
        for family in REGISTRY.collect():
            for sample in family.samples:
                if sample.name in METRICS and sample.name.startswith(
                        ("lapor_tickets", "lapor_followups", "lapor_ticket_escalations",
                         "lapor_sla_warnings")):
                    for label, value in sample.labels.items():
                        exported.setdefault((sample.name, label), set()).add(value)
    finally:
        metrics.TICKETS.forget(world.tickets)
    names = {name for name, _ in exported}
    assert {"lapor_tickets", "lapor_tickets_overdue", "lapor_followups_total",
            "lapor_ticket_escalations_total", "lapor_sla_warnings_total"} <= names
    for (name, label), values in exported.items():
        # Every value is declared, and all of them are there from the first scrape.
        assert values == METRICS[name][label], (name, label)


def test_a_long_interval_between_passes_never_reads_as_a_wedged_loop(world, monkeypatch):
    from services.routing.tickets import sla

    monkeypatch.setattr(sla, "_BEAT", 0.1)
    job = SlaJob(world.tickets, interval=3600)
    job.loop.stall_after = 0.5
    job.start()
    try:
        wait_for(lambda: job.loop.status().since_beat < 0.5 and job.loop.status().alive, 5)
        time.sleep(1.5)  # three stall limits into the hour-long wait
        assert job.loop.healthy(), job.loop.status()
    finally:
        assert job.stop(5)


def test_routing_runs_the_sla_job_and_exports_ticket_gauges_once(database_url, amqp_url):
    first = start_routing(database_url, amqp_url)
    try:
        text = scrape(first.ops.port)
        assert scraped(text, "lapor_loop_healthy", loop="sla-routing") == 1.0
        assert scraped(text, "lapor_tickets", state="SUBMITTED", level="triage") == 0.0
    finally:
        first.stop()
    # A second service in the same process (tests do this all the time) registers nothing
    # twice and counts from its own database.
    second = start_routing(database_url, amqp_url)
    try:
        text = scrape(second.ops.port)
        samples = [s for family in text_string_to_metric_families(text)
                   for s in family.samples if s.name == "lapor_tickets"
                   and s.labels == {"state": "DISPATCHED", "level": "regency"}]
        assert len(samples) == 1, samples
        assert scraped(text, "lapor_tickets_overdue", level="national") == 0.0
    finally:
        second.stop()


def test_metrics_still_answer_when_the_database_does_not(caplog):
    from prometheus_client import REGISTRY, generate_latest

    from tests.conftest import free_port

    dead = db.make_engine(f"postgresql://lapor:lapor@127.0.0.1:{free_port()}/lapor",
                          pool_timeout=1)
    tickets = Tickets(dead, Outbox(dead, storage.outbox, "routing", lambda: None),
                      WorkCalendar())
    metrics.TICKETS.watch(tickets)
    try:
        for _ in range(3):
            text = generate_latest(REGISTRY).decode()
        assert "lapor_outbox_backlog" in text
        assert scraped(text, "lapor_tickets", state="DISPATCHED", level="regency") is None
        assert caplog.text.count("ticket metrics not collected") == 1
    finally:
        metrics.TICKETS.forget(tickets)
        dead.dispose()
