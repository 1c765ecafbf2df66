"""Intake's Flask application factory and the long-lived parts it hangs on
app.extensions["lapor"]: database, outbox relay, read-model consumer, routing client."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from flask import Flask, g, jsonify, request
from prometheus_client import Counter, Histogram, make_wsgi_app
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from services.infra import db, logs, messaging
from services.infra.config import Env
from services.infra.outbox import Outbox
from services.intake import readmodel, storage
from services.intake.api import bp as api_bp
from services.intake.problems import Problem
from services.intake.routing_client import RoutingClient

log = logging.getLogger(__name__)
OPENAPI_PATH = Path(__file__).with_name("openapi.json")
MAX_BODY_BYTES = 64 * 1024

HTTP_REQUESTS = Counter("lapor_http_requests_total", "HTTP requests handled",
                        ["route", "method", "status"])
HTTP_SECONDS = Histogram("lapor_http_request_duration_seconds", "HTTP request duration",
                         ["route"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))


@dataclass
class IntakeContext:
    engine: object
    outbox: Outbox
    routing: RoutingClient
    consumer: messaging.Consumer

    def start_workers(self) -> None:
        self.outbox.start()
        self.consumer.start()

    def stop_workers(self, drain_seconds: float = 10.0) -> int:
        """Stops the read-model consumer after the message in hand, then flushes the outbox."""
        self.consumer.stop()
        left = self.outbox.stop(flush_timeout=drain_seconds)
        self.routing.close()
        return left


def settings_from_env(env: Env | None = None) -> dict:
    env = env or Env()
    return {
        "DATABASE_URL": env.database_url("INTAKE_DATABASE_URL", "intake"),
        "AMQP_URL": env.amqp_url(),
        "ROUTING_ADDR": env.str("ROUTING_ADDR", "127.0.0.1:50051"),
        "ROUTING_TIMEOUT": env.float("INTAKE_ROUTING_TIMEOUT", 1.0),
        "START_WORKERS": True,
    }


def create_app(config: dict | None = None) -> Flask:
    """The app; `config` (tests) or the environment gives DATABASE_URL, AMQP_URL, ROUTING_ADDR.
    With START_WORKERS the outbox relay and read-model consumer run in this process."""
    app = Flask(__name__)
    app.config.update(settings_from_env() if config is None else config)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.ensure_ascii = False
    app.json.sort_keys = False

    engine = db.make_engine(app.config["DATABASE_URL"])
    db.migrate(engine, "intake", storage.MIGRATIONS)
    amqp_url = app.config["AMQP_URL"]
    outbox = Outbox(engine, storage.outbox, "intake",
                    lambda: messaging.Publisher(amqp_url, "intake-outbox"))
    consumer = messaging.Consumer(amqp_url, messaging.QUEUES["intake"],
                                  readmodel.ReadModel(engine).handle,
                                  consumer=readmodel.CONSUMER)
    ctx = IntakeContext(engine, outbox,
                        RoutingClient(app.config["ROUTING_ADDR"], app.config["ROUTING_TIMEOUT"]),
                        consumer)
    app.extensions["lapor"] = ctx
    if app.config.get("START_WORKERS"):
        ctx.start_workers()

    app.register_blueprint(api_bp)
    _register_ops_routes(app, ctx)
    _register_error_handlers(app)
    _register_metrics(app)
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/metrics": make_wsgi_app()})
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
        # load balancer for them would turn citizens away for nothing.
        checks = {"database": db.check(ctx.engine),
                  "broker": ctx.consumer.consuming.is_set(),
                  "routing": ctx.routing.healthy()}
        ready = checks["database"]
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
        messages = {
            404: ("not_found", "Not found", "No such endpoint; see /api/v1/openapi.json"),
            405: ("method_not_allowed", "Method not allowed",
                  f"{request.method} is not supported here; see /api/v1/openapi.json"),
            413: ("payload_too_large", "Request too large",
                  f"Send at most {MAX_BODY_BYTES // 1024} KiB; attachments go separately"),
        }
        code, title, detail = messages.get(
            exc.code, ("http_error", exc.name, exc.description or exc.name))
        return Problem(exc.code or 400, code, title, detail).response(request.path)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s", request.path)
        return Problem(503, "temporarily_unavailable", "Temporarily unavailable",
                       "The service could not complete the request; nothing was saved. "
                       "Please try again shortly", headers={"Retry-After": "5"}
                       ).response(request.path)


def _register_metrics(app: Flask) -> None:
    for rule in ("/api/v1/reports", "/api/v1/reports/<tracking_id>", "/api/v1/reports/suggest"):
        HTTP_SECONDS.labels(rule)

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
