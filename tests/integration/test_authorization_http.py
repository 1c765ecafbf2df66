"""The authorization table over HTTP: every staff endpoint of intake and every caller of
docs/authorization.md, through a real intake and a real routing (intake passes the staff
member's token through; routing decides). The table is the gRPC test's, read row by row for
the endpoints that carry each RPC, so both doors of the platform answer alike. The
reporter's actions, which need the report's access token rather than a staff token, are
checked for both kinds of credential."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import requests

from services.intake import app as intake_app
from services.routing import auth
from tests.conftest import free_port
from tests.integration.helpers import start_routing, temporary_vhost, wait_for
from tests.integration.test_authorization import AGENCY_A, CALLERS, EXPECTED, ROADS, UNIT

pytestmark = pytest.mark.integration

# RPC -> (HTTP method, path under /api/v1/staff, JSON body); {id} is a ticket agency A holds.
# Every action names a version the ticket never had: a caller let through is then refused as
# stale (409), so the ticket stays where it is for the next caller.
STALE = {"expected_version": 999}
ENDPOINTS = {
    "WhoAmI": ("GET", "/me", None),
    "ListTickets": ("GET", "/tickets", None),
    "GetTicket": ("GET", "/tickets/{id}", None),
    "GetAuditTrail": ("GET", "/tickets/{id}/audit", None),
    "VerifyTicket": ("POST", "/tickets/{id}/verify", STALE),
    "HoldTicket": ("POST", "/tickets/{id}/hold", {**STALE, "question": "Di ruas mana?"}),
    "ArchiveTicket": ("POST", "/tickets/{id}/archive", {**STALE, "reason": "SPAM"}),
    "AcceptTicket": ("POST", "/tickets/{id}/accept", {**STALE, "complexity": "SIMPLE"}),
    "ForwardTicket": ("POST", "/tickets/{id}/forward", {**STALE, "unit_code": UNIT}),
    "DeclineTicket": ("POST", "/tickets/{id}/decline", {**STALE, "reason": "bukan wewenang kami"}),
    "FollowUpTicket": (
        "POST",
        "/tickets/{id}/follow-up",
        {**STALE, "response": "Sudah diperbaiki"},
    ),
    "CloseTicket": ("POST", "/tickets/{id}/close", STALE),
    "MessageReporter": ("POST", "/tickets/{id}/messages", {**STALE, "text": "Mohon foto lokasi"}),
    "LinkDuplicate": ("POST", "/tickets/{id}/link", {**STALE, "master": "LPR-000-000-000"}),
    "DismissDuplicate": (
        "POST",
        "/tickets/{id}/dismiss-duplicate",
        {**STALE, "candidate": "LPR-000-000-000"},
    ),
}
REPORTER_ENDPOINTS = {
    "ReporterReply": ("replies", {"message": "Belum diperbaiki"}),
    "ReporterConfirm": ("confirm", {"comment": "Terima kasih"}),
    "RateTicket": ("rating", {"rating": 5}),
    "AppealTicket": ("appeal", {"reason": "Rusak lagi"}),
}
STAFF_CALLERS = [c for c in CALLERS if c != "intake"]  # intake's token is not a staff token


@dataclass
class World:
    base: str
    tokens: dict[str, str | None]
    reports: dict[str, tuple[str, str]]  # RPC -> (tracking id, access token)

    def call(self, rpc: str, caller: str) -> requests.Response:
        method, path, body = ENDPOINTS[rpc]
        tracking_id = self.reports[rpc][0]
        token = self.tokens[caller]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.request(
            method,
            self.base + "/api/v1/staff" + path.format(id=tracking_id),
            json=body,
            headers=headers,
            timeout=10,
        )


def verdict(response: requests.Response) -> str:
    return {401: "U", 403: "D"}.get(response.status_code, "Y")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from services.intake.server import IntakeProcess, ServerSettings

    workdir = tmp_path_factory.mktemp("authorization-http")
    with temporary_vhost() as amqp_url:
        routing = start_routing(f"sqlite:///{workdir / 'routing.db'}", amqp_url)
        token_file = workdir / "intake-token"
        token_file.write_text(routing.intake_token + "\n")
        tokens: dict[str, str | None] = {"no token": None, "unknown token": auth.new_token()}
        with routing.engine.begin() as conn:
            from services.routing import storage
            from services.routing.seed import AgencyRow

            storage.seed_directory(
                conn,
                [],
                [
                    AgencyRow(
                        UNIT,
                        "Bidang Jalan dan Jembatan PUPR Sijunjung",
                        "regency",
                        "13.03",
                        AGENCY_A,
                    )
                ],
            )
            for caller, (username, role, agency) in CALLERS.items():
                if caller != "intake":
                    auth.create_account(conn, username, role, agency)
                    tokens[caller] = auth.issue_token(conn, username).token
        app = intake_app.create_app(
            {
                "DATABASE_URL": f"sqlite:///{workdir / 'intake.db'}",
                "AMQP_URL": amqp_url,
                "ROUTING_ADDR": f"127.0.0.1:{routing.port}",
                "ROUTING_TIMEOUT": 5.0,
                "ROUTING_TOKEN_FILE": str(token_file),
                "START_WORKERS": True,
                "RATE_LIMIT_ENABLED": False,
            }
        )
        process = IntakeProcess(
            app, ServerSettings(port=free_port(), metrics_port=free_port())
        ).start()
        base = f"http://127.0.0.1:{process.port}"
        try:
            reports = {}
            # Each about another road: the same report twice would be linked as a duplicate.
            for (title, body), rpc in zip(ROADS, [*ENDPOINTS, *REPORTER_ENDPOINTS], strict=False):
                answer = requests.post(
                    f"{base}/api/v1/reports",
                    timeout=10,
                    json={"kind": "PENGADUAN", "title": title, "body": body,
                          "region_code": "13.03"},
                ).json()
                reports[rpc] = (answer["tracking_id"], answer["access_token"])
            headers = {"Authorization": f"Bearer {tokens['national']}"}
            wait_for(
                lambda: all(
                    requests.get(
                        f"{base}/api/v1/staff/tickets/{tid}", headers=headers, timeout=10
                    ).status_code
                    == 200
                    for tid, _ in reports.values()
                ),
                30,
                what="routing to open every ticket",
            )
            yield World(base, tokens, reports)
        finally:
            process.stop()
            routing.stop()


@pytest.mark.parametrize("rpc", list(ENDPOINTS))
def test_each_staff_endpoint_lets_through_or_refuses_as_the_table_says(world, rpc):
    wrong = {}
    for caller in ("no token", "unknown token"):
        got = verdict(world.call(rpc, caller))
        if got != "U":
            wrong[caller] = f"expected 401, got {got}"
    for caller in STAFF_CALLERS:
        cell = EXPECTED[rpc][caller]
        got = verdict(world.call(rpc, caller))
        expected = "Y" if cell == "Y" else "D"  # R and T are both 403 over HTTP
        if got != expected:
            wrong[caller] = f"table says {cell}, intake answered {got}"
    assert wrong == {}


def test_an_officer_of_another_agency_gets_the_same_403_for_a_ticket_and_for_none(world):
    headers = {"Authorization": f"Bearer {world.tokens['officer_b']}"}
    theirs = requests.get(
        world.base + "/api/v1/staff/tickets/" + world.reports["GetTicket"][0],
        headers=headers,
        timeout=10,
    )
    none = requests.get(
        world.base + "/api/v1/staff/tickets/LPR-000-000-000", headers=headers, timeout=10
    )
    assert theirs.status_code == none.status_code == 403
    assert theirs.json()["detail"] == none.json()["detail"]


@pytest.mark.parametrize("rpc", list(REPORTER_ENDPOINTS))
def test_reporter_actions_need_the_reports_access_token_not_a_staff_token(world, rpc):
    path, body = REPORTER_ENDPOINTS[rpc]
    tracking_id, access_token = world.reports[rpc]
    url = f"{world.base}/api/v1/reports/{tracking_id}/{path}"
    for caller in ("national", "officer_a", "oversight"):
        staff = requests.post(
            url, json=body, timeout=10, headers={"Authorization": f"Bearer {world.tokens[caller]}"}
        )
        assert staff.status_code == 403, (caller, staff.text)
    assert requests.post(url, json=body, timeout=10).status_code == 401
    own = requests.post(
        url, json=body, timeout=10, headers={"Authorization": f"Bearer {access_token}"}
    )
    # Let through: the lifecycle may still refuse it (409: a dispatched ticket cannot be
    # rated), but never for who is asking.
    assert own.status_code in (200, 201, 409), own.text
