"""Notify: deliveries per second from events on the bus to a local SMTP server and a local
agency webhook receiver, through the real notify process (`python -m services.notify`:
consumer, handler transaction, delivery log, worker threads, outcome outbox), beside bare
sends of the same bytes to the same servers at the same concurrency.

Each ticket gets reporter.registered (so the contact is known) then ticket.dispatched, which
makes exactly one reporter email and one webhook to the agency holding it. They are published
32 tickets at a time, each type's events packed in one message, as the services' relays send
a round of rows (decision 74); BENCH_NOTIFY_ROUND=1 publishes each ticket's two events on
their own, which on the project's machine made this process's publishing take most of the
run (4.9–8.7 s for 4,000 events, against 0.13–0.33 s packed). The receivers
(aiosmtpd, a threaded http.server) run in this process and stamp each arrival; notify runs
as its own process with NOTIFY_WORKERS sending threads and LAPOR_LOG_LEVEL=WARNING. Its
figure runs from the first event published to the last delivery arriving at the receivers;
the delivery log is then checked to hold every delivery as delivered after one attempt, and
the receivers that every delivery arrived exactly once with a valid signature.

The bare baseline replays what the receivers got from notify, byte for byte, from its own
process with the same number of threads and the same connection pattern notify uses: one
SMTP connection per thread, kept from email to email (connect and EHLO once, then
MAIL/RCPT/DATA for each; smtplib) and one HTTP/1.1 connection per thread, kept
from webhook to webhook (http.client), as notify keeps its own. The agency endpoint answers
HTTP/1.1 and keeps connections open, as agencies' servers do. Its figure runs from the go
signal to the last arrival. The two go in turn, BENCH_NOTIFY_ROUNDS rounds (default 3), the
order swapped each round and notify on a fresh database each time; every round's ratio is
printed and the median round's is the figure (one run of each, minutes apart, had moved
notify's ratio on PostgreSQL between 19% and 33% for the same code).

The breakdown comes from notify's own metrics (time in each send, beside the bare send of
the same bytes) and from a separate, smaller SQLite run with py-spy sampling the notify
process's threads (wall time, idle included), grouped into the worker's stages; py-spy slows
that run, so its rate is not the figure (BENCH_NOTIFY_PROFILE=0 skips it). SQLite, and
PostgreSQL when it answers.

A second figure per database measures the sending side alone: the same deliveries made
beforehand by notify's own event handler, straight into a fresh database, then a notify
process started on that backlog; it runs from the first arrival to the last. With events
on the bus the handler (one consumer thread, one transaction per event) makes the
deliveries no faster than the workers send them, so the first figure can be the handler's.

    python -m bench.notify_bench
    BENCH_NOTIFY_ROUNDS=5 python -m bench.notify_bench
    BENCH_NOTIFY_TICKETS=500 BENCH_NOTIFY_ROUND=1 BENCH_NOTIFY_PROFILE=0 \
        python -m bench.notify_bench
"""

from __future__ import annotations

import collections
import email
import email.policy
import http.client
import json
import os
import pickle
import queue
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.processes import postgres_databases, stop, wait_ready
from bench.settings import env_int, median_round
from services.notify.app import Settings as NotifySettings
from tests.conftest import PG_DSN, free_port

ROOT = Path(__file__).resolve().parents[1]
# 2,000 tickets, 4,000 deliveries: with 1,000 the figures of runs in a row varied by a third.
TICKETS = env_int("BENCH_NOTIFY_TICKETS", 2000, minimum=1)
WORKERS = env_int("BENCH_NOTIFY_WORKERS", NotifySettings.workers, minimum=1)
PROFILE = os.environ.get("BENCH_NOTIFY_PROFILE", "1") not in ("", "0")
PROFILE_RATE = 100  # py-spy samples/s per thread: higher slows notify down noticeably
PY_SPY = Path(sys.executable).with_name("py-spy")
SECRET = "bench-agency-secret-0123456789"
AGENCY_CODE = "PUPR-13.03"
TARGET = 0.5
STALL_SECONDS = 30.0  # no new arrival for this long: the run is reported as stuck
# Tickets whose two events go out in one publish, packed per type as the services' relays
# send a round of rows (decision 74); 1: each ticket's two events a publish of their own.
ROUND = env_int("BENCH_NOTIFY_ROUND", 32, minimum=1)
# Notify and the bare sender in turn, the order swapped each round: one run of each minutes
# apart had put notify on PostgreSQL at 19-33% of bare sends for the same code.
ROUNDS = env_int("BENCH_NOTIFY_ROUNDS", 3, minimum=1)


# -- the receivers (this process) ------------------------------------------------------------
class Receivers:
    """An aiosmtpd server and an HTTP agency endpoint that keep what arrives, stamped."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.lock = threading.Lock()
        self.emails: list[tuple[float, str, list[str], bytes]] = []
        self.hooks: list[tuple[float, str, list[tuple[str, str]], bytes]] = []
        receivers = self

        class Sink:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                item = (time.perf_counter(), envelope.mail_from, list(envelope.rcpt_tos),
                        envelope.content)
                with receivers.lock:
                    receivers.emails.append(item)
                return "250 Message accepted for delivery"

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # connections kept open, as agencies' servers do

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                item = (time.perf_counter(), self.path, list(self.headers.items()), body)
                with receivers.lock:
                    receivers.hooks.append(item)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.smtp = Controller(Sink(), hostname="127.0.0.1", port=free_port())
        self.smtp.start()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 128
        self.http_port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def smtp_url(self) -> str:
        return f"smtp://127.0.0.1:{self.smtp.port}"

    def count(self) -> int:
        with self.lock:
            return len(self.emails) + len(self.hooks)

    def take(self):
        with self.lock:
            emails, hooks, self.emails, self.hooks = self.emails, self.hooks, [], []
        return emails, hooks

    def wait_for(self, expected: int, what: str) -> float:
        """Blocks until `expected` arrivals; returns the stamp of the last one."""
        seen, progress_at = -1, time.monotonic()
        while True:
            count = self.count()
            if count >= expected:
                break
            if count != seen:
                seen, progress_at = count, time.monotonic()
            elif time.monotonic() - progress_at > STALL_SECONDS:
                raise SystemExit(f"{what}: stuck at {count} of {expected} arrivals")
            time.sleep(0.01)
        with self.lock:
            return max(t for t, *_ in (*self.emails, *self.hooks))

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.smtp.stop()


# -- the bare baseline (its own process: python -m bench.notify_bench --bare FILE) -----------
def serve_bare(spec_file: str) -> None:
    spec = pickle.loads(Path(spec_file).read_bytes())
    work: queue.SimpleQueue = queue.SimpleQueue()
    for item in spec["items"]:
        work.put(item)
    spent = collections.defaultdict(float)
    lock = threading.Lock()

    def sender() -> None:
        mine = collections.defaultdict(float)
        client = hook = None
        while True:
            try:
                item = work.get_nowait()
            except queue.Empty:
                break
            started = time.perf_counter()
            if item[0] == "email":
                _, mail_from, rcpts, content = item
                if client is None:
                    client = smtplib.SMTP("127.0.0.1", spec["smtp_port"], timeout=10)
                    client.ehlo_or_helo_if_needed()
                client.sendmail(mail_from, rcpts, content)
            else:
                _, path, headers, body = item
                if hook is None:
                    hook = http.client.HTTPConnection("127.0.0.1", spec["http_port"], timeout=10)
                hook.request("POST", path, body=body, headers=dict(headers))
                response = hook.getresponse()
                response.read()
                if response.status != 200:
                    raise SystemExit(f"bare POST answered {response.status}")
            mine[item[0]] += time.perf_counter() - started
        if client is not None:
            client.quit()
        if hook is not None:
            hook.close()
        with lock:
            for channel, seconds in mine.items():
                spent[channel] += seconds

    threads = [threading.Thread(target=sender) for _ in range(spec["threads"])]
    print("ready", flush=True)
    sys.stdin.readline()  # go
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps(spent), flush=True)


def run_bare(receivers: Receivers, emails: list, hooks: list, workdir: Path) -> dict:
    """Replays the bytes notify delivered, in the order they arrived, from WORKERS threads."""
    arrived = sorted([(t, ("email", f, r, c)) for t, f, r, c in emails]
                     + [(t, ("webhook", p, h, b)) for t, p, h, b in hooks], key=lambda x: x[0])
    spec_file = workdir / "bare.pickle"
    spec_file.write_bytes(pickle.dumps({
        "items": [item for _, item in arrived], "threads": WORKERS,
        "smtp_port": receivers.smtp.port, "http_port": receivers.http_port}))
    proc = subprocess.Popen([sys.executable, "-m", "bench.notify_bench", "--bare",
                             str(spec_file)], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("the bare sender did not start")
        started = time.perf_counter()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        last = receivers.wait_for(len(arrived), "bare sends")
        spent = json.loads(proc.stdout.readline())
    finally:
        proc.stdin.close()
        proc.wait(30)
    got_emails, got_hooks = receivers.take()
    if (len(got_emails), len(got_hooks)) != (len(emails), len(hooks)):
        raise SystemExit(f"bare sends arrived {len(got_emails)} + {len(got_hooks)} times, "
                         f"sent {len(emails)} + {len(hooks)}")
    return {"seconds": last - started,
            "email_ms": 1000 * spent.get("email", 0.0) / max(1, len(emails)),
            "webhook_ms": 1000 * spent.get("webhook", 0.0) / max(1, len(hooks))}


# -- notify -----------------------------------------------------------------------------------
def _events(tracking_ids: list[str]) -> tuple[list, list]:
    """(routing key, body, event id) of each ticket's reporter.registered, and of its
    ticket.dispatched, in the tickets' order."""
    from lapor.v1 import common_pb2, events_pb2
    from services.infra import events

    agency = common_pb2.Agency(code=AGENCY_CODE, name="Dinas PUPR Kabupaten Sijunjung",
                               level="regency", region_code="13.03", parent_code="PUPR-13")
    deadline = events.timestamp(datetime(2030, 7, 17, 9, 0, tzinfo=UTC))
    submitted = events.timestamp(datetime(2030, 7, 8, 2, 30, tzinfo=UTC))
    registered, dispatched = [], []
    for i, tid in enumerate(tracking_ids):
        registered.append(events.new("reporter.registered", tid, events_pb2.ReporterRegistered(
            tracking_id=tid, name="Rina Marlina", email=f"pelapor{i}@contoh.id",
            phone="081234567890", language="id"), "intake"))
        report = common_pb2.ReportContent(
            kind=common_pb2.REPORT_KIND_PENGADUAN, title="Jalan rusak di Nagari Muaro",
            body="Jalan utama di Nagari Muaro rusak berlubang sejak bulan lalu dan "
                 "membahayakan pengendara motor yang lewat pada malam hari.",
            region_code="13.03", region_name="Kabupaten Sijunjung", reporter_name="Rina",
            channel="web", incident_date="2030-07-01", address="Jl. Lintas Sumatera",
            submitted_at=submitted)
        dispatched.append(events.new("ticket.dispatched", tid, events_pb2.TicketDispatched(
            tracking_id=tid, ticket_id="TCK-" + tid[4:], agency=agency, deadline=deadline,
            deadline_zone="WIB", working_days=5, category="infrastruktur-jalan",
            confidence=0.92, decision="kategori infrastruktur-jalan di wilayah 13.03",
            report=report, actor_role="system"), "routing"))
    return ([(e.type, e.SerializeToString(), e.event_id) for e in registered],
            [(e.type, e.SerializeToString(), e.event_id) for e in dispatched])


def _get(port: int, path: str) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


def _metric_sums(text: str) -> dict[str, float]:
    """Send seconds and counts per channel, and the consumer's transactions and the events
    handled in them, from notify's /metrics."""
    sums: dict[str, float] = {}
    for line in text.splitlines():
        for kind in ("sum", "count"):
            if line.startswith(f"lapor_consumer_batch_size_{kind}{{"):
                sums[f"batch_{kind}"] = float(line.rsplit(" ", 1)[1])
            prefix = f"lapor_notify_send_duration_seconds_{kind}{{channel=\""
            if line.startswith(prefix):
                channel = line[len(prefix):].split('"', 1)[0]
                sums[f"{channel}_{kind}"] = float(line.rsplit(" ", 1)[1])
    return sums


def _logged(database_url: str) -> tuple[int, int, int]:
    """(deliveries delivered, deliveries in all, attempts) in notify's delivery log."""
    import sqlalchemy as sa

    from services.infra import db
    from services.notify import store

    engine = db.make_engine(database_url)
    try:
        with db.reading(engine) as conn:
            d = store.deliveries
            delivered = conn.execute(sa.select(sa.func.count()).where(
                d.c.status == "delivered", d.c.attempts == 1)).scalar_one()
            total = conn.execute(sa.select(sa.func.count()).select_from(d)).scalar_one()
            attempts = conn.execute(sa.select(sa.func.count()).select_from(
                store.delivery_attempts)).scalar_one()
    finally:
        engine.dispose()
    return delivered, total, attempts


def _created_over(database_url: str) -> float:
    """Seconds between the first and the last delivery row the event handler created."""
    import sqlalchemy as sa

    from services.infra import db
    from services.notify import store

    engine = db.make_engine(database_url)
    try:
        with db.reading(engine) as conn:
            d = store.deliveries
            first, last = conn.execute(sa.select(sa.func.min(d.c.created_at),
                                                 sa.func.max(d.c.created_at))).one()
    finally:
        engine.dispose()
    return (db.as_utc(last) - db.as_utc(first)).total_seconds()


def _notify_env(database_url: str, amqp_url: str, receivers: Receivers,
                workdir: Path) -> dict:
    """A notify process's environment, with the agency's webhook registered in its database
    pointing at the local receiver."""
    env = {**os.environ, "NOTIFY_DATABASE_URL": database_url, "LAPOR_AMQP_URL": amqp_url,
           "LAPOR_RABBITMQ_API_URL": "off", "NOTIFY_SMTP_URL": receivers.smtp_url,
           "NOTIFY_WORKERS": str(WORKERS), "LAPOR_LOG_LEVEL": "WARNING"}
    secret_file = workdir / "secret"
    secret_file.write_text(SECRET)
    url = f"http://127.0.0.1:{receivers.http_port}/lapor"
    subprocess.run([sys.executable, "-m", "services.notify", "webhooks", "set", AGENCY_CODE,
                    url, "--secret-file", str(secret_file), "--allow-http"], cwd=ROOT, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    return env


def run_backlog(label: str, database_url: str, amqp_url: str, receivers: Receivers,
                workdir: Path, tickets: int = TICKETS) -> dict:
    """The sending side alone: the same deliveries made beforehand by notify's own event
    handler (in this process, straight into the database), then a notify process started on
    them. Its figure runs from the first arrival to the last, so start-up is not in it."""
    from lapor.v1 import events_pb2
    from services.infra import db
    from services.notify.handler import EventHandler

    env = _notify_env(database_url, amqp_url, receivers, workdir)
    tracking_ids = [f"LPR-{uuid.uuid4().hex[:8].upper()}" for _ in range(tickets)]
    engine = db.make_engine(database_url)
    try:
        handler = EventHandler(engine)
        registered, dispatched = _events(tracking_ids)
        for _, body, _ in registered + dispatched:
            envelope = events_pb2.EventEnvelope()
            envelope.ParseFromString(body)
            handler(envelope)
    finally:
        engine.dispose()
    metrics_port = free_port()
    env["NOTIFY_METRICS_PORT"] = str(metrics_port)
    log = workdir / f"notify-{label}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.notify"], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        last = receivers.wait_for(2 * tickets, f"notify backlog ({label})")
    finally:
        stop(proc)
    emails, hooks = receivers.take()
    _check_once(emails, hooks, tracking_ids)
    first = min(stamp for stamp, *_ in emails + hooks)
    return {"seconds": last - first, "deliveries": 2 * tickets - 1}


def _check_once(emails: list, hooks: list, tracking_ids: list[str]) -> None:
    """Every ticket's email and webhook arrived exactly once, the webhook signed."""
    from services.notify import signing

    expected_to = collections.Counter(f"pelapor{i}@contoh.id" for i in range(len(tracking_ids)))
    to = collections.Counter(r for _, _, rcpts, _ in emails for r in rcpts)
    ids = collections.Counter(
        email.message_from_bytes(c, policy=email.policy.default)["Message-ID"]
        for *_, c in emails)
    hook_ids = collections.Counter(dict(h)["X-Lapor-Delivery"] for _, _, h, _ in hooks)
    hook_tickets = collections.Counter(json.loads(b)["tracking_id"] for *_, b in hooks)
    unsigned = sum(not signing.verify(SECRET, dict(h), b, tolerance_s=3600)
                   for _, _, h, b in hooks)
    problems = []
    if to != expected_to or len(ids) != len(emails):
        problems.append(f"emails: {len(emails)} arrived for {len(to)} of {len(expected_to)} "
                        f"reporters, {len(ids)} distinct Message-IDs")
    if hook_tickets != collections.Counter(tracking_ids) or len(hook_ids) != len(hooks):
        problems.append(f"webhooks: {len(hooks)} arrived for {len(hook_tickets)} of "
                        f"{len(tracking_ids)} tickets, {len(hook_ids)} distinct delivery ids")
    if unsigned:
        problems.append(f"{unsigned} webhooks without a valid signature")
    if problems:
        raise SystemExit("notify deliveries not exactly once: " + "; ".join(problems))


def run_notify(label: str, database_url: str, amqp_url: str, receivers: Receivers,
               workdir: Path, tickets: int = TICKETS, profile: bool = False) -> dict:
    env = _notify_env(database_url, amqp_url, receivers, workdir)
    metrics_port = free_port()
    env["NOTIFY_METRICS_PORT"] = str(metrics_port)
    log = workdir / f"notify-{label}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.notify"], env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT)
    spy = None
    try:
        wait_ready(metrics_port, proc, log, "notify")
        tracking_ids = [f"LPR-{uuid.uuid4().hex[:8].upper()}" for _ in range(tickets)]
        registered, dispatched = _events(tracking_ids)
        from services.infra import messaging

        publisher = messaging.Publisher(amqp_url, "bench-publisher")
        publisher._ensure_channel()  # connected before the clock starts
        profile_file = workdir / f"notify-{label}.pyspy"
        if profile:
            spy = subprocess.Popen([str(PY_SPY), "record", "--pid", str(proc.pid), "--idle",
                                    "--threads", "--rate", str(PROFILE_RATE), "--format", "raw",
                                    "--output", str(profile_file), "--nonblocking"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # attached
        started = time.perf_counter()
        for first in range(0, tickets, ROUND):
            result = publisher.publish_many(registered[first:first + ROUND]
                                            + dispatched[first:first + ROUND])
            if result.failed or result.unroutable:
                raise SystemExit(f"bench publisher: {result.failed or 'unroutable events'}")
        published = time.perf_counter() - started
        publisher.close()
        last = receivers.wait_for(2 * tickets, f"notify ({label})")
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        deadline = time.monotonic() + STALL_SECONDS
        while (logged := _logged(database_url))[0] < 2 * tickets:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        logged_at = time.perf_counter()
        metrics = _metric_sums(_get(metrics_port, "/metrics")[1])
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        stop(proc)
    emails, hooks = receivers.take()
    _check_once(emails, hooks, tracking_ids)
    if logged != (2 * tickets, 2 * tickets, 2 * tickets):
        raise SystemExit(f"notify's delivery log: {logged[0]} delivered at the first attempt, "
                         f"{logged[1]} deliveries, {logged[2]} attempts; "
                         f"expected {2 * tickets} of each")
    return {"seconds": last - started, "published": published,
            "created_over": _created_over(database_url),
            "logged": logged_at - started, "metrics": metrics, "emails": emails,
            "hooks": hooks, "profile": profile_file if profile else None}


# -- the profile -------------------------------------------------------------------------------
# Stages of a sending thread's loop and of the claims loop (decision 87), first match from
# the innermost frame outwards.
_SENDER = "_send_iteration (services/notify/worker.py"
_CLAIMS = "_claims_iteration (services/notify/worker.py"
_STAGES = [
    ("render template", "render (services/notify/templates"),
    ("build the message's bytes", "build_email (services/notify"),
    ("SMTP conversation", "send_email (services/notify"),
    ("sign webhook", "webhook_headers (services/notify"),
    ("HTTP POST: CA bundle loaded for a new TLS context", "create_default_context ("),
    ("HTTP POST: the request", "send_webhook (services/notify"),
    ("idle, waiting for a claim", _SENDER),
]
_CLAIM_STAGES = [
    ("claim (due rows leased and read back, contact/endpoint)", "_claim_some (services/notify"),
    ("record (updates, attempt rows, outcome events)", "_record_"),
    ("put back (a stop, a claim that waited too long)", "put_back (services/notify"),
    ("pending gauges", "_update_gauges (services/notify"),
    ("transaction begin and commit", "record_and_claim (services/notify"),
    ("waiting for outcomes or work", _CLAIMS),
]


def _stage(frames: list[str], stages) -> str:
    for stage, marker in stages:
        if any(marker in f for f in frames):
            return stage
    return "other"


def profile_breakdown(path: Path, deliveries: int, seconds: float) -> list[str]:
    """The sending threads' and the claims loop's wall time by stage, and what the other
    busy threads spent."""
    worker: collections.Counter = collections.Counter()
    claims: collections.Counter = collections.Counter()
    sql_in: collections.Counter = collections.Counter()
    others: collections.Counter = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if any(_SENDER in f for f in frames):
            worker[_stage(frames, _STAGES)] += n
        elif any(_CLAIMS in f for f in frames):
            stage = _stage(frames, _CLAIM_STAGES)
            claims[stage] += n
            if any("sqlite3" in f or "psycopg" in f for f in frames):
                sql_in[stage] += n
        elif any("handler.py" in f and "services/notify" in f for f in frames):
            others["event handler (contact, dedupe row, delivery rows)"] += n
        elif any("services/infra/outbox.py" in f for f in frames):
            others["outbox relay (notification.* events)"] += n
    total = sum(worker.values())
    if not total:
        return ["profile: no worker samples"]
    # py-spy samples every thread at the same rate: a sample is this many thread-seconds.
    per_sample = WORKERS * seconds / total
    lines = [f"  sending threads ({WORKERS}), wall time per delivery by stage "
             f"({total} samples):"]
    for stage, n in worker.most_common():
        lines.append(f"    {stage}: {1000 * per_sample * n / deliveries:.2f} ms "
                     f"({100 * n / total:.0f}%)")
    if claims:
        lines.append(f"  the claims loop, wall time per delivery by stage "
                     f"({sum(claims.values())} samples):")
        for stage, n in claims.most_common():
            extra = ""
            if sql_in.get(stage):
                extra = f", of which {100 * sql_in[stage] / n:.0f}% in the database driver"
            lines.append(f"    {stage}: {1000 * per_sample * n / deliveries:.2f} ms "
                         f"({100 * n / sum(claims.values()):.0f}%{extra})")
    for name, n in others.most_common():
        lines.append(f"  {name}: {n * per_sample:.1f} thread-s sampled "
                     f"(includes its waits)")
    return lines


# -- the run ----------------------------------------------------------------------------------
def measure(label: str, database_urls: list[str], amqp_url: str, receivers: Receivers,
            workdir: Path, backlog_url: str) -> None:
    """ROUNDS rounds of notify (on a fresh database each) and the bare sender in turn, the
    order swapped each round; the median round's ratio is the figure. The bare sender
    replays the first round's bytes in every round, so it needs notify to go first once."""
    n = 2 * TICKETS
    rounds: list[tuple[dict, dict]] = []
    sent: tuple[list, list] | None = None
    for i, database_url in enumerate(database_urls):
        notify_first = i % 2 == 0
        if notify_first:
            real = run_notify(label, database_url, amqp_url, receivers, workdir)
            sent = sent or (real["emails"], real["hooks"])
            bare = run_bare(receivers, *sent, workdir)
        else:
            bare = run_bare(receivers, *sent, workdir)
            real = run_notify(label, database_url, amqp_url, receivers, workdir)
        rounds.append((real, bare))
        print(f"  round {i + 1} ({'notify first' if notify_first else 'bare first'}): "
              f"notify {n / real['seconds']:,.0f}/s, bare {n / bare['seconds']:,.0f}/s, "
              f"{bare['seconds'] / real['seconds']:.0%}", flush=True)
    real, bare = median_round(rounds, lambda r: r[1]["seconds"] / r[0]["seconds"])
    rate, bare_rate = n / real["seconds"], n / bare["seconds"]
    ratios = ", ".join(f"{b['seconds'] / r['seconds']:.0%}" for r, b in rounds)
    print(f"notify deliveries ({label}), {n} ({TICKETS} email + {TICKETS} webhook), "
          f"{WORKERS} workers, {len(rounds)} rounds in turn with bare sends, the median round: "
          f"{rate:,.0f}/s; bare sends of the same bytes {bare_rate:,.0f}/s; "
          f"{rate / bare_rate:.0%} (rounds: {ratios}; target {TARGET:.0%})", flush=True)
    m = real["metrics"]
    email_ms = 1000 * m.get("email_sum", 0) / max(1, m.get("email_count", 0))
    hook_ms = 1000 * m.get("webhook_sum", 0) / max(1, m.get("webhook_count", 0))
    per_delivery = 1000 * WORKERS * real["seconds"] / n
    print(f"  {n} events published in {real['published']:.2f} s; last arrival at "
          f"{real['seconds']:.2f} s; all recorded delivered in the log at "
          f"{real['logged']:.2f} s; the event handler created the deliveries over "
          f"{real['created_over']:.2f} s, taking the {m.get('batch_sum', 0):.0f} events in "
          f"{m.get('batch_count', 0):.0f} transactions", flush=True)
    backlog = run_backlog(f"{label}, backlog", backlog_url, amqp_url, receivers, workdir)
    print(f"  sending alone (the same deliveries already in the table, the handler not "
          f"running): {backlog['deliveries'] / backlog['seconds']:,.0f}/s, "
          f"{backlog['deliveries'] / backlog['seconds'] / bare_rate:.0%} of the median "
          f"round's bare sends", flush=True)
    print(f"  per delivery, worker-thread time {per_delivery:.1f} ms "
          f"({WORKERS} threads x elapsed / deliveries): send email {email_ms:.1f} ms "
          f"(bare {bare['email_ms']:.1f}), send webhook {hook_ms:.1f} ms "
          f"(bare {bare['webhook_ms']:.1f}); the rest (claim, record, waiting for work or "
          f"the database) {per_delivery - (email_ms + hook_ms) / 2:.1f} ms", flush=True)


def profile_run(amqp_url: str, receivers: Receivers, workdir: Path) -> None:
    """A separate, smaller SQLite run under py-spy (which slows it): where the time goes."""
    if not PY_SPY.exists():
        print(f"notify profile: skipped, no {PY_SPY}")
        return
    tickets = max(50, TICKETS // 2)
    real = run_notify("SQLite, profiled", f"sqlite:///{workdir / 'profiled.db'}", amqp_url,
                      receivers, workdir, tickets=tickets, profile=True)
    n = 2 * tickets
    if not real["profile"].exists():
        print("notify profile: py-spy wrote nothing (ptrace not permitted?)")
        return
    print(f"notify profile (SQLite, py-spy {PROFILE_RATE} Hz, idle included, {n} deliveries "
          f"at {n / real['seconds']:,.0f}/s while sampled):", flush=True)
    for line in profile_breakdown(real["profile"], n, real["seconds"]):
        print(line, flush=True)


def main(amqp_url: str | None = None) -> None:
    from bench.__main__ import _throwaway_vhost

    receivers = Receivers()
    try:
        with _throwaway_vhost(amqp_url) as amqp_url, tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            measure("SQLite", [f"sqlite:///{workdir / f'notify-{i}.db'}" for i in range(ROUNDS)],
                    amqp_url, receivers, workdir, f"sqlite:///{workdir / 'backlog.db'}")
            if PROFILE:
                profile_run(amqp_url, receivers, workdir)
            name = f"bench_notify_{uuid.uuid4().hex[:8]}"
            names = [f"{name}_{i}" for i in range(ROUNDS)] + [f"{name}_backlog"]
            with postgres_databases("notify deliveries", PG_DSN, names) as urls:
                if urls is not None:
                    measure("PostgreSQL", urls[:-1], amqp_url, receivers, workdir, urls[-1])
    finally:
        receivers.stop()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--bare":
        serve_bare(sys.argv[2])
    else:
        main()
