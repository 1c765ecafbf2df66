"""Transactional outbox: a service writes its state change and the event in one database
transaction; a relay publishes unsent rows with confirms and marks them sent. Accepting a
report therefore never depends on the broker being up; delivery is at least once and
consumers dedupe on the event id.

On SQLite the relay never talks to the broker inside a database transaction: it claims a
batch (a short write that leases the rows to it), publishes outside any transaction, then
records the outcome in a second short write, so a slow or unresponsive broker never holds
the write lock (submissions stay fast). On PostgreSQL it takes the batch's rows with
FOR UPDATE SKIP LOCKED and keeps those row locks while it publishes, recording the outcome
in the same transaction: one commit a batch instead of two and no lease to write, while
inserts and the other replicas' relays (which skip locked rows) go on beside it; a relay
that dies mid-batch leaves its rows due at once instead of after the lease. Either way
several replicas relay side by side without taking each other's rows. A row the broker
cannot route is put back with a growing delay of its own, so it never blocks the rows
behind it. Once the broker confirms a row it is deleted in the round's write: the events may
carry contacts or confidential text, nothing needs them after the confirm, and the logs name
each event id (decision 96). The table holds only events still to send: a confirm is a
delete, not an update that writes the row and its indexes again, and nothing is left for a
retention job."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

from lapor.v1 import events_pb2
from services.infra import logs
from services.infra.db import (
    BigId,
    Insert,
    KeptConnection,
    Statement,
    as_utc,
    unwrapped,
    utcnow,
)
from services.infra.lifecycle import SupervisedLoop
from services.infra.messaging import PublishError
from services.infra.telemetry import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISH_ERRORS

log = logging.getLogger(__name__)

# SQLite: a claimed batch belongs to its relay for this long; a relay that dies mid-batch
# leaves its rows to the others after it (they are then published again: at least once).
CLAIM_LEASE = timedelta(seconds=30)
# Delays for a row the broker could not route (no queue bound for its type): 1 s doubling
# to 5 min, so a missing binding costs little while it lasts and is noticed (the alert on
# lapor_outbox_publish_errors_total{reason="unroutable"}) without blocking other events.
UNROUTABLE_DELAY_CAP = 300.0
# The backlog gauges are refreshed at most this often (seconds).
GAUGES_EVERY = 1.0


def outbox_table(metadata: sa.MetaData) -> sa.Table:
    table = sa.Table(
        "outbox",
        metadata,
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("aggregate_id", sa.String(32), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        # Set only by versions before decision 96, which kept a confirmed row (its body
        # cleared) for a week; a row with it set is never sent again and is purged.
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("last_error", sa.String(200)),
        # Not before: a relay's lease on the row, or the delay after an unroutable attempt.
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
    )
    # The relay's way to the rows due, in order. Every row is unsent since decision 96, but
    # without it PostgreSQL's planner, seeing a small table, took the due rows with a
    # sequential scan of every page the deleted rows left (until a vacuum); on this index
    # it goes straight to them.
    sa.Index("ix_outbox_unsent", table.c.id,
             sqlite_where=table.c.published_at.is_(None),
             postgresql_where=table.c.published_at.is_(None))
    return table


@dataclass(frozen=True)
class _Row:
    id: int
    event_id: str
    event_type: str
    aggregate_id: str
    body: bytes
    attempts: int


class Outbox:
    """Writes events into the caller's transaction and relays them to the broker."""

    def __init__(self, engine: Engine, table: sa.Table, service: str,
                 publisher_factory: Callable[[], object], *, batch: int = 100,
                 poll_interval: float = 1.0, backoff_cap: float = 15.0, gather: float = 0.0):
        """`gather`: once woken, how long the relay waits for more events before it sends,
        so that events committed one by one go out in one round (fewer rounds, each a read,
        a transaction or two and a confirmed publish, for that much more latency)."""
        self.engine = engine
        self.table = table
        self._insert = Insert(table)
        # The relay's statements, built once (it goes round once per commit under load).
        t = table
        due = sa.and_(t.c.published_at.is_(None),
                      sa.or_(t.c.next_attempt_at.is_(None),
                             t.c.next_attempt_at <= sa.bindparam("now")))
        # Those the relay runs every round go straight to the driver (db.Statement).
        self._any_due = Statement(sa.select(t.c.id).where(due).limit(1))
        due_rows = (sa.select(t.c.id, t.c.event_id, t.c.event_type, t.c.aggregate_id, t.c.body,
                              t.c.attempts)
                    .where(due).order_by(t.c.id).limit(sa.bindparam("batch")))
        self._due = Statement(due_rows)
        # Several replicas relay at once on PostgreSQL; each takes rows the others have not
        # locked.
        self._due_skip_locked = Statement(due_rows.with_for_update(skip_locked=True))
        ids = sa.bindparam("ids", expanding=True)
        self._lease = t.update().where(t.c.id.in_(ids)).values(
            next_attempt_at=sa.bindparam("until"))
        # SQLite's claim in one statement: lease the due rows and get them back (RETURNING,
        # SQLite 3.35 and later; older ones read, then lease). PostgreSQL never claims so.
        self._claim_returning = None
        if engine.dialect.name == "sqlite" and engine.dialect.update_returning:
            self._claim_returning = Statement(
                t.update()
                .where(t.c.id.in_(sa.select(t.c.id).where(due).order_by(t.c.id)
                                  .limit(sa.bindparam("batch")).scalar_subquery()))
                .values(next_attempt_at=sa.bindparam("until"))
                .returning(t.c.id, t.c.event_id, t.c.event_type, t.c.aggregate_id, t.c.body,
                           t.c.attempts))
        # Confirmed rows are deleted. Run once for each row sent (executemany): a list of
        # ids in one IN made SQLAlchemy render and cache a statement for every length of
        # batch. On PostgreSQL the ids go as one array instead, one statement for the round
        # (psycopg sent executemany's rows in one round trip already, but the server ran a
        # statement for each).
        self._sent = Statement(t.delete().where(t.c.id == sa.bindparam("b_id")))
        self._sent_all = Statement(t.delete().where(t.c.id == sa.any_(
            sa.bindparam("b_ids", type_=postgresql.ARRAY(sa.BigInteger))))) \
            if engine.dialect.name == "postgresql" else None
        self._backlog = Statement(sa.select(sa.func.count(), sa.func.min(t.c.created_at))
                                  .where(t.c.published_at.is_(None)))
        self.service = service
        self.publisher_factory = publisher_factory
        self.batch = batch
        self.poll_interval = poll_interval
        self.backoff_cap = backoff_cap
        self.gather = gather
        self._publisher = None
        # The relay's writes, on a connection it keeps while rounds send events: a checkout
        # and check-in from the pool cost as much as a short write on SQLite. A round that
        # sends nothing gives it back (_iteration), so an idle relay holds none.
        self._tx = KeptConnection(engine)
        self._flush_timeout = 10.0
        self._gauges_at = -float("inf")
        # Set by wake() (an event was committed) and after a full batch: the next round
        # expects rows due, so it skips the read that spares an idle poll a write.
        self._added = False
        self.loop = SupervisedLoop(f"outbox-{service}", self._iteration,
                                   backoff_base=0.25, backoff_cap=backoff_cap,
                                   on_exit=self._final_flush)

    # -- writing ---------------------------------------------------------------------------
    def add(self, conn: Connection, envelope: events_pb2.EventEnvelope,
            routing_key: str | None = None) -> None:
        """Stores the event in the caller's open transaction; it is sent after commit, under
        `routing_key` if given (events.outcome_key), else under its type. The row's
        `event_type` column holds that key."""
        self.add_rows(conn, self.rows((envelope,), (routing_key,)))

    @staticmethod
    def rows(envelopes, routing_keys=()) -> list[dict]:
        """The outbox rows of `envelopes`, to build before a transaction and add in it; each
        sent under its routing key in `routing_keys` where one is given (not None), else
        under its type."""
        now = utcnow()
        return [{"event_id": e.event_id, "event_type": key or e.type,
                 "aggregate_id": e.aggregate_id, "body": e.SerializeToString(),
                 "created_at": now, "attempts": 0}
                for e, key in itertools.zip_longest(envelopes, routing_keys)]

    def insert_of(self, rows: list[dict]) -> tuple[Insert, list[dict]]:
        """Rows built by `rows` as a part for db.insert_together, to go in one statement with
        the caller's other inserts."""
        return self._insert, rows

    def add_rows(self, conn: Connection, rows: list[dict]) -> None:
        """Stores rows built by `rows` in the caller's open transaction, in one statement
        (executemany for several); they are sent after commit, in this order."""
        self._insert.send(conn, rows)

    def wake(self) -> None:
        """Asks the relay to publish now instead of at its next poll: something was added."""
        self._added = True
        self.loop.wake()

    # -- relaying --------------------------------------------------------------------------
    def start(self) -> Outbox:
        self.loop.start()
        return self

    def stop(self, flush_timeout: float = 10.0) -> int:
        """Stops the relay after it has published what it can within flush_timeout (on its
        own thread and connection); returns how many events are left for the next start."""
        self._flush_timeout = flush_timeout
        if self.loop._thread is None:
            self._final_flush(self.loop)
        elif not self.loop.stop(flush_timeout + 2.0):
            # Still in a broker call that outlived the budget: its connection stays its own.
            log.warning("outbox relay still busy at shutdown; its batch goes out on next start")
        try:
            left = self.backlog()[0]
        except sa.exc.SQLAlchemyError:
            return -1
        if left:
            log.warning("outbox closed with %d unsent events; they go out on next start", left)
        return left

    def _final_flush(self, _loop: SupervisedLoop) -> None:
        try:
            self.flush(self._flush_timeout)
        finally:
            self._tx.release()
            self._close_publisher()

    def _close_publisher(self) -> None:
        publisher, self._publisher = self._publisher, None
        if publisher is not None:
            publisher.close()

    def flush(self, timeout: float) -> int:
        """Publishes until nothing is due or timeout passes; returns what is left. Only on the
        relay's own thread, or when the relay is not running."""
        if self.loop.status().alive and threading.current_thread() is not self.loop._thread:
            raise RuntimeError("flush() while the relay runs: stop() it instead")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sent, failed = self.relay_once()
            if failed:
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
            elif sent == 0:
                break
        return self.backlog()[0]

    def _iteration(self, loop: SupervisedLoop) -> None:
        expected, self._added = self._added, False
        sent, failed = self.relay_once(expect_due=expected)
        if not sent:
            self._tx.release()  # nothing went out: an idle or failing relay holds none
        self._update_gauges()
        if failed:
            # The supervisor logs it once and backs off; the rows stay due.
            raise PublishError(f"broker unavailable: {failed}")
        if sent >= self.batch:
            self._added = True  # a full batch: most likely more behind it
        else:
            # Idle: let the publisher answer the broker's heartbeats, or after two missed
            # ones the broker closes the connection and the next publish fails on it.
            if self._publisher is not None:
                self._publisher.keep_alive()
            if not loop.wait(min(self.poll_interval, 5.0)) and self._added and self.gather > 0:
                loop.pause(self.gather)  # woken by an add: let more come first

    def relay_once(self, expect_due: bool = False) -> tuple[int, str]:
        """Publishes one batch of due rows; returns (sent, why the broker failed or "").
        Unless `expect_due` (woken by an add), a read first finds whether anything is due.

        A row the broker cannot route is not a broker failure: it waits on its own delay
        while the rest go out."""
        if not expect_due and not self._anything_due():
            return 0, ""
        if self.engine.dialect.name == "postgresql":
            with self._begin() as conn:
                rows = [_Row(*r) for r in self._due_skip_locked.all(conn, {
                    "now": utcnow(), "batch": self.batch})]
                if not rows:
                    return 0, ""
                sent, unroutable, failed, why = self._publish(rows)
                self._record_in(conn, rows, sent, unroutable, failed)
            return len(sent), why
        rows = self._claim()
        if not rows:
            return 0, ""
        sent, unroutable, failed, why = self._publish(rows)
        with self._begin() as conn:
            self._record_in(conn, rows, sent, unroutable, failed)
        return len(sent), why

    def _publish(self, rows: list[_Row]):
        """Sends the batch; (ids confirmed, unroutable rows with why, the first row the
        broker failed on with why or None, why the broker failed or "")."""
        if self._publisher is None:
            self._publisher = self.publisher_factory()
        # The whole batch in flight at once, its confirms awaited together.
        result = self._publisher.publish_many([(row.event_type, row.body, row.event_id)
                                               for row in rows])
        sent = [rows[i].id for i in result.sent]
        unroutable: list[tuple[_Row, str]] = []
        for i in result.unroutable:
            row = rows[i]
            OUTBOX_PUBLISH_ERRORS.labels(self.service, "unroutable").inc()
            with logs.bound(tracking_id=row.aggregate_id, event_id=row.event_id):
                log.warning("outbox: no queue bound for %s; trying it again later",
                            row.event_type)
            unroutable.append((row, f"no queue bound for {row.event_type}"))
        failed: tuple[_Row, str] | None = None
        if result.failed:
            OUTBOX_PUBLISH_ERRORS.labels(self.service, "broker").inc()
            done = set(result.sent) | set(result.unroutable)
            first = next((i for i in range(len(rows)) if i not in done), None)
            if first is not None:
                failed = (rows[first], result.failed)
        return sent, unroutable, failed, result.failed

    def _begin(self):
        """A write transaction: on the kept connection on the relay's own thread, else (a
        flush or a round run from elsewhere) on one from the pool."""
        if threading.current_thread() is self.loop._thread:
            return self._tx.begin()
        return self.engine.begin()

    def _anything_due(self) -> bool:
        """A read first: when nothing is due (most polls) no write lock is taken at all.
        One statement on its own (db.unwrapped): on PostgreSQL one round trip, not three."""
        with unwrapped(self.engine) as conn:
            return self._any_due.first(conn, {"now": utcnow()}) is not None

    def _claim(self) -> list[_Row]:
        """SQLite: the due rows, leased to this relay in a short write of their own."""
        now = utcnow()
        params = {"now": now, "batch": self.batch, "until": now + CLAIM_LEASE}
        with self._begin() as conn:
            if self._claim_returning is not None:
                # RETURNING gives the rows in no set order; they go out in the order written.
                return sorted((_Row(*r) for r in self._claim_returning.all(conn, params)),
                              key=lambda row: row.id)
            rows = [_Row(*r) for r in self._due.all(conn, params)]
            if rows:
                conn.execute(self._lease, {"ids": [r.id for r in rows],
                                           "until": params["until"]})
        return rows

    def _record_in(self, conn: Connection, rows: list[_Row], sent: list[int],
                   unroutable: list[tuple[_Row, str]], failed: tuple[_Row, str] | None) -> None:
        t = self.table
        now = utcnow()
        done = set(sent) | {r.id for r, _ in unroutable}
        untried = [r.id for r in rows if r.id not in done]
        if sent and self._sent_all is not None:
            self._sent_all.execute(conn, {"b_ids": sent})
        elif sent:
            self._sent.execute(conn, [{"b_id": i} for i in sent])
        for row, error in unroutable:
            delay = min(UNROUTABLE_DELAY_CAP, 2.0 ** min(row.attempts, 16))
            conn.execute(t.update().where(t.c.id == row.id).values(
                attempts=row.attempts + 1, last_error=error[:200],
                next_attempt_at=now + timedelta(seconds=delay)))
        if failed is not None:
            row, error = failed
            conn.execute(t.update().where(t.c.id == row.id).values(
                attempts=row.attempts + 1, last_error=error[:200]))
        if untried:
            # The broker is away: the relay backs off as a whole; the rows are due again
            # as soon as it is back.
            conn.execute(t.update().where(t.c.id.in_(untried))
                         .values(next_attempt_at=None))

    def purge_kept(self, batch: int = 1000) -> int:
        """Deletes up to `batch` confirmed rows an earlier version kept (one still running
        beside this one in a rolling upgrade marks them so); returns how many."""
        t = self.table
        with self.engine.begin() as conn:
            ids = sa.select(t.c.id).where(t.c.published_at.is_not(None)).limit(batch)
            return conn.execute(t.delete().where(t.c.id.in_(ids.scalar_subquery()))).rowcount

    def backlog(self) -> tuple[int, float]:
        """(unsent rows, age in seconds of the oldest)."""
        with unwrapped(self.engine) as conn:  # one statement: one round trip
            count, oldest = self._backlog.first(conn)
        age = (utcnow() - as_utc(oldest)).total_seconds() if oldest is not None else 0.0
        return count, age

    def _update_gauges(self) -> None:
        """The backlog gauges, at most once a second: under load the relay goes round once
        per commit, and counting the backlog each time was a read transaction per round."""
        if time.monotonic() - self._gauges_at < GAUGES_EVERY:
            return
        self._gauges_at = time.monotonic()
        try:
            count, age = self.backlog()
        except sa.exc.SQLAlchemyError:
            return
        OUTBOX_BACKLOG.labels(self.service).set(count)
        OUTBOX_OLDEST_AGE.labels(self.service).set(age)
