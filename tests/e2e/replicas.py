"""Several replicas of each service as real processes, the way a scaled-out deployment runs
them: one RabbitMQ vhost, one PostgreSQL database per service shared by that service's
replicas, each replica on its own ports with its own log. The reporter's inbox (aiosmtpd)
and the agency's endpoint are the ones harness.Stack uses, shared by every replica."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import requests
from aiosmtpd.controller import Controller

from tests.conftest import PG_DSN, ROOT, drop_database, free_port
from tests.e2e.harness import SECRET, AgencyReceiver, Inbox, OperatorCommands, stop_all
from tests.integration.helpers import wait_for

SERVICES = ("intake", "routing", "notify")
# Far above what one test sends from one address: the limits are per client and per replica,
# and every request of the test comes from 127.0.0.1.
GENEROUS_LIMIT = "100000 per minute"


@contextlib.contextmanager
def postgres_databases(*services: str) -> Iterator[dict[str, str]]:
    """A fresh PostgreSQL database per service (its URL by service name), dropped afterwards
    even while a killed replica's connections linger."""
    import psycopg

    names = {service: f"lapor_test_{service}_{uuid.uuid4().hex[:10]}" for service in services}
    try:
        admin = psycopg.connect(f"{PG_DSN}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise AssertionError(f"PostgreSQL is not reachable at {PG_DSN} ({exc})") from None
    with admin:
        for name in names.values():
            admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {service: f"{PG_DSN}/{name}" for service, name in names.items()}
    finally:
        with psycopg.connect(f"{PG_DSN}/postgres", autocommit=True) as admin:
            for name in names.values():
                drop_database(admin, name)


class Replicas(OperatorCommands):
    """`count` processes of each service. Replica i of intake talks to replica i of routing;
    every replica of a service shares that service's database."""

    def __init__(self, amqp_url: str, workdir: Path, databases: dict[str, str],
                 count: int = 2, extra_env: dict[str, str] | None = None):
        self.amqp_url, self.workdir, self.databases = amqp_url, workdir, databases
        self.count = count
        self.extra_env = dict(extra_env or {})
        self.ports = {(service, i): {"main": free_port(), "metrics": free_port()}
                      for service in SERVICES for i in range(count)}
        self.procs: dict[tuple[str, int], subprocess.Popen] = {}
        self.inbox = Inbox()
        self.agency = AgencyReceiver()
        self.smtp = Controller(self.inbox, hostname="127.0.0.1", port=free_port())
        self.smtp.start()
        (self.workdir / "secret").write_bytes(SECRET)

    # -- addresses --------------------------------------------------------------------------
    def base_url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports['intake', i]['main']}"

    def metrics_port(self, service: str, i: int) -> int:
        return self.ports[service, i]["metrics"]

    @property
    def intake_token_file(self) -> Path:
        return self.workdir / "intake-routing-token"

    def env(self, service: str, i: int = 0) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INTAKE_", "ROUTING_",
                                                                       "NOTIFY_", "LAPOR_"))}
        ports = self.ports
        env.update({
            "PYTHONPATH": str(ROOT),
            "LAPOR_AMQP_URL": self.amqp_url,
            "INTAKE_DATABASE_URL": self.databases["intake"],
            "ROUTING_DATABASE_URL": self.databases["routing"],
            "NOTIFY_DATABASE_URL": self.databases["notify"],
            "INTAKE_PORT": str(ports["intake", i]["main"]),
            "INTAKE_METRICS_PORT": str(ports["intake", i]["metrics"]),
            "INTAKE_RATE_LIMIT_SUBMIT": GENEROUS_LIMIT,
            "INTAKE_RATE_LIMIT_READ": GENEROUS_LIMIT,
            "INTAKE_RATE_LIMIT_LOOKUP_FAILURES": GENEROUS_LIMIT,
            "INTAKE_ROUTING_TOKEN_FILE": str(self.intake_token_file),
            "ROUTING_LISTEN": f"127.0.0.1:{ports['routing', i]['main']}",
            "ROUTING_ADDR": f"127.0.0.1:{ports['routing', i]['main']}",
            "ROUTING_METRICS_PORT": str(ports["routing", i]["metrics"]),
            "NOTIFY_METRICS_PORT": str(ports["notify", i]["metrics"]),
            "NOTIFY_SMTP_URL": f"smtp://127.0.0.1:{self.smtp.port}",
            "NOTIFY_RETRY_DELAYS": "0.5,1,2,4",
            "LAPOR_PUBLIC_URL": self.base_url(0),
        })
        env.update(self.extra_env)
        return env

    # -- processes --------------------------------------------------------------------------
    def log_path(self, service: str, i: int) -> Path:
        return self.workdir / f"{service}-{i}.log"

    def log(self, service: str, i: int) -> str:
        path = self.log_path(service, i)
        return path.read_text(errors="replace") if path.exists() else ""

    def spawn(self, service: str, i: int) -> None:
        """Starts the process without waiting for it to be ready (see ready())."""
        with open(self.log_path(service, i), "ab") as log:
            log.write(f"===== {service}-{i} starting =====\n".encode())
            log.flush()
            self.procs[service, i] = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}"], env=self.env(service, i),
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def ready(self, service: str, i: int) -> bool:
        """The replica answers its readiness probe; fails at once when it died."""
        proc = self.procs[service, i]
        assert proc.poll() is None, f"{service}-{i} died:\n{self.log(service, i)[-4000:]}"
        try:
            return requests.get(f"http://127.0.0.1:{self.metrics_port(service, i)}/readyz",
                                timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def start(self, service: str, i: int, timeout: float = 60) -> None:
        self.spawn(service, i)
        wait_for(lambda: self.ready(service, i), timeout, interval=0.2,
                 what=f"{service}-{i} to be ready")

    def start_all(self, timeout: float = 90) -> None:
        """Every replica at once (migrations run under a lock: the first one migrates)."""
        for service in ("routing", "notify", "intake"):
            for i in range(self.count):
                self.spawn(service, i)
        for key in list(self.procs):
            wait_for(lambda key=key: self.ready(*key), timeout, interval=0.2,
                     what=f"{key[0]}-{key[1]} to be ready")

    def kill(self, service: str, i: int) -> None:
        """SIGKILL: no drain, no flush, whatever the replica held is left as it was."""
        proc = self.procs.pop((service, i))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        with open(self.log_path(service, i), "ab") as log:
            log.write(f"===== {service}-{i} killed (SIGKILL) =====\n".encode())

    def stop(self, service: str, i: int, timeout: float = 30) -> int:
        proc = self.procs.pop((service, i))
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout)

    def close(self) -> None:
        """SIGTERM to every replica at once, then wait for each to drain."""
        procs, self.procs = self.procs, {}
        stop_all(procs)
        self.smtp.stop()
        self.agency.close()

    def log_tails(self, chars: int = 4000) -> str:
        return "\n".join(f"----- {service}-{i} log -----\n{self.log(service, i)[-chars:]}"
                         for service in SERVICES for i in range(self.count))
