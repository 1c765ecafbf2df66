"""Routing's health as the kubelet and intake see it: gRPC readiness follows the database and
the background loops, /healthz (liveness) fails for a dead or wedged loop, replicas starting
together on one empty database seed the demo directory once, and the stop fits its budget."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import grpc
import psycopg
import pytest
import sqlalchemy as sa
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.routing import storage
from services.routing.api import SERVICE_NAME
from services.routing.app import RoutingService, Settings
from tests.conftest import PG_DSN, free_port
from tests.integration.helpers import dead_amqp_url, wait_for

pytestmark = pytest.mark.integration


def settings(database_url: str, **extra) -> Settings:
    return Settings(database_url=database_url, amqp_url=dead_amqp_url(),
                    listen=f"127.0.0.1:{free_port()}", metrics_port=free_port(),
                    shutdown_seconds=4, health_interval=0.1, **extra)


def grpc_status(service: RoutingService) -> int:
    with grpc.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=3).status


def ops(service: RoutingService, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{service.ops.port}{path}",
                                    timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.mark.postgres
def test_readiness_follows_the_database(postgres_url):
    service = RoutingService(settings(postgres_url)).start()
    try:
        assert grpc_status(service) == SERVING
        name = postgres_url.rsplit("/", 1)[1]
        with psycopg.connect(f"{PG_DSN}/postgres", autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s", (name,))
        try:
            wait_for(lambda: grpc_status(service) == NOT_SERVING, 10,
                     what="routing to stop serving without its database")
            status, body = ops(service, "/readyz")
            assert status == 503 and body["checks"]["database"] is False
            assert ops(service, "/healthz")[0] == 200, "not a reason to restart the process"
        finally:
            with psycopg.connect(f"{PG_DSN}/postgres", autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        wait_for(lambda: grpc_status(service) == SERVING, 10, what="routing to serve again")
    finally:
        service.stop()


def test_a_wedged_loop_fails_liveness_and_readiness(sqlite_url):
    service = RoutingService(settings(sqlite_url)).start()
    try:
        assert ops(service, "/healthz")[0] == 200
        # The consumer's handler is stuck (as a wedged database call would leave it).
        service.consumer.loop.extra_stall = lambda: True
        wait_for(lambda: ops(service, "/healthz")[0] == 503, 5, what="liveness to fail")
        assert ops(service, "/healthz")[1]["checks"]["loops"] is False
        wait_for(lambda: grpc_status(service) == NOT_SERVING, 5, what="readiness to fail")
    finally:
        service.stop()


@pytest.mark.postgres
def test_replicas_starting_together_seed_the_demo_directory_once(postgres_url):
    """Three routing replicas with ROUTING_SEED_DEMO=true on one empty PostgreSQL: all start
    (2 of 3 crashed on regions_pkey before), and the directory is there once."""
    started: list[RoutingService] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(3)

    def replica():
        try:
            gate.wait(10)
            started.append(RoutingService(settings(postgres_url, seed_demo=True)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        assert len(started) == 3
        with started[0].engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(storage.regions)
                                 ).scalar_one()
        assert count == 20, "Sumatera Barat and its 19 regencies, once"
    finally:
        for service in started:
            service.start().stop()


def test_the_stop_fits_its_budget_even_with_the_broker_away(sqlite_url):
    service = RoutingService(settings(sqlite_url)).start()
    began = time.monotonic()
    service.stop()
    assert time.monotonic() - began < 4 + 1, "the whole stop within LAPOR_SHUTDOWN_SECONDS"
