"""The suite's and the benches' scratch PostgreSQL databases are dropped even when a session
of another role is still in one: on a server with autovacuum (PostgreSQL's default) its
worker, the superuser's, may be vacuuming a database just as the test that made it ends,
and `DROP DATABASE … WITH (FORCE)` may not end another role's session."""

from __future__ import annotations

import threading
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from tests.conftest import PG_DSN, drop_database

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


def _exists(admin, name: str) -> bool:
    return admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() \
        is not None


@pytest.fixture
def admin():
    with psycopg.connect(f"{PG_DSN}/postgres", autocommit=True, connect_timeout=5) as conn:
        yield conn


def _superuser_session(name: str):
    """A session in database `name` of the server's superuser, standing in for an
    autovacuum worker (which runs as the superuser); skipped where this machine's server
    does not let a test connect as it."""
    parts = urlsplit(PG_DSN)
    host = parts.netloc.rsplit("@", 1)[-1]
    try:
        return psycopg.connect(urlunsplit((parts.scheme, f"postgres@{host}", f"/{name}", "", "")),
                               autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"cannot connect as the superuser 'postgres' to stand in for autovacuum "
                    f"({exc})")


def test_a_database_another_roles_session_holds_is_dropped_once_it_goes(admin):
    name = f"lapor_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        if admin.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
                         ).fetchone()[0]:
            pytest.skip("the tests' own role is a superuser: FORCE ends any session")
        other = _superuser_session(name)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')  # what the fixtures did
        closer = threading.Timer(1.0, other.close)
        closer.start()
        started = time.monotonic()
        drop_database(admin, name)
        waited = time.monotonic() - started
        closer.join()
        assert not _exists(admin, name)
        assert waited >= 0.9  # it waited for the session instead of failing
    finally:
        if _exists(admin, name):
            drop_database(admin, name)


def test_a_database_nobody_holds_is_dropped_at_once_and_a_missing_one_is_no_error(admin):
    name = f"lapor_test_{uuid.uuid4().hex[:12]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(f"{PG_DSN}/{name}", autocommit=True) as own:  # this role's: FORCE ends it
        own.execute("SELECT 1")
        drop_database(admin, name)
    assert not _exists(admin, name)
    drop_database(admin, name)
