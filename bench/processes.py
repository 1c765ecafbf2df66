"""What the benches share about the processes they start, and their scratch databases."""

from __future__ import annotations

import contextlib
import http.client
import subprocess
import time
from pathlib import Path


def wait_ready(port: int, proc: subprocess.Popen, log: Path, what: str,
               seconds: float = 60) -> None:
    """Until GET /readyz on `port` answers 200; stops the bench with the process's log
    when it exits first or does not become ready within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited:\n{log.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            try:
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    return
            finally:
                conn.close()
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{what} did not become ready:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM, then SIGKILL when the process has not drained within `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextlib.contextmanager
def postgres_databases(bench: str, dsn: str, names: list[str]):
    """The databases `names` created afresh on `dsn`'s server, yielded as their URLs in the
    same order and dropped afterwards; None, having said that `bench` is skipped, when the
    server does not answer."""
    import psycopg

    from tests.conftest import drop_database

    try:
        admin = psycopg.connect(f"{dsn}/postgres", autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        print(f"{bench} (PostgreSQL): skipped, {dsn} does not answer ({exc})".strip())
        yield None
        return
    with admin:
        try:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
                admin.execute(f'CREATE DATABASE "{name}"')
            yield [f"{dsn}/{name}" for name in names]
        finally:
            for name in names:
                drop_database(admin, name)
