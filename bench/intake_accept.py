"""Intake accept: durable submissions per second and their p50/p99 at 16 concurrent keep-alive
HTTP connections through the real intake process (`python -m services.intake`: waitress with
intake's limits, validation, idempotency key, report + timeline + two outbox rows in one
transaction, the outbox relay publishing to RabbitMQ), beside a bare endpoint served by the
same server class with the same settings that parses the same JSON and commits one row
through the same engine settings (SQLite: WAL, synchronous=NORMAL; PostgreSQL: the server's
synchronous_commit). Both run as their own process; the clients run in this one. Measured on
SQLite and, when it answers, PostgreSQL.

Both servers stay up while the load goes to one and then the other, BENCH_ACCEPT_ROUNDS
times (3), the order swapped each round: a machine whose speed drifts from one minute to
the next then moves both sides of a round's ratio alike, and the median round's ratio is
the figure (one run of each had given 47% to 60% for the same code).

    python -m bench.intake_accept            # both databases
    BENCH_ACCEPT_SECONDS=20 BENCH_ACCEPT_ROUNDS=5 python -m bench.intake_accept
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench.processes import postgres_databases, stop, wait_ready
from bench.settings import env_float, env_int, median_round
from tests.conftest import PG_DSN, free_port

ROOT = Path(__file__).resolve().parents[1]
CONNECTIONS = 16
SECONDS = env_float("BENCH_ACCEPT_SECONDS", 8, minimum=1)
ROUNDS = env_int("BENCH_ACCEPT_ROUNDS", 3, minimum=1)
WARMUP_SECONDS = 1.5

REPORT = {"kind": "PENGADUAN", "title": "Jalan rusak di Nagari Muaro",
          "body": "Jalan utama di Nagari Muaro rusak berlubang sejak bulan lalu dan "
                  "membahayakan pengendara motor yang lewat pada malam hari.",
          "region_code": "13.03", "anonymous": False, "confidential": False,
          "reporter": {"name": "Rina Marlina", "email": "rina@contoh.id",
                       "phone": "081234567890"}}


# -- the bare endpoint (run in its own process: python -m bench.intake_accept --bare ...) -----
def serve_bare(port: int, database_url: str) -> None:
    import sqlalchemy as sa
    from flask import Flask, jsonify, request

    from services.infra import db
    from services.intake.server import HttpServer, ServerSettings

    engine = db.make_engine(database_url, pool_size=ServerSettings.threads + 2)
    metadata = sa.MetaData()
    rows = sa.Table("bare_reports", metadata,
                    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
                    sa.Column("body", sa.Text, nullable=False))
    metadata.create_all(engine)
    insert = rows.insert()
    app = Flask("bare")

    @app.post("/api/v1/reports")
    def create():
        data = request.get_json()
        with engine.begin() as conn:
            conn.execute(insert, {"body": json.dumps(data)})
        return jsonify(tracking_id="LPR-BAR-E00-000", access_token="x", status="SUBMITTED"), 201

    @app.get("/readyz")
    def ready():
        return jsonify(status="ok")

    HttpServer(app, ServerSettings(port=port)).start()
    threading.Event().wait()


# -- clients ---------------------------------------------------------------------------------
def _client(port: int, stop_at: float, measure_from: float, latencies: list[float],
            errors: list[str], answered: list[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    body = json.dumps(REPORT).encode()
    try:
        while True:
            started = time.perf_counter()
            if started >= stop_at:
                return
            conn.request("POST", "/api/v1/reports", body=body, headers={
                "Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())})
            response = conn.getresponse()
            response.read()
            done = time.perf_counter()
            if response.status != 201:
                errors.append(str(response.status))
                continue
            answered.append(1)
            if started >= measure_from:
                latencies.append(done - started)
    except (OSError, http.client.HTTPException) as exc:
        errors.append(repr(exc))
    finally:
        conn.close()


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(port: int, pid: int) -> dict:
    """CONNECTIONS clients posting as fast as answers come, SECONDS after a warm-up; the
    server's CPU a request over the whole run, warm-up included."""
    measure_from = time.perf_counter() + WARMUP_SECONDS
    stop_at = measure_from + SECONDS
    latencies: list[float] = []
    errors: list[str] = []
    answered: list[int] = []
    threads = [threading.Thread(target=_client, args=(port, stop_at, measure_from, latencies,
                                                      errors, answered))
               for _ in range(CONNECTIONS)]
    cpu_before = cpu_seconds(pid)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    cpu = cpu_seconds(pid) - cpu_before
    if errors:
        raise SystemExit(f"{len(errors)} requests failed, e.g. {errors[:3]}")
    cuts = statistics.quantiles(latencies, n=100)
    return {"rate": len(latencies) / SECONDS, "p50": cuts[49] * 1000, "p99": cuts[98] * 1000,
            "count": len(latencies), "cpu_ms": cpu * 1000 / len(answered)}


@contextlib.contextmanager
def _serving(command: list[str], env: dict, port: int, log: Path):
    """The server process started by `command`, answering on `port`; stopped after."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_ready(port, proc, log, "server")
        yield proc
    finally:
        stop(proc)


def measure(label: str, intake_url: str, bare_url: str, amqp_url: str, workdir: Path) -> None:
    bare_port, port = free_port(), free_port()
    env = {**os.environ, "INTAKE_PORT": str(port), "INTAKE_METRICS_PORT": str(free_port()),
           "INTAKE_DATABASE_URL": intake_url, "LAPOR_AMQP_URL": amqp_url,
           "LAPOR_RABBITMQ_API_URL": "off", "ROUTING_ADDR": f"127.0.0.1:{free_port()}",
           "INTAKE_RATE_LIMIT_SUBMIT": "1000000 per minute", "LAPOR_LOG_LEVEL": "WARNING"}
    rounds: list[tuple[dict, dict]] = []
    with _serving([sys.executable, "-m", "bench.intake_accept", "--bare", str(bare_port),
                   bare_url], dict(os.environ), bare_port, workdir / "bare.log") as bare_proc, \
            _serving([sys.executable, "-m", "services.intake"], env, port,
                     workdir / "intake.log") as proc:
        for n in range(ROUNDS):
            if n % 2 == 0:
                bare = load(bare_port, bare_proc.pid)
                real = load(port, proc.pid)
            else:
                real = load(port, proc.pid)
                bare = load(bare_port, bare_proc.pid)
            rounds.append((real, bare))
            print(f"  round {n + 1} ({'bare first' if n % 2 == 0 else 'intake first'}): "
                  f"intake {real['rate']:,.0f}/s, {real['cpu_ms']:.2f} ms of CPU; bare "
                  f"{bare['rate']:,.0f}/s, {bare['cpu_ms']:.2f} ms; "
                  f"{real['rate'] / bare['rate']:.0%}", flush=True)
    real, bare = median_round(rounds, lambda r: r[0]["rate"] / r[1]["rate"])
    ratios = ", ".join(f"{r['rate'] / b['rate']:.0%}" for r, b in rounds)
    print(f"intake accept ({label}), {CONNECTIONS} connections, {ROUNDS} rounds of "
          f"{SECONDS:g} s in turn with the bare endpoint, the median round: "
          f"{real['rate']:,.0f}/s, p50 {real['p50']:.1f} ms, p99 {real['p99']:.1f} ms, "
          f"{real['cpu_ms']:.2f} ms of intake's CPU a submission; "
          f"bare endpoint (same server, one-row commit) {bare['rate']:,.0f}/s, "
          f"p50 {bare['p50']:.1f} ms, p99 {bare['p99']:.1f} ms, {bare['cpu_ms']:.2f} ms of CPU; "
          f"{real['rate'] / bare['rate']:.0%} of the bare endpoint's rate (rounds: {ratios}; "
          f"target 60%)", flush=True)


def main(amqp_url: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        measure("SQLite", f"sqlite:///{workdir / 'intake.db'}",
                f"sqlite:///{workdir / 'bare.db'}", amqp_url, workdir)
        suffix = uuid.uuid4().hex[:8]
        names = [f"bench_intake_{suffix}", f"bench_bare_{suffix}"]
        with postgres_databases("intake accept", PG_DSN, names) as urls:
            if urls is not None:
                intake_url, bare_url = urls
                measure("PostgreSQL", intake_url, bare_url, amqp_url, workdir)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--bare":
        serve_bare(int(sys.argv[2]), sys.argv[3])
    else:
        from bench.__main__ import _throwaway_vhost

        with _throwaway_vhost() as url:
            main(url)
