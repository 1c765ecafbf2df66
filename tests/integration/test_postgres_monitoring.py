"""The custom query CloudNativePG's exporter runs in each service's database
(deploy/k8s/base/postgres.yaml), run here on a real server against notify's migrated
schema: LaporPostgresVacuumBehind and the dead rows panel see what it returns, so it must
run on the services' tables and say where autovacuum would take each one."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import yaml

from services.infra import db
from services.notify import store as notify_store

pytestmark = [pytest.mark.integration, pytest.mark.postgres]

POSTGRES_YAML = Path(__file__).resolve().parents[2] / "deploy" / "k8s" / "base" / "postgres.yaml"


def _lapor_tables_query() -> dict:
    for document in yaml.safe_load_all(POSTGRES_YAML.read_text()):
        if document and document["kind"] == "ConfigMap" \
                and document["metadata"]["name"] == "postgres-lapor-queries":
            return yaml.safe_load(document["data"]["queries"])["lapor_tables"]
    raise AssertionError("no postgres-lapor-queries ConfigMap")


def _rows(url: str) -> dict[str, dict]:
    query = _lapor_tables_query()
    columns = [next(iter(metric)) for metric in query["metrics"]]
    with psycopg.connect(url) as conn:
        cursor = conn.execute(query["query"])
        rows = cursor.fetchall()
        names = [d.name for d in cursor.description]
    assert names == columns, "the query's columns are not the metrics it declares"
    return {row[1]: dict(zip(names, row, strict=True)) for row in rows}


def test_the_query_reports_every_table_of_the_service_with_autovacuums_trigger(postgres_url):
    engine = db.make_engine(postgres_url)
    try:
        db.migrate(engine, "notify", notify_store.MIGRATIONS)
    finally:
        engine.dispose()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        threshold = float(conn.execute("SHOW autovacuum_vacuum_threshold").fetchone()[0])
        scale = float(conn.execute("SHOW autovacuum_vacuum_scale_factor").fetchone()[0])
        # A table of 2,000 rows the server has counted, on the server's own settings.
        conn.execute("CREATE TABLE counted (id int)")
        conn.execute("INSERT INTO counted SELECT generate_series(1, 2000)")
        conn.execute("ANALYZE counted")
        # notify's deliveries with settings of its own, as an operator gives a large table;
        # autovacuum_enabled is not a number and must not break the query.
        conn.execute("ALTER TABLE deliveries SET (autovacuum_vacuum_threshold = 500, "
                     "autovacuum_vacuum_scale_factor = 0.01, autovacuum_enabled = true)")

    rows = _rows(postgres_url)

    assert {"deliveries", "outbox", "processed_events"} <= set(rows)
    assert rows["counted"]["autovacuum_trigger"] == pytest.approx(threshold + scale * 2000)
    # Never analysed, so no rows counted (reltuples -1 on PostgreSQL 14 and later): the
    # trigger is the table's own threshold, not a negative number.
    assert rows["deliveries"]["autovacuum_trigger"] == pytest.approx(500)
    assert rows["outbox"]["autovacuum_trigger"] == pytest.approx(threshold)
    assert all(row["datname"] == postgres_url.rsplit("/", 1)[1] for row in rows.values())
