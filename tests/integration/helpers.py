"""Shared helpers for the integration tests: polling with a deadline, looking into RabbitMQ
queues and connections, a TCP proxy that plays a broker going down and coming back, event
builders and Prometheus readings."""

from __future__ import annotations

import collections
import contextlib
import functools
import os
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

import grpc
import pika
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from lapor.v1 import common_pb2, events_pb2
from services.infra import events, messaging

AMQP_HOST = os.environ.get("LAPOR_TEST_AMQP_HOST", "127.0.0.1:5672")

SIJUNJUNG_PUPR = common_pb2.Agency(code="PUPR-13.03", level="regency", region_code="13.03",
                                   name="Dinas Pekerjaan Umum dan Penataan Ruang "
                                        "Kabupaten Sijunjung", parent_code="PEMDA-13.03")


# Road reports from Sijunjung, each plainly its own matter: routing links a report nearly
# identical to an open one as its duplicate, so tests that need their own ticket differ.
ROAD_TEXTS = [
    ("Jalan rusak di Nagari Muaro", "Jalan utama berlubang besar dan aspalnya rusak sejak "
     "tiga bulan lalu; sudah dua pengendara motor jatuh di sana."),
    ("Aspal jalan kabupaten mengelupas di Sumpur Kudus", "Lapisan aspal jalan kabupaten di "
     "Sumpur Kudus mengelupas dan menyisakan kerikil lepas, mohon segera diperbaiki."),
    ("Jalan amblas dekat jembatan Palangki", "Badan jalan menuju jembatan Palangki amblas "
     "sedalam setengah meter, truk pengangkut sawit tidak berani lewat."),
    ("Jalan tergenang karena drainase tersumbat", "Saluran drainase di sepanjang jalan Tanjung "
     "Gadang tersumbat sampah sehingga setiap hujan jalan tergenang air selutut."),
    ("Jalan tanah di Koto Tuo belum diaspal", "Jalan penghubung jorong Koto Tuo masih tanah "
     "liat, becek dan licin di musim hujan, anak sekolah sering terjatuh."),
    ("Jalan retak panjang di Kamang Baru", "Aspal jalan kabupaten di Kamang Baru retak "
     "memanjang hampir dua ratus meter dan mulai mengelupas di bagian tengah."),
    ("Perbaikan jalan Lubuk Tarok tidak selesai", "Perbaikan jalan kabupaten di Lubuk Tarok "
     "berhenti di tengah jalan, separuh ruas masih berlubang dan berbatu."),
    ("Jalan berlubang dekat pasar Sijunjung", "Jalan di depan pasar Sijunjung penuh lubang "
     "dan genangan, pedagang minta jalan ditambal sebelum musim hujan."),
    ("Jalan rusak parah di Kupitan", "Lubang-lubang besar memenuhi jalan menuju Kupitan, "
     "ambulans desa harus memutar lewat kebun karet."),
    ("Jalan kabupaten di Padang Laweh penuh tambalan", "Jalan kabupaten di Padang Laweh "
     "hanya ditambal sulam, tambalannya lepas lagi dan lubangnya makin dalam."),
    ("Gorong-gorong jalan runtuh di Silokek", "Gorong-gorong di bawah jalan kabupaten menuju "
     "Silokek runtuh sehingga jalan berlubang besar di tengahnya."),
    ("Jalan gelap dan berlubang di IV Nagari", "Jalan desa di IV Nagari banyak lubang tertutup "
     "air sehingga tidak terlihat pengendara pada malam hari."),
]

@functools.cache
def classifier():
    """Routing's current classifier model (var/model, built from the corpus when missing),
    loaded once per test process: the Workflow routes every report through it."""
    from services.routing.classify.store import ModelStore, model_dir
    from services.routing.classify.training import load_or_build

    return load_or_build(ModelStore(model_dir()))


def wait_for(condition, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    """Polls until condition() is truthy and returns its value; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def dead_amqp_url() -> str:
    """A broker URL nobody listens on: connecting is refused at once."""
    from tests.conftest import free_port

    return f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"


# -- RabbitMQ --------------------------------------------------------------------------------
def rabbitmqctl(*args: str) -> str:
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    done = subprocess.run([*sudo, "rabbitmqctl", "-q", *args], check=True, capture_output=True,
                          text=True, timeout=60)
    return done.stdout


def vhost_of(amqp_url: str) -> str:
    return unquote(urlsplit(amqp_url).path.lstrip("/")) or "/"


@contextlib.contextmanager
def temporary_vhost(prefix: str = "lapor-test") -> Iterator[str]:
    """A fresh vhost for fixtures wider than one test (conftest's amqp_url is per test)."""
    from tests.conftest import create_vhost, delete_vhost

    vhost = f"{prefix}-{uuid.uuid4().hex[:12]}"
    create_vhost(vhost)
    try:
        yield f"amqp://guest:guest@{AMQP_HOST}/{quote(vhost, safe='')}"
    finally:
        delete_vhost(vhost)


@contextlib.contextmanager
def channel(amqp_url: str) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()


def declare(amqp_url: str, *specs: messaging.QueueSpec) -> None:
    """Declares the exchange and the given consumer queues with their retry path."""
    with channel(amqp_url) as ch:
        messaging.declare_topology(ch, list(specs))


def observe(amqp_url: str, *patterns: str) -> str:
    """A queue bound to lapor.events for `patterns`, to see what a service publishes."""
    name = f"test.observe.{uuid.uuid4().hex[:8]}"
    with channel(amqp_url) as ch:
        ch.exchange_declare(messaging.EXCHANGE, exchange_type="topic", durable=True)
        ch.queue_declare(name, durable=True)
        for pattern in patterns:
            ch.queue_bind(name, messaging.EXCHANGE, routing_key=pattern)
    return name


def queue_depth(amqp_url: str, queue: str) -> int:
    """Messages ready in the queue (not counting those handed to a consumer)."""
    with channel(amqp_url) as ch:
        return ch.queue_declare(queue, passive=True).method.message_count


def each_event(properties: pika.BasicProperties, body: bytes
               ) -> list[tuple[pika.BasicProperties, bytes]]:
    """The events a message carries, each as the (properties, body) it would have had as a
    message of its own: the message itself, or a batch's events (messaging.Publisher)."""
    if properties.content_type != events.BATCH_CONTENT_TYPE:
        return [(properties, body)]
    return [(pika.BasicProperties(content_type=events.CONTENT_TYPE, type=properties.type,
                                  message_id=events.decode(inner).event_id,
                                  headers=properties.headers), inner)
            for inner in events.unpack(properties.content_type, body)]


def take_messages(amqp_url: str, queue: str, *, raw: bool = False
                  ) -> list[tuple[pika.BasicProperties, bytes]]:
    """Removes every message now in the queue and returns its events, oldest first (with
    `raw`, the messages as they are)."""
    taken = []
    with channel(amqp_url) as ch:
        while True:
            method, properties, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                return taken
            taken.extend([(properties, body)] if raw else each_event(properties, body))


def peek_messages(amqp_url: str, queue: str) -> list[tuple[pika.BasicProperties, bytes]]:
    """Returns the events of every message now in the queue and leaves them there."""
    seen = []
    with channel(amqp_url) as ch:
        while True:
            method, properties, body = ch.basic_get(queue, auto_ack=False)
            if method is None:
                break
            seen.extend(each_event(properties, body))
    # Closing the channel without acking puts them back.
    return seen


def collect_events(amqp_url: str, queue: str, count: int, timeout: float = 10.0
                   ) -> list[events_pb2.EventEnvelope]:
    """Waits until `count` events have arrived on `queue` and returns them decoded."""
    got: list[events_pb2.EventEnvelope] = []

    def enough():
        got.extend(events.decode(body) for _, body in take_messages(amqp_url, queue))
        return len(got) >= count

    wait_for(enough, timeout, interval=0.1, what=f"{count} message(s) on {queue}")
    return got


def connection_pids(amqp_url: str, name: str) -> list[str]:
    """Broker-side ids of the vhost's connections whose client named itself `name`."""
    out = rabbitmqctl("list_connections", "-p", vhost_of(amqp_url), "--no-table-headers",
                      "pid", "client_properties")
    return [line.split("\t", 1)[0] for line in out.splitlines()
            if f'{{"connection_name","{name}"}}' in line]


def close_connections(amqp_url: str, name: str) -> list[str]:
    """Has the broker close the named connections, as a broker restart or failover would."""
    pids = connection_pids(amqp_url, name)
    for pid in pids:
        rabbitmqctl("close_connection", pid, "integration test: simulated broker failure")
    return pids


class TcpProxy:
    """Forwards a local port to the broker; stop() refuses connections and cuts the open
    ones (the broker is down), start() again serves the same port (it is back).
    hold_replies() keeps the connections open and passes on what the client sends, but
    nothing the broker answers (a broker that takes messages and never confirms them, nor
    sends heartbeats); release_replies() lets the held answers through."""

    def __init__(self, target: str = AMQP_HOST):
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._replies = threading.Event()
        self._replies.set()

    def hold_replies(self) -> None:
        self._replies.clear()

    def release_replies(self) -> None:
        self._replies.set()

    def url(self, vhost_url: str) -> str:
        """`vhost_url` (an amqp URL) rewritten to go through this proxy."""
        parts = urlsplit(vhost_url)
        return f"amqp://guest:guest@127.0.0.1:{self.port}{parts.path}"

    def start(self) -> TcpProxy:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, []
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self._listener is not listener:
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
            for src, dst, gate in ((client, upstream, None), (upstream, client, self._replies)):
                threading.Thread(target=self._pump, args=(src, dst, gate), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket,
              gate: threading.Event | None = None) -> None:
        try:
            while data := src.recv(65536):
                while gate is not None and not gate.wait(0.1):
                    if src.fileno() < 0:
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def accept_until(listener: socket.socket, stopped: threading.Event, on_connection) -> None:
    """Hands each connection `listener` accepts to `on_connection` until `stopped` is set
    (looked at every 0.1 s) or the listener is closed: the loop of a test's TCP peer."""
    listener.settimeout(0.1)
    while not stopped.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        on_connection(conn)


class BlackHole:
    """A TCP listener that accepts connections and never answers: an overloaded broker, one
    still starting, or a proxy with no backend. close() frees the port (a TcpProxy can then
    take it over: the broker "comes back" on the same address)."""

    def __init__(self):
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, vhost_url: str, **query: object) -> str:
        parts = urlsplit(vhost_url)
        extra = "&".join(f"{k}={v}" for k, v in query.items())
        return f"amqp://guest:guest@127.0.0.1:{self.port}{parts.path}" + (
            f"?{extra}" if extra else "")

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted.append(client)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for sock in self.accepted:
            with contextlib.suppress(OSError):
                sock.close()


# -- services ----------------------------------------------------------------------------------
def start_routing(database_url: str, amqp_url: str, **settings):
    """Routing in this process with the demo directory, on free ports, consuming; with a
    national admin's token (`service.token`: sees and may read everything) and a platform
    service's token (`service.intake_token`: what intake calls with) for the tests' calls."""
    from services.routing.app import RoutingService, Settings
    from tests.conftest import free_port

    service = RoutingService(Settings(
        database_url=database_url, amqp_url=amqp_url, listen=f"127.0.0.1:{free_port()}",
        metrics_port=free_port(), shutdown_seconds=4, seed_demo=True, **settings)).start()
    service.token = account_token(service.engine, "test-admin", "national_admin")
    service.intake_token = account_token(service.engine, "test-intake", "service")
    wait_for(service.consumer.consuming.is_set, 10, what="routing's consumer")
    return service


def account_token(engine, username: str, role: str, agency: str = "", *, days: int = 90,
                  **account: str) -> str:
    """A fresh token of the account, created first when missing (account: display_name,
    tls_subject)."""
    from services.routing import auth

    with engine.begin() as conn:
        if auth.get_account(conn, username) is None:
            auth.create_account(conn, username, role, agency, **account)
        return auth.issue_token(conn, username, days).token


def bearer(token: str) -> list[tuple[str, str]]:
    """The metadata routing authenticates a call by."""
    return [("authorization", f"Bearer {token}")]


class _CallDetails(collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready",
                         "compression")), grpc.ClientCallDetails):
    pass


class BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call on a channel."""

    def __init__(self, token: str):
        self.metadata = bearer(token)

    def _with_token(self, details: grpc.ClientCallDetails) -> _CallDetails:
        return _CallDetails(details.method, details.timeout,
                            [*(details.metadata or ()), *self.metadata], details.credentials,
                            details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(self._with_token(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):
        return continuation(self._with_token(client_call_details), request)


@contextlib.contextmanager
def routing_channel(service, token: str | None = None) -> Iterator[grpc.Channel]:
    """A plaintext channel to an in-process routing whose calls carry `token` (by default the
    national admin's, service.token); token="" sends none."""
    token = service.token if token is None else token
    with grpc.insecure_channel(f"127.0.0.1:{service.port}") as plain:
        yield grpc.intercept_channel(plain, BearerToken(token)) if token else plain


# -- events ----------------------------------------------------------------------------------
def ticket_dispatched(tracking_id: str, *, occurred_at: datetime | None = None,
                      agency: common_pb2.Agency = SIJUNJUNG_PUPR,
                      deadline: datetime = datetime(2030, 7, 19, 9, 0, tzinfo=UTC),
                      version: int = 0) -> events_pb2.EventEnvelope:
    return events.new("ticket.dispatched", tracking_id, events_pb2.TicketDispatched(
        tracking_id=tracking_id, ticket_id=str(uuid.uuid4()), agency=agency,
        deadline=events.timestamp(deadline), deadline_zone="WIB", working_days=5,
        category="PUPR", confidence=0.8, decision="test", actor_role="system",
        ticket_version=version), producer="routing", occurred_at=occurred_at)


def status_changed(tracking_id: str, to_state: str, *, occurred_at: datetime | None = None,
                   agency: common_pb2.Agency = SIJUNJUNG_PUPR, note: str = "",
                   version: int = 0) -> events_pb2.EventEnvelope:
    state = common_pb2.TicketState.Value("TICKET_STATE_" + to_state)
    return events.new("ticket.status_changed", tracking_id, events_pb2.TicketStatusChanged(
        tracking_id=tracking_id, ticket_id=str(uuid.uuid4()),
        from_state=common_pb2.TicketState.TICKET_STATE_DISPATCHED, to_state=state,
        actor_role="agency_officer", agency=agency, public_note=note,
        ticket_version=version), producer="routing", occurred_at=occurred_at)


def notification(tracking_id: str, *, audience: str, outcome: str = "delivered",
                 channel_name: str = "email") -> events_pb2.EventEnvelope:
    return events.new(f"notification.{outcome}", tracking_id, events_pb2.NotificationOutcome(
        tracking_id=tracking_id, delivery_id=str(uuid.uuid4()), channel=channel_name,
        audience=audience, attempt=1, outcome=outcome, trigger_type="ticket.dispatched"),
        producer="notify")


# -- metrics ---------------------------------------------------------------------------------
def metric(name: str, **labels: str) -> float:
    """A sample of this process's default registry (0 when the series does not exist)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scraped(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in a Prometheus text exposition, or None when absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v
                                           for k, v in labels.items()):
                return sample.value
    return None


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def query_plans(conn, run) -> list[str]:
    """The plans of the statements `run()` sends on `conn` (EXPLAIN on PostgreSQL, EXPLAIN
    QUERY PLAN on SQLite), each as one line. On PostgreSQL sequential scans are off for the
    rest of the transaction: a test's small table is cheaper to scan, and the question is
    whether an index can serve the statement."""
    import sqlalchemy as sa

    from services.infra import db

    postgres = db.is_postgres(conn)
    if postgres:
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    plans: list[str] = []

    def explain(_conn, cursor, statement, parameters, _context, _many):
        cursor.execute(("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + statement,
                       parameters)
        plans.append(" ".join(str(step[-1]) for step in cursor.fetchall()))

    sa.event.listen(conn, "before_cursor_execute", explain)
    try:
        run()
    finally:
        sa.event.remove(conn, "before_cursor_execute", explain)
    return plans
