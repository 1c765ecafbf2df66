"""CPU a report: the pipeline held at a fixed rate, beside the bare chain held at the same rate.

The sustained-rate search of bench/pipeline.py moves in steps of about 10%, and the machine's
speed drifts by as much within the hour, so a change that saves a tenth of the work rarely
shows there. Below saturation the work a report costs shows directly: every process's CPU
(user + system, from /proc) over a fixed stretch of traffic, divided by the reports it
carried. The same traffic as bench/pipeline.py (national mix, one request in ten a status
read) at BENCH_CPU_RATE reports/s (default 40) for BENCH_CPU_SECONDS (default 20), after a
warm-up, and drained: each report must have its reporter's email and, when dispatched, its
webhook, or the run says how many were left.

Beside it, in the same run: the bare one-hop chain of bench/pipeline.py (waitress + Flask
endpoint publishing with confirms into a quorum queue, a consumer acking each message) at
the same rate, its CPU a message. Their ratio is the share of the chain's efficiency the
pipeline has; where the machine's CPU is what limits both, the ratio of their sustained
rates tends to it.

Per group: each service, PostgreSQL's backends of this run's databases, the RabbitMQ node,
this process (the load generator with the pipeline's email inbox and agency receiver, or
the chain's consumer), and the machine as a whole; the held traffic's p50 and p99 from POST
to the agency's webhook, which a setting that trades CPU for latency (a relay's gathering
window: `INTAKE_OUTBOX_GATHER=0.02 python -m bench.cpu_per_report`, the caller's settings
passed on) shows beside its CPU; for each service also its context
switches a report (voluntary ones are waits: a round trip, a lock, a queue) and, on a line
of its own, its CPU a report by thread (named by py-spy; a pool's threads together), which
says which of a service's loops a change has to relieve.

    python -m bench.cpu_per_report            # the chain, then SQLite and PostgreSQL
    BENCH_CPU_DATABASES=postgresql python -m bench.cpu_per_report

Two checkouts measured in turn (the same command run from each) compare code; the figures
of one machine at one time compare, those of different machines do not.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench import pipeline as pl
from bench.processes import postgres_databases
from bench.scale_out import CLK_TCK, CpuMeter, _ticks
from bench.settings import env_float, env_list

RATE = env_float("BENCH_CPU_RATE", 40, minimum=1)
SECONDS = env_float("BENCH_CPU_SECONDS", 20, minimum=1)
DATABASES = env_list("BENCH_CPU_DATABASES", "sqlite,postgresql", ("sqlite", "postgresql"))


def context_switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of all a process's threads so far."""
    voluntary = involuntary = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        voluntary += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches"):
                        involuntary += int(line.split()[1])
    except OSError:  # a thread that ended while read
        pass
    return voluntary, involuntary


def thread_ticks(pid: int) -> dict[int, int]:
    """CPU ticks (user + system) of each of a process's threads so far, by thread id; a
    thread that ended while read (or has used none) is left out."""
    ticks = {int(task): _ticks(f"{pid}/task/{task}") for task in os.listdir(f"/proc/{pid}/task")}
    return {tid: n for tid, n in ticks.items() if n}


_PY_SPY_THREAD = re.compile(r'^Thread (\d+) \((?:active|idle)[^)]*\): "([^"]*)"', re.M)


def thread_names(pid: int) -> dict[int, str]:
    """The Python name of each of a process's threads, by thread id (py-spy dump; the
    interpreter does not name its threads for the system). Empty if py-spy cannot look."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    try:
        dump = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True,
                              text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return {int(tid): name for tid, name in _PY_SPY_THREAD.findall(dump)}


def by_thread(before: dict[int, int], after: dict[int, int], names: dict[int, str],
              count: int) -> list[tuple[str, int, float]]:
    """(thread name, threads of that name, ms of CPU a report), busiest first; threads of
    one pool (waitress-0 … waitress-7) counted together, those without a name as "other"."""
    groups: dict[str, list[float]] = {}
    for tid, ticks in after.items():
        name = re.sub(r"-\d+$", "", names.get(tid, "other"))
        groups.setdefault(name, []).append(
            (ticks - before.get(tid, 0)) / CLK_TCK * 1000 / count)
    rows = [(name, len(v), sum(v)) for name, v in groups.items()]
    return sorted((r for r in rows if r[2] >= 0.005), key=lambda r: -r[2])


def cpu_ms(before, after, count: int) -> dict[str, float]:
    """Milliseconds of CPU per item for each group of two CpuMeter snapshots, the machine's
    busy time included as "machine"."""
    out = {}
    for name, pids in after[1].items():
        start = before[1].get(name, {})
        ticks = sum(t - start.get(pid, 0) for pid, t in pids.items())
        out[name] = ticks / CLK_TCK * 1000 / count
    out["machine"] = (after[2] - before[2]) / CLK_TCK * 1000 / count
    return out


class _Procs:
    """What CpuMeter reads: named processes."""

    def __init__(self, procs: dict[str, subprocess.Popen]):
        self.procs = procs


# -- the bare chain ---------------------------------------------------------------------------
def measure_chain(amqp_url: str, workdir: Path, rate: float, seconds: float) -> dict:
    with pl.chain_running(amqp_url, workdir, pl.Traffic(random.Random(pl.SEED + 1))) as chain:
        loop = pl.OpenLoop(chain.port)
        try:
            meter = CpuMeter(_Procs({"chain": chain.proc}), [])
            # A warm-up: the endpoint's connections to the broker open.
            loop.run(rate, 2, lambda: chain.post, random.Random(pl.SEED))
            loop.wait()
            _settle(lambda: chain.consumer.count() >= len(chain.sent))
            first = len(chain.sent)
            before = meter.snapshot()
            loop.run(rate, seconds, lambda: chain.post, random.Random(pl.SEED + 2))
            loop.wait()
            _settle(lambda: chain.consumer.count() >= len(chain.sent))
            after = meter.snapshot()
        finally:
            loop.close()
        count = len(chain.sent) - first
        left = len(chain.sent) - chain.consumer.count()
    return {"count": count, "left": left, "failures": chain.failures + loop.errors,
            "cpu": cpu_ms(before, after, count)}


def _settle(done, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        time.sleep(0.05)


# -- the pipeline -----------------------------------------------------------------------------
def measure_pipeline(label: str, urls: dict[str, str], databases: list[str], amqp_url: str,
                     workdir: Path, directory: Path, model: Path, rate: float,
                     seconds: float) -> dict:
    ledger = pl.Ledger()
    with pl.pipeline_running(urls, amqp_url, workdir, directory, model, ledger,
                             random.Random(pl.SEED)) as (stack, pipe):
        meter = CpuMeter(stack, databases)
        pids = {s: stack.procs[s].pid for s in pl.SERVICES}
        switches_before = {s: context_switches(p) for s, p in pids.items()}
        threads_before = {s: thread_ticks(p) for s, p in pids.items()}
        first = len(ledger.sent)
        before = meter.snapshot()
        pipe.offer(rate, seconds, "held")
        left = pipe.drain(timeout=120)
        after = meter.snapshot()
        switches = {s: context_switches(p) for s, p in pids.items()}
        threads_after = {s: thread_ticks(p) for s, p in pids.items()}
        count = len(ledger.sent) - first
        with ledger.lock:
            hooks, _emails = pl.latencies(ledger, "held")
        dead = [s for s in pl.SERVICES if stack.procs[s].poll() is not None]
        names = {s: thread_names(p) for s, p in pids.items() if s not in dead}
    per_report = {s: tuple((a - b) / count for a, b in zip(switches[s], switches_before[s],
                                                              strict=True))
                  for s in pl.SERVICES}
    return {"label": label, "count": count, "left": left, "dead": dead,
            "rejected": pipe.rejected, "errors": pipe.loop.errors,
            "cpu": cpu_ms(before, after, count), "switches": per_report, "hooks": hooks,
            "threads": {s: by_thread(threads_before[s], threads_after[s], names.get(s, {}),
                                     count) for s in pl.SERVICES}}


# -- report -----------------------------------------------------------------------------------
def _print(result: dict, chain: dict, rate: float) -> None:
    cpu = result["cpu"]
    services = sum(cpu[s] for s in pl.SERVICES)
    everything = services + cpu.get("postgres", 0.0) + cpu["rabbitmq"] + cpu["bench"]
    bare = chain["cpu"]["chain"] + chain["cpu"]["rabbitmq"] + chain["cpu"]["bench"]
    problems = []
    if result["left"]:
        problems.append(f"{result['left']} reports without their email or webhook")
    if result["dead"]:
        problems.append(f"{', '.join(result['dead'])} exited")
    if result["rejected"] or result["errors"]:
        problems.append(f"{len(result['rejected']) + len(result['errors'])} requests failed")
    switches = ", ".join(f"{s} {v:.0f}+{i:.0f}" for s, (v, i) in result["switches"].items())
    print(f"CPU a report ({result['label']}), held at {rate:g} reports/s (+10% status reads), "
          f"{result['count']} reports: intake {cpu['intake']:.2f}, routing "
          f"{cpu['routing']:.2f}, notify {cpu['notify']:.2f} ms (the services "
          f"{services:.2f} ms; POST → agency webhook {pl._ms(result['hooks'])}); "
          + (f"PostgreSQL {cpu['postgres']:.2f}, " if result["label"] == "PostgreSQL" else "")
          + f"RabbitMQ "
          f"{cpu['rabbitmq']:.2f}, load generator with inbox and agency receiver "
          f"{cpu['bench']:.2f} ms; all of these {everything:.2f} ms, the machine "
          f"{cpu['machine']:.2f} ms; context switches a report (voluntary+involuntary): "
          f"{switches}; bare chain at {rate:g} messages/s, {chain['count']} messages: "
          f"endpoint {chain['cpu']['chain']:.2f}, RabbitMQ {chain['cpu']['rabbitmq']:.2f}, "
          f"load generator with consumer {chain['cpu']['bench']:.2f} ms, all of these "
          f"{bare:.2f} ms a message (the machine {chain['cpu']['machine']:.2f} ms); the "
          f"pipeline's work a report is {everything / bare:.1f}x the chain's a message "
          f"({bare / everything:.0%} of its efficiency)"
          + (f"; NOT CLEAN: {'; '.join(problems)}" if problems else ""), flush=True)
    for service, rows in result["threads"].items():
        print(f"  {service}'s threads, ms of CPU a report: " + ", ".join(
            f"{name}{f' ×{n}' if n > 1 else ''} {ms:.2f}" for name, n, ms in rows), flush=True)


def main(amqp_url: str | None = None) -> None:
    from bench.__main__ import _throwaway_vhost

    if pl.shared_data_missing("CPU a report"):
        return
    pl.say_caller_settings("CPU a report")
    with tempfile.TemporaryDirectory(prefix="lapor-cpu-") as tmp:
        root = Path(tmp)
        directory, model = pl._prepare_shared(root)
        for database in DATABASES:
            workdir = root / database
            workdir.mkdir()
            if database == "sqlite":
                names: list[str] = []
                databases = contextlib.nullcontext(
                    [f"sqlite:///{workdir / f'{s}.db'}" for s in pl.SERVICES])
            else:
                suffix = uuid.uuid4().hex[:8]
                names = [f"bench_cpu_{s}_{suffix}" for s in pl.SERVICES]
                databases = postgres_databases("CPU a report", pl.PG_DSN, names)
            with databases as listed:
                if listed is None:
                    continue
                urls = dict(zip(pl.SERVICES, listed, strict=True))
                with _throwaway_vhost(amqp_url) as url:
                    chain = measure_chain(url, workdir, RATE, SECONDS)
                    result = measure_pipeline("SQLite" if database == "sqlite" else
                                              "PostgreSQL", urls, names, url, workdir,
                                              directory, model, RATE, SECONDS)
                    _print(result, chain, RATE)


if __name__ == "__main__":
    main()
