"""The national directory on SQLite and PostgreSQL, as an operator and a citizen meet it: the
official region list imported into routing and intake, the national directory generated and
loaded (idempotently, with a summary of what changed), exported and loaded back, rules
choosing the agency whose matter a report is, and intake refusing a region that does not
exist even while routing is down."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
import sqlalchemy as sa

from lapor.v1 import common_pb2, events_pb2
from services.infra import db, events
from services.infra.regions import Region, read_regions_csv
from services.intake import ids, limits
from services.intake import regions as intake_regions
from services.intake import storage as intake_storage
from services.intake.app import create_app
from services.routing import storage
from services.routing.directory import document, generator
from tests.conftest import PG_DSN, REQUIRE_SHARED_DATA, SHARED_DATA, drop_database, free_port
from tests.integration.helpers import dead_amqp_url, start_routing, wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
NATIONAL_CSV = SHARED_DATA / "wilayah-kepmendagri-2025.csv"
NATIONAL_COUNTS = {"provinsi": 38, "kabupaten_kota": 514, "kecamatan": 7_285,
                   "desa_kelurahan": 83_762}
SMALL_CSV = """kode,nama,level
13,Sumatera Barat,provinsi
13.03,Kabupaten Sijunjung,kabupaten_kota
13.03.01,Kamang Baru,kecamatan
91,Papua,provinsi
91.71,Kota Jayapura,kabupaten_kota
"""


def cli(service: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"services.{service}", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "LAPOR_LOG_LEVEL": "WARNING", **env})


def national_regions() -> list[Region]:
    if not NATIONAL_CSV.exists():
        message = f"reference data not found at {NATIONAL_CSV} (set LAPOR_SHARED_DATA)"
        if REQUIRE_SHARED_DATA:
            pytest.fail(message + "; CI requires it")
        pytest.skip(message)
    return read_regions_csv(NATIONAL_CSV)


def small_file(tmp_path: Path) -> Path:
    path = tmp_path / "wilayah.csv"
    path.write_text(SMALL_CSV, encoding="utf-8")
    return path


# -- intake: a region that does not exist -----------------------------------------------------

def report(region_code: str, **overrides) -> dict:
    body = {"kind": "PENGADUAN", "title": "Puskesmas tutup di jam pelayanan",
            "body": "Puskesmas di kelurahan kami tutup pukul sepuluh pagi padahal jadwalnya "
                    "sampai pukul dua siang.", "region_code": region_code,
            "reporter": {"name": "Yohana", "email": "yohana@contoh.id"}}
    body.update(overrides)
    return body


@pytest.fixture
def intake(database_url):
    """Intake with routing and the broker unreachable (closed ports)."""
    app = create_app({"DATABASE_URL": database_url, "AMQP_URL": dead_amqp_url(),
                      "ROUTING_ADDR": f"127.0.0.1:{free_port()}", "ROUTING_TIMEOUT": 0.5,
                      "START_WORKERS": False,
                      **{key: "100000 per minute" for key in limits.LIMIT_SETTINGS}})
    yield app
    ctx = app.extensions["lapor"]
    ctx.routing.close()
    ctx.engine.dispose()


def test_an_unknown_region_is_refused_at_intake_while_routing_is_down(intake, tmp_path):
    client = intake.test_client()
    ready = client.get("/readyz").get_json()
    assert ready["checks"]["routing"] is False
    # A fresh install without the official list takes any well-formed code.
    assert ready["checks"]["regions"] == 0
    assert client.post("/api/v1/reports", json=report("99.99")).status_code == 201

    engine = intake.extensions["lapor"].engine
    with engine.begin() as conn:
        assert intake_regions.import_regions(conn, read_regions_csv(small_file(tmp_path))) == 5
    assert client.get("/readyz").get_json()["checks"]["regions"] == 5

    refused = client.post("/api/v1/reports", json=report("99.99", title="?"))
    assert refused.status_code == 422 and refused.mimetype == "application/problem+json"
    errors = {e["field"]: e["message"] for e in refused.get_json()["errors"]}
    assert errors["region_code"].startswith("no region with code 99.99 in the official list")
    assert "title" in errors  # every problem at once
    with engine.connect() as conn:
        stored = conn.execute(sa.select(intake_storage.reports.c.region_code)).scalars().all()
    assert stored == ["99.99"]  # only the report from before the list was imported

    for code in ("91.71", " 13.03.01 ", "13"):
        accepted = client.post("/api/v1/reports", json=report(code))
        assert accepted.status_code == 201, accepted.get_json()


def test_a_region_found_in_one_database_is_not_taken_for_another(tmp_path):
    """intake remembers the codes it found; what it remembers belongs to one database."""
    engines = [db.make_engine(f"sqlite:///{tmp_path / name}.db") for name in ("a", "b")]
    try:
        for engine, codes in zip(engines, (("13.03", "91.71"), ("91.71",)), strict=True):
            db.migrate(engine, "intake", intake_storage.MIGRATIONS)
            with engine.begin() as conn:
                intake_regions.import_regions(conn, [Region(c, c, "kabupaten_kota")
                                                     for c in codes])
        assert intake_regions.problem(engines[0], "13.03") is None
        assert intake_regions.problem(engines[1], "13.03").startswith(
            "no region with code 13.03 in the official list")
    finally:
        for engine in engines:
            engine.dispose()


def test_intake_keeps_the_list_in_memory_yet_follows_imports_by_other_processes(
        tmp_path, monkeypatch):
    """intake answers from its copy of the list; a code another process adds is taken at
    once, one it removes is refused once the copy is read again, and codes that differ only
    by leading zeros or dots are never taken for each other."""
    monkeypatch.setattr(intake_regions, "KNOWN_SECONDS", 0.5)
    engine = db.make_engine(f"sqlite:///{tmp_path / 'intake.db'}")
    try:
        db.migrate(engine, "intake", intake_storage.MIGRATIONS)
        with engine.begin() as conn:
            intake_regions.import_regions(conn, [
                Region("12", "SUMATERA UTARA", "provinsi"),
                Region("13.03", "KAB. SIJUNJUNG", "kabupaten_kota"),
                Region("13.03.01.2001", "MUARO", "desa")])
        for code in ("12", "13.03", "13.03.01.2001"):
            assert intake_regions.problem(engine, code) is None, code
        for code in ("00.12", "01.2", "13.30", "13.03.01", "13.03.01.2002"):
            assert intake_regions.problem(engine, code).startswith(
                f"no region with code {code} in the official list"), code

        # Another process (the import Job) adds one region and removes another, straight in
        # the database: this process's copy knows of neither change.
        with engine.begin() as conn:
            conn.execute(intake_storage.regions.insert().values(
                code="13.03.02", name="SUMPUR KUDUS", level="kecamatan"))
            conn.execute(intake_storage.regions.delete().where(
                intake_storage.regions.c.code == "13.03"))
        assert intake_regions.problem(engine, "13.03.02") is None, "an added code waits"
        assert intake_regions.problem(engine, "13.03") is None, "the copy is still in time"
        time.sleep(0.6)
        assert intake_regions.problem(engine, "13.03").startswith(
            "no region with code 13.03 in the official list")
        assert intake_regions.problem(engine, "13.03.02") is None
    finally:
        engine.dispose()


def test_the_region_list_is_read_again_in_the_background_not_on_a_submission(
        tmp_path, monkeypatch):
    monkeypatch.setattr(intake_regions, "KNOWN_SECONDS", 0.4)
    engine = db.make_engine(f"sqlite:///{tmp_path / 'intake.db'}")
    keeper = None
    try:
        db.migrate(engine, "intake", intake_storage.MIGRATIONS)
        with engine.begin() as conn:
            intake_regions.import_regions(conn, [
                Region("12", "SUMATERA UTARA", "provinsi"),
                Region("13.03", "KAB. SIJUNJUNG", "kabupaten_kota")])
        keeper = intake_regions.Keeper(engine).start()
        wait_for(lambda: engine.url in intake_regions._lists, 5, what="the first read")
        # The import Job (another process) removes a region: the copy follows by itself.
        with engine.begin() as conn:
            conn.execute(intake_storage.regions.delete().where(
                intake_storage.regions.c.code == "13.03"))
        wait_for(lambda: len(intake_regions._lists[engine.url][1]) == 1, 5,
                 what="the copy to be read again without a submission")

        here = threading.get_ident()
        on_request_path: list[str] = []

        @sa.event.listens_for(engine, "before_cursor_execute")
        def watch(conn, cursor, statement, *args):
            if threading.get_ident() == here:
                on_request_path.append(statement)

        for _ in range(30):  # 1.5 s: several lifetimes of the copy
            assert intake_regions.problem(engine, "12") is None
            time.sleep(0.05)
        assert on_request_path == [], "a check read the list (or asked the database)"
        assert keeper.loop.healthy()
    finally:
        if keeper is not None:
            assert keeper.stop()
            assert not keeper.loop.status().alive
        engine.dispose()


@pytest.mark.shared_data
def test_routing_and_intake_import_the_national_list_once(tmp_path):
    national_regions()  # skips without the reference data
    urls = {"ROUTING_DATABASE_URL": f"sqlite:///{tmp_path / 'routing.db'}",
            "INTAKE_DATABASE_URL": f"sqlite:///{tmp_path / 'intake.db'}"}
    for service, url in (("routing", "ROUTING_DATABASE_URL"), ("intake", "INTAKE_DATABASE_URL")):
        first = cli(service, "import-regions", str(NATIONAL_CSV), env=urls)
        assert first.returncode == 0, first.stderr
        assert "91,599 regions, 91,599 rows written" in first.stdout
        again = cli(service, "import-regions", str(NATIONAL_CSV), env=urls)
        assert again.returncode == 0, again.stderr
        assert "91,599 regions, 0 rows written" in again.stdout
        engine = db.make_engine(urls[url])
        table = storage.regions if service == "routing" else intake_storage.regions
        try:
            with engine.connect() as conn:
                counts = dict(conn.execute(sa.select(table.c.level, sa.func.count())
                                           .group_by(table.c.level)).all())
        finally:
            engine.dispose()
        assert counts == NATIONAL_COUNTS, service


# -- the national directory, loaded once per database engine ----------------------------------

@pytest.fixture(scope="module", params=["sqlite",
                                        pytest.param("postgres", marks=pytest.mark.postgres)])
def national(request, tmp_path_factory):
    """A routing database with the official region list and the generated national
    directory, loaded the way `make up` does."""
    regions = national_regions()
    if request.param == "sqlite":
        url, dropped = f"sqlite:///{tmp_path_factory.mktemp('national') / 'routing.db'}", None
    else:
        name = f"lapor_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"{PG_DSN}/postgres", autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url, dropped = f"{PG_DSN}/{name}", name
    engine = db.make_engine(url)
    text = document.dump(generator.generate(regions))
    directory = document.expand(document.load_text(text))
    db.migrate(engine, "routing", storage.MIGRATIONS, after=storage.after_migrate())
    with engine.begin() as conn:
        storage.upsert_regions(conn, regions)
    with engine.begin() as conn:
        summary = storage.load_directory(conn, directory)
    assert summary.agencies.added == len(directory.agencies)
    assert summary.rules.added == len(directory.rules)
    yield engine, url, directory
    engine.dispose()
    if dropped:
        with psycopg.connect(f"{PG_DSN}/postgres", autocommit=True) as admin:
            drop_database(admin, dropped)


def rule(engine, category: str, subcategory: str, region: str):
    with db.reading(engine) as conn:
        return storage.SqlDirectory(conn).rule_for(category, subcategory, region)


@pytest.mark.shared_data
def test_provinces_carry_their_iso_code_and_time_zone(national):
    engine, _, _ = national
    r = storage.regions
    with engine.connect() as conn:
        rows = {row.code: row for row in conn.execute(sa.select(r).where(
            r.c.level == "provinsi"))}
        regency = conn.execute(sa.select(r).where(r.c.code == "91.71")).one()
    assert len({row.iso_code for row in rows.values()}) == 38
    assert all(row.iso_code.startswith("ID-") and row.timezone for row in rows.values())
    assert [(rows[c].iso_code, rows[c].timezone) for c in ("13", "51", "91", "93", "94", "95",
                                                          "96")] == [
        ("ID-SB", "Asia/Jakarta"), ("ID-BA", "Asia/Makassar"), ("ID-PA", "Asia/Jayapura"),
        ("ID-PS", "Asia/Jayapura"), ("ID-PT", "Asia/Jayapura"), ("ID-PE", "Asia/Jayapura"),
        ("ID-PD", "Asia/Jayapura")]
    assert (regency.iso_code, regency.timezone) == (None, None)


@pytest.mark.shared_data
def test_loading_the_national_directory_again_or_its_export_changes_nothing(national):
    engine, _, directory = national
    with engine.begin() as conn:
        assert storage.load_directory(conn, directory).unchanged
    with db.reading(engine) as conn:
        exported = storage.export_directory(conn)
    # Written per kind of office, not one line per office.
    assert len(exported.splitlines()) < 2_000
    with engine.begin() as conn:
        summary = storage.load_directory(conn, document.expand(document.load_text(exported)))
    assert summary.unchanged, summary.lines()


@pytest.mark.shared_data
def test_every_regency_reaches_its_own_offices_and_the_national_bodies(national):
    engine, _, _ = national
    with engine.connect() as conn:
        regencies = conn.execute(sa.select(storage.regions.c.code).where(
            storage.regions.c.level == "kabupaten_kota")).scalars().all()
        dead = conn.execute(sa.select(sa.func.count()).select_from(
            storage.handling_rules.join(storage.agencies, storage.agencies.c.code
                                        == storage.handling_rules.c.agency_code))
            .where(storage.agencies.c.active.is_(False))).scalar()
    assert len(regencies) == 514 and dead == 0
    with db.reading(engine) as conn:
        directory = storage.SqlDirectory(conn)
        for region in regencies:
            assert directory.handler_for("PUPR", region).code == f"PUPR-{region}"
            assert directory.handler_for("KESEHATAN", region, "KESEHATAN.BPJS").code == \
                "BPJS-KESEHATAN"


@pytest.mark.shared_data
@pytest.mark.parametrize("category, subcategory, region, agency, explained", [
    ("KESEHATAN", "KESEHATAN.PUSKESMAS", "91.71", "Dinas Kesehatan Kota Jayapura",
     "KESEHATAN Kota Jayapura (91.71) → Dinas Kesehatan Kota Jayapura"),
    ("PUPR", "PUPR.JALAN_NASIONAL", "13.03.01",
     "Balai Pelaksanaan Jalan Nasional, Direktorat Jenderal Bina Marga",
     "PUPR.JALAN_NASIONAL nasional → Balai Pelaksanaan Jalan Nasional, Direktorat Jenderal "
     "Bina Marga"),
    ("KESEHATAN", "KESEHATAN.BPJS", "95.01", "BPJS Kesehatan",
     "KESEHATAN.BPJS nasional → BPJS Kesehatan"),
    ("LINGKUNGAN", "LINGKUNGAN.HUTAN", "62.01", "Dinas Kehutanan Provinsi Kalimantan Tengah",
     "LINGKUNGAN.HUTAN Kalimantan Tengah (62) → Dinas Kehutanan Provinsi Kalimantan Tengah"),
])
def test_a_rule_explains_which_agency_it_chose_and_why(national, category, subcategory,
                                                        region, agency, explained):
    engine, _, _ = national
    found = rule(engine, category, subcategory, region)
    assert found.agency.name == agency
    assert found.describe() == explained


@pytest.mark.shared_data
def test_a_puskesmas_report_from_kota_jayapura_reaches_its_dinas_kesehatan_in_wit(
        national, amqp_url):
    engine, url, _ = national
    service = start_routing(url, amqp_url)
    try:
        tracking_id = ids.new_tracking_id()
        service.workflow.handle(events.new("report.submitted", tracking_id,
                                           events_pb2.ReportSubmitted(
            tracking_id=tracking_id, report=common_pb2.ReportContent(
                kind=common_pb2.REPORT_KIND_PENGADUAN, category="KESEHATAN",
                title="Puskesmas Hamadi tutup saat jam pelayanan",
                body="Puskesmas di Hamadi, Distrik Jayapura Selatan, sudah tutup pukul "
                     "sepuluh pagi padahal jadwal pelayanan sampai pukul dua siang. Pasien "
                     "yang datang dari jauh disuruh pulang.", region_code="91.71",
                channel="web", submitted_at=events.timestamp(datetime.now(UTC)))),
            producer="intake"))
        t = storage.tickets
        with service.engine.connect() as conn:
            ticket = conn.execute(sa.select(t.c.agency_code, t.c.deadline, t.c.deadline_zone,
                                            t.c.state)
                                  .where(t.c.tracking_id == tracking_id)).one()
    finally:
        service.stop()
    assert (ticket.state, ticket.agency_code) == ("DISPATCHED", "DINKES-91.71"), ticket
    # The deadline ends at close of business in Jayapura (WIT, UTC+9), not in Jakarta.
    deadline = ticket.deadline.replace(tzinfo=ticket.deadline.tzinfo or UTC)
    assert ticket.deadline_zone == "WIT"
    assert deadline.astimezone(ZoneInfo("Asia/Jayapura")).hour == 16


# -- loading a directory file ---------------------------------------------------------------

SMALL_DIRECTORY = {
    "format": document.FORMAT,
    "offices": [{"kind": "DINKES", "regency": "Dinas Kesehatan {region}",
                 "province": "Dinas Kesehatan {region}", "parent": "KEMENKES",
                 "handles": ["KESEHATAN"]},
                {"kind": "RSUD", "regency": "Rumah Sakit Umum Daerah {region}",
                 "regency_parent": "DINKES-{code}", "handles": ["KESEHATAN.RUMAH_SAKIT"]}],
    "regions": {"13": "Provinsi Sumatera Barat", "13.03": "Kabupaten Sijunjung",
                "13.04": "Kabupaten Tanah Datar"},
    "agencies": [{"code": "ADMIN-NASIONAL", "name": "Admin Nasional", "level": "triage"},
                 {"code": "KEMENKES", "name": "Kementerian Kesehatan", "level": "national"},
                 {"code": "BPJS-KESEHATAN", "name": "BPJS Kesehatan", "level": "national"}],
    "rules": [{"category": "KESEHATAN", "region": "", "agency": "KEMENKES"},
              {"category": "KESEHATAN.BPJS", "region": "", "agency": "BPJS-KESEHATAN"}],
}


def load(engine, data: dict) -> storage.LoadSummary:
    directory = document.expand(document.load_text(document.dump(data)))
    with engine.begin() as conn:
        return storage.load_directory(conn, directory)


@pytest.fixture
def routing_db(database_url):
    engine = db.make_engine(database_url)
    db.migrate(engine, "routing", storage.MIGRATIONS, after=storage.after_migrate())
    yield engine
    engine.dispose()


def handlers(engine, category: str, region: str, subcategory: str = "") -> list[str]:
    with db.reading(engine) as conn:
        return [a.code for a in storage.SqlDirectory(conn).handlers_for(category, region,
                                                                        subcategory)]


def test_subcategory_rules_come_first_and_the_most_specific_region_wins(routing_db):
    load(routing_db, SMALL_DIRECTORY)
    # A hospital in Sijunjung: its RSUD; then, as hand-over candidates, the health offices
    # from the regency up to the ministry.
    assert handlers(routing_db, "KESEHATAN", "13.03.01", "KESEHATAN.RUMAH_SAKIT") == [
        "RSUD-13.03", "DINKES-13.03", "DINKES-13", "KEMENKES"]
    # From a village: two codes by five regions, the deepest lookup there is.
    assert handlers(routing_db, "KESEHATAN", "13.03.01.2001", "KESEHATAN.RUMAH_SAKIT") == [
        "RSUD-13.03", "DINKES-13.03", "DINKES-13", "KEMENKES"]
    # BPJS is BPJS Kesehatan's matter even where a regency office handles health.
    assert handlers(routing_db, "KESEHATAN", "13.03", "KESEHATAN.BPJS")[0] == "BPJS-KESEHATAN"
    assert handlers(routing_db, "KESEHATAN.BPJS", "13.03")[0] == "BPJS-KESEHATAN"
    assert handlers(routing_db, "KESEHATAN", "13") == ["DINKES-13", "KEMENKES"]
    assert handlers(routing_db, "KESEHATAN", "31.71") == ["KEMENKES"]
    assert handlers(routing_db, "PUPR", "13.03") == []
    with db.reading(routing_db) as conn:
        match = storage.SqlDirectory(conn).rule_for("KESEHATAN", "KESEHATAN.PUSKESMAS", "13.03")
    assert (match.matched_code, match.matched_region, match.agency.code) == (
        "KESEHATAN", "13.03", "DINKES-13.03")

    closed = {**SMALL_DIRECTORY, "agencies": [*SMALL_DIRECTORY["agencies"],
                                              {"code": "DINKES-13.03", "active": False}]}
    load(routing_db, closed)  # the regency office is closed: the province's takes it
    assert handlers(routing_db, "KESEHATAN", "13.03") == ["DINKES-13", "KEMENKES"]


def test_loading_is_idempotent_and_its_summary_says_what_changed(routing_db):
    first = load(routing_db, SMALL_DIRECTORY)
    assert (first.agencies.added, first.rules.added) == (3 + 3 + 2, 3 + 2 + 2)
    assert load(routing_db, SMALL_DIRECTORY).unchanged

    changed = json.loads(json.dumps(SMALL_DIRECTORY))
    changed["categories"] = [{"code": "PENIADAAN_MUDIK", "name": "PENIADAAN MUDIK",
                              "subcategories": [{"code": "PENIADAAN_MUDIK.PENYEKATAN",
                                                 "name": "Penyekatan perjalanan"}]}]
    changed["regions"].pop("13.04")  # Tanah Datar's offices leave the file
    changed["agencies"][1]["name"] = "Kementerian Kesehatan Republik Indonesia"
    changed["rules"][1]["agency"] = "KEMENKES"
    changed["rules"].append({"category": "PENIADAAN_MUDIK", "region": "13",
                             "agency": "DINKES-13"})
    summary = load(routing_db, changed)
    assert summary.lines() == ["categories: 2 added, 0 changed, 0 deactivated",
                               "agencies:   0 added, 1 changed, 2 deactivated",
                               "rules:      1 added, 1 changed, 2 removed"]
    # Deactivated, never deleted: tickets and accounts point at agencies.
    a = storage.agencies
    with routing_db.connect() as conn:
        gone = conn.execute(sa.select(a.c.code, a.c.active).where(
            a.c.region_code == "13.04")).all()
    assert sorted(gone) == [("DINKES-13.04", False), ("RSUD-13.04", False)]
    with db.reading(routing_db) as conn:
        found = storage.SqlDirectory(conn).categories()
    assert found.name("PENIADAAN_MUDIK.PENYEKATAN") == "Penyekatan perjalanan"

    # The temporary category leaves the file: it is deactivated, its rule removed.
    del changed["categories"]
    changed["rules"].pop()
    summary = load(routing_db, changed)
    assert (summary.categories.deactivated, summary.rules.deactivated) == (2, 1)
    with db.reading(routing_db) as conn:
        found = storage.SqlDirectory(conn).categories()
    assert "PENIADAAN_MUDIK" not in found and len(found.top_level()) == 19
    with routing_db.connect() as conn:
        assert conn.execute(sa.select(storage.categories.c.active).where(
            storage.categories.c.code == "PENIADAAN_MUDIK")).scalar() is False


def test_export_then_load_changes_nothing(routing_db):
    changed = json.loads(json.dumps(SMALL_DIRECTORY))
    changed["categories"] = [{"code": "KESEHATAN.DBD", "name": "Demam berdarah",
                              "parent": "KESEHATAN"}]
    changed["agencies"].append({"code": "RSUD-13.04", "name": "RSUD Ali Hanafiah"})
    changed["rules"].append({"category": "KESEHATAN.DBD", "region": "13",
                             "agency": "DINKES-13"})
    load(routing_db, changed)
    with db.reading(routing_db) as conn:
        exported = storage.export_directory(conn)
    assert "RSUD Ali Hanafiah" in exported and "KESEHATAN.DBD" in exported
    with routing_db.begin() as conn:
        before = storage.read_directory(conn)
        summary = storage.load_directory(conn, document.expand(document.load_text(exported)))
    assert summary.unchanged, summary.lines()
    with routing_db.begin() as conn:
        assert storage.read_directory(conn) == before


def test_the_taxonomy_loads_at_start_and_keeps_what_operators_added(routing_db):
    c = storage.categories
    with routing_db.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(c).where(
            c.c.active.is_(True))).scalar() == 100
    load(routing_db, {**SMALL_DIRECTORY, "categories": [
        {"code": "PENIADAAN_MUDIK", "name": "PENIADAAN MUDIK"}]})
    with routing_db.begin() as conn:  # someone renamed a national category by hand
        conn.execute(c.update().where(c.c.code == "KESEHATAN").values(name="Kesehatan"))
    db.migrate(routing_db, "routing", storage.MIGRATIONS, after=storage.after_migrate())
    with db.reading(routing_db) as conn:
        found = storage.SqlDirectory(conn).categories()
    assert found.name("KESEHATAN") == "KESEHATAN"
    assert found.name("PENIADAAN_MUDIK") == "PENIADAAN MUDIK"


# -- the commands ---------------------------------------------------------------------------------

def test_the_directory_commands_generate_load_and_export(tmp_path):
    env = {"ROUTING_DATABASE_URL": f"sqlite:///{tmp_path / 'routing.db'}"}
    regions = small_file(tmp_path)
    assert cli("routing", "import-regions", str(regions), env=env).returncode == 0
    out = tmp_path / "directory.yaml"
    made = cli("routing", "directory", "generate", "--regions", str(regions), "--out",
               str(out), env=env)
    assert made.returncode == 0, made.stderr
    assert "2 provinces and 2 regencies/cities" in made.stdout

    loaded = cli("routing", "directory", "load", str(out), env=env)
    assert loaded.returncode == 0, loaded.stderr
    assert "loaded" in loaded.stdout and "agencies:" in loaded.stdout
    again = cli("routing", "directory", "load", str(out), env=env)
    assert "nothing to change" in again.stdout

    exported = tmp_path / "export.yaml"
    assert cli("routing", "directory", "export", str(exported), env=env).returncode == 0
    back = cli("routing", "directory", "load", "--dry-run", str(exported), env=env)
    assert back.returncode == 0 and "nothing to change" in back.stdout, back.stdout

    # A broken file changes nothing and says what to fix.
    broken = tmp_path / "broken.yaml"
    broken.write_text(out.read_text(encoding="utf-8").replace(
        "agency: BPJS-KESEHATAN", "agency: BPJS-KES"), encoding="utf-8")
    refused = cli("routing", "directory", "load", str(broken), env=env)
    assert refused.returncode == 2
    assert f"{broken}: rules: KESEHATAN.BPJS in nasional goes to BPJS-KES, which is not an " \
           "agency of this file" in refused.stderr
    assert "nothing was changed" in refused.stderr and "Traceback" not in refused.stderr
    engine = db.make_engine(env["ROUTING_DATABASE_URL"])
    try:
        assert rule(engine, "KESEHATAN", "KESEHATAN.BPJS", "13.03").agency.code == \
            "BPJS-KESEHATAN"
    finally:
        engine.dispose()


def test_intake_imports_the_region_list_and_reports_a_bad_line(tmp_path):
    env = {"INTAKE_DATABASE_URL": f"sqlite:///{tmp_path / 'intake.db'}"}
    done = cli("intake", "import-regions", str(small_file(tmp_path)), env=env)
    assert done.returncode == 0, done.stderr
    assert "5 regions, 5 rows written" in done.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("kode,nama,level\n13,Sumatera Barat,provinsi\n13.03,Sijunjung,provinsi\n",
                   encoding="utf-8")
    refused = cli("intake", "import-regions", str(bad), env=env)
    assert refused.returncode == 2
    assert f"{bad}:3: 13.03 is a kabupaten_kota code" in refused.stderr
