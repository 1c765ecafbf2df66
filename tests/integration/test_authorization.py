"""Who may call what on routing's gRPC API, cell by cell, against a real routing: the table
below is docs/authorization.md's, written out here on purpose (not computed from
services.routing.principal), so a change of the rules that the documentation does not follow
fails this test. Also: accounts and tokens as an operator handles them with the command line,
credentials that stop working at once, tokens that never reach a log line, and a token's last
use written at most once a minute."""

from __future__ import annotations

import logging
import stat
from dataclasses import dataclass
from datetime import timedelta

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from lapor.v1 import common_pb2, events_pb2, routing_pb2, routing_pb2_grpc
from services.infra import db, events, logs
from services.infra.db import utcnow
from services.intake import ids
from services.routing import auth, storage
from services.routing.__main__ import main
from services.routing.principal import Principal
from services.routing.seed import AgencyRow
from services.routing.tickets.statemachine import Role
from tests.integration.helpers import bearer, metric, start_routing, temporary_vhost

pytestmark = pytest.mark.integration

AGENCY_A = "PUPR-13.03"        # holds the tickets below
AGENCY_B = "DINKES-13.03"      # a sibling: sees none of A's tickets
PARENT = "PEMDA-13.03"         # A's parent: A is one of its units, so it sees A's tickets
UNIT = "PUPR-13.03-JALAN"      # a unit of A (ForwardTicket's target)

# The callers the table's columns stand for: username, role, agency.
CALLERS = {
    "national": ("nat.admin", "national_admin", ""),
    "admin_a": ("admin.pupr", "agency_admin", AGENCY_A),
    "officer_a": ("officer.pupr", "agency_officer", AGENCY_A),
    "officer_b": ("officer.dinkes", "agency_officer", AGENCY_B),
    "officer_parent": ("officer.pemda", "agency_officer", PARENT),
    "oversight": ("ombudsman", "oversight", ""),
    "intake": ("intake", "service", ""),
    "system_a": ("system.pupr", "service", AGENCY_A),
}

# Every RPC × every caller, asked about a ticket that agency A holds.
#   Y  let through: the call passes authorization (it may still fail for another reason:
#      NOT_FOUND, FAILED_PRECONDITION, ABORTED for a stale version, INVALID_ARGUMENT, ...)
#   R  PERMISSION_DENIED: the role may not call this at all
#   T  PERMISSION_DENIED: the role may, but not on this ticket (not held by the caller's
#      agency; seeing also covers the agency's units); the same answer as for no ticket
TABLE = """
method           national admin_a officer_a officer_b officer_parent oversight intake system_a
SuggestRoute     Y        Y       Y         Y         Y              Y         Y      Y
GetAgency        Y        Y       Y         Y         Y              Y         Y      Y
ListAgencies     Y        Y       Y         Y         Y              Y         Y      Y
ListCategories   Y        Y       Y         Y         Y              Y         Y      Y
WhoAmI           Y        Y       Y         Y         Y              Y         Y      Y
ListTickets      Y        Y       Y         Y         Y              Y         R      Y
GetTicket        Y        Y       Y         T         Y              Y         R      Y
GetAuditTrail    Y        R       R         R         R              Y         R      R
VerifyTicket     Y        R       R         R         R              R         R      R
HoldTicket       Y        R       R         R         R              R         R      R
ArchiveTicket    Y        R       R         R         R              R         R      R
LinkDuplicate    Y        R       R         R         R              R         R      R
DismissDuplicate Y        R       R         R         R              R         R      R
AcceptTicket     R        Y       Y         T         T              R         R      Y
ForwardTicket    R        Y       R         R         R              R         R      R
DeclineTicket    R        Y       Y         T         T              R         R      Y
FollowUpTicket   R        Y       Y         T         T              R         R      Y
CloseTicket      Y        Y       Y         T         T              R         R      Y
MessageReporter  Y        Y       Y         T         T              R         R      Y
ReporterReply    R        R       R         R         R              R         Y      R
ReporterConfirm  R        R       R         R         R              R         Y      R
RateTicket       R        R       R         R         R              R         Y      R
AppealTicket     R        R       R         R         R              R         Y      R
"""


def _parse(table: str) -> dict[str, dict[str, str]]:
    header, *rows = (line.split() for line in table.strip().splitlines())
    assert header[1:] == list(CALLERS), "the table's columns are the callers above"
    return {row[0]: dict(zip(header[1:], row[1:], strict=True)) for row in rows}


EXPECTED = _parse(TABLE)
# Credentials that must not work, for any method: UNAUTHENTICATED.
UNAUTHENTICATED_CALLERS = ("no token", "unknown token", "expired token", "revoked token",
                           "disabled account")

# Mutating calls carry a version the ticket never had: a call let through is then refused
# as stale (or not allowed in the ticket's state) and leaves the ticket with agency A.
STALE = 999_999


def request_for(method: str, tracking_id: str):
    """A well-formed request for `method` about the ticket."""
    t, v = tracking_id, STALE
    return {
        "SuggestRoute": lambda: routing_pb2.SuggestRouteRequest(
            title="Jalan rusak berlubang", body="Jalan kabupaten di depan pasar berlubang.",
            region_code="13.03"),
        "GetAgency": lambda: routing_pb2.GetAgencyRequest(code=AGENCY_A),
        "ListAgencies": lambda: routing_pb2.ListAgenciesRequest(region_code="13.03"),
        "ListCategories": lambda: empty_pb2.Empty(),
        "WhoAmI": lambda: empty_pb2.Empty(),
        "ListTickets": lambda: routing_pb2.ListTicketsRequest(),
        "GetTicket": lambda: routing_pb2.GetTicketRequest(tracking_id=t),
        "GetAuditTrail": lambda: routing_pb2.GetTicketRequest(tracking_id=t),
        "VerifyTicket": lambda: routing_pb2.VerifyTicketRequest(
            tracking_id=t, expected_version=v, agency_code=AGENCY_A),
        "HoldTicket": lambda: routing_pb2.HoldTicketRequest(
            tracking_id=t, expected_version=v, question="Di titik mana tepatnya jalan itu?"),
        "ArchiveTicket": lambda: routing_pb2.ArchiveTicketRequest(
            tracking_id=t, expected_version=v, reason="DUPLICATE"),
        "LinkDuplicate": lambda: routing_pb2.LinkDuplicateRequest(
            tracking_id=t, expected_version=v, master_tracking_id="LPR-000-000-000"),
        "DismissDuplicate": lambda: routing_pb2.DismissDuplicateRequest(
            tracking_id=t, expected_version=v, candidate="LPR-000-000-000"),
        "AcceptTicket": lambda: routing_pb2.AcceptTicketRequest(
            tracking_id=t, expected_version=v, complexity=routing_pb2.COMPLEXITY_SIMPLE),
        "ForwardTicket": lambda: routing_pb2.ForwardTicketRequest(
            tracking_id=t, expected_version=v, unit_code=UNIT, note="Bidang jalan"),
        "DeclineTicket": lambda: routing_pb2.DeclineTicketRequest(
            tracking_id=t, expected_version=v, reason="Jalan nasional: bukan wewenang kami"),
        "FollowUpTicket": lambda: routing_pb2.FollowUpTicketRequest(
            tracking_id=t, expected_version=v, response="Sudah kami tambal kemarin."),
        "CloseTicket": lambda: routing_pb2.CloseTicketRequest(
            tracking_id=t, expected_version=v, note="Selesai"),
        "MessageReporter": lambda: routing_pb2.MessageReporterRequest(
            tracking_id=t, expected_version=v, text="Mohon kirim foto lokasinya."),
        "ReporterReply": lambda: routing_pb2.ReporterReplyRequest(
            tracking_id=t, message="Lubangnya di depan pasar."),
        "ReporterConfirm": lambda: routing_pb2.ReporterConfirmRequest(tracking_id=t),
        "RateTicket": lambda: routing_pb2.RateTicketRequest(tracking_id=t, rating=5),
        "AppealTicket": lambda: routing_pb2.AppealTicketRequest(
            tracking_id=t, reason="Belum diperbaiki."),
    }[method]()


@dataclass
class World:
    service: object
    tokens: dict[str, str | None]
    tickets: dict[str, str]      # method -> tracking id of a ticket agency A holds

    def call(self, method: str, caller: str, tracking_id: str | None = None):
        """Calls `method` as `caller`; returns the answer or the grpc.RpcError."""
        token = self.tokens[caller]
        with grpc.insecure_channel(f"127.0.0.1:{self.service.port}") as channel:
            stub = routing_pb2_grpc.RoutingServiceStub(channel)
            request = request_for(method, tracking_id or self.tickets[method])
            try:
                return getattr(stub, method)(request, timeout=10,
                                             metadata=bearer(token) if token else None)
            except grpc.RpcError as exc:
                return exc


def verdict(answer) -> str:
    """Y (let through), D (PERMISSION_DENIED) or U (UNAUTHENTICATED)."""
    if isinstance(answer, grpc.RpcError):
        if answer.code() == grpc.StatusCode.PERMISSION_DENIED:
            return "D"
        if answer.code() == grpc.StatusCode.UNAUTHENTICATED:
            return "U"
    return "Y"


# Road reports from around Sijunjung, each about another road: the same report twice would
# be linked to the first as its duplicate (docs/duplicates.md) and archived.
ROADS = [
    ("Jalan rusak berlubang di Nagari Muaro",
     "Jalan kabupaten di depan pasar Muaro berlubang besar dan aspalnya rusak, sudah tiga "
     "bulan tidak diperbaiki."),
    ("Aspal mengelupas di Kamang Baru",
     "Aspal jalan kabupaten menuju Kamang Baru mengelupas sepanjang satu kilometer, "
     "kerikilnya membuat motor tergelincir."),
    ("Jalan amblas dekat Lansek",
     "Badan jalan di dekat Jorong Lansek amblas setengah meter dan aspalnya rusak setelah "
     "hujan deras, mobil tidak bisa lewat."),
    ("Longsor menimbun jalan Lubuk Tarok",
     "Tanah tebing longsor menimbun separuh jalan kabupaten di Lubuk Tarok, warga "
     "membersihkan sendiri dengan cangkul."),
    ("Jalan becek belum diaspal di Padang Sibusuk",
     "Jalan tanah di Jorong Koto Baru Padang Sibusuk belum pernah diaspal, setiap hujan "
     "becek, licin dan rusak."),
    ("Jembatan kayu lapuk di Sumpur Kudus",
     "Papan jembatan kayu penghubung dua jorong di Sumpur Kudus lapuk dan beberapa sudah "
     "patah, jalan menuju ke sana juga rusak."),
    ("Gorong-gorong tersumbat di Tanjung Ampalu",
     "Gorong-gorong di bawah jalan Tanjung Ampalu tersumbat lumpur sehingga air meluap "
     "menggenangi jalan."),
    ("Bahu jalan runtuh di Kupitan",
     "Bahu jalan kabupaten di Kupitan runtuh ke sawah, aspal retak dan lebar jalan tinggal"
     " dua meter."),
    ("Jalan kabupaten bergelombang di Tanjung Gadang",
     "Aspal jalan kabupaten menuju pasar Tanjung Gadang bergelombang dan berlubang, "
     "pengendara motor sering oleng."),
    ("Lubang di tikungan Silokek",
     "Ada lubang dalam tepat di tikungan jalan menuju objek wisata Silokek, sudah tiga "
     "pengendara jatuh minggu ini."),
    ("Pengaspalan setengah jadi di Koto VII",
     "Proyek pengaspalan jalan di Koto VII berhenti di tengah, sisanya masih batu kasar "
     "tanpa lapisan aspal."),
    ("Jalan tergenang di Palangki",
     "Jalan di depan kantor wali nagari Palangki selalu tergenang karena drainase di "
     "sampingnya lebih tinggi."),
    ("Retakan panjang di jalan Muaro Takung",
     "Muncul retakan memanjang di tengah jalan Muaro Takung, aspal makin rusak setiap hari"
     " dan ditakutkan putus."),
    ("Jalan berlubang di Guguak",
     "Jalan kabupaten di Jorong Guguak penuh lubang sebesar ban mobil, sudah dua kali kami"
     " laporkan ke wali nagari."),
    ("Aspal baru sudah rusak di Aie Angek",
     "Jalan kabupaten yang baru diaspal enam bulan lalu di Aie Angek sudah rusak dan "
     "berlubang lagi, kami curiga kualitas aspalnya buruk."),
    ("Tanjakan jalan rusak di Durian Gadang",
     "Tanjakan jalan kabupaten di Durian Gadang rusak berat dan berlubang, motor sering "
     "jatuh saat hujan."),
    ("Jalan penghubung nagari rusak di Tanjung Bonai Aur",
     "Jalan penghubung antar nagari di Tanjung Bonai Aur rusak parah, perjalanan lima "
     "kilometer memakan satu jam."),
    ("Drainase jalan jebol di Limo Koto",
     "Drainase di sisi jalan Limo Koto jebol dan airnya menggerus aspal sampai berlubang "
     "dalam."),
    ("Jalan rusak parah di Unggan",
     "Jalan kabupaten penghubung Unggan dengan pusat kecamatan rusak parah dan berlubang, "
     "sebagian aspalnya hilang terbawa air."),
    ("Jalan tertimbun batu di Tamparungo",
     "Jalan kabupaten di Tamparungo tertimbun batu dan tanah dari tebing, aspal di "
     "bawahnya rusak dan berlubang."),
    ("Jalan kabupaten berbatu di Batuang",
     "Ruas jalan kabupaten di Jorong Batuang tinggal batu lepas karena aspal sudah habis, "
     "kendaraan berjalan sangat pelan."),
    ("Aspal retak di Pematang Panjang",
     "Aspal jalan di Pematang Panjang retak-retak seperti kulit buaya dan mulai berlubang "
     "di beberapa titik."),
    ("Bahu jalan amblas di Mundam Sakti",
     "Bahu jalan kabupaten di Mundam Sakti amblas ke jurang dan aspalnya retak, belum ada "
     "perbaikan."),
    ("Jembatan beton retak di Langki",
     "Tiang jembatan beton di jalan Langki retak dan lantainya berlubang, truk bermuatan "
     "berat masih dibiarkan lewat."),
]


def open_ticket(service, number: int = 0) -> str:
    """A road report in Sijunjung (the `number`th of ROADS), through routing's own handling
    of report.submitted."""
    tracking_id = ids.new_tracking_id()
    title, body = ROADS[number]
    envelope = events.new("report.submitted", tracking_id, events_pb2.ReportSubmitted(
        tracking_id=tracking_id, report=common_pb2.ReportContent(
            kind=common_pb2.REPORT_KIND_PENGADUAN, title=title, body=body, region_code="13.03",
            channel="web", submitted_at=events.timestamp(utcnow()))), producer="intake")
    service.workflow.handle(envelope)
    with service.engine.connect() as conn:
        held_by = conn.execute(sa.select(storage.tickets.c.agency_code).where(
            storage.tickets.c.tracking_id == tracking_id)).scalar()
    assert held_by == AGENCY_A, f"the road report went to {held_by}"
    return tracking_id


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with temporary_vhost() as amqp_url:
        database = tmp_path_factory.mktemp("authorization") / "routing.db"
        service = start_routing(f"sqlite:///{database}", amqp_url)
        try:
            tokens: dict[str, str | None] = {"no token": None,
                                             "unknown token": auth.new_token()}
            with service.engine.begin() as conn:
                storage.seed_directory(conn, [], [AgencyRow(
                    UNIT, "Bidang Jalan dan Jembatan PUPR Sijunjung", "regency", "13.03",
                    AGENCY_A)])
                for caller, (username, role, agency) in CALLERS.items():
                    auth.create_account(conn, username, role, agency)
                    tokens[caller] = auth.issue_token(conn, username).token
                for username in ("expired", "revoked", "disabled"):
                    auth.create_account(conn, f"{username}.admin", "national_admin")
                tokens["expired token"] = auth.issue_token(
                    conn, "expired.admin", days=1, now=utcnow() - timedelta(days=2)).token
                revoked = auth.issue_token(conn, "revoked.admin")
                auth.revoke_token(conn, str(revoked.id))
                tokens["revoked token"] = revoked.token
                tokens["disabled account"] = auth.issue_token(conn, "disabled.admin").token
                # Only the account's flag: its token itself is neither revoked nor expired.
                conn.execute(storage.accounts.update().where(
                    storage.accounts.c.username == "disabled.admin").values(active=False))
            tickets = {method: open_ticket(service, i) for i, method in enumerate(EXPECTED)}
            yield World(service, tokens, tickets)
        finally:
            service.stop()


def test_the_table_covers_every_method_of_the_api():
    served = [m.name for m in
              routing_pb2.DESCRIPTOR.services_by_name["RoutingService"].methods]
    assert sorted(EXPECTED) == sorted(served)


@pytest.mark.parametrize("method", list(EXPECTED))
def test_each_caller_is_let_through_or_refused_as_the_table_says(world, method):
    wrong = {}
    for caller in UNAUTHENTICATED_CALLERS:
        got = verdict(world.call(method, caller))
        if got != "U":
            wrong[caller] = f"expected UNAUTHENTICATED, got {got}"
    for caller, cell in EXPECTED[method].items():
        if cell == "T":
            continue  # the ticket-level cells: the next test
        got = verdict(world.call(method, caller))
        if got != {"Y": "Y", "R": "D"}[cell]:
            wrong[caller] = f"table says {cell}, routing answered {got}"
    assert wrong == {}


TICKET_CELLS = [(method, caller) for method, row in EXPECTED.items()
                for caller, cell in row.items() if cell == "T"]
# Ticket RPCs whose ticket-level check (the caller's agency holds the ticket) routing does
# not make yet; each must come off this list when it does (strict xfail).
TICKET_CHECK_PENDING: set[str] = set()


@pytest.mark.parametrize(("method", "caller"), [
    pytest.param(method, caller, marks=pytest.mark.xfail(
        strict=True, reason=f"{method}: the ticket-level check is not implemented yet"))
    if method in TICKET_CHECK_PENDING else (method, caller)
    for method, caller in TICKET_CELLS])
def test_staff_are_refused_tickets_their_agency_does_not_hold(world, method, caller):
    answer = world.call(method, caller)
    assert verdict(answer) == "D", f"{caller} on {method}: {answer}"


# The ticket-level check of GetTicket: an officer of agency B learns nothing about agency A's
# ticket, not even that it exists.
def test_a_ticket_of_another_agency_and_no_ticket_at_all_get_the_same_refusal(world):
    elsewhere = world.call("GetTicket", "officer_b")
    nowhere = world.call("GetTicket", "officer_b", tracking_id=ids.new_tracking_id())
    assert isinstance(elsewhere, grpc.RpcError) and isinstance(nowhere, grpc.RpcError)
    assert elsewhere.code() == nowhere.code() == grpc.StatusCode.PERMISSION_DENIED
    assert elsewhere.details() == nowhere.details()
    # Those who see everything are told the plain truth.
    missing = world.call("GetTicket", "national", tracking_id=ids.new_tracking_id())
    assert missing.code() == grpc.StatusCode.NOT_FOUND


def test_who_am_i_names_the_account_its_role_and_agency(world):
    me = world.call("WhoAmI", "officer_a")
    assert (me.username, me.role, me.agency.code) == ("officer.pupr", "agency_officer",
                                                      AGENCY_A)
    assert "Sijunjung" in me.agency.name
    national = world.call("WhoAmI", "national")
    assert (national.username, national.role, national.HasField("agency")) == (
        "nat.admin", "national_admin", False)


def test_refusals_say_what_to_fix_and_never_echo_the_token(world):
    token = world.tokens["unknown token"]
    address = f"127.0.0.1:{world.service.port}"
    cases = {
        "no token": [],
        "unknown token": bearer(token),
        "not bearer": [("authorization", f"Basic {token}")],
        "two tokens": [*bearer(token), *bearer(world.tokens["national"])],
        "expired token": bearer(world.tokens["expired token"]),
    }
    with grpc.insecure_channel(address) as channel:
        stub = routing_pb2_grpc.RoutingServiceStub(channel)
        for case, metadata in cases.items():
            with pytest.raises(grpc.RpcError) as raised:
                stub.WhoAmI(empty_pb2.Empty(), metadata=metadata, timeout=5)
            error = raised.value
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, case
            assert token not in error.details() and "lpr_" not in error.details(), case
            assert len(error.details()) < 200, case
        with pytest.raises(grpc.RpcError) as raised:
            stub.WhoAmI(empty_pb2.Empty(), metadata=[], timeout=5)
        assert "authorization: Bearer <token>" in raised.value.details()
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetAuditTrail(routing_pb2.GetTicketRequest(tracking_id="LPR-7K2-M9Q-XD4"),
                               metadata=bearer(world.tokens["officer_a"]), timeout=5)
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "GetAuditTrail" in raised.value.details()


def test_health_stays_open_to_probes_without_credentials(world):
    with grpc.insecure_channel(f"127.0.0.1:{world.service.port}") as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="lapor.v1.RoutingService"), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_refusals_are_counted_and_logged_like_any_other_answer(world, caplog):
    def handled(code):
        return metric("lapor_grpc_server_handled_total", method="GetAuditTrail", code=code)

    before = handled("UNAUTHENTICATED"), handled("PERMISSION_DENIED")
    with caplog.at_level(logging.INFO):
        world.call("GetAuditTrail", "no token")
        world.call("GetAuditTrail", "officer_a")
    assert (handled("UNAUTHENTICATED"), handled("PERMISSION_DENIED")) == (
        before[0] + 1, before[1] + 1)
    lines = [r.getMessage() for r in caplog.records]
    assert "rpc GetAuditTrail UNAUTHENTICATED" in lines
    assert "rpc GetAuditTrail PERMISSION_DENIED" in lines


def test_revoking_a_token_or_disabling_its_account_stops_it_on_the_next_call(world):
    engine = world.service.engine
    with engine.begin() as conn:
        auth.create_account(conn, "temp.officer", "agency_officer", AGENCY_A)
        first = auth.issue_token(conn, "temp.officer")
        second = auth.issue_token(conn, "temp.officer")
    world.tokens["temp"] = first.token
    assert world.call("WhoAmI", "temp").username == "temp.officer"
    with engine.begin() as conn:
        auth.revoke_token(conn, first.key)
    assert verdict(world.call("WhoAmI", "temp")) == "U"

    world.tokens["temp"] = second.token
    assert world.call("WhoAmI", "temp").username == "temp.officer"
    with engine.begin() as conn:
        auth.set_active(conn, "temp.officer", False)
    assert verdict(world.call("WhoAmI", "temp")) == "U"
    # Enabled again, the account needs a new token: disabling revoked the old ones.
    with engine.begin() as conn:
        auth.set_active(conn, "temp.officer", True)
        third = auth.issue_token(conn, "temp.officer")
    assert verdict(world.call("WhoAmI", "temp")) == "U"
    world.tokens["temp"] = third.token
    assert world.call("WhoAmI", "temp").username == "temp.officer"


def test_a_token_never_reaches_a_log_line(world, caplog):
    engine = world.service.engine
    with caplog.at_level(logging.DEBUG):
        with engine.begin() as conn:
            auth.create_account(conn, "log.officer", "agency_officer", AGENCY_A)
            issued = auth.issue_token(conn, "log.officer", label="laptop")
        world.tokens["log"] = issued.token
        for method in ("WhoAmI", "GetTicket", "GetAuditTrail", "AcceptTicket"):
            world.call(method, "log")
        with engine.begin() as conn:
            auth.revoke_token(conn, str(issued.id))
        world.call("WhoAmI", "log")
        for caller in UNAUTHENTICATED_CALLERS:
            world.call("WhoAmI", caller)
    secrets = [issued.token, *(t for t in world.tokens.values() if t)]
    formatter = logs.JsonFormatter("routing")
    written = "\n".join(formatter.format(record) for record in caplog.records)
    assert "token issued" in written and "rpc WhoAmI UNAUTHENTICATED" in written
    for secret in secrets:
        assert secret not in written
        assert secret.removeprefix("lpr_") not in written


def test_a_tokens_last_use_is_written_at_most_once_a_minute(world):
    engine = world.service.engine
    with engine.begin() as conn:
        auth.create_account(conn, "busy.system", "service", AGENCY_A)
        issued = auth.issue_token(conn, "busy.system")
    world.tokens["busy"] = issued.token
    tokens = storage.account_tokens

    def last_used():
        with engine.connect() as conn:
            return db.as_utc(conn.execute(sa.select(tokens.c.last_used_at)
                                          .where(tokens.c.id == issued.id)).scalar())

    writes = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE ACCOUNT_TOKENS"):
            writes.append(statement)

    assert last_used() is None
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        before = utcnow()
        for _ in range(20):
            assert world.call("WhoAmI", "busy").username == "busy.system"
        first = last_used()
        assert len(writes) == 1, "twenty calls within a minute, one write"
        assert first is not None and first >= before - timedelta(seconds=1)

        # A minute later the next call records its use again, once.
        with engine.begin() as conn:
            conn.execute(tokens.update().where(tokens.c.id == issued.id)
                         .values(last_used_at=first - timedelta(seconds=61)))
        writes.clear()
        for _ in range(5):
            world.call("WhoAmI", "busy")
        assert len(writes) == 1
        assert last_used() >= first
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


# -- the accounts command line ---------------------------------------------------------------
@pytest.fixture
def routing_db(database_url, monkeypatch):
    monkeypatch.setenv("ROUTING_DATABASE_URL", database_url)
    engine = db.make_engine(database_url)
    db.migrate(engine, "routing", storage.MIGRATIONS, after=storage.seed_demo)
    # main() sets up the process's logging, onto streams this test captures and closes.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield engine
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(logging.NOTSET)
    engine.dispose()


def accounts(capsys, *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["accounts", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_officers_account_and_token_from_the_command_line(routing_db, capsys, tmp_path):
    code, out, _ = accounts(capsys, "create", "siti.pupr", "--role", "agency_officer",
                            "--agency", AGENCY_A, "--name", "Siti Rahayu")
    assert code == 0 and "siti.pupr" in out

    # The token alone on stdout, so TOKEN=$(python -m services.routing accounts token ...)
    code, out, err = accounts(capsys, "token", "siti.pupr", "--label", "laptop")
    token = out.strip()
    assert code == 0 and out == token + "\n" and auth.looks_like_token(token)
    assert "shown only this once" in err and token not in err
    assert auth.resolve_token(routing_db, token) == Principal(
        "siti.pupr", Role.AGENCY_OFFICER, AGENCY_A, "Siti Rahayu")

    # Routing keeps the hash only.
    with routing_db.connect() as conn:
        rows = conn.execute(sa.select(storage.account_tokens)).all()
    assert [r.token_hash for r in rows] == [auth.token_hash(token)]
    assert token not in repr([tuple(r) for r in rows])

    # --output: a file only its owner reads, and nothing secret on the terminal.
    target = tmp_path / "siti.token"
    code, out, err = accounts(capsys, "token", "siti.pupr", "--days", "30", "--output",
                              str(target))
    saved = target.read_text().strip()
    assert code == 0 and auth.looks_like_token(saved) and saved != token
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert saved not in out + err and "lpr_" not in out + err

    code, out, _ = accounts(capsys, "list")
    assert code == 0 and "siti.pupr" in out and "agency_officer" in out
    assert token not in out and saved not in out and "lpr_" not in out
    first_key = auth.token_key(auth.token_hash(token))
    assert first_key in out and "laptop" in out

    code, out, _ = accounts(capsys, "revoke", first_key)
    assert code == 0 and "revoked" in out
    assert auth.resolve_token(routing_db, token) is None
    assert auth.resolve_token(routing_db, saved) is not None

    code, out, _ = accounts(capsys, "disable", "siti.pupr")
    assert code == 0 and "disabled" in out
    assert auth.resolve_token(routing_db, saved) is None


@pytest.mark.parametrize(("args", "message"), [
    (["create", "siti", "--role", "agency_officer"], "give --agency CODE"),
    (["create", "siti", "--role", "agency_officer", "--agency", "NOPE-99"],
     "no agency with code 'NOPE-99'"),
    (["create", "siti", "--role", "superuser"], "is not one of national_admin"),
    (["create", "Siti Rahayu", "--role", "oversight"], "lowercase letters, digits"),
    (["create", "system", "--role", "oversight"], "reserved"),
    (["create", "ombudsman", "--role", "oversight", "--agency", AGENCY_A],
     "leave out --agency"),
    (["create", "siti", "--role", "agency_officer", "--agency", "ADMIN-NASIONAL"],
     "national_admin"),
    (["create", "siti", "--role", "agency_officer", "--agency", AGENCY_A, "--tls-subject",
      "siti"], "only service accounts"),
    (["create", "siti", "--role", "agency_officer", "--agency", AGENCY_A, "--name",
      "Siti\nRahayu"], "one line"),
    (["token", "nobody"], "no account 'nobody'"),
    (["token", "existing", "--days", "0"], "1 to 365 days"),
    (["token", "existing", "--days", "366"], "1 to 365 days"),
    (["create", "existing", "--role", "oversight"], "already exists"),
    (["revoke", "42"], "no token '42'"),
    (["revoke", "lpr_abc"], "by its id (#12) or by the key"),
    (["disable", "nobody"], "no account 'nobody'"),
])
def test_the_command_line_says_what_to_fix(routing_db, capsys, args, message):
    with routing_db.begin() as conn:
        auth.create_account(conn, "existing", "oversight")
    code, out, err = accounts(capsys, *args)
    assert code == 2, out + err
    assert message in err and err.startswith(f"accounts {args[0]}: ")


def test_ensure_service_keeps_a_working_token_and_replaces_one_that_is_not(
        routing_db, capsys, tmp_path):
    token_file = tmp_path / "var" / "intake-routing-token"
    code, out, _ = accounts(capsys, "ensure-service", "intake", "--token-file", str(token_file))
    assert code == 0 and "created" in out
    first = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    principal = auth.resolve_token(routing_db, first)
    assert principal is not None and principal.is_platform_service
    assert first not in out

    # Again: nothing changes.
    assert accounts(capsys, "ensure-service", "intake", "--token-file", str(token_file))[0] == 0
    assert token_file.read_text().strip() == first

    # A token that no longer works, or no token at all, is replaced.
    with routing_db.begin() as conn:
        auth.revoke_token(conn, auth.token_key(auth.token_hash(first)))
    assert accounts(capsys, "ensure-service", "intake", "--token-file", str(token_file))[0] == 0
    second = token_file.read_text().strip()
    assert second != first and auth.resolve_token(routing_db, second) is not None
    token_file.write_text("not a token\n")
    assert accounts(capsys, "ensure-service", "intake", "--token-file", str(token_file))[0] == 0
    assert auth.resolve_token(routing_db, token_file.read_text().strip()) is not None

    # One that is about to expire is replaced before it does.
    with routing_db.begin() as conn:
        conn.execute(storage.account_tokens.update().values(
            expires_at=utcnow() + timedelta(days=2)))
    held = token_file.read_text().strip()
    assert accounts(capsys, "ensure-service", "intake", "--token-file", str(token_file))[0] == 0
    assert token_file.read_text().strip() != held

    # A staff account's name is not taken over.
    with routing_db.begin() as conn:
        auth.create_account(conn, "siti.pupr", "agency_officer", AGENCY_A)
    code, _, err = accounts(capsys, "ensure-service", "siti.pupr", "--token-file",
                            str(tmp_path / "other"))
    assert code == 2 and "not a platform service" in err
    assert not (tmp_path / "other").exists()
