"""The staff API over HTTP against a real routing (in this process, with its accounts and
tokens) and real RabbitMQ: an officer's day — who am I, the inbox, a ticket, accept, follow
up, a message to the reporter — the national admin's triage, and every refusal staff can meet
(401, 403, 404, 409, 422, 429, 503), each as problem+json saying what to do.

The Platform here (routing + intake with its workers, one vhost) is shared by the other
tests of the citizen side (test_intake_reporter_actions, test_intake_support)."""

from __future__ import annotations

import contextlib
import itertools
import json
import time

import pytest

from services.intake import limits
from services.intake.app import create_app
from tests.conftest import free_port
from tests.integration.helpers import (
    ROAD_TEXTS,
    BlackHole,
    dead_amqp_url,
    start_routing,
    temporary_vhost,
    wait_for,
)

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
ROADS = [{"kind": "PENGADUAN", "title": title, "body": body, "region_code": "13.03",
          "reporter": {"name": "Siti Rahayu", "email": "siti@example.id"}}
         for title, body in ROAD_TEXTS]
ROAD = ROADS[0]
# No category the classifier recognises: it waits in the national admin's triage queue.
VAGUE = {"kind": "ASPIRASI", "title": "Mohon perhatian pemerintah",
         "body": "Saya ingin menyampaikan pendapat tentang hal yang penting bagi warga kami.",
         "region_code": "13.03", "anonymous": True}
HIGH_LIMITS = {key: "100000 per minute" for key in limits.LIMIT_SETTINGS}


def token_for(engine, username: str, role: str, agency: str = "") -> str:
    """A fresh token of the account (created when missing), through routing's own functions."""
    from services.routing import auth

    with engine.begin() as conn:
        if auth.get_account(conn, username) is None:
            auth.create_account(conn, username, role, agency)
        return auth.issue_token(conn, username).token


def intake_app(tmp_path, routing_addr: str, amqp_url: str, *, token_file=None,
               workers: bool = True, name: str = "intake", **settings):
    return create_app({
        "DATABASE_URL": f"sqlite:///{tmp_path / (name + '.db')}", "AMQP_URL": amqp_url,
        "ROUTING_ADDR": routing_addr, "ROUTING_TIMEOUT": 5.0,
        "ROUTING_TOKEN_FILE": str(token_file) if token_file else "", "START_WORKERS": workers,
        **HIGH_LIMITS, **settings})


def close_app(app) -> None:
    ctx = app.extensions["lapor"]
    ctx.stop_workers(2)
    ctx.engine.dispose()


class Platform:
    """Routing and intake as they run in production (intake's service token from the file
    `accounts ensure-service` writes), on one broker vhost; calls over intake's HTTP API."""

    def __init__(self, tmp_path, amqp_url: str):
        from services.routing import auth

        self.tmp_path = tmp_path
        self.amqp_url = amqp_url
        self.routing = start_routing(f"sqlite:///{tmp_path / 'routing.db'}", amqp_url)
        self.token_file = tmp_path / "intake-routing-token"
        with self.routing.engine.begin() as conn:
            auth.ensure_service(conn, "intake", self.token_file)
        self.address = f"127.0.0.1:{self.routing.port}"
        self.app = intake_app(tmp_path, self.address, amqp_url, token_file=self.token_file)
        self.http = self.app.test_client()
        self.admin = self.token("admin-nasional", "national_admin")
        self.officer = self.token("budi.pupr", "agency_officer", "PUPR-13.03")
        self._roads = itertools.cycle(ROADS)

    def token(self, username: str, role: str, agency: str = "") -> str:
        return token_for(self.routing.engine, username, role, agency)

    def close(self) -> None:
        close_app(self.app)
        self.routing.stop()

    # -- the citizen ---------------------------------------------------------------------------
    def next_road(self) -> dict:
        """A road report no earlier test of this platform sent."""
        return next(self._roads)

    def submit(self, report: dict | None = None) -> tuple[str, str]:
        report = report if report is not None else self.next_road()
        response = self.http.post("/api/v1/reports", json=report)
        assert response.status_code == 201, response.get_data(as_text=True)
        answer = response.get_json()
        return answer["tracking_id"], answer["access_token"]

    def own(self, tracking_id: str, access_token: str) -> dict:
        response = self.http.get(f"/api/v1/reports/{tracking_id}",
                                 headers=bearer(access_token))
        assert response.status_code == 200
        return response.get_json()

    def public(self, tracking_id: str) -> dict:
        return self.http.get(f"/api/v1/reports/{tracking_id}").get_json()

    def reporter(self, tracking_id: str, access_token: str | None, action: str,
                 body: dict | None = None):
        return self.http.post(f"/api/v1/reports/{tracking_id}/{action}",
                              headers=bearer(access_token) if access_token else {},
                              json=body if body is not None else {})

    # -- staff -----------------------------------------------------------------------------------
    def get(self, path: str, token: str | None, **kwargs):
        return self.http.get(f"/api/v1/staff{path}", headers=bearer(token) if token else {},
                             **kwargs)

    def act(self, token: str, tracking_id: str, action: str, body: dict | None = None):
        return self.http.post(f"/api/v1/staff/tickets/{tracking_id}/{action}",
                              headers=bearer(token), json=body if body is not None else {})

    def ticket(self, tracking_id: str, token: str | None = None) -> dict:
        response = self.get(f"/tickets/{tracking_id}", token or self.admin)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    def routed(self, report: dict | None = None) -> tuple[str, str]:
        """A report submitted and waiting as a ticket in routing."""
        tracking_id, access_token = self.submit(report)
        wait_for(lambda: self.get(f"/tickets/{tracking_id}", self.admin).status_code == 200,
                 15, what="routing to make the ticket")
        return tracking_id, access_token

    def followed_up(self, report: dict | None = None, response: str = "Lubang sudah ditambal"
                    ) -> tuple[str, str]:
        tracking_id, access_token = self.routed(report)
        assert self.act(self.officer, tracking_id, "follow-up",
                        {"response": response}).status_code == 200
        return tracking_id, access_token


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def problem(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = json.loads(response.get_data())
    assert (body["status"], body["code"]) == (status, code), body
    assert body["detail"]
    assert response.headers["Cache-Control"] == "no-store"
    return body


@contextlib.contextmanager
def running_platform(tmp_path_factory):
    """A Platform on its own vhost for a module's tests (starting one takes a second)."""
    with temporary_vhost("lapor-intake") as amqp_url:
        platform = Platform(tmp_path_factory.mktemp("platform"), amqp_url)
        try:
            yield platform
        finally:
            platform.close()


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory) as running:
        yield running


@contextlib.contextmanager
def second_intake(platform: Platform, name: str, **settings):
    """Another intake on the same routing (no workers), e.g. with other limits."""
    app = intake_app(platform.tmp_path, platform.address, dead_amqp_url(),
                     token_file=platform.token_file, workers=False, name=name, **settings)
    try:
        yield app.test_client()
    finally:
        close_app(app)


# -- an officer's day --------------------------------------------------------------------------
def test_an_officers_day(platform):
    p, officer = platform, platform.officer
    road = p.next_road()
    tracking_id, access_token = p.submit(road)

    me = p.get("/me", officer)
    assert me.status_code == 200 and me.headers["Cache-Control"] == "no-store"
    assert me.get_json() == {
        "username": "budi.pupr", "display_name": None, "role": "agency_officer",
        "agency": {"code": "PUPR-13.03", "level": "regency", "region_code": "13.03",
                   "parent_code": "PEMDA-13.03",
                   "name": "Dinas Pekerjaan Umum dan Penataan Ruang Kabupaten Sijunjung"}}

    def in_inbox():
        inbox = p.get("/tickets", officer, query_string={"state": "DISPATCHED", "q": "JALAN"})
        assert inbox.status_code == 200
        return [t for t in inbox.get_json()["tickets"] if t["tracking_id"] == tracking_id]

    (summary,) = wait_for(in_inbox, 15, what="the report in the officer's inbox")
    assert (summary["state"], summary["agency"]["code"], summary["overdue"]) == (
        "DISPATCHED", "PUPR-13.03", False)
    assert summary["deadline"].endswith("Z") and summary["deadline_zone"] == "WIB"
    overdue = p.get("/tickets", officer, query_string={"overdue": "true"}).get_json()
    assert tracking_id not in str(overdue)

    ticket = p.ticket(tracking_id, officer)
    assert ticket["report"]["title"] == road["title"]
    assert ticket["report"]["reporter_name"] == "Siti Rahayu"
    assert "siti@example.id" not in json.dumps(ticket), "contacts never reach staff"
    assert {"accept", "decline", "follow-up"} <= set(ticket["allowed_actions"])
    assert ticket["chain"][0]["agency"]["code"] == "PUPR-13.03"
    # The decision, explained: the rule that matched, the classifier's top three, its model.
    assert ticket["category"] == "PUPR" and ticket["subcategory"].startswith("PUPR.")
    assert "PUPR" in ticket["rule"] and "Sijunjung" in ticket["rule"]
    top = ticket["top_categories"]
    assert [t["category_code"] for t in top][0] == "PUPR" and len(top) == 3
    assert top[0]["category"] == "PEKERJAAN UMUM DAN PENATAAN RUANG"
    assert top[0]["confidence"] >= top[1]["confidence"] >= top[2]["confidence"]
    assert ticket["model_version"]

    accepted = p.act(officer, tracking_id, "accept",
                     {"complexity": "DISPUTE", "expected_version": ticket["version"]})
    assert accepted.status_code == 200, accepted.get_data(as_text=True)
    accepted = accepted.get_json()
    assert (accepted["complexity"], accepted["version"]) == ("DISPUTE", ticket["version"] + 1)
    assert accepted["accepted_at"] and accepted["deadline"] > ticket["deadline"]

    asked = p.act(officer, tracking_id, "messages", {"text": "Di depan SD 04 atau SD 05?"})
    assert asked.status_code == 200
    assert asked.get_json()["messages"][-1]["direction"] == "to_reporter"

    response = "Lubang sudah ditambal pada 3 Maret; mohon konfirmasi"
    followed = p.act(officer, tracking_id, "follow-up",
                     {"response": f"  {response}\n", "expected_version": accepted["version"]})
    assert followed.status_code == 200
    assert followed.get_json()["state"] == "FOLLOWED_UP"
    assert "close" in followed.get_json()["allowed_actions"]

    # The reporter sees the response and the message (only they see the message).
    def followed_up():
        own = p.own(tracking_id, access_token)
        return own if own["status"] == "FOLLOWED_UP" else None

    own = wait_for(followed_up, 15, what="the follow-up in the reporter's view")
    assert own["timeline"][-1]["note"] == response
    assert own["actions"] == ["reply", "confirm"]
    assert "SD 04" in json.dumps(own) and "SD 04" not in json.dumps(p.public(tracking_id))


def test_the_national_admins_triage_holds_then_verifies(platform):
    p = platform
    tracking_id, access_token = p.routed(VAGUE)
    triage = p.get("/tickets", p.admin, query_string={"agency": "ADMIN-NASIONAL",
                                                      "state": "SUBMITTED"}).get_json()
    assert tracking_id in [t["tracking_id"] for t in triage["tickets"]]

    question = "Pendapat tentang apa, dan di nagari mana?"
    held = p.act(p.admin, tracking_id, "hold", {"question": question})
    assert held.status_code == 200 and held.get_json()["state"] == "ON_HOLD"
    own = wait_for(lambda: (o := p.own(tracking_id, access_token))["status"] == "ON_HOLD"
                   and o, 15, what="the hold in the reporter's view")
    assert own["timeline"][-1]["private_note"] == question
    assert question not in json.dumps(p.public(tracking_id))

    added = p.reporter(tracking_id, access_token, "replies",
                       {"message": "Tentang lampu jalan di Nagari Muaro yang mati"})
    assert added.status_code == 201
    assert (added.get_json()["outcome"], added.get_json()["status"]) == (
        "information_added", "SUBMITTED")

    verified = p.act(p.admin, tracking_id, "verify",
                     {"agency_code": "PUPR-13.03", "category": "PUPR",
                      "note": "lampu jalan: PUPR"})
    assert verified.status_code == 200, verified.get_data(as_text=True)
    assert (verified.get_json()["state"], verified.get_json()["agency"]["code"]) == (
        "DISPATCHED", "PUPR-13.03")
    # The anonymous reporter's name never reaches staff.
    assert verified.get_json()["report"]["reporter_name"] is None

    audit = p.get(f"/tickets/{tracking_id}/audit", p.admin)
    assert audit.status_code == 200
    actions = [e["action"] for e in audit.get_json()["entries"]]
    assert actions[-2:] == ["add_info", "verify"] and "hold" in actions
    assert audit.get_json()["entries"][-1]["actor"] == "admin-nasional"


# -- refusals -------------------------------------------------------------------------------------
def test_without_a_valid_staff_token_the_answer_is_401_with_a_bearer_challenge(platform):
    p = platform
    body = problem(p.get("/me", None), 401, "unauthenticated")
    assert "Authorization: Bearer" in body["detail"]
    for token in ("lpr_" + "x" * 43, "not a token"):
        refused = p.http.get("/api/v1/staff/tickets", headers={"Authorization":
                                                                f"Bearer {token}"})
        problem(refused, 401, "unauthenticated")
        assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    revoked = p.token("lupa.pupr", "agency_officer", "PUPR-13.03")
    from services.routing import auth

    with p.routing.engine.begin() as conn:
        auth.set_active(conn, "lupa.pupr", False)
    problem(p.get("/me", revoked), 401, "unauthenticated")
    problem(p.http.get("/api/v1/staff/me?token=abc"), 400, "token_not_in_header")


def test_intake_never_lends_its_own_token_to_staff(platform):
    # Intake's service account may act for citizens only: its token does not open the inbox,
    # and no staff request is ever made with it in place of a missing token.
    service_token = platform.token_file.read_text().strip()
    assert platform.get("/me", service_token).get_json()["role"] == "service"
    problem(platform.get("/tickets", service_token), 403, "forbidden")
    problem(platform.get("/tickets", None), 401, "unauthenticated")


def test_another_agencys_officer_sees_nothing_of_the_ticket(platform):
    p = platform
    tracking_id, _ = p.routed()
    other = p.token("ani.dinkes", "agency_officer", "DINKES-13.03")
    denied = problem(p.get(f"/tickets/{tracking_id}", other), 403, "forbidden")
    unknown = problem(p.get("/tickets/LPR-000-000-000", other), 403, "forbidden")
    assert denied["detail"] == unknown["detail"], "the answer says nothing of its existence"
    problem(p.act(other, tracking_id, "accept"), 403, "forbidden")
    assert tracking_id not in json.dumps(p.get("/tickets", other).get_json())
    problem(p.get(f"/tickets/{tracking_id}/audit", p.officer), 403, "forbidden")
    problem(p.get("/tickets/LPR-000-000-000", p.admin), 404, "ticket_not_found")


def test_state_and_version_conflicts_are_409_saying_what_to_do(platform):
    p = platform
    tracking_id, _ = p.routed()
    version = p.ticket(tracking_id)["version"]
    closed = problem(p.act(p.officer, tracking_id, "close"), 409, "not_allowed_in_state")
    assert "DISPATCHED" in closed["detail"] and "FOLLOWED_UP" in closed["detail"]
    assert p.act(p.officer, tracking_id, "accept").status_code == 200
    stale = problem(p.act(p.officer, tracking_id, "follow-up",
                          {"response": "Sudah", "expected_version": version}),
                    409, "stale_version")
    assert "Reload" in stale["detail"]
    assert p.ticket(tracking_id)["state"] == "DISPATCHED", "nothing changed"


def test_invalid_requests_are_422_naming_the_field(platform):
    p = platform
    tracking_id, _ = p.routed()
    for action, body, field in (
            ("hold", {"question": "   "}, "question"),
            ("accept", {"complexity": "HARD"}, "complexity"),
            ("archive", {"reason": "BORING"}, "reason"),
            ("follow-up", {"response": "ok", "expected_version": -1}, "expected_version"),
            ("forward", {}, "unit_code")):
        refused = problem(p.act(p.officer, tracking_id, action, body), 422,
                          "validation_failed")
        assert [e["field"] for e in refused["errors"]] == [field], refused
    # Checked by routing, answered the same way.
    refused = problem(p.act(p.officer, tracking_id, "decline",
                            {"reason": "bukan wewenang kami", "suggested_agency_code": "NOPE-99"}),
                      422, "validation_failed")
    assert refused["errors"][0]["field"] == "suggested_agency_code"
    refused = problem(p.get("/tickets", p.officer, query_string={"agency": "DINKES-13.03"}),
                      422, "validation_failed")
    assert refused["errors"][0]["field"] == "agency"
    problem(p.act(p.officer, "LPR-000-000-001", "accept"), 400, "invalid_tracking_id")
    problem(p.http.post(f"/api/v1/staff/tickets/{tracking_id}/hold", data="question=x",
                        headers=bearer(p.officer)), 415, "unsupported_media_type")


def test_the_staff_api_is_limited_per_token(platform):
    other = platform.token("rudi.pupr", "agency_officer", "PUPR-13.03")
    with second_intake(platform, "limited", RATE_LIMIT_STAFF="3 per minute",
                       RATE_LIMIT_STAFF_FAILURES="2 per minute") as http:
        for _ in range(3):
            assert http.get("/api/v1/staff/me", headers=bearer(platform.officer)).status_code \
                == 200
        limited = problem(http.get("/api/v1/staff/me", headers=bearer(platform.officer)), 429,
                          "rate_limited")
        assert "staff token" in limited["detail"]
        assert http.get("/api/v1/staff/me", headers=bearer(other)).status_code == 200, \
            "a colleague behind the same address has an allowance of their own"
        for _ in range(2):
            problem(http.get("/api/v1/staff/me"), 401, "unauthenticated")
        problem(http.get("/api/v1/staff/me"), 429, "rate_limited")


def test_routing_unreachable_is_503_with_retry_after(tmp_path, platform):
    app = intake_app(tmp_path, f"127.0.0.1:{free_port()}", dead_amqp_url(),
                     token_file=platform.token_file, workers=False)
    try:
        http = app.test_client()
        refused = http.get("/api/v1/staff/tickets", headers=bearer(platform.officer))
        problem(refused, 503, "routing_unavailable")
        assert int(refused.headers["Retry-After"]) > 0
        problem(http.post("/api/v1/staff/tickets/LPR-000-000-000/accept",
                          headers=bearer(platform.officer)), 503, "routing_unavailable")
    finally:
        close_app(app)


def test_a_routing_that_never_answers_gets_each_call_its_own_deadline(tmp_path, platform):
    """A peer that accepts and never answers: a staff action waits out the action deadline
    (it changes a ticket and may queue behind other writers), a suggestion only the short
    one (someone is typing); both end in 503, neither hangs."""
    hole = BlackHole()
    app = intake_app(tmp_path, f"127.0.0.1:{hole.port}", dead_amqp_url(),
                     token_file=platform.token_file, workers=False, name="hole",
                     ROUTING_TIMEOUT=0.3, ROUTING_ACTION_TIMEOUT=1.5)
    try:
        http = app.test_client()
        started = time.monotonic()
        problem(http.post("/api/v1/staff/tickets/LPR-000-000-000/accept",
                          headers=bearer(platform.officer)), 503, "routing_unavailable")
        action_seconds = time.monotonic() - started
        started = time.monotonic()
        problem(http.post("/api/v1/reports/suggest", json={
            "title": "Jalan rusak", "body": "Jalan berlubang besar di Muaro",
            "region_code": "13.03"}), 503, "routing_unavailable")
        suggest_seconds = time.monotonic() - started
        assert 1.5 <= action_seconds < 10, action_seconds
        assert suggest_seconds < 1.5, suggest_seconds
    finally:
        close_app(app)
        hole.close()
