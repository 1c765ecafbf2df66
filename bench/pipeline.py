"""Pipeline: national traffic from POST to the agency's webhook and the reporter's email.

The three services run as processes (tests/e2e/harness.py's Stack) on a throwaway vhost with
the whole country loaded: intake and routing import the Kemendagri region list, routing
loads the national directory generated from it, and a classifier built from the corpus. An
aiosmtpd inbox stands in for reporters and an HTTP receiver for every agency (the default
webhook); both live in this process and stamp each arrival on the same clock the load
generator stamps each POST with.

The traffic: regencies and cities weighted by population
(../shared/data/penduduk-kepmendagri-2025.csv), the three kinds, some reporters anonymous and
some reports confidential, every reporter with an email address, texts drawn without
repetition from the labelled corpus (so they classify as real reports do and are not
near-identical, which routing would link as duplicates; past its 6,439 reports the texts
come round again, and routing then holds and links the repeats, whose reporters get a
second notice), and one request in ten a status
read (GET /api/v1/reports/<id>) of a report sent earlier. Open loop: requests leave at
Poisson-distributed times whatever the answers, and latency counts from the time a request
was due, so a slow server cannot slow the clock down.

1. Sustained rate: steps of rising offered rate (doubling, then bisecting); a step holds
   when the backlog (accepted reports whose reporter email, and agency webhook when
   dispatched, has not arrived) does not grow over its second half. The sustained rate is
   the highest step that held, once the lowest that grew is within 10% of it (the
   search's resolution; runs of the same tree differ by about as much).
2. Latency: BENCH_PIPELINE_SECONDS (default 60) at half the sustained rate; p50/p99 from
   the POST to the agency webhook (dispatched reports) and to the reporter's email (all;
   reports held in the triage queue get a "received" email and no webhook, reports linked
   to an open near-identical one a "linked" email and no webhook: both counted apart).
3. Zero loss and zero duplicates over every report of the run: each accepted report has its
   ticket in routing's database and its reporter email, each dispatched one its webhook
   (signature checked), no email (by Message-ID) nor webhook (by X-Lapor-Delivery) arrives
   twice, and nothing arrives for a tracking id nobody sent. A second, different notice
   about one report (held as a possible duplicate, then linked) is counted apart.
4. Peak RSS (VmHWM) of each service process at the end.

Beside it, measured in the same run: the bare one-hop chain, a waitress + Flask endpoint with
intake's server settings that parses the JSON and publishes it with publisher confirms into
a quorum queue, and a consumer in this process that acks each message: its closed-loop rate
at 16 connections, then its POST-to-consume p50/p99 open loop at half that rate.

On SQLite and, when it answers (LAPOR_TEST_PG), PostgreSQL (BENCH_PIPELINE_DATABASES picks
them). On a PostgreSQL server without autovacuum the bench vacuums its databases in
autovacuum's place (bench/vacuum.py; BENCH_VACUUM=0 does not) and says so. Prints, never
asserts.

    python -m bench.pipeline
    BENCH_PIPELINE_SECONDS=20 python -m bench.pipeline     # a quicker try
    BENCH_PIPELINE_DATABASES=postgresql python -m bench.pipeline
"""

from __future__ import annotations

import contextlib
import csv
import http.client
import json
import os
import queue
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from email import policy as email_policy
from email.parser import BytesHeaderParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.processes import postgres_databases, stop, wait_ready
from bench.settings import env_float, env_list

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LAPOR_SHARED_DATA", ROOT.parent / "shared" / "data"))
REGIONS_CSV = SHARED_DATA / "wilayah-kepmendagri-2025.csv"
POPULATION_CSV = SHARED_DATA / "penduduk-kepmendagri-2025.csv"
CORPUS = ROOT / "services" / "routing" / "classify" / "corpus"
PG_DSN = os.environ.get("LAPOR_TEST_PG", "postgresql://lapor:lapor@127.0.0.1:5432")
AMQP_HOST = os.environ.get("BENCH_AMQP_HOST", "127.0.0.1:5672")

SECONDS = env_float("BENCH_PIPELINE_SECONDS", 60, minimum=1)
DATABASES = env_list("BENCH_PIPELINE_DATABASES", "sqlite,postgresql", ("sqlite", "postgresql"))
# Each step of the search for the sustained rate; the bare chain's runs take as long.
STEP_SECONDS = max(4.0, SECONDS / 6)
START_RATE = 5.0
MAX_STEPS = 11
# The search stops once the lowest rate that grew is within this factor of the highest held.
RESOLUTION = 1.1
READ_SHARE = 0.10  # of all requests
CLIENT_THREADS = 32
CHAIN_CONNECTIONS = 16
SEED = 2025

TRACKING_ID = re.compile(r"LPR-[0-9A-Z]{3}-[0-9A-Z]{3}-[0-9A-Z]{3}")
# The reporter's first email, by its subject (Indonesian and English templates).
EMAIL_KINDS = (("dispatched", ("diteruskan ke", "forwarded to")),
               ("received", ("menunggu verifikasi", "awaiting verification")),
               ("linked", ("digabung dengan", "was linked to")))
SERVICES = ("intake", "routing", "notify")


# -- traffic -------------------------------------------------------------------------------
GIVEN = ("Rina", "Budi", "Siti", "Agus", "Dewi", "Andi", "Putu", "Nur", "Yohanes", "Fitri",
         "Rahmat", "Made", "Ayu", "Hendra", "Maria", "Wayan", "Dian", "Ikhsan", "Lestari",
         "Teuku", "Ratna", "Joko", "Nining", "Arif", "Sri", "Fransiskus", "Wulan", "Yusuf")
FAMILY = ("Marlina", "Santoso", "Rahayu", "Siregar", "Wijaya", "Nasution", "Pratama",
          "Hutapea", "Saputra", "Lubis", "Kurniawan", "Sembiring", "Simanjuntak", "Hidayat",
          "Manurung", "Tanjung", "Gultom", "Setiawan", "Rumbiak", "Wenda", "Kaunang")
DOMAINS = ("contoh.id", "mail.contoh.id", "surel.contoh.id")


class Traffic:
    """National traffic: who writes, from where, what."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.codes, self.weights = [], []
        with open(POPULATION_CSV, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                if row["kode"].count(".") == 1:  # regency/city
                    self.codes.append(row["kode"])
                    self.weights.append(int(row["total"]))
        self.texts = []
        for path in sorted(CORPUS.glob("*.jsonl")):
            with open(path, encoding="utf-8") as f:
                self.texts += [json.loads(line) for line in f if line.strip()]
        rng.shuffle(self.texts)
        self.next_text = 0
        self.serial = 0

    def report(self) -> dict:
        rng = self.rng
        text = self.texts[self.next_text % len(self.texts)]
        self.next_text += 1
        self.serial += 1
        body = text["body"].strip()
        title = text["title"].strip() or " ".join(body.split()[:7])[:80]
        if len(title) < 5:
            title = f"Laporan warga: {title}"
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        return {
            "kind": rng.choices(("PENGADUAN", "ASPIRASI", "PERMINTAAN_INFORMASI"),
                                (75, 15, 10))[0],
            "title": title,
            "body": body if len(body) >= 10 else f"{body} (mohon ditindaklanjuti)",
            "region_code": rng.choices(self.codes, self.weights)[0],
            "anonymous": rng.random() < 0.2,
            "confidential": rng.random() < 0.1,
            "reporter": {"name": f"{given} {family}",
                         "email": f"{given.lower()}.{family.lower()}{self.serial}"
                                  f"@{rng.choice(DOMAINS)}",
                         "phone": f"08{rng.randint(11, 59)}{rng.randint(10**7, 10**8 - 1)}",
                         "language": "en" if rng.random() < 0.05 else "id"},
        }


# -- what arrives ----------------------------------------------------------------------------
class Ledger:
    """Every accepted report with the time it was due, and every email and webhook that
    arrived, on this process's perf_counter clock."""

    def __init__(self):
        self.lock = threading.Lock()
        self.sent: dict[str, float] = {}
        self.phase: dict[str, str] = {}
        self.order: list[str] = []
        self.emails: dict[str, list[tuple[float, str, str]]] = {}
        # (arrival, event, signature valid, X-Lapor-Delivery)
        self.hooks: dict[str, list[tuple[float, str, bool, str]]] = {}
        self.done: dict[str, float] = {}
        self.strays: list[str] = []
        self.posting = 0  # POSTs due and not answered yet: part of the backlog

    def post_due(self, change: int) -> None:
        with self.lock:
            self.posting += change

    def accepted(self, tracking_id: str, due: float, phase: str) -> None:
        with self.lock:
            self.posting -= 1
            self.sent[tracking_id] = due
            self.phase[tracking_id] = phase
            self.order.append(tracking_id)
            self._check(tracking_id)

    def email(self, tracking_id: str, at: float, kind: str, message_id: str) -> None:
        with self.lock:
            self.emails.setdefault(tracking_id, []).append((at, kind, message_id))
            self._check(tracking_id)

    def hook(self, tracking_id: str, at: float, event: str, signed: bool,
             delivery_id: str = "") -> None:
        with self.lock:
            self.hooks.setdefault(tracking_id, []).append((at, event, signed, delivery_id))
            self._check(tracking_id)

    def _check(self, tracking_id: str) -> None:
        if tracking_id in self.done or tracking_id not in self.sent:
            return
        emails = self.emails.get(tracking_id)
        if not emails:
            return
        if emails[0][1] == "dispatched" and not self.hooks.get(tracking_id):
            return
        self.done[tracking_id] = max([emails[0][0]] + [h[0] for h in
                                                       self.hooks.get(tracking_id, [])[:1]])

    def backlog(self) -> int:
        with self.lock:
            return self.posting + len(self.sent) - len(self.done)

    def random_sent(self, rng: random.Random) -> str | None:
        with self.lock:
            return rng.choice(self.order) if self.order else None


def latencies(ledger: Ledger, phase: str) -> tuple[list[float], list[float]]:
    """(POST → the agency's webhook, POST → the reporter's first email), in seconds, of the
    reports offered in `phase`; a webhook only for a report dispatched at once. The caller
    holds the ledger's lock or is done with the run."""
    hooks, emails = [], []
    for tracking_id, offered in ledger.phase.items():
        if offered != phase:
            continue
        due = ledger.sent[tracking_id]
        first = ledger.emails.get(tracking_id)
        if first and first[0][1] == "dispatched" and ledger.hooks.get(tracking_id):
            hooks.append(ledger.hooks[tracking_id][0][0] - due)
        if first:
            emails.append(first[0][0] - due)
    return hooks, emails


class TimedInbox:
    """aiosmtpd handler: the tracking id and kind of each email, parsed from its headers."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        self.parser = BytesHeaderParser(policy=email_policy.default)
        self.messages = []  # the harness's Inbox interface; nothing kept here

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        at = time.perf_counter()
        headers = self.parser.parsebytes(envelope.content)
        subject = str(headers["Subject"] or "")
        found = TRACKING_ID.search(subject)
        kind = next((k for k, words in EMAIL_KINDS if any(w in subject for w in words)),
                    "other")
        if found:
            self.ledger.email(found.group(), at, kind, str(headers["Message-ID"] or ""))
        else:
            self.ledger.strays.append(subject)
        return "250 OK"


class TimedAgency:
    """Every agency's webhook endpoint (the default one): tracking id, event, signature."""

    def __init__(self, ledger: Ledger, secret: bytes):
        from services.notify.signing import verify

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # connections kept open, as agencies' servers do

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                at = time.perf_counter()
                try:
                    payload = json.loads(body)
                    ledger.hook(payload["tracking_id"], at, payload.get("event", ""),
                                verify(secret, dict(self.headers), body),
                                self.headers.get("X-Lapor-Delivery", ""))
                except (ValueError, KeyError):
                    ledger.strays.append(body[:80].decode(errors="replace"))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.requests = []  # the harness's AgencyReceiver interface; nothing kept here
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/lapor"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# -- the open-loop client --------------------------------------------------------------------
class Client:
    """One keep-alive connection; a request that finds the connection closed by the server's
    idle timeout is sent again on a new one (POSTs carry an Idempotency-Key)."""

    def __init__(self, port: int):
        self.port = port
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, bytes]:
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                response = self.conn.getresponse()
                return response.status, response.read()
            except (ConnectionError, http.client.RemoteDisconnected,
                    http.client.CannotSendRequest, http.client.BadStatusLine):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


class OpenLoop:
    """Requests leave at Poisson times from a scheduler; CLIENT_THREADS workers send them.
    A job is called as job(client, due) and returns nothing; it records what it needs.
    Given several ports, the workers are dealt out over them in turn (each job goes to
    whichever worker is free, as a least-connections balancer would send it)."""

    def __init__(self, port: int | Sequence[int], threads: int = CLIENT_THREADS):
        self.jobs: queue.Queue = queue.Queue()
        self.errors: list[str] = []
        self.lag: list[float] = []
        ports = [port] if isinstance(port, int) else list(port)
        self.workers = [threading.Thread(target=self._work,
                                         args=(Client(ports[i % len(ports)]),), daemon=True)
                        for i in range(threads)]
        for worker in self.workers:
            worker.start()

    def _work(self, client: Client) -> None:
        while True:
            item = self.jobs.get()
            if item is None:
                return
            due, job = item
            self.lag.append(time.perf_counter() - due)
            try:
                job(client, due)
            except Exception as exc:  # noqa: BLE001 - counted and shown, the load goes on
                self.errors.append(repr(exc))
            finally:
                self.jobs.task_done()

    def run(self, rate: float, seconds: float, make_job, rng: random.Random) -> None:
        """Offers `rate` requests/s for `seconds`; returns when the last one is due (answers
        may still be on their way)."""
        start = time.perf_counter()
        due = start
        end = start + seconds
        while True:
            due += rng.expovariate(rate)
            if due >= end:
                break
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            self.jobs.put((due, make_job()))
        pause = end - time.perf_counter()
        if pause > 0:
            time.sleep(pause)

    def wait(self) -> None:
        self.jobs.join()

    def close(self) -> None:
        for _ in self.workers:
            self.jobs.put(None)


def _pct(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _ms(values: list[float]) -> str:
    if not values:
        return "none"
    return f"p50 {_pct(values, 50) * 1000:,.0f} ms, p99 {_pct(values, 99) * 1000:,.0f} ms"


# -- the stack --------------------------------------------------------------------------------
_NOT_SETTINGS = ("LAPOR_TEST_", "LAPOR_SHARED_DATA", "LAPOR_REQUIRE_SHARED_DATA")


def caller_settings() -> dict[str, str]:
    """The services' settings in the caller's environment (`INTAKE_OUTBOX_GATHER=0.01 python
    -m bench.pipeline`). The e2e Stack leaves them out so that tests run on the defaults; a
    bench passes them on, except where the Stack or the bench sets its own (databases, ports,
    the vhost, rate limits), so that a setting can be measured by naming it."""
    return {k: v for k, v in os.environ.items()
            if k.startswith(("INTAKE_", "ROUTING_", "NOTIFY_", "LAPOR_"))
            and not k.startswith(_NOT_SETTINGS)}


def say_caller_settings(bench: str) -> None:
    """Prints the caller's settings the services run with, when there are any: a figure
    measured with them is not the defaults' figure."""
    settings = caller_settings()
    if settings:
        print(f"{bench}: the services run with the caller's "
              + ", ".join(f"{k}={v}" for k, v in sorted(settings.items())), flush=True)


def _stack_class():
    from tests.e2e.harness import Stack

    class PipelineStack(Stack):
        """The e2e Stack with the national directory, the given databases, citizen rate
        limits out of the way (every request comes from one address) and routing's SLA job
        at its production interval."""

        overrides: dict

        def env(self, service: str) -> dict:
            env = super().env(service)
            env.update({k: v for k, v in caller_settings().items() if k not in env})
            env.update(self.overrides)
            return env

        def prepare(self, directory: Path) -> None:
            importing = subprocess.Popen(
                [sys.executable, "-m", "services.intake", "import-regions", str(REGIONS_CSV)],
                env=self.env("intake"), cwd=ROOT, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE)
            self.run("routing", "import-regions", str(REGIONS_CSV))
            self.run("routing", "directory", "load", str(directory))
            self.run("routing", "accounts", "ensure-service", "intake", "--token-file",
                     str(self.intake_token_file))
            self.run("notify", "webhooks", "set", "*", self.agency.url, "--allow-http",
                     "--secret-file", str(self.workdir / "secret"))
            _, err = importing.communicate(timeout=120)
            if importing.returncode:
                raise SystemExit(f"intake import-regions failed: {err.decode()[-2000:]}")

    return PipelineStack


def _loadavg() -> float:
    """The machine's 1-minute load average: what else is running shows in the figures."""
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# -- the pipeline -----------------------------------------------------------------------------
class Pipeline:
    """The traffic against the stack's intake, or against every port of `intake_ports`
    (several replicas); each step of the sustained-rate search lasts `step_seconds`."""

    def __init__(self, stack, ledger: Ledger, traffic: Traffic, rng: random.Random,
                 intake_ports: Sequence[int] | None = None):
        self.stack, self.ledger, self.traffic, self.rng = stack, ledger, traffic, rng
        self.read_rng = random.Random(rng.random())  # the workers' (reads of earlier ids)
        self.loop = OpenLoop(intake_ports or stack.ports["intake"])
        self.step_seconds = STEP_SECONDS
        self.rejected: list[str] = []
        self.post_latency: dict[str, list[float]] = {}
        self.read_latency: dict[str, list[float]] = {}
        self.read_status: Counter = Counter()
        self.phase = "warmup"

    def _post_job(self):
        body = json.dumps(self.traffic.report()).encode()
        phase = self.phase
        self.ledger.post_due(+1)

        def job(client: Client, due: float) -> None:
            try:
                status, answer = client.request("POST", "/api/v1/reports", body, {
                    "Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())})
            except Exception:
                self.ledger.post_due(-1)
                raise
            took = time.perf_counter() - due
            if status != 201:
                self.ledger.post_due(-1)
                self.rejected.append(f"{status} {answer[:200]!r}")
                return
            self.ledger.accepted(json.loads(answer)["tracking_id"], due, phase)
            self.post_latency.setdefault(phase, []).append(took)

        return job

    def _read_job(self):
        phase = self.phase

        def job(client: Client, due: float) -> None:
            tracking_id = self.ledger.random_sent(self.read_rng)
            if tracking_id is None:
                return
            status, _ = client.request("GET", f"/api/v1/reports/{tracking_id}")
            self.read_status[status] += 1
            self.read_latency.setdefault(phase, []).append(time.perf_counter() - due)

        return job

    def _make_job(self):
        return self._read_job() if self.rng.random() < READ_SHARE else self._post_job()

    def offer(self, rate: float, seconds: float, phase: str) -> list[tuple[float, int]]:
        """Offers `rate` reports/s (plus the reads) and samples the backlog 4 times a
        second while doing so."""
        self.phase = phase
        samples: list[tuple[float, int]] = []
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                samples.append((time.perf_counter(), self.ledger.backlog()))
                stop.wait(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        self.loop.run(rate / (1 - READ_SHARE), seconds, self._make_job, self.rng)
        stop.set()
        sampler.join()
        return samples

    def drain(self, timeout: float) -> int:
        self.loop.wait()
        deadline = time.monotonic() + timeout
        while (left := self.ledger.backlog()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return left

    def step(self, rate: float) -> tuple[bool, str]:
        """Whether the backlog held over the step's second half. It grew when both its
        least-squares slope there exceeds a tenth of the rate (at least 1 report/s) and it
        ends above the level it had in the first quarter of that half by more than twice
        that level's Poisson spread (at least 3), which a steady backlog's noise rarely does.
        A refused request fails the step too."""
        refused = len(self.rejected) + len(self.loop.errors)
        samples = self.offer(rate, self.step_seconds, f"step {rate:g}")
        half = [(t, b) for t, b in samples if t >= samples[0][0] + self.step_seconds / 2]
        mean_t = statistics.fmean(t for t, _ in half)
        mean_b = statistics.fmean(b for _, b in half)
        slope = (sum((t - mean_t) * (b - mean_b) for t, b in half)
                 / sum((t - mean_t) ** 2 for t, _ in half))
        level = statistics.fmean(b for _, b in half[:max(1, len(half) // 4)])
        last = half[-1][1]
        grew = slope > max(1.0, 0.1 * rate) and last - level > max(3.0, 2 * (level + 1) ** 0.5)
        ok = not grew and len(self.rejected) + len(self.loop.errors) == refused
        return ok, (f"{rate:g}/s {'held' if ok else 'grew'} "
                    f"(backlog {level:.0f} → {last}, {slope:+.1f}/s)")

    def sustained(self, start: float = START_RATE) -> tuple[float, list[str]]:
        """The highest rate whose step held, by doubling from `start` and then bisecting
        (geometrically) between the highest held and the lowest that grew. A step that grew
        is offered once more after the backlog drained, and counts as grown only if it
        grows again: one stall of a couple of seconds (seen once, at 5/s, where every
        later run held 80/s) would otherwise end the search at a tenth of the rate."""
        rate, held, grew, notes = start, 0.0, None, []
        for _ in range(MAX_STEPS):
            ok, note = self.step(rate)
            if not ok and not self.rejected and not self.loop.errors:
                self.drain(timeout=60)
                ok, again = self.step(rate)
                note = f"{note}, then {again}"
            notes.append(note)
            if ok:
                held = rate
            else:
                grew = rate
                self.drain(timeout=60)
            if grew is None:
                rate *= 2
            elif held == 0:
                rate = grew / 2
            elif grew / held <= RESOLUTION:
                break
            else:
                rate = round((held * grew) ** 0.5, 1)
        return held, notes


def _counts(ledger: Ledger, tickets: dict[str, tuple[str, str]]) -> dict:
    """Loss and duplicates over every report of the run, against routing's tickets."""
    sent = set(ledger.sent)
    out = Counter()
    out["accepted"] = len(sent)
    out["tickets"] = len(sent & set(tickets))
    out["extra tickets"] = len(set(tickets) - sent)
    for tracking_id in sent:
        emails = ledger.emails.get(tracking_id, [])
        hooks = ledger.hooks.get(tracking_id, [])
        state, duplicate_of = tickets.get(tracking_id, ("", ""))
        if not emails:
            out["no email"] += 1
        else:
            out[f"email {emails[0][1]}"] += 1
        # A duplicate is the same notice arriving again (its Message-ID, its delivery id);
        # a second notice about the same report (held, then linked to an open
        # near-identical one) is counted apart.
        notices = len({message_id for _, _, message_id in emails})
        out["duplicate emails"] += len(emails) - notices
        out["later notices"] += max(0, notices - 1)
        out["duplicate webhooks"] += len(hooks) - len({h[3] for h in hooks})
        dispatched = state == "DISPATCHED" and not duplicate_of
        out["dispatched"] += dispatched
        if dispatched and not hooks:
            out["no webhook"] += 1
        if hooks and not dispatched:
            out["webhook for an undispatched ticket"] += 1
        out["bad signatures"] += sum(not h[2] for h in hooks)
        if tracking_id not in tickets:
            out["no ticket"] += 1
    out["emails for unknown ids"] = sum(len(v) for k, v in ledger.emails.items()
                                        if k not in sent)
    out["webhooks for unknown ids"] = sum(len(v) for k, v in ledger.hooks.items()
                                          if k not in sent)
    out["unreadable arrivals"] = len(ledger.strays)
    return out


def _tickets(database_url: str) -> dict[str, tuple[str, str]]:
    import sqlalchemy as sa

    from services.infra import db

    engine = db.make_engine(database_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT tracking_id, state, duplicate_of FROM tickets")).all()
    finally:
        engine.dispose()
    return {r[0]: (r[1], r[2]) for r in rows}


def stack_overrides(urls: dict[str, str], model_dir: Path) -> dict[str, str]:
    """PipelineStack's environment: the databases, the classifier, citizen rate limits out of
    the way and the SLA job at its production interval."""
    return {
        "INTAKE_DATABASE_URL": urls["intake"], "ROUTING_DATABASE_URL": urls["routing"],
        "NOTIFY_DATABASE_URL": urls["notify"], "ROUTING_MODEL_DIR": str(model_dir),
        "INTAKE_RATE_LIMIT_SUBMIT": "1000000 per minute",
        "INTAKE_RATE_LIMIT_READ": "1000000 per minute",
        "INTAKE_RATE_LIMIT_LOOKUP_FAILURES": "1000000 per minute",
        "ROUTING_SLA_INTERVAL": "60",
    }


@contextlib.contextmanager
def pipeline_running(urls: dict[str, str], amqp_url: str, workdir: Path, directory: Path,
                     model_dir: Path, ledger: Ledger, rng: random.Random):
    """(stack, Pipeline): the three services started on the given databases with the
    national directory, warmed up by a few reports; stopped when the block ends."""
    from tests.e2e.harness import SECRET

    stack = _stack_class()(amqp_url, workdir, inbox=TimedInbox(ledger),
                           agency=TimedAgency(ledger, SECRET))
    stack.overrides = stack_overrides(urls, model_dir)
    pipeline = None
    try:
        stack.prepare(directory)
        for service in ("routing", "notify", "intake"):
            stack.start(service)
        pipeline = Pipeline(stack, ledger, Traffic(rng), rng)
        # A few reports first: every process has loaded what it loads lazily.
        pipeline.offer(3, 2, "warmup")
        pipeline.drain(timeout=30)
        yield stack, pipeline
    finally:
        if pipeline is not None:
            pipeline.loop.close()
        stack.close()


def measure_pipeline(label: str, urls: dict[str, str], amqp_url: str, workdir: Path,
                     directory: Path, model_dir: Path) -> dict:
    load_start = _loadavg()
    ledger = Ledger()
    rng = random.Random(SEED)
    with pipeline_running(urls, amqp_url, workdir, directory, model_dir, ledger,
                          rng) as (stack, pipeline):
        warm = {s: _peak_rss_mb(stack.procs[s].pid) for s in SERVICES}

        rate, steps = pipeline.sustained()
        drain_started = time.perf_counter()
        before = pipeline.drain(timeout=60)
        drained = time.perf_counter() - drain_started
        half = max(rate / 2, 1.0)
        samples = pipeline.offer(half, SECONDS, "half")
        left = pipeline.drain(timeout=60)
        time.sleep(2)  # room for a late duplicate to arrive
        rss = {s: _peak_rss_mb(stack.procs[s].pid) for s in SERVICES}
        dead = [s for s in SERVICES if stack.procs[s].poll() is not None]
        tickets = _tickets(urls["routing"])

    with ledger.lock:
        in_half = [t for t, p in ledger.phase.items() if p == "half"]
        hook_lat, email_lat = latencies(ledger, "half")
        kinds = Counter(ledger.emails[t][0][1] for t in in_half if ledger.emails.get(t))
        counts = _counts(ledger, tickets)
    lost = (counts["no email"] + counts["no ticket"] + counts["no webhook"])
    duplicates = counts["duplicate emails"] + counts["duplicate webhooks"]
    posts = pipeline.post_latency.get("half", [])
    reads = pipeline.read_latency.get("half", [])
    return {"label": label, "rate": rate, "steps": steps, "half": half, "left": left,
            "before": before, "drained": drained, "peak": max(b for _, b in samples),
            "load": (load_start, _loadavg()),
            "hook": hook_lat, "email": email_lat, "kinds": kinds, "in_half": len(in_half),
            "counts": counts, "lost": lost, "duplicates": duplicates, "rss": rss,
            "dead": dead, "warm": warm, "posts": posts, "reads": reads,
            "read_status": pipeline.read_status,
            "rejected": pipeline.rejected, "errors": pipeline.loop.errors,
            "lag": pipeline.loop.lag}


# -- the bare chain ---------------------------------------------------------------------------
def serve_chain(port: int, amqp_url: str, queue_name: str) -> None:
    """waitress + Flask with intake's server settings: parse the JSON, publish it with
    confirms into a quorum queue, answer 201. One channel per request thread."""
    import pika
    from flask import Flask, jsonify, request

    from services.intake.server import HttpServer, ServerSettings

    local = threading.local()

    def channel():
        if getattr(local, "channel", None) is None:
            connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
            local.channel = connection.channel()
            local.channel.confirm_delivery()
        return local.channel

    setup = pika.BlockingConnection(pika.URLParameters(amqp_url))
    setup.channel().queue_declare(queue_name, durable=True,
                                  arguments={"x-queue-type": "quorum"})
    setup.close()
    app = Flask("chain")

    @app.post("/chain")
    def publish():
        data = request.get_json()
        channel().basic_publish("", queue_name, json.dumps(data).encode(), mandatory=True,
                                properties=pika.BasicProperties(
                                    delivery_mode=2, message_id=request.headers["X-Id"]))
        return jsonify(status="accepted"), 201

    @app.get("/readyz")
    def ready():
        return jsonify(status="ok")

    HttpServer(app, ServerSettings(port=port)).start()
    threading.Event().wait()


class ChainConsumer:
    """Consumes the chain's queue and acks each message, stamping its arrival."""

    def __init__(self, amqp_url: str, queue_name: str):
        import pika

        self.arrived: dict[str, list[float]] = {}
        self.lock = threading.Lock()
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.channel = self.connection.channel()
        self.channel.queue_declare(queue_name, durable=True,
                                   arguments={"x-queue-type": "quorum"})
        self.channel.basic_qos(prefetch_count=100)
        self.channel.basic_consume(queue_name, self._on_message)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _on_message(self, channel, method, properties, body):
        at = time.perf_counter()
        with self.lock:
            self.arrived.setdefault(properties.message_id, []).append(at)
        channel.basic_ack(method.delivery_tag)

    def _run(self):
        while not self.stopping:
            self.connection.process_data_events(time_limit=0.2)

    def count(self) -> int:
        with self.lock:
            return len(self.arrived)

    def close(self):
        self.stopping = True
        self.thread.join()
        self.connection.close()


class Chain:
    """The bare chain running: its endpoint's port and process, the consumer, and `post`, a
    client's job that sends one of the traffic's bodies and notes when it was due (`sent`,
    by message id) or how it failed (`failures`)."""

    def __init__(self, port: int, proc: subprocess.Popen, consumer: ChainConsumer,
                 traffic: Traffic):
        self.port, self.proc, self.consumer = port, proc, consumer
        self.bodies = [json.dumps(traffic.report()).encode() for _ in range(500)]
        self.sent: dict[str, float] = {}
        self.failures: list[str] = []

    def post(self, client: Client, due: float) -> None:
        message_id = uuid.uuid4().hex
        self.sent[message_id] = due
        status, answer = client.request("POST", "/chain", self.bodies[len(self.sent) % 500], {
            "Content-Type": "application/json", "X-Id": message_id})
        if status != 201:
            self.failures.append(f"{status} {answer[:100]!r}")


@contextlib.contextmanager
def chain_running(amqp_url: str, workdir: Path, traffic: Traffic):
    """The chain's endpoint started as its own process on a queue of its own, with the
    consumer in this process; both stopped when the block ends."""
    from tests.conftest import free_port

    queue_name = f"bench.chain.{uuid.uuid4().hex[:8]}"
    port = free_port()
    log = workdir / "chain.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bench.pipeline", "--chain", str(port),
                                 amqp_url, queue_name], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT)
    consumer = None
    try:
        wait_ready(port, proc, log, "chain endpoint")
        consumer = ChainConsumer(amqp_url, queue_name)
        yield Chain(port, proc, consumer, traffic)
    finally:
        if consumer is not None:
            consumer.close()
        stop(proc)


def measure_chain(amqp_url: str, workdir: Path, traffic: Traffic) -> dict:
    with chain_running(amqp_url, workdir, traffic) as chain:
        port, consumer, sent, failures, post = (chain.port, chain.consumer, chain.sent,
                                                chain.failures, chain.post)
        # Closed loop: CHAIN_CONNECTIONS clients posting as fast as answers come.
        stop_at = time.perf_counter() + 1 + STEP_SECONDS
        measure_from = stop_at - STEP_SECONDS

        def closed():
            client = Client(port)
            while (now := time.perf_counter()) < stop_at:
                post(client, now)

        threads = [threading.Thread(target=closed) for _ in range(CHAIN_CONNECTIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.monotonic() + 30
        while consumer.count() < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        with consumer.lock:
            consumed = sum(1 for arrivals in consumer.arrived.values()
                           if measure_from <= arrivals[0] < stop_at)
        rate = consumed / STEP_SECONDS

        # Open loop at half that rate: POST to consume.
        first = set(sent)
        loop = OpenLoop(port)
        loop.run(rate / 2, STEP_SECONDS, lambda: post, random.Random(SEED))
        loop.wait()
        loop.close()
        deadline = time.monotonic() + 30
        while consumer.count() < len(sent) and time.monotonic() < deadline:
            time.sleep(0.05)
        with consumer.lock:
            latencies = [consumer.arrived[m][0] - due for m, due in sent.items()
                         if m not in first and m in consumer.arrived]
            lost = sum(1 for m in sent if m not in consumer.arrived)
            duplicates = sum(len(a) - 1 for a in consumer.arrived.values())
        failures += loop.errors
    return {"rate": rate, "half": rate / 2, "latencies": latencies, "lost": lost,
            "duplicates": duplicates, "failures": failures}


# -- report -----------------------------------------------------------------------------------
def _print(result: dict, chain: dict) -> None:
    label = f"pipeline ({result['label']})"
    hook, email = result["hook"], result["email"]
    print(f"{label}: sustained {result['rate']:g} reports/s (+{READ_SHARE:.0%} status reads; "
          f"{STEP_SECONDS:g} s steps: {', '.join(result['steps'])}; then drained in "
          f"{result['drained']:.1f} s, {result['before']} left; load average "
          f"{result['load'][0]:.1f} at the start, {result['load'][1]:.1f} at the end on "
          f"{os.cpu_count()} cores)", flush=True)
    kinds = result["kinds"]
    print(f"{label}: at {result['half']:g}/s for {SECONDS:g} s ({result['in_half']} reports): "
          f"POST → agency webhook {_ms(hook)} ({len(hook)} dispatched); "
          f"POST → reporter email {_ms(email)} ({len(email)}: {kinds['dispatched']} "
          f"dispatched, {kinds['received']} held in triage, {kinds['linked']} linked as "
          f"duplicates); POST answered {_ms(result['posts'])}; status reads "
          f"{_ms(result['reads'])} ({dict(result['read_status'])}); backlog peak "
          f"{result['peak']}, {result['left']} left after 60 s", flush=True)
    c = result["counts"]
    detail = ", ".join(f"{k} {v}" for k, v in sorted(c.items()) if v and k not in (
        "accepted", "tickets", "dispatched") and not k.startswith("email "))
    print(f"{label}: {result['lost']} lost, {result['duplicates']} duplicates over the run "
          f"({c['accepted']} accepted: {c['tickets']} tickets in routing, "
          f"{c['email dispatched'] + c['email received'] + c['email linked']} first reporter "
          f"emails ({c['email dispatched']} dispatched, {c['email received']} received, "
          f"{c['email linked']} linked), {c['dispatched']} dispatched tickets; "
          f"{detail or 'nothing else'}); {len(result['rejected'])} POSTs refused, "
          f"{len(result['errors'])} client errors", flush=True)
    if result["rejected"] or result["errors"]:
        print(f"{label}: e.g. {(result['rejected'] + result['errors'])[:3]}", flush=True)
    rss = result["rss"]
    print(f"{label}: peak RSS " + ", ".join(
        f"{s} {rss[s]:.0f} MB ({result['warm'][s]:.0f} MB after start and warm-up)"
        for s in SERVICES) + " (target 150 MB each)"
          + (f"; DIED during the run: {', '.join(result['dead'])}" if result["dead"] else ""),
          flush=True)
    lat = chain["latencies"]
    share = result["rate"] / chain["rate"] if chain["rate"] else float("nan")
    p99 = _pct(hook, 99) if hook else float("nan")
    print(f"{label}: bare chain (waitress + Flask → confirmed publish to a quorum queue → "
          f"consume + ack) {chain['rate']:,.0f}/s closed loop at {CHAIN_CONNECTIONS} "
          f"connections; at {chain['half']:,.0f}/s POST → consumed {_ms(lat)}; "
          f"{chain['lost']} lost, {chain['duplicates']} duplicates, "
          f"{len(chain['failures'])} failures", flush=True)
    print(f"{label}: {share:.0%} of the chain's rate (target 30%); p99 POST → agency webhook "
          f"{p99 * 1000:,.0f} ms at half the sustained rate (target 1 s)", flush=True)


# -- main -------------------------------------------------------------------------------------
def _prepare_shared(workdir: Path) -> tuple[Path, Path]:
    """The national directory file and the classifier, once for both databases."""
    directory, model = workdir / "directory-national.yaml", workdir / "model"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROUTING_", "LAPOR_"))}
    env.update({"ROUTING_DATABASE_URL": f"sqlite:///{workdir / 'scratch.db'}",
                "ROUTING_MODEL_DIR": str(model), "LAPOR_LOG_LEVEL": "WARNING"})
    for args in (["directory", "generate", "--regions", str(REGIONS_CSV), "--out",
                  str(directory)], ["model", "build", "--no-corrections"]):
        subprocess.run([sys.executable, "-m", "services.routing", *args], check=True, env=env,
                       cwd=ROOT, capture_output=True, timeout=300)
    return directory, model


def _one(label: str, urls: dict, amqp_url: str | None, workdir: Path, directory: Path,
         model: Path) -> None:
    from bench import vacuum
    from bench.__main__ import _throwaway_vhost

    postgres = label == "PostgreSQL"
    with _throwaway_vhost(amqp_url) as url:
        chain = measure_chain(url, workdir, Traffic(random.Random(SEED + 1)))
        with (vacuum.stand_in(list(urls.values())) if postgres
              else contextlib.nullcontext()) as stand_in:
            result = measure_pipeline(label, urls, url, workdir, directory, model)
        _print(result, chain)
        if postgres:
            _print_vacuum(urls, stand_in)


def _print_vacuum(urls: dict, stand_in) -> None:
    """Who vacuumed (the server, the bench in its place, or nobody) and the dead row versions
    the run left in its databases' tables: unvacuumed, the outboxes' and the deliveries' old
    versions pile up through the search's steps and slow the half-rate run that follows
    (docs/performance.md, 7 December 2026, 21–24 h; bench/vacuum.py)."""
    import psycopg

    dead = {}
    for service, url in urls.items():
        with psycopg.connect(url, connect_timeout=3) as conn:
            dead[service] = conn.execute(
                "SELECT coalesce(sum(n_dead_tup), 0), coalesce(sum(n_live_tup), 0) "
                "FROM pg_stat_user_tables").fetchone()
    counts = ", ".join(f"{s} {d:,} dead / {live:,} live" for s, (d, live) in dead.items())
    print(f"pipeline (PostgreSQL): {stand_in.summary()}; row versions in the services' tables "
          f"after the run: {counts}", flush=True)


def shared_data_missing(bench: str) -> bool:
    """True, having said so, when the region list or the population file is absent."""
    if REGIONS_CSV.exists() and POPULATION_CSV.exists():
        return False
    print(f"{bench}: skipped, the region list and population are not in {SHARED_DATA} "
          "(set LAPOR_SHARED_DATA)")
    return True


def main(amqp_url: str | None = None) -> None:
    """Both databases; with `amqp_url` both run on that vhost, without it each on its own
    throwaway vhost."""
    if shared_data_missing("pipeline"):
        return
    say_caller_settings("pipeline")
    with tempfile.TemporaryDirectory(prefix="lapor-pipeline-") as tmp:
        root = Path(tmp)
        directory, model = _prepare_shared(root)
        if "sqlite" in DATABASES:
            sqlite_dir = root / "sqlite"
            sqlite_dir.mkdir()
            _one("SQLite", {s: f"sqlite:///{sqlite_dir / f'{s}.db'}" for s in SERVICES},
                 amqp_url, sqlite_dir, directory, model)
        if "postgresql" not in DATABASES:
            return
        suffix = uuid.uuid4().hex[:8]
        names = {s: f"bench_pipeline_{s}_{suffix}" for s in SERVICES}
        with postgres_databases("pipeline", PG_DSN, list(names.values())) as urls:
            if urls is None:
                return
            pg_dir = root / "postgresql"
            pg_dir.mkdir()
            _one("PostgreSQL", dict(zip(names, urls, strict=True)), amqp_url, pg_dir,
                 directory, model)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--chain":
        serve_chain(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        main()
