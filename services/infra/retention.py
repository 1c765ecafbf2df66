"""Retention: rows kept only as long as they are needed, deleted in small batches by a
supervised loop in every service.

* confirmed outbox rows an earlier version kept (the outbox deletes a row at its confirm
  since decision 96; one replica of a version before it, in a rolling upgrade, still keeps
  them);
* `processed_events` (each consumer's dedupe memory) after `LAPOR_DEDUPE_RETENTION_DAYS`
  (default 7): it must outlive the longest redelivery window (retry path 5 min, a relay
  lease 30 s, a parked message replayed within the week), so it may not be set below 1 day;
* whatever else a service registers (intake: idempotent answers after 24 hours).

Small batches (1,000 rows) in short transactions, so a purge never holds SQLite's write lock
for long; lapor_retention_deleted_total{service,table} counts what went."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from prometheus_client import Counter, Gauge
from sqlalchemy.engine import Engine

from services.infra.config import ConfigError, Env
from services.infra.db import utcnow
from services.infra.lifecycle import SupervisedLoop

log = logging.getLogger(__name__)

DELETED = Counter("lapor_retention_deleted_total", "Rows deleted after their retention window",
                  ["service", "table"])
LAST_RUN = Gauge("lapor_retention_last_run_timestamp_seconds",
                 "When the retention job last finished a pass", ["service"])
MIN_DEDUPE = timedelta(days=1)


@dataclass(frozen=True)
class RetentionSettings:
    dedupe: timedelta = timedelta(days=7)
    interval: float = 600.0
    batch: int = 1000

    @classmethod
    def from_env(cls, env: Env | None = None) -> RetentionSettings:
        env = env or Env()
        dedupe = env.float("LAPOR_DEDUPE_RETENTION_DAYS", 7.0)
        if timedelta(days=dedupe) < MIN_DEDUPE:
            raise ConfigError("LAPOR_DEDUPE_RETENTION_DAYS must be at least 1: consumers "
                              f"forget an event after it and would handle a redelivery again, "
                              f"got {dedupe!r}")
        return cls(timedelta(days=dedupe))


# A purge task deletes at most `batch` rows and returns how many it deleted.
Purge = Callable[[int], int]


def delete_older(engine: Engine, table: sa.Table, column: sa.Column, older_than: timedelta,
                 key: sa.Column) -> Purge:
    """A purge task: rows whose `column` is older than `older_than`, by `key`."""

    def purge(batch: int) -> int:
        cutoff = utcnow() - older_than
        with engine.begin() as conn:
            keys = sa.select(key).where(column < cutoff).limit(batch).scalar_subquery()
            return conn.execute(table.delete().where(key.in_(keys), column < cutoff)).rowcount

    return purge


class Retention:
    """The purge tasks of one service, run every `interval` seconds by a supervised loop."""

    def __init__(self, service: str, tasks: dict[str, Purge],
                 settings: RetentionSettings | None = None, first_run_after: float = 30.0):
        self.service = service
        self.tasks = tasks
        self.settings = settings or RetentionSettings()
        self._first = first_run_after
        for table in tasks:
            DELETED.labels(service, table)
        self.loop = SupervisedLoop(f"retention-{service}", self._iteration,
                                   backoff_base=5.0, backoff_cap=300.0)

    @classmethod
    def standard(cls, service: str, engine: Engine, outbox, processed_events: sa.Table,
                 settings: RetentionSettings | None = None,
                 extra: dict[str, Purge] | None = None) -> Retention:
        """Confirmed outbox rows kept by earlier versions and the dedupe memory, plus the
        service's own tasks."""
        settings = settings or RetentionSettings()
        tasks: dict[str, Purge] = {
            "outbox": outbox.purge_kept,
            "processed_events": delete_older(engine, processed_events,
                                             processed_events.c.processed_at,
                                             settings.dedupe, processed_events.c.event_id),
        }
        tasks.update(extra or {})
        return cls(service, tasks, settings)

    def start(self) -> Retention:
        self.loop.start()
        return self

    def stop(self, timeout: float) -> bool:
        return self.loop.stop(timeout)

    def run_once(self) -> dict[str, int]:
        """One pass over every task, each until nothing is left; returns rows deleted."""
        deleted = {}
        for table, purge in self.tasks.items():
            total = 0
            while not self.loop.stopping:
                count = purge(self.settings.batch)
                total += count
                DELETED.labels(self.service, table).inc(count)
                self.loop.beat()
                if count < self.settings.batch:
                    break
            deleted[table] = total
        LAST_RUN.labels(self.service).set_to_current_time()
        if any(deleted.values()):
            log.info("retention pass", extra={"deleted": deleted})
        return deleted

    def _iteration(self, loop: SupervisedLoop) -> None:
        if self._first is not None:
            first, self._first = self._first, None
            if loop.wait(first):
                return
        self.run_once()
        loop.wait(self.settings.interval)
