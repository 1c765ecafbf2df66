"""Scale-out: the pipeline with 1 and with 2 replicas of each service, on PostgreSQL.

bench/pipeline.py's national traffic (population-weighted regions, the three kinds, texts
from the corpus, one request in ten a status read, open loop) against the three services
started as processes, first one of each, then two of each: every replica on its own ports,
the replicas of a service sharing that service's PostgreSQL database (fresh databases for
each configuration, as tests/e2e/replicas.py runs them), replica i of intake talking to
replica i of routing, the load spread over both intakes (the client's workers are dealt out
over them; a request goes to whichever worker is free). The sustained rate is found as the
pipeline bench finds it (steps of rising offered rate, a step holds when the backlog from
POST to the reporter's email and the agency's webhook does not grow), each step lasting
BENCH_SCALE_SECONDS (default 10 s, as long as the pipeline bench's own steps; its 60 s
latency run at half the rate is left out). Both configurations run side by side, each on
its own vhost and databases, and take their steps in turn (1 replica, 2 replicas, 1, ...),
each step drained before the other's begins: whatever else runs on the machine changes
over minutes, and both searches see the same of it (the idle configuration burns a few
percent of a core meanwhile, counted with the rest of the machine). Given an `amqp_url`
(one vhost cannot hold two stacks), they run one after the other instead.

Where the bottleneck is, for every step: the CPU seconds each process consumed while the
step's requests were offered (utime + stime from /proc/<pid>/stat, as a share of one core):
each service replica, this process (the load generator, the SMTP inbox and the agencies'
webhook receiver), PostgreSQL's backends serving this run's databases, the RabbitMQ node,
and the rest of the machine (whatever else runs: the figures are noisy when it is busy);
and the backlogs sampled once a second: messages ready and unacknowledged per queue of the
vhost (RabbitMQ management API, which refreshes its counts every 5 s), notify's pending
deliveries and the unsent outbox rows of intake and routing (their databases, exact). Both
are printed for the step at the sustained rate and for the lowest step above it that grew.

Then the loss and duplicate counts over every report of each configuration, as the pipeline
bench counts them. Prints, never asserts.

    python -m bench.scale_out
    BENCH_SCALE_SECONDS=20 python -m bench.scale_out    # steadier steps (default 10 s each)
"""

from __future__ import annotations

import contextlib
import inspect
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import Counter
from pathlib import Path

import requests

from bench import pipeline, vacuum
from bench.pipeline import (
    PG_DSN,
    ROOT,
    SEED,
    START_RATE,
    Ledger,
    Pipeline,
    TimedAgency,
    TimedInbox,
    Traffic,
    shared_data_missing,
)
from bench.settings import env_float

# Each step of the search for the sustained rate: the pipeline bench's default step.
STEP_SECONDS = env_float("BENCH_SCALE_SECONDS", 10, minimum=1)
MANAGEMENT = os.environ.get("BENCH_RABBITMQ_MANAGEMENT", "http://127.0.0.1:15672/api")
SERVICES = pipeline.SERVICES
CLK_TCK = os.sysconf("SC_CLK_TCK")
IDLE_SECONDS = 5.0
# The queues the services consume, and what one replica holds of each at most (its handler
# works one message at a time; the rest of the prefetch waits in hand).
CONSUMED = ("routing.events", "notify.events", "intake.read-model")
LABEL = "scale-out (PostgreSQL)"


# -- the replicas -----------------------------------------------------------------------------
def _replica_stack_class():
    """bench/pipeline.py's PipelineStack with `count` replicas of each service. Replica 0
    uses the Stack's own ports; each further replica gets its own, and talks to the routing
    replica of its number. Processes are keyed "<service>-<i>"."""
    from tests.conftest import free_port

    base = pipeline._stack_class()

    class ReplicaStack(base):
        count = 1
        replica_ports: dict[int, dict[str, int]]

        def add_replicas(self, count: int) -> None:
            self.count = count
            self.replica_ports = {0: self.ports}
            for i in range(1, count):
                self.replica_ports[i] = {name: free_port() for name in (
                    "intake", "intake_metrics", "grpc", "routing_metrics", "notify_metrics")}

        def env(self, service: str, i: int = 0) -> dict:
            env = super().env(service)
            if i:
                ports = self.replica_ports[i]
                env.update({
                    "INTAKE_PORT": str(ports["intake"]),
                    "INTAKE_METRICS_PORT": str(ports["intake_metrics"]),
                    "ROUTING_LISTEN": f"127.0.0.1:{ports['grpc']}",
                    "ROUTING_ADDR": f"127.0.0.1:{ports['grpc']}",
                    "ROUTING_METRICS_PORT": str(ports["routing_metrics"]),
                    "NOTIFY_METRICS_PORT": str(ports["notify_metrics"]),
                })
            return env

        def intake_ports(self) -> list[int]:
            return [self.replica_ports[i]["intake"] for i in range(self.count)]

        def _ready(self, service: str, i: int) -> bool:
            ports = self.replica_ports[i]
            url = {"intake": f"http://127.0.0.1:{ports['intake']}/readyz",
                   "routing": f"http://127.0.0.1:{ports['routing_metrics']}/readyz",
                   "notify": f"http://127.0.0.1:{ports['notify_metrics']}/readyz"}[service]
            try:
                return requests.get(url, timeout=1).status_code == 200
            except requests.RequestException:
                return False

        def start_all(self, timeout: float = 90) -> None:
            """Every replica of every service at once (the databases are migrated already
            by prepare()'s commands), then each waited for."""
            for service in ("routing", "notify", "intake"):
                for i in range(self.count):
                    with open(self.workdir / f"{service}-{i}.log", "ab") as log:
                        self.procs[f"{service}-{i}"] = subprocess.Popen(
                            [sys.executable, "-m", f"services.{service}"],
                            env=self.env(service, i), cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT)
            deadline = time.monotonic() + timeout
            for service in ("routing", "notify", "intake"):
                for i in range(self.count):
                    key = f"{service}-{i}"
                    while not self._ready(service, i):
                        if self.procs[key].poll() is not None or time.monotonic() > deadline:
                            log = (self.workdir / f"{key}.log").read_text(errors="replace")
                            raise SystemExit(f"{key} did not start:\n{log[-3000:]}")
                        time.sleep(0.2)

        def close(self) -> None:
            """SIGTERM to every replica at once, then each waited for."""
            from tests.e2e.harness import stop_all

            procs, self.procs = self.procs, {}
            stop_all(procs)
            self.smtp.stop()
            self.agency.close()

    return ReplicaStack


# -- CPU per process --------------------------------------------------------------------------
def _ticks(pid: int | str) -> int:
    """utime + stime of a process (all its threads), in clock ticks; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _machine_busy() -> int:
    """Ticks every core spent not idle (nor waiting for I/O) since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return sum(values) - values[3] - values[4]


def _others(databases: list[str]) -> dict[str, list[int]]:
    """PostgreSQL's backends serving `databases` (from their process titles) and the
    RabbitMQ node, by /proc."""
    found: dict[str, list[int]] = {"postgres": [], "rabbitmq": []}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/comm") as f:
                comm = f.read().strip()
            if comm == "beam.smp":
                found["rabbitmq"].append(int(entry))
            elif comm == "postgres":
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    title = f.read().decode(errors="replace")
                if any(f" {name} " in title for name in databases):
                    found["postgres"].append(int(entry))
        except OSError:
            continue
    return found


class CpuMeter:
    """CPU ticks per process group between start() and stop(): each service replica,
    "bench" (this process), "postgres" (this run's backends), "rabbitmq", "machine"."""

    def __init__(self, stack, databases: list[str]):
        self.stack, self.databases = stack, databases

    def snapshot(self) -> tuple[float, dict[str, dict[int, int]], int]:
        groups: dict[str, dict[int, int]] = {
            key: {proc.pid: _ticks(proc.pid)} for key, proc in self.stack.procs.items()}
        groups["bench"] = {os.getpid(): _ticks(os.getpid())}
        for name, pids in _others(self.databases).items():
            groups[name] = {pid: _ticks(pid) for pid in pids}
        return time.perf_counter(), groups, _machine_busy()

    @staticmethod
    def shares(before, after) -> dict[str, float]:
        """Share of one core per group over the interval; "rest" is the machine's busy time
        that none of the groups account for."""
        seconds = after[0] - before[0]
        out = {}
        for name, pids in after[1].items():
            start = before[1].get(name, {})
            # A backend that started during the interval counts from 0.
            ticks = sum(t - start.get(pid, 0) for pid, t in pids.items())
            out[name] = ticks / CLK_TCK / seconds
        out["machine"] = (after[2] - before[2]) / CLK_TCK / seconds
        out["rest"] = out["machine"] - sum(v for k, v in out.items() if k != "machine")
        return out


# -- backlogs ---------------------------------------------------------------------------------
class BacklogSampler:
    """Once a second while running: the client's POSTs not answered yet and the accepted
    reports whose email (and webhook) has not arrived (the two parts of the pipeline
    bench's backlog), messages ready/unacked per queue of the vhost (the management API),
    notify's pending deliveries, unsent outbox rows of intake and routing."""

    QUERIES = {
        "notify pending deliveries": ("notify",
                                      "SELECT count(*) FROM deliveries WHERE status = 'pending'"),
        "intake outbox unsent": ("intake", "SELECT count(*) FROM outbox "
                                           "WHERE published_at IS NULL"),
        "routing outbox unsent": ("routing", "SELECT count(*) FROM outbox "
                                             "WHERE published_at IS NULL"),
    }

    def __init__(self, amqp_url: str, urls: dict[str, str], ledger: Ledger):
        import psycopg

        self.ledger = ledger
        vhost = urllib.parse.unquote(urllib.parse.urlsplit(amqp_url).path.lstrip("/")) or "/"
        self.queues_url = (f"{MANAGEMENT}/queues/{urllib.parse.quote(vhost, safe='')}"
                           "?columns=name,messages_ready,messages_unacknowledged")
        self.conns = {s: psycopg.connect(url, autocommit=True, connect_timeout=5)
                      for s, url in urls.items()}
        self.samples: list[dict[str, int]] = []
        self.failures: Counter = Counter()
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def sample(self) -> dict[str, int]:
        with self.ledger.lock:
            out = {"POSTs unanswered": self.ledger.posting,
                   "accepted, not yet delivered": len(self.ledger.sent) - len(self.ledger.done)}
        try:
            queues = requests.get(self.queues_url, auth=("guest", "guest"), timeout=2).json()
            for q in queues:
                out[f"{q['name']} ready"] = q.get("messages_ready") or 0
                out[f"{q['name']} unacked"] = q.get("messages_unacknowledged") or 0
        except (requests.RequestException, ValueError, TypeError, KeyError) as exc:
            self.failures[type(exc).__name__] += 1
        for name, (service, sql) in self.QUERIES.items():
            try:
                out[name] = self.conns[service].execute(sql).fetchone()[0]
            except Exception as exc:  # noqa: BLE001 - counted, the sampling goes on
                self.failures[type(exc).__name__] += 1
        return out

    def start(self) -> None:
        self.samples = []
        self.stop_event.clear()

        def run():
            while not self.stop_event.is_set():
                self.samples.append(self.sample())
                self.stop_event.wait(1.0)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def stop(self) -> dict[str, tuple[int, float]]:
        """Max and mean of every series over the samples since start()."""
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join()
        names = {k for s in self.samples for k in s}
        return {k: (max(s.get(k, 0) for s in self.samples),
                    sum(s.get(k, 0) for s in self.samples) / len(self.samples))
                for k in sorted(names)}

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()


# -- the measured search ----------------------------------------------------------------------
class Turns:
    """Steps of several searches, one at a time and in turn: each configuration's steps see
    the same machine (whatever else runs on it changes over minutes, not over one step)."""

    def __init__(self, names: list[str]):
        self.cond = threading.Condition()
        self.order = list(names)
        self.active = set(names)
        self.current = 0

    def _advance(self) -> None:
        for _ in range(len(self.order)):
            self.current = (self.current + 1) % len(self.order)
            if self.order[self.current] in self.active:
                return

    @contextlib.contextmanager
    def turn(self, name: str):
        with self.cond:
            self.cond.wait_for(lambda: self.order[self.current] == name)
        try:
            yield
        finally:
            with self.cond:
                self._advance()
                self.cond.notify_all()

    def done(self, name: str) -> None:
        with self.cond:
            self.active.discard(name)
            if self.order[self.current] == name:
                self._advance()
            self.cond.notify_all()


class ScaleOutPipeline(Pipeline):
    """The pipeline bench's sustained-rate search, recording CPU shares and backlogs of
    every step while its requests are offered. Each step waits for its turn and drains
    before handing the machine on."""

    meter: CpuMeter
    backlog: BacklogSampler
    turns: Turns
    name: str

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records: list[dict] = []

    def step(self, rate: float) -> tuple[bool, str]:
        with self.turns.turn(self.name):
            self.backlog.start()
            before = self.meter.snapshot()
            try:
                ok, note = super().step(rate)
            finally:
                after = self.meter.snapshot()
                queues = self.backlog.stop()
            self.drain(timeout=60)
        self.records.append({"rate": rate, "ok": ok, "note": note,
                             "cpu": CpuMeter.shares(before, after), "backlog": queues})
        return ok, note


class Configuration:
    """`count` replicas of each service on their own databases and vhost, with the traffic
    and the records of their search."""

    def __init__(self, count: int, urls: dict[str, str], databases: list[str], amqp_url: str,
                 workdir: Path, model_dir: Path):
        from tests.e2e.harness import SECRET

        self.count, self.urls, self.databases = count, urls, databases
        self.amqp_url, self.name = amqp_url, _each(count)
        self.ledger = Ledger()
        self.rng = random.Random(SEED)
        self.stack = _replica_stack_class()(amqp_url, workdir, inbox=TimedInbox(self.ledger),
                                            agency=TimedAgency(self.ledger, SECRET))
        self.stack.overrides = pipeline.stack_overrides(urls, model_dir)
        self.stack.add_replicas(count)
        self.run: ScaleOutPipeline | None = None
        self.backlog: BacklogSampler | None = None
        self.load_start = pipeline._loadavg()
        self.search_result: tuple[float, list[str]] | None = None
        self.failure: BaseException | None = None

    def start(self, directory: Path, turns: Turns) -> None:
        self.stack.prepare(directory)
        self.stack.start_all()
        run = self.run = ScaleOutPipeline(self.stack, self.ledger, Traffic(self.rng), self.rng,
                                          intake_ports=self.stack.intake_ports())
        run.step_seconds = STEP_SECONDS
        run.meter = CpuMeter(self.stack, self.databases)
        run.backlog = self.backlog = BacklogSampler(self.amqp_url, self.urls, self.ledger)
        run.turns, run.name = turns, self.name
        # A few reports through every replica first: each has loaded what it loads lazily.
        run.offer(3 * self.count, 3, "warmup")
        run.drain(timeout=30)
        # What the processes burn with no traffic at all (pollers, relays, health checks).
        before = run.meter.snapshot()
        time.sleep(IDLE_SECONDS)
        self.idle = CpuMeter.shares(before, run.meter.snapshot())

    def search(self, start_rate: float) -> None:
        try:
            self.search_result = self.run.sustained(start=start_rate)
        except BaseException as exc:  # noqa: BLE001 - raised again by the main thread
            self.failure = exc
        finally:
            self.run.turns.done(self.name)

    def finish(self) -> dict:
        if self.failure is not None:
            raise self.failure
        run, ledger = self.run, self.ledger
        rate, notes = self.search_result
        left = run.drain(timeout=60)
        time.sleep(2)  # room for a late duplicate to arrive
        dead = [key for key, proc in self.stack.procs.items() if proc.poll() is not None]
        self.close()
        tickets = pipeline._tickets(self.urls["routing"])
        with ledger.lock:
            counts = pipeline._counts(ledger, tickets)
        lost = counts["no email"] + counts["no ticket"] + counts["no webhook"]
        duplicates = counts["duplicate emails"] + counts["duplicate webhooks"]
        held = next((r for r in run.records if r["ok"] and r["rate"] == rate), None)
        above = [r for r in run.records if not r["ok"] and r["rate"] > rate]
        grew = min(above, key=lambda r: r["rate"]) if above else None
        return {"count": self.count, "rate": rate, "notes": notes, "held": held, "grew": grew,
                "idle": self.idle, "left": left, "dead": dead, "counts": counts, "lost": lost,
                "duplicates": duplicates, "rejected": run.rejected, "errors": run.loop.errors,
                "load": (self.load_start, pipeline._loadavg()),
                "sampling_failures": self.backlog.failures}

    def close(self) -> None:
        if self.stack is None:
            return
        if self.run is not None:
            self.run.loop.close()
        if self.backlog is not None:
            self.backlog.close()
        stack, self.stack = self.stack, None
        stack.close()


def measure(configurations: list[Configuration], directory: Path, together: bool) -> list[dict]:
    """Every configuration's search; `together`: all started first, their steps taken in
    turn, otherwise one configuration after the other (one vhost cannot hold two stacks)."""
    if together:
        turns = Turns([c.name for c in configurations])
        for c in configurations:
            c.start(directory, turns)
        threads = [threading.Thread(target=c.search, args=(START_RATE,), daemon=True)
                   for c in configurations]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return [c.finish() for c in configurations]
    results = []
    for c in configurations:
        try:
            c.start(directory, Turns([c.name]))
            c.search(START_RATE)
            results.append(c.finish())
        finally:
            c.close()
    return results


# -- report -----------------------------------------------------------------------------------
def _each(count: int) -> str:
    return f"{count} replica{'s' if count > 1 else ''} each"


def _cpu(record: dict | None, count: int, limit: int | None = None) -> str:
    """The services busiest first (replicas side by side), then the rest."""
    if record is None:
        return "not measured"
    cpu = record["cpu"]
    services = []
    for service in SERVICES:
        shares = [cpu.get(f"{service}-{i}", 0.0) for i in range(count)]
        services.append((sum(shares), service, shares))
    services.sort(reverse=True)
    parts = []
    for total, service, shares in services[:limit]:
        each = " + ".join(f"{s:.0%}" for s in shares)
        parts.append(f"{service} {each}" + (f" (= {total:.0%})" if count > 1 else ""))
    text = ", ".join(parts)
    if limit is not None:
        return text
    ours = _ours(cpu)
    return (f"{text} of a core; PostgreSQL backends {cpu.get('postgres', 0):.0%}, RabbitMQ "
            f"{cpu.get('rabbitmq', 0):.0%}, load generator + inbox + webhook receiver "
            f"{cpu.get('bench', 0):.0%}: all of these {ours:.0%}, "
            f"{ours / record['rate'] * 1000:.0f} ms of CPU per report; the rest of the machine "
            f"{max(cpu['rest'], 0):.0%}; machine busy {cpu['machine']:.0%} of "
            f"{os.cpu_count() * 100}%")


def _backlog(record: dict | None) -> str:
    if record is None:
        return "not measured"
    parts = [f"{name} max {peak} (mean {mean:.0f})"
             for name, (peak, mean) in record["backlog"].items() if peak]
    return ", ".join(parts) or "nothing waiting"


def _ours(cpu: dict) -> float:
    """Share of a core the pipeline's processes got: services, PostgreSQL's backends of this
    run, RabbitMQ and the load generator."""
    return sum(v for k, v in cpu.items() if k not in ("machine", "rest"))


def _idle(result: dict) -> str:
    cpu, count = result["idle"], result["count"]
    services = sum(cpu.get(f"{s}-{i}", 0.0) for s in SERVICES for i in range(count))
    return (f"the services {services:.0%} of a core, all the pipeline's processes "
            f"{_ours(cpu):.0%}, the rest of the machine {max(cpu['rest'], 0):.0%}")


def _prefetch() -> int:
    from services.infra import messaging

    return inspect.signature(messaging.Consumer).parameters["prefetch"].default


def _waiting(result: dict) -> str:
    """Where messages wait at the step that grew: per consumed queue, what the replicas hold
    (mean of the samples, against prefetch x replicas) and what is ready behind that."""
    record = result["grew"]
    if record is None:
        return "no step grew"
    held = _prefetch() * result["count"]
    parts = []
    for name in CONSUMED:
        unacked = record["backlog"].get(f"{name} unacked", (0, 0.0))
        ready = record["backlog"].get(f"{name} ready", (0, 0.0))
        if unacked[0] or ready[0]:
            parts.append(f"{name} {unacked[1]:.0f} of {held} in hand, {ready[1]:.0f} ready "
                         f"(max {ready[0]})")
    for name in ("POSTs unanswered", "accepted, not yet delivered",
                 "notify pending deliveries", "intake outbox unsent"):
        peak, mean = record["backlog"].get(name, (0, 0.0))
        if peak:
            parts.append(f"{name} {mean:.0f} (max {peak})")
    return f"at {record['rate']:g}/s " + (", ".join(parts) or "nothing waiting")


def _print(results: list[dict], elapsed: float) -> None:
    for r in results:
        label = f"{LABEL}, {_each(r['count'])}"
        c = r["counts"]
        print(f"{label}: sustained {r['rate']:g} reports/s (+{pipeline.READ_SHARE:.0%} status "
              f"reads; {STEP_SECONDS:g} s steps: {', '.join(r['notes'])}); {r['lost']} lost, "
              f"{r['duplicates']} duplicates over {c['accepted']} accepted reports "
              f"({c['tickets']} tickets, {r['left']} still in flight after the drain), "
              f"{len(r['rejected'])} POSTs refused, {len(r['errors'])} client errors"
              + (f"; DIED: {', '.join(r['dead'])}" if r["dead"] else "")
              + f"; load average {r['load'][0]:.1f} at the start, "
              f"{r['load'][1]:.1f} at the end on {os.cpu_count()} cores", flush=True)
        if r["rejected"] or r["errors"]:
            print(f"{label}: e.g. {(r['rejected'] + r['errors'])[:3]}", flush=True)
        print(f"{label}: CPU idle (no traffic, {IDLE_SECONDS:g} s after the warm-up): "
              f"{_idle(r)}", flush=True)
        for record, what in ((r["held"], "held"), (r["grew"], "grew")):
            if record is None:
                continue
            print(f"{label}: CPU at {record['rate']:g}/s ({what}): {_cpu(record, r['count'])}",
                  flush=True)
            print(f"{label}: backlog at {record['rate']:g}/s ({what}), sampled each second: "
                  f"{_backlog(record)}", flush=True)
        if r["sampling_failures"]:
            print(f"{label}: backlog samples that failed: {dict(r['sampling_failures'])}",
                  flush=True)
    one, two = results
    ratio = two["rate"] / one["rate"] if one["rate"] else float("nan")

    def per_core(r: dict) -> float:
        """Reports per CPU-second the pipeline's processes got at the sustained step."""
        return r["rate"] / _ours(r["held"]["cpu"]) if r["held"] else float("nan")

    print(f"{LABEL}: 1 replica each {one['rate']:g} reports/s, 2 replicas each "
          f"{two['rate']:g} reports/s: {ratio:.2f}x; busiest with 1: "
          f"{_cpu(one['held'], 1, 2)} of a core; with 2: {_cpu(two['held'], 2, 2)}; "
          f"backlog during the step: with 1 {_backlog(one['held'])}; with 2 "
          f"{_backlog(two['held'])}", flush=True)
    print(f"{LABEL}: where reports wait once the rate is too high: with 1 {_waiting(one)}; "
          f"with 2 {_waiting(two)}; per CPU-second the pipeline's processes got at the "
          f"sustained step: 1 replica each {per_core(one):.1f} reports, 2 replicas each "
          f"{per_core(two):.1f} ({per_core(two) / per_core(one):.2f}x); the rest of the "
          f"machine took {max(one['held']['cpu']['rest'], 0) if one['held'] else 0:.0%} and "
          f"{max(two['held']['cpu']['rest'], 0) if two['held'] else 0:.0%} of a core "
          f"(load average {one['load'][0]:.1f} → {two['load'][1]:.1f} on {os.cpu_count()} "
          f"cores: everything shares them, the rates are noisy; {elapsed:.0f} s in all)",
          flush=True)


# -- main -------------------------------------------------------------------------------------
def _databases(suffix: str):
    names = {s: f"bench_scale_{s}_{suffix}" for s in SERVICES}
    return names, {s: f"{PG_DSN}/{n}" for s, n in names.items()}


def main(amqp_url: str | None = None) -> None:
    """With `amqp_url` both configurations run on that vhost, without it each on its own
    throwaway vhost."""
    if shared_data_missing("scale-out"):
        return
    pipeline.say_caller_settings("scale-out")
    import psycopg

    try:
        admin = psycopg.connect(f"{PG_DSN}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        print(f"{LABEL}: skipped, {PG_DSN} does not answer ({exc})".strip())
        return
    from bench.__main__ import _throwaway_vhost

    started = time.perf_counter()
    created: list[str] = []
    configurations: list[Configuration] = []
    try:
        # Each configuration's vhost lives until both have been measured.
        with contextlib.ExitStack() as vhosts, \
                tempfile.TemporaryDirectory(prefix="lapor-scale-out-") as tmp:
            root = Path(tmp)
            directory, model = pipeline._prepare_shared(root)
            for count in (1, 2):
                names, urls = _databases(uuid.uuid4().hex[:8])
                for name in names.values():
                    admin.execute(f'CREATE DATABASE "{name}"')
                    created.append(name)
                workdir = root / f"replicas-{count}"
                workdir.mkdir()
                url = vhosts.enter_context(_throwaway_vhost(amqp_url))
                configurations.append(Configuration(count, urls, list(names.values()), url,
                                                    workdir, model))
            try:
                with vacuum.stand_in([u for c in configurations
                                      for u in c.urls.values()]) as stand_in:
                    results = measure(configurations, directory, together=amqp_url is None)
            finally:
                for c in configurations:
                    c.close()
            _print(results, time.perf_counter() - started)
            print(f"{LABEL}: {stand_in.summary()}", flush=True)
    finally:
        from tests.conftest import drop_database
        for name in created:
            drop_database(admin, name)
        admin.close()


if __name__ == "__main__":
    main()
