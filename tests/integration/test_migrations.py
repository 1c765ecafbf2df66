"""Schema migrations (Alembic, frozen revisions): every service's database migrates from
empty to head on SQLite and PostgreSQL and then matches its table definitions exactly
(`alembic check`); a database created by the first release's schema is taken over and
upgraded with its data; replicas starting together migrate once."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from services.infra import db, migrations
from services.intake import idempotency
from services.intake import storage as intake_storage
from services.notify import store as notify_store
from services.routing import storage as routing_storage

pytestmark = pytest.mark.integration

PLANS = {"intake": intake_storage.MIGRATIONS, "routing": routing_storage.MIGRATIONS,
         "notify": notify_store.MIGRATIONS}
LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_schema"



@pytest.mark.parametrize("service", sorted(PLANS))
def test_an_empty_database_migrates_to_head_and_matches_the_tables(database_url, service):
    plan = PLANS[service]
    engine = db.make_engine(database_url)
    try:
        applied = db.migrate(engine, service, plan)
        assert applied[0] == "0001" and applied[-1] == migrations.head(plan)
        migrations.check(engine, plan)  # raises when models and revisions disagree
        with engine.connect() as conn:
            assert migrations.current(conn, plan) == migrations.head(plan)
            tables = set(sa.inspect(conn).get_table_names())
        assert plan.version_table in tables
        assert set(plan.metadata.tables) <= tables
        assert "schema_migrations" not in tables
        assert db.migrate(engine, service, plan) == [], "a second run changes nothing"
    finally:
        engine.dispose()


def _load_legacy(database_url: str, service: str) -> None:
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[1]
        with sqlite3.connect(path) as conn:
            conn.executescript((LEGACY / f"{service}.sqlite.sql").read_text())
    else:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute((LEGACY / f"{service}.postgres.sql").read_text())


def test_the_first_releases_intake_database_is_upgraded_with_its_data(database_url):
    """Reports keep everything citizens see, contacts leave, and an idempotent answer stored
    in clear by the first release is sealed: the same key and request still open it."""
    _load_legacy(database_url, "intake")
    engine = db.make_engine(database_url)
    answer = {"tracking_id": "LPR-7K2-M9Q-XD4", "access_token": "tok-secret-123",
              "status": "SUBMITTED", "status_label": "Belum terverifikasi"}
    now = db.utcnow()
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO reports (tracking_id, kind, title, body, region_code, category, "
                "target_agency, incident_date, address, channel, anonymous, confidential, "
                "reporter_name, reporter_email, reporter_phone, language, access_token_hash, "
                "status, status_at, agency_code, agency_name, deadline_zone, created_at, "
                "updated_at) VALUES ('LPR-7K2-M9Q-XD4', 'PENGADUAN', 'Jalan rusak', "
                "'Jalan berlubang di Nagari Muaro', '13.03', '', '', '', '', 'web', false, "
                "false, 'Rina', 'rina@contoh.id', '+6281234567890', 'id', 'abc', "
                "'DISPATCHED', :now, 'PUPR-13.03', 'Dinas PUPR', 'WIB', :now, :now)"),
                {"now": now})
            conn.execute(sa.text(
                "INSERT INTO idempotency_keys (key, request_hash, tracking_id, response, "
                "created_at) VALUES ('key-0001-abcdef', 'fingerprint-1', 'LPR-7K2-M9Q-XD4', "
                ":response, :now)"), {"response": json.dumps(answer), "now": now})
            conn.execute(sa.text(
                "INSERT INTO outbox (event_id, event_type, aggregate_id, body, created_at, "
                "published_at, attempts) VALUES ('e1', 'reporter.registered', "
                "'LPR-7K2-M9Q-XD4', :body, :now, :now, 1)"),
                {"body": b"rina@contoh.id", "now": now})
            # Entries of one event twice (replayed after its dedupe row was deleted), one
            # of another event, and intake's own entry, which has no event.
            for source in ("ev-1", "ev-1", "ev-2", None):
                conn.execute(sa.text(
                    "INSERT INTO report_timeline (tracking_id, at, status, note, agency_name, "
                    "private, source_event_id) VALUES ('LPR-7K2-M9Q-XD4', :now, 'DISPATCHED', "
                    "'', '', false, :source)"), {"now": now, "source": source})

        assert db.migrate(engine, "intake", intake_storage.MIGRATIONS)[0] == "0002"
        migrations.check(engine, intake_storage.MIGRATIONS)

        with engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("reports")}
            report = conn.execute(sa.select(intake_storage.reports)).one()
            stored = conn.execute(sa.select(intake_storage.idempotency_keys)).one()
            outbox_rows = conn.execute(sa.text("SELECT body FROM outbox")).all()
            sources = conn.execute(sa.text(
                "SELECT source_event_id FROM report_timeline ORDER BY id")).scalars().all()
        assert not {"reporter_name", "reporter_email", "reporter_phone"} & columns
        assert (report.status, report.agency_code, report.version) == ("DISPATCHED",
                                                                      "PUPR-13.03", 0)
        assert stored.key_hash == idempotency.key_hash("key-0001-abcdef")
        assert b"tok-secret-123" not in stored.sealed_answer
        assert idempotency.unseal("key-0001-abcdef", "fingerprint-1",
                                  stored.sealed_answer) == answer
        assert idempotency.unseal("key-0001-abcdef", "another request",
                                  stored.sealed_answer) is None
        assert outbox_rows == [], "a confirmed event and its contacts are gone"
        assert sources == ["ev-1", "ev-2", None], "an event's twin entry goes, the first stays"
    finally:
        engine.dispose()


@pytest.mark.parametrize("service", ["routing", "notify"])
def test_the_first_releases_database_is_taken_over(database_url, service):
    _load_legacy(database_url, service)
    engine = db.make_engine(database_url)
    try:
        assert db.migrate(engine, service, PLANS[service])[0] == "0002"
        migrations.check(engine, PLANS[service])
    finally:
        engine.dispose()


def test_replicas_starting_together_migrate_and_seed_once(database_url):
    """Three replicas on one empty database: one migrates, each finds the work done; the
    `after` step (seeding) runs under the same lock, so none sees a half-seeded table."""
    engines = [db.make_engine(database_url) for _ in range(3)]
    seen: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def seed(conn):
        # Idempotent like the real seeding: look, then insert what is missing.
        count = conn.execute(sa.text("SELECT count(*) FROM regions")).scalar_one()
        seen.append(count)
        if count == 0:
            conn.execute(sa.text("INSERT INTO regions (code, name, level) VALUES "
                                 "('13', 'Sumatera Barat', 'provinsi')"))

    def replica(engine):
        try:
            start.wait(10)
            db.migrate(engine, "routing", routing_storage.MIGRATIONS, after=seed)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=replica, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for engine in engines:
        engine.dispose()
    assert errors == []
    assert sorted(seen) == [0, 1, 1]


@pytest.mark.parametrize("service", sorted(PLANS))
def test_the_head_read_from_the_scripts_is_alembics(service):
    assert migrations.head_from_scripts(PLANS[service]) == migrations.head(PLANS[service])


_START = """
import sys
from services.infra import db
from services.routing import storage
engine = db.make_engine(sys.argv[1])
applied = db.migrate(engine, "routing", storage.MIGRATIONS, after=storage.seed_demo)
with engine.connect() as conn:
    agencies = conn.execute(storage.agencies.select()).all()
print(",".join(applied) or "-", "alembic" in sys.modules, len(agencies) > 0)
"""


def test_a_start_on_a_current_schema_does_not_load_alembic_and_still_seeds(database_url):
    """Every start but the first after a release finds the schema current: it checks the
    stored revision and runs the seed step under the lock, without Alembic's modules (11 MB
    of a routing replica's 150). A schema one revision behind is still upgraded."""
    import subprocess
    import sys

    def start() -> list[str]:
        done = subprocess.run([sys.executable, "-c", _START, database_url], check=True,
                              capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parents[2])
        return done.stdout.split()

    head = migrations.head(routing_storage.MIGRATIONS)
    applied, loaded, seeded = start()
    assert applied.endswith(head) and loaded == "True" and seeded == "True"
    assert start() == ["-", "False", "True"]

    engine = db.make_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"UPDATE {routing_storage.MIGRATIONS.version_table} "
                                 f"SET version_num = '0007'"))
            conn.execute(sa.text("CREATE INDEX ix_outbox_published_at ON outbox "
                                 "(published_at)"))
    finally:
        engine.dispose()
    applied, loaded, _ = start()
    assert (applied, loaded) == (head, "True")


def _index_sql(conn, table: str) -> dict[str, str]:
    """The table's indexes by name, each as the database states its definition."""
    if conn.dialect.name == "sqlite":
        found = conn.execute(sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'index' "
                                     "AND tbl_name = :t AND sql IS NOT NULL"), {"t": table})
    else:
        found = conn.execute(sa.text("SELECT indexname, indexdef FROM pg_indexes "
                                     "WHERE tablename = :t"), {"t": table})
    return dict(found.all())


def test_notifys_due_index_becomes_one_of_pending_deliveries(database_url):
    """A notify database one revision behind (0005, the due index on every delivery) is
    upgraded to the index of pending deliveries only, its deliveries kept."""
    plan = notify_store.MIGRATIONS
    engine = db.make_engine(database_url)
    try:
        db.migrate(engine, "notify", plan)
        now = db.utcnow()
        with engine.begin() as conn:
            conn.execute(sa.text("DROP INDEX ix_deliveries_pending"))
            conn.execute(sa.text("CREATE INDEX ix_deliveries_due ON deliveries "
                                 "(status, next_attempt_at)"))
            conn.execute(sa.text(f"UPDATE {plan.version_table} SET version_num = '0005'"))
            conn.execute(notify_store.deliveries.insert(), [
                dict(delivery_id=f"d-{status}", tracking_id="LPR-1", channel="webhook",
                     audience="agency", target="PUPR-13.03", trigger_event_id=f"e-{status}",
                     trigger_type="ticket.dispatched", payload="{}", status=status,
                     attempts=1, next_attempt_at=now, created_at=now, updated_at=now)
                for status in ("pending", "delivered")])
        assert db.migrate(engine, "notify", plan) == ["0006"]
        migrations.check(engine, plan)
        with engine.connect() as conn:
            indexes = _index_sql(conn, "deliveries")
            kept = conn.execute(sa.select(notify_store.deliveries.c.delivery_id)
                                .where(notify_store.PENDING)).scalars().all()
            total = conn.execute(sa.select(sa.func.count())
                                 .select_from(notify_store.deliveries)).scalar_one()
        assert "ix_deliveries_due" not in indexes
        assert "WHERE" in indexes["ix_deliveries_pending"].upper()
        assert "pending" in indexes["ix_deliveries_pending"]
        assert (kept, total) == (["d-pending"], 2)
    finally:
        engine.dispose()
