"""Intake as `python -m services.intake` runs it (services/intake/server.py): waitress on a real
port, against what abusive or unlucky clients do — hundreds of slow connections, a 200 MB
body, an endless chunked body — and the ordered stop on SIGTERM with a request in flight."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import re
import select
import socket
import threading
import time
from concurrent import futures

import grpc
import pytest
from flask import Flask, Response
from google.protobuf import timestamp_pb2

from lapor.v1 import common_pb2, routing_pb2, routing_pb2_grpc
from services.intake import limits
from services.intake.app import create_app
from services.intake.server import HttpServer, IntakeProcess, ServerSettings
from tests.conftest import free_port
from tests.integration.helpers import dead_amqp_url, scrape, scraped, wait_for

pytestmark = pytest.mark.integration

REPORT = {"kind": "PENGADUAN", "title": "Jalan rusak di Nagari Muaro",
          "body": "Jalan utama di Nagari Muaro rusak berlubang sejak bulan lalu.",
          "region_code": "13.03"}
HIGH_LIMITS = {key: "100000 per minute" for key in limits.LIMIT_SETTINGS}


class FakeRouting:
    """routing's API on a real gRPC port: SuggestRoute answering after `delay` seconds; the
    staff RPCs for STAFF_TOKEN only (UNAUTHENTICATED for any other), each answering a
    plausible ticket; the reporter's RPCs as if the action succeeded."""

    STAFF_TOKEN = "lpr_" + "F4k3" * 10 + "xyz"
    AGENCY = common_pb2.Agency(code="PUPR-13.03", name="Dinas PUPR Sijunjung", level="regency",
                               region_code="13.03", parent_code="PEMDA-13.03")

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.called = threading.Event()
        self.port = free_port()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        routing_pb2_grpc.add_RoutingServiceServicer_to_server(self._Servicer(self), self.server)
        self.server.add_insecure_port(f"127.0.0.1:{self.port}")

    @classmethod
    def ticket(cls, tracking_id: str) -> routing_pb2.Ticket:
        now = timestamp_pb2.Timestamp()
        now.GetCurrentTime()
        ticket = routing_pb2.Ticket(
            ticket_id="0b7c", tracking_id=tracking_id, state=common_pb2.TICKET_STATE_DISPATCHED,
            agency=cls.AGENCY, category="PUPR", deadline=now, deadline_zone="WIB",
            created_at=now, updated_at=now, region_code="13.03", version=3,
            report=common_pb2.ReportContent(
                kind=common_pb2.REPORT_KIND_PENGADUAN, title=REPORT["title"],
                body=REPORT["body"], region_code="13.03", region_name="Kabupaten Sijunjung",
                reporter_name="Siti", channel="web", location=common_pb2.GeoPoint(
                    latitude=-0.67, longitude=100.95), submitted_at=now),
            decision="jalan -> PUPR", confidence=0.8, complexity=1,
            accepted_at=now, clock="respond", escalation_level=1, support_count=4, rating=4,
            rating_comment="Cepat", allowed_actions=["accept", "follow_up",
                                                     "not_our_authority"])
        ticket.timeline.add(at=now, state=common_pb2.TICKET_STATE_SUBMITTED,
                            actor_role="citizen", note="Laporan diterima", action="submit")
        ticket.chain.add(agency=cls.AGENCY, reason="dispatched", at=now)
        ticket.messages.add(at=now, direction="to_reporter", author_role="agency_officer",
                            text="Di mana tepatnya?")
        ticket.deliveries.add(at=now, channel="webhook", audience="agency",
                              outcome="delivered")
        return ticket

    class _Servicer(routing_pb2_grpc.RoutingServiceServicer):
        def __init__(self, fake):
            self.fake = fake

        def SuggestRoute(self, request, context):  # noqa: N802 (gRPC's naming)
            self.fake.called.set()
            time.sleep(self.fake.delay)
            return routing_pb2.SuggestRouteResponse(
                category="PEKERJAAN UMUM DAN PENATAAN RUANG", category_code="PUPR",
                confidence=0.82,
                agency=common_pb2.Agency(code="PUPR-13.03", name="Dinas PUPR Sijunjung",
                                         level="regency"),
                needs_triage=False, explanation="jalan → PUPR")

        def ListCategories(self, request, context):  # noqa: N802
            return routing_pb2.ListCategoriesResponse(categories=[routing_pb2.DirectoryCategory(
                code="PUPR", name="PEKERJAAN UMUM DAN PENATAAN RUANG", subcategories=[
                    routing_pb2.DirectorySubcategory(code="PUPR.JALAN", name="Jalan")])])

        # -- staff: only STAFF_TOKEN is known ------------------------------------------------------
        def _staff(self, context) -> None:
            if ("authorization", f"Bearer {FakeRouting.STAFF_TOKEN}") not in [
                    tuple(m) for m in context.invocation_metadata()]:
                context.abort(grpc.StatusCode.UNAUTHENTICATED, "the token is unknown")

        def WhoAmI(self, request, context):  # noqa: N802
            self._staff(context)
            return routing_pb2.Principal(username="budi.pupr", display_name="Budi",
                                         role="agency_officer", agency=FakeRouting.AGENCY)

        def ListTickets(self, request, context):  # noqa: N802
            self._staff(context)
            now = timestamp_pb2.Timestamp()
            now.GetCurrentTime()
            answer = routing_pb2.ListTicketsResponse(next_page_token="NTA=")
            answer.tickets.add(tracking_id="LPR-7K2-M9Q-4TP",
                               state=common_pb2.TICKET_STATE_DISPATCHED,
                               agency=FakeRouting.AGENCY, category="PUPR",
                               title=REPORT["title"], region_code="13.03", deadline=now,
                               deadline_zone="WIB", version=2, created_at=now)
            return answer

        def GetTicket(self, request, context):  # noqa: N802
            self._staff(context)
            return FakeRouting.ticket(request.tracking_id)

        def GetAuditTrail(self, request, context):  # noqa: N802
            self._staff(context)
            now = timestamp_pb2.Timestamp()
            now.GetCurrentTime()
            trail = routing_pb2.AuditTrail(tracking_id=request.tracking_id)
            trail.entries.add(at=now, actor="budi.pupr", actor_role="agency_officer",
                              action="accept", from_state=common_pb2.TICKET_STATE_DISPATCHED,
                              to_state=common_pb2.TICKET_STATE_DISPATCHED,
                              from_agency="PUPR-13.03", to_agency="PUPR-13.03",
                              reason="SIMPLE", version=2)
            return trail

        def _act(self, request, context):
            self._staff(context)
            return FakeRouting.ticket(request.tracking_id)

        VerifyTicket = HoldTicket = ArchiveTicket = AcceptTicket = ForwardTicket = _act
        DeclineTicket = FollowUpTicket = CloseTicket = MessageReporter = _act
        LinkDuplicate = DismissDuplicate = _act

        # -- the reporter (through intake) ------------------------------------------------------
        @staticmethod
        def _done(outcome: str) -> routing_pb2.ReporterActionResponse:
            return routing_pb2.ReporterActionResponse(
                outcome=outcome, state=common_pb2.TICKET_STATE_REPORTER_REPLIED, version=4,
                agency=common_pb2.Agency(code="PUPR-13.03", name="Dinas PUPR Sijunjung"),
                deadline_zone="WIB")

        def ReporterReply(self, request, context):  # noqa: N802
            return self._done("replied")

        def ReporterConfirm(self, request, context):  # noqa: N802
            return self._done("closed")

        def RateTicket(self, request, context):  # noqa: N802
            return self._done("rated")

        def AppealTicket(self, request, context):  # noqa: N802
            return self._done("appealed")

    def __enter__(self) -> FakeRouting:
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop(0)


@contextlib.contextmanager
def running_intake(tmp_path, *, routing_addr: str | None = None, routing_timeout: float = 1.0,
                   workers: bool = False, **settings):
    """The whole intake process on free ports, with SQLite, an unreachable broker and the
    given routing (its relay and consumer running when `workers`); stopped (if the test did
    not) at the end."""
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'intake.db'}",
                      "AMQP_URL": dead_amqp_url(),
                      "ROUTING_ADDR": routing_addr or f"127.0.0.1:{free_port()}",
                      "ROUTING_TIMEOUT": routing_timeout, "START_WORKERS": workers,
                      **HIGH_LIMITS})
    options = {"port": 0, "metrics_port": 0, "request_timeout": 2.0,
               "shutdown_seconds": 3.0, **settings}
    process = IntakeProcess(app, ServerSettings(**options)).start()
    try:
        yield process
    finally:
        if not process.ctx.draining.is_set():
            process.stop()


def request(port: int, method: str, path: str, body: dict | None = None,
            timeout: float = 10.0) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=json.dumps(body) if body is not None else None,
                           headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        connection.close()


def read_answer(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes (a reset after the answer is fine)."""
    sock.settimeout(timeout)
    data = b""
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


# -- slow clients ---------------------------------------------------------------------------
def test_hundreds_of_slow_connections_neither_block_health_nor_reports_and_are_cut_off(
        tmp_path):
    with running_intake(tmp_path) as intake:
        slow = []
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", intake.port), timeout=5)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: intake\r\n")
            slow.append(sock)
        stop_trickle = threading.Event()

        def trickle():  # one header byte a second on each, never the blank line
            while not stop_trickle.wait(1.0):
                for sock in slow:
                    with contextlib.suppress(OSError):
                        sock.sendall(b"X")

        threading.Thread(target=trickle, daemon=True).start()
        try:
            for _ in range(3):
                status, _, body = request(intake.port, "GET", "/healthz", timeout=5)
                assert (status, json.loads(body)) == (200, {"status": "ok"})
                status, _, body = request(intake.port, "POST", "/api/v1/reports", REPORT,
                                          timeout=5)
                assert status == 201, body
                time.sleep(0.5)

            # Each slow connection is answered 408 and closed once its request is overdue.
            answers = [read_answer(sock, timeout=10) for sock in slow]
        finally:
            stop_trickle.set()
            for sock in slow:
                sock.close()
        timed_out = [a for a in answers if a.startswith(b"HTTP/1.1 408 ")]
        assert len(timed_out) == len(slow), {a[:40] for a in answers}
        head, _, body = timed_out[0].partition(b"\r\n\r\n")
        assert b"Content-Type: application/problem+json" in head
        assert json.loads(body)["code"] == "request_timeout"


def test_an_answer_larger_than_the_servers_buffer_reaches_a_slow_reader_whole():
    """An answer past waitress's 16 MiB output buffer makes the request's thread wait for the
    server's loop to send some of it; the loop must keep sending while that request is still
    running (intake's server holds off polling a connection whose task is writing), or the
    answer would stall. Another connection is answered meanwhile."""
    piece = bytes(range(256)) * 256  # 64 KiB
    pieces = 400  # 25 MiB
    app = Flask("big")

    @app.get("/big")
    def big():
        return Response((piece for _ in range(pieces)), mimetype="application/octet-stream")

    @app.get("/small")
    def small():
        return "ok"

    server = HttpServer(app, ServerSettings(port=0, threads=2)).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /big HTTP/1.1\r\nHost: intake\r\n\r\n")
            time.sleep(0.5)  # the server fills the socket and its buffer, then waits
            status, _, answer = request(server.port, "GET", "/small", timeout=5)
            assert (status, answer) == (200, b"ok")
            received = bytearray()
            started = time.monotonic()
            while True:
                head, sep, rest = bytes(received).partition(b"\r\n\r\n")
                if sep and rest.endswith(b"0\r\n\r\n"):
                    break
                chunk = sock.recv(256 * 1024)
                assert chunk, "the server closed the connection before the answer ended"
                received += chunk
                assert time.monotonic() - started < 30, f"stalled at {len(received):,} bytes"
        assert head.startswith(b"HTTP/1.1 200 ")
        body, position = bytearray(), 0
        while True:  # chunked transfer coding
            size_end = rest.index(b"\r\n", position)
            size = int(rest[position:size_end], 16)
            if size == 0:
                break
            body += rest[size_end + 2:size_end + 2 + size]
            position = size_end + 2 + size + 2
        assert body == piece * pieces
    finally:
        server.drain(2.0)


def test_a_connection_that_never_sends_a_byte_is_closed_without_an_answer(tmp_path):
    with running_intake(tmp_path) as intake:
        with socket.create_connection(("127.0.0.1", intake.port), timeout=5) as sock:
            assert read_answer(sock, timeout=10) == b""


def test_a_body_that_stops_arriving_is_answered_408(tmp_path):
    with running_intake(tmp_path) as intake:
        with socket.create_connection(("127.0.0.1", intake.port), timeout=5) as sock:
            sock.sendall(b"POST /api/v1/reports HTTP/1.1\r\nHost: intake\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 400\r\n\r\n"
                         b'{"kind": "PENGADUAN",')
            answer = read_answer(sock, timeout=10)
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer[:80]
        assert b"Connection: close" in answer
        status, _, _ = request(intake.port, "GET", "/healthz")
        assert status == 200


# -- large bodies ----------------------------------------------------------------------------
def send_until_answered(sock: socket.socket, first: bytes, chunk: bytes,
                        limit: int) -> tuple[int, bytes]:
    """Sends `first`, then `chunk` again and again until the server answers or stops reading,
    at most `limit` bytes; returns (bytes sent, the answer)."""
    sock.sendall(first)
    sent = 0
    sock.setblocking(False)
    try:
        while sent < limit:
            readable, writable, _ = select.select([sock], [sock], [], 5.0)
            if readable:
                break
            if not writable:
                continue
            try:
                sent += sock.send(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            except BlockingIOError:
                continue
    finally:
        sock.setblocking(True)
    return sent, read_answer(sock)


MB = 1024 * 1024


@pytest.mark.parametrize("expect_continue", [False, True])
def test_a_200_mb_body_is_refused_after_the_headers_without_being_read(tmp_path,
                                                                       expect_continue):
    with running_intake(tmp_path) as intake:
        with socket.create_connection(("127.0.0.1", intake.port), timeout=5) as sock:
            head = (b"POST /api/v1/reports HTTP/1.1\r\nHost: intake\r\n"
                    b"Content-Type: application/json\r\nContent-Length: %d\r\n" % (200 * MB)
                    + (b"Expect: 100-continue\r\n" if expect_continue else b"") + b"\r\n")
            sent, answer = send_until_answered(sock, head, b"x" * 65536, 200 * MB)
        # No "100 Continue" first: the client is told at once that the body is not wanted.
        assert answer.startswith(b"HTTP/1.1 413 Request Entity Too Large\r\n"), answer[:80]
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["code"] == "payload_too_large"
        assert sent < 20 * MB, f"the client sent {sent // MB} MB before the answer"
        status, _, _ = request(intake.port, "GET", "/healthz")
        assert status == 200


def test_an_endless_chunked_body_is_cut_off_at_the_limit(tmp_path):
    with running_intake(tmp_path) as intake:
        with socket.create_connection(("127.0.0.1", intake.port), timeout=5) as sock:
            head = (b"POST /api/v1/reports HTTP/1.1\r\nHost: intake\r\n"
                    b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            piece = b"x" * 8192
            chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
            sent, answer = send_until_answered(sock, head, chunk, 200 * MB)
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:80]
        assert sent < 20 * MB, f"the client sent {sent // MB} MB before the answer"


def test_oversized_headers_get_a_problem_not_a_read_of_everything(tmp_path):
    with running_intake(tmp_path) as intake:
        with socket.create_connection(("127.0.0.1", intake.port), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: intake\r\nX-Filler: "
                         + b"a" * (64 * 1024) + b"\r\n\r\n")
            answer = read_answer(sock)
        assert re.match(rb"HTTP/1\.[01] 431 ", answer), answer[:80]
        assert json.loads(answer.partition(b"\r\n\r\n")[2])["code"] == "headers_too_large"


# -- metrics port ----------------------------------------------------------------------------
def test_metrics_are_on_their_own_port_and_not_on_the_citizens_one(tmp_path):
    with running_intake(tmp_path) as intake:
        request(intake.port, "POST", "/api/v1/reports", REPORT)
        text = scrape(intake.ops.port)
        assert 'lapor_http_requests_total{method="POST",route="/api/v1/reports",status="201"}' \
            in text
        status, _, body = request(intake.port, "GET", "/metrics")
        assert status == 404 and json.loads(body)["code"] == "not_found"
        status, _, body = request(intake.ops.port, "GET", "/readyz")
        assert status == 200 and json.loads(body)["checks"]["serving"] is True


def test_a_request_waiting_for_a_busy_server_is_measured_not_logged(tmp_path, caplog):
    """With every server thread busy, a request queues: the wait shows on the metrics port
    (lapor_http_queue_wait_seconds) and waitress's warning per queued request is not logged."""
    with FakeRouting(delay=1.5) as routing, running_intake(
            tmp_path, routing_addr=f"127.0.0.1:{routing.port}", routing_timeout=5.0,
            threads=1) as intake:
        def waits() -> tuple[float, float]:
            text = scrape(intake.ops.port)
            return (scraped(text, "lapor_http_queue_wait_seconds_count") or 0.0,
                    scraped(text, "lapor_http_queue_wait_seconds_bucket", le="0.5") or 0.0)

        count_before, quick_before = waits()
        busy = threading.Thread(target=request, args=(
            intake.port, "POST", "/api/v1/reports/suggest",
            {"title": "Jalan rusak", "region_code": "13.03"}))
        with caplog.at_level(logging.DEBUG):
            busy.start()
            assert routing.called.wait(5), "the suggestion never reached routing"
            status, _, body = request(intake.port, "GET", "/healthz")  # waits for the thread
            busy.join(10)
        assert (status, json.loads(body)) == (200, {"status": "ok"})
        count, quick = waits()
        assert count - count_before == 2  # the suggestion and the health check
        assert quick - quick_before == 1  # the suggestion went straight to the thread
        assert not [r for r in caplog.records if "queue depth" in r.getMessage()]


def test_a_dead_background_loop_fails_liveness_on_the_metrics_port(tmp_path):
    with running_intake(tmp_path, workers=True) as intake:
        status, _, body = request(intake.ops.port, "GET", "/healthz")
        assert (status, json.loads(body)["checks"]) == (200, {"loops": True})
        intake.ctx.outbox.loop.stop(2.0)  # as if the relay's thread had ended
        status, _, body = request(intake.ops.port, "GET", "/healthz")
        assert (status, json.loads(body)["checks"]) == (503, {"loops": False})


# -- the ordered stop ------------------------------------------------------------------------
def test_stop_finishes_the_request_in_flight_refuses_new_connections_and_keeps_the_budget(
        tmp_path):
    budget = 8.0
    with FakeRouting(delay=2.0) as routing, running_intake(
            tmp_path, routing_addr=f"127.0.0.1:{routing.port}", routing_timeout=5.0,
            workers=True, shutdown_seconds=budget) as intake:
        port, ops_port = intake.port, intake.ops.port
        in_flight: dict = {}

        def slow_suggestion():
            try:
                in_flight["answer"] = request(port, "POST", "/api/v1/reports/suggest",
                                              {"title": "Jalan rusak", "region_code": "13.03"})
            except Exception as exc:  # noqa: BLE001 - the assertion below shows it
                in_flight["error"] = exc

        client = threading.Thread(target=slow_suggestion)
        client.start()
        assert routing.called.wait(5), "the suggestion never reached routing"

        stopping: dict = {}

        def stop():
            started = time.monotonic()
            stopping["left"] = intake.stop()
            stopping["seconds"] = time.monotonic() - started

        stopper = threading.Thread(target=stop)
        stopper.start()
        wait_for(intake.ctx.draining.is_set, timeout=5, what="the drain to begin")
        status, _, body = request(ops_port, "GET", "/readyz")
        assert status == 503 and json.loads(body)["checks"]["serving"] is False

        # New connections during the drain: refused at once, never accepted and then reset.
        outcomes = []
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            try:
                status, _, _ = request(port, "GET", "/readyz", timeout=5)
                outcomes.append(status)
            except ConnectionRefusedError:
                outcomes.append("refused")
                break
            time.sleep(0.05)
        assert outcomes[-1] == "refused", outcomes
        assert set(outcomes) <= {"refused", 503}, outcomes

        client.join(10)
        stopper.join(budget + 5)
        assert "error" not in in_flight, in_flight.get("error")
        status, headers, body = in_flight["answer"]
        assert status == 200
        assert json.loads(body)["agency"]["code"] == "PUPR-13.03"  # the whole body arrived
        assert headers["Connection"] == "close"
        assert not stopper.is_alive() and stopping["seconds"] <= budget + 1.0, stopping
        with pytest.raises(ConnectionRefusedError):
            request(port, "GET", "/healthz", timeout=2)
