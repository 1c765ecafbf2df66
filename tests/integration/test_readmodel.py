"""Intake's citizen-facing status on SQLite and PostgreSQL: routing's and notify's events
applied to it (in any order, any number of times) and what the public and the reporter
then see through the API."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from lapor.v1 import common_pb2, events_pb2
from services.infra import db, events, messaging
from services.intake import readmodel, storage
from services.intake.app import create_app
from tests.conftest import free_port
from tests.integration.helpers import (
    SIJUNJUNG_PUPR,
    dead_amqp_url,
    metric,
    notification,
    queue_depth,
    status_changed,
    ticket_dispatched,
    wait_for,
)

pytestmark = pytest.mark.integration

REPORT = {
    "kind": "PENGADUAN", "title": "Jalan rusak di Nagari Muaro",
    "body": "Jalan utama berlubang besar dan aspalnya rusak sejak tiga bulan lalu.",
    "region_code": "13.03", "reporter": {"name": "Siti Rahayu", "email": "siti@example.id"},
}
AGENCY_NAME = "Dinas Pekerjaan Umum dan Penataan Ruang Kabupaten Sijunjung"


def make_app(database_url: str, amqp_url: str, workers: bool):
    return create_app({"DATABASE_URL": database_url, "AMQP_URL": amqp_url,
                       "ROUTING_ADDR": f"127.0.0.1:{free_port()}", "ROUTING_TIMEOUT": 1.0,
                       "START_WORKERS": workers})


class Citizen:
    """A reporter with their report: what they and the public see of it."""

    def __init__(self, app):
        self.client = app.test_client()
        response = self.client.post("/api/v1/reports", json=REPORT)
        assert response.status_code == 201
        answer = response.get_json()
        self.tracking_id, self.token = answer["tracking_id"], answer["access_token"]
        self.submitted_at = datetime.now(UTC)

    def public(self) -> dict:
        response = self.client.get(f"/api/v1/reports/{self.tracking_id}")
        assert response.status_code == 200
        return response.get_json()

    def own(self) -> dict:
        response = self.client.get(f"/api/v1/reports/{self.tracking_id}",
                                   headers={"Authorization": f"Bearer {self.token}"})
        assert response.status_code == 200
        return response.get_json()


@pytest.fixture
def app(database_url):
    app = make_app(database_url, dead_amqp_url(), workers=False)
    yield app
    ctx = app.extensions["lapor"]
    ctx.routing.close()
    ctx.engine.dispose()


@pytest.fixture
def feed(app):
    """Hands an event to the read model as its consumer would."""
    return readmodel.ReadModel(app.extensions["lapor"].engine).handle


def test_an_older_status_change_never_overwrites_a_newer_one(app, feed):
    citizen = Citizen(app)
    t0 = citizen.submitted_at
    assert feed(ticket_dispatched(citizen.tracking_id,
                                  occurred_at=t0 + timedelta(seconds=60))) == "processed"
    view = citizen.public()
    assert view["status"] == "DISPATCHED"
    assert view["status_label"] == f"Terdisposisi ke {AGENCY_NAME}"
    assert view["agency"] == {"code": "PUPR-13.03", "name": AGENCY_NAME}
    assert view["deadline"] == "2030-07-19T09:00:00Z" and view["deadline_zone"] == "WIB"

    # Delivered late: it happened before the dispatch.
    late = status_changed(citizen.tracking_id, "FOLLOWED_UP",
                          occurred_at=t0 + timedelta(seconds=30), note="Sudah ditinjau")
    assert feed(late) == "processed"
    view = citizen.public()
    assert view["status"] == "DISPATCHED", "an older event overwrote a newer status"
    assert view["agency"]["code"] == "PUPR-13.03"
    assert [e["status"] for e in view["timeline"]] == ["SUBMITTED", "FOLLOWED_UP", "DISPATCHED"]

    newer = status_changed(citizen.tracking_id, "FOLLOWED_UP",
                           occurred_at=t0 + timedelta(seconds=90), note="Perbaikan dijadwalkan")
    assert feed(newer) == "processed"
    view = citizen.public()
    assert (view["status"], view["status_label"]) == ("FOLLOWED_UP", "Ditindaklanjuti")
    assert view["timeline"][-1]["note"] == "Perbaikan dijadwalkan"


def test_a_redelivered_event_changes_nothing(app, feed):
    citizen = Citizen(app)
    event = ticket_dispatched(citizen.tracking_id)
    assert feed(event) == "processed"
    before = citizen.own()
    assert feed(event) == "duplicate"
    assert feed(event) == "duplicate"
    assert citizen.own() == before
    assert [e["status"] for e in before["timeline"]] == ["SUBMITTED", "DISPATCHED"]


def test_an_event_replayed_after_retention_forgot_it_still_shows_once(app, feed):
    """The dedupe rows of handled events are deleted after a while; an event replayed from
    a parking queue after that must not show twice."""
    citizen = Citizen(app)
    event = ticket_dispatched(citizen.tracking_id)
    message = notification(citizen.tracking_id, audience="reporter")
    assert feed(event) == "processed" and feed(message) == "processed"
    before = citizen.own()
    with app.extensions["lapor"].engine.begin() as conn:
        conn.execute(storage.processed_events.delete())
    assert feed(event) == "duplicate" and feed(message) == "duplicate"
    assert citizen.own() == before
    assert [e["status"] for e in before["timeline"]] == ["SUBMITTED", "DISPATCHED",
                                                         "NOTIFICATION"]


def test_notifications_to_the_reporter_show_only_in_their_own_timeline(app, feed):
    citizen = Citizen(app)
    feed(ticket_dispatched(citizen.tracking_id))
    feed(notification(citizen.tracking_id, audience="reporter"))
    feed(notification(citizen.tracking_id, audience="reporter", outcome="failed",
                      channel_name="sms"))
    feed(notification(citizen.tracking_id, audience="reporter", channel_name="whatsapp"))
    feed(notification(citizen.tracking_id, audience="agency", channel_name="webhook"))

    own = [(e["status"], e["note"]) for e in citizen.own()["timeline"]]
    assert own[:2] == [("SUBMITTED", "Laporan diterima"),
                       ("DISPATCHED", f"Terdisposisi ke {AGENCY_NAME}")]
    assert sorted(own[2:]) == [("NOTIFICATION", "Pemberitahuan lewat SMS gagal terkirim"),
                               ("NOTIFICATION", "Pemberitahuan terkirim lewat WhatsApp"),
                               ("NOTIFICATION", "Pemberitahuan terkirim lewat email")]
    public = citizen.public()
    assert [e["status"] for e in public["timeline"]] == ["SUBMITTED", "DISPATCHED"]
    assert "Pemberitahuan" not in str(public)
    assert "sistem instansi" not in str(citizen.own()), "the agency's deliveries are not shown"
    assert citizen.public()["status"] == "DISPATCHED", "a notification is not a status"


def test_an_event_for_a_report_intake_does_not_have_is_ignored(app, feed):
    citizen = Citizen(app)
    assert feed(ticket_dispatched("LPR-000-000-000")) == "processed"
    assert citizen.public()["status"] == "SUBMITTED"


def test_events_on_the_broker_reach_the_citizen(database_url, amqp_url):
    app = make_app(database_url, amqp_url, workers=True)
    ctx = app.extensions["lapor"]
    publisher = messaging.Publisher(amqp_url, "test-routing")
    try:
        wait_for(ctx.consumer.consuming.is_set, 10, what="intake's read-model consumer")
        citizen = Citizen(app)
        event = ticket_dispatched(citizen.tracking_id)

        def handled():
            # One batch counts an event applied again as processed (decision 94); alone
            # it is recognised as a duplicate.
            return sum(metric("lapor_events_consumed_total", consumer=readmodel.CONSUMER,
                              type="ticket.dispatched", outcome=outcome)
                       for outcome in ("processed", "duplicate"))

        handled_before = handled()
        for _ in range(2):  # the second is a redelivery
            publisher.publish(event.type, event.SerializeToString(), event.event_id)
        wait_for(lambda: citizen.public()["status"] == "DISPATCHED", 10,
                 what="the dispatch to show")
        wait_for(lambda: handled() == handled_before + 2, 10,
                 what="both copies to be handled")
        assert [e["status"] for e in citizen.public()["timeline"]] == ["SUBMITTED", "DISPATCHED"]
        assert app.test_client().get("/readyz").get_json()["checks"]["broker"] is True
        # The relay running beside it has sent the report on to routing.
        wait_for(lambda: ctx.outbox.backlog()[0] == 0, 10, what="the outbox to drain")
        assert queue_depth(amqp_url, messaging.QUEUES["routing"].name) == 1
    finally:
        publisher.close()
        ctx.stop_workers(1)
        ctx.engine.dispose()
    assert queue_depth(amqp_url, messaging.QUEUES["intake"].name) == 0, "both copies acked"


def test_the_newer_ticket_version_wins_whatever_routings_clock_says(app, feed):
    """Routing's clock 0.3 s behind intake's: the follow-up still replaces the dispatch,
    because the order is the ticket's version, not the time stamps of two machines."""
    citizen = Citizen(app)
    t0 = citizen.submitted_at
    feed(ticket_dispatched(citizen.tracking_id, occurred_at=t0 + timedelta(seconds=60),
                           version=1))
    feed(status_changed(citizen.tracking_id, "FOLLOWED_UP", version=2, note="Sudah diperbaiki",
                        occurred_at=t0 + timedelta(seconds=59.7)))
    assert citizen.public()["status"] == "FOLLOWED_UP"

    feed(status_changed(citizen.tracking_id, "DISPATCHED", version=1,
                        occurred_at=t0 + timedelta(seconds=120)))
    assert citizen.public()["status"] == "FOLLOWED_UP", "a late copy of version 1 is older"


def test_two_replicas_applying_one_tickets_events_at_once_end_on_the_newest(database_url):
    """Two intake replicas, each with its own connections, apply versions 2 and 3 of the
    same tickets at the same moment; every ticket ends on version 3's status."""
    apps = [make_app(database_url, dead_amqp_url(), workers=False) for _ in range(2)]
    feeds = [readmodel.ReadModel(a.extensions["lapor"].engine).handle for a in apps]
    try:
        citizens = [Citizen(apps[0]) for _ in range(12)]
        for citizen in citizens:
            feeds[0](ticket_dispatched(citizen.tracking_id, version=1))
        errors: list[BaseException] = []

        def apply(handle, event, gate):
            try:
                gate.wait(10)
                handle(event)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        for n, citizen in enumerate(citizens):
            # Version 2 carries the later time stamp: only the version can order them.
            later = datetime.now(UTC) + timedelta(seconds=5)
            v2 = status_changed(citizen.tracking_id, "ON_HOLD", version=2, occurred_at=later)
            v3 = status_changed(citizen.tracking_id, "FOLLOWED_UP", version=3,
                                occurred_at=later - timedelta(seconds=1))
            gate = threading.Barrier(2)
            pair = [(feeds[n % 2], v2), (feeds[(n + 1) % 2], v3)]
            threads = [threading.Thread(target=apply, args=(h, e, gate)) for h, e in pair]
            for t in threads:
                t.start()
            for t in threads:
                t.join(20)
        assert errors == []
        assert [c.public()["status"] for c in citizens] == ["FOLLOWED_UP"] * len(citizens)
    finally:
        for a in apps:
            a.extensions["lapor"].routing.close()
            a.extensions["lapor"].engine.dispose()


# -- what only the reporter sees -----------------------------------------------------------------
def changed(tracking_id: str, to_state: str, version: int, *, action: str, public_note: str,
            reporter_note: str = "", confidential: bool = False, occurred_at=None):
    """ticket.status_changed as routing's commands publish it."""
    return events.new("ticket.status_changed", tracking_id, events_pb2.TicketStatusChanged(
        tracking_id=tracking_id, ticket_id="t", to_state=common_pb2.TicketState.Value(
            "TICKET_STATE_" + to_state), actor_role="agency_officer", agency=SIJUNJUNG_PUPR,
        public_note=public_note, reporter_note=reporter_note, action=action,
        confidential=confidential, ticket_version=version), producer="routing",
        occurred_at=occurred_at)


def message(tracking_id: str, text: str, direction: str = "to_reporter"):
    return events.new("ticket.message", tracking_id, events_pb2.TicketMessage(
        tracking_id=tracking_id, ticket_id="t", agency=SIJUNJUNG_PUPR, direction=direction,
        text=text, ticket_version=2), producer="routing")


def test_the_hold_question_and_a_message_show_only_in_the_reporters_timeline(app, feed):
    citizen = Citizen(app)
    question = "Mohon lampirkan foto jalan yang rusak dan patokan lokasinya"
    feed(changed(citizen.tracking_id, "ON_HOLD", 2, action="hold",
                 public_note="Ditunda: menunggu kelengkapan dari pelapor",
                 reporter_note=question))
    feed(message(citizen.tracking_id, "Apakah jalan itu di depan SD 04?"))

    public = citizen.public()
    assert public["status"] == "ON_HOLD"
    assert [(e["status"], e["note"]) for e in public["timeline"]] == [
        ("SUBMITTED", "Laporan diterima"),
        ("ON_HOLD", "Ditunda: menunggu kelengkapan dari pelapor")]
    assert question not in str(public) and "SD 04" not in str(public)

    own = citizen.own()
    held, relayed = own["timeline"][1], own["timeline"][2]
    assert (held["note"], held["private_note"]) == (
        "Ditunda: menunggu kelengkapan dari pelapor", question)
    assert (relayed["status"], relayed["note"], relayed["private_note"]) == (
        "MESSAGE", "Pesan dari instansi", "Apakah jalan itu di depan SD 04?")
    assert own["actions"] == ["reply"]


def test_a_confidential_follow_up_reaches_its_reporter_but_not_the_public(app, feed):
    citizen = Citizen(app)
    response = "Kepala puskesmas sudah ditegur; jam layanan kembali normal mulai Senin"
    feed(changed(citizen.tracking_id, "FOLLOWED_UP", 2, action="follow_up",
                 public_note="Ditindaklanjuti", reporter_note=response, confidential=True))
    assert response not in str(citizen.public())
    entry = citizen.own()["timeline"][-1]
    assert (entry["note"], entry["private_note"]) == ("Ditindaklanjuti", response)
    assert citizen.own()["actions"] == ["reply", "confirm"]


def test_a_public_follow_up_is_shown_once_to_its_reporter(app, feed):
    citizen = Citizen(app)
    response = "Lubang sudah ditambal pada 3 Maret"
    feed(changed(citizen.tracking_id, "FOLLOWED_UP", 2, action="follow_up",
                 public_note=response, reporter_note=response))
    assert citizen.public()["timeline"][-1]["note"] == response
    assert citizen.own()["timeline"][-1]["private_note"] is None


def test_a_hand_over_shows_once_though_two_events_announce_it(app, feed):
    """Verify, pelimpahan, appeal and escalation publish ticket.status_changed and
    ticket.dispatched (for the new agency) of the same version; the reporter sees one entry,
    whichever arrives first."""
    first, second = Citizen(app), Citizen(app)
    for citizen, order in ((first, 1), (second, -1)):
        pair = [changed(citizen.tracking_id, "DISPATCHED", 3, action="not_our_authority",
                        public_note="Dilimpahkan ke Dinas PUPR Kabupaten Sijunjung"),
                ticket_dispatched(citizen.tracking_id, version=3)][::order]
        for event in pair:
            feed(event)
        notes = [e["note"] for e in citizen.own()["timeline"]]
        assert notes == ["Laporan diterima", "Dilimpahkan ke Dinas PUPR Kabupaten Sijunjung"]
        assert citizen.public()["status"] == "DISPATCHED"


def test_escalations_show_once_and_oversight_flags_show(app, feed):
    citizen = Citizen(app)
    parent = common_pb2.Agency(code="PEMDA-13.03", name="Pemerintah Kabupaten Sijunjung")

    def escalated(kind: str, version: int):
        return events.new("ticket.escalated", citizen.tracking_id, events_pb2.TicketEscalated(
            tracking_id=citizen.tracking_id, ticket_id="t",
            stage=common_pb2.TICKET_STATE_DISPATCHED, level=1, from_agency=SIJUNJUNG_PUPR,
            to_agency=parent, kind=kind, ticket_version=version), producer="routing")

    feed(changed(citizen.tracking_id, "DISPATCHED", 2, action="escalate",
                 public_note="Dieskalasi ke Pemerintah Kabupaten Sijunjung"))
    feed(escalated("parent", 2))
    feed(escalated("oversight", 3))
    notes = [e["note"] for e in citizen.public()["timeline"]]
    assert notes == ["Laporan diterima", "Dieskalasi ke Pemerintah Kabupaten Sijunjung",
                     "Belum selesai dalam 60 hari: ditandai untuk Ombudsman"]
    assert citizen.public()["deadline"] is None, "an escalation without a deadline has none"


def test_nobody_to_tell_is_not_news_to_the_reporter(app, feed):
    citizen = Citizen(app)
    assert feed(notification(citizen.tracking_id, audience="reporter",
                             outcome="skipped")) == "processed"
    assert [e["status"] for e in citizen.own()["timeline"]] == ["SUBMITTED"]


def test_after_an_appeal_the_reporter_is_not_offered_another(app, feed):
    citizen = Citizen(app)
    feed(changed(citizen.tracking_id, "CLOSED", 2, action="close", public_note="Selesai"))
    assert citizen.own()["actions"] == ["rate", "appeal"]
    feed(changed(citizen.tracking_id, "DISPATCHED", 3, action="appeal",
                 public_note="Banding pelapor: diteruskan ke Pemerintah Kabupaten Sijunjung"))
    feed(changed(citizen.tracking_id, "CLOSED", 5, action="close", public_note="Selesai"))
    assert citizen.own()["actions"] == ["rate"]


# -- a consumer's batch ---------------------------------------------------------------------------
def _story(tracking_id: str) -> list:
    return [ticket_dispatched(tracking_id, version=1),
            notification(tracking_id, audience="reporter"),
            changed(tracking_id, "ON_HOLD", 2, action="hold", public_note="Ditunda",
                    reporter_note="Mohon lampirkan foto"),
            message(tracking_id, "Apakah jalan itu di depan SD 04?"),
            notification(tracking_id, audience="reporter", outcome="failed",
                         channel_name="sms")]


def test_a_batch_writes_its_timeline_entries_together_as_one_by_one(app, feed, caplog):
    """A consumer's batch: the entries of all its events go in with one statement just
    before it commits, and the citizen and the public see what the same events one by one
    show, an event applied again or for a report intake does not have included."""
    engine = app.extensions["lapor"].engine
    alone, first, second = Citizen(app), Citizen(app), Citizen(app)
    for event in _story(alone.tracking_id):
        feed(event)
    seconds = _story(second.tracking_id)
    feed(seconds[0])  # applied before the batch, which has it again
    batch = _story(first.tracking_id) + seconds + [
        ticket_dispatched("LPR-000-000-000", version=1)]
    batch.insert(2, batch[1])  # a redelivery inside the batch

    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute",
                    lambda _c, _cur, statement, *_r: seen.append(statement))
    with db.batch(engine):
        assert {feed(event) for event in batch} == {"processed"}
        handled = len(seen)
    entries = [s for s in seen if s.lstrip().upper().startswith("INSERT INTO REPORT_TIMELINE")]
    assert len(entries) == 1 and seen.index(entries[0]) == handled, seen
    assert "event for a report intake does not have" in caplog.text

    def shown(citizen):
        own = [{k: v for k, v in e.items() if k != "at"} for e in citizen.own()["timeline"]]
        public = citizen.public()
        return (own, public["status"], [e["note"] for e in public["timeline"]])
    assert shown(first) == shown(second) == shown(alone)
    assert [e["status"] for e in shown(alone)[0]] == [
        "SUBMITTED", "DISPATCHED", "NOTIFICATION", "ON_HOLD", "MESSAGE", "NOTIFICATION"]
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(storage.timeline).where(
            storage.timeline.c.tracking_id == "LPR-000-000-000")).scalar() == 0
