"""The reporter's actions over HTTP with the report's access token, against a real routing and
RabbitMQ: reply to a follow-up, confirm, rate, appeal — what the reporter then sees and what
the agency gets — and the refusals (401, 403 counted as a failed lookup, 404, 409 naming the
state, 422, 503 when routing is away or refuses intake's own token)."""

from __future__ import annotations

import json

import pytest

from services.intake.routing_client import TokenStatus
from tests.conftest import free_port
from tests.integration.helpers import dead_amqp_url, wait_for
from tests.integration.test_intake_staff import (
    ROAD,
    bearer,
    close_app,
    intake_app,
    problem,
    running_platform,
    second_intake,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory) as running:
        yield running


def test_reply_confirm_rate_and_appeal(platform):
    p = platform
    tracking_id, token = p.followed_up(response="Lubang sudah ditambal")

    replied = p.reporter(tracking_id, token, "replies",
                         {"message": "Belum, lubang di depan SD 04 masih ada"})
    assert replied.status_code == 201, replied.get_data(as_text=True)
    assert replied.headers["Cache-Control"] == "no-store"
    answer = replied.get_json()
    assert (answer["outcome"], answer["status"], answer["agency"]["code"]) == (
        "replied", "REPORTER_REPLIED", "PUPR-13.03")
    assert answer["deadline"] and answer["deadline_zone"] == "WIB"
    # At once in the reporter's view (before routing's event arrives), and at the agency.
    assert p.own(tracking_id, token)["status"] == "REPORTER_REPLIED"
    ticket = p.ticket(tracking_id, p.officer)
    assert ticket["state"] == "REPORTER_REPLIED"
    assert ticket["messages"][-1] == {**ticket["messages"][-1], "direction": "to_agency",
                                      "text": "Belum, lubang di depan SD 04 masih ada"}

    assert p.act(p.officer, tracking_id, "follow-up",
                 {"response": "Lubang di depan SD 04 ditambal hari ini"}).status_code == 200
    confirmed = p.reporter(tracking_id, token, "confirm", {"comment": "Terima kasih"})
    assert confirmed.status_code == 200
    assert (confirmed.get_json()["outcome"], confirmed.get_json()["status"]) == (
        "closed", "CLOSED")
    assert p.own(tracking_id, token)["actions"] == ["rate", "appeal"]

    rated = p.reporter(tracking_id, token, "rating", {"rating": 5, "comment": "Cepat"})
    assert rated.status_code == 200 and rated.get_json()["outcome"] == "rated"
    own = p.own(tracking_id, token)
    assert (own["rating"], own["actions"]) == (5, ["appeal"])
    assert p.ticket(tracking_id)["rating"] == 5
    again = problem(p.reporter(tracking_id, token, "rating", {"rating": 1}), 409,
                    "not_allowed_in_state")
    assert "rated already" in again["detail"]

    appealed = p.reporter(tracking_id, token, "appeal",
                          {"reason": "Tambalan sudah rusak lagi setelah hujan"})
    assert appealed.status_code == 200, appealed.get_data(as_text=True)
    assert (appealed.get_json()["outcome"], appealed.get_json()["status"],
            appealed.get_json()["agency"]["code"]) == ("appealed", "DISPATCHED", "PEMDA-13.03")
    assert p.own(tracking_id, token)["actions"] == ["reply"]
    wait_for(lambda: p.own(tracking_id, token)["timeline"][-1]["status"] == "DISPATCHED", 15,
             what="the appeal in the reporter's timeline")


def test_a_confidential_reports_follow_up_reaches_only_its_reporter(platform):
    p = platform
    response = "Petugas yang meminta pungutan sudah diberi sanksi"
    tracking_id, token = p.followed_up({**p.next_road(), "confidential": True}, response=response)

    def shown():
        own = p.own(tracking_id, token)
        return own if own["status"] == "FOLLOWED_UP" else None

    entry = wait_for(shown, 15, what="the follow-up")["timeline"][-1]
    assert (entry["note"], entry["private_note"]) == ("Ditindaklanjuti", response)
    assert response not in json.dumps(p.public(tracking_id))


def test_the_report_token_is_checked_by_intake_first(platform):
    p = platform
    tracking_id, token = p.routed()
    refused = problem(p.reporter(tracking_id, None, "replies", {"message": "Halo"}), 401,
                      "access_token_required")
    assert refused["detail"] and p.reporter(tracking_id, None, "replies", {
        "message": "Halo"}).headers["WWW-Authenticate"].startswith("Bearer")
    problem(p.reporter(tracking_id, "bukan-token-ini", "replies", {"message": "Halo"}), 403,
            "wrong_access_token")
    other, other_token = p.submit()
    problem(p.reporter(tracking_id, other_token, "rating", {"rating": 5}), 403,
            "wrong_access_token")
    problem(p.reporter("LPR-000-000-000", token, "appeal", {"reason": "x"}), 404,
            "report_not_found")
    problem(p.reporter("LPR-000-000-001", token, "appeal", {"reason": "x"}), 400,
            "invalid_tracking_id")
    assert p.ticket(tracking_id)["messages"] == [], "nothing reached the agency"


def test_wrong_tokens_count_against_the_failed_lookup_allowance(platform):
    tracking_id, token = platform.routed()
    with second_intake(platform, "lookups", RATE_LIMIT_LOOKUP_FAILURES="3 per minute") as http:
        # A second intake with its own database: the report is unknown there (404), which
        # counts exactly like a wrong token.
        for _ in range(3):
            answer = http.post(f"/api/v1/reports/{tracking_id}/appeal", json={"reason": "x"},
                               headers=bearer("ditebak"))
            assert answer.status_code in (403, 404)
        problem(http.post(f"/api/v1/reports/{tracking_id}/appeal", json={"reason": "x"},
                          headers=bearer(token)), 429, "rate_limited")


def test_what_the_lifecycle_does_not_allow_is_409_naming_the_state(platform):
    p = platform
    tracking_id, token = p.routed()
    early = problem(p.reporter(tracking_id, token, "rating", {"rating": 4}), 409,
                    "not_allowed_in_state")
    assert "DISPATCHED" in early["detail"] and "closed" in early["detail"]
    # Confirming needs no body at all.
    problem(p.http.post(f"/api/v1/reports/{tracking_id}/confirm", headers=bearer(token)), 409,
            "not_allowed_in_state")
    appeal = problem(p.reporter(tracking_id, token, "appeal", {"reason": "Lama"}), 409,
                     "not_allowed_in_state")
    assert "DISPATCHED" in appeal["detail"]
    # A message while the agency works on it goes through.
    sent = p.reporter(tracking_id, token, "replies", {"message": "Ada foto baru di lokasi"})
    assert (sent.status_code, sent.get_json()["outcome"]) == (201, "message_sent")


def test_bad_bodies_are_422_naming_the_field(platform):
    p = platform
    tracking_id, token = p.routed()
    for action, body, field in (("rating", {"rating": 6}, "rating"),
                                ("rating", {"rating": "5"}, "rating"),
                                ("replies", {"message": " \n "}, "message"),
                                ("replies", {"message": "x" * 10_001}, "message"),
                                ("appeal", {}, "reason")):
        refused = problem(p.reporter(tracking_id, token, action, body), 422,
                          "validation_failed")
        assert [e["field"] for e in refused["errors"]] == [field]
    problem(p.http.post(f"/api/v1/reports/{tracking_id}/replies", data="message=hi",
                        headers=bearer(token)), 415, "unsupported_media_type")


def test_a_report_routing_has_not_seen_yet_is_409_to_retry(platform, tmp_path):
    # Intake's relay is off: routing never heard of the report.
    with second_intake(platform, "not-yet") as http:
        answer = http.post("/api/v1/reports", json=ROAD).get_json()
        refused = http.post(f"/api/v1/reports/{answer['tracking_id']}/replies",
                            json={"message": "Halo"},
                            headers=bearer(answer["access_token"]))
        problem(refused, 409, "not_routed_yet")
        assert refused.headers["Retry-After"]


def test_routing_away_or_refusing_intakes_token_is_503_not_the_citizens_fault(
        platform, tmp_path):
    p = platform
    tracking_id, token = p.followed_up()

    down = intake_app(tmp_path, f"127.0.0.1:{free_port()}", dead_amqp_url(),
                      token_file=p.token_file, workers=False, name="down")
    no_token = intake_app(tmp_path, p.address, dead_amqp_url(), workers=False,
                          name="no-token")
    try:
        for app in (down, no_token):
            http = app.test_client()
            # Each has its own database: the report must exist there for the token check.
            mine = http.post("/api/v1/reports", json=ROAD).get_json()
            refused = http.post(f"/api/v1/reports/{mine['tracking_id']}/replies",
                                json={"message": "Halo"},
                                headers=bearer(mine["access_token"]))
            problem(refused, 503, "routing_unavailable")
            assert int(refused.headers["Retry-After"]) > 0
            assert "WWW-Authenticate" not in refused.headers
        ready = no_token.test_client().get("/readyz")
        assert ready.status_code == 200, "readiness does not depend on the token"
        assert ready.get_json()["checks"]["routing_token"] == TokenStatus.UNSET
        assert down.test_client().get("/readyz").get_json()["checks"]["routing"] is False
    finally:
        close_app(down)
        close_app(no_token)
    assert p.http.get("/readyz").get_json()["checks"]["routing_token"] == TokenStatus.ACCEPTED
    assert p.reporter(tracking_id, token, "replies", {"message": "Halo"}).status_code == 201


def test_a_revoked_service_token_shows_in_readiness(platform, tmp_path):
    from services.routing import auth

    p = platform
    token_file = tmp_path / "old-token"
    with p.routing.engine.begin() as conn:
        auth.ensure_service(conn, "intake-lama", token_file)
        auth.set_active(conn, "intake-lama", False)
    app = intake_app(tmp_path, p.address, dead_amqp_url(), token_file=token_file,
                     workers=False, name="revoked")
    try:
        ready = app.test_client().get("/readyz")
        assert ready.status_code == 200
        assert ready.get_json()["checks"]["routing_token"] == TokenStatus.REFUSED
    finally:
        close_app(app)


def test_done_at_routing_is_answered_as_done_even_if_intake_cannot_show_it_yet(platform):
    """Routing took the rating; intake failing to note it in its own table must not answer
    503 (the reporter would send it again). Routing's answer stands."""
    p = platform
    tracking_id, token = p.followed_up()
    assert p.reporter(tracking_id, token, "confirm").status_code == 200
    engine = p.app.extensions["lapor"].engine
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse_rating BEFORE UPDATE OF rating ON reports "
            "WHEN NEW.rating = 3 BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
    try:
        rated = p.reporter(tracking_id, token, "rating", {"rating": 3})
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TRIGGER refuse_rating")
    assert (rated.status_code, rated.get_json()["outcome"]) == (200, "rated")
    assert p.ticket(tracking_id)["rating"] == 3
