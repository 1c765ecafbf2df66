"""Open311 GeoReport v2 over real servers, through tests/open311_client.py (a client written
from the spec), in XML and JSON: every endpoint, the spec's errors, the filters, token
resolution once a real routing has the report, privacy (anonymous and confidential reports),
per-key rate limits, and the services list when routing is down. Routing's ListCategories
is tested here too, as intake calls it."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime, timedelta, timezone

import grpc
import pytest
import requests
import sqlalchemy as sa
from google.protobuf import empty_pb2

from lapor.v1 import routing_pb2_grpc
from services.infra import events
from services.infra.regions import read_regions_csv
from services.intake import limits, regions, storage
from services.intake.app import create_app
from services.intake.open311 import keys
from services.intake.readmodel import ReadModel
from services.intake.server import IntakeProcess, ServerSettings
from tests.conftest import PG_DSN, SHARED_DATA, drop_database, free_port
from tests.integration.helpers import (
    ROAD_TEXTS,
    collect_events,
    dead_amqp_url,
    observe,
    routing_channel,
    start_routing,
    status_changed,
    temporary_vhost,
    ticket_dispatched,
    wait_for,
)
from tests.open311_client import GeoReportClient, GeoReportError, parse_xml

pytestmark = pytest.mark.integration

FORMATS = ["xml", "json"]
HIGH_LIMITS = {key: "100000 per minute" for key in limits.LIMIT_SETTINGS}
SIJUNJUNG = {"lat": "-0.6639", "long": "100.9582"}   # Muaro, Kabupaten Sijunjung (13.03)
NAME, EMAIL, PHONE = ("Rahmat", "Hidayat"), "rahmat.hidayat@example.id", "081298765432"


def _regions_csv():
    csv = SHARED_DATA / "wilayah-kepmendagri-2025.csv"
    if not csv.exists():
        pytest.skip(f"reference data not found at {csv} (set LAPOR_SHARED_DATA)")
    return [r for r in read_regions_csv(csv) if r.level in ("provinsi", "kabupaten_kota")]


@contextlib.contextmanager
def _database(kind: str, tmp_path):
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'intake.db'}"
        return
    import psycopg

    name = f"lapor_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{PG_DSN}/postgres", autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_DSN}/{name}"
    finally:
        with psycopg.connect(f"{PG_DSN}/postgres", autocommit=True) as admin:
            drop_database(admin, name)


@contextlib.contextmanager
def running_intake(database_url: str, amqp_url: str, routing_addr: str, *,
                   token_file: str = "", workers: bool = False, **config):
    """The intake process on free ports with the official regencies imported."""
    app = create_app({"DATABASE_URL": database_url, "AMQP_URL": amqp_url,
                      "ROUTING_ADDR": routing_addr, "ROUTING_TIMEOUT": 1.0,
                      "ROUTING_TOKEN_FILE": token_file, "START_WORKERS": workers,
                      **HIGH_LIMITS, **config})
    with app.extensions["lapor"].engine.begin() as conn:
        regions.import_regions(conn, _regions_csv())
    process = IntakeProcess(app, ServerSettings(port=0, metrics_port=0, request_timeout=5.0,
                                                shutdown_seconds=3.0)).start()
    process.endpoint = f"http://127.0.0.1:{process.port}/open311/v2"
    process.engine = app.extensions["lapor"].engine
    try:
        yield process
    finally:
        process.stop()


def new_key(process, name: str | None = None) -> str:
    with process.engine.begin() as conn:
        return keys.add(conn, name or f"app-{uuid.uuid4().hex[:10]}")


# -- with a real routing -------------------------------------------------------------------
@pytest.fixture(scope="module")
def routed(tmp_path_factory):
    """Routing (demo directory) and intake with its relay and consumer, on one vhost."""
    tmp = tmp_path_factory.mktemp("open311")
    with temporary_vhost() as amqp_url:
        routing = start_routing(f"sqlite:///{tmp / 'routing.db'}", amqp_url)
        token_file = tmp / "intake.token"
        token_file.write_text(routing.intake_token)
        try:
            with running_intake(f"sqlite:///{tmp / 'intake.db'}", amqp_url,
                                f"127.0.0.1:{routing.port}", token_file=str(token_file),
                                workers=True) as intake:
                intake.routing, intake.amqp_url = routing, amqp_url
                intake.key = new_key(intake, "routed-tests")
                yield intake
        finally:
            routing.stop()


def test_routing_lists_the_directory_categories_with_their_subcategories(routed):
    with routing_channel(routed.routing, routed.routing.intake_token) as channel:
        answer = routing_pb2_grpc.RoutingServiceStub(channel).ListCategories(
            empty_pb2.Empty(), timeout=5)
    by_code = {c.code: c for c in answer.categories}
    assert len(by_code) == 19
    assert by_code["PUPR"].name == "PEKERJAAN UMUM DAN PENATAAN RUANG"
    assert ("PUPR.JALAN", "Jalan kabupaten/kota dan provinsi") in {
        (s.code, s.name) for s in by_code["PUPR"].subcategories}
    assert all(s.code.startswith(c.code + ".") for c in answer.categories
               for s in c.subcategories)
    with routing_channel(routed.routing, "") as channel, pytest.raises(grpc.RpcError) as no:
        routing_pb2_grpc.RoutingServiceStub(channel).ListCategories(empty_pb2.Empty(),
                                                                    timeout=5)
    assert no.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_discovery_names_this_endpoint_and_both_formats(routed):
    xml, json_ = (GeoReportClient(routed.endpoint, fmt).discovery() for fmt in FORMATS)
    assert xml == json_
    endpoint, = xml["endpoints"]
    assert endpoint["url"] == routed.endpoint
    assert endpoint["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint["formats"] == ["text/xml", "application/json"]
    # XML is the default without a suffix.
    bare = requests.get(f"{routed.endpoint}/discovery", timeout=5)
    assert bare.headers["Content-Type"].startswith("text/xml")
    assert bare.content == requests.get(f"{routed.endpoint}/discovery.xml", timeout=5).content


def test_services_are_the_directory_categories_with_attributes(routed):
    xml, json_ = (GeoReportClient(routed.endpoint, fmt).services() for fmt in FORMATS)
    assert xml == json_
    pupr = next(s for s in xml if s["service_code"] == "PUPR")
    assert pupr["service_name"] == "PEKERJAAN UMUM DAN PENATAAN RUANG"
    assert pupr["metadata"] is True and pupr["type"] == "batch"
    assert "Jembatan" in pupr["keywords"]
    definitions = [GeoReportClient(routed.endpoint, fmt).service_definition("PUPR")
                   for fmt in FORMATS]
    assert definitions[0] == definitions[1]
    definition = definitions[0]
    assert definition["service_code"] == "PUPR"
    attributes = {a["code"]: a for a in definition["attributes"]}
    assert list(attributes) == ["subcategory", "kind", "anonymous", "confidential"]
    assert {"key": "PUPR.JALAN", "name": "Jalan kabupaten/kota dan provinsi"} in \
        attributes["subcategory"]["values"]
    assert [v["key"] for v in attributes["kind"]["values"]] == [
        "PENGADUAN", "ASPIRASI", "PERMINTAAN_INFORMASI"]
    assert all(a["datatype"] == "singlevaluelist" and a["required"] is False
               and a["variable"] is True for a in attributes.values())
    assert [a["order"] for a in attributes.values()] == [1, 2, 3, 4]


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_unknown_service_code_is_a_404_error_document(routed, fmt):
    with pytest.raises(GeoReportError) as error:
        GeoReportClient(routed.endpoint, fmt).service_definition("NOPE")
    assert error.value.status == 404
    assert error.value.errors == [{"code": 404, "description": error.value.errors[0][
        "description"]}]
    assert "no service with service_code NOPE" in error.value.descriptions


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_request_gets_a_token_then_its_id_once_routed(routed, fmt):
    observed = observe(routed.amqp_url, "reporter.registered", "report.submitted")
    client = GeoReportClient(routed.endpoint, fmt, api_key=routed.key)
    title, body = ROAD_TEXTS[0 if fmt == "xml" else 1]
    accepted = client.create("PUPR", body, first_name=NAME[0], last_name=NAME[1],
                             email=EMAIL, phone=PHONE, attributes={"subcategory": "PUPR.JALAN"},
                             **SIJUNJUNG)
    token = accepted["token"]
    assert set(accepted) == {"token", "service_notice", "account_id"}
    assert accepted["account_id"] is None and f"tokens/{token}" in accepted["service_notice"]

    resolved = wait_for(lambda: client.token(token)["service_request_id"], 15,
                        what="routing to take the report")
    assert client.token(token) == {"service_request_id": resolved, "token": token}
    request = wait_for(lambda: (r := client.request(resolved))["agency_responsible"] and r,
                       10, what="the dispatch in the read model")
    assert request["service_request_id"] == resolved
    assert request["status"] == "open"
    assert request["status_notes"].startswith("Terdisposisi ke ")
    assert request["service_code"] == "PUPR"
    assert request["service_name"] == "PEKERJAAN UMUM DAN PENATAAN RUANG"
    assert request["description"] == body
    assert "Sijunjung" in request["agency_responsible"]
    assert request["address"] == "Kabupaten Sijunjung" and request["address_id"] == "13.03"
    for when in ("requested_datetime", "updated_datetime", "expected_datetime"):
        assert datetime.fromisoformat(request[when]).tzinfo is not None, when
    assert datetime.fromisoformat(request["expected_datetime"]) > \
        datetime.fromisoformat(request["requested_datetime"])
    assert request["lat"] is None and request["long"] is None

    # The contacts go to notify only, as with the JSON API; routing gets the name alone.
    got = {e.type: events.payload(e) for e in collect_events(routed.amqp_url, observed, 2)}
    registered = got["reporter.registered"]
    assert (registered.name, registered.email, registered.phone, registered.channel) == (
        "Rahmat Hidayat", EMAIL, "+6281298765432", "open311")
    content = got["report.submitted"].report
    assert content.channel == "open311" and content.region_code == "13.03"
    assert content.title.startswith("Jalan kabupaten/kota dan provinsi: ")
    assert EMAIL not in str(content) and "81298765432" not in str(content)
    # The request is in the list, with the same content in both formats.
    listed = client.requests(service_request_id=resolved)
    assert listed == [request] or listed[0]["updated_datetime"] != request["updated_datetime"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_requests_are_refused_with_the_spec_error_and_status(routed, fmt):
    client = GeoReportClient(routed.endpoint, fmt, api_key=routed.key)
    body = "Lampu jalan di depan pasar mati sejak dua minggu lalu."
    cases = [
        ({"api_key": ""}, 403, "api_key is missing or not valid"),
        ({"api_key": "o311_not-a-key"}, 403, "api_key is missing or not valid"),
        ({"service_code": "NOPE"}, 400, "service_code NOPE is not a service"),
        ({"lat": "abc", "long": "100.9"}, 400, "lat and long must be decimal degrees"),
        ({"lat": "-0.66", "long": ""}, 400, "send both lat and long"),
        ({"lat": "95", "long": "100"}, 400, "lat must be between -90 and 90"),
        ({"lat": "1.3", "long": "103.8"}, 400, "outside Indonesia"),
        ({"lat": "-10.0", "long": "110.0"}, 400, "km from any known place"),
        ({"lat": "", "long": ""}, 400, "send lat and long, or address_string"),
        ({"lat": "", "long": "", "address_string": "Jl. Merdeka 1"}, 400,
         "names no regency or city"),
        ({"lat": "", "long": "", "address_id": "99.99"}, 400, "no region with code 99.99"),
        ({"lat": "", "long": "", "address_id": "13-03"}, 400, "address_id must be a Kemendagri"),
        ({"description": "pendek"}, 400, "description: must be at least 10 characters"),
        ({"email": "not-an-email"}, 400, "email: is not a valid email address"),
        ({"phone": "12345"}, 400, "phone:"),
        ({"attributes": {"kind": "GOSSIP"}}, 400, "attribute[kind]"),
        ({"attributes": {"subcategory": "KESEHATAN.OBAT"}}, 400, "attribute[subcategory]"),
        ({"attributes": {"anonymous": "maybe"}}, 400, "attribute[anonymous] must be true"),
        ({"media_url": "file:///etc/passwd"}, 400, "media_url must be an http or https URL"),
    ]
    for change, status, words in cases:
        fields = {"service_code": "PUPR", "description": body, **SIJUNJUNG}
        fields.update(change)
        service_code, description = fields.pop("service_code"), fields.pop("description")
        with pytest.raises(GeoReportError) as error:
            client.create(service_code, description, **fields)
            pytest.fail(f"accepted: {change}")
        assert error.value.status == status, (change, error.value.errors)
        assert all(e["code"] == status for e in error.value.errors)
        assert words in error.value.descriptions, (change, error.value.descriptions)
    # Nothing was stored for any of them.
    with routed.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(storage.reports).where(
            storage.reports.c.body == body)).scalar() == 0


def test_a_place_named_in_the_address_or_by_code_is_the_report_region(routed):
    client = GeoReportClient(routed.endpoint, "json", api_key=routed.key)
    body = "Sampah menumpuk di pinggir jalan dan tidak diangkut seminggu."
    cases = [({"address_string": "Jl. Pemuda 12, Kota Surabaya, Jawa Timur"}, "35.78"),
             ({"address_string": "Pasar Muaro, Sijunjung"}, "13.03"),
             ({"address_id": "13.03", "address_string": "Pasar Muaro"}, "13.03"),
             ({"lat": "-6.2", "long": "106.8"}, "31")]   # Jakarta: no regency, the province
    for fields, code in cases:
        token = client.create("LINGKUNGAN", body, **fields)["token"]
        with routed.engine.connect() as conn:
            region = conn.execute(sa.select(storage.reports.c.region_code).join(
                storage.open311_tokens, storage.open311_tokens.c.tracking_id
                == storage.reports.c.tracking_id).where(
                storage.open311_tokens.c.token == token)).scalar()
        assert region == code, fields
    with pytest.raises(GeoReportError) as error:
        client.create("LINGKUNGAN", body, address_string="Bandung")
    assert error.value.status == 400
    assert "Kabupaten Bandung or Kota Bandung" in error.value.descriptions


@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_ids_and_tokens_are_404_and_malformed_ids_400(routed, fmt):
    client = GeoReportClient(routed.endpoint, fmt)
    with pytest.raises(GeoReportError) as unknown:
        client.request("LPR-000-000-000")
    assert unknown.value.status == 404
    with pytest.raises(GeoReportError) as mistyped:
        client.request("LPR-000-000-001")  # wrong check character
    assert mistyped.value.status == 404 and "check character" in mistyped.value.descriptions
    with pytest.raises(GeoReportError) as token:
        client.token("nosuchtokennosuchtoken")
    assert token.value.status == 404


# -- without routing: read-model events applied as the consumer would -----------------------
@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres",
                                                               marks=pytest.mark.postgres)])
def quiet(request, tmp_path_factory):
    """Intake with no routing and no broker: reports are accepted and queued; their status is
    set by feeding the read model routing's events directly."""
    tmp = tmp_path_factory.mktemp("open311-quiet")
    with _database(request.param, tmp) as database_url, running_intake(
            database_url, dead_amqp_url(), f"127.0.0.1:{free_port()}",
            RATE_LIMIT_OPEN311_SUBMIT="3 per minute") as intake:
        yield intake


def submit_json(process, **fields) -> str:
    report = {"kind": "PENGADUAN", "title": "Jalan rusak di Nagari Muaro",
              "body": "Jalan utama di Nagari Muaro rusak berlubang sejak bulan lalu.",
              "region_code": "13.03", **fields}
    response = requests.post(f"http://127.0.0.1:{process.port}/api/v1/reports", json=report,
                             timeout=5)
    assert response.status_code == 201, response.text
    return response.json()["tracking_id"]


def feed(process, *envelopes) -> None:
    model = ReadModel(process.engine)
    for envelope in envelopes:
        assert model.handle(envelope) == "processed"


@pytest.mark.parametrize("fmt", FORMATS)
def test_services_answer_503_when_routing_never_answered(quiet, fmt):
    client = GeoReportClient(quiet.endpoint, fmt)
    for call in (client.services, lambda: client.service_definition("PUPR")):
        with pytest.raises(GeoReportError) as error:
            call()
        assert error.value.status == 503
        assert "list of services is unavailable" in error.value.descriptions


def test_requests_are_accepted_while_routing_is_down(quiet):
    client = GeoReportClient(quiet.endpoint, "xml", api_key=new_key(quiet))
    photo = "https://warga.example.id/foto/jembatan-muaro.jpg"
    token = client.create("PUPR", "Jembatan gantung di Muaro miring dan talinya putus.",
                          media_url=photo, **SIJUNJUNG)["token"]
    # Queued, not yet routed: the token alone.
    assert client.token(token) == {"service_request_id": None, "token": token}
    # The photo is left to the attachments fetcher, in the report's own transaction.
    with quiet.engine.connect() as conn:
        tracking_id = keys.tracking_id_of_token(conn, token)
        fetches = conn.execute(sa.select(storage.media_fetches.c.url).where(
            storage.media_fetches.c.tracking_id == tracking_id)).scalars().all()
    assert fetches == [photo]
    with pytest.raises(GeoReportError) as error:
        client.create("pupr lowercase", "Jembatan gantung di Muaro miring.", **SIJUNJUNG)
    assert error.value.status == 400


@pytest.mark.parametrize("fmt", FORMATS)
def test_filters_select_by_id_service_status_and_date(quiet, fmt):
    road = submit_json(quiet, category="PUPR")
    health = submit_json(quiet, category="KESEHATAN", title="Puskesmas tutup siang",
                         body="Puskesmas Muaro sudah tutup jam sebelas siang setiap hari.")
    done = submit_json(quiet, category="PUPR", title="Jalan sudah ditambal",
                       body="Jalan di depan pasar Muaro berlubang dan perlu ditambal.")
    feed(quiet, ticket_dispatched(road, version=1), ticket_dispatched(done, version=1),
         status_changed(done, "CLOSED", version=2, note="Sudah ditambal"))
    client = GeoReportClient(quiet.endpoint, fmt)
    mine = {road, health, done}

    def ids(**filters) -> set[str]:
        return {r["service_request_id"] for r in client.requests(**filters)} & mine

    assert ids() == mine
    assert ids(service_request_id=[road, done]) == {road, done}
    assert ids(service_code="PUPR") == {road, done}
    assert ids(service_code=["PUPR", "KESEHATAN"]) == mine
    assert ids(status="open") == {road, health}
    assert ids(status="closed") == {done}
    assert ids(status="open,closed") == mine
    assert ids(service_code="PUPR", status="closed") == {done}
    now = datetime.now(UTC)
    assert ids(start_date=(now - timedelta(hours=1)).isoformat(),
               end_date=(now + timedelta(hours=1)).isoformat()) == mine
    assert ids(start_date=(now + timedelta(hours=1)).isoformat()) == set()
    assert ids(end_date="2020-01-01T00:00:00+07:00") == set()
    assert ids(start_date=(now + timedelta(hours=1)).isoformat(),
               end_date=(now - timedelta(hours=1)).isoformat()) == set()
    # An offset is a time zone: 1 hour ago written in WIT (UTC+9) still includes them.
    wit = (now - timedelta(hours=1)).astimezone(timezone(timedelta(hours=9)))
    assert ids(start_date=wit.isoformat()) == mine
    assert ids(start_date=(now + timedelta(minutes=30)).astimezone(
        timezone(timedelta(hours=-5))).isoformat()) == set()
    closed = client.request(done)
    assert closed["status"] == "closed" and closed["status_notes"] == "Selesai"
    assert closed["expected_datetime"] is None
    dispatched = client.request(road)
    assert dispatched["status_notes"].startswith("Terdisposisi ke Dinas Pekerjaan Umum")
    assert dispatched["expected_datetime"].startswith("2030-07-19T")
    waiting = client.request(health)
    assert waiting["status"] == "open" and waiting["status_notes"] == "Belum terverifikasi"
    assert waiting["agency_responsible"] is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_filters_say_what_to_send(quiet, fmt):
    client = GeoReportClient(quiet.endpoint, fmt)
    for filters, words in [({"start_date": "yesterday"}, "start_date must be a date"),
                           ({"end_date": "2026-12-01T00:00:00"}, "with a time zone"),
                           ({"start_date": "2026-12-01 00:00:00Z"}, "W3C format"),
                           ({"end_date": ""}, "end_date must be a date"),
                           ({"status": "pending"}, "status must be open, closed"),
                           ({"status": "OPEN"}, "status must be open, closed"),
                           ({"service_code": "pupr"}, "service_code must be service codes"),
                           ({"service_code": "PUPR,"}, "service_code must be service codes"),
                           ({"service_request_id": "12345"}, "is not a request id")]:
        with pytest.raises(GeoReportError) as error:
            client.requests(**filters)
        assert error.value.status == 400
        assert words in error.value.descriptions, filters


@pytest.mark.parametrize("fmt", FORMATS)
def test_anonymous_and_confidential_reports_show_nothing_private(quiet, fmt):
    reporter = {"name": "Siti Rahayu Wulandari", "email": "siti.wulandari@example.id",
                "phone": "081234509876"}
    anonymous = submit_json(quiet, anonymous=True, reporter=reporter,
                            location={"latitude": -0.6712, "longitude": 100.9431},
                            address="Jorong Koto Tuo RT 02, rumah cat hijau")
    confidential = submit_json(quiet, confidential=True, reporter=reporter,
                               title="Pungutan liar di kantor desa",
                               body="Petugas kantor desa meminta uang untuk surat pengantar.")
    client = GeoReportClient(quiet.endpoint, fmt, api_key=new_key(quiet))
    posted = client.create("PUPR", "Saluran air tersumbat di depan rumah warga Muaro.",
                           first_name="Budi", last_name="Santosa",
                           email="budi.santosa@example.id", phone="081355512345",
                           attributes={"anonymous": "true"}, **SIJUNJUNG)
    with quiet.engine.connect() as conn:
        posted_id = keys.tracking_id_of_token(conn, posted["token"])
    raw = b"".join(requests.get(url, timeout=5).content for url in (
        f"{quiet.endpoint}/requests.{fmt}",
        f"{quiet.endpoint}/requests/{anonymous}.{fmt}",
        f"{quiet.endpoint}/requests/{posted_id}.{fmt}"))
    for secret in ("Siti", "Wulandari", "siti.wulandari", "81234509876", "Budi", "Santosa",
                   "budi.santosa", "81355512345", "Koto Tuo", "-0.6712", "100.9431",
                   "Pungutan", "kantor desa"):
        assert secret.encode() not in raw, secret
    listed = {r["service_request_id"] for r in client.requests()}
    assert {anonymous, posted_id} <= listed and confidential not in listed
    assert confidential not in {r["service_request_id"] for r in client.requests(
        service_request_id=[confidential, anonymous])}
    with pytest.raises(GeoReportError) as hidden:
        client.request(confidential)
    assert hidden.value.status == 404
    shown = client.request(anonymous)
    assert shown["description"].startswith("Jalan utama di Nagari Muaro")
    assert shown["lat"] is None and shown["address"] == "Kabupaten Sijunjung"


@pytest.mark.parametrize("fmt", FORMATS)
def test_submissions_are_limited_per_key_and_revoked_keys_refused(quiet, fmt):
    first, second = new_key(quiet), new_key(quiet)
    client = GeoReportClient(quiet.endpoint, fmt, api_key=first)
    body = "Lampu penerangan jalan di simpang Muaro mati semua."
    for _ in range(3):
        client.create("PUPR", body, **SIJUNJUNG)
    with pytest.raises(GeoReportError) as limited:
        client.create("PUPR", body, **SIJUNJUNG)
    assert limited.value.status == 429 and "this api_key" in limited.value.descriptions
    # Another client's key has its own allowance.
    assert GeoReportClient(quiet.endpoint, fmt, api_key=second).create(
        "PUPR", body, **SIJUNJUNG)["token"]
    with quiet.engine.begin() as conn:
        name = conn.execute(sa.select(storage.open311_clients.c.name).where(
            storage.open311_clients.c.key_hash == keys.key_hash(second))).scalar()
        assert keys.revoke(conn, name)
    with pytest.raises(GeoReportError) as revoked:
        GeoReportClient(quiet.endpoint, fmt, api_key=second).create("PUPR", body, **SIJUNJUNG)
    assert revoked.value.status == 403


def test_unknown_paths_and_methods_get_the_specs_error_document(quiet):
    xml = requests.get(f"{quiet.endpoint}/nosuch.xml", timeout=5)
    assert xml.status_code == 404 and xml.headers["Content-Type"].startswith("text/xml")
    (error,) = parse_xml(xml.content)
    assert error["code"] == 404 and error["description"]
    wrong = requests.delete(f"{quiet.endpoint}/services.json", timeout=5)
    assert wrong.status_code == 405
    assert set(wrong.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    assert wrong.json() == [{"code": 405, "description": "DELETE is not supported here"}]


def test_one_allowance_whatever_the_format_asked_for(quiet):
    # requests, requests.xml and requests.json are one endpoint to the limiter.
    key = new_key(quiet)
    body = "Lampu penerangan jalan di simpang Muaro mati semua."
    for url in ("requests", "requests.xml", "requests.json"):
        answer = requests.post(f"{quiet.endpoint}/{url}", allow_redirects=False, timeout=10,
                               data={"api_key": key, "service_code": "PUPR",
                                     "description": body, **SIJUNJUNG})
        assert answer.status_code == 201, (url, answer.status_code)
    with pytest.raises(GeoReportError) as limited:
        GeoReportClient(quiet.endpoint, "json", api_key=key).create("PUPR", body, **SIJUNJUNG)
    assert limited.value.status == 429


def test_only_key_hashes_are_stored(quiet):
    key = new_key(quiet, f"hash-check-{uuid.uuid4().hex[:6]}")
    with quiet.engine.connect() as conn:
        rows = conn.execute(sa.select(storage.open311_clients)).all()
    stored = " ".join(str(v) for row in rows for v in row)
    assert key not in stored and keys.key_hash(key) in stored
