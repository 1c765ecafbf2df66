"""Bounds the database puts on callers, and what a database file gives away: a statement or
lock wait never outlasts the caller's own deadline (a broker heartbeat, an RPC deadline),
and SQLite files holding contacts and secrets are readable by their owner only."""

from __future__ import annotations

import os
import stat
import threading
import time

import pytest
import sqlalchemy as sa

from services.infra import db

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
