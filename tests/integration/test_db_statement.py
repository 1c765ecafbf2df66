"""db.Statement, the hot paths' selects and updates run straight on the driver's cursor:
what it reads and writes is what SQLAlchemy's own execution reads and writes, on SQLite
and PostgreSQL, and its errors are SQLAlchemy's."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa

from services.infra import db

pytestmark = pytest.mark.integration

metadata = sa.MetaData()
items = sa.Table(
    "statement_items", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(20), nullable=False, unique=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("due", sa.DateTime(timezone=True), nullable=False),
    sa.Column("flag", sa.Boolean, nullable=False),
    sa.Column("note", sa.Text),
    sa.Column("payload", sa.LargeBinary),
)

DUE = (sa.select(items).where(items.c.status == "pending", items.c.due <= sa.bindparam("now"))
       .order_by(items.c.due, items.c.id).limit(2))
TAKE = items.update().where(items.c.id == sa.bindparam("b_id"), items.c.status == "pending"
                            ).values(status="taken", due=sa.bindparam("b_due"),
                                     note=sa.bindparam("b_note"))


@pytest.fixture
def engine(database_url):
    engine = db.make_engine(database_url)
    metadata.create_all(engine)
    now = db.utcnow()
    with engine.begin() as conn:
        conn.execute(items.insert(), [
            {"key": "a", "status": "pending", "due": now - timedelta(minutes=3), "flag": True,
             "note": "Jalan rusak — 1 m", "payload": b"\x00\xff"},
            {"key": "b", "status": "pending", "due": now - timedelta(minutes=2), "flag": False,
             "note": None, "payload": None},
            {"key": "c", "status": "pending", "due": now - timedelta(minutes=1), "flag": True,
             "note": "", "payload": b""},
            {"key": "d", "status": "done", "due": now - timedelta(minutes=9), "flag": True,
             "note": "x", "payload": None},
            {"key": "e", "status": "pending", "due": now + timedelta(hours=1), "flag": True,
             "note": "later", "payload": None},
        ])
    yield engine
    engine.dispose()


def test_rows_read_are_the_rows_sqlalchemy_reads_converted_the_same_way(engine):
    now = db.utcnow()
    with engine.begin() as conn:
        fast = db.Statement(DUE).all(conn, {"now": now})
        core = conn.execute(DUE, {"now": now}).all()
    assert [row.key for row in fast] == ["a", "b"]  # the statement's own filter and limit
    assert [tuple(row) for row in fast] == [tuple(row) for row in core]
    assert isinstance(fast[0].due, type(core[0].due)) and fast[0].flag is True
    assert fast[0].payload == b"\x00\xff" and fast[1].note is None


def test_first_gives_one_row_or_none(engine):
    statement = db.Statement(DUE)
    with engine.begin() as conn:
        assert statement.first(conn, {"now": db.utcnow()}).key == "a"
        assert statement.first(conn, {"now": db.utcnow() - timedelta(days=1)}) is None


def test_an_update_writes_what_sqlalchemys_update_writes_and_counts_its_rows(engine):
    due = db.utcnow() + timedelta(minutes=5, microseconds=7)
    take = db.Statement(TAKE)
    with engine.begin() as conn:
        ids = dict(conn.execute(sa.select(items.c.key, items.c.id)).all())
        assert take.execute(conn, {"b_id": ids["a"], "b_due": due, "b_note": "ok"}) == 1
        conn.execute(TAKE, {"b_id": ids["b"], "b_due": due, "b_note": "ok"})
        # The statement's own condition holds: a row already taken is not touched again.
        assert take.execute(conn, {"b_id": ids["a"], "b_due": due, "b_note": "again"}) == 0
    with engine.connect() as conn:
        text = dict(conn.execute(sa.select(items.c.key, sa.cast(items.c.due, sa.Text))
                                 .where(items.c.key.in_(["a", "b"]))).all())
        notes = dict(conn.execute(sa.select(items.c.key, items.c.note)).all())
    assert text["a"] == text["b"]  # the same text on disk, not only the same value read back
    assert notes["a"] == "ok"


def test_it_runs_in_the_callers_transaction(engine):
    with pytest.raises(RuntimeError), engine.begin() as conn:
        db.Statement(TAKE).execute(conn, {"b_id": 1, "b_due": db.utcnow(), "b_note": "no"})
        raise RuntimeError("the caller fails after the update")
    with engine.connect() as conn:
        assert conn.execute(sa.select(items.c.status).where(items.c.id == 1)).scalar() \
            == "pending"


def test_unwrapped_statements_stand_alone_and_the_connection_goes_back_transactional(engine):
    """db.unwrapped (the token check's one read): a statement on it is done when it returns,
    and the pooled connection it used runs the next caller's statements in a transaction
    again (one left in autocommit would make every later rollback a no-op)."""
    take = db.Statement(TAKE)
    status = db.Statement(sa.select(items.c.status).where(items.c.id == sa.bindparam("id")))
    with pytest.raises(RuntimeError), db.unwrapped(engine) as conn:
        assert status.first(conn, {"id": 1}).status == "pending"
        assert take.execute(conn, {"b_id": 1, "b_due": db.utcnow(), "b_note": "alone"}) == 1
        raise RuntimeError("the caller fails after the update")
    for _ in range(3):  # whichever pooled connection comes next
        with pytest.raises(RuntimeError), engine.begin() as conn:
            take.execute(conn, {"b_id": 2, "b_due": db.utcnow(), "b_note": "no"})
            raise RuntimeError("the caller fails after the update")
    with engine.connect() as conn:
        assert dict(conn.execute(sa.select(items.c.id, items.c.status)
                                 .where(items.c.id.in_([1, 2]))).all()) == {
            1: "taken", 2: "pending"}


def test_a_missing_value_is_named_and_nothing_runs(engine):
    with pytest.raises(KeyError, match="b_due"), engine.begin() as conn:
        db.Statement(TAKE).execute(conn, {"b_id": 1, "b_note": "no"})


def test_a_driver_error_is_sqlalchemys_error_without_the_values(engine):
    clash = db.Statement(items.update().where(items.c.key == sa.bindparam("old"))
                         .values(key=sa.bindparam("new")))
    with pytest.raises(sa.exc.IntegrityError) as caught, engine.begin() as conn:
        clash.execute(conn, {"old": "a", "new": "b"})
    assert "parameters hidden" in str(caught.value)
    with engine.begin() as conn:  # rolled back, the connection fit for the next one
        assert db.Statement(DUE).first(conn, {"now": db.utcnow()}).key == "a"


def test_statements_whose_values_bind_at_execution_are_refused(engine):
    expanding = sa.select(items).where(items.c.key.in_(sa.bindparam("keys", expanding=True)))
    with pytest.raises(ValueError, match="bind"), engine.begin() as conn:
        db.Statement(expanding).all(conn, {"keys": ["a"]})


def test_a_list_the_statement_holds_itself_is_bound_as_sqlalchemy_binds_it(engine):
    listed = sa.select(items.c.key).where(items.c.status.in_(("pending", "done")),
                                          items.c.due <= sa.bindparam("now"),
                                          items.c.flag.is_(True)).order_by(items.c.key)
    now = db.utcnow()
    with engine.begin() as conn:
        assert [row.key for row in db.Statement(listed).all(conn, {"now": now})] == \
            conn.execute(listed, {"now": now}).scalars().all() == ["a", "c", "d"]


measures = sa.Table(
    "statement_measures", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("latitude", sa.Float),
    sa.Column("amount", sa.Numeric(10, 3)),
    sa.Column("ratio", sa.Numeric(10, 3, asdecimal=False)),
)


def test_numbers_are_read_as_sqlalchemy_reads_them(engine):
    """On PostgreSQL a number's conversion depends on the type the server sends (a Float
    column cannot say by itself): the first run's description decides it, and later runs
    convert the same way."""
    with engine.begin() as conn:
        conn.execute(measures.insert(), [{"latitude": -0.6569, "amount": "12.500",
                                          "ratio": "0.125"},
                                         {"latitude": None, "amount": None, "ratio": None}])
    select = db.Statement(sa.select(measures.c.latitude, measures.c.amount, measures.c.ratio)
                          .order_by(measures.c.id))
    with engine.connect() as conn:
        core = [tuple(r) for r in conn.execute(select.statement)]
        first, again = select.all(conn), select.all(conn)
    assert [tuple(r) for r in first] == [tuple(r) for r in again] == core
    assert [type(v) for v in first[0]] == [type(v) for v in core[0]] == [float, Decimal, float]
    assert first[0].latitude == -0.6569 and first[1] == (None, None, None)
