"""Transactional outbox: a service writes its state change and the event in one database
transaction; a relay publishes unsent rows with confirms and marks them sent. Accepting a
report therefore never depends on the broker being up; delivery is at least once and
consumers dedupe on the event id."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lapor.v1 import events_pb2
from services.infra import logs
from services.infra.db import BigId, as_utc, is_postgres, reading, utcnow
from services.infra.messaging import PublishError, Unroutable
from services.infra.telemetry import OUTBOX_BACKLOG, OUTBOX_OLDEST_AGE, OUTBOX_PUBLISH_ERRORS

log = logging.getLogger(__name__)


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
        sa.Column("published_at", sa.DateTime(timezone=True)),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("last_error", sa.String(200)),
    )
    sa.Index("ix_outbox_unsent", table.c.id,
             sqlite_where=table.c.published_at.is_(None),
             postgresql_where=table.c.published_at.is_(None))
    return table


class Outbox:
    """Writes events into the caller's transaction and relays them to the broker."""

    def __init__(self, engine: Engine, table: sa.Table, service: str,
                 publisher_factory: Callable[[], object], *, batch: int = 100,
                 poll_interval: float = 1.0, backoff_cap: float = 15.0):
        self.engine = engine
        self.table = table
        self.service = service
        self.publisher_factory = publisher_factory
        self.batch = batch
        self.poll_interval = poll_interval
        self.backoff_cap = backoff_cap
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._publisher = None

    # -- writing ---------------------------------------------------------------------------
    def add(self, conn: Connection, envelope: events_pb2.EventEnvelope) -> None:
        """Stores the event in the caller's open transaction; it is sent after commit."""
        conn.execute(self.table.insert().values(
            event_id=envelope.event_id, event_type=envelope.type,
            aggregate_id=envelope.aggregate_id, body=envelope.SerializeToString(),
            created_at=utcnow(), attempts=0))

    def wake(self) -> None:
        """Asks the relay to publish now instead of at its next poll."""
        self._wake.set()

    # -- relaying --------------------------------------------------------------------------
    def start(self) -> Outbox:
        self._thread = threading.Thread(target=self._run, name=f"outbox-{self.service}",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self, flush_timeout: float = 10.0) -> int:
        """Stops the relay after publishing what it can within flush_timeout; returns backlog."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(flush_timeout + 5)
        left = self.flush(flush_timeout)
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None
        if left:
            log.warning("outbox closed with %d unsent events; they go out on next start", left)
        return left

    def flush(self, timeout: float) -> int:
        """Publishes until nothing is left or timeout passes; returns what is left."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sent, failed = self.relay_once()
            if failed:
                time.sleep(0.2)
            elif sent == 0:
                break
        return self.backlog()[0]

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            sent, failed = self.relay_once()
            self._update_gauges()
            if failed:
                failures += 1
                self._stop.wait(min(self.backoff_cap, 0.25 * 2 ** min(failures, 8)))
                continue
            failures = 0
            if sent < self.batch:
                self._wake.wait(self.poll_interval)
                self._wake.clear()

    def relay_once(self) -> tuple[int, bool]:
        """Publishes one batch of unsent rows in id order; returns (sent, a failure occurred)."""
        if self._publisher is None:
            self._publisher = self.publisher_factory()
        sent = 0
        failed = False
        t = self.table
        try:
            with self.engine.begin() as conn:
                query = (sa.select(t.c.id, t.c.event_id, t.c.event_type, t.c.aggregate_id, t.c.body)
                         .where(t.c.published_at.is_(None)).order_by(t.c.id).limit(self.batch))
                if is_postgres(conn):
                    # Several replicas relay at once; each takes rows the others have not locked.
                    query = query.with_for_update(skip_locked=True)
                rows = conn.execute(query).all()
                for row in rows:
                    with logs.bound(tracking_id=row.aggregate_id, event_id=row.event_id):
                        try:
                            self._publisher.publish(row.event_type, row.body, row.event_id)
                        except PublishError as exc:
                            failed = True
                            reason = "unroutable" if isinstance(exc, Unroutable) else "broker"
                            OUTBOX_PUBLISH_ERRORS.labels(self.service, reason).inc()
                            conn.execute(t.update().where(t.c.id == row.id).values(
                                attempts=t.c.attempts + 1, last_error=str(exc)[:200]))
                            log.warning("outbox publish of %s failed: %s", row.event_type, exc)
                            if isinstance(exc, Unroutable):
                                continue  # the other events can still go out
                            break
                        conn.execute(t.update().where(t.c.id == row.id).values(
                            published_at=utcnow(), attempts=t.c.attempts + 1))
                        sent += 1
        except sa.exc.SQLAlchemyError:
            log.exception("outbox relay could not read or update its table")
            return sent, True
        return sent, failed

    def backlog(self) -> tuple[int, float]:
        """(unsent rows, age in seconds of the oldest)."""
        t = self.table
        with reading(self.engine) as conn:
            count, oldest = conn.execute(
                sa.select(sa.func.count(), sa.func.min(t.c.created_at))
                .where(t.c.published_at.is_(None))).one()
        age = (utcnow() - as_utc(oldest)).total_seconds() if oldest is not None else 0.0
        return count, age

    def _update_gauges(self) -> None:
        try:
            count, age = self.backlog()
        except sa.exc.SQLAlchemyError:
            return
        OUTBOX_BACKLOG.labels(self.service).set(count)
        OUTBOX_OLDEST_AGE.labels(self.service).set(age)
