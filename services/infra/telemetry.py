"""Prometheus metrics the services share, and the small HTTP server that exposes /metrics,
/healthz and /readyz for the processes that are not HTTP servers themselves."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, generate_latest

from services.infra import events

log = logging.getLogger(__name__)

EVENTS_PUBLISHED = Counter(
    "lapor_events_published_total", "Events confirmed by the broker", ["type"])
EVENTS_CONSUMED = Counter(
    "lapor_events_consumed_total", "Events taken off a queue, by what became of them",
    ["consumer", "type", "outcome"])
OUTBOX_BACKLOG = Gauge(
    "lapor_outbox_backlog", "Outbox rows not yet confirmed by the broker", ["service"])
OUTBOX_OLDEST_AGE = Gauge(
    "lapor_outbox_oldest_age_seconds", "Age of the oldest unsent outbox row", ["service"])
OUTBOX_PUBLISH_ERRORS = Counter(
    "lapor_outbox_publish_errors_total", "Failed attempts to publish an outbox row",
    ["service", "reason"])

CONSUMER_OUTCOMES = ("processed", "duplicate", "retried", "parked")
for _type in events.CATALOG:
    EVENTS_PUBLISHED.labels(_type)

Check = Callable[[], bool]


def init_consumer_metrics(consumer: str, event_types) -> None:
    """Creates the label sets up front so dashboards see zeros, not gaps."""
    for event_type in event_types:
        for outcome in CONSUMER_OUTCOMES:
            EVENTS_CONSUMED.labels(consumer, event_type, outcome)


def run_checks(checks: Mapping[str, Check]) -> tuple[bool, dict[str, bool]]:
    """Runs each check (one that raises counts as failed); (all passed, results)."""
    results = {}
    for name, check in checks.items():
        try:
            results[name] = bool(check())
        except Exception:  # noqa: BLE001 - a broken check is a failed one
            log.exception("health check %s raised", name)
            results[name] = False
    return all(results.values()), results


class _Handler(BaseHTTPRequestHandler):
    checks: Mapping[str, Check] = {}
    live: Mapping[str, Check] = {}

    def do_GET(self):  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
        elif path in ("/healthz", "/readyz"):
            ok, results = run_checks(self.live if path == "/healthz" else self.checks)
            body = json.dumps({"status": "ok" if ok else "unavailable", "checks": results})
            self._send(200 if ok else 503, body.encode(), "application/json")
        else:
            self._send(404, b'{"status":"not found"}', "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # scrapes every few seconds would flood the log
        pass


class OpsServer:
    """/metrics, /healthz (liveness: `live`, e.g. background loops alive and not wedged) and
    /readyz (readiness: `checks`) on their own port, in a daemon thread."""

    def __init__(self, host: str, port: int, checks: Mapping[str, Check],
                 live: Mapping[str, Check] | None = None):
        handler = type("OpsHandler", (_Handler,), {"checks": dict(checks),
                                                   "live": dict(live or {})})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.1,),
                                        name="ops-http", daemon=True)

    def start(self) -> OpsServer:
        self._thread.start()
        log.info("metrics and health on port %s", self.port)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
