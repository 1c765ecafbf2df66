"""Duplicate screening's candidates query reads the open tickets of one category in one
regency through ix_tickets_category_region_submitted (migration 0005). Without it the
planners went through every open ticket of the country (the state index) and sorted them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from services.infra import db
from services.routing import storage
from services.routing.tickets import duplicates

INDEX = "ix_tickets_category_region_submitted"


@pytest.mark.parametrize("with_districts", [False, True])
def test_the_candidates_query_uses_the_index(database_url, with_districts):
    engine = db.make_engine(database_url)
    try:
        db.migrate(engine, "routing", storage.MIGRATIONS)
        query = duplicates._candidates_query(with_districts)
        params = {"category": "PUPR", "regency": "13.03", "within": "13.03.%",
                  "since": datetime.now(UTC) - timedelta(days=30), "tracking_id": "x"}
        with engine.begin() as conn:
            assert INDEX in {ix["name"] for ix in sa.inspect(conn).get_indexes("tickets")}
            postgres = db.is_postgres(conn)
            if postgres:
                # A small table is cheaper to scan: ask whether the index can serve it.
                conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plans = []

            def explain(_conn, cursor, statement, parameters, _context, _many):
                cursor.execute(("EXPLAIN " if postgres else "EXPLAIN QUERY PLAN ") + statement,
                               parameters)
                plans.append(" ".join(str(step[-1]) for step in cursor.fetchall()))

            sa.event.listen(conn, "before_cursor_execute", explain)
            try:
                rows = query.all(conn, params)
            finally:
                sa.event.remove(conn, "before_cursor_execute", explain)
            assert rows == []
            assert len(plans) == 1 and INDEX in plans[0], plans
    finally:
        engine.dispose()
