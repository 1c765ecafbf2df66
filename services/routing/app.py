"""The routing process: gRPC server (API, health, reflection), the consumer of reports,
the outbox relay and the metrics endpoint, started and drained together."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from lapor.v1 import routing_pb2_grpc
from services.infra import db, messaging
from services.infra.config import (
    DEFAULT_CONSUMER_BATCH,
    DEFAULT_CONSUMER_GATHER,
    ConfigError,
    Env,
)
from services.infra.db import utcnow
from services.infra.lifecycle import Budget, SupervisedLoop, loops_healthy
from services.infra.outbox import Outbox
from services.infra.retention import Retention, RetentionSettings
from services.infra.telemetry import OpsServer
from services.routing import storage
from services.routing.api import (
    MAX_REQUEST_BYTES,
    MAX_RESPONSE_BYTES,
    SERVICE_NAME,
    RoutingServicer,
    TelemetryInterceptor,
)
from services.routing.auth import Authenticator
from services.routing.authz import AuthInterceptor
from services.routing.classify import corrections as classify_corrections
from services.routing.classify.live import LiveClassifier
from services.routing.classify.store import model_dir
from services.routing.rules import AUTO_DISPATCH_CONFIDENCE
from services.routing.tickets.commands import Tickets
from services.routing.tickets.sla import SlaJob, clock_from_env, interval_from_env
from services.routing.workdays import WorkCalendar
from services.routing.workflow import CONSUMER, Workflow

log = logging.getLogger(__name__)


def _read_file(env: Env, name: str) -> bytes | None:
    """The contents of the file the variable names, None when unset; unreadable stops."""
    path = env.str(name, "")
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class ServerTLS:
    """Routing's certificate chain and private key (PEM); with client_ca, the CA whose client
    certificates every caller must present (mutual TLS)."""

    certificate_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None

    @classmethod
    def from_env(cls, env: Env) -> ServerTLS | None:
        """ROUTING_TLS_CERT and ROUTING_TLS_KEY (files, both or neither), optional
        ROUTING_TLS_CLIENT_CA; None (plaintext) when none is set."""
        cert, key = _read_file(env, "ROUTING_TLS_CERT"), _read_file(env, "ROUTING_TLS_KEY")
        client_ca = _read_file(env, "ROUTING_TLS_CLIENT_CA")
        if cert is None and key is None:
            if client_ca is not None:
                raise ConfigError("ROUTING_TLS_CLIENT_CA needs ROUTING_TLS_CERT and "
                                  "ROUTING_TLS_KEY: client certificates are checked over TLS")
            return None
        if cert is None or key is None:
            raise ConfigError("ROUTING_TLS_CERT and ROUTING_TLS_KEY go together: set both "
                              "(TLS) or neither (plaintext)")
        tls = cls(cert, key, client_ca)
        tls.validate()
        return tls

    def validate(self) -> None:
        """Stops with the variable to fix when a file is not what it should be; gRPC itself
        would only fail the first handshake."""
        # Imported here: cryptography's X.509 modules are 8 MB that a plaintext routing
        # (the default, and every process behind a TLS-terminating mesh) never needs.
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization

        try:
            chain = x509.load_pem_x509_certificates(self.certificate_chain)
        except ValueError:
            raise ConfigError("ROUTING_TLS_CERT is not a PEM certificate (chain)") from None
        try:
            key = serialization.load_pem_private_key(self.private_key, password=None)
        except (ValueError, TypeError):
            raise ConfigError("ROUTING_TLS_KEY is not an unencrypted PEM private key") from None
        if chain[0].public_key() != key.public_key():
            raise ConfigError("ROUTING_TLS_KEY is not the key of ROUTING_TLS_CERT's first "
                              "certificate")
        if self.client_ca is not None:
            try:
                x509.load_pem_x509_certificates(self.client_ca)
            except ValueError:
                raise ConfigError("ROUTING_TLS_CLIENT_CA is not a PEM certificate "
                                  "(bundle)") from None

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.private_key, self.certificate_chain)], root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None)


@dataclass(frozen=True)
class Settings:
    database_url: str
    amqp_url: str
    listen: str = "127.0.0.1:50051"
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9101
    # Closed days on top of the holidays package's public holidays and cuti bersama, for a
    # decree newer than the installed package (ROUTING_JOINT_LEAVE).
    joint_leave: tuple[date, ...] = field(default_factory=tuple)
    workers: int = 16
    # The whole ordered stop (RPCs in flight, the message in hand, the outbox flush) fits
    # in this (LAPOR_SHUTDOWN_SECONDS), below the orchestrator's grace period.
    shutdown_seconds: float = 20.0
    seed_demo: bool = False
    # How long an RPC waits for a pooled database connection: below the clients' deadlines,
    # so a saturated pool answers UNAVAILABLE (retried) instead of a deadline running out.
    db_pool_timeout: float = 2.0
    tls: ServerTLS | None = None
    # Off by default: reflection lists every method to anyone who can reach the port.
    reflection: bool = False
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    health_interval: float = 2.0
    # What "now" is for tickets' clocks; tests move it (ROUTING_CLOCK_FILE).
    clock: Callable[[], datetime] = utcnow
    # Seconds between passes of the SLA job (ROUTING_SLA_INTERVAL).
    sla_interval: float = 60.0
    # The classifier's models (ROUTING_MODEL_DIR); a newly promoted one is picked up within
    # model_reload_seconds (ROUTING_MODEL_RELOAD_SECONDS).
    model_dir: Path = field(default_factory=model_dir)
    model_reload_seconds: float = 60.0
    # Below this classifier confidence a national admin verifies first.
    auto_dispatch_confidence: float = AUTO_DISPATCH_CONFIDENCE
    consumer_batch: int = DEFAULT_CONSUMER_BATCH
    consumer_gather: float = DEFAULT_CONSUMER_GATHER
    # A relay round's events of one type as one message (LAPOR_EVENT_BATCHES).
    event_batches: bool = True

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
            shutdown_seconds=env.shutdown_seconds(),
            seed_demo=env.bool("ROUTING_SEED_DEMO", False),
            db_pool_timeout=env.seconds("ROUTING_DB_POOL_TIMEOUT", 2.0),
            tls=ServerTLS.from_env(env),
            reflection=env.bool("ROUTING_REFLECTION", False),
            retention=RetentionSettings.from_env(env),
            clock=clock_from_env(env),
            sla_interval=interval_from_env(env),
            model_dir=model_dir(env),
            model_reload_seconds=env.seconds("ROUTING_MODEL_RELOAD_SECONDS", 60.0),
            auto_dispatch_confidence=_fraction(env, "ROUTING_AUTO_DISPATCH_CONFIDENCE",
                                               AUTO_DISPATCH_CONFIDENCE),
            consumer_batch=env.consumer_batch(),
            consumer_gather=env.consumer_gather(),
            event_batches=env.event_batches(),
        )


def _fraction(env: Env, name: str, default: float) -> float:
    value = env.float(name, default)
    if not 0 <= value <= 1:
        raise ConfigError(f"{name} must be a confidence between 0 and 1, got {value}")
    return value


class RoutingService:
    def __init__(self, settings: Settings):
        self.settings = settings
        # Every RoutingService call is authenticated and authorized inside the telemetry
        # interceptor, so denials are counted and logged like any other answer. With client
        # certificates required, a call without a token is the certificate's service account.
        self.auth = AuthInterceptor(lambda: self.authenticator, trust_client_certificates=(
            settings.tls is not None and settings.tls.client_ca is not None))
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.workers),
            interceptors=[TelemetryInterceptor(), self.auth],
            options=[
                # Without this a second routing on the same port starts "fine" and the
                # kernel splits the calls between old and new (SO_REUSEPORT is gRPC's default).
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
                ("grpc.max_send_message_length", MAX_RESPONSE_BYTES),
                # Clients reconnect every few minutes, so new replicas get their share of the
                # long-lived HTTP/2 connections that a Kubernetes Service balances only once.
                ("grpc.max_connection_age_ms", 300_000),
                ("grpc.max_connection_age_grace_ms", 30_000)])
        # Bound first, so a port already taken stops the process before it migrates or
        # consumes anything.
        self.port = self._bind(settings)
        # One connection for each RPC worker, plus the consumer, the outbox relay, the
        # health checks and a spare: RPCs never queue behind each other for a connection.
        self.engine = db.make_engine(settings.database_url, pool_size=settings.workers + 4,
                                     pool_timeout=settings.db_pool_timeout)
        self.authenticator = Authenticator(self.engine)
        # The national taxonomy (and the demo directory) load under the migration lock:
        # replicas starting together on one empty database load it once instead of
        # colliding on its primary keys.
        db.migrate(self.engine, "routing", storage.MIGRATIONS,
                   after=storage.after_migrate(seed_demo=settings.seed_demo))
        self.outbox = Outbox(self.engine, storage.outbox, "routing",
                             lambda: messaging.Publisher(settings.amqp_url, "routing-outbox",
                                                        pack=settings.event_batches))
        calendar = WorkCalendar(settings.joint_leave)
        self.tickets = Tickets(self.engine, self.outbox, calendar, now=settings.clock)
        # The learned classifier: loaded at start (built from the corpus first on a fresh
        # checkout), swapped for a newly promoted model while running.
        self.classifier = LiveClassifier(
            settings.model_dir, reload_seconds=settings.model_reload_seconds,
            corrections=classify_corrections.read(self.engine))
        self.workflow = Workflow(self.engine, self.outbox, calendar, self.tickets,
                                 classifier=self.classifier,
                                 threshold=settings.auto_dispatch_confidence)
        # Duplicate detection's vectorisers, fitted now rather than inside the first report's
        # transaction: there they held the database's write lock and the interpreter for a
        # second, and the first staff action after a start timed out behind them.
        self.workflow.duplicates.similarity  # noqa: B018 (built on first access)
        self.consumer = messaging.Consumer(settings.amqp_url, messaging.QUEUES["routing"],
                                           self.workflow.handle, consumer=CONSUMER,
                                           batch=lambda: db.batch(self.engine),
                                           batch_max=settings.consumer_batch,
                                           gather=settings.consumer_gather,
                                           prepare=self.workflow.prepare)
        self.health = health.HealthServicer()
        self._serving = True
        routing_pb2_grpc.add_RoutingServiceServicer_to_server(
            RoutingServicer(self.engine, self.tickets, self.classifier,
                            settings.auto_dispatch_confidence), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        if settings.reflection:
            reflection.enable_server_reflection(
                (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server)
        self.retention = Retention.standard("routing", self.engine, self.outbox,
                                            storage.processed_events, settings.retention)
        self.sla = SlaJob(self.tickets, settings.sla_interval)
        self.loops = [self.consumer.loop, self.outbox.loop, self.retention.loop, self.sla.loop,
                      self.classifier.loop]
        # Readiness on the gRPC port (what the kubelet and intake ask): the database answers
        # and no background loop is dead or wedged. The broker is not part of it: RPCs work
        # without it, and events wait in the outbox.
        self.serving = SupervisedLoop("routing-health", self._update_health, stall_after=30)
        self.ops = OpsServer(settings.metrics_host, settings.metrics_port, {
            "database": lambda: db.check(self.engine),
            "broker": lambda: self.consumer.consuming.is_set(),
            "loops": loops_healthy(self.loops),
        }, live={"loops": loops_healthy([*self.loops, self.serving])})

    def _bind(self, settings: Settings) -> int:
        try:
            if settings.tls is None:
                port = self.server.add_insecure_port(settings.listen)
            else:
                port = self.server.add_secure_port(settings.listen, settings.tls.credentials())
        except RuntimeError:  # gRPC's "Failed to bind to address"
            port = 0
        if port == 0:
            raise ConfigError(f"ROUTING_LISTEN: cannot listen on {settings.listen}: another "
                              "process (a second routing?) holds the port, or the address is "
                              "not one of this host's")
        return port

    def start(self) -> RoutingService:
        self.outbox.start()
        self.consumer.start()
        self.retention.start()
        self.sla.start()
        self.classifier.loop.start()
        self.server.start()
        self._set_health(self._healthy())
        self.serving.start()
        self.ops.start()
        log.info("routing serving gRPC on %s", self.settings.listen)
        return self

    def _healthy(self) -> bool:
        return db.check(self.engine) and all(loop.healthy() for loop in self.loops)

    def _set_health(self, serving: bool) -> None:
        status = (health_pb2.HealthCheckResponse.SERVING if serving
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        for name in ("", SERVICE_NAME):
            self.health.set(name, status)

    def _update_health(self, loop: SupervisedLoop) -> None:
        serving = self._healthy()
        if serving != self._serving:
            log.warning("routing is %s", "serving again" if serving else
                        "NOT serving: its database does not answer or a background loop "
                        "is dead or wedged (see /healthz on the metrics port)")
        self._serving = serving
        self._set_health(serving)
        loop.wait(self.settings.health_interval)

    def stop(self) -> None:
        """Drains within one budget: NOT_SERVING at once; RPCs in flight and the message in
        hand finish; the outbox is flushed with what time is left."""
        budget = Budget(self.settings.shutdown_seconds)
        self.health.enter_graceful_shutdown()
        self.serving.stop(1.0)
        stopped = self.server.stop(budget.share(0.4))
        self.consumer.stop(timeout=budget.share(0.5))
        self.retention.stop(1.0)
        self.classifier.loop.stop(1.0)
        self.sla.stop(budget.share(0.3))
        stopped.wait(budget.left())
        left = self.outbox.stop(flush_timeout=budget.left() - 2.5)
        self.ops.stop()
        self.engine.dispose()
        log.info("routing stopped", extra={"outbox_left": left,
                                           "seconds": round(budget.seconds - budget.left(), 1)})
