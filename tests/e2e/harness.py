"""Runs intake, routing and notify as real processes against a test vhost, with a real SMTP
server (aiosmtpd) standing in for the reporter's inbox and a real HTTP server standing in
for the agency's system."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from aiosmtpd.controller import Controller

from tests.conftest import ROOT, free_port
from tests.integration.helpers import wait_for

SECRET = b"e2e-webhook-secret-0123456789abcdef"


class Inbox:
    """aiosmtpd handler keeping every message."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


class AgencyReceiver:
    """An agency's webhook endpoint: records every request, raw."""

    def __init__(self):
        self.requests: list[dict] = []
        self.fail_next = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # connections kept open, as agencies' servers do

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                if len(body) < length:
                    # The sender went away before its body was all sent (a notify killed
                    # between the headers and the body): as for any server, no request.
                    self.close_connection = True
                    return
                if outer.fail_next > 0:
                    outer.fail_next -= 1
                    self.send_response(503)
                else:
                    outer.requests.append({"path": self.path, "headers": dict(self.headers),
                                           "body": body})
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/lapor"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def for_tracking(self, tracking_id: str) -> list[dict]:
        return [r for r in self.requests if json.loads(r["body"])["tracking_id"] == tracking_id]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def stop_all(procs: dict, grace: float = 25) -> None:
    """SIGTERM to every process at once, then each waited for (killed after `grace` s)."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class OperatorCommands:
    """The commands an operator runs before the first report, for a stack whose `env(service)`
    points at its databases: the demo directory, intake's service token, the agency webhook."""

    def run(self, service: str, *args: str) -> None:
        subprocess.run([sys.executable, "-m", f"services.{service}", *args], check=True,
                       env=self.env(service), cwd=ROOT, capture_output=True, timeout=60)

    def setup(self) -> None:
        self.run("routing", "seed-demo")
        self.run("routing", "accounts", "ensure-service", "intake", "--token-file",
                 str(self.intake_token_file))
        self.run("notify", "webhooks", "set", "*", self.agency.url, "--allow-http",
                 "--secret-file", str(self.workdir / "secret"))


@dataclass
class Stack(OperatorCommands):
    amqp_url: str
    workdir: Path
    intake_amqp_url: str | None = None
    ports: dict = field(default_factory=dict)
    procs: dict = field(default_factory=dict)
    inbox: Inbox = field(default_factory=Inbox)
    agency: AgencyReceiver = field(default_factory=AgencyReceiver)

    def __post_init__(self):
        self.ports = {name: free_port() for name in
                      ("intake", "intake_metrics", "grpc", "routing_metrics", "notify_metrics",
                       "smtp")}
        self.smtp = Controller(self.inbox, hostname="127.0.0.1", port=self.ports["smtp"])
        self.smtp.start()
        (self.workdir / "secret").write_bytes(SECRET)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['intake']}"

    def env(self, service: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INTAKE_", "ROUTING_",
                                                                       "NOTIFY_", "LAPOR_"))}
        env.update({
            "PYTHONPATH": str(ROOT),
            "LAPOR_AMQP_URL": (self.intake_amqp_url if service == "intake"
                               and self.intake_amqp_url else self.amqp_url),
            "INTAKE_DATABASE_URL": f"sqlite:///{self.workdir / 'intake.db'}",
            "ROUTING_DATABASE_URL": f"sqlite:///{self.workdir / 'routing.db'}",
            "NOTIFY_DATABASE_URL": f"sqlite:///{self.workdir / 'notify.db'}",
            "INTAKE_PORT": str(self.ports["intake"]),
            "INTAKE_METRICS_PORT": str(self.ports["intake_metrics"]),
            "ROUTING_LISTEN": f"127.0.0.1:{self.ports['grpc']}",
            "ROUTING_ADDR": f"127.0.0.1:{self.ports['grpc']}",
            "ROUTING_METRICS_PORT": str(self.ports["routing_metrics"]),
            "NOTIFY_METRICS_PORT": str(self.ports["notify_metrics"]),
            "NOTIFY_SMTP_URL": f"smtp://127.0.0.1:{self.ports['smtp']}",
            "NOTIFY_RETRY_DELAYS": "0.5,1,2,4",
            "LAPOR_PUBLIC_URL": self.base_url,
            # A test that writes workdir/clock (before starting routing) moves ticket clocks
            # with it; the SLA job then looks twice a second.
            "ROUTING_CLOCK_FILE": (str(self.workdir / "clock")
                                   if (self.workdir / "clock").exists() else ""),
            "ROUTING_SLA_INTERVAL": "0.5",
            # Intake's own token for routing (setup() writes it).
            "INTAKE_ROUTING_TOKEN_FILE": str(self.intake_token_file),
        })
        return env

    @property
    def intake_token_file(self) -> Path:
        return self.workdir / "intake-routing-token"


    def staff_token(self, username: str, role: str, agency: str = "") -> str:
        """Creates a staff account with the command line an operator uses and returns a
        fresh token of it (as `accounts token` hands it to the staff member)."""
        self.run("routing", "accounts", "create", username, "--role", role,
                 *(["--agency", agency] if agency else []))
        target = self.workdir / f"{username}.token"
        self.run("routing", "accounts", "token", username, "--output", str(target))
        return target.read_text().strip()

    def start(self, service: str) -> None:
        with open(self.workdir / f"{service}.log", "ab") as log:
            self.procs[service] = subprocess.Popen(
                [sys.executable, "-m", f"services.{service}"], env=self.env(service), cwd=ROOT,
                stdout=log, stderr=subprocess.STDOUT)
        probes = {"intake": f"{self.base_url}/readyz",
                  "routing": f"http://127.0.0.1:{self.ports['routing_metrics']}/healthz",
                  "notify": f"http://127.0.0.1:{self.ports['notify_metrics']}/healthz"}
        wait_for(lambda: self._answers(probes[service]) or self._died(service), 30,
                 what=f"{service} to start")
        assert self.procs[service].poll() is None, f"{service} died:\n{self.log(service)}"

    def _answers(self, url: str) -> bool:
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def _died(self, service: str) -> bool:
        return self.procs[service].poll() is not None

    def stop(self, service: str, timeout: float = 30) -> int:
        """SIGTERM, then wait for the drain; returns the exit code."""
        proc = self.procs.pop(service)
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout)

    def log(self, service: str) -> str:
        path = self.workdir / f"{service}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        for service in list(self.procs):
            try:
                self.stop(service, timeout=20)
            except subprocess.TimeoutExpired:
                self.procs.get(service, None) and self.procs[service].kill()
        self.smtp.stop()
        self.agency.close()

    # -- citizen's side ---------------------------------------------------------------------
    def submit(self, **overrides) -> dict:
        report = {
            "kind": "PENGADUAN",
            "title": "Jalan rusak berlubang di Nagari Muaro",
            "body": "Jalan utama di Nagari Muaro, Sijunjung, rusak berlubang sejak bulan lalu "
                    "dan membahayakan pengendara motor.",
            "region_code": "13.03",
            "anonymous": False,
            "confidential": False,
            "reporter": {"name": "Rina Marlina", "email": "rina@contoh.id",
                         "phone": "081234567890"},
        }
        report.update(overrides)
        response = requests.post(f"{self.base_url}/api/v1/reports", json=report, timeout=10)
        assert response.status_code == 201, response.text
        return response.json()

    def report(self, tracking_id: str, token: str | None = None) -> dict:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = requests.get(f"{self.base_url}/api/v1/reports/{tracking_id}",
                                headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()

    def emails_to(self, address: str) -> list:
        return [m for m in self.inbox.messages if m["To"] == address]
