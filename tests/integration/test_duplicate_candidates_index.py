"""Duplicate screening's candidates query reads the open tickets of one category in one
regency through ix_tickets_category_region_submitted (migration 0005), category and region
both: without the index the planners went through every open ticket of the country (the
state index) and sorted them, and with SQLite reading the region's districts by LIKE, every
open ticket of the category in the country."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from services.infra import db
from services.routing import storage
from services.routing.tickets import duplicates
from tests.integration.helpers import query_plans

INDEX = "ix_tickets_category_region_submitted"


@pytest.mark.parametrize("with_districts", [False, True])
def test_the_candidates_query_uses_the_index(database_url, with_districts):
    engine = db.make_engine(database_url)
    try:
        db.migrate(engine, "routing", storage.MIGRATIONS)
        params = {"category": "PUPR", "regency": "13.03", "within": "13.03.%",
                  "prefix": "13.03%", "beyond": "13.03/",
                  "since": datetime.now(UTC) - timedelta(days=30), "tracking_id": "x"}
        with engine.begin() as conn:
            assert INDEX in {ix["name"] for ix in sa.inspect(conn).get_indexes("tickets")}
            postgres = db.is_postgres(conn)
            query = duplicates._candidates_query(with_districts, not postgres)
            rows = []
            plans = query_plans(conn, lambda: rows.extend(query.all(conn, params)))
            assert rows == []
            assert len(plans) == 1 and INDEX in plans[0], plans
            print(plans[0])
            # The region is part of the index's search, not a filter on what it found.
            searched = plans[0].partition("Index Cond:")[2].partition("Filter:")[0] \
                if postgres else plans[0].partition("USING INDEX")[2].partition(")")[0]
            assert "region_code" in searched, plans
    finally:
        engine.dispose()
