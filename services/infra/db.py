"""Storage shared by the services: engines for SQLite (default) and PostgreSQL, migrations
(services.infra.migrations, Alembic), and the processed-events table that makes consumers
idempotent."""

from __future__ import annotations

import collections
import contextlib
import contextvars
import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything we store is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


# Every statement is bounded, so a handler or an RPC never waits on the database longer than
# its caller (a broker heartbeat, a client's deadline) waits on it. Migrations lift them.
STATEMENT_TIMEOUT = 15.0
LOCK_TIMEOUT = 5.0
# A PostgreSQL connection idle in the pool this long is pinged before use (one that is not
# answering is replaced). A ping on every checkout was a round trip more per transaction: a
# quarter of intake's time per submission under load.
IDLE_PING_SECONDS = 1.0
# A PostgreSQL address that accepts and never completes the start-up (a load balancer or
# proxy with no server behind it) fails the connection after this many seconds instead of
# the driver's default 130 s, during which a request or a consumer waited on it. TCP
# keepalives find a server host gone silent under an idle or waiting connection within
# half a minute, and data the server never acknowledges fails the connection after
# TCP_USER_TIMEOUT_MS.
CONNECT_TIMEOUT = 5
TCP_USER_TIMEOUT_MS = 20_000
_PG_TCP = {"connect_timeout": CONNECT_TIMEOUT, "keepalives": 1, "keepalives_idle": 10,
           "keepalives_interval": 5, "keepalives_count": 3,
           "tcp_user_timeout": TCP_USER_TIMEOUT_MS}


# psycopg turns a query's %(name)s placeholders into $n by a regular expression, and keeps
# the result (an LRU of 128) only for queries of at most 50 parameters and 4 KiB, to spare
# its cache the ever-different statements of ORMs. Ours are few and fixed (db.Insert,
# db.Statement, insert_together's plans), and the larger are the busiest: a ticket's
# insert, a round of notify's records, parsed again at every run (150 µs for 2 KB).
QUERY_PARSES_KEPT_UP_TO = {"MAX_CACHED_STATEMENT_PARAMS": 1_000,
                           "MAX_CACHED_STATEMENT_LENGTH": 64 * 1024}


def _keep_query_parses() -> None:
    """Lets psycopg keep the parse of queries up to QUERY_PARSES_KEPT_UP_TO (its module's
    limits, private: a psycopg without them is left as it is)."""
    try:
        from psycopg import _queries
    except ImportError:
        return
    for name, value in QUERY_PARSES_KEPT_UP_TO.items():
        if getattr(_queries, name, value) < value:
            setattr(_queries, name, value)


def make_engine(url: str, *, pool_size: int = 5, pool_timeout: float = 30.0,
                statement_timeout: float = STATEMENT_TIMEOUT,
                lock_timeout: float = LOCK_TIMEOUT) -> Engine:
    """An engine for `url`: sqlite:///path (WAL, immediate write transactions) or postgresql://.

    `pool_size` should cover every thread that may hold a connection at once (RPC workers,
    consumer, relay); up to twice as many are opened in a burst, and every one opened is
    kept for the next caller (no overflow connection is closed when it is given back: a
    process busier than `pool_size` threads opened and closed a PostgreSQL session every
    second or two, a server process forked each time). `pool_timeout` is how long a caller
    waits for a free one before failing.
    PostgreSQL statements end after `statement_timeout` seconds and lock waits after
    `lock_timeout`; on SQLite a writer waits at most `statement_timeout` for the write lock.
    A new SQLite file is created readable by its owner only (it holds contacts and secrets).

    Errors never quote the statement's values: they may be contacts or secrets, and error
    messages end up in logs.
    """
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            _private_file(Path(path))
        pool = ({} if not path or path == ":memory:" else
                {"pool_size": 2 * pool_size, "max_overflow": 0, "pool_timeout": pool_timeout})
        engine = sa.create_engine(url, connect_args={"timeout": statement_timeout,
                                                     "check_same_thread": False},
                                  hide_parameters=True, **pool)
        writers = (_WriterQueue(engine, _write_lock(Path(path)), statement_timeout)
                   if path and path != ":memory:" else None)
        _configure_sqlite(engine, busy_ms=int(statement_timeout * 1000), writers=writers)
        return engine
    _keep_query_parses()
    options = (f"-c statement_timeout={int(statement_timeout * 1000)} "
               f"-c lock_timeout={int(lock_timeout * 1000)}")
    engine = sa.create_engine(url, pool_size=2 * pool_size, max_overflow=0,
                              pool_timeout=pool_timeout, hide_parameters=True,
                              connect_args={"options": options, **_PG_TCP})
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Pings a pooled connection before use when it has been idle IDLE_PING_SECONDS or more
    (a database restarted or a proxy that dropped idle connections meanwhile); one that does
    not answer is discarded and the pool hands out another (SQLAlchemy retries a checkout
    that raises DisconnectionError). Connections used back to back skip the round trip; one
    that breaks in between fails its statement, and SQLAlchemy then discards every
    connection opened before it, as it does for a failed ping."""

    @sa.event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_conn, record):
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn, record, _proxy):
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            raise sa.exc.DisconnectionError("the pooled connection does not answer") from exc


def _private_file(path: Path) -> None:
    """Creates the database file 0600 before SQLite opens it (SQLite gives its -wal and -shm
    files the same mode), and tightens one an earlier release left readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = candidate.stat().st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            candidate.chmod(mode & 0o700)


def _configure_sqlite(engine: Engine, busy_ms: int, writers: _WriterQueue | None = None
                      ) -> None:
    # pysqlite's own transaction handling begins DEFERRED transactions lazily, so two writers can
    # both read and then fail to upgrade with "database is locked" instead of waiting. We take
    # the write lock up front (BEGIN IMMEDIATE) unless the caller asked for a read.
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):
        # Straight on the driver's connection: through SQLAlchemy's statement machinery a
        # BEGIN cost a fifth of a millisecond, once per transaction of every service. Its
        # errors are wrapped as SQLAlchemy wraps those of any statement ("database is
        # locked" stays an OperationalError to the callers).
        dbapi_conn = conn.connection.dbapi_connection
        if conn.get_execution_options().get("lapor_readonly"):
            _begin(dbapi_conn, "BEGIN")
            return
        if writers is not None:
            writers.take(dbapi_conn)
        try:
            _begin(dbapi_conn, "BEGIN IMMEDIATE")
        except BaseException:
            if writers is not None:
                writers.give_back(dbapi_conn)
            raise


def _begin(dbapi_conn, statement: str) -> None:
    try:
        dbapi_conn.execute(statement)
    except sqlite3.Error as exc:
        raise sa.exc.DBAPIError.instance(statement, (), exc, sqlite3.Error) from exc


# One lock per SQLite file for the write transactions of this process. SQLite's own busy
# handler makes a writer that finds the file locked sleep and poll (1 ms, 2 ms, 5 ms, ... up to
# 100 ms at a time), so under a burst most of a submission's time went to sleeping while the
# lock was already free again: the threads of one process now queue for it in order and
# SQLite's timeout only arbitrates between processes.
_WRITE_LOCKS: dict[str, threading.Lock] = {}
_WRITE_LOCKS_GUARD = threading.Lock()


def _write_lock(path: Path) -> threading.Lock:
    key = str(path.resolve())
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(key, threading.Lock())


class _WriterQueue:
    """Write transactions of one engine take the file's lock before BEGIN IMMEDIATE and give
    it back once their COMMIT or ROLLBACK has returned (or the connection goes back to the
    pool, or is dropped). A writer that cannot have the lock within `wait` seconds (a
    transaction opened inside another's, say) goes ahead without it and meets SQLite's busy
    timeout as before, so the lock cannot deadlock anything."""

    def __init__(self, engine: Engine, lock: threading.Lock, wait: float):
        self.lock, self.wait = lock, wait
        self.holders: set[int] = set()
        dialect = engine.dialect
        commit, rollback = dialect.do_commit, dialect.do_rollback

        def do_commit(dbapi_conn):
            try:
                commit(dbapi_conn)
            finally:
                self.give_back(dbapi_conn)

        def do_rollback(dbapi_conn):
            try:
                rollback(dbapi_conn)
            finally:
                self.give_back(dbapi_conn)

        dialect.do_commit, dialect.do_rollback = do_commit, do_rollback
        for name in ("checkin", "close", "invalidate", "soft_invalidate"):
            sa.event.listen(engine.pool, name,
                            lambda dbapi_conn, *_: self.give_back(dbapi_conn))

    def take(self, dbapi_conn) -> None:
        if self.lock.acquire(timeout=self.wait):
            self.holders.add(id(dbapi_conn))

    def give_back(self, dbapi_conn) -> None:
        # SQLAlchemy hands do_commit and do_rollback the pool's proxy of the connection,
        # the pool's events the driver's connection itself; the lock was taken with the
        # latter. (Keyed by the proxy, a commit gave nothing back: the lock stayed held
        # until the connection went back to the pool, and a second write transaction on a
        # kept connection waited out `wait`.)
        key = id(getattr(dbapi_conn, "dbapi_connection", dbapi_conn))
        if key in self.holders:
            self.holders.discard(key)
            self.lock.release()


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


@contextlib.contextmanager
def unwrapped(engine: Engine) -> Iterator[Connection]:
    """A connection whose statements each run on their own, outside any transaction: for a
    single read of this module's statements (Statement, Insert), which sees one consistent
    state by itself. On PostgreSQL that is one round trip where `reading` takes three
    (BEGIN, the statement, ROLLBACK as the connection goes back to the pool); on SQLite it
    saves BEGIN and COMMIT. SQLAlchemy's own execute must not be used on it: it would
    begin a transaction."""
    with engine.connect() as conn:
        if not is_postgres(engine):  # SQLite's connections have no implicit transaction
            yield conn
            return
        dbapi_conn = _autocommitting(conn)
        try:
            yield conn
        finally:
            _not_autocommitting(conn, dbapi_conn)


def _autocommitting(conn: Connection):
    """Turns the driver's autocommit on for `conn` (PostgreSQL); its driver connection. A
    refusal (a broken connection) is raised as SQLAlchemy raises the driver's errors."""
    dbapi_conn = conn.connection.dbapi_connection
    try:
        dbapi_conn.autocommit = True
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, exc, dbapi_conn, None, None, None, False) from exc
    return dbapi_conn


def _not_autocommitting(conn: Connection, dbapi_conn) -> None:
    """Turns it off again before the connection can go back to the pool or into a
    transaction; a connection that refuses is invalidated, so nobody gets it with
    autocommit still on."""
    try:
        dbapi_conn.autocommit = False
    except Exception as exc:
        with contextlib.suppress(Exception):
            conn.invalidate(exc)


@contextlib.contextmanager
def each_committed(conn: Connection) -> Iterator[Connection]:
    """`conn.begin()`, except on PostgreSQL: there each statement of the block commits as it
    runs (the driver's autocommit), so a block of one write costs one round trip instead of
    three (BEGIN, the statement, COMMIT), and a failure part-way keeps what ran before it.
    For blocks that are correct statement by statement, such as a claim by one UPDATE …
    RETURNING followed by reads. On SQLite (whose write lock BEGIN IMMEDIATE takes up
    front) it is an ordinary transaction. `conn` must not be in a transaction."""
    if not is_postgres(conn):
        with conn.begin():
            yield conn
        return
    dbapi_conn = _autocommitting(conn)
    try:
        # SQLAlchemy's bookkeeping only: psycopg sends no BEGIN, and COMMIT nothing, when
        # autocommit left no transaction open.
        with conn.begin():
            yield conn
    finally:
        _not_autocommitting(conn, dbapi_conn)


class KeptConnection:
    """Transactions of a busy thread on one connection it keeps between them, instead of
    taking one from the pool for each: a checkout and check-in cost about half of a short
    transaction's 100 µs of Python on SQLite. Each thread of its own keeps its own.

    The thread gives it back with release() before it waits for work. One left unused
    IDLE_PING_SECONDS or more is pinged first, as the pool pings a connection idle that
    long, and replaced if it does not answer; one whose transaction raised is given back
    (a connection the server dropped is then discarded by the pool)."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._local = threading.local()

    @contextlib.contextmanager
    def begin(self, *, each_statement: bool = False) -> Iterator[Connection]:
        """A transaction on the kept connection; with `each_statement`, each_committed()."""
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and (conn.closed or conn.invalidated or not self._answers(
                conn, time.monotonic() - local.used)):
            self.release()
            conn = None
        if conn is None:
            conn = local.conn = self.engine.connect()
        try:
            with each_committed(conn) if each_statement else conn.begin():
                yield conn
        except BaseException:
            self.release()
            raise
        local.used = time.monotonic()

    def _answers(self, conn: Connection, idle: float) -> bool:
        """False for a PostgreSQL connection unused IDLE_PING_SECONDS or more that does not
        answer a ping (it is discarded): the pool's check, which a kept one never meets."""
        if idle < IDLE_PING_SECONDS or not is_postgres(self.engine):
            return True
        try:
            self.engine.dialect.do_ping(conn.connection.dbapi_connection)
            return True
        except Exception as exc:
            conn.invalidate(exc)
            return False

    def release(self) -> None:
        """Gives this thread's connection back to the pool, if it keeps one."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


# -- one transaction for several handled events ------------------------------------------------
# A consumer that has several messages in hand runs their handlers inside one batch(): each
# handler still writes `with db.begin(engine) as conn:` and dedupes on its event id, but all of
# them share the batch's transaction, so a burst costs one BEGIN/COMMIT (and on SQLite one
# turn of the write lock) per batch instead of per event. Anything a handler raised, even if
# it caught it afterwards, fails the whole batch: it is rolled back and the consumer handles
# the messages again one by one, each in its own transaction as before.
_scope = threading.local()


class BatchFailed(RuntimeError):
    """A handler in the batch raised inside its transaction; the batch was rolled back."""


class _Batch:
    def __init__(self, engine: Engine):
        self.engine = engine
        self.conn: Connection | None = None
        self.failed = False
        self.after: dict[Callable[[], None], None] = {}
        self.before: dict[Callable[[Connection], None], None] = {}
        self.memo: dict = {}


def _current(engine: Engine) -> _Batch | None:
    batch = getattr(_scope, "batch", None)
    return batch if batch is not None and batch.engine is engine else None


@contextlib.contextmanager
def begin(engine: Engine) -> Iterator[Connection]:
    """`engine.begin()`, except inside batch(engine) on this thread: then the batch's
    transaction, which commits when the batch ends."""
    batch = _current(engine)
    if batch is None:
        with engine.begin() as conn:
            yield conn
        return
    try:
        yield batch.conn
    except BaseException:
        batch.failed = True
        raise


def _batch_of(conn: Connection) -> _Batch | None:
    """The batch on this thread whose transaction `conn` is, if any."""
    batch = _current(conn.engine)
    return batch if batch is not None and batch.conn is conn else None


def batch_memo(conn: Connection) -> dict | None:
    """A dict that lives as long as the batch(engine) whose transaction `conn` is (None
    outside one): what a handler read ahead for the batch's events, or keeps to write once
    at its end. A batch redone event by event has none."""
    batch = _batch_of(conn)
    return batch.memo if batch is not None else None


def before_commit(conn: Connection, action: Callable[[Connection], None]) -> None:
    """Runs action(conn) once, in the batch's transaction just before it commits, however
    many handlers asked for it; `conn` must be a batch's (batch_memo is not None). What it
    raises fails the batch like a handler's error."""
    batch = _batch_of(conn)
    if batch is None:
        raise RuntimeError("before_commit() outside a batch")
    batch.before[action] = None


def hold_until_commit(conn: Connection, key: str, items: Iterable,
                      write: Callable[[Connection, list], None]) -> None:
    """Inside a batch (batch_memo(conn) is not None): `items` join what the batch holds under
    `key`, which write(conn, held) gets in one call, in the order they came, just before the
    batch commits, or earlier through write_held: the rows a batch's handlers make that
    nothing in the batch reads, written together instead of one statement an event."""
    memo = batch_memo(conn)
    if memo is None:
        raise RuntimeError("hold_until_commit() outside a batch")
    held = memo.get(key)
    if held is None:
        held = memo[key] = []
        before_commit(conn, lambda c: write_held(c, key, write))
    held.extend(items)


def write_held(conn: Connection, key: str, write: Callable[[Connection, list], None]) -> None:
    """Writes now what the batch holds under `key` (hold_until_commit), if anything: before a
    statement that must see it."""
    memo = batch_memo(conn)
    held = memo.pop(key, None) if memo is not None else None
    if held:
        write(conn, held)


def after_commit(engine: Engine, action: Callable[[], None]) -> None:
    """Runs `action` now, or inside batch(engine) once the batch has committed (once, however
    many handlers asked for it); never after a rollback."""
    batch = _current(engine)
    if batch is None:
        action()
    else:
        batch.after[action] = None


def log_after_commit(engine: Engine, logger: logging.Logger, msg: str, *args,
                     extra: dict | None = None) -> None:
    """Logs at INFO once the handler's work is committed, with the log context (tracking and
    event id) of the moment it was asked: inside batch(engine) a line written at once would
    come before a commit that may still be rolled back, and again when the batch is redone
    event by event."""
    context = contextvars.copy_context()
    after_commit(engine, lambda: context.run(logger.info, msg, *args, extra=extra))


@contextlib.contextmanager
def batch(engine: Engine) -> Iterator[None]:
    """One transaction for the db.begin(engine) blocks run on this thread inside it; raises
    BatchFailed (after rolling back) if any of them raised."""
    if getattr(_scope, "batch", None) is not None:
        raise RuntimeError("db.batch() does not nest")
    current = _Batch(engine)
    with engine.begin() as conn:
        current.conn = conn
        _scope.batch = current
        try:
            yield
            if current.failed:
                raise BatchFailed("a handler in the batch failed inside its transaction")
            for action in current.before:
                action(conn)
        finally:
            _scope.batch = None
    for action in current.after:
        action()


def is_postgres(conn_or_engine) -> bool:
    return conn_or_engine.dialect.name == "postgresql"


def migrate(engine: Engine, service: str, plan, after: Callable[[Connection], None] | None = None
            ) -> list[str]:
    """Brings the service's database to its newest schema (services.infra.migrations);
    `after` runs under the same lock, e.g. to seed reference data once."""
    from services.infra import migrations

    if plan.service != service:
        raise ValueError(f"migration plan of {plan.service} given for {service}")
    return migrations.upgrade(engine, plan, after)


def processed_events_table(metadata: sa.MetaData) -> sa.Table:
    """Event ids a consumer has already handled (its dedupe memory)."""
    table = sa.Table(
        "processed_events",
        metadata,
        sa.Column("consumer", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
    )
    sa.Index("ix_processed_events_processed_at", table.c.processed_at)
    return table


# One per table, key and columns updated, each compiled once per dialect and run on the
# driver's cursor like every Insert.
@functools.cache
def _upserter(table: sa.Table, key: str, update: tuple[str, ...], newest: str | None
              ) -> Insert:
    return Insert(table, update_on=(key, update), newest=newest)


def upsert(conn: Connection, table: sa.Table, key: str, values: dict,
           update: tuple[str, ...], newest: str | None = None) -> None:
    """Inserts `values`, or sets the `update` columns of the row with the same `key` to
    theirs (one statement on SQLite and PostgreSQL); with `newest`, only if their `newest`
    column is not older than the stored row's (a late or repeated write loses)."""
    _upserter(table, key, update, newest).execute(conn, values)


def upsert_many(conn: Connection, table: sa.Table, key: str, rows: list[dict],
                update: tuple[str, ...], newest: str | None = None) -> None:
    """upsert() of each row, in order, as few statements: on PostgreSQL one for up to
    TOGETHER_MAX_ROWS rows. Of rows with the same `key` only the one upsert() would leave
    is written (the last, or with `newest` the newest, the later of equals), since one
    statement may not change a row twice."""
    kept: dict = {}
    for row in rows:
        held = kept.get(row[key])
        if held is None or newest is None or row[newest] >= held[newest]:
            kept[row[key]] = row
    rows = list(kept.values())
    upserter = _upserter(table, key, update, newest)
    for start in range(0, len(rows), TOGETHER_MAX_ROWS):
        insert_together(conn, [(upserter, rows[start:start + TOGETHER_MAX_ROWS])])


class Insert:
    """An INSERT into `table`, compiled once per dialect and set of columns given, and run
    straight on the driver's cursor of the caller's connection (in its transaction).

    Through SQLAlchemy's statement machinery an insert costs 20–70 µs of Python before the
    driver sees it (an execution context, the parameters processed through the compiled
    form, a result set up), and the hot paths insert several rows per report or event.
    Here the values still go through each column type's bind processor, as SQLAlchemy would
    send them; a column left out gets its scalar default, as SQLAlchemy would fill it; and
    a driver error is wrapped as SQLAlchemy wraps it (a duplicate key stays an
    IntegrityError, its values hidden). Rows of one call must name the same columns.
    `skip_duplicates`: a row whose key is taken is left out (ON CONFLICT DO NOTHING) and
    not counted. `update_on=(key, columns)`: a row whose `key` is taken sets those columns
    of the stored row to its own instead (ON CONFLICT DO UPDATE), and with `newest` only
    when its value of that column is not older than the stored row's.
    """

    def __init__(self, table: sa.Table, *, skip_duplicates: bool = False,
                 update_on: tuple[str, tuple[str, ...]] | None = None,
                 newest: str | None = None):
        for column in table.columns:
            if column.default is not None and not column.default.is_scalar:
                raise ValueError(f"{table.name}.{column.key}: only scalar defaults are filled")
        if skip_duplicates and update_on:
            raise ValueError("a taken key either skips the row or updates the stored one")
        self.table = table
        if newest is not None and not update_on:
            raise ValueError("`newest` decides between a stored row and an update of it")
        self.skip_duplicates = skip_duplicates
        self.update_on = update_on
        self.newest = newest
        self._plans: dict[tuple, tuple] = {}

    def _statement(self, dialect):
        if not self.skip_duplicates and not self.update_on:
            return self.table.insert()
        insert = (postgresql.insert if dialect.name == "postgresql" else sqlite_dialect.insert
                  )(self.table)
        if self.skip_duplicates:
            return insert.on_conflict_do_nothing()
        key, update = self.update_on
        return insert.on_conflict_do_update(
            index_elements=[key], set_={name: insert.excluded[name] for name in update},
            where=None if self.newest is None
            else self.table.c[self.newest] <= insert.excluded[self.newest])

    def _plan(self, dialect, keys: tuple[str, ...]) -> tuple:
        plan = self._plans.get((dialect.name, keys))
        if plan is None:
            columns = self.table.columns
            unknown = set(keys) - set(columns.keys())
            if unknown:
                raise KeyError(f"{self.table.name} has no column {sorted(unknown)}")
            defaults = {c.key: c.default.arg for c in columns
                        if c.key not in keys and c.default is not None}
            names = [c.key for c in columns if c.key in keys or c.key in defaults]
            # inline(): no RETURNING of the new key, which nothing here reads.
            compiled = (self._statement(dialect).inline()
                        .compile(dialect=dialect, column_keys=names))
            order = tuple(compiled.positiontup) if compiled.positional else tuple(names)
            processors = tuple(
                (name, columns[name].type.dialect_impl(dialect).bind_processor(dialect))
                for name in order)
            plan = (compiled.string, order, processors, defaults, compiled.positional)
            self._plans[(dialect.name, keys)] = plan
        return plan

    def execute(self, conn: Connection, rows: dict | list[dict]) -> int:
        """Inserts one row or several (executemany); the number of rows inserted."""
        return self._run(conn, rows, counted=True)

    def send(self, conn: Connection, rows: dict | list[dict]) -> None:
        """As execute(), without the count."""
        self._run(conn, rows, counted=False)

    def _run(self, conn: Connection, rows: dict | list[dict], counted: bool) -> int | None:
        rows = [rows] if isinstance(rows, dict) else rows
        if not rows:
            return 0
        keys = tuple(rows[0])
        if any(row.keys() != rows[0].keys() for row in rows[1:]):
            raise ValueError(f"rows for {self.table.name} name different columns")
        dialect = conn.dialect
        statement, order, processors, defaults, positional = self._plan(dialect, keys)
        params = []
        for row in rows:
            if defaults:
                row = {**defaults, **row}
            values = [process(row[name]) if process else row[name]
                      for name, process in processors]
            params.append(values if positional else dict(zip(order, values, strict=True)))
        many = len(params) > 1
        return _on_cursor(conn, statement, params if many else params[0], many,
                          None if not counted else
                          lambda cursor: len(params) if cursor.rowcount < 0 else cursor.rowcount)


# One per combination of inserts, columns and row counts (a handful per service), each
# compiled once per dialect; row counts up to TOGETHER_MAX_ROWS a part.
_together_plans: dict[tuple, tuple] = {}
TOGETHER_MAX_ROWS = 8


def insert_together(conn: Connection, parts: list[tuple[Insert, dict | list[dict]]]) -> None:
    """Several inserts (each an Insert and its rows) in the caller's transaction. On
    PostgreSQL they are one statement, each insert a data-modifying WITH of it: one round
    trip and one statement for the server, where a pipeline of them cost psycopg more CPU
    than the round trips it saved. The rows are written as each Insert writes them (bind
    processors, scalar defaults, ON CONFLICT as the Insert says); their counts are not
    returned, and a duplicate key fails the whole statement, raised as SQLAlchemy raises
    it. Rows of one part must name the same columns. On SQLite, each insert in turn, and
    so on PostgreSQL when a part has more than TOGETHER_MAX_ROWS rows (a statement is
    planned and kept for each count of rows)."""
    parts = [(insert, [rows] if isinstance(rows, dict) else rows) for insert, rows in parts]
    parts = [(insert, rows) for insert, rows in parts if rows]
    if not parts:
        return
    dialect = conn.dialect
    if dialect.name != "postgresql" or not together_fits(parts) or (
            len(parts) == 1 and len(parts[0][1]) == 1):
        for insert, rows in parts:
            insert.send(conn, rows)
        return
    shape = tuple((id(insert), tuple(rows[0]), len(rows)) for insert, rows in parts)
    plan = _together_plans.get(shape)
    if plan is None:
        plan = _together_plans[shape] = _together_plan(dialect, parts)
    statement, binds = plan
    params = {}
    for (insert, rows), (defaults, row_binds) in zip(parts, binds, strict=True):
        keys = rows[0].keys()
        for row, names in zip(rows, row_binds, strict=True):
            if row.keys() != keys:
                raise ValueError(f"rows for {insert.table.name} name different columns")
            if defaults:
                row = {**defaults, **row}
            for column, name, process in names:
                params[name] = process(row[column]) if process else row[column]
    _on_cursor(conn, statement, params, False, None)


def together_fits(parts: list[tuple[Insert, dict | list[dict]]]) -> bool:
    """Whether insert_together writes `parts` in one statement on PostgreSQL (atomic by
    itself, so it may run outside a transaction): no part has more than TOGETHER_MAX_ROWS
    rows."""
    return all(isinstance(rows, dict) or len(rows) <= TOGETHER_MAX_ROWS
               for _insert, rows in parts)


def _together_plan(dialect, parts) -> tuple:
    """(SQL, per part (defaults, per row [(column, bind name, bind processor)]))"""
    query = sa.select(sa.literal_column("1"))
    binds = []
    for k, (insert, rows) in enumerate(parts):
        columns = insert.table.columns
        # The part's own plan: its columns, their bind processors and its defaults.
        _sql, _order, processors, defaults, _positional = insert._plan(dialect, tuple(rows[0]))
        row_binds = [[(name, f"i{k}r{r}_{name}", process) for name, process in processors]
                     for r in range(len(rows))]
        values = [{name: sa.bindparam(bind, type_=columns[name].type)
                   for name, bind, _process in row} for row in row_binds]
        query = query.add_cte(insert._statement(dialect).values(values).cte(f"i{k}"))
        binds.append((defaults, row_binds))
    compiled = query.compile(dialect=dialect)
    if compiled.positional:
        raise ValueError("insert_together binds by name")
    return compiled.string, binds


def _on_cursor(conn: Connection, statement: str, params, many: bool, fetch):
    """Runs `statement` on the driver's cursor of `conn` (inside its transaction) and returns
    fetch(cursor), or None when `fetch` is None. A driver error is wrapped as SQLAlchemy
    wraps it, its values hidden; one that means the connection is gone invalidates it, so
    the pool does not hand it out again and the caller sees the server's reason rather
    than a failed rollback's."""
    dialect = conn.dialect
    dbapi_conn = conn.connection.dbapi_connection
    cursor = dbapi_conn.cursor()
    # Listeners of SQLAlchemy's cursor events (tracing, a test's statement log) still see
    # every statement; without any, this costs one test.
    events = conn._has_events or conn.engine._has_events
    try:
        if events:
            for listener in conn.dispatch.before_cursor_execute:
                statement, params = listener(conn, cursor, statement, params, None, many)
        if many:
            cursor.executemany(statement, params)
        else:
            cursor.execute(statement, params)
        if events:
            conn.dispatch.after_cursor_execute(conn, cursor, statement, params, None, many)
        if fetch is None:
            return None
        return fetch(cursor)
    except dialect.loaded_dbapi.Error as exc:
        raise _wrapped(conn, exc, dbapi_conn, cursor, statement, params, many) from exc
    finally:
        with contextlib.suppress(Exception):
            cursor.close()


def _wrapped(conn: Connection, exc: Exception, dbapi_conn, cursor, statement: str | None,
             params, many: bool) -> sa.exc.DBAPIError:
    dialect = conn.dialect
    invalidated = dialect.is_disconnect(exc, dbapi_conn, cursor)
    if invalidated:
        conn.invalidate(exc)
    return sa.exc.DBAPIError.instance(
        statement, params, exc, dialect.loaded_dbapi.Error, hide_parameters=True,
        connection_invalidated=invalidated, dialect=dialect, ismulti=many)


_BY_DESCRIPTION = object()


def _result_processor(type_, dialect, coltype=None):
    """The type's result processor, or _BY_DESCRIPTION when it needs to know the column's
    type as the server sends it (`coltype`, from the cursor's description)."""
    try:
        return type_.dialect_impl(dialect).result_processor(dialect, coltype)
    except (TypeError, sa.exc.InvalidRequestError):
        if coltype is not None:
            raise
        return _BY_DESCRIPTION


class Statement:
    """A SELECT, UPDATE or DELETE (with or without RETURNING) built once, compiled once per
    dialect and run straight on the driver's cursor of the caller's connection (in its
    transaction), as Insert does for inserts: through SQLAlchemy's statement machinery
    each run of an already compiled statement cost 30–60 µs of Python (an execution
    context, the parameters processed through the compiled form, a result set up), and
    claiming and recording a delivery, the busiest loop of notify, runs four such
    statements.

    Values given are keyed by the statement's bindparam() names and go through their
    types' bind processors; values the statement holds itself (`status == "pending"`,
    `limit(1)`) are bound as SQLAlchemy binds them. Rows come back as named tuples (by
    column key) with each column's result processor applied, as SQLAlchemy would convert
    them (SQLite's stored text to datetime, say). A statement whose text would change with
    the values given (an IN of a list given at each run) is refused when it is first
    compiled."""

    def __init__(self, statement: sa.sql.ClauseElement):
        self.statement = statement
        self._plans: dict[str, tuple] = {}

    def _plan(self, dialect) -> tuple:
        plan = self._plans.get(dialect.name)
        if plan is None:
            compiled = self.statement.compile(dialect=dialect)
            # Refused: a value computed while executing (a column's onupdate or Python
            # default) would be left out, and a list given at each run would change the
            # statement's text.
            if compiled.escaped_bind_names or compiled.insert_prefetch or \
                    compiled.update_prefetch or any(
                        b.required and (b.expanding or b.literal_execute or name != b.key)
                        for name, b in compiled.binds.items()):
                raise ValueError("db.Statement runs only statements whose values bind one "
                                 f"by one as they are: {compiled.string!r}")
            given = {name for name, b in compiled.binds.items() if b.required}
            # The statement's own lists (`channel.in_(("email", "sms"))`) expanded once.
            state = compiled.construct_expanded_state(dict.fromkeys(given))
            names = tuple(state.positiontup) if compiled.positional else tuple(state.parameters)
            origin = {expanded: name for name, names in state.parameter_expansion.items()
                      for expanded in names}
            binds = tuple(
                (name, name in given, state.parameters[name],
                 compiled.binds[origin.get(name, name)].type.dialect_impl(dialect)
                 .bind_processor(dialect))
                for name in names)
            row = None
            # A SELECT's or RETURNING's columns; none for a text UPDATE.
            columns = list(getattr(self.statement, "exported_columns", ()))
            if columns:
                keys = [c.key for c in columns]
                processors = tuple(_result_processor(c.type, dialect) for c in columns)
                row = (collections.namedtuple("Row", keys, rename=True), processors,
                       any(processors))
            plan = (state.statement, binds, compiled.positional, row)
            self._plans[dialect.name] = plan
        return plan

    def _params(self, binds, positional: bool, given: dict):
        values = []
        for name, required, fixed, process in binds:
            if not required:
                value = fixed
            elif name in given:
                value = given[name]
            else:
                raise KeyError(f"a value for bind parameter {name!r} is required")
            values.append(process(value) if process else value)
        return values if positional else dict(zip((b[0] for b in binds), values, strict=True))

    def execute(self, conn: Connection, params: dict | list[dict] | None = None) -> int:
        """Runs an UPDATE or DELETE, once or once for each dict of a list (executemany);
        the number of rows it touched."""
        statement, binds, positional, _row = self._plan(conn.dialect)
        if isinstance(params, list):
            if not params:
                return 0
            many = [self._params(binds, positional, p) for p in params]
            return _on_cursor(conn, statement, many, True, lambda cursor: cursor.rowcount)
        return _on_cursor(conn, statement, self._params(binds, positional, params or {}),
                          False, lambda cursor: cursor.rowcount)

    def _rows(self, conn: Connection, params: dict | None, fetch) -> list:
        dialect = conn.dialect
        statement, binds, positional, row = self._plan(dialect)
        if row is None:
            raise TypeError("the statement returns no rows")
        make, processors, convert = row
        values = self._params(binds, positional, params or {})
        if _BY_DESCRIPTION not in processors:
            raw = _on_cursor(conn, statement, values, False, fetch)
        else:
            # A type whose conversion depends on what the server sends (PostgreSQL's
            # numbers): decided from the first run's description, then kept.
            description, raw = _on_cursor(conn, statement, values, False,
                                          lambda cursor: (cursor.description, fetch(cursor)))
            processors = tuple(
                _result_processor(column.type, dialect, described[1])
                if process is _BY_DESCRIPTION else process
                for column, process, described in zip(
                    self.statement.exported_columns, processors, description, strict=True))
            convert = any(processors)
            self._plans[dialect.name] = (statement, binds, positional,
                                         (make, processors, convert))
        if not convert:
            return [make._make(values) for values in raw]
        return [make._make([process(value) if process else value
                            for process, value in zip(processors, values, strict=True)])
                for values in raw]

    def first(self, conn: Connection, params: dict | None = None):
        """The first row, or None."""
        rows = self._rows(conn, params, lambda cursor: [r] if (r := cursor.fetchone()) else [])
        return rows[0] if rows else None

    def all(self, conn: Connection, params: dict | None = None) -> list:
        """Every row."""
        return self._rows(conn, params, lambda cursor: cursor.fetchall())


# Every event of every consumer comes through here.
_FIRST_DELIVERY = Insert(processed_events_table(sa.MetaData()), skip_duplicates=True)


def first_delivery(conn: Connection, consumer: str, event_id: str) -> bool:
    """Records the event as handled inside the caller's transaction; False if it already was."""
    return _FIRST_DELIVERY.execute(
        conn, {"consumer": consumer, "event_id": event_id, "processed_at": utcnow()}) == 1


class Listed:
    """A statement over a list of values given at each run (an IN of ids, the rows of an
    INSERT), as db.Statements compiled once per power of two of the list's length: the
    list is padded with its last value, so a handful of statements serve every batch,
    where a list bound as it comes changes the statement's text at each run.
    `build(binds)` makes the statement from the list's bind parameters."""

    def __init__(self, build: Callable[[list], sa.sql.ClauseElement],
                 type_: sa.types.TypeEngine, name: str = "v"):
        self.build = build
        self.type_ = type_
        self.name = name
        self._sized: dict[int, Statement] = {}

    def all(self, conn: Connection, values: list, params: dict | None = None) -> list:
        """Every row for `values` (none when it is empty), with `params` for the rest."""
        if not values:
            return []
        return self._bound(values).all(conn, self._params(values, params))

    def execute(self, conn: Connection, values: list, params: dict | None = None) -> int:
        """Runs an UPDATE or DELETE for `values` (nothing when it is empty), with `params`
        for the rest; the number of rows it touched (the padding's repeats touch none
        twice)."""
        if not values:
            return 0
        return self._bound(values).execute(conn, self._params(values, params))

    @staticmethod
    def _size(values: list) -> int:
        """The bound list's length: the power of two that holds `values`."""
        return 1 << (len(values) - 1).bit_length()

    def _bound(self, values: list) -> Statement:
        size = self._size(values)
        statement = self._sized.get(size)
        if statement is None:
            statement = self._sized[size] = Statement(self.build(
                [sa.bindparam(f"{self.name}{i}", type_=self.type_) for i in range(size)]))
        return statement

    def _params(self, values: list, params: dict | None) -> dict:
        last = len(values) - 1
        return {**(params or {}), **{f"{self.name}{i}": values[min(i, last)]
                                     for i in range(self._size(values))}}


def _first_deliveries_insert(binds: list) -> sa.sql.ClauseElement:
    table = _FIRST_DELIVERY.table
    rows = [{"consumer": sa.bindparam("consumer"), "event_id": bind,
             "processed_at": sa.bindparam("processed_at", type_=table.c.processed_at.type)}
            for bind in binds]
    # PostgreSQL's INSERT construct: SQLite (3.35 and later) compiles its ON CONFLICT DO
    # NOTHING and RETURNING alike, and returns only the rows it inserted; the padding's
    # repeated id conflicts with itself.
    return (postgresql.insert(table).values(rows).on_conflict_do_nothing()
            .returning(table.c.event_id))


_FIRST_DELIVERIES = Listed(_first_deliveries_insert, sa.String(36), "event_")


def first_deliveries(conn: Connection, consumer: str, event_ids: list[str]) -> set[str]:
    """first_delivery for several events in one statement: records those not yet handled
    and returns their ids (an id given twice counts once). Another transaction recording
    the same id first makes it wait for that one's commit and leaves the id out, as
    first_delivery's insert would."""
    return {row.event_id for row in _FIRST_DELIVERIES.all(
        conn, event_ids, {"consumer": consumer, "processed_at": utcnow()})}


def check(engine: Engine) -> bool:
    """Readiness: the database answers (one statement on its own: on PostgreSQL one round
    trip, where a transaction took three, every few seconds on every replica)."""
    try:
        with unwrapped(engine) as conn:
            _on_cursor(conn, "SELECT 1", (), False, lambda cursor: cursor.fetchone())
        return True
    except sa.exc.SQLAlchemyError:
        return False
