"""A region's handling rules are read through ix_handling_rules_region_code (migration
0007): routing remembers the rules by region and reads each region's at once, and the
table's key begins with the category, so each read went through every rule of the country
(17,195 in the national directory) on SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from services.infra import db
from services.routing import storage
from tests.integration.helpers import query_plans

pytestmark = pytest.mark.integration

INDEX = "ix_handling_rules_region_code"


def test_a_regions_rules_are_read_through_the_index(database_url):
    engine = db.make_engine(database_url)
    try:
        db.migrate(engine, "routing", storage.MIGRATIONS, after=storage.seed_demo)
        with engine.begin() as conn:
            assert INDEX in {ix["name"] for ix in sa.inspect(conn).get_indexes(
                "handling_rules")}
            postgres = db.is_postgres(conn)
            rows = []
            plans = query_plans(conn, lambda: rows.extend(
                storage._RULES_IN_REGION.all(conn, {"region": "13.03"})))
            # The demo directory's regency has rules of its own, read whole.
            assert {r.category for r in rows}, "the demo directory has rules in 13.03"
            assert len(plans) == 1 and INDEX in plans[0], plans
            rules = plans[0].partition("Index Cond:")[2] if postgres \
                else plans[0].partition(f"USING INDEX {INDEX}")[2]
            assert "region_code" in rules, plans
    finally:
        engine.dispose()
