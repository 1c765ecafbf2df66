"""Intake's citizen-facing status on SQLite and PostgreSQL: routing's and notify's events
applied to it (in any order, any number of times) and what the public and the reporter
then see through the API."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from services.infra import messaging
from services.intake import readmodel
from services.intake.app import create_app
from tests.conftest import free_port
from tests.integration.helpers import (
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


def test_notifications_to_the_reporter_show_only_in_their_own_timeline(app, feed):
    citizen = Citizen(app)
    feed(ticket_dispatched(citizen.tracking_id))
    feed(notification(citizen.tracking_id, audience="reporter"))
    feed(notification(citizen.tracking_id, audience="reporter", outcome="failed",
                      channel_name="sms"))
    feed(notification(citizen.tracking_id, audience="agency", channel_name="webhook"))

    own = [(e["status"], e["note"]) for e in citizen.own()["timeline"]]
    assert own[:2] == [("SUBMITTED", "Laporan diterima"),
                       ("DISPATCHED", f"Terdisposisi ke {AGENCY_NAME}")]
    assert sorted(own[2:]) == [("NOTIFICATION", "Pemberitahuan lewat SMS gagal terkirim"),
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

        def duplicates():
            return metric("lapor_events_consumed_total", consumer=readmodel.CONSUMER,
                          type="ticket.dispatched", outcome="duplicate")

        duplicates_before = duplicates()
        for _ in range(2):  # the second is a redelivery
            publisher.publish(event.type, event.SerializeToString(), event.event_id)
        wait_for(lambda: citizen.public()["status"] == "DISPATCHED", 10,
                 what="the dispatch to show")
        wait_for(lambda: duplicates() == duplicates_before + 1, 10,
                 what="the redelivery to be recognised")
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
