"""The routing process: gRPC server (API, health, reflection), the consumer of reports,
the outbox relay and the metrics endpoint, started and drained together."""

from __future__ import annotations

import logging
from concurrent import futures
from dataclasses import dataclass, field
from datetime import date

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lapor.v1 import routing_pb2, routing_pb2_grpc
from services.infra import db, messaging
from services.infra.config import ConfigError, Env
from services.infra.outbox import Outbox
from services.infra.telemetry import OpsServer
from services.routing import seed, storage
from services.routing.api import RoutingServicer, TelemetryInterceptor
from services.routing.workdays import WorkCalendar
from services.routing.workflow import CONSUMER, Workflow

log = logging.getLogger(__name__)
SERVICE_NAME = routing_pb2.DESCRIPTOR.services_by_name["RoutingService"].full_name


@dataclass(frozen=True)
class Settings:
    database_url: str
    amqp_url: str
    listen: str = "127.0.0.1:50051"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9101
    joint_leave: tuple[date, ...] = field(default_factory=tuple)
    workers: int = 16
    drain_seconds: float = 10.0
    seed_demo: bool = False

    @classmethod
    def from_env(cls, env: Env | None = None) -> Settings:
        env = env or Env()
        leave = []
        for raw in filter(None, env.str("ROUTING_JOINT_LEAVE", "-").split(",")):
            if raw == "-":
                continue
            try:
                leave.append(date.fromisoformat(raw.strip()))
            except ValueError:
                raise ConfigError(f"ROUTING_JOINT_LEAVE must be YYYY-MM-DD dates separated by "
                                  f"commas, got {raw!r}") from None
        return cls(
            database_url=env.database_url("ROUTING_DATABASE_URL", "routing"),
            amqp_url=env.amqp_url(),
            listen=env.str("ROUTING_LISTEN", "127.0.0.1:50051"),
            metrics_host=env.str("ROUTING_METRICS_HOST", "127.0.0.1"),
            metrics_port=env.int("ROUTING_METRICS_PORT", 9101),
            joint_leave=tuple(leave),
            workers=env.int("ROUTING_GRPC_WORKERS", 16),
            drain_seconds=env.float("ROUTING_DRAIN_SECONDS", 10.0),
            seed_demo=env.bool("ROUTING_SEED_DEMO", False),
        )


class RoutingService:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.engine = db.make_engine(settings.database_url)
        db.migrate(self.engine, "routing", storage.MIGRATIONS)
        if settings.seed_demo:
            with self.engine.begin() as conn:
                storage.seed_directory(conn, seed.demo_regions(), seed.demo_agencies())
        self.outbox = Outbox(self.engine, storage.outbox, "routing",
                             lambda: messaging.Publisher(settings.amqp_url, "routing-outbox"))
        self.workflow = Workflow(self.engine, self.outbox, WorkCalendar(settings.joint_leave))
        self.consumer = messaging.Consumer(settings.amqp_url, messaging.QUEUES["routing"],
                                           self.workflow.handle, consumer=CONSUMER)
        self.health = health.HealthServicer()
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.workers),
            interceptors=[TelemetryInterceptor()],
            # Clients reconnect every few minutes, so new replicas get their share of the
            # long-lived HTTP/2 connections that a Kubernetes Service balances only once.
            options=[("grpc.max_connection_age_ms", 300_000),
                     ("grpc.max_connection_age_grace_ms", 30_000)])
        routing_pb2_grpc.add_RoutingServiceServicer_to_server(RoutingServicer(self.engine),
                                                              self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server)
        self.port = self.server.add_insecure_port(settings.listen)
        if self.port == 0:
            raise ConfigError(f"ROUTING_LISTEN: cannot listen on {settings.listen}")
        self.ops = OpsServer(settings.metrics_host, settings.metrics_port, {
            "database": lambda: db.check(self.engine),
            "broker": lambda: self.consumer.consuming.is_set(),
        })

    def start(self) -> RoutingService:
        self.outbox.start()
        self.consumer.start()
        self.server.start()
        self.ops.start()
        for name in ("", SERVICE_NAME):
            self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("routing serving gRPC on %s", self.settings.listen)
        return self

    def stop(self) -> None:
        """Drains: no new RPCs or messages; in-flight work finishes; the outbox is flushed."""
        self.health.enter_graceful_shutdown()
        self.consumer.stop()
        self.server.stop(self.settings.drain_seconds).wait()
        left = self.outbox.stop(flush_timeout=self.settings.drain_seconds)
        self.ops.stop()
        self.engine.dispose()
        log.info("routing stopped", extra={"outbox_left": left})
