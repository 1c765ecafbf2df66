"""Routing in-process against real servers: its gRPC API as intake and agency systems call
it, its consumer turning report.submitted into tickets, its health, reflection and metrics."""

from __future__ import annotations

import base64
import json
import threading
import urllib.request
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import grpc
import holidays
import pytest
import sqlalchemy as sa
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from grpc_status import rpc_status

from lapor.v1 import common_pb2, events_pb2, routing_pb2, routing_pb2_grpc
from services.infra import events, messaging
from services.intake import ids
from services.intake.app import create_app
from services.routing import seed, storage
from services.routing.app import RoutingService
from tests.integration.helpers import (
    collect_events,
    dead_amqp_url,
    metric,
    observe,
    routing_channel,
    scrape,
    scraped,
    start_routing,
    take_messages,
    temporary_vhost,
    wait_for,
)

pytestmark = pytest.mark.integration
WIB = ZoneInfo("Asia/Jakarta")
ROAD_TITLE = "Jalan rusak berlubang di Nagari Muaro"
ROAD_BODY = ("Jalan kabupaten di depan pasar berlubang besar dan aspalnya rusak, "
             "sudah tiga bulan tidak diperbaiki.")
State = common_pb2.TicketState


@pytest.fixture(scope="module")
def shared_routing(tmp_path_factory):
    """One routing process for the tests that only read (they share it to stay fast)."""
    with temporary_vhost() as amqp_url:
        database = tmp_path_factory.mktemp("routing") / "routing.db"
        service = start_routing(f"sqlite:///{database}", amqp_url)
        yield service
        service.stop()


@pytest.fixture
def channel(shared_routing):
    with routing_channel(shared_routing) as ch:
        yield ch


@pytest.fixture
def stub(channel):
    return routing_pb2_grpc.RoutingServiceStub(channel)


def rpc_error(call, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=5)
    return raised.value


def violations(error: grpc.RpcError) -> dict[str, str]:
    status = rpc_status.from_call(error)
    assert status is not None, "the error carries a google.rpc.Status"
    found = {}
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        assert detail.Unpack(bad)
        found.update({v.field: v.description for v in bad.field_violations})
    return found


# -- queries ---------------------------------------------------------------------------------
def test_a_road_report_in_sijunjung_is_suggested_for_its_public_works_office(stub):
    answer = stub.SuggestRoute(routing_pb2.SuggestRouteRequest(
        kind=common_pb2.REPORT_KIND_PENGADUAN, title=ROAD_TITLE, body=ROAD_BODY,
        region_code="13.03"), timeout=5)
    # The name exactly as in the directory, the code beside it.
    assert (answer.category, answer.category_code) == ("PEKERJAAN UMUM DAN PENATAAN RUANG",
                                                       "PUPR")
    assert answer.agency.code == "PUPR-13.03"
    assert "Sijunjung" in answer.agency.name
    assert answer.confidence >= 0.6 and not answer.needs_triage
    assert answer.explanation and answer.rule and answer.model_version
    assert len(answer.alternatives) == 2
    assert all(a.category and a.category_code != "PUPR" and a.confidence <= answer.confidence
               for a in answer.alternatives)

    national = stub.SuggestRoute(routing_pb2.SuggestRouteRequest(
        title=ROAD_TITLE, body=ROAD_BODY, region_code="31.71"), timeout=5)
    assert national.agency.code == "KEMENPU"


def test_invalid_arguments_name_each_field_in_a_bad_request_detail(stub):
    error = rpc_error(stub.SuggestRoute, routing_pb2.SuggestRouteRequest(
        title=ROAD_TITLE, body=ROAD_BODY, region_code="Sijunjung"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(violations(error)) == ["region_code"]
    assert "13.03" in violations(error)["region_code"]

    error = rpc_error(stub.SuggestRoute, routing_pb2.SuggestRouteRequest(
        region_code="13.3", category="PERPAJAKAN"))
    assert set(violations(error)) == {"region_code", "category", "body"}

    error = rpc_error(stub.ListAgencies, routing_pb2.ListAgenciesRequest(
        region_code="13.03", page_size=501, page_token="!!not-a-token"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(error)) == {"page_size", "page_token"}
    for forged in ("-1", "9" * 20):  # decodes to a number, but not one routing handed out
        token = base64.urlsafe_b64encode(forged.encode()).decode()
        error = rpc_error(stub.ListAgencies, routing_pb2.ListAgenciesRequest(page_token=token))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, forged
        assert list(violations(error)) == ["page_token"]


def test_unknown_tickets_and_agencies_are_not_found(stub):
    error = rpc_error(stub.GetTicket, routing_pb2.GetTicketRequest(
        tracking_id=ids.new_tracking_id()))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "no ticket" in error.details()
    error = rpc_error(stub.GetTicket, routing_pb2.GetTicketRequest())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert rpc_error(stub.GetAgency, routing_pb2.GetAgencyRequest(
        code="PUPR-99.99")).code() == grpc.StatusCode.NOT_FOUND
    agency = stub.GetAgency(routing_pb2.GetAgencyRequest(code="PUPR-13.03"), timeout=5)
    assert (agency.level, agency.region_code, agency.parent_code) == (
        "regency", "13.03", "PEMDA-13.03")


def test_listing_agencies_page_by_page_returns_each_once(stub):
    serving = {"13.03", "13", ""}
    expected = {a.code for a in seed.demo_agencies() if a.region_code in serving}
    seen, token, pages = [], "", 0
    while True:
        page = stub.ListAgencies(routing_pb2.ListAgenciesRequest(
            region_code="13.03", page_size=4, page_token=token), timeout=5)
        pages += 1
        assert len(page.agencies) <= 4
        seen += [a.code for a in page.agencies]
        token = page.next_page_token
        if not token:
            break
        assert pages < 20, "paging does not end"
    assert len(seen) == len(set(seen)), "no agency on two pages"
    assert set(seen) == expected
    assert pages == -(-len(expected) // 4)
    assert all(code.endswith("13.03") for code in seen[:7]), "the regency's own offices first"
    whole = stub.ListAgencies(routing_pb2.ListAgenciesRequest(region_code="13.03",
                                                              page_size=500), timeout=5)
    assert [a.code for a in whole.agencies] == seen and not whole.next_page_token


def test_health_and_no_reflection_by_default(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "lapor.v1.RoutingService"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    # Reflection would list every method to anyone who reaches the port.
    with pytest.raises(grpc.RpcError) as raised:
        ProtoReflectionDescriptorDatabase(channel).get_services()
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_reflection_when_enabled(sqlite_url):
    with temporary_vhost() as amqp_url:
        service = start_routing(sqlite_url, amqp_url, reflection=True)
        try:
            with grpc.insecure_channel(f"127.0.0.1:{service.port}") as ch:
                services = set(ProtoReflectionDescriptorDatabase(ch).get_services())
        finally:
            service.stop()
    assert {"lapor.v1.RoutingService", "grpc.health.v1.Health"} <= services


def test_rpcs_are_counted_by_method_and_code(shared_routing, stub):
    port = shared_routing.ops.port

    def handled(method, code):
        return scraped(scrape(port), "lapor_grpc_server_handled_total", method=method,
                       code=code) or 0

    ok, not_found = handled("GetAgency", "OK"), handled("GetAgency", "NOT_FOUND")
    for _ in range(3):
        stub.GetAgency(routing_pb2.GetAgencyRequest(code="KEMENPU"), timeout=5)
    rpc_error(stub.GetAgency, routing_pb2.GetAgencyRequest(code="NOPE"))
    assert handled("GetAgency", "OK") == ok + 3
    assert handled("GetAgency", "NOT_FOUND") == not_found + 1
    text = scrape(port)
    assert scraped(text, "lapor_grpc_server_handling_seconds_count", method="GetAgency") >= 4
    assert scraped(text, "lapor_grpc_server_handled_total", method="SuggestRoute",
                   code="INTERNAL") is not None, "label sets exist before the first error"


def test_the_ops_port_reports_ready(shared_routing):
    with urllib.request.urlopen(f"http://127.0.0.1:{shared_routing.ops.port}/readyz",
                                timeout=5) as response:
        assert response.status == 200
        assert json.loads(response.read())["checks"] == {"database": True, "broker": True,
                                                         "loops": True}


# -- intake's citizen API calling this routing -----------------------------------------------
def test_intake_suggestions_come_from_routing(shared_routing, sqlite_url, tmp_path):
    # Intake calls with its own service token, from the file INTAKE_ROUTING_TOKEN_FILE names.
    token_file = tmp_path / "intake-routing-token"
    token_file.write_text(shared_routing.intake_token + "\n")
    app = create_app({"DATABASE_URL": sqlite_url, "AMQP_URL": dead_amqp_url(),
                      "ROUTING_ADDR": f"127.0.0.1:{shared_routing.port}",
                      "ROUTING_TOKEN_FILE": str(token_file),
                      "ROUTING_TIMEOUT": 2.0, "START_WORKERS": False})
    client = app.test_client()
    try:
        answer = client.post("/api/v1/reports/suggest", json={
            "kind": "PENGADUAN", "title": ROAD_TITLE, "body": ROAD_BODY,
            "region_code": "13.03"})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        suggestion = answer.get_json()
        assert suggestion["agency"]["code"] == "PUPR-13.03"
        assert (suggestion["category"], suggestion["category_code"]) == (
            "PEKERJAAN UMUM DAN PENATAAN RUANG", "PUPR")
        assert suggestion["subcategory_code"].startswith("PUPR.") and suggestion["subcategory"]
        assert suggestion["needs_triage"] is False
        assert [set(a) for a in suggestion["alternatives"]] == [
            {"category", "category_code", "confidence"}] * 2
        assert suggestion["confidence"] >= suggestion["alternatives"][0]["confidence"]

        # routing rejects what intake's own checks let through; the field reaches the citizen
        refused = client.post("/api/v1/reports/suggest", json={
            "title": ROAD_TITLE, "body": ROAD_BODY, "region_code": "13.03",
            "category": "PERPAJAKAN"})
        assert refused.status_code == 422 and refused.mimetype == "application/problem+json"
        assert [e["field"] for e in refused.get_json()["errors"]] == ["category"]

        ready = client.get("/readyz").get_json()
        assert ready["checks"]["routing"] is True

        odd = [{"title": "\u202e" * 200, "region_code": "13"}, {"body": "🚧" * 5000,
               "region_code": "13.03.01.2001"}, {"title": "x", "region_code": "99"},
               {"title": "jalan", "region_code": "13.03", "kind": "ASPIRASI"},
               {"title": "jalan", "region_code": "13.03", "category": "A" * 40}]
        for body in odd:
            response = client.post("/api/v1/reports/suggest", json=body)
            assert response.status_code in (200, 422), (body, response.status_code)
    finally:
        ctx = app.extensions["lapor"]
        ctx.routing.close()
        ctx.engine.dispose()


# -- the consumer: reports become tickets ----------------------------------------------------
def submitted(tracking_id: str, title: str, body: str, region: str = "13.03",
              reporter_name: str = "Siti Rahayu") -> events_pb2.EventEnvelope:
    return events.new("report.submitted", tracking_id, events_pb2.ReportSubmitted(
        tracking_id=tracking_id, report=common_pb2.ReportContent(
            kind=common_pb2.REPORT_KIND_PENGADUAN, title=title, body=body, region_code=region,
            reporter_name=reporter_name, channel="web",
            submitted_at=events.timestamp(datetime.now(UTC)))), producer="intake")


def closed_days(*years: int):
    """Public holidays and joint leave (cuti bersama): the days government offices close."""
    return holidays.country_holidays("ID", years=years, categories=("public", "government"))


def working_days_between(start_day, end_day) -> int:
    """Mon-Fri days after start_day up to and including end_day that offices are open."""
    closed = closed_days(*range(start_day.year, end_day.year + 1))
    day, n = start_day, 0
    while day < end_day:
        day += timedelta(days=1)
        n += day.weekday() < 5 and day not in closed
    return n


def outbox_drained(service: RoutingService) -> bool:
    """Every event routing wrote has been confirmed by the broker (the running relay's job)."""
    outbox = storage.outbox
    with service.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(outbox)
                            .where(outbox.c.published_at.is_(None))).scalar() == 0


@pytest.fixture
def routing(database_url, amqp_url):
    service = start_routing(database_url, amqp_url)
    yield service
    service.stop()


def test_a_submitted_report_becomes_a_dispatched_ticket_once(routing, amqp_url):
    watched = observe(amqp_url, "ticket.*")
    publisher = messaging.Publisher(amqp_url, "test-intake")
    tracking_id = ids.new_tracking_id()
    envelope = submitted(tracking_id, ROAD_TITLE, ROAD_BODY)
    labels = dict(consumer="routing", type="report.submitted")
    duplicates = metric("lapor_events_consumed_total", **labels, outcome="duplicate")
    try:
        publisher.publish(envelope.type, envelope.SerializeToString(), envelope.event_id)
        with routing_channel(routing) as ch:
            stub = routing_pb2_grpc.RoutingServiceStub(ch)

            def ticket():
                try:
                    return stub.GetTicket(routing_pb2.GetTicketRequest(tracking_id=tracking_id),
                                          timeout=5)
                except grpc.RpcError as exc:
                    assert exc.code() == grpc.StatusCode.NOT_FOUND
                    return None

            found = wait_for(ticket, 10, interval=0.1, what="the ticket")
            # Garbage from an agency system is its error, on either database.
            assert rpc_error(stub.GetTicket, routing_pb2.GetTicketRequest(
                tracking_id="LPR\x00")).code() == grpc.StatusCode.INVALID_ARGUMENT
            assert rpc_error(stub.GetAgency, routing_pb2.GetAgencyRequest(
                code="PUPR\x00")).code() == grpc.StatusCode.INVALID_ARGUMENT
        assert found.state == State.TICKET_STATE_DISPATCHED
        assert (found.agency.code, found.category, found.region_code) == (
            "PUPR-13.03", "PUPR", "13.03")
        assert [e.state for e in found.timeline] == [State.TICKET_STATE_SUBMITTED,
                                                     State.TICKET_STATE_DISPATCHED]
        deadline = found.deadline.ToDatetime(tzinfo=UTC).astimezone(WIB)
        opened = found.created_at.ToDatetime(tzinfo=UTC).astimezone(WIB)
        assert (deadline.hour, deadline.minute, found.deadline_zone) == (16, 0, "WIB")
        assert deadline.weekday() < 5 and deadline.date() not in closed_days(deadline.year)
        assert working_days_between(opened.date(), deadline.date()) == 5

        (event,) = collect_events(amqp_url, watched, 1)
        assert (event.type, event.aggregate_id, event.producer) == (
            "ticket.dispatched", tracking_id, "routing")
        dispatched = events.payload(event)
        assert dispatched.agency.code == "PUPR-13.03"
        assert dispatched.deadline == found.deadline and dispatched.working_days == 5
        assert dispatched.report.region_name == "Kabupaten Sijunjung"
        assert dispatched.report.reporter_name == "Siti Rahayu"

        # A redelivery, and a second relay sending the same report under a new event id.
        publisher.publish(envelope.type, envelope.SerializeToString(), envelope.event_id)
        again = submitted(tracking_id, ROAD_TITLE, ROAD_BODY)
        publisher.publish(again.type, again.SerializeToString(), again.event_id)
        wait_for(lambda: metric("lapor_events_consumed_total", **labels, outcome="duplicate")
                 == duplicates + 2, 10, what="both copies to be recognised as duplicates")
    finally:
        publisher.close()
    with routing.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(storage.tickets)
                            .where(storage.tickets.c.tracking_id == tracking_id)).scalar() == 1
    wait_for(lambda: outbox_drained(routing), 10, what="routing's outbox to be relayed")
    assert take_messages(amqp_url, watched) == [], "no second ticket.dispatched"


def test_an_unclear_report_waits_for_the_national_admin(routing, amqp_url):
    watched = observe(amqp_url, "ticket.*")
    publisher = messaging.Publisher(amqp_url, "test-intake")
    tracking_id = ids.new_tracking_id()
    envelope = submitted(tracking_id, "Mohon perhatian bapak ibu",
                         "Sudah lama kami menunggu tanggapan tetapi belum ada kabar.",
                         reporter_name="")
    try:
        publisher.publish(envelope.type, envelope.SerializeToString(), envelope.event_id)
    finally:
        publisher.close()
    (event,) = collect_events(amqp_url, watched, 1)
    assert event.type == "ticket.status_changed"
    changed = events.payload(event)
    assert changed.to_state == State.TICKET_STATE_SUBMITTED
    assert changed.agency.code == "ADMIN-NASIONAL"
    with routing_channel(routing) as ch:
        ticket = routing_pb2_grpc.RoutingServiceStub(ch).GetTicket(
            routing_pb2.GetTicketRequest(tracking_id=tracking_id), timeout=5)
    assert ticket.state == State.TICKET_STATE_SUBMITTED
    assert ticket.agency.code == "ADMIN-NASIONAL"
    assert ticket.deadline == changed.deadline


def test_health_turns_not_serving_as_soon_as_shutdown_begins(sqlite_url):
    with temporary_vhost() as amqp_url:
        service = start_routing(sqlite_url, amqp_url)
        stopper = threading.Thread(target=service.stop)
        with grpc.insecure_channel(f"127.0.0.1:{service.port}") as ch:
            watch = health_pb2_grpc.HealthStub(ch).Watch(
                health_pb2.HealthCheckRequest(service="lapor.v1.RoutingService"), timeout=15)
            try:
                assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
                stopper.start()
                assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
            finally:
                watch.cancel()
            stopper.join(20)
            assert not stopper.is_alive(), "stop() did not finish"
            with pytest.raises(grpc.RpcError) as raised:
                health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(),
                                                     timeout=2)
            assert raised.value.code() in (grpc.StatusCode.UNAVAILABLE,
                                           grpc.StatusCode.DEADLINE_EXCEEDED)

