"""Intake's Flask application factory and the long-lived parts it hangs on
app.extensions["lapor"]: database, outbox relay, read-model consumer, routing client (with
intake's own service token, read once here)."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field

from flask import Flask, g, jsonify, request
from flask_cors import CORS
from prometheus_client import Counter, Histogram
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from services.infra import db, logs, messaging
from services.infra.config import (
    DEFAULT_CONSUMER_BATCH,
    DEFAULT_CONSUMER_GATHER,
    ConfigError,
    Env,
)
from services.infra.outbox import Outbox
from services.intake import attachments, inbound, limits, open311, readmodel, regions, storage
from services.intake.api import bp as api_bp
from services.intake.openapi import MAX_BODY_KIB
from services.intake.openapi import PATH as OPENAPI_PATH
from services.intake.problems import Problem
from services.intake.routing_client import TOKEN_FILE_VARIABLE, RoutingClient, read_token_file
from services.intake.staff import bp as staff_bp

log = logging.getLogger(__name__)
MAX_BODY_BYTES = MAX_BODY_KIB * 1024
# How long the outbox relay, once woken, waits for more reports' events before it publishes
# (INTAKE_OUTBOX_GATHER): a round carries several reports instead of one, in fewer and larger
# messages that routing and notify also take in fewer rounds, for at most this much more
# before routing sees a report (decisions 64, 85).
DEFAULT_OUTBOX_GATHER = 0.05
# How long the read model's consumer lets events arrive before it applies them together.
DEFAULT_READ_MODEL_GATHER = 0.2

HTTP_REQUESTS = Counter("lapor_http_requests_total", "HTTP requests handled",
                        ["route", "method", "status"])
HTTP_SECONDS = Histogram("lapor_http_request_duration_seconds", "HTTP request duration",
                         ["route"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

# Browser front ends on other origins may call the API with these (CORS).
CORS_ALLOW_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "X-Client-Key"]
CORS_EXPOSE_HEADERS = ["Location", "Retry-After", "Idempotent-Replayed", "RateLimit-Limit",
                       "RateLimit-Remaining", "RateLimit-Reset", "WWW-Authenticate"]
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?$")


@dataclass
class IntakeContext:
    engine: object
    outbox: Outbox
    routing: RoutingClient
    consumer: messaging.Consumer
    # Set when the process starts shutting down: readiness turns 503 so load balancers stop
    # sending new work while the requests in flight finish.
    draining: threading.Event = field(default_factory=threading.Event)
    # Uploads, signed links and the media URL fetcher (services/intake/attachments).
    attachments: attachments.Attachments | None = None
    # Reads the official region list again in the background (services/intake/regions.py).
    regions: regions.Keeper | None = None

    def start_workers(self) -> None:
        self.outbox.start()
        self.consumer.start()
        if self.attachments is not None:
            self.attachments.start()
        if self.regions is not None:
            self.regions.start()

    def stop_workers(self, budget: float = 10.0) -> int:
        """Stops the read-model consumer after the messages in hand, then has the relay
        publish what it can, all within `budget` seconds; returns the events left for the
        next start."""
        deadline = time.monotonic() + budget
        if self.attachments is not None:
            self.attachments.stop(timeout=min(2.0, budget * 0.2))
        if self.regions is not None:
            self.regions.stop(timeout=min(1.0, budget * 0.1))
        self.consumer.stop(timeout=budget * 0.4)
        # Outbox.stop may take its flush time plus two seconds to let a broker call end.
        left = self.outbox.stop(flush_timeout=max(0.0, deadline - time.monotonic() - 2.5))
        self.routing.close()
        return left


def settings_from_env(env: Env | None = None) -> dict:
    env = env or Env()
    return {
        "DATABASE_URL": env.database_url("INTAKE_DATABASE_URL", "intake"),
        "AMQP_URL": env.amqp_url(),
        "CONSUMER_BATCH": env.consumer_batch(),
        # The read model is off the path from a POST to the agency and the reporter: its
        # consumer may gather longer, into fewer transactions (decision 95).
        "CONSUMER_GATHER": env.consumer_gather(
            "INTAKE_CONSUMER_GATHER", env.consumer_gather("LAPOR_CONSUMER_GATHER",
                                                          DEFAULT_READ_MODEL_GATHER)),
        "EVENT_BATCHES": env.event_batches(),
        "OUTBOX_GATHER": env.outbox_gather("INTAKE_OUTBOX_GATHER", DEFAULT_OUTBOX_GATHER),
        "ROUTING_ADDR": env.str("ROUTING_ADDR", "127.0.0.1:50051"),
        "ROUTING_TIMEOUT": env.seconds("INTAKE_ROUTING_TIMEOUT", 1.0),
        "ROUTING_ACTION_TIMEOUT": env.seconds("INTAKE_ROUTING_ACTION_TIMEOUT", 5.0),
        "ROUTING_TOKEN_FILE": env.str(TOKEN_FILE_VARIABLE, ""),
        "CORS_ORIGINS": env.str("INTAKE_CORS_ORIGINS", ""),
        "START_WORKERS": True,
        **limits.settings_from_env(env),
        **attachments.settings_from_env(env),
    }


def create_app(config: dict | None = None) -> Flask:
    """The app; `config` (tests) or the environment gives DATABASE_URL, AMQP_URL, ROUTING_ADDR
    and the optional settings of settings_from_env (ROUTING_TOKEN_FILE: the file holding
    intake's service token). With START_WORKERS the outbox relay and read-model consumer run
    in this process."""
    app = Flask(__name__, static_folder=None)
    app.config.update(settings_from_env() if config is None else config)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.ensure_ascii = False
    app.json.sort_keys = False

    # Everything that reads a setting comes first, so a bad one stops the process before it
    # opens the database or starts a worker.
    app.register_blueprint(api_bp)
    app.register_blueprint(staff_bp)
    app.register_blueprint(open311.bp)
    app.register_blueprint(inbound.bp)
    app.register_blueprint(attachments.bp)
    _register_error_handlers(app)
    _register_metrics(app)
    _register_response_headers(app)
    limits.install(app)
    _install_cors(app)
    attachment_service = attachments.Attachments(app.config)
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies:
        # The client is the address the nearest trusted proxy saw, not the proxy itself.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies)

    token_file = app.config.get("ROUTING_TOKEN_FILE") or ""
    service_token = read_token_file(token_file) if token_file else None
    if service_token is None:
        log.warning("%s is not set: routing will refuse the calls intake makes for citizens "
                    "(route suggestions, replies, ratings, appeals)", TOKEN_FILE_VARIABLE)

    engine = db.make_engine(app.config["DATABASE_URL"])
    db.migrate(engine, "intake", storage.MIGRATIONS)
    amqp_url = app.config["AMQP_URL"]
    outbox = Outbox(engine, storage.outbox, "intake",
                    lambda: messaging.Publisher(amqp_url, "intake-outbox",
                                                pack=app.config.get("EVENT_BATCHES", True)),
                    gather=app.config.get("OUTBOX_GATHER", DEFAULT_OUTBOX_GATHER))
    consumer = messaging.Consumer(amqp_url, messaging.QUEUES["intake"],
                                  readmodel.ReadModel(engine).handle,
                                  consumer=readmodel.CONSUMER,
                                  batch=lambda: db.batch(engine),
                                  batch_max=app.config.get("CONSUMER_BATCH",
                                                            DEFAULT_CONSUMER_BATCH),
                                  gather=app.config.get("CONSUMER_GATHER",
                                                        DEFAULT_CONSUMER_GATHER))
    ctx = IntakeContext(engine, outbox,
                        RoutingClient(app.config["ROUTING_ADDR"], app.config["ROUTING_TIMEOUT"],
                                      service_token=service_token,
                                      action_timeout=app.config.get("ROUTING_ACTION_TIMEOUT")),
                        consumer, attachments=attachment_service.attach(engine),
                        regions=regions.Keeper(engine))
    app.extensions["lapor"] = ctx
    _register_ops_routes(app, ctx)
    if app.config.get("START_WORKERS"):
        ctx.start_workers()
    return app


def _register_ops_routes(app: Flask, ctx: IntakeContext) -> None:
    openapi = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))

    @app.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():
        # Only the database decides readiness: intake accepts reports with the broker or
        # routing down (the outbox and the read model catch up), so taking it out of the
        # load balancer for them would turn citizens away for nothing. Neither does
        # intake's service token: without it only replies, ratings, appeals and
        # suggestions fail, and `routing_token` says so (unset, refused).
        checks = {"database": db.check(ctx.engine),
                  "broker": ctx.consumer.consuming.is_set(),
                  "routing": ctx.routing.healthy(),
                  "routing_token": ctx.routing.service_token_status(),
                  # The official region list (0: not imported; every well-formed code goes).
                  "regions": regions.count(ctx.engine),
                  # Files: storage reachable, fetcher alive, signed links and scanning set up.
                  "attachments": ctx.attachments.status()}
        ready = checks["database"]
        if ctx.draining.is_set():
            return jsonify(status="draining", checks=checks), 503
        return jsonify(status="ok" if ready else "unavailable", checks=checks), \
            200 if ready else 503

    @app.get("/api/v1/openapi.json")
    def openapi_document():
        return jsonify(openapi)


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(Problem)
    def problem(exc: Problem):
        return exc.response(request.path)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if request.path.startswith(f"{open311.bp.url_prefix}/"):
            return open311.http_error(exc)
        messages = {
            404: ("not_found", "Not found", "No such endpoint; see /api/v1/openapi.json"),
            405: ("method_not_allowed", "Method not allowed",
                  f"{request.method} is not supported here; see /api/v1/openapi.json"),
            413: ("payload_too_large", "Request too large",
                  f"Send at most {MAX_BODY_KIB} KiB; attachments go separately"),
        }
        code, title, detail = messages.get(
            exc.code, ("http_error", exc.name, exc.description or exc.name))
        # 405 says which methods the resource has (RFC 9110 requires Allow).
        headers = {name: value for name, value in exc.get_headers() if name == "Allow"}
        return Problem(exc.code or 400, code, title, detail,
                       headers=headers).response(request.path)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s", request.path)
        return Problem(503, "temporarily_unavailable", "Temporarily unavailable",
                       "The service could not complete the request; nothing was saved. "
                       "Please try again shortly", headers={"Retry-After": "5"}
                       ).response(request.path)


def _register_response_headers(app: Flask) -> None:
    @app.after_request
    def _hygiene(response):
        # Never let a browser guess a content type (a JSON answer rendered as HTML).
        response.headers["X-Content-Type-Options"] = "nosniff"
        # Answers about reports carry access tokens, private detail or a status that changes;
        # errors may echo what was sent. No cache keeps any of them.
        if response.status_code >= 400 or request.path.startswith(("/api/v1/reports",
                                                                   "/api/v1/staff")):
            response.headers["Cache-Control"] = "no-store"
        return response


def _install_cors(app: Flask) -> None:
    origins = [o.strip() for o in (app.config.get("CORS_ORIGINS") or "").split(",")
               if o.strip()]
    for origin in origins:
        if not _ORIGIN.match(origin):
            raise ConfigError(f"INTAKE_CORS_ORIGINS: {origin!r} is not an origin such as "
                              "https://lapor.go.id (scheme, host and port only)")
    if not origins:
        return  # no browser front end on another origin: no CORS headers at all
    CORS(app, resources={r"/api/v1/*": {"origins": origins}}, methods=["GET", "POST"],
         allow_headers=CORS_ALLOW_HEADERS, expose_headers=CORS_EXPOSE_HEADERS,
         supports_credentials=False, max_age=600)


def _register_metrics(app: Flask) -> None:
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            HTTP_SECONDS.labels(rule.rule)

    @app.before_request
    def _start_timer():
        g.started = time.perf_counter()

    @app.after_request
    def _measure(response):
        route = request.url_rule.rule if request.url_rule else "unmatched"
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        HTTP_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        HTTP_SECONDS.labels(route).observe(elapsed)
        if route not in ("/healthz", "/readyz"):
            # The route only: paths and query strings may hold an access token.
            with logs.bound(tracking_id=g.get("tracking_id")):
                log.info("%s %s %s", request.method, route, response.status_code,
                         extra={"duration_ms": round(elapsed * 1000, 2)})
        return response
