"""Group commit (services.infra.group_commit): writers that arrive while a group commits go
together in the next transaction, each answered only once its rows are committed; a group
that fails writes nothing and sends each writer back to write alone. On SQLite and
PostgreSQL, with real threads and a first commit held open."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from services.infra import db, group_commit
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.integration

metadata = sa.MetaData()
reports = sa.Table(
    "group_reports", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(20), nullable=False, unique=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False))
notes = sa.Table(
    "group_notes", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("report_key", sa.String(20), nullable=False),
    sa.Column("n", sa.Integer, nullable=False))
INSERT_REPORT, INSERT_NOTE = db.Insert(reports), db.Insert(notes)


@pytest.fixture
def engine(database_url):
    engine = db.make_engine(database_url, pool_size=20)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def parts(key: str, notes_each: int = 1) -> list:
    return [(INSERT_REPORT, {"key": key, "at": db.utcnow()}),
            (INSERT_NOTE, [{"report_key": key, "n": n} for n in range(notes_each)])]


def keys(engine) -> list[str]:
    with db.reading(engine) as conn:  # on SQLite without the write lock a held commit has
        return sorted(conn.execute(sa.select(reports.c.key)).scalars())


def note_count(engine) -> int:
    with db.reading(engine) as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(notes)).scalar_one()


def sizes() -> tuple[float, float]:
    """(groups, writers) observed so far by the process's histogram."""
    hist = group_commit.GROUP_SIZE.collect()[0]
    values = {s.name: s.value for s in hist.samples}
    return values["lapor_commit_group_size_count"], values["lapor_commit_group_size_sum"]


class HeldFirstCommit:
    """Holds the first INSERT on `engine` until release(), so the writers started meanwhile
    queue behind it and make up the next group together."""

    def __init__(self, engine):
        self.engine, self.entered, self.released = engine, threading.Event(), threading.Event()
        self._first = True
        sa.event.listen(engine, "before_cursor_execute", self._hold)

    def _hold(self, _conn, _cursor, statement, *_args):
        if self._first and statement.lstrip().upper().startswith(("INSERT", "WITH")):
            self._first = False
            self.entered.set()
            assert self.released.wait(30)

    def release(self):
        # The listener stays (a no-op from now on): removing it while another thread
        # runs the engine's listeners would break that thread's loop over them.
        self.released.set()


def start(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def test_writers_that_arrive_during_a_commit_are_committed_together_next(engine):
    writes = group_commit.GroupCommit(engine)
    held = HeldFirstCommit(engine)
    outcomes: dict[str, object] = {}

    def writer(key):
        outcomes[key] = writes.write(parts(key, notes_each=2))
        # Answered only once committed: another connection already sees the rows.
        outcomes[key + ":seen"] = key in keys(engine)

    threads = [start(writer, "first")]
    assert held.entered.wait(10)
    groups_before, writers_before = sizes()
    threads += [start(writer, f"later{i}") for i in range(6)]
    wait_for(lambda: writes.waiting() == 6, what="six writers queue behind the held commit")
    assert keys(engine) == [], "nothing is answered or visible while the first commit is held"
    held.release()
    for thread in threads:
        thread.join(30)

    expected = ["first"] + [f"later{i}" for i in range(6)]
    assert keys(engine) == sorted(expected)
    assert note_count(engine) == 14
    assert all(outcomes[key] is True and outcomes[key + ":seen"] for key in expected)
    groups, writers = sizes()
    assert (groups - groups_before, writers - writers_before) == (2, 7), \
        "the held writer alone, then the six that waited for it in one transaction"
    assert writes.waiting() == 0 and not writes._leading  # nobody left behind


def test_a_group_with_a_taken_key_writes_nothing_and_sends_each_writer_back(engine):
    writes = group_commit.GroupCommit(engine)
    writes.write(parts("taken"))
    held = HeldFirstCommit(engine)
    outcomes: dict[str, object] = {}

    def writer(key, label):
        outcomes[label] = writes.write(parts(key))

    threads = [start(writer, "held", "held")]
    assert held.entered.wait(10)
    threads += [start(writer, "taken", "again")]
    wait_for(lambda: writes.waiting() == 1, what="the retry queues first")
    threads += [start(writer, f"fresh{i}", f"fresh{i}") for i in range(3)]
    wait_for(lambda: writes.waiting() == 4, what="three fresh writers queue behind it")
    held.release()
    for thread in threads:
        thread.join(30)

    assert outcomes["held"] is True
    assert [outcomes["again"]] + [outcomes[f"fresh{i}"] for i in range(3)] == [False] * 4
    assert keys(engine) == ["held", "taken"], "the failed group wrote none of its rows"
    assert note_count(engine) == 2

    # Alone, as the caller then writes each: the fresh ones go in, the taken key fails.
    for i in range(3):
        assert writes.write(parts(f"fresh{i}")) is True
    with pytest.raises(sa.exc.IntegrityError):
        writes.write(parts("taken"))
    assert keys(engine) == ["fresh0", "fresh1", "fresh2", "held", "taken"]


def test_a_group_too_big_for_one_statement_is_still_all_or_nothing(engine):
    """Past db.TOGETHER_MAX_ROWS rows a part, a group is several statements (on PostgreSQL
    too): a taken key in the last of them takes back what the earlier ones wrote."""
    writes = group_commit.GroupCommit(engine)
    writes.write(parts("taken"))
    held = HeldFirstCommit(engine)
    outcomes = []
    threads = [start(lambda: outcomes.append(writes.write(parts("held"))))]
    assert held.entered.wait(10)
    many = [(INSERT_NOTE, [{"report_key": "many", "n": n}
                           for n in range(db.TOGETHER_MAX_ROWS + 1)]),
            (INSERT_REPORT, {"key": "many", "at": db.utcnow()})]
    threads.append(start(lambda: outcomes.append(writes.write(many))))
    wait_for(lambda: writes.waiting() == 1, what="the big writer queues")
    threads.append(start(lambda: outcomes.append(writes.write(parts("taken")))))
    wait_for(lambda: writes.waiting() == 2, what="the taken key queues behind it")
    held.release()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == [False, False, True]
    assert keys(engine) == ["held", "taken"]
    assert note_count(engine) == 2, "the notes written before the failing insert are gone"


def test_a_writer_alone_meets_its_own_failure(engine):
    writes = group_commit.GroupCommit(engine)
    assert writes.write(parts("once")) is True
    with pytest.raises(sa.exc.IntegrityError):
        writes.write(parts("once"))
    assert writes.write(parts("twice")) is True, "the lead was given back after the failure"
    assert keys(engine) == ["once", "twice"]


def test_many_writers_at_once_each_land_exactly_once(engine):
    writes = group_commit.GroupCommit(engine)
    start_together = threading.Barrier(12)
    failures = []

    def writer(n):
        start_together.wait()
        for i in range(25):
            if writes.write(parts(f"w{n}-{i}")) is not True:
                failures.append((n, i))

    groups_before, writers_before = sizes()
    threads = [start(writer, n) for n in range(12)]
    for thread in threads:
        thread.join(60)
    assert failures == []
    assert keys(engine) == sorted(f"w{n}-{i}" for n in range(12) for i in range(25))
    assert note_count(engine) == 300
    groups, writers = sizes()
    assert writers - writers_before == 300
    assert groups - groups_before < 300, "some writers shared a transaction"
    assert writes.waiting() == 0 and not writes._leading
