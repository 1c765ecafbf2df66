"""db.Insert, the hot paths' inserts run straight on the driver's cursor: what it stores is
what SQLAlchemy's own insert stores, on SQLite and PostgreSQL, and its errors are
SQLAlchemy's."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
import sqlalchemy as sa

from services.infra import db

pytestmark = pytest.mark.integration

metadata = sa.MetaData()
rows = sa.Table(
    "insert_rows", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(20), nullable=False, unique=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("flag", sa.Boolean, nullable=False, default=False),
    sa.Column("note", sa.Text, nullable=False, default=""),
    sa.Column("payload", sa.LargeBinary),
    sa.Column("score", sa.Float),
    sa.Column("created", sa.DateTime(timezone=True), server_default=sa.func.now()),
)


@pytest.fixture
def engine(database_url):
    engine = db.make_engine(database_url)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def stored(engine, key: str) -> tuple:
    with engine.connect() as conn:
        row = conn.execute(sa.select(rows).where(rows.c.key == key)).one()
        text = conn.execute(sa.select(sa.cast(rows.c.at, sa.Text)).where(rows.c.key == key)
                            ).scalar_one()
    return row._mapping, text


def test_a_row_is_stored_exactly_as_sqlalchemys_own_insert_stores_it(engine):
    at = db.utcnow() - timedelta(days=3, microseconds=17)
    values = {"at": at, "flag": True, "note": "Jalan rusak — 1 m", "payload": b"\x00\xff",
              "score": 0.125}
    with engine.begin() as conn:
        assert db.Insert(rows).execute(conn, {"key": "fast", **values}) == 1
        conn.execute(rows.insert(), {"key": "core", **values})
    (fast, fast_text), (core, core_text) = stored(engine, "fast"), stored(engine, "core")
    assert fast_text == core_text  # the same text on disk, not only the same value read back
    assert {k: v for k, v in fast.items() if k not in ("id", "key", "created")} == \
        {k: v for k, v in core.items() if k not in ("id", "key", "created")}
    assert db.as_utc(fast["at"]) == at
    assert fast["created"] is not None  # a server default still applies


def test_columns_left_out_get_their_defaults_and_several_rows_go_in_one_call(engine):
    at = db.utcnow()
    with engine.begin() as conn:
        inserted = db.Insert(rows).execute(conn, [{"key": f"k{i}", "at": at} for i in range(3)])
    assert inserted == 3
    row, _ = stored(engine, "k2")
    assert (row["flag"], row["note"], row["payload"], row["score"]) == (False, "", None, None)


def test_a_taken_key_is_an_integrity_error_that_does_not_quote_the_values(engine):
    insert = db.Insert(rows)
    with engine.begin() as conn:
        insert.execute(conn, {"key": "rina@contoh.id", "at": db.utcnow()})
    with pytest.raises(sa.exc.IntegrityError) as caught, engine.begin() as conn:
        insert.execute(conn, {"key": "rina@contoh.id", "at": db.utcnow(), "note": "081234567890"})
    assert "081234567890" not in str(caught.value)
    assert "parameters hidden" in str(caught.value)
    # The failed transaction was rolled back and the connection is fit for the next one.
    with engine.begin() as conn:
        assert insert.execute(conn, {"key": "next", "at": db.utcnow()}) == 1


def test_skip_duplicates_leaves_a_taken_key_out_and_says_so(engine):
    insert = db.Insert(rows, skip_duplicates=True)
    with engine.begin() as conn:
        assert insert.execute(conn, {"key": "once", "at": db.utcnow(), "note": "first"}) == 1
        assert insert.execute(conn, {"key": "once", "at": db.utcnow(), "note": "second"}) == 0
    assert stored(engine, "once")[0]["note"] == "first"


def test_an_upsert_sets_only_the_columns_named_on_a_taken_key(engine):
    first, later = db.utcnow() - timedelta(hours=1), db.utcnow()
    with engine.begin() as conn:
        db.upsert(conn, rows, "key", {"key": "kontak", "at": first, "note": "pertama",
                                      "score": 1.0}, ("note", "at"))
        db.upsert(conn, rows, "key", {"key": "kontak", "at": later, "note": "kedua",
                                      "score": 2.0}, ("note", "at"))
        conn.execute(rows.insert(), {"key": "core", "at": later})
    row, text = stored(engine, "kontak")
    assert (row["note"], row["score"], db.as_utc(row["at"])) == ("kedua", 1.0, later)
    assert text == stored(engine, "core")[1]  # the time stored as SQLAlchemy stores it
    with pytest.raises(ValueError, match="either"):
        db.Insert(rows, skip_duplicates=True, update_on=("key", ("note",)))


def test_it_writes_in_the_callers_transaction(engine):
    with pytest.raises(RuntimeError), engine.begin() as conn:
        db.Insert(rows).execute(conn, {"key": "undone", "at": db.utcnow()})
        raise RuntimeError("the handler failed after the insert")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(rows)).scalar_one() == 0


def test_rows_that_name_different_columns_or_unknown_ones_are_refused(engine):
    insert = db.Insert(rows)
    with engine.begin() as conn:
        with pytest.raises(ValueError, match="different columns"):
            insert.execute(conn, [{"key": "a", "at": db.utcnow()},
                                  {"key": "b", "at": db.utcnow(), "note": "x"}])
        with pytest.raises(KeyError, match="no column"):
            insert.execute(conn, {"key": "a", "at": db.utcnow(), "nmae": "x"})


def test_a_column_with_a_computed_default_is_refused_when_built():
    table = sa.Table("computed_default", sa.MetaData(),
                     sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("at", sa.DateTime, default=db.utcnow))
    with pytest.raises(ValueError, match="only scalar defaults"):
        db.Insert(table)


@pytest.mark.postgres
def test_a_connection_the_server_dropped_is_invalidated_and_the_next_one_is_fresh(
        postgres_url):
    engine = db.make_engine(postgres_url)
    metadata.create_all(engine)
    insert = db.Insert(rows)
    try:
        with pytest.raises(sa.exc.DBAPIError) as caught, engine.begin() as conn:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            with psycopg.connect(postgres_url, autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", (pid,))
            insert.execute(conn, {"key": "lost", "at": db.utcnow()})
        # The caller sees why the insert failed, not a failed rollback on a dead connection.
        assert "terminating connection" in str(caught.value)
        assert caught.value.connection_invalidated
        # The pool does not hand the dead connection out again.
        with engine.begin() as conn:
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != pid
            assert insert.execute(conn, {"key": "next", "at": db.utcnow()}) == 1
    finally:
        engine.dispose()


# -- insert_together(): on PostgreSQL several inserts in one statement ------------------------
others = sa.Table(
    "insert_others", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(20), sa.ForeignKey("insert_rows.key"), nullable=False),
    sa.Column("n", sa.Integer, nullable=False, default=0),
)


def count_rows(engine, table=rows) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_inserts_together_store_what_each_insert_stores_in_one_statement(engine):
    """Rows of several inserts, one of them with a key the other's rows refer to, stored as
    each Insert stores them (defaults filled, values as given); on PostgreSQL one statement
    reaches the server, on SQLite one per insert."""
    statements = []

    def seen(_conn, _cursor, statement, *_args):
        statements.append(statement)

    sa.event.listen(engine, "after_cursor_execute", seen)
    at = db.utcnow()
    with engine.begin() as conn:
        db.insert_together(conn, [
            (db.Insert(rows), {"key": "laporan", "at": at, "note": "satu", "payload": b"\x00"}),
            (db.Insert(others), [{"key": "laporan", "n": 1}, {"key": "laporan", "n": 2}]),
            (db.Insert(rows), [{"key": f"baris{i}", "at": at} for i in range(2)]),
        ])
    sa.event.remove(engine, "after_cursor_execute", seen)
    assert count_rows(engine) == 3 and count_rows(engine, others) == 2
    stored_row = stored(engine, "laporan")[0]
    assert (stored_row["note"], bytes(stored_row["payload"]), stored_row["flag"]) \
        == ("satu", b"\x00", False)
    assert db.as_utc(stored_row["at"]) == at
    assert (stored(engine, "baris1")[0]["note"], stored(engine, "baris1")[0]["flag"]) \
        == ("", False)  # the Insert's defaults filled
    with engine.connect() as conn:
        assert sorted(conn.execute(sa.select(others.c.n)).scalars()) == [1, 2]
    inserts = [s for s in statements if "INSERT" in s.upper()]
    assert len(inserts) == (1 if engine.dialect.name == "postgresql" else 3), inserts


def test_several_rows_of_one_insert_together_are_one_statement_up_to_the_cap(engine):
    """A part's rows go in one INSERT on PostgreSQL (as many rows as its VALUES list) while
    there are at most TOGETHER_MAX_ROWS of them; beyond that, and on SQLite, in one call of
    the driver's executemany."""
    statements = []

    def seen(_conn, _cursor, statement, *_args):
        statements.append(statement)

    sa.event.listen(engine, "after_cursor_execute", seen)
    at = db.utcnow()
    few = [{"key": f"sedikit{i}", "at": at} for i in range(3)]
    many = [{"key": f"banyak{i}", "at": at} for i in range(db.TOGETHER_MAX_ROWS + 1)]
    with engine.begin() as conn:
        db.insert_together(conn, [(db.Insert(rows), few)])
    few_statements, statements[:] = list(statements), []
    with engine.begin() as conn:
        db.insert_together(conn, [(db.Insert(rows), many)])
    sa.event.remove(engine, "after_cursor_execute", seen)
    assert count_rows(engine) == len(few) + len(many)
    assert stored(engine, "sedikit2")[0]["note"] == ""  # the Insert's default filled
    inserts = [s for s in few_statements if "INSERT" in s.upper()]
    assert len(inserts) == 1
    if engine.dialect.name == "postgresql":
        assert inserts[0].upper().startswith("WITH"), "one statement of all three rows"
    assert not any(s.upper().startswith("WITH") for s in statements), \
        "past the cap the rows go by executemany"


def test_a_taken_key_among_inserts_together_fails_all_of_them(engine):
    insert = db.Insert(rows)
    with engine.begin() as conn:
        insert.send(conn, {"key": "rina@contoh.id", "at": db.utcnow()})
    with pytest.raises(sa.exc.IntegrityError) as caught, engine.begin() as conn:
        db.insert_together(conn, [
            (insert, {"key": "sebelum", "at": db.utcnow()}),
            (insert, {"key": "rina@contoh.id", "at": db.utcnow(), "note": "081234567890"}),
            (db.Insert(others), {"key": "sebelum"})])
    assert "081234567890" not in str(caught.value)
    assert count_rows(engine) == 1 and count_rows(engine, others) == 0
    with engine.begin() as conn:  # the connection is fit for the next transaction
        assert insert.execute(conn, {"key": "berikut", "at": db.utcnow()}) == 1


@pytest.mark.postgres
def test_a_dropped_connection_under_inserts_together_is_invalidated(postgres_url):
    engine = db.make_engine(postgres_url)
    metadata.create_all(engine)
    try:
        with pytest.raises(sa.exc.DBAPIError) as caught, engine.begin() as conn:
            pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            with psycopg.connect(postgres_url, autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", (pid,))
            db.insert_together(conn, [(db.Insert(rows), {"key": "hilang", "at": db.utcnow()}),
                                      (db.Insert(others), {"key": "hilang"})])
        assert caught.value.connection_invalidated
        with engine.begin() as conn:
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != pid
        assert count_rows(engine) == 0
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_large_statement_is_parsed_by_the_driver_once(postgres_url):
    """psycopg keeps the parse of a query's placeholders only up to 50 parameters by
    default; the services' engines keep it for their larger statements too, which run again
    and again (a ticket's insert, a round of notify's records)."""
    from psycopg import _queries

    engine = db.make_engine(postgres_url)
    metadata.create_all(engine)
    at = db.utcnow()
    try:
        for batch in range(3):
            parts = [(db.Insert(rows), [{"key": f"besar{batch}-{i}", "at": at, "note": "x",
                                         "payload": b"x", "score": 0.5}
                                        for i in range(db.TOGETHER_MAX_ROWS)]),
                     (db.Insert(others), [{"key": f"besar{batch}-{i}", "n": i}
                                          for i in range(db.TOGETHER_MAX_ROWS)])]
            before = _queries._query2pg.cache_info()
            with engine.begin() as conn:
                db.insert_together(conn, parts)
            after = _queries._query2pg.cache_info()
            if batch:  # parsed at the first run, found at the next
                assert after.hits == before.hits + 1 and after.misses == before.misses
        assert count_rows(engine) == 3 * db.TOGETHER_MAX_ROWS
    finally:
        engine.dispose()
