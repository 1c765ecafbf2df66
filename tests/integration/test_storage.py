"""Storage on SQLite and PostgreSQL: migrations that several replicas may run at once, the
routing directory (demo seed, who handles what where) and the national region list."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.infra import db
from services.intake import storage as intake_storage
from services.routing import seed
from services.routing import storage as routing_storage

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NATIONAL_COUNTS = {"provinsi": 38, "kabupaten_kota": 514, "kecamatan": 7_285,
                   "desa_kelurahan": 83_762}


@pytest.fixture
def engine(database_url):
    engine = db.make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def directory(engine):
    """Routing's schema with the demo directory (Sumatera Barat and the ministries)."""
    db.migrate(engine, "routing", routing_storage.MIGRATIONS)
    with engine.begin() as conn:
        routing_storage.seed_directory(conn, seed.demo_regions(), seed.demo_agencies())
    return engine


def snapshot(engine, *tables: sa.Table) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        return {t.name: sorted(tuple(r) for r in conn.execute(sa.select(t))) for t in tables}


@pytest.mark.parametrize("service, migrations", [("intake", intake_storage.MIGRATIONS),
                                                 ("routing", routing_storage.MIGRATIONS)])
def test_migrate_applies_once_and_then_nothing(engine, service, migrations):
    applied = db.migrate(engine, service, migrations)
    assert applied[0] == "0001" and applied == sorted(applied)
    assert db.migrate(engine, service, migrations) == []
    with engine.connect() as conn:
        versions = conn.execute(sa.text(f"SELECT version_num FROM {migrations.version_table}")
                                ).scalars().all()
    assert versions == [applied[-1]]
    assert set(sa.inspect(engine).get_table_names()) >= {"outbox", "processed_events",
                                                         migrations.version_table}


def test_replicas_starting_together_migrate_without_failing(database_url):
    """Three replicas start at once against an empty database: exactly one applies the
    migration, the others find it done, none fails."""
    engines = [db.make_engine(database_url) for _ in range(3)]
    gate = threading.Barrier(len(engines))
    results: dict[int, object] = {}

    def start(i):
        gate.wait()
        try:
            results[i] = db.migrate(engines[i], "routing", routing_storage.MIGRATIONS)
        except Exception as exc:  # noqa: BLE001 (reported below with its type)
            results[i] = exc

    threads = [threading.Thread(target=start, args=(i,)) for i in range(len(engines))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        outcomes = sorted(results.values(), key=str)
        assert [type(o) for o in outcomes] == [list, list, list], results
        assert sum(1 for o in outcomes if o) == 1, "exactly one replica migrates"
        assert "tickets" in sa.inspect(engines[0]).get_table_names()
    finally:
        for engine in engines:
            engine.dispose()


def test_seeding_the_demo_directory_again_changes_nothing(directory):
    tables = (routing_storage.regions, routing_storage.agencies, routing_storage.handling_rules)
    before = snapshot(directory, *tables)
    assert len(before["regions"]) == 20  # Sumatera Barat and its 19 regencies and cities
    assert len(before["agencies"]) == len(seed.demo_agencies())
    with directory.begin() as conn:
        routing_storage.seed_directory(conn, seed.demo_regions(), seed.demo_agencies())
    assert snapshot(directory, *tables) == before


def test_the_most_specific_active_handler_wins(directory):
    def handler(category, region):
        with db.reading(directory) as conn:
            found = routing_storage.SqlDirectory(conn).handler_for(category, region)
        return found.code if found else None

    assert handler("PUPR", "13.03") == "PUPR-13.03"  # Kabupaten Sijunjung
    assert handler("PUPR", "13.03.01") == "PUPR-13.03"  # a district in it
    assert handler("KESEHATAN", "13.71") == "DINKES-13.71"  # Kota Padang
    assert handler("PUPR", "13") == "PEMPROV-13"  # the province itself
    assert handler("PUPR", "31.71") == "KEMENPU"  # no regional rule: the ministry
    assert handler("SOSIAL", "31.71") == "KEMENSOS"
    assert handler("PERPAJAKAN", "13.03") is None  # nobody handles an unknown category
    assert handler("PUPR", "") == "KEMENPU"

    with directory.begin() as conn:  # the regency office is deactivated: the province takes it
        conn.execute(routing_storage.agencies.update()
                     .where(routing_storage.agencies.c.code == "PUPR-13.03").values(active=False))
    assert handler("PUPR", "13.03") == "PEMPROV-13"
    with db.reading(directory) as conn:
        assert routing_storage.SqlDirectory(conn).agency("PUPR-13.03") is None
        assert routing_storage.SqlDirectory(conn).region_name("13.03") == "Kabupaten Sijunjung"


def test_a_remembered_rule_serves_its_regency_but_not_a_district_with_its_own(directory):
    """The rule a decision found is remembered for the regions the rules name, not for the
    village: the next village of the regency costs no query, and a district with a rule of
    its own still gets that one."""
    rules = routing_storage.handling_rules
    routing_storage.forget_directory()
    with directory.begin() as conn:  # Kecamatan Kamang Baru has its own roads office
        conn.execute(rules.insert().values(category="PUPR", region_code="13.03.01",
                                           agency_code="PEMPROV-13"))
    statements = []

    def seen(_conn, _cursor, statement, *_args):
        statements.append(statement)

    sa.event.listen(directory, "before_cursor_execute", seen)

    def rule(region):
        with db.reading(directory) as conn:
            return routing_storage.SqlDirectory(conn).rule_for("PUPR", "", region)

    try:
        first = rule("13.03.02.2001")
        assert (first.agency.code, first.matched_region) == ("PUPR-13.03", "13.03")
        asked = len(statements)
        again = rule("13.03.05.2003")  # another village of Sijunjung, another district
        assert again == first and len(statements) == asked
        own = rule("13.03.01.2002")
        assert (own.agency.code, own.matched_region) == ("PEMPROV-13", "13.03.01")
        assert rule("13.03.01.2005") == own
        assert rule("13.03.02.2001") == first
    finally:
        sa.event.remove(directory, "before_cursor_execute", seen)
        routing_storage.forget_directory()


def test_the_rule_from_memory_is_the_first_of_the_rules_the_database_gives(directory, clock):
    """rule_for answers from each region's remembered rules; for every category and
    subcategory of the taxonomy in regions of each depth, with an office deactivated and
    a district rule of its own, it is the first of rules_for (read from the database each
    time), with the rule region's name."""
    with directory.begin() as conn:
        routing_storage.load_taxonomy(conn)
        conn.execute(routing_storage.handling_rules.insert().values(
            category="PUPR", region_code="13.03.01", agency_code="PEMPROV-13"))
        conn.execute(routing_storage.agencies.update()
                     .where(routing_storage.agencies.c.code == "DINKES-13.03")
                     .values(active=False))
    regions = ["", "13", "13.03", "13.03.01", "13.03.01.2002", "13.03.02.2001", "13.71",
               "31.71.01", "99.99"]
    compared = found = 0
    with db.reading(directory) as conn:
        names = routing_storage.SqlDirectory(conn)
        taxonomy = names.categories()
        for category in taxonomy:
            main, sub = (category.parent_code, category.code) if category.parent_code else \
                (category.code, "")
            for region in regions:
                expected = names.rules_for(main, sub, region)
                best = expected[0] if expected else None
                if best is not None and best.matched_region:
                    best = dataclasses.replace(
                        best, region_name=names.region_name(best.matched_region))
                assert names.rule_for(main, sub, region) == best, (main, sub, region)
                compared += 1
                found += best is not None
    assert compared > 500 and found > 100
    with db.reading(directory) as conn:
        names = routing_storage.SqlDirectory(conn)
        assert names.rule_for("PUPR", "", "13.03.01.2002").agency.code == "PEMPROV-13"
        assert names.rule_for("KESEHATAN", "", "13.03.02.2001").agency.code != "DINKES-13.03"


def test_what_the_directory_remembers_stays_bounded_and_names_do_not_push_rules_out(
        directory, monkeypatch, clock):
    """Answers are dropped once past their TTL, or all at once when too many are current: a
    process asked about every village of the country holds at most NAMES_MAX region names
    and REMEMBERED_MAX other answers. The names are held apart, so a stream of reports from
    new villages does not make every decision read its region's rules again."""
    monkeypatch.setattr(routing_storage, "REMEMBERED_MAX", 10)
    monkeypatch.setattr(routing_storage, "NAMES_MAX", 10)
    statements = []
    sa.event.listen(directory, "before_cursor_execute",
                    lambda _c, _cur, statement, *_a: statements.append(statement))
    def ask_25(ask, memory: dict, step: float) -> None:
        with db.reading(directory) as conn:
            names = routing_storage.SqlDirectory(conn)
            for i in range(25):
                ask(names, i)
                assert len(memory) <= 10
                clock[0] += step

    assert _rule_holder(directory) == "PUPR-13.03"
    ask_25(lambda names, i: names.region_name(f"13.03.02.{2001 + i}"),
           routing_storage._NAMES, routing_storage.DIRECTORY_TTL / 40)
    statements.clear()
    assert _rule_holder(directory, "13.03.05.2003") == "PUPR-13.03"
    assert not [s for s in statements if "handling_rules" in s]
    ask_25(lambda names, i: names.agency(f"X-{i}"), routing_storage._REMEMBERED,
           routing_storage.DIRECTORY_TTL / 4)
    with db.reading(directory) as conn:
        assert routing_storage.SqlDirectory(conn).region_name("13.03") == "Kabupaten Sijunjung"


_CHANGE_ELSEWHERE = """
import sys
import sqlalchemy as sa
from services.infra import db
from services.routing import storage
engine = db.make_engine(sys.argv[1])
with engine.begin() as conn:
    conn.execute(storage.agencies.update().where(storage.agencies.c.code == sys.argv[2])
                 .values(active=sys.argv[3] == "on"))
    storage.directory_changed(conn)
engine.dispose()
"""


def _set_agency_in_another_process(engine, code: str, active: bool) -> None:
    """What an operator's `directory load` in another process does: a change and the
    version raised in one transaction, nothing of this process's memory touched."""
    subprocess.run([sys.executable, "-c", _CHANGE_ELSEWHERE,
                    engine.url.render_as_string(hide_password=False), code,
                    "on" if active else "off"], check=True, cwd=ROOT, timeout=60,
                   capture_output=True)


@pytest.fixture
def clock(monkeypatch):
    """routing's storage on a clock the test moves; nothing remembered before or after."""
    now = [1000.0]
    monkeypatch.setattr(routing_storage.time, "monotonic", lambda: now[0])
    routing_storage.forget_directory()
    yield now
    routing_storage.forget_directory()


def _rule_holder(engine, region: str = "13.03.02.2001") -> str:
    with db.reading(engine) as conn:
        return routing_storage.SqlDirectory(conn).rule_for("PUPR", "", region).agency.code


def test_a_directory_changed_in_another_process_is_followed_within_a_second(directory, clock):
    """A replica remembers the directory's answers for as long as its version stands (one
    query a second instead of the rules again every 30 s), and follows an operator's change
    made by another process within VERSION_CHECK_SECONDS."""
    statements = []
    sa.event.listen(directory, "before_cursor_execute",
                    lambda _c, _cur, statement, *_a: statements.append(statement))
    assert _rule_holder(directory) == "PUPR-13.03"

    clock[0] += 120  # long past the old 30-second TTL: only the version is read again
    statements.clear()
    assert _rule_holder(directory) == "PUPR-13.03"
    assert len(statements) == 1 and "directory_version" in statements[0]

    _set_agency_in_another_process(directory, "PUPR-13.03", active=False)
    statements.clear()
    assert _rule_holder(directory) == "PUPR-13.03"  # within the second: still remembered
    assert statements == []
    clock[0] += routing_storage.VERSION_CHECK_SECONDS
    assert _rule_holder(directory) == "PEMPROV-13"  # the province's office takes it
    _set_agency_in_another_process(directory, "PUPR-13.03", active=True)
    clock[0] += routing_storage.VERSION_CHECK_SECONDS
    assert _rule_holder(directory) == "PUPR-13.03"


def test_an_answer_read_from_before_a_change_is_forgotten_once_the_change_settles(
        directory, clock):
    """A transaction that began before another process's change may read the directory as
    it was after this process saw the new version (SQLite reads from a snapshot): what it
    remembers then is forgotten SETTLE_SECONDS later, not kept until the next change."""
    assert _rule_holder(directory) == "PUPR-13.03"
    with db.reading(directory) as old:
        old.execute(sa.select(routing_storage.agencies.c.code)).all()  # its snapshot begins
        _set_agency_in_another_process(directory, "PUPR-13.03", active=False)
        clock[0] += routing_storage.VERSION_CHECK_SECONDS
        with db.reading(directory) as new:  # this process sees the new version
            routing_storage.SqlDirectory(new).region_name("13.03")
        # The old transaction asks next, and reads the rule's agency as it was.
        routing_storage.SqlDirectory(old).rule_for("PUPR", "", "13.03.02.2001")
    clock[0] += routing_storage.SETTLE_SECONDS
    assert _rule_holder(directory) == "PEMPROV-13"
    assert _rule_holder(directory, "13.03.05.2003") == "PEMPROV-13"


def _version(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(routing_storage.directory_version.c.version)).scalar()


def test_each_change_of_the_directory_raises_its_version_and_a_repeat_does_not(directory):
    """Every path that changes what decisions read raises the version (so that every replica
    forgets within a second); loading or seeding what is already there does not (so that
    an idempotent reload does not make every replica read everything again)."""
    seeded = _version(directory)
    assert seeded >= 1
    with directory.begin() as conn:  # the demo seed has no taxonomy yet: a change
        assert routing_storage.load_taxonomy(conn).added > 0
    start = _version(directory)
    assert start == seeded + 1
    with directory.begin() as conn:
        routing_storage.seed_directory(conn, seed.demo_regions(), seed.demo_agencies())
        loaded = routing_storage.read_directory(conn)
        routing_storage.load_directory(conn, loaded)
        routing_storage.upsert_regions(conn, seed.demo_regions())
        routing_storage.load_taxonomy(conn)
    assert _version(directory) == start

    with directory.begin() as conn:
        renamed = [dataclasses.replace(r, name="Kab. Sijunjung") if r.code == "13.03" else r
                   for r in seed.demo_regions()]
        assert routing_storage.upsert_regions(conn, renamed) == 1
    assert _version(directory) == start + 1

    with directory.connect() as conn:
        without = routing_storage.read_directory(conn)
    without.rules = {k: v for k, v in without.rules.items() if k != ("PUPR", "13.03")}
    with directory.begin() as conn:
        summary = routing_storage.load_directory(conn, without)
    assert summary.rules.deactivated == 1 and _version(directory) == start + 2


@pytest.mark.shared_data
def test_the_national_region_list_imports_completely_and_idempotently(engine, shared_data):
    db.migrate(engine, "routing", routing_storage.MIGRATIONS)
    csv = shared_data / "wilayah-kepmendagri-2025.csv"
    rows = routing_storage.read_regions_csv(csv)
    with engine.begin() as conn:
        written = routing_storage.upsert_regions(conn, rows)
    assert written == sum(NATIONAL_COUNTS.values())

    def counts():
        r = routing_storage.regions
        with engine.connect() as conn:
            return dict(conn.execute(sa.select(r.c.level, sa.func.count()).group_by(r.c.level))
                        .all())

    assert counts() == NATIONAL_COUNTS
    with engine.begin() as conn:
        assert routing_storage.upsert_regions(conn, routing_storage.read_regions_csv(csv)) == 0
    assert counts() == NATIONAL_COUNTS

    r = routing_storage.regions
    with engine.connect() as conn:
        sijunjung = conn.execute(sa.select(r).where(r.c.code == "13.03")).one()
        village = conn.execute(sa.select(r).where(r.c.level == "desa_kelurahan",
                                                  r.c.code.like("13.03.%")).limit(1)).one()
    assert (sijunjung.name, sijunjung.parent_code) == ("Kabupaten Sijunjung", "13")
    assert village.parent_code == village.code.rsplit(".", 1)[0]
    # The demo directory seeds on top of the official list without changing its size.
    with engine.begin() as conn:
        routing_storage.seed_directory(conn, seed.demo_regions(), seed.demo_agencies())
    assert counts() == NATIONAL_COUNTS


@pytest.mark.parametrize("lines, line_number, words", [
    (["13,Sumatera Barat,provinsi", "13.3,Sijunjung,kabupaten_kota"], 3, "not a Kemendagri code"),
    (["13,Sumatera Barat,provinsi", "13.03,Kabupaten Sijunjung,kabupaten"], 3, "level"),
    (["13,Sumatera Barat,provinsi", "13.03, ,kabupaten_kota"], 3, "empty name"),
    (["13,Sumatera Barat,provinsi", "13.03"], 3, "three fields"),
    (["13,Sumatera Barat,provinsi", "", "13.03;Kabupaten Sijunjung;kabupaten_kota"], 4,
     "three fields"),
    (["13,Sumatera Barat,provinsi", "13.03,Kabupaten Sijunjung,provinsi"], 3,
     "13.03 is a kabupaten_kota code"),
    (["13,Sumatera Barat,provinsi", "13,Sumbar,provinsi"], 3, "already on line 2"),
])
def test_a_malformed_region_file_is_rejected_naming_the_line(tmp_path, lines, line_number,
                                                              words):
    path = tmp_path / "wilayah.csv"
    path.write_text("\n".join(["kode,nama,level", *lines]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError) as raised:
        routing_storage.read_regions_csv(path)
    assert f"{path}:{line_number}:" in str(raised.value)
    assert words in str(raised.value)


def test_a_region_file_that_is_not_utf8_is_rejected(tmp_path):
    path = tmp_path / "wilayah.csv"
    path.write_bytes("kode,nama,level\n13,Sumatera Barat,provinsi\n91.71,Kota Jayapura,"
                     "kabupaten_kota\n".encode("utf-16"))
    with pytest.raises(ValueError, match="not UTF-8 text"):
        routing_storage.read_regions_csv(path)


def test_a_region_file_without_the_expected_columns_is_rejected(tmp_path):
    path = tmp_path / "wilayah.csv"
    path.write_text("code,name\n13,Sumatera Barat\n", encoding="utf-8")
    with pytest.raises(ValueError, match="missing column"):
        routing_storage.read_regions_csv(path)


def test_the_import_command_reports_a_bad_line_and_imports_nothing(tmp_path, sqlite_url):
    path = tmp_path / "wilayah.csv"
    path.write_text("kode,nama,level\n13,Sumatera Barat,provinsi\n13.03\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "services.routing", "import-regions", str(path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env={"ROUTING_DATABASE_URL": sqlite_url, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2, done.stderr
    assert f"{path}:3:" in done.stderr and "Traceback" not in done.stderr
    engine = db.make_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count())
                                .select_from(routing_storage.regions)).scalar() == 0
    finally:
        engine.dispose()
