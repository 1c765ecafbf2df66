"""Routing's gRPC port against callers that are hostile or broken: oversized messages and
fields, bytes that are not protobuf, input that must not come back in error messages, a
second routing on a taken port, and a database pool with no connection to spare."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import sqlalchemy as sa
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from lapor.v1 import routing_pb2, routing_pb2_grpc
from services.infra.config import ConfigError
from services.routing.app import RoutingService, Settings
from tests.conftest import free_port
from tests.integration.helpers import (
    dead_amqp_url,
    metric,
    routing_channel,
    start_routing,
    temporary_vhost,
)

pytestmark = pytest.mark.integration

ROAD_BODY = ("Jalan kabupaten di depan pasar berlubang besar dan aspalnya rusak, "
             "sudah tiga bulan tidak diperbaiki.")


@pytest.fixture(scope="module")
def routing(tmp_path_factory):
    with temporary_vhost() as amqp_url:
        database = tmp_path_factory.mktemp("routing-edge") / "routing.db"
        service = start_routing(f"sqlite:///{database}", amqp_url)
        yield service
        service.stop()


@pytest.fixture
def channel(routing):
    with routing_channel(routing) as ch:
        yield ch


@pytest.fixture
def stub(channel):
    return routing_pb2_grpc.RoutingServiceStub(channel)


def rpc_error(call, request, timeout: float = 10) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=timeout)
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


# -- sizes -----------------------------------------------------------------------------------
def test_a_4_mb_suggestion_is_refused_before_it_ties_up_a_worker(stub):
    huge = routing_pb2.SuggestRouteRequest(title="Jalan rusak", body=ROAD_BODY * 40_000,
                                           region_code="13.03")
    assert huge.ByteSize() > 4_000_000
    normal = routing_pb2.SuggestRouteRequest(title="Jalan rusak", body=ROAD_BODY,
                                             region_code="13.03")

    def code_of(request):
        try:
            stub.SuggestRoute(request, timeout=20)
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    # More of them at once than routing has worker threads (16).
    with ThreadPoolExecutor(24) as pool:
        flood = [pool.submit(code_of, huge) for _ in range(24)]
        answer = stub.SuggestRoute(normal, timeout=10)
        codes = {future.result() for future in flood}
    assert codes == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert answer.agency.code == "PUPR-13.03"


def test_fields_over_their_limits_are_refused_naming_each(stub):
    error = rpc_error(stub.SuggestRoute, routing_pb2.SuggestRouteRequest(
        title="j" * 201, body="b" * 10_001, region_code="1" * 17, category="C" * 41))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations(error) == {"title": "at most 200 characters",
                                 "body": "at most 10,000 characters",
                                 "region_code": "at most 16 characters",
                                 "category": "at most 40 characters"}
    assert len(error.details()) < 300, "the message names the limits, not the input"

    error = rpc_error(stub.ListAgencies, routing_pb2.ListAgenciesRequest(
        region_code="1" * 17, page_token="A" * 65))
    assert set(violations(error)) == {"region_code", "page_token"}
    for call, request, field in (
            (stub.GetTicket, routing_pb2.GetTicketRequest(tracking_id="L" * 33), "tracking_id"),
            (stub.GetAgency, routing_pb2.GetAgencyRequest(code="A" * 41), "code")):
        error = rpc_error(call, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert list(violations(error)) == [field]


def test_fields_at_their_limits_are_served(stub):
    # Limits count characters, as intake does: 10,000 emoji are 40,000 bytes and still fine.
    for body in (("jalan rusak berlubang " * 500)[:10_000], "🚧" * 10_000):
        answer = stub.SuggestRoute(routing_pb2.SuggestRouteRequest(
            title="Jalan " + "r" * 194, body=body, region_code="13.03.01.2001"), timeout=10)
        assert answer.agency.code


# -- what error messages say -----------------------------------------------------------------
@pytest.mark.parametrize("request_", [
    routing_pb2.GetAgencyRequest(code="X" * 100_000),
    routing_pb2.GetAgencyRequest(code="PUPR-13.03\n" + "<script>" * 1000),
    routing_pb2.GetAgencyRequest(code="\u202e" * 30),
    routing_pb2.GetTicketRequest(tracking_id="LPR-" + "9" * 100_000),
    routing_pb2.GetTicketRequest(tracking_id="LPR 7K2 M9Q XD4\x00"),
], ids=["long-code", "markup-code", "bidi-code", "long-tracking-id", "nul-tracking-id"])
def test_lookups_refuse_what_is_not_an_identifier_without_echoing_it(stub, request_):
    call = stub.GetAgency if isinstance(request_, routing_pb2.GetAgencyRequest) else \
        stub.GetTicket
    error = rpc_error(call, request_)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(error.details()) < 200
    for fragment in ("XXXXX", "99999", "<script>", "\u202e", "\x00"):
        assert fragment not in error.details()


def test_not_found_names_a_well_formed_identifier(stub):
    error = rpc_error(stub.GetAgency, routing_pb2.GetAgencyRequest(code="PUPR-99.99"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "PUPR-99.99" in error.details()
    error = rpc_error(stub.GetTicket, routing_pb2.GetTicketRequest(tracking_id="LPR-7K2-M9Q-XD4"))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "LPR-7K2-M9Q-XD4" in error.details()


# -- bytes that are not the message ----------------------------------------------------------
CORRUPT = b"\xff\xff\xff\xff"
# Field 2 (title) of SuggestRouteRequest, two bytes that are not UTF-8.
BAD_UTF8_TITLE = b"\x12\x02\xc3\x28"
# Field 1 (service) of HealthCheckRequest, the same two bytes.
BAD_UTF8_SERVICE = b"\x0a\x02\xc3\x28"


@pytest.mark.parametrize(("path", "payload", "reason"), [
    ("/lapor.v1.RoutingService/SuggestRoute", CORRUPT, "corrupt"),
    ("/lapor.v1.RoutingService/SuggestRoute", BAD_UTF8_TITLE, "UTF-8"),
    ("/lapor.v1.RoutingService/GetTicket", CORRUPT, "corrupt"),
    ("/grpc.health.v1.Health/Check", BAD_UTF8_SERVICE, "UTF-8"),
], ids=["corrupt-suggest", "utf8-suggest", "corrupt-ticket", "utf8-health"])
def test_undecodable_requests_are_invalid_argument_without_a_traceback(
        channel, caplog, path, payload, reason):
    raw = channel.unary_unary(path, request_serializer=None, response_deserializer=None)
    method = path.rsplit("/", 1)[1]
    before = metric("lapor_grpc_server_handled_total", method=method, code="INVALID_ARGUMENT")
    with caplog.at_level(logging.INFO):
        error = rpc_error(raw, payload)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    (field, description), = violations(error).items()
    assert field == "request" and reason in description
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], \
        caplog.text
    assert "Exception deserializing" not in caplog.text
    if path.startswith("/lapor.v1."):
        assert metric("lapor_grpc_server_handled_total", method=method,
                      code="INVALID_ARGUMENT") == before + 1


# -- processes and pools ---------------------------------------------------------------------
def test_a_second_routing_on_the_same_port_stops_with_a_clear_error(routing, sqlite_url, stub):
    with pytest.raises(ConfigError, match=r"ROUTING_LISTEN: cannot listen on 127\.0\.0\.1:\d+: "
                                          r"another process"):
        RoutingService(Settings(database_url=sqlite_url, amqp_url=dead_amqp_url(),
                                listen=f"127.0.0.1:{routing.port}", metrics_port=free_port()))
    # The first one serves on, alone.
    agency = stub.GetAgency(routing_pb2.GetAgencyRequest(code="KEMENPU"), timeout=5)
    assert agency.code == "KEMENPU"


@pytest.mark.postgres
def test_with_every_pooled_connection_taken_an_rpc_is_unavailable_not_stuck(postgres_url):
    with temporary_vhost() as amqp_url:
        service = start_routing(postgres_url, amqp_url, workers=2, db_pool_timeout=0.5)
        held = []
        try:
            with routing_channel(service) as ch:
                stub = routing_pb2_grpc.RoutingServiceStub(ch)
                while len(held) < 100:
                    try:
                        held.append(service.engine.connect())
                    except sa.exc.TimeoutError:
                        break
                # The deadline is far beyond the pool timeout: the answer must be routing's.
                error = rpc_error(stub.GetAgency, routing_pb2.GetAgencyRequest(code="KEMENPU"),
                                  timeout=20)
                assert error.code() == grpc.StatusCode.UNAVAILABLE
                assert "database busy" in error.details()
                for conn in held:
                    conn.close()
                held.clear()
                agency = stub.GetAgency(routing_pb2.GetAgencyRequest(code="KEMENPU"), timeout=5)
                assert agency.code == "KEMENPU"
        finally:
            for conn in held:
                conn.close()
            service.stop()
