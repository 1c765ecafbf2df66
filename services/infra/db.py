"""Storage shared by the services: engines for SQLite (default) and PostgreSQL, ordered
migrations, and the processed-events table that makes consumers idempotent."""

from __future__ import annotations

import contextlib
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def make_engine(url: str, *, pool_size: int = 5, pool_timeout: float = 30.0) -> Engine:
    """An engine for `url`: sqlite:///path (WAL, immediate write transactions) or postgresql://.

    `pool_size` should cover every thread that may hold a connection at once (RPC workers,
    consumer, relay); `pool_timeout` is how long a caller waits for a free one before failing.

    Errors never quote the statement's values: they may be contacts or secrets, and error
    messages end up in logs.
    """
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                                  hide_parameters=True)
        _configure_sqlite(engine)
        return engine
    return sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                            pool_timeout=pool_timeout, hide_parameters=True)


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling begins DEFERRED transactions lazily, so two writers can
    # both read and then fail to upgrade with "database is locked" instead of waiting. We take
    # the write lock up front (BEGIN IMMEDIATE) unless the caller asked for a read.
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):
        if conn.get_execution_options().get("lapor_readonly"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


def _enable_wal(cursor) -> None:
    """Switches a new database file to WAL. The switch needs the file to itself and does not
    wait on the busy timeout, so replicas opening a fresh file together retry it."""
    for _ in range(100):
        try:
            if cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() == "wal":
                return
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    raise sqlite3.OperationalError("could not switch the SQLite file to WAL mode: it stays "
                                   "locked by another process")


@contextlib.contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction: on SQLite it does not take the write lock."""
    with engine.connect() as conn:
        conn = conn.execution_options(lapor_readonly=True)
        with conn.begin():
            yield conn


def is_postgres(conn_or_engine) -> bool:
    return conn_or_engine.dialect.name == "postgresql"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    apply: Callable[[Connection], None]


_schema_migrations = sa.Table(
    "schema_migrations",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
)


def migrate(engine: Engine, service: str, migrations: list[Migration]) -> list[int]:
    """Applies the migrations not yet applied, in order, in one transaction; returns them.

    Several replicas may start at once: PostgreSQL serialises them with an advisory lock,
    SQLite with its write lock.
    """
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise ValueError(f"{service}: migration versions must be unique and ascending")
    applied: list[int] = []
    with engine.begin() as conn:
        if is_postgres(conn):
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                         {"key": zlib.crc32(f"lapor-migrate-{service}".encode())})
        _schema_migrations.create(conn, checkfirst=True)
        done = set(conn.execute(sa.select(_schema_migrations.c.version)).scalars())
        for migration in migrations:
            if migration.version in done:
                continue
            migration.apply(conn)
            conn.execute(_schema_migrations.insert().values(
                version=migration.version, name=migration.name, applied_at=utcnow()))
            applied.append(migration.version)
    return applied


def processed_events_table(metadata: sa.MetaData) -> sa.Table:
    """Event ids a consumer has already handled (its dedupe memory)."""
    return sa.Table(
        "processed_events",
        metadata,
        sa.Column("consumer", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )


def first_delivery(conn: Connection, consumer: str, event_id: str) -> bool:
    """Records the event as handled inside the caller's transaction; False if it already was."""
    result = conn.execute(
        sa.text("INSERT INTO processed_events (consumer, event_id, processed_at) "
                "VALUES (:consumer, :event_id, :at) ON CONFLICT DO NOTHING"),
        {"consumer": consumer, "event_id": event_id, "at": utcnow()},
    )
    return result.rowcount == 1


def check(engine: Engine) -> bool:
    """Readiness: the database answers."""
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return True
    except sa.exc.SQLAlchemyError:
        return False
