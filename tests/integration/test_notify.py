"""notify against real servers: RabbitMQ (own vhost), SQLite and PostgreSQL, an aiosmtpd SMTP
server and an HTTP receiver standing in for an agency. Events are real envelopes published
to lapor.events; what we check is what a reporter's inbox and an agency's endpoint see."""

from __future__ import annotations

import email
import email.policy
import json
import logging
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pika
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from lapor.v1 import common_pb2, events_pb2
from services.infra import events, messaging
from services.notify import channels, signing, store
from services.notify.app import NotifyService, Settings
from services.notify.channels import SmtpSettings, parse_smtp_url
from services.notify.worker import LEASE_MARGIN_S
from tests.conftest import free_port
from tests.integration.helpers import each_event, wait_for
from tests.integration.test_notify_timeouts import SlowPeer

pytestmark = pytest.mark.integration

SECRET = "agency-shared-secret-0123456789"
AGENCY = common_pb2.Agency(code="PUPR-13.03", name="Dinas PUPR Kabupaten Sijunjung",
                           level="regency", region_code="13.03", parent_code="PUPR-13")
DEADLINE = datetime(2026, 7, 17, 9, 0, tzinfo=UTC)  # Jumat 17 Juli 2026 16.00 WIB
NAME, EMAIL, PHONE = "Siti Rahayu", "siti.rahayu@example.id", "+6281234567890"


# -- real outside servers ---------------------------------------------------------------------
class SmtpSink:
    """aiosmtpd handler keeping every message it accepts; it answers 451 (try again later)
    to the first `refuse` messages and keeps those in `refused`."""

    def __init__(self):
        self.messages: list[tuple[list[str], email.message.EmailMessage]] = []
        self.refused: list[email.message.EmailMessage] = []
        self.mail_options: list[list[str]] = []
        self.refuse = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's naming)
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            if len(self.refused) < self.refuse:
                self.refused.append(parsed)
                return "451 4.3.0 Try again later"
            self.messages.append((list(envelope.rcpt_tos), parsed))
            self.mail_options.append(list(envelope.mail_options))
        return "250 Message accepted for delivery"

    def to(self, address):
        with self.lock:
            return [message for rcpts, message in self.messages if address in rcpts]


class Receiver:
    """Agency endpoints: records each request; a path answers with its queued statuses, then
    200."""

    def __init__(self):
        self.requests: list[dict] = []
        self.statuses: dict[str, list[int]] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    queued = receiver.statuses.get(self.path)
                    status = queued.pop(0) if queued else 200
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                              "raw_headers": bytes(str(self.headers), "utf-8"),
                                              "body": body, "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def delivered(self, path=None):
        with self.lock:
            return [r for r in self.requests
                    if r["status"] == 200 and (path is None or r["path"] == path)]

    def to(self, path):
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def smtp_server(**options):
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    sink.url = f"smtp://127.0.0.1:{controller.port}"
    sink.controller = controller
    return sink


@pytest.fixture
def smtp():
    """A mail server offering SMTPUTF8 (aiosmtpd's Controller does by default)."""
    sink = smtp_server()
    yield sink
    sink.controller.stop()


@pytest.fixture
def ascii_smtp():
    """A mail server that does not offer SMTPUTF8: addresses must be ASCII."""
    sink = smtp_server(enable_SMTPUTF8=False)
    yield sink
    sink.controller.stop()


@pytest.fixture
def agency():
    receiver = Receiver()
    yield receiver
    receiver.stop()


@pytest.fixture
def slow_peers():
    """Receivers that answer one byte every half second (see test_notify_timeouts)."""
    started: list[SlowPeer] = []

    def start(answer: bytes) -> SlowPeer:
        started.append(SlowPeer(answer))
        return started[-1]

    yield start
    for peer in started:
        peer.stop()


@pytest.fixture
def start_notify(database_url, amqp_url, smtp):
    """Starts NotifyService replicas in-process; all are drained at the end of the test."""
    started: list[NotifyService] = []

    def start(retry_delays=(0.2, 0.2, 0.5), **overrides) -> NotifyService:
        options = dict(smtp=parse_smtp_url(smtp.url), metrics_port=0,
                       retry_delays=tuple(retry_delays), poll_interval=0.2,
                       webhook_timeout=5.0, smtp_timeout=5.0,
                       public_url="https://lapor.example.go.id", shutdown_seconds=5.0)
        options.update(overrides)
        settings = Settings(database_url=database_url, amqp_url=amqp_url, **options)
        service = NotifyService(settings).start()
        started.append(service)
        wait_for(service.consumer.consuming.is_set, what="the consumer to attach")
        return service

    yield start
    for service in started:
        service.stop()


@pytest.fixture
def publish(amqp_url):
    publisher = messaging.Publisher(amqp_url, "test-publisher")

    def send(envelope):
        publisher.publish(envelope.type, envelope.SerializeToString(), envelope.event_id)
        return envelope

    yield send
    publisher.close()


@pytest.fixture
def outcomes(amqp_url):
    """Collects notify's outcome events from a temporary queue in the test's vhost, each
    published under its audience and outcome."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    messaging.declare_topology(channel)
    queue = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(queue, messaging.EXCHANGE, routing_key="notification.#")
    seen: list[tuple[str, events_pb2.NotificationOutcome]] = []

    def collect():
        while True:
            method, props, body = channel.basic_get(queue, auto_ack=True)
            if method is None:
                return list(seen)
            for _props, inner in each_event(props, body):
                envelope = events.decode(inner)
                outcome = events.payload(envelope)
                assert method.routing_key == events.outcome_key(outcome.audience,
                                                                outcome.outcome)
                seen.append((envelope.type, outcome))

    yield collect
    connection.close()


def subscribe(service, code, url, secret=SECRET):
    with service.engine.begin() as conn:
        store.set_subscription(conn, code, url, secret)


# -- events as intake and routing publish them -----------------------------------------------
def tracking_id():
    return "LPR-" + uuid.uuid4().hex[:8].upper()


def registered(tid, *, anonymous=False, email_address=EMAIL, language="id"):
    return events.new("reporter.registered", tid, events_pb2.ReporterRegistered(
        tracking_id=tid, name=NAME, email=email_address, phone=PHONE, language=language,
        anonymous=anonymous), "intake")


def dispatched(tid, *, anonymous=False, reporter_name=NAME, agency=AGENCY):
    report = common_pb2.ReportContent(
        kind=common_pb2.REPORT_KIND_PENGADUAN, title="Jalan berlubang di Muaro",
        body="Jalan nasional di depan pasar berlubang besar.", region_code="13.03",
        region_name="Kabupaten Sijunjung", anonymous=anonymous, reporter_name=reporter_name,
        channel="web", incident_date="2026-07-01", address="Jl. Lintas Sumatera, Muaro",
        location=common_pb2.GeoPoint(latitude=-0.6612, longitude=100.9421),
        submitted_at=events.timestamp(datetime(2026, 7, 8, 2, 30, tzinfo=UTC)))
    return events.new("ticket.dispatched", tid, events_pb2.TicketDispatched(
        tracking_id=tid, ticket_id="TCK-" + tid[4:], agency=agency,
        deadline=events.timestamp(DEADLINE), deadline_zone="WIB", working_days=5,
        category="infrastruktur-jalan", confidence=0.92,
        decision="kategori infrastruktur-jalan di wilayah 13.03", report=report,
        actor_role="system"), "routing")


def rows(service, table, **where):
    with service.engine.connect() as conn:
        query = sa.select(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        return [dict(r._mapping) for r in conn.execute(query.order_by(table.c.id))]


def attempts_of(service, delivery_id):
    return rows(service, store.delivery_attempts, delivery_id=delivery_id)


# -- the tests -------------------------------------------------------------------------------
def test_dispatch_reaches_the_agency_signed_and_the_reporter_in_indonesian(
        start_notify, publish, smtp, agency, caplog):
    caplog.set_level(logging.DEBUG)
    service = start_notify()
    subscribe(service, AGENCY.code, agency.url + "/lapor")
    tid = tracking_id()
    publish(registered(tid))
    event = publish(dispatched(tid))

    hook = wait_for(agency.delivered, what="the webhook")[0]
    assert signing.verify(SECRET, hook["headers"], hook["body"], tolerance_s=60)
    assert hook["headers"]["Content-Type"] == "application/json"
    assert hook["headers"]["X-Lapor-Event"] == "ticket.dispatched"
    delivery_id = hook["headers"]["X-Lapor-Delivery"]
    assert str(uuid.UUID(delivery_id)) == delivery_id
    body = json.loads(hook["body"])
    assert body == {
        "event": "ticket.dispatched", "delivery_id": delivery_id, "tracking_id": tid,
        "ticket_id": "TCK-" + tid[4:],
        "agency": {"code": "PUPR-13.03", "name": "Dinas PUPR Kabupaten Sijunjung"},
        "category": "infrastruktur-jalan", "confidence": 0.92,
        "decision": "kategori infrastruktur-jalan di wilayah 13.03",
        "deadline": "2026-07-17T16:00:00+07:00", "deadline_zone": "WIB", "working_days": 5,
        "report": {
            "kind": "PENGADUAN", "title": "Jalan berlubang di Muaro",
            "body": "Jalan nasional di depan pasar berlubang besar.", "region_code": "13.03",
            "region_name": "Kabupaten Sijunjung", "incident_date": "2026-07-01",
            "location": {"latitude": -0.6612, "longitude": 100.9421},
            "address": "Jl. Lintas Sumatera, Muaro",
            "submitted_at": "2026-07-08T09:30:00+07:00", "anonymous": False,
            "confidential": False, "reporter_name": NAME,
        },
    }
    assert EMAIL.encode() not in hook["body"] and PHONE.encode() not in hook["body"]

    message = wait_for(lambda: smtp.to(EMAIL), what="the email")[0]
    assert message["Subject"] == f"[LAPOR!] Laporan {tid} diteruskan ke {AGENCY.name}"
    text = message.get_body(("plain",)).get_content()
    assert tid in text and AGENCY.name in text
    # Text and HTML alternatives of the same message.
    assert message.get_content_type() == "multipart/alternative"
    html = message.get_body(("html",)).get_content()
    assert AGENCY.name in html and "Jumat, 17 Juli 2026 pukul 16.00 WIB" in html
    assert f'href="https://lapor.example.go.id/api/v1/reports/{tid}"' in html
    assert "Jumat, 17 Juli 2026 pukul 16.00 WIB" in text
    assert f"https://lapor.example.go.id/api/v1/reports/{tid}" in text
    assert message["From"] == "LAPOR! <no-reply@lapor.localhost>"

    wait_for(lambda: len(rows(service, store.deliveries, trigger_event_id=event.event_id,
                              status="delivered")) == 2, what="both deliveries recorded")
    [email_delivery] = rows(service, store.deliveries, trigger_event_id=event.event_id,
                            channel="email")
    assert (email_delivery["audience"], email_delivery["target"]) == ("reporter", "reporter")
    # The stored payload is the template's inputs, not the address.
    assert EMAIL not in email_delivery["payload"] and PHONE not in email_delivery["payload"]
    with urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics") as r:
        metrics = r.read().decode()
    assert 'lapor_notify_deliveries_total{channel="webhook",outcome="delivered"}' in metrics
    assert 'lapor_notify_deliveries_total{channel="sms",outcome="failed"} 0.0' in metrics
    with urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/readyz") as r:
        assert json.loads(r.read())["status"] == "ok"

    # Logs carry ids, never contacts, secrets or message bodies.
    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records
                       if r.name.startswith("services."))  # not the test's SMTP server
    assert "attempt 1: delivered" in logged
    for private in (NAME, EMAIL, PHONE, SECRET, "Jalan nasional di depan pasar"):
        assert private not in logged


def test_anonymous_report_reveals_no_identity_to_the_agency(start_notify, publish, smtp,
                                                          agency):
    service = start_notify()
    subscribe(service, AGENCY.code, agency.url)
    tid = tracking_id()
    publish(registered(tid, anonymous=True))
    # A faulty producer leaves the name in an anonymous report: it still must not go out.
    publish(dispatched(tid, anonymous=True, reporter_name=NAME))

    hook = wait_for(agency.delivered, what="the webhook")[0]
    raw = hook["body"] + hook["raw_headers"]
    for secret_bit in (b"Siti", b"Rahayu", EMAIL.encode(), PHONE.encode(), b"6281234567890"):
        assert secret_bit not in raw
    report = json.loads(hook["body"])["report"]
    assert report["anonymous"] is True and "reporter_name" not in report
    # Anonymity hides the reporter from agencies, not from the platform: the email goes out.
    message = wait_for(lambda: smtp.to(EMAIL), what="the email")[0]
    assert tid in message["Subject"]


def test_webhook_retries_with_the_same_delivery_id_then_delivers_or_fails(
        start_notify, publish, agency, outcomes):
    service = start_notify()
    subscribe(service, AGENCY.code, agency.url + "/pupr")
    other = common_pb2.Agency(code="DISHUB-13.03", name="Dinas Perhubungan Sijunjung",
                              level="regency")
    subscribe(service, other.code, agency.url + "/dishub")
    agency.statuses = {"/pupr": [503, 503], "/dishub": [500, 502, 500, 500, 500]}
    recovers, never = tracking_id(), tracking_id()
    event = publish(dispatched(recovers))
    doomed = publish(dispatched(never, agency=other))

    # PUPR's endpoint fails twice and takes the third attempt.
    wait_for(lambda: agency.delivered("/pupr"), what="the third attempt to succeed")
    requests = agency.to("/pupr")
    assert [r["status"] for r in requests] == [503, 503, 200]
    assert len({r["headers"]["X-Lapor-Delivery"] for r in requests}) == 1
    assert all(signing.verify(SECRET, r["headers"], r["body"], 60) for r in requests)
    assert len({r["body"] for r in requests}) == 1
    [delivery] = rows(service, store.deliveries, trigger_event_id=event.event_id,
                      channel="webhook")
    assert delivery["delivery_id"] == requests[0]["headers"]["X-Lapor-Delivery"]
    log = wait_for(lambda: (lambda a: a if len(a) == 3 else None)(
        attempts_of(service, delivery["delivery_id"])), what="three attempts in the log")
    assert [(a["attempt"], a["outcome"], a["detail"]) for a in log] == [
        (1, "retry", "HTTP 503"), (2, "retry", "HTTP 503"), (3, "delivered", "HTTP 200")]

    def outcome_of(delivery_id):
        return [(t, o) for t, o in outcomes() if o.delivery_id == delivery_id]

    [(kind, outcome)] = wait_for(lambda: outcome_of(delivery["delivery_id"]),
                                 what="notification.delivered")
    assert (kind, outcome.outcome, outcome.channel, outcome.audience, outcome.attempt,
            outcome.trigger_type, outcome.tracking_id) == (
        "notification.delivered", "delivered", "webhook", "agency", 3, "ticket.dispatched",
        recovers)

    # Dishub's never recovers: after the last delay (0.2, 0.2, 0.5 s) it has failed for good.
    [lost] = wait_for(lambda: rows(service, store.deliveries, trigger_event_id=doomed.event_id,
                                   channel="webhook", status="failed"),
                      what="the delivery to fail")
    assert [r["status"] for r in agency.to("/dishub")] == [500, 502, 500, 500]
    assert lost["attempts"] == 4 and lost["last_error"] == "HTTP 500"
    [(kind, failed)] = wait_for(lambda: outcome_of(lost["delivery_id"]),
                                what="notification.failed")
    assert (kind, failed.outcome, failed.attempt, failed.reason) == (
        "notification.failed", "failed", 4, "HTTP 500")


def test_the_same_event_twice_yields_one_webhook_and_one_email(start_notify, publish, smtp,
                                                                agency):
    service = start_notify()
    subscribe(service, AGENCY.code, agency.url)
    tid = tracking_id()
    publish(registered(tid))
    event = dispatched(tid)
    publish(event)
    publish(event)
    # A later event for another report: once it is delivered, the duplicate (queued before
    # it on the same queue) has certainly been handled.
    marker = tracking_id()
    publish(registered(marker, email_address="marker@example.id"))
    publish(dispatched(marker))
    wait_for(lambda: smtp.to("marker@example.id"), what="the marker email")
    wait_for(lambda: len(agency.delivered()) == 2, what="the marker webhook")
    # Handled in one batch, both reports' deliveries go out side by side: the marker's email
    # may arrive first. Every delivery the events made is then one of the two rows below.
    wait_for(lambda: smtp.to(EMAIL), what="the report's email")

    assert [json.loads(r["body"])["tracking_id"] for r in agency.delivered()].count(tid) == 1
    assert len(smtp.to(EMAIL)) == 1
    assert len(rows(service, store.deliveries, trigger_event_id=event.event_id)) == 2


def email_of(service, event):
    found = rows(service, store.deliveries, trigger_event_id=event.event_id, channel="email")
    return found[0] if found else None


def log_of(service, delivery_id):
    return [(a["attempt"], a["outcome"], a["detail"]) for a in attempts_of(service, delivery_id)]


def test_an_email_waiting_for_its_contact_goes_out_when_it_arrives_with_one_attempt(
        start_notify, publish, smtp):
    # The real retry schedule: a wait that cost a retry delay would take 30 s.
    service = start_notify(retry_delays=(30, 120))
    tid = tracking_id()
    event = publish(dispatched(tid))

    waiting = wait_for(lambda: (lambda e: e if e and e["last_error"] == "contact not yet known"
                                else None)(email_of(service, event)),
                       what="the email to wait for the contact")
    # Waiting is not an attempt: the delivery log is empty and the retry budget untouched.
    assert (waiting["status"], waiting["attempts"]) == ("pending", 0)
    assert attempts_of(service, waiting["delivery_id"]) == []

    publish(registered(tid))
    message = wait_for(lambda: smtp.to(EMAIL), timeout=3, what="the email")[0]
    assert tid in message["Subject"]
    wait_for(lambda: email_of(service, event)["status"] == "delivered", what="the record")
    assert log_of(service, waiting["delivery_id"]) == [(1, "delivered", "SMTP 250")]


def wait_until_blocked(service, seconds=0.3):
    """Gives the registration, started on another thread, time to reach the lock the
    worker's claim holds: on PostgreSQL we can see it wait; SQLite's busy wait is not
    visible, so a moment is given."""
    if not service.engine.dialect.name == "postgresql":
        time.sleep(seconds)
        return

    def waiting():
        with service.engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'")).scalar()

    wait_for(waiting, what="the registration to wait for the claim's lock")


def run_as_the_claims_loop(worker) -> None:
    """Sends every due delivery one at a time as the service's threads do: each record and
    the next claim in one transaction."""
    finished: list = []
    while claims := worker.record_and_claim(finished, 1):
        finished = [(claim, worker.attempt(claim)) for claim in claims]


def test_a_registration_landing_while_a_worker_holds_the_claim_still_wakes_the_email(
        start_notify, smtp, monkeypatch):
    service = start_notify(retry_delays=(30, 120))
    service.worker.stop()  # this test turns the worker's crank itself
    worker, handler = service.worker, service.handler
    tid = tracking_id()
    event = dispatched(tid)
    handler(event)  # no contact yet: the ticket event came first

    from services.notify import worker as worker_module

    real_contact_of = worker_module._contact_of
    registration: list[threading.Thread] = []

    def contact_as_the_registration_lands(conn, row):
        found = real_contact_of(conn, row)
        if found is None and not registration:
            # The contact arrives now, while this worker's claim transaction is open.
            registration.append(threading.Thread(target=handler, args=(registered(tid),)))
            registration[0].start()
            wait_until_blocked(service)
        return found

    monkeypatch.setattr(worker_module, "_contact_of", contact_as_the_registration_lands)
    # The webhook (no endpoint: skipped), then the email claimed with the webhook's record.
    run_as_the_claims_loop(worker)
    assert registration, "the worker never looked for the contact"
    registration[0].join(10)
    monkeypatch.undo()

    # Whatever is due now: the email must be, not 30 s (a retry delay) from now.
    while worker.run_once():
        pass
    assert [rcpts for rcpts, _ in smtp.messages] == [[EMAIL]]
    delivery = email_of(service, event)
    assert delivery["status"] == "delivered"
    assert log_of(service, delivery["delivery_id"]) == [(1, "delivered", "SMTP 250")]


def test_an_email_whose_contact_never_arrives_ends_skipped(start_notify, publish, smtp):
    service = start_notify(retry_delays=(30, 120))
    event = publish(dispatched(tracking_id()))
    waiting = wait_for(lambda: (lambda e: e if e and e["last_error"] else None)(
        email_of(service, event)), what="the email to wait for the contact")
    # A day later (created 25 h ago), still no registration.
    with service.engine.begin() as conn:
        conn.execute(store.deliveries.update().where(
            store.deliveries.c.id == waiting["id"]).values(
            created_at=datetime.now(UTC) - timedelta(hours=25),
            next_attempt_at=datetime.now(UTC)))
    service.worker.wake()

    ended = wait_for(lambda: (lambda e: e if e["status"] != "pending" else None)(
        email_of(service, event)), what="the delivery to end")
    assert (ended["status"], ended["last_error"]) == ("skipped", "contact never arrived")
    assert log_of(service, ended["delivery_id"]) == [(1, "skipped", "contact never arrived")]
    assert smtp.messages == []


def test_without_any_endpoint_the_webhook_is_skipped_until_a_default_is_set(
        start_notify, publish, smtp, agency):
    service = start_notify()
    tid = tracking_id()
    publish(registered(tid))
    event = publish(dispatched(tid))

    skipped = wait_for(lambda: rows(service, store.deliveries, trigger_event_id=event.event_id,
                                    channel="webhook", status="skipped"),
                       what="the skipped webhook")[0]
    assert skipped["last_error"] == "no endpoint" and skipped["target"] == AGENCY.code
    assert [(a["outcome"], a["detail"]) for a in attempts_of(service, skipped["delivery_id"])] \
        == [("skipped", "no endpoint")]
    wait_for(lambda: smtp.to(EMAIL), what="the email")

    # The operator adds the default endpoint ('*'): agencies without their own now use it.
    subscribe(service, store.DEFAULT_AGENCY, agency.url + "/default",
              secret="default-secret-0001")
    publish(dispatched(tracking_id()))
    hook = wait_for(lambda: agency.delivered("/default"), what="the default endpoint")[0]
    assert signing.verify("default-secret-0001", hook["headers"], hook["body"], 60)
    assert json.loads(hook["body"])["agency"]["code"] == AGENCY.code


def test_reporter_email_follows_the_registration(start_notify, publish, smtp):
    service = start_notify()
    silent, english, triaged = tracking_id(), tracking_id(), tracking_id()
    publish(registered(silent, email_address=""))
    publish(registered(english, email_address="ayu@example.id", language="en"))
    publish(registered(triaged, email_address="budi@example.id"))
    quiet_event = publish(dispatched(silent))
    publish(dispatched(english))
    # SUBMITTED into the national admin's triage queue: "received, awaiting verification".
    publish(events.new("ticket.status_changed", triaged, events_pb2.TicketStatusChanged(
        tracking_id=triaged, ticket_id="TCK-" + triaged[4:],
        to_state=common_pb2.TICKET_STATE_SUBMITTED, actor_role="system",
        deadline=events.timestamp(DEADLINE), deadline_zone="WIB",
        agency=common_pb2.Agency(code="LAPOR-TRIASE", name="Admin Nasional LAPOR!",
                                 level="triage")), "routing"))

    message = wait_for(lambda: smtp.to("ayu@example.id"), what="the English email")[0]
    assert message["Subject"] == f"[LAPOR!] Report {english} forwarded to {AGENCY.name}"
    assert "Friday, 17 July 2026 at 16:00 WIB" in message.get_body(("plain",)).get_content()
    message = wait_for(lambda: smtp.to("budi@example.id"), what="the triage email")[0]
    assert message["Subject"] == f"[LAPOR!] Laporan {triaged} diterima, menunggu verifikasi"
    assert "Jumat, 17 Juli 2026 pukul 16.00 WIB" in message.get_body(("plain",)).get_content()
    # No email address, only a phone: the notice is for SMS, and no SMS gateway is set.
    skipped = wait_for(lambda: rows(service, store.deliveries,
                                    trigger_event_id=quiet_event.event_id, channel="sms",
                                    status="skipped"), what="the skipped SMS")[0]
    assert skipped["last_error"] == "no gateway"


def test_two_replicas_send_each_delivery_exactly_once(start_notify, publish, smtp, agency):
    first = start_notify()
    start_notify()
    subscribe(first, AGENCY.code, agency.url)
    ids = [tracking_id() for _ in range(15)]
    for tid in ids:
        publish(registered(tid, email_address=f"{tid.lower()}@example.id"))
        publish(dispatched(tid))

    wait_for(lambda: len(agency.delivered()) >= len(ids), timeout=20, what="all webhooks")
    wait_for(lambda: len(smtp.messages) >= len(ids), timeout=20, what="all emails")
    time.sleep(0.5)  # let a double send, if there were one, arrive
    delivered = [r["headers"]["X-Lapor-Delivery"] for r in agency.delivered()]
    assert len(delivered) == len(set(delivered)) == len(ids)
    assert sorted(rcpt for rcpts, _ in smtp.messages for rcpt in rcpts) == sorted(
        f"{tid.lower()}@example.id" for tid in ids)


# -- slow receivers (the lease must outlast any send) -----------------------------------------
def test_a_receiver_dripping_its_answer_ends_as_a_timeout_within_the_send_limit(
        start_notify, publish, slow_peers):
    webhook_peer = slow_peers(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")  # 19 s
    smtp_peer = slow_peers(b"220 mail.contoh.id ESMTP ready\r\n")
    service = start_notify(retry_delays=(30,), webhook_timeout=1.0, smtp_timeout=1.0,
                           smtp=SmtpSettings("127.0.0.1", smtp_peer.port))
    subscribe(service, AGENCY.code, f"http://127.0.0.1:{webhook_peer.port}/lapor")
    tid = tracking_id()
    publish(registered(tid))
    event = publish(dispatched(tid))

    limit = channels.send_limit(1.0)
    assert service.worker.settings.lease.total_seconds() >= 2 * limit + LEASE_MARGIN_S
    for channel, detail in (("webhook", "timeout"), ("email", "SMTP timeout")):
        [delivery] = wait_for(lambda c=channel: rows(
            service, store.deliveries, trigger_event_id=event.event_id, channel=c),
            what=f"the {channel} delivery")
        # A generous "no hang" bound: the drip alone would take 16 to 19 s.
        recorded = wait_for(lambda d=delivery: log_of(service, d["delivery_id"]),
                            timeout=limit + 4, what=f"the {channel} attempt to be recorded")
        assert recorded == [(1, "retry", detail)]


def test_every_attempt_of_an_email_carries_the_same_message_id(start_notify, publish, smtp):
    smtp.refuse = 1  # the first attempt is answered "451 try again later"
    service = start_notify()
    tid = tracking_id()
    publish(registered(tid))
    event = publish(dispatched(tid))

    message = wait_for(lambda: smtp.to(EMAIL), what="the second attempt")[0]
    [first] = smtp.refused
    delivery = wait_for(lambda: (lambda e: e if e["status"] == "delivered" else None)(
        email_of(service, event)), what="the record")
    assert first["Message-ID"] == message["Message-ID"] == (
        f"<{delivery['delivery_id']}@lapor.localhost>")
    assert log_of(service, delivery["delivery_id"]) == [
        (1, "retry", "SMTP 451"), (2, "delivered", "SMTP 250")]


# -- addresses notify must handle, whatever intake accepted -----------------------------------
def test_internationalised_addresses_go_out_with_smtputf8_or_as_idna(start_notify, publish,
                                                                     smtp):
    service = start_notify()
    unicode_local, unicode_domain = tracking_id(), tracking_id()
    publish(registered(unicode_local, email_address="rína@contoh.id"))
    publish(registered(unicode_domain, email_address="rina@contóh.id"))
    publish(dispatched(unicode_local))
    publish(dispatched(unicode_domain))

    message = wait_for(lambda: smtp.to("rína@contoh.id"), what="the SMTPUTF8 email")[0]
    assert message["To"] == "rína@contoh.id"
    assert unicode_local in message["Subject"]
    # A domain in Unicode goes as its IDNA form, which every server takes.
    message = wait_for(lambda: smtp.to("rina@xn--conth-3ta.id"), what="the IDNA email")[0]
    assert message["To"] == "rina@xn--conth-3ta.id"
    with smtp.lock:
        options = dict(zip([tuple(r) for r, _ in smtp.messages], smtp.mail_options,
                           strict=True))
    assert "SMTPUTF8" in options[("rína@contoh.id",)]
    assert "SMTPUTF8" not in options[("rina@xn--conth-3ta.id",)]
    wait_for(lambda: len(rows(service, store.deliveries, channel="email",
                              status="delivered")) == 2, what="both recorded")


def test_an_address_the_server_cannot_take_fails_once_and_is_never_logged(
        start_notify, publish, ascii_smtp, outcomes, caplog):
    caplog.set_level(logging.DEBUG)
    service = start_notify(smtp=parse_smtp_url(ascii_smtp.url))
    cases = {"rína@contoh.id": "recipient needs SMTPUTF8",
             "a,postmaster@contoh.id": "recipient address invalid"}
    events_by_address = {}
    for address in cases:
        tid = tracking_id()
        publish(registered(tid, email_address=address))
        events_by_address[address] = publish(dispatched(tid))
    fine = tracking_id()
    publish(registered(fine, email_address="rina@contóh.id"))
    publish(dispatched(fine))

    wait_for(lambda: ascii_smtp.to("rina@xn--conth-3ta.id"), what="the IDNA email")
    for address, reason in cases.items():
        ended = wait_for(lambda e=events_by_address[address]: (
            lambda d: d if d and d["status"] != "pending" else None)(email_of(service, e)),
            what=f"the email to {reason}")
        # Permanent: one attempt, not a retry loop, and the operators hear of it.
        assert (ended["status"], ended["last_error"]) == ("failed", reason)
        assert log_of(service, ended["delivery_id"]) == [(1, "failed", reason)]
        wait_for(lambda d=ended, r=reason: [o for _, o in outcomes()
                                            if o.delivery_id == d["delivery_id"]
                                            and o.reason == r], what="notification.failed")
    assert [rcpts for rcpts, _ in ascii_smtp.messages] == [["rina@xn--conth-3ta.id"]]

    logged = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records
                       if r.name.startswith("services."))
    for address in (*cases, "rína", "postmaster@"):
        assert address not in logged
