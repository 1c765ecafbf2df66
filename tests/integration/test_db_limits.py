"""Bounds the database puts on callers, and what a database file gives away: a statement or
lock wait never outlasts the caller's own deadline (a broker heartbeat, an RPC deadline),
and SQLite files holding contacts and secrets are readable by their owner only."""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time

import pytest
import sqlalchemy as sa

from services.infra import db
from tests.integration.helpers import BlackHole

pytestmark = pytest.mark.integration


@pytest.mark.postgres
def test_a_postgresql_statement_is_cut_off_at_the_statement_timeout(postgres_url):
    engine = db.make_engine(postgres_url, statement_timeout=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError) as raised, engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_sleep(10)"))
        assert time.monotonic() - started < 5
        assert "statement timeout" in str(raised.value.orig)
    finally:
        engine.dispose()


def test_a_postgresql_address_that_accepts_and_never_answers_fails_in_seconds():
    """A proxy or load balancer with no server behind it takes the connection and says
    nothing: the caller gets an error after CONNECT_TIMEOUT, not after the driver's 130 s."""
    hole = BlackHole()
    engine = db.make_engine(f"postgresql://lapor@127.0.0.1:{hole.port}/lapor")
    try:
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError, match="timeout"):
            with engine.connect():
                pass
        took = time.monotonic() - started
        assert hole.accepted, "the connection never reached the silent address"
        assert took < db.CONNECT_TIMEOUT * 3, f"took {took:.1f} s"
    finally:
        engine.dispose()
        hole.close()


@pytest.mark.postgres
def test_a_postgresql_lock_wait_ends_at_the_lock_timeout(postgres_url):
    engine = db.make_engine(postgres_url, lock_timeout=0.5)
    holder = db.make_engine(postgres_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (id int primary key, v int)"))
            conn.execute(sa.text("INSERT INTO t VALUES (1, 0)"))
        locked, release = threading.Event(), threading.Event()

        def hold():
            with holder.begin() as conn:
                conn.execute(sa.text("UPDATE t SET v = 1 WHERE id = 1"))
                locked.set()
                release.wait(10)

        thread = threading.Thread(target=hold)
        thread.start()
        assert locked.wait(5)
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError) as raised, engine.begin() as conn:
            conn.execute(sa.text("UPDATE t SET v = 2 WHERE id = 1"))
        assert time.monotonic() - started < 5
        assert "lock timeout" in str(raised.value.orig)
        release.set()
        thread.join(5)
    finally:
        engine.dispose()
        holder.dispose()


def test_a_sqlite_writer_waits_for_the_write_lock_at_most_the_statement_timeout(sqlite_url):
    engine = db.make_engine(sqlite_url, statement_timeout=0.5)
    holder = db.make_engine(sqlite_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (id int primary key)"))
        locked, release = threading.Event(), threading.Event()

        def hold():
            with holder.begin():  # BEGIN IMMEDIATE: the write lock
                locked.set()
                release.wait(10)

        thread = threading.Thread(target=hold)
        thread.start()
        assert locked.wait(5)
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError), engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO t VALUES (1)"))
        assert time.monotonic() - started < 5
        release.set()
        thread.join(5)
    finally:
        engine.dispose()
        holder.dispose()


def test_a_sqlite_write_gives_the_process_its_write_lock_back_when_it_commits(sqlite_url):
    """Not only when its connection goes back to the pool: a writer on another thread goes
    on at once, and a second write on the same kept connection does not wait for itself."""
    engine = db.make_engine(sqlite_url, statement_timeout=30)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE t (id int primary key)"))
        other_wrote = threading.Event()

        def write(value: int) -> None:
            with engine.begin() as other:
                other.execute(sa.text("INSERT INTO t VALUES (:v)"), {"v": value})
            other_wrote.set()

        with engine.connect() as kept:
            with kept.begin():
                kept.execute(sa.text("INSERT INTO t VALUES (1)"))
            # Committed, the connection still out of the pool.
            thread = threading.Thread(target=write, args=(2,))
            thread.start()
            assert other_wrote.wait(10), "the other writer waited for a connection to close"
            thread.join(5)
            with kept.begin():  # it would have waited the whole 30 s for the lock it held
                kept.execute(sa.text("INSERT INTO t VALUES (3)"))
            with kept.begin():
                kept.execute(sa.text("INSERT INTO t VALUES (4)"))
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM t")).scalar() == 4
    finally:
        engine.dispose()


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_sqlite_files_are_readable_by_their_owner_only(tmp_path):
    path = tmp_path / "var" / "notify.db"
    engine = db.make_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE contacts (email text)"))
            conn.execute(sa.text("INSERT INTO contacts VALUES ('rina@contoh.id')"))
        for name in ("notify.db", "notify.db-wal", "notify.db-shm"):
            assert _mode(path.parent / name) == 0o600, name
    finally:
        engine.dispose()


def test_a_file_left_world_readable_by_an_earlier_release_is_tightened(tmp_path):
    path = tmp_path / "intake.db"
    first = db.make_engine(f"sqlite:///{path}")
    with first.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (x int)"))
    first.dispose()
    for name in ("intake.db", "intake.db-wal", "intake.db-shm"):
        if (tmp_path / name).exists():
            os.chmod(tmp_path / name, 0o644)
    engine = db.make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT * FROM t"))
        assert _mode(path) == 0o600
    finally:
        engine.dispose()


def _backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()


def _terminate(postgres_url: str, pid: int) -> None:
    admin = db.make_engine(postgres_url)
    try:
        with admin.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                                {"pid": pid}).scalar_one()
    finally:
        admin.dispose()


@contextlib.contextmanager
def _pooled_connection_dropped(postgres_url: str, monkeypatch, idle_ping: float):
    """An engine whose one pooled connection the server has just dropped (a database
    restart, a proxy's idle cut), and that connection's backend pid."""
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", idle_ping)
    engine = db.make_engine(postgres_url, pool_size=2)
    try:
        first = _backend_pid(engine)
        _terminate(postgres_url, first)
        yield engine, first
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_pooled_connection_the_server_dropped_while_idle_is_replaced_unseen(
        postgres_url, monkeypatch):
    with _pooled_connection_dropped(postgres_url, monkeypatch, 0.2) as (engine, first):
        time.sleep(0.3)
        assert _backend_pid(engine) != first  # no error reached the caller


@pytest.mark.postgres
def test_a_connection_dropped_between_back_to_back_uses_fails_once_then_is_replaced(
        postgres_url, monkeypatch):
    with _pooled_connection_dropped(postgres_url, monkeypatch, 60.0) as (engine, first):
        # Used again at once, it is not pinged: its statement fails (the caller's usual
        # "try again" path) and the pool lets it go.
        with pytest.raises(sa.exc.OperationalError) as raised:
            _backend_pid(engine)
        assert raised.value.connection_invalidated
        assert _backend_pid(engine) != first


def _kept_pid(kept) -> int:
    with kept.begin() as conn:
        return conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()


@contextlib.contextmanager
def _kept(postgres_url: str):
    """An engine and a KeptConnection on it, both closed afterwards."""
    engine = db.make_engine(postgres_url, pool_size=2)
    kept = db.KeptConnection(engine)
    try:
        yield engine, kept
    finally:
        kept.release()
        engine.dispose()


@pytest.mark.postgres
def test_a_kept_connection_serves_a_busy_thread_and_goes_back_when_released(postgres_url):
    with _kept(postgres_url) as (engine, kept):
        first = _kept_pid(kept)
        assert _kept_pid(kept) == first and engine.pool.checkedout() == 1
        kept.release()
        assert engine.pool.checkedout() == 0
        with pytest.raises(RuntimeError), kept.begin() as conn:  # rolled back, given back
            conn.execute(sa.text("CREATE TABLE kept_t (id int)"))
            raise RuntimeError("the caller failed")
        assert engine.pool.checkedout() == 0
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("kept_t")


@pytest.mark.postgres
def test_a_kept_connection_the_server_dropped_while_idle_is_replaced_unseen(
        postgres_url, monkeypatch):
    """Kept but unused as long as the pool would ping it: it is pinged, and the next
    transaction gets a connection that answers, without an error on the way."""
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 0.2)
    with _kept(postgres_url) as (_engine, kept):
        first = _kept_pid(kept)
        _terminate(postgres_url, first)
        time.sleep(0.3)
        assert _kept_pid(kept) != first


@pytest.mark.postgres
def test_a_kept_connection_dropped_while_busy_fails_once_then_is_replaced(
        postgres_url, monkeypatch):
    monkeypatch.setattr(db, "IDLE_PING_SECONDS", 60.0)
    with _kept(postgres_url) as (_engine, kept):
        first = _kept_pid(kept)
        _terminate(postgres_url, first)
        with pytest.raises(sa.exc.OperationalError):
            _kept_pid(kept)
        assert _kept_pid(kept) != first


@pytest.mark.postgres
def test_a_burst_beyond_the_pool_size_keeps_its_sessions_for_the_next_one(postgres_url):
    """Up to twice pool_size connections at once, each kept once opened: a process with
    more busy threads than pool_size does not open and close a PostgreSQL session (a
    forked server process) for every burst."""
    engine = db.make_engine(postgres_url, pool_size=2, pool_timeout=0.2)
    try:
        def burst() -> set[int]:
            conns = [engine.connect() for _ in range(4)]
            try:
                return {c.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
                        for c in conns}
            finally:
                for c in conns:
                    c.close()

        first = burst()
        assert len(first) == 4
        assert burst() == first
        # And no more than twice pool_size at once: the fifth caller waits, then fails.
        held = [engine.connect() for _ in range(4)]
        try:
            with pytest.raises(sa.exc.TimeoutError):
                engine.connect()
        finally:
            for c in held:
                c.close()
    finally:
        engine.dispose()
