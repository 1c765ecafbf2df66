"""Fixtures for tests that use real servers: each test gets its own RabbitMQ vhost and its
own database, so tests run beside a running `make up` and beside each other."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("LAPOR_SHARED_DATA", ROOT.parent / "shared" / "data"))
AMQP_HOST = os.environ.get("LAPOR_TEST_AMQP_HOST", "127.0.0.1:5672")
PG_DSN = os.environ.get("LAPOR_TEST_PG", "postgresql://lapor:lapor@127.0.0.1:5432")
REQUIRE_SHARED_DATA = os.environ.get("LAPOR_REQUIRE_SHARED_DATA") == "1"


_HANDED_OUT: set[int] = set()


def _ephemeral_ports() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A local port nothing listens on, for a server a test is about to start.

    Chosen outside the kernel's ephemeral range: every outgoing connection (to RabbitMQ,
    PostgreSQL, another replica) takes its source port from that range, so a port picked
    there by binding port 0 can be taken by some process's connection before the server
    binds it ("Address already in use"). Never the same port twice in one run either."""
    low, high = _ephemeral_ports()
    first, last = (10000, low - 1) if low > 11000 else (high + 1, 65535)
    pick = random.SystemRandom()
    for _ in range(500):
        port = pick.randint(first, last)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise AssertionError(f"no free local port between {first} and {last}")


def drop_database(admin, name: str, wait: float = 30.0) -> None:
    """Drops database `name` (if it exists) on `admin`, an autocommit psycopg connection,
    disconnecting whoever is still in it.

    `WITH (FORCE)` ends the other sessions only where this role may signal them: on a
    server running autovacuum (PostgreSQL's default; this project's CI machine runs
    without it) a worker of the superuser's may be vacuuming the database just then, and
    FORCE fails with InsufficientPrivilege. A plain DROP stops autovacuum workers itself
    (waiting up to 5 s for them to go); another session still in the database fails it
    with ObjectInUse, and the drop is tried again until `wait` has passed."""
    import time

    import psycopg

    deadline = time.monotonic() + wait
    statement = f'DROP DATABASE IF EXISTS "{name}"'
    try:
        admin.execute(f"{statement} WITH (FORCE)")
        return
    except psycopg.errors.InsufficientPrivilege:
        pass
    while True:
        try:
            admin.execute(statement)
            return
        except psycopg.errors.ObjectInUse:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def _rabbitmqctl(*args: str) -> None:
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    subprocess.run([*sudo, "rabbitmqctl", "-q", *args], check=True, capture_output=True,
                   timeout=60)


MANAGEMENT = f"http://{AMQP_HOST.split(':')[0]}:15672/api"


def _management(method: str, path: str, body: dict | None = None) -> bool:
    """One call to the broker's management API (guest is allowed from localhost); False when
    the API does not answer, so the slower rabbitmqctl is used instead."""
    import requests

    try:
        response = requests.request(method, f"{MANAGEMENT}{path}", json=body,
                                    auth=("guest", "guest"), timeout=10)
    except requests.RequestException:
        return False
    return response.status_code in (200, 201, 204)


def create_vhost(vhost: str) -> None:
    encoded = quote(vhost, safe="")
    if not (_management("PUT", f"/vhosts/{encoded}")
            and _management("PUT", f"/permissions/{encoded}/guest",
                            {"configure": ".*", "write": ".*", "read": ".*"})):
        if shutil.which("rabbitmqctl") is None:
            pytest.fail("neither the management API nor rabbitmqctl is available: install "
                        "rabbitmq-server (scripts/bootstrap.sh does)")
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")


def delete_vhost(vhost: str) -> None:
    if not _management("DELETE", f"/vhosts/{quote(vhost, safe='')}"):
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(autouse=True)
def _close_kept_notify_connections():
    """Closes the kept SMTP and webhook connections of the pytest thread after each test.
    Notify keeps one per sending thread, and a test that turns the worker by hand sends from
    this thread: left kept, the last such test's connection lasted until this process's exit
    (a ResourceWarning there, on whichever xdist worker ran that test last)."""
    yield
    channels = sys.modules.get("services.notify.channels")
    if channels is not None:
        channels.smtp.close_kept()
        channels.webhook.close_kept()


@pytest.fixture
def amqp_url():
    """A fresh vhost on the real broker, deleted afterwards."""
    vhost = f"lapor-test-{uuid.uuid4().hex[:12]}"
    create_vhost(vhost)
    yield f"amqp://guest:guest@{AMQP_HOST}/{quote(vhost, safe='')}"
    delete_vhost(vhost)


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database, dropped afterwards."""
    import psycopg

    name = f"lapor_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(f"{PG_DSN}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_DSN} ({exc}); .ci/run starts it")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{PG_DSN}/{name}"
    with psycopg.connect(f"{PG_DSN}/postgres", autocommit=True) as admin:
        drop_database(admin, name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request):
    """Runs the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def shared_data() -> Path:
    """../shared/data, the real national region list; skipped with a reason when absent
    (.ci/run turns that skip into an error)."""
    csv = SHARED_DATA / "wilayah-kepmendagri-2025.csv"
    if not csv.exists():
        message = f"reference data not found at {csv} (set LAPOR_SHARED_DATA)"
        if REQUIRE_SHARED_DATA:
            pytest.fail(message + "; CI requires it")
        pytest.skip(message)
    return SHARED_DATA
