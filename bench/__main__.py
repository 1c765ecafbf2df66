"""`make bench`: throughput of the paths every report takes, each printed beside a bare
baseline measured in the same run on the same machine, with the ratio.

1. Outbox relay (read rows, publish with confirms + mandatory, mark sent) against bare
   confirmed publishes of the same bytes on one pika channel.
2. Intake's POST /api/v1/reports (validation, one transaction with the report, the
   idempotency key and two outbox rows) against a bare Flask endpoint that parses the same
   JSON and answers 201, both through the WSGI test client (no network).
3. The classifier (bench/classifier.py): held-out accuracy, macro-F1, worst-confused pairs,
   build, load time and memory, prediction latency; then SuggestRoute through a real gRPC
   channel with a token against a bare unary gRPC call.

Uses a throwaway RabbitMQ vhost and temporary SQLite files; prints, never asserts.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pika
from flask import Flask, jsonify, request

from bench import classifier
from lapor.v1 import events_pb2
from services.infra import db, events, messaging
from services.infra.outbox import Outbox
from services.intake import storage as intake_storage
from services.intake.app import create_app

N_EVENTS = int(os.environ.get("BENCH_EVENTS", 2000))
N_REPORTS = int(os.environ.get("BENCH_REPORTS", 1000))
AMQP_HOST = os.environ.get("BENCH_AMQP_HOST", "127.0.0.1:5672")

REPORT = {"kind": "PENGADUAN", "title": "Jalan rusak di Nagari Muaro",
          "body": "Jalan utama di Nagari Muaro rusak berlubang sejak bulan lalu.",
          "region_code": "13.03", "reporter": {"name": "Rina", "email": "rina@contoh.id"}}


def _vhost():
    name = f"lapor-bench-{uuid.uuid4().hex[:8]}"
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    subprocess.run([*sudo, "rabbitmqctl", "-q", "add_vhost", name], check=True)
    subprocess.run([*sudo, "rabbitmqctl", "-q", "set_permissions", "-p", name, "guest",
                    ".*", ".*", ".*"], check=True)
    return name, f"amqp://guest:guest@{AMQP_HOST}/{name}", sudo


def _report(name: str, n: int, baseline: float, measured: float) -> None:
    print(f"{name}: {n / measured:,.0f}/s (baseline {n / baseline:,.0f}/s); "
          f"time ratio {measured / baseline:.2f}x the baseline")


def bench_outbox(url: str, workdir: Path) -> None:
    envelope = events.new("ticket.sla_warning", "LPR-BEN-CHM-ARK",
                          events_pb2.TicketSlaWarning(tracking_id="LPR-BEN-CHM-ARK"), "bench")
    body = envelope.SerializeToString()

    connection = pika.BlockingConnection(messaging.connection_parameters(url, "bench"))
    channel = connection.channel()
    messaging.declare_topology(channel)
    channel.confirm_delivery()
    started = time.perf_counter()
    for _ in range(N_EVENTS):
        channel.basic_publish(messaging.EXCHANGE, envelope.type, body, mandatory=True,
                              properties=pika.BasicProperties(delivery_mode=2))
    baseline = time.perf_counter() - started
    connection.close()

    engine = db.make_engine(f"sqlite:///{workdir / 'outbox.db'}")
    db.migrate(engine, "intake", intake_storage.MIGRATIONS)
    outbox = Outbox(engine, intake_storage.outbox, "bench",
                    lambda: messaging.Publisher(url, "bench-outbox"))
    with engine.begin() as conn:
        for _ in range(N_EVENTS):
            outbox.add(conn, events.new("ticket.sla_warning", "LPR-BEN-CHM-ARK",
                                        events_pb2.TicketSlaWarning(), "bench"))
    started = time.perf_counter()
    left = outbox.flush(timeout=300)
    measured = time.perf_counter() - started
    outbox.stop(flush_timeout=1)
    assert left == 0, f"{left} events left unsent"
    _report(f"outbox relay, {N_EVENTS} events", N_EVENTS, baseline, measured)


def bench_intake(url: str, workdir: Path) -> None:
    bare = Flask("bare")

    @bare.post("/api/v1/reports")
    def create():
        data = request.get_json()
        return jsonify(tracking_id="x", access_token="y", status=data["kind"]), 201

    client = bare.test_client()
    started = time.perf_counter()
    for i in range(N_REPORTS):
        client.post("/api/v1/reports", json=REPORT, headers={"Idempotency-Key": f"key-{i:08d}"})
    baseline = time.perf_counter() - started

    app = create_app({"DATABASE_URL": f"sqlite:///{workdir / 'intake.db'}", "AMQP_URL": url,
                      "ROUTING_ADDR": "127.0.0.1:1", "ROUTING_TIMEOUT": 0.2,
                      # One client posting as fast as it can: the limits would measure 429s.
                      "START_WORKERS": False, "RATE_LIMIT_ENABLED": False})
    client = app.test_client()
    started = time.perf_counter()
    for i in range(N_REPORTS):
        response = client.post("/api/v1/reports", json=REPORT,
                               headers={"Idempotency-Key": f"key-{i:08d}"})
        assert response.status_code == 201, response.text
    measured = time.perf_counter() - started
    _report(f"intake POST /api/v1/reports, {N_REPORTS} reports (SQLite)", N_REPORTS,
            baseline, measured)


def main() -> None:
    classifier.main()
    name, url, sudo = _vhost()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            bench_outbox(url, Path(tmp))
            bench_intake(url, Path(tmp))
            classifier.bench_suggest(url, Path(tmp))
    finally:
        subprocess.run([*sudo, "rabbitmqctl", "-q", "delete_vhost", name], check=False)


if __name__ == "__main__":
    main()
