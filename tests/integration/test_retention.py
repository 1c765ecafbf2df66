"""Retention on SQLite and PostgreSQL: what the job deletes (confirmed events, old dedupe
memory, expired idempotent answers), in batches, and what it must keep."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from services.infra import db
from services.infra.config import ConfigError, Env
from services.infra.outbox import Outbox
from services.infra.retention import DELETED, Retention, RetentionSettings, delete_older
from services.intake import storage

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url):
    engine = db.make_engine(database_url)
    db.migrate(engine, "intake", storage.MIGRATIONS)
    yield engine
    engine.dispose()


def seen(engine, count: int, age: timedelta) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(count)]
    with engine.begin() as conn:
        conn.execute(storage.processed_events.insert(), [
            {"consumer": "intake", "event_id": i, "processed_at": db.utcnow() - age}
            for i in ids])
    return ids


def test_the_job_deletes_old_rows_in_batches_and_keeps_the_rest(engine):
    service = f"test-{uuid.uuid4().hex[:6]}"
    outbox = Outbox(engine, storage.outbox, service, publisher_factory=lambda: None)
    settings = RetentionSettings(dedupe=timedelta(days=7), batch=10)
    old = seen(engine, 25, timedelta(days=8))
    recent = seen(engine, 5, timedelta(days=6))
    with engine.begin() as conn:
        conn.execute(storage.idempotency_keys.insert(), [
            {"key_hash": f"{n:064d}", "tracking_id": "LPR-X", "sealed_answer": b"x",
             "created_at": db.utcnow() - timedelta(hours=hours)}
            for n, hours in enumerate((25, 30, 23))])
    retention = Retention.standard(service, engine, outbox, storage.processed_events, settings,
                                   extra={"idempotency_keys": delete_older(
                                       engine, storage.idempotency_keys,
                                       storage.idempotency_keys.c.created_at,
                                       timedelta(hours=24),
                                       storage.idempotency_keys.c.key_hash)})

    assert retention.run_once() == {"outbox": 0, "processed_events": 25, "idempotency_keys": 2}
    with engine.connect() as conn:
        left = set(conn.execute(sa.select(storage.processed_events.c.event_id)).scalars())
        answers = conn.execute(sa.select(sa.func.count()).select_from(
            storage.idempotency_keys)).scalar_one()
    assert left == set(recent) and not left & set(old)
    assert answers == 1, "an answer inside its 24 hours stays"
    assert DELETED.labels(service, "processed_events")._value.get() == 25
    assert retention.run_once()["processed_events"] == 0


def test_the_dedupe_memory_cannot_be_set_shorter_than_a_day():
    with pytest.raises(ConfigError, match="LAPOR_DEDUPE_RETENTION_DAYS"):
        RetentionSettings.from_env(Env({"LAPOR_DEDUPE_RETENTION_DAYS": "0.5"}))
    assert RetentionSettings.from_env(Env({})).dedupe == timedelta(days=7)
    assert RetentionSettings.from_env(
        Env({"LAPOR_DEDUPE_RETENTION_DAYS": "3"})).dedupe == timedelta(days=3)
