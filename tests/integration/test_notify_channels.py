"""notify's SMS and WhatsApp channels against real servers: RabbitMQ (own vhost), SQLite and
PostgreSQL, an aiosmtpd SMTP server, and a local HTTP server standing in for the SMS and
WhatsApp gateways, recording what a gateway would send on. What we check is what arrives at
the gateway and the reporter's inbox, the delivery log, the outcome events and /metrics."""

from __future__ import annotations

import json
import logging
import re
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from lapor.v1 import common_pb2, events_pb2
from services.infra import db, events
from services.notify import channels, store
from services.notify.handler import EventHandler
from tests.integration import test_notify as base
from tests.integration.helpers import wait_for

# test_notify's fixtures: a real SMTP server, an HTTP receiver, notify replicas, the broker.
smtp, agency, start_notify, publish, outcomes, slow_peers = (
    base.smtp, base.agency, base.start_notify, base.publish, base.outcomes, base.slow_peers)
rows, attempts_of, tracking_id, dispatched = (base.rows, base.attempts_of, base.tracking_id,
                                              base.dispatched)
NAME, EMAIL, PHONE, AGENCY = base.NAME, base.EMAIL, base.PHONE, base.AGENCY

pytestmark = pytest.mark.integration

SMS_AUTH = "Bearer sms-gateway-token-0123456789"
WA_AUTH = "Key wa-gateway-token-9876543210"


@pytest.fixture
def gateway():
    """One local HTTP server for both gateways: /sms and /whatsapp."""
    receiver = base.Receiver()
    yield receiver
    receiver.stop()


def sms_gateway(gateway, template=""):
    return channels.parse_gateway(gateway.url + "/sms", SMS_AUTH, template)


def wa_gateway(gateway, template=""):
    return channels.parse_gateway(gateway.url + "/whatsapp", WA_AUTH, template)


def registered(tid, *, channel, email_address=EMAIL, phone=PHONE, language="id"):
    return events.new("reporter.registered", tid, events_pb2.ReporterRegistered(
        tracking_id=tid, name=NAME, email=email_address, phone=phone, language=language,
        anonymous=False, channel=channel), "intake")


def opted_out(channel, phone, stop, occurred_at=None):
    return events.new("contact.opted_out", "", events_pb2.ContactOptedOut(
        channel=channel, phone=phone, opted_out=stop), "intake", occurred_at=occurred_at)


def reporter_rows(service, event):
    return [r for r in rows(service, store.deliveries, trigger_event_id=event.event_id)
            if r["audience"] == "reporter"]


def ended(service, event, channel):
    """The reporter's delivery of `event` on `channel` once it is no longer pending."""
    def find():
        for row in reporter_rows(service, event):
            if row["channel"] == channel and row["status"] != "pending":
                return row
        return None
    return wait_for(find, what=f"the {channel} delivery to end")


def log_of(service, delivery_id):
    return [(a["attempt"], a["outcome"], a["detail"]) for a in attempts_of(service,
                                                                           delivery_id)]


def scrape(service) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics",
                                timeout=5) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        match = re.match(r"^(lapor_notify_\w+)(\{[^}]*\})? (\S+)$", line)
        if match:
            samples[match.group(1) + (match.group(2) or "")] = float(match.group(3))
    return samples


def metric(samples, name, **labels):
    key = name + "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
    return samples.get(key, 0.0)


# -- the handler on a real database -----------------------------------------------------------
@pytest.fixture
def handler(database_url):
    engine = db.make_engine(database_url)
    db.migrate(engine, "notify", store.MIGRATIONS)
    yield EventHandler(engine)
    engine.dispose()


def test_the_reporters_channel_is_kept_and_their_notices_are_written_for_it(handler):
    tid = tracking_id()
    assert handler(registered(tid, channel="whatsapp")) == "processed"
    event = dispatched(tid)
    handler(event)
    with handler.engine.connect() as conn:
        assert store.load_contact(conn, tid).channel == "whatsapp"
        written = conn.execute(sa.select(store.deliveries.c.channel, store.deliveries.c.audience)
                               .where(store.deliveries.c.trigger_event_id == event.event_id)
                               .order_by(store.deliveries.c.channel)).all()
    assert [tuple(r) for r in written] == [("webhook", "agency"), ("whatsapp", "reporter")]


@pytest.mark.parametrize("channel, phone", [("email", PHONE), ("", PHONE), ("sms", ""),
                                            ("sms", "tidak ada")])
def test_an_opt_out_that_names_no_phone_channel_or_number_is_refused(handler, channel, phone):
    with pytest.raises(events.BadEvent):
        handler(opted_out(channel, phone, True))
    with handler.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(
            store.phone_opt_outs)).scalar() == 0


def test_stop_and_start_are_per_channel_and_end_as_sent_whatever_the_order(handler):
    now = datetime.now(UTC)
    stop = opted_out("whatsapp", "+62 812-3456-7890", True, occurred_at=now)
    start = opted_out("whatsapp", PHONE, False, occurred_at=now + timedelta(seconds=5))
    # START arrives first, then the older STOP; then STOP is redelivered.
    assert [handler(start), handler(stop), handler(stop)] == ["processed", "processed",
                                                              "duplicate"]
    with handler.engine.connect() as conn:
        assert not store.opted_out(conn, "whatsapp", PHONE)
        assert not store.opted_out(conn, "sms", PHONE)
    handler(opted_out("sms", "081234567890", True))
    with handler.engine.connect() as conn:
        assert store.opted_out(conn, "sms", PHONE)
        assert not store.opted_out(conn, "whatsapp", PHONE)


# -- the tests against the broker, SMTP and the gateway ----------------------------------------
def test_a_reporter_who_wrote_by_sms_is_answered_by_sms_only(start_notify, publish, smtp,
                                                              gateway, outcomes, caplog):
    caplog.set_level(logging.DEBUG)
    service = start_notify(sms_gateway=sms_gateway(gateway))
    before = scrape(service)
    tid = tracking_id()
    publish(registered(tid, channel="sms"))
    event = publish(dispatched(tid))

    request = wait_for(lambda: gateway.delivered("/sms"), what="the SMS at the gateway")[0]
    body = json.loads(request["body"])
    delivery = ended(service, event, "sms")
    # The contract's default body, the operator's Authorization header as configured.
    assert set(body) == {"to", "text", "reference"}
    assert body["to"] == PHONE and body["reference"] == delivery["delivery_id"]
    assert request["headers"]["Authorization"] == SMS_AUTH
    assert request["headers"]["Content-Type"] == "application/json"
    assert body["text"] == (f"LAPOR! Laporan {tid} diteruskan ke {AGENCY.name}. "
                            "Batas tindak lanjut: 17-07-2026 16.00 WIB.")
    # One channel: the one they used. They gave an email too; it stays quiet.
    assert smtp.messages == []
    assert [r["channel"] for r in reporter_rows(service, event)] == ["sms"]
    assert (delivery["status"], delivery["target"]) == ("delivered", "reporter")
    assert log_of(service, delivery["delivery_id"]) == [(1, "delivered", "HTTP 200")]
    wait_for(lambda: [o for kind, o in outcomes() if kind == "notification.delivered"
                      and o.delivery_id == delivery["delivery_id"] and o.channel == "sms"],
             what="notification.delivered for the SMS")

    after = scrape(service)
    assert metric(after, "lapor_notify_deliveries_total", channel="sms",
                  outcome="delivered") == metric(before, "lapor_notify_deliveries_total",
                                                 channel="sms", outcome="delivered") + 1
    assert after["lapor_notify_sms_parts_total"] == before["lapor_notify_sms_parts_total"] + 1
    # Neither the number nor the text nor the gateway's credential is ever logged.
    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records
                       if r.name.startswith("services."))
    for private in (PHONE, "81234567890", EMAIL, NAME, body["text"], SMS_AUTH,
                    "sms-gateway-token"):
        assert private not in logged


def test_whatsapp_in_english_with_the_operators_body_template(start_notify, publish, smtp,
                                                               gateway):
    template = ('{"messaging_product": "whatsapp", "recipient": "{to}", '
                '"message": {"type": "text", "body": "{text}"}, "client_ref": "{reference}"}')
    service = start_notify(whatsapp_gateway=wa_gateway(gateway, template))
    tid = tracking_id()
    publish(registered(tid, channel="whatsapp", language="en"))
    event = publish(events.new("ticket.status_changed", tid, events_pb2.TicketStatusChanged(
        tracking_id=tid, ticket_id="TCK-" + tid[4:], action="hold",
        to_state=common_pb2.TICKET_STATE_ON_HOLD, actor_role="national_admin", agency=AGENCY,
        reporter_note='Which "jorong"? Add a photo of the spot.'), "routing"))

    request = wait_for(lambda: gateway.delivered("/whatsapp"), what="the WhatsApp message")[0]
    delivery = ended(service, event, "whatsapp")
    body = json.loads(request["body"])
    assert request["headers"]["Authorization"] == WA_AUTH
    assert body["messaging_product"] == "whatsapp" and body["recipient"] == PHONE
    assert body["client_ref"] == delivery["delivery_id"]
    text = body["message"]["body"]
    assert text.startswith(f"LAPOR! Report {tid} on hold: more information needed.")
    assert 'The admin asks: Which "jorong"? Add a photo of the spot. Add it on' in text
    assert text.endswith(f".\nDetails: https://lapor.example.go.id/api/v1/reports/{tid}")
    assert smtp.messages == []


def test_a_500_is_tried_again_with_the_same_reference_then_delivered(start_notify, publish,
                                                                      smtp, gateway):
    gateway.statuses["/sms"] = [500]
    service = start_notify(sms_gateway=sms_gateway(gateway), retry_delays=(0.2, 0.2))
    tid = tracking_id()
    publish(registered(tid, channel="sms"))
    event = publish(dispatched(tid))

    delivery = ended(service, event, "sms")
    assert delivery["status"] == "delivered"
    assert log_of(service, delivery["delivery_id"]) == [(1, "retry", "HTTP 500"),
                                                        (2, "delivered", "HTTP 200")]
    references = [json.loads(r["body"])["reference"] for r in gateway.to("/sms")]
    assert references == [delivery["delivery_id"]] * 2
    assert smtp.messages == []  # a retry is not a failure: no fallback


def test_a_gateway_that_refuses_for_good_sends_the_notice_by_email_once(
        start_notify, publish, smtp, gateway, outcomes):
    gateway.statuses["/whatsapp"] = [400] * 5
    service = start_notify(whatsapp_gateway=wa_gateway(gateway), sms_gateway=None)
    before = scrape(service)
    tid = tracking_id()
    publish(registered(tid, channel="whatsapp"))
    event = publish(dispatched(tid))

    message = wait_for(lambda: smtp.to(EMAIL), what="the fallback email")[0]
    assert tid in message["Subject"]
    failed = ended(service, event, "whatsapp")
    email = ended(service, event, "email")
    # Permanent: one attempt, no retry; the email stands in for it and says so in the log.
    assert (failed["status"], failed["last_error"]) == ("failed", "HTTP 400")
    assert log_of(service, failed["delivery_id"]) == [(1, "failed", "HTTP 400")]
    assert (email["status"], email["replaces"]) == ("delivered", failed["delivery_id"])
    assert len(gateway.to("/whatsapp")) == 1
    # Once: no SMS (no gateway for it), nothing more after the email.
    assert sorted(r["channel"] for r in reporter_rows(service, event)) == ["email", "whatsapp"]
    assert len(smtp.to(EMAIL)) == 1
    seen = wait_for(lambda: {(kind, o.channel) for kind, o in outcomes()
                             if o.tracking_id == tid and o.audience == "reporter"} >= {
        ("notification.failed", "whatsapp"), ("notification.delivered", "email")},
        what="both outcomes announced")
    assert seen
    after = scrape(service)
    assert metric(after, "lapor_notify_fallbacks_total", from_channel="whatsapp",
                  to_channel="email") == metric(before, "lapor_notify_fallbacks_total",
                                                from_channel="whatsapp",
                                                to_channel="email") + 1


def test_a_gateway_that_accepts_and_drips_its_answer_ends_as_a_timeout_within_the_limit(
        start_notify, publish, smtp, slow_peers):
    peer = slow_peers(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")  # 19 s
    service = start_notify(
        sms_gateway=channels.parse_gateway(f"http://127.0.0.1:{peer.port}/sms", SMS_AUTH, ""),
        gateway_timeout=1.0, retry_delays=(30,))
    tid = tracking_id()
    publish(registered(tid, channel="sms"))
    event = publish(dispatched(tid))

    [delivery] = wait_for(lambda: [r for r in reporter_rows(service, event)
                                   if r["channel"] == "sms"], what="the SMS delivery")
    # A generous "no hang" bound: the drip alone would take 16 to 19 s.
    recorded = wait_for(lambda: log_of(service, delivery["delivery_id"]),
                        timeout=channels.send_limit(1.0) + 4, what="the attempt recorded")
    assert recorded == [(1, "retry", "timeout")]
    assert smtp.messages == []  # a timeout is retried, not a failure for good: no fallback


def test_retries_run_out_then_the_next_channel_is_used(start_notify, publish, smtp, gateway):
    gateway.statuses["/whatsapp"] = [503] * 10
    service = start_notify(whatsapp_gateway=wa_gateway(gateway), sms_gateway=sms_gateway(gateway),
                           retry_delays=(0.1, 0.1))
    tid = tracking_id()
    publish(registered(tid, channel="whatsapp", email_address=""))
    event = publish(dispatched(tid))

    sent = wait_for(lambda: gateway.delivered("/sms"), what="the fallback SMS")[0]
    failed = ended(service, event, "whatsapp")
    assert log_of(service, failed["delivery_id"]) == [
        (1, "retry", "HTTP 503"), (2, "retry", "HTTP 503"), (3, "failed", "HTTP 503")]
    sms = ended(service, event, "sms")
    assert (sms["status"], sms["replaces"]) == ("delivered", failed["delivery_id"])
    assert json.loads(sent["body"])["to"] == PHONE
    assert smtp.messages == []


def test_without_a_gateway_the_sms_is_skipped_and_the_email_goes(start_notify, publish, smtp):
    service = start_notify()  # no SMS gateway configured
    tid = tracking_id()
    publish(registered(tid, channel="sms"))
    event = publish(dispatched(tid))

    wait_for(lambda: smtp.to(EMAIL), what="the email")
    skipped = ended(service, event, "sms")
    assert (skipped["status"], skipped["last_error"]) == ("skipped", "no gateway")
    assert ended(service, event, "email")["replaces"] == skipped["delivery_id"]


def test_stop_silences_the_number_on_that_channel_and_start_lets_it_speak_again(
        start_notify, publish, smtp, gateway):
    service = start_notify(sms_gateway=sms_gateway(gateway))
    tid = tracking_id()
    publish(registered(tid, channel="sms"))
    # The number as the inbound gateway may write it: one number all the same.
    stop = publish(opted_out("sms", "0812-3456-7890", True))
    publish(stop)  # a redelivery changes nothing
    first = publish(dispatched(tid))

    wait_for(lambda: smtp.to(EMAIL), what="the email instead of the SMS")
    skipped = ended(service, first, "sms")
    assert (skipped["status"], skipped["last_error"]) == ("skipped", "opted out")
    assert gateway.to("/sms") == []
    with service.engine.connect() as conn:
        stored = [dict(r._mapping) for r in conn.execute(store.phone_opt_outs.select())]
    assert len(stored) == 1 and stored[0]["opted_out"]
    assert "81234567890" not in json.dumps(stored, default=str)

    start = publish(opted_out("sms", PHONE, False))
    # A STOP older than the START, arriving after it (a redelivered message), loses.
    stale = opted_out("sms", PHONE, True, occurred_at=datetime.now(UTC) - timedelta(hours=1))
    publish(stale)
    wait_for(lambda: _processed(service, stale) and _processed(service, start),
             what="START and the stale STOP handled")
    second = publish(events.new("ticket.status_changed", tid, events_pb2.TicketStatusChanged(
        tracking_id=tid, ticket_id="TCK-" + tid[4:], action="accept",
        to_state=common_pb2.TICKET_STATE_DISPATCHED,
        actor_role="agency_officer", agency=AGENCY), "routing"))
    wait_for(lambda: gateway.delivered("/sms"), what="the SMS after START")
    assert ended(service, second, "sms")["status"] == "delivered"
    assert len(smtp.to(EMAIL)) == 1


def _processed(service, envelope):
    with service.engine.connect() as conn:
        return conn.execute(store.processed_events.select().where(
            store.processed_events.c.event_id == envelope.event_id)).first()


def test_a_web_reporter_who_gave_only_a_phone_is_told_by_sms(start_notify, publish, smtp,
                                                             gateway):
    service = start_notify(sms_gateway=sms_gateway(gateway))
    tid = tracking_id()
    event = publish(dispatched(tid))  # before the registration: it waits for the contact
    wait_for(lambda: [r for r in reporter_rows(service, event) if r["last_error"]],
             what="the notice to wait for the contact")
    publish(registered(tid, channel="web", email_address=""))

    wait_for(lambda: gateway.delivered("/sms"), what="the SMS")
    delivery = ended(service, event, "sms")
    assert [r["channel"] for r in reporter_rows(service, event)] == ["sms"]
    assert log_of(service, delivery["delivery_id"]) == [(1, "delivered", "HTTP 200")]
