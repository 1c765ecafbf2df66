"""The SMS 1708 and WhatsApp gateway webhooks of intake (Flask's test client, SQLite and
PostgreSQL, a fake routing on a real gRPC port for the classifier, the official list's
regencies and provinces): what a gateway and the person texting see."""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from lapor.v1 import common_pb2, events_pb2
from services.infra import events
from services.infra.regions import read_regions_csv
from services.intake import readmodel, regions, storage
from services.intake.app import create_app
from services.intake.inbound import conversation
from tests.conftest import free_port
from tests.integration.helpers import dead_amqp_url
from tests.integration.test_intake_api import HIGH_LIMITS, Api, close, count, problem
from tests.integration.test_intake_server import FakeRouting

pytestmark = pytest.mark.integration

SMS_SECRET = "sms-gateway-secret-0123456789abcdef"
WA_SECRET = "wa-gateway-secret-0123456789abcdef"
PHONE, PHONE_E164 = "081234567890", "+6281234567890"
OTHER_PHONE = "+6285298765432"
ROAD = ("Jalan utama Nagari Muaro di Kab. Sijunjung berlubang besar sejak tiga bulan, "
        "dua pengendara motor sudah jatuh.")


@functools.cache
def _upper_levels(path: Path) -> list:
    return [r for r in read_regions_csv(path) if r.level in ("provinsi", "kabupaten_kota")]


@pytest.fixture
def region_rows(shared_data):
    """The official list's provinces, regencies and cities (what the matcher reads)."""
    return _upper_levels(shared_data / "wilayah-kepmendagri-2025.csv")


@pytest.fixture(scope="module")
def routing():
    fake = FakeRouting()
    fake.server.start()
    yield fake
    fake.server.stop(0)


def make_app(database_url: str, routing_addr: str, region_rows, **config):
    app = create_app({"DATABASE_URL": database_url, "AMQP_URL": dead_amqp_url(),
                      "ROUTING_ADDR": routing_addr, "ROUTING_TIMEOUT": 2.0,
                      "START_WORKERS": False, **HIGH_LIMITS,
                      "SMS_GATEWAY_SECRET": SMS_SECRET, "WHATSAPP_GATEWAY_SECRET": WA_SECRET,
                      "RATE_LIMIT_CHANNEL_SENDER": "1000 per minute", **config})
    with app.extensions["lapor"].engine.begin() as conn:
        regions.import_regions(conn, region_rows)
    return app


@pytest.fixture
def app(sqlite_url, routing, region_rows):
    """Intake on SQLite: the conversation's logic does not depend on the database."""
    app = make_app(sqlite_url, f"127.0.0.1:{routing.port}", region_rows)
    yield app
    close(app)


@pytest.fixture
def on_both(database_url, routing, region_rows):
    """Intake on SQLite and on PostgreSQL, for what the database's concurrency decides."""
    app = make_app(database_url, f"127.0.0.1:{routing.port}", region_rows)
    yield app
    close(app)


class Gateway(Api):
    """A provider's gateway: signs each message with the channel's secret."""

    def send(self, text: str, *, channel: str = "sms", sender: str = PHONE,
             message_id: str | None = None, secret: str | None = None,
             expect_5xx: bool = False, **fields):
        body = {"message_id": message_id or f"m-{uuid.uuid4().hex[:12]}", "from": sender,
                "text": text, **fields}
        return self.signed(channel, json.dumps(body).encode(), secret=secret,
                           expect_5xx=expect_5xx)

    def signed(self, channel: str, raw: bytes, *, secret: str | None = None,
               content_type: str = "application/json", expect_5xx: bool = False):
        key = (secret or (SMS_SECRET if channel == "sms" else WA_SECRET)).encode()
        signature = "sha256=" + hmac.new(key, raw, hashlib.sha256).hexdigest()
        return self.post(f"/api/v1/channels/{channel}", data=raw, expect_5xx=expect_5xx,
                         headers={"X-Lapor-Signature": signature, "Content-Type": content_type})

    def reply(self, text: str, **kwargs) -> dict:
        response = self.send(text, **kwargs)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()


@pytest.fixture
def gateway(app) -> Gateway:
    return Gateway(app)


def report_row(app, tracking_id: str):
    with app.extensions["lapor"].engine.connect() as conn:
        return conn.execute(sa.select(storage.reports).where(
            storage.reports.c.tracking_id == tracking_id)).one()


def outbox_events(app, event_type: str) -> list:
    o = storage.outbox
    with app.extensions["lapor"].engine.connect() as conn:
        rows = conn.execute(sa.select(o.c.body).where(o.c.event_type == event_type)
                            .order_by(o.c.id)).all()
    return [events.payload(events.decode(bytes(r.body))) for r in rows]


def assert_sms(reply: str) -> None:
    assert len(reply) <= 160 and set(reply) <= conversation.GSM7, reply


# -- a text becomes a report -----------------------------------------------------------------
def test_a_text_naming_its_regency_becomes_a_report_and_the_reply_carries_the_tracking_id(
        on_both):
    app, gateway = on_both, Gateway(on_both)
    answer = gateway.reply(ROAD)
    tracking_id = answer["tracking_id"]
    assert answer["reply"] == (f"Laporan diterima. Nomor pelacakan: {tracking_id}. "
                               f"Cek status: balas STATUS {tracking_id}")
    assert_sms(answer["reply"])
    row = report_row(app, tracking_id)
    assert (row.channel, row.region_code, row.kind) == ("sms", "13.03", "PENGADUAN")
    assert row.category == "PUPR", "the classifier's confident category is taken"
    assert row.body == ROAD and ROAD.startswith(row.title.removesuffix("..."))
    # Only notify learns the number (reporter.registered); routing's event does not carry it.
    [registered] = outbox_events(app, "reporter.registered")
    assert (registered.phone, registered.channel) == (PHONE_E164, "sms")
    [submitted] = outbox_events(app, "report.submitted")
    assert "81234567890" not in str(submitted) and submitted.report.channel == "sms"
    # Intake keeps no number: only keyed hashes of it.
    assert_no_number_stored(app)


def assert_no_number_stored(app) -> None:
    with app.extensions["lapor"].engine.connect() as conn:
        for table in (storage.channel_messages, storage.channel_drafts,
                      storage.channel_reports, storage.reports):
            for row in conn.execute(sa.select(table)).all():
                assert "81234567890" not in str(tuple(row)), table.name


def test_whatsapp_with_a_photo_becomes_a_report_on_its_own_channel(app, gateway):
    answer = gateway.reply("Sampah menumpuk di pasar Kota Padang, baunya sampai ke sekolah",
                           channel="whatsapp", media_url="https://media.example.id/p/1.jpg")
    row = report_row(app, answer["tracking_id"])
    assert (row.channel, row.region_code) == ("whatsapp", "13.71")
    [registered] = outbox_events(app, "reporter.registered")
    assert registered.channel == "whatsapp"
    assert media_urls(app, answer["tracking_id"]) == ["https://media.example.id/p/1.jpg"]


def media_urls(app, tracking_id: str) -> list[str]:
    """The media URLs the attachments part will fetch for the report."""
    m = storage.media_fetches
    with app.extensions["lapor"].engine.connect() as conn:
        return conn.execute(sa.select(m.c.url).where(m.c.tracking_id == tracking_id)
                            .order_by(m.c.url)).scalars().all()


def test_a_photo_sent_first_waits_for_the_text_that_makes_it_a_report(app, gateway):
    asked = gateway.reply("", channel="whatsapp", media_url="https://media.example.id/p/2.jpg")
    assert asked == {"reply": conversation.ASK_TEXT, "tracking_id": None}
    answer = gateway.reply("Got mampet di depan sekolah, Kota Padang, air meluap ke jalan",
                           channel="whatsapp", media_url="https://media.example.id/p/3.jpg")
    assert media_urls(app, answer["tracking_id"]) == ["https://media.example.id/p/2.jpg",
                                                      "https://media.example.id/p/3.jpg"]


def test_a_report_is_taken_without_a_category_when_routing_does_not_answer(
        sqlite_url, region_rows):
    app = make_app(sqlite_url, f"127.0.0.1:{free_port()}", region_rows)
    try:
        answer = Gateway(app).reply(ROAD)
        assert report_row(app, answer["tracking_id"]).category == ""
    finally:
        close(app)


def test_a_redelivered_message_gets_the_same_reply_and_creates_nothing(on_both):
    app, gateway = on_both, Gateway(on_both)
    first = gateway.send(ROAD, message_id="SM-0001")
    again = gateway.send(ROAD, message_id="SM-0001")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json()
    assert "Idempotent-Replayed" not in first.headers
    assert count(app, storage.reports) == 1
    # The same id on the other channel is another provider's message.
    other = gateway.send(ROAD, message_id="SM-0001", channel="whatsapp")
    assert "Idempotent-Replayed" not in other.headers
    assert count(app, storage.reports) == 2


def test_redeliveries_at_the_same_moment_create_one_report(on_both):
    app = on_both
    answers, barrier = [], threading.Barrier(3)

    def deliver():
        client = Gateway(app)
        barrier.wait()
        answers.append(client.send(ROAD, message_id="SM-race"))

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len({a.get_data() for a in answers}) == 1
    assert count(app, storage.reports) == 1
    assert count(app, storage.channel_messages) == 1


def test_a_stop_that_starts_a_report_is_a_report(app, gateway):
    answer = gateway.reply("Stop pungli di kantor desa, Kabupaten Sijunjung, setiap urus KTP")
    assert answer["tracking_id"]
    assert outbox_events(app, "contact.opted_out") == []


# -- one short question ----------------------------------------------------------------------
def test_without_a_region_the_sender_is_asked_once_and_the_answer_completes_the_report(
        on_both):
    app, gateway = on_both, Gateway(on_both)
    asked = gateway.reply("Lampu penerangan jalan mati sudah seminggu, gelap sekali")
    assert asked == {"reply": conversation.ASK_REGION, "tracking_id": None}
    assert_sms(asked["reply"])
    assert count(app, storage.reports) == 0 and count(app, storage.channel_drafts) == 1
    # Someone else's answer does not complete it.
    assert gateway.reply("sijunjung", sender=OTHER_PHONE)["reply"] == conversation.ASK_TEXT

    done = gateway.reply("kab. sijunjung")
    row = report_row(app, done["tracking_id"])
    assert row.region_code == "13.03"
    assert row.body == "Lampu penerangan jalan mati sudah seminggu, gelap sekali\nkab. sijunjung"
    assert count(app, storage.channel_drafts, sender_hash=_hash(app, PHONE_E164)) == 0


def _hash(app, phone: str, channel: str = "sms") -> str:
    return app.extensions["lapor_inbound"].settings.sender_hash(channel, phone)


def test_a_name_two_places_share_is_asked_between_them(app, gateway):
    asked = gateway.reply("Sekolah dasar kekurangan guru sejak semester lalu di Bogor")
    assert asked["reply"] == "Daerah yang mana? Balas nomornya: 1) KAB. BOGOR 2) KOTA BOGOR"
    done = gateway.reply("2")
    assert report_row(app, done["tracking_id"]).region_code == "32.71"


def test_a_province_alone_is_asked_about_once(app, gateway):
    asked = gateway.reply("Harga beras di pasar naik terus, Sumatera Barat, tolong dicek")
    assert asked["reply"] == conversation.ASK_REGION
    done = gateway.reply("Sumbar")
    assert report_row(app, done["tracking_id"]).region_code == "13"


def test_batal_drops_the_waiting_report(app, gateway):
    gateway.reply("Lampu penerangan jalan mati sudah seminggu, gelap sekali")
    assert gateway.reply("batal")["reply"] == conversation.CANCELLED
    assert count(app, storage.channel_drafts) == 0
    # The next message starts afresh: a region alone is not a report.
    assert gateway.reply("Sijunjung")["reply"] == conversation.ASK_TEXT
    assert gateway.reply("BATAL")["reply"] == conversation.CANCELLED
    assert gateway.reply("BATAL")["reply"] == conversation.NOTHING_TO_CANCEL
    assert count(app, storage.reports) == 0


def test_help_and_an_empty_message_explain_the_commands(gateway):
    assert gateway.reply("BANTUAN")["reply"] == conversation.HELP
    assert gateway.reply("  ")["reply"] == conversation.HELP
    assert_sms(conversation.HELP)


# -- STATUS ----------------------------------------------------------------------------------
def test_status_answers_in_words_with_more_for_the_senders_own_report(app, gateway):
    tracking_id = gateway.reply(ROAD)["tracking_id"]
    hold = events.new("ticket.status_changed", tracking_id, events_pb2.TicketStatusChanged(
        tracking_id=tracking_id, ticket_id="t-1", from_state=common_pb2.TICKET_STATE_SUBMITTED,
        to_state=common_pb2.TICKET_STATE_ON_HOLD, actor_role="national_admin",
        public_note="Menunggu kelengkapan", reporter_note="Di RT berapa tepatnya?",
        ticket_version=2), producer="routing")
    readmodel.ReadModel(app.extensions["lapor"].engine).handle(hold)

    own = gateway.reply(f"status {tracking_id.lower()}")["reply"]
    assert own == (f"{tracking_id}: Ditunda (butuh kelengkapan). "
                   "Catatan: Di RT berapa tepatnya?")
    other = gateway.reply(f"STATUS {tracking_id}", sender=OTHER_PHONE)["reply"]
    assert other == f"{tracking_id}: Ditunda (butuh kelengkapan)."
    # The same number on WhatsApp is another conversation: no private detail there either.
    assert "Catatan" not in gateway.reply(f"STATUS {tracking_id}", channel="whatsapp")["reply"]


def test_status_of_a_dispatched_report_names_the_agency_and_deadline(app, gateway):
    from tests.integration.helpers import ticket_dispatched

    tracking_id = gateway.reply(ROAD)["tracking_id"]
    readmodel.ReadModel(app.extensions["lapor"].engine).handle(ticket_dispatched(tracking_id))
    reply = gateway.reply(f"STATUS {tracking_id}", sender=OTHER_PHONE)["reply"]
    assert reply.startswith(f"{tracking_id}: Terdisposisi ke ")
    assert reply.endswith("Batas tindak lanjut 19-07-2030 16:00 WIB.")
    assert_sms(reply)


def test_status_of_someone_elses_confidential_report_is_not_found(app, gateway):
    created = gateway.post("/api/v1/reports", json={
        "kind": "PENGADUAN", "title": "Pungli di kantor desa", "confidential": True,
        "body": "Setiap urus surat diminta uang tanpa kuitansi.", "region_code": "13.03"})
    tracking_id = created.get_json()["tracking_id"]
    reply = gateway.reply(f"STATUS {tracking_id}")["reply"]
    assert reply == conversation.not_found(tracking_id)


def test_a_mistyped_tracking_id_gets_a_helpful_reply(gateway):
    tracking_id = gateway.reply(ROAD)["tracking_id"]
    wrong = tracking_id[:-1] + ("A" if tracking_id[-1] != "A" else "B")
    reply = gateway.reply(f"STATUS {wrong}")["reply"]
    assert reply == conversation.invalid_tracking_id(wrong)
    assert gateway.reply("STATUS")["reply"] == conversation.STATUS_USAGE


# -- STOP / START ----------------------------------------------------------------------------
def test_stop_and_start_tell_notify_through_the_outbox(on_both):
    app, gateway = on_both, Gateway(on_both)
    assert gateway.reply("STOP")["reply"] == conversation.STOPPED
    assert gateway.reply("start", channel="whatsapp")["reply"] == conversation.STARTED
    stop, start = outbox_events(app, "contact.opted_out")
    assert (stop.channel, stop.phone, stop.opted_out) == ("sms", PHONE_E164, True)
    assert (start.channel, start.phone, start.opted_out) == ("whatsapp", PHONE_E164, False)
    o = storage.outbox
    with app.extensions["lapor"].engine.connect() as conn:
        aggregates = conn.execute(sa.select(o.c.aggregate_id).where(
            o.c.event_type == "contact.opted_out")).scalars().all()
    assert aggregates == ["", ""]


# -- refusals --------------------------------------------------------------------------------
def test_unsigned_or_wrongly_signed_messages_are_refused_and_nothing_is_kept(app, gateway):
    raw = json.dumps({"message_id": "x1", "from": PHONE, "text": ROAD}).encode()
    problem(gateway.post("/api/v1/channels/sms", data=raw, content_type="application/json"),
            401, "signature_required")
    problem(gateway.signed("sms", raw, secret=WA_SECRET), 401, "signature_mismatch")
    bad = gateway.post("/api/v1/channels/sms", data=raw, content_type="application/json",
                       headers={"X-Lapor-Signature": "md5=abc"})
    problem(bad, 401, "signature_mismatch")
    assert count(app, storage.reports) == 0 and count(app, storage.channel_messages) == 0


def test_a_channel_without_a_secret_is_closed(sqlite_url, routing, region_rows):
    app = make_app(sqlite_url, f"127.0.0.1:{routing.port}", region_rows,
                   WHATSAPP_GATEWAY_SECRET="")
    try:
        gateway = Gateway(app)
        refused = gateway.send(ROAD, channel="whatsapp", expect_5xx=True)
        body = problem(refused, 503, "channel_not_configured")
        assert "INTAKE_WHATSAPP_GATEWAY_SECRET" in body["detail"]
        assert gateway.send(ROAD).status_code == 200
    finally:
        close(app)


MALFORMED = [
    ({"from": PHONE, "text": ROAD}, "message_id"),
    ({"message_id": "m1", "text": ROAD}, "from"),
    ({"message_id": "m1", "from": "12345", "text": ROAD}, "from"),
    ({"message_id": "m" * 201, "from": PHONE, "text": ROAD}, "message_id"),
    ({"message_id": "m1", "from": PHONE, "text": 42}, "text"),
    ({"message_id": "m1", "from": PHONE, "text": ROAD, "media_url": "ftp://x/y"}, "media_url"),
    ({"message_id": "m1", "from": PHONE, "text": ROAD, "received_at": "kemarin"},
     "received_at"),
    ({"message_id": "m1", "from": PHONE, "text": "Jalan rusak \ud800 di Sijunjung"}, "text"),
    ([ROAD], "(body)"),
]


def test_malformed_messages_are_refused_naming_the_field(app, gateway):
    for body, field in MALFORMED:
        raw = json.dumps(body).encode()
        answer = problem(gateway.signed("sms", raw), 422, "validation_failed")
        assert field in [e["field"] for e in answer["errors"]], (body, answer)
        assert all(e["message"] for e in answer["errors"])
    assert count(app, storage.channel_messages) == 0


def test_a_body_that_is_not_json_is_refused(gateway):
    problem(gateway.signed("sms", b"{not json"), 400, "malformed_json")
    problem(gateway.signed("sms", b"text=halo", content_type="application/x-www-form-urlencoded"),
            415, "unsupported_media_type")


def test_each_sender_has_an_allowance(sqlite_url, routing, region_rows):
    app = make_app(sqlite_url, f"127.0.0.1:{routing.port}", region_rows,
                   RATE_LIMIT_CHANNEL_SENDER="2 per minute")
    try:
        gateway = Gateway(app)
        first = gateway.send(ROAD, message_id="a1")
        assert gateway.send("BANTUAN").status_code == 200
        over = problem(gateway.send("BANTUAN"), 429, "rate_limited")
        assert "message was not handled" in over["detail"]
        assert int(gateway.send("BANTUAN").headers["Retry-After"]) >= 1
        # Another number is not held back; a redelivery is answered from what was stored.
        assert gateway.send("BANTUAN", sender=OTHER_PHONE).status_code == 200
        again = gateway.send(ROAD, message_id="a1")
        assert again.status_code == 200 and again.get_json() == first.get_json()
    finally:
        close(app)


def test_the_number_and_the_text_stay_out_of_the_log(app, gateway, caplog):
    caplog.set_level("DEBUG")
    gateway.reply("Lampu penerangan jalan mati sudah seminggu, gelap sekali")
    gateway.reply("sijunjung")
    gateway.reply("STOP")
    logged = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    assert "81234567890" not in logged and "penerangan" not in logged
