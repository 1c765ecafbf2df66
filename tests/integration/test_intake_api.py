"""Intake's HTTP API through Flask's test client on SQLite and PostgreSQL, with routing
unreachable (a closed port) unless said otherwise: what a citizen's app and an operator see.
No request in these tests may answer with a 5xx unless the test says it expects one."""

from __future__ import annotations

import json
import threading
import time

import jsonschema_rs
import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest

from services.infra import events, messaging
from services.infra.config import ConfigError
from services.intake import ids, limits, storage
from services.intake.app import MAX_BODY_BYTES, create_app
from tests.conftest import free_port
from tests.integration.helpers import dead_amqp_url, scraped, take_messages

pytestmark = pytest.mark.integration

NAME, EMAIL, PHONE = "Siti Rahayu", "siti.rahayu@example.id", "081234567890"
PHONE_E164 = "+6281234567890"
PROBLEM = "application/problem+json"


def report(**overrides) -> dict:
    body = {
        "kind": "PENGADUAN",
        "title": "Jalan rusak di Nagari Muaro Sijunjung",
        "body": "Jalan utama berlubang besar dan aspalnya rusak sejak tiga bulan lalu; "
                "sudah dua pengendara motor jatuh di sana.",
        "region_code": "13.03",
        "incident_date": "2025-01-15",
        "location": {"latitude": -0.6712, "longitude": 100.9521},
        "reporter": {"name": NAME, "email": EMAIL, "phone": PHONE},
    }
    body.update(overrides)
    return body


class Api:
    """The test client; a 5xx fails the test on the spot unless the call expects one."""

    def __init__(self, app):
        self.app = app
        self.raw = app.test_client()

    def open(self, method: str, path: str, *, expect_5xx: bool = False, **kwargs):
        response = self.raw.open(path, method=method, **kwargs)
        if not expect_5xx:
            assert response.status_code < 500, (
                f"{method} {path} answered {response.status_code}: {response.get_data()[:300]!r}")
        return response

    def get(self, path: str, **kwargs):
        return self.open("GET", path, **kwargs)

    def post(self, path: str, **kwargs):
        return self.open("POST", path, **kwargs)

    def submit(self, body=None, **kwargs):
        return self.post("/api/v1/reports", json=report() if body is None else body, **kwargs)


# These tests send more than a citizen would; the limits have their own tests.
HIGH_LIMITS = {key: "100000 per minute" for key in limits.LIMIT_SETTINGS}


def make_app(database_url: str, amqp_url: str | None = None):
    return create_app({"DATABASE_URL": database_url, "AMQP_URL": amqp_url or dead_amqp_url(),
                       "ROUTING_ADDR": f"127.0.0.1:{free_port()}", "ROUTING_TIMEOUT": 1.0,
                       "START_WORKERS": False, **HIGH_LIMITS})


def close(app) -> None:
    ctx = app.extensions["lapor"]
    ctx.outbox.stop(flush_timeout=0)  # closes the relay's broker connection, if it has one
    ctx.routing.close()
    ctx.engine.dispose()


@pytest.fixture
def app(database_url):
    app = make_app(database_url)
    yield app
    close(app)


@pytest.fixture
def api(app) -> Api:
    return Api(app)


def test_the_relay_gathers_for_the_window_set_and_50_ms_without_one(sqlite_url):
    for config, window in (({}, 0.05), ({"OUTBOX_GATHER": 0.0}, 0.0)):
        app = create_app({"DATABASE_URL": sqlite_url, "AMQP_URL": dead_amqp_url(),
                          "ROUTING_ADDR": f"127.0.0.1:{free_port()}", "ROUTING_TIMEOUT": 1.0,
                          "START_WORKERS": False, **config})
        try:
            assert app.extensions["lapor"].outbox.gather == window
        finally:
            close(app)


def problem(response, status: int, code: str) -> dict:
    """Checks an RFC 9457 problem answer and returns its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = json.loads(response.get_data())
    assert (body["status"], body["code"]) == (status, code)
    assert body["type"].endswith("/" + code) and body["title"] and body["detail"]
    return body


def count(app, table: sa.Table, **where) -> int:
    with app.extensions["lapor"].engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(table)
        for column, value in where.items():
            query = query.where(table.c[column] == value)
        return conn.execute(query).scalar()


def outbox_rows(app, tracking_id: str):
    o = storage.outbox
    with app.extensions["lapor"].engine.connect() as conn:
        return conn.execute(sa.select(o).where(o.c.aggregate_id == tracking_id)
                            .order_by(o.c.id)).all()


# -- submitting ------------------------------------------------------------------------------
def test_a_valid_report_is_accepted_with_what_the_citizen_needs_to_follow_it(api):
    response = api.submit()
    assert response.status_code == 201
    answer = response.get_json()
    tracking_id = answer["tracking_id"]
    assert ids.normalise_tracking_id(tracking_id) == tracking_id  # checkable id
    assert len(answer["access_token"]) >= 24
    assert (answer["status"], answer["status_label"]) == ("SUBMITTED", "Belum terverifikasi")
    assert response.headers["Location"] == f"/api/v1/reports/{tracking_id}"
    assert "Idempotent-Replayed" not in response.headers

    shown = api.get(response.headers["Location"])
    assert shown.status_code == 200
    assert shown.get_json()["status"] == "SUBMITTED"
    assert shown.get_json()["title"] == report()["title"]
    # The token is shown once; what is stored is a hash of it.
    with api.app.extensions["lapor"].engine.connect() as conn:
        stored = conn.execute(sa.select(storage.reports.c.access_token_hash)).scalar()
    assert answer["access_token"] not in stored


@pytest.mark.parametrize("anonymous", [False, True])
def test_the_outbox_holds_the_report_for_routing_and_the_contact_for_notifications_only(
        api, anonymous):
    tracking_id = api.submit(report(anonymous=anonymous)).get_json()["tracking_id"]
    rows = outbox_rows(api.app, tracking_id)
    assert [r.event_type for r in rows] == ["report.submitted", "reporter.registered"]
    submitted, registered = rows

    for secret in (EMAIL, PHONE, PHONE_E164, PHONE[1:]):
        assert secret.encode() not in submitted.body, f"{secret} leaked into report.submitted"
    assert (NAME.encode() in submitted.body) is not anonymous
    content = events.payload(events.decode(submitted.body)).report
    assert content.reporter_name == ("" if anonymous else NAME)
    assert (content.title, content.region_code, content.anonymous) == (
        report()["title"], "13.03", anonymous)

    contact = events.payload(events.decode(registered.body))
    assert (contact.email, contact.phone, contact.anonymous) == (EMAIL, PHONE_E164, anonymous)
    assert all(r.published_at is None for r in rows), "the broker is down; they wait"


def test_the_relayed_events_reach_the_routing_and_notification_queues(database_url, amqp_url):
    app = make_app(database_url, amqp_url)
    try:
        tracking_id = Api(app).submit().get_json()["tracking_id"]
        assert app.extensions["lapor"].outbox.flush(10) == 0
    finally:
        close(app)
    routed = take_messages(amqp_url, messaging.QUEUES["routing"].name)
    notified = take_messages(amqp_url, messaging.QUEUES["notify"].name)
    assert [(p.type, events.decode(b).aggregate_id) for p, b in routed] == [
        ("report.submitted", tracking_id)]
    assert [(p.type, events.decode(b).aggregate_id) for p, b in notified] == [
        ("reporter.registered", tracking_id)]
    assert take_messages(amqp_url, messaging.QUEUES["intake"].name) == []


# -- idempotency -----------------------------------------------------------------------------
def test_a_retried_post_with_the_same_key_gives_the_same_report(api):
    key = {"Idempotency-Key": "c0ffee00-aaaa-4bbb-8ccc-000000000001"}
    first = api.submit(headers=key)
    again = api.submit(headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert count(api.app, storage.reports) == 1
    assert count(api.app, storage.outbox) == 2, "the events went into the outbox once"

    other = api.submit(report(title="Jembatan gantung putus di Kamang"), headers=key)
    body = problem(other, 422, "idempotency_key_reused")
    assert "new key" in body["detail"]
    assert count(api.app, storage.reports) == 1

    fresh = api.submit(headers={"Idempotency-Key": "c0ffee00-aaaa-4bbb-8ccc-000000000002"})
    assert fresh.status_code == 201
    assert fresh.get_json()["tracking_id"] != first.get_json()["tracking_id"]
    problem(api.submit(headers={"Idempotency-Key": "short"}), 400, "invalid_idempotency_key")


def test_simultaneous_retries_with_one_key_create_one_report(api):
    key = {"Idempotency-Key": "mobile-retry-7f3a9c2e-0001"}
    gate = threading.Barrier(6)
    responses = []

    def post():
        client = Api(api.app)
        gate.wait()
        responses.append(client.submit(headers=key))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert [r.status_code for r in responses] == [201] * 6
    assert len({r.get_json()["tracking_id"] for r in responses}) == 1
    assert sum("Idempotent-Replayed" not in r.headers for r in responses) == 1
    assert count(api.app, storage.reports) == 1
    assert count(api.app, storage.outbox, event_type="report.submitted") == 1


def test_reports_sent_at_once_with_a_reused_key_among_them_are_each_stored_once(api):
    """Submissions that arrive together are committed together (group commit): a reused
    key among them fails that group, and each of them is then stored (or refused) on its
    own, as if it had come alone."""
    used = {"Idempotency-Key": "mobile-retry-7f3a9c2e-0002"}
    first = api.submit(headers=used).get_json()
    gate = threading.Barrier(9)
    answers: dict[str, object] = {}

    def post(label, body, key):
        client = Api(api.app)
        gate.wait()
        answers[label] = client.submit(body, headers={"Idempotency-Key": key})

    threads = [threading.Thread(target=post, args=(f"fresh{i}", report(
        title=f"Jalan rusak ke-{i} di Nagari Muaro"), f"fresh-7f3a9c2e-{i:04d}"))
        for i in range(7)]
    threads.append(threading.Thread(target=post, args=("replay", None, used["Idempotency-Key"])))
    threads.append(threading.Thread(target=post, args=(
        "reused", report(title="Jembatan gantung putus di Kamang"), used["Idempotency-Key"])))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    fresh = [answers[f"fresh{i}"] for i in range(7)]
    assert [r.status_code for r in fresh] == [201] * 7
    assert len({r.get_json()["tracking_id"] for r in fresh} | {first["tracking_id"]}) == 8
    assert answers["replay"].status_code == 201
    assert answers["replay"].get_json() == first
    problem(answers["reused"], 422, "idempotency_key_reused")
    assert count(api.app, storage.reports) == 8
    assert count(api.app, storage.outbox, event_type="report.submitted") == 8
    for r in fresh:
        assert api.get(r.headers["Location"]).status_code == 200


# -- what is wrong with a request ------------------------------------------------------------
def test_validation_errors_name_every_field_to_fix(api):
    bad = {
        "kind": "KELUHAN",
        "title": "Rus",
        "region_code": "13-03",
        "category": "jalan rusak",
        "incident_date": "2099-01-01",
        "location": {"latitude": 123.4, "longitude": 100.9},
        "anonymous": "ya",
        "reporter": {"email": "siti@", "phone": "12ab", "language": "jv"},
    }
    body = problem(api.submit(bad), 422, "validation_failed")
    fields = {error["field"] for error in body["errors"]}
    assert fields == {"kind", "title", "body", "region_code", "category", "incident_date",
                      "location.latitude", "anonymous", "reporter.email", "reporter.phone",
                      "reporter.language"}
    assert all(error["message"] for error in body["errors"])
    assert all(field in body["detail"] for field in fields)
    assert count(api.app, storage.reports) == 0


def test_broken_requests_get_a_problem_that_says_what_to_fix(api):
    problem(api.post("/api/v1/reports", data='{"kind": "PENGADUAN",',
                     content_type="application/json"), 400, "malformed_json")
    problem(api.post("/api/v1/reports", data="kind=PENGADUAN",
                     content_type="application/x-www-form-urlencoded"),
            415, "unsupported_media_type")
    big = report(body="x" * (MAX_BODY_BYTES + 1))
    problem(api.post("/api/v1/reports", data=json.dumps(big), content_type="application/json"),
            413, "payload_too_large")
    problem(api.get("/api/v1/no-such-thing"), 404, "not_found")
    problem(api.open("DELETE", "/api/v1/reports"), 405, "method_not_allowed")
    problem(api.post("/api/v1/reports", json=[report()]), 422, "validation_failed")
    assert count(api.app, storage.reports) == 0


def test_looking_up_a_report_by_tracking_id(api):
    answer = api.submit().get_json()
    tracking_id = answer["tracking_id"]

    typo = tracking_id[:-1] + ("0" if tracking_id[-1] != "0" else "1")
    body = problem(api.get(f"/api/v1/reports/{typo}"), 400, "invalid_tracking_id")
    assert body["errors"][0]["field"] == "tracking_id"
    problem(api.get("/api/v1/reports/not-an-id"), 400, "invalid_tracking_id")

    unknown = ids.new_tracking_id()
    assert unknown != tracking_id
    body = problem(api.get(f"/api/v1/reports/{unknown}"), 404, "report_not_found")
    assert unknown in body["detail"]

    # Typed on a phone: lower case, no dashes, no prefix.
    typed = tracking_id.removeprefix("LPR-").replace("-", "").lower()
    shown = api.get(f"/api/v1/reports/{typed}")
    assert shown.status_code == 200 and shown.get_json()["tracking_id"] == tracking_id


# -- privacy ---------------------------------------------------------------------------------
def test_the_public_sees_neither_the_reporter_nor_confidential_content(api):
    answer = api.submit(report(confidential=True)).get_json()
    path = f"/api/v1/reports/{answer['tracking_id']}"

    public = api.get(path)
    assert public.status_code == 200
    view = public.get_json()
    assert (view["status"], view["confidential"], view["region_code"]) == (
        "SUBMITTED", True, "13.03")
    assert "reporter" not in view and "title" not in view and "body" not in view
    for secret in (NAME, EMAIL, PHONE_E164, report()["title"], "pengendara motor"):
        assert secret not in public.get_data(as_text=True)

    owner = api.get(path, headers={"Authorization": f"Bearer {answer['access_token']}"})
    assert owner.status_code == 200
    mine = owner.get_json()
    # Contacts went to notify; intake keeps only the language of messages.
    assert mine["reporter"] == {"language": "id"}
    assert (mine["title"], mine["body"]) == (report()["title"], report()["body"])
    assert mine["location"] == {"latitude": -0.6712, "longitude": 100.9521}
    assert owner.headers["Cache-Control"] == "no-store"

    wrong = api.get(path, headers={"Authorization": "Bearer not-the-token"})
    body = problem(wrong, 403, "wrong_access_token")
    assert NAME not in wrong.get_data(as_text=True) and "public view" in body["detail"]


def test_an_anonymous_public_report_shows_its_content_but_not_who_sent_it(api):
    answer = api.submit(report(anonymous=True)).get_json()
    view = api.get(f"/api/v1/reports/{answer['tracking_id']}")
    assert view.get_json()["title"] == report()["title"]
    assert "reporter" not in view.get_json()
    assert NAME not in view.get_data(as_text=True)


# -- routing down, health, metrics -----------------------------------------------------------
def test_with_routing_down_suggestions_fail_fast_and_reports_still_go_in(api):
    draft = {"title": "Jalan rusak", "body": "Jalan berlubang di depan pasar",
             "region_code": "13.03"}
    started = time.monotonic()
    response = api.post("/api/v1/reports/suggest", json=draft, expect_5xx=True)
    elapsed = time.monotonic() - started
    body = problem(response, 503, "routing_unavailable")
    assert int(response.headers["Retry-After"]) > 0
    assert "still submit" in body["detail"]
    assert elapsed < 3, f"the citizen waited {elapsed:.1f}s for a suggestion"

    # A bad draft is answered by intake itself, routing or not.
    invalid = problem(api.post("/api/v1/reports/suggest", json={"region_code": "Sijunjung"}),
                      422, "validation_failed")
    assert {e["field"] for e in invalid["errors"]} == {"region_code", "body"}

    assert api.submit().status_code == 201


def test_health_readiness_and_metrics(api):
    assert api.get("/healthz").get_json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    # Without INTAKE_ROUTING_TOKEN_FILE citizen-side calls to routing fail: readiness says so
    # but stays up (reports are still accepted).
    # No region list imported in this app: `regions` says so (every well-formed code goes).
    # Attachments: no fetcher without workers, no link secret or scanner configured here.
    assert ready.get_json()["checks"] == {"database": True, "broker": False, "routing": False,
                                          "routing_token": "unset", "regions": 0,
                                          "attachments": {"storage": True, "fetcher": False,
                                                          "signed_links": False,
                                                          "virus_scan": False}}
    assert api.get("/api/v1/openapi.json").get_json()["openapi"].startswith("3.")

    api.submit()
    problem(api.submit({}), 422, "validation_failed")
    # Metrics are served on the metrics port (test_intake_server.py), not to citizens.
    problem(api.get("/metrics"), 404, "not_found")
    text = generate_latest().decode()
    route = {"route": "/api/v1/reports", "method": "POST"}
    assert scraped(text, "lapor_http_requests_total", **route, status="201") >= 1
    assert scraped(text, "lapor_http_requests_total", **route, status="422") >= 1
    assert scraped(text, "lapor_http_request_duration_seconds_count",
                   route="/api/v1/reports") >= 2


# -- odd input -------------------------------------------------------------------------------
ODD_BODIES = [
    "null", "[]", "[1, 2, 3]", '"a string"', "0", "-1e999", "1e999", "true", "{}",
    '{"kind": null, "title": null, "body": null, "region_code": null}',
    '{"kind": ["PENGADUAN"], "title": {"a": 1}, "body": [[]], "region_code": 13.03}',
    '{"kind": "PENGADUAN", "title": ' + "9" * 4000 + '}',
    '{"location": {"latitude": NaN, "longitude": Infinity}}',
    '{"location": [1, 2]}', '{"location": {"latitude": "1", "longitude": true}}',
    '{"location": {"latitude": 1e400, "longitude": -1e400}}',
    '{"reporter": "Siti"}', '{"reporter": {"email": ["a@b.id"], "phone": 81234567890}}',
    '{"reporter": {"language": {}, "name": 1}}', '{"anonymous": null, "confidential": 1}',
    '{"incident_date": "2024-02-30"}', '{"incident_date": 20240101}',
    '{"incident_date": "0001-01-01"}', '{"channel": "telepati"}',
    '{"title": "\\u0000\\u0000\\u0000\\u0000\\u0000"}', '{"title": "Jalan \\ud800 rusak"}',
    '{"title": "' + "\u202e" * 50 + '"}', '{"region_code": "١٣.٠٣"}',
    '{"region_code": "13.03\\n"}', '{"target_agency": "../../etc/passwd"}',
    '{"category": "INFRASTRUKTUR; DROP TABLE reports"}',
    "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000,
    '{"kind": "PENGADUAN"', "\ufeff{}", "{'kind': 'PENGADUAN'}",
]


def test_odd_bodies_never_get_a_5xx(api):
    for raw in ODD_BODIES:
        response = api.post("/api/v1/reports", data=raw.encode("utf-8", "surrogatepass"),
                            content_type="application/json")
        assert response.status_code in (400, 422), (raw[:60], response.status_code)
        assert response.mimetype == PROBLEM
    for raw in (b"\xff\xfe{}", b'{"title": "\xc3\x28"}', b"\x00" * 100):
        problem(api.post("/api/v1/reports", data=raw, content_type="application/json"),
                400, "malformed_json")
    # Strange but valid text is kept exactly as sent.
    title = "Jalan rusak 🚧 di Nagari Ñagari — طريق مكسور"
    answer = api.submit(report(title=title, anonymous=None, confidential=None)).get_json()
    shown = api.get(f"/api/v1/reports/{answer['tracking_id']}").get_json()
    assert shown["title"] == title
    for path in ("/api/v1/reports/%00", "/api/v1/reports/" + "A" * 5000,
                 "/api/v1/reports/LPR-💥", "/api/v1/reports/%ED%A0%80", "/api/v1/reports/%2e%2e"):
        assert api.get(path).status_code in (400, 404)
    headers = {"Idempotency-Key": "kunci-é-12345678"}
    problem(api.submit(headers=headers), 400, "invalid_idempotency_key")
    assert count(api.app, storage.reports) == 1


# -- email addresses -------------------------------------------------------------------------
def test_email_addresses_are_checked_and_stored_in_normalised_form(api):
    body = problem(api.submit(report(reporter={"email": "a,postmaster@contoh.id"})), 422,
                   "validation_failed")
    assert body["errors"][0]["field"] == "reporter.email"
    assert "','" in body["errors"][0]["message"]  # says which character is wrong

    for sent, kept in [("rína@contoh.id", "rína@contoh.id"),
                       ("Siti.Rahayu@EXAMPLE.ID", "Siti.Rahayu@example.id")]:
        answer = api.submit(report(reporter={"email": sent}))
        assert answer.status_code == 201, answer.get_json()
        registered = outbox_rows(api.app, answer.get_json()["tracking_id"])[1]
        assert events.payload(events.decode(registered.body)).email == kept


# -- HTTP hygiene ----------------------------------------------------------------------------
def test_no_answer_is_sniffed_and_none_with_a_token_or_private_detail_is_stored(api):
    created = api.submit()
    answer = created.get_json()
    path = f"/api/v1/reports/{answer['tracking_id']}"
    owner = api.get(path, headers={"Authorization": f"Bearer {answer['access_token']}"})
    errors = [api.submit({}), api.get("/api/v1/nothing"), api.get(path[:-1] + "U")]
    for response in [created, owner, api.get(path), api.get("/healthz"), *errors]:
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    for response in [created, owner, *errors]:
        assert response.headers["Cache-Control"] == "no-store"


def test_a_method_not_allowed_says_which_are(api):
    for method, path in [("DELETE", "/api/v1/reports"), ("GET", "/api/v1/reports/suggest"),
                         ("PUT", "/api/v1/reports/LPR-7K2-M9Q-XD4")]:
        response = api.open(method, path)
        problem(response, 405, "method_not_allowed")
        allowed = {m.strip() for m in response.headers["Allow"].split(",")}
        assert allowed - {"HEAD", "OPTIONS"} == ({"GET"} if "LPR" in path else {"POST"})


def test_the_access_token_is_taken_only_from_the_authorization_header(api):
    answer = api.submit().get_json()
    path, token = f"/api/v1/reports/{answer['tracking_id']}", answer["access_token"]
    for kwargs in [{"query_string": {"token": token}}, {"headers": {"X-Access-Token": token}},
                   {"headers": {"Authorization": f"Basic {token}"}},
                   {"headers": {"Authorization": "Bearer "}}]:
        response = api.get(path, **kwargs)
        body = problem(response, 400, "token_not_in_header")
        assert "Authorization: Bearer" in body["detail"]
        assert report()["body"] not in response.get_data(as_text=True)
    assert api.get(path, headers={"Authorization": f"bearer {token}"}).get_json()["reporter"]


@pytest.fixture
def browser_app(database_url):
    app = create_app({"DATABASE_URL": database_url, "AMQP_URL": dead_amqp_url(),
                      "ROUTING_ADDR": f"127.0.0.1:{free_port()}", "ROUTING_TIMEOUT": 1.0,
                      "START_WORKERS": False, **HIGH_LIMITS,
                      "CORS_ORIGINS": "https://lapor.go.id, https://m.lapor.go.id"})
    yield app
    close(app)


def test_browser_front_ends_on_listed_origins_may_call_the_api(browser_app, api):
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"}
    client = Api(browser_app)
    allowed = client.open("OPTIONS", "/api/v1/reports",
                          headers={"Origin": "https://m.lapor.go.id", **preflight})
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://m.lapor.go.id"
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    granted = {h.strip().lower()
               for h in allowed.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= granted
    assert "Access-Control-Allow-Credentials" not in allowed.headers

    created = client.submit(headers={"Origin": "https://lapor.go.id"})
    assert created.headers["Access-Control-Allow-Origin"] == "https://lapor.go.id"
    exposed = {h.strip() for h in created.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Location", "Retry-After", "RateLimit-Limit", "RateLimit-Remaining",
            "RateLimit-Reset"} <= exposed

    stranger = client.open("OPTIONS", "/api/v1/reports",
                           headers={"Origin": "https://lapor.example.com", **preflight})
    assert "Access-Control-Allow-Origin" not in stranger.headers
    # With no origin configured (the default) no browser on another origin is let in.
    default = api.open("OPTIONS", "/api/v1/reports",
                       headers={"Origin": "https://lapor.go.id", **preflight})
    assert "Access-Control-Allow-Origin" not in default.headers


def test_a_malformed_cors_origin_stops_the_process_naming_the_variable(sqlite_url):
    with pytest.raises(ConfigError, match="INTAKE_CORS_ORIGINS"):
        create_app({"DATABASE_URL": sqlite_url, "AMQP_URL": dead_amqp_url(),
                    "ROUTING_ADDR": "127.0.0.1:1", "START_WORKERS": False,
                    "ROUTING_TIMEOUT": 1.0, "CORS_ORIGINS": "https://lapor.go.id/app/"})


# -- answers are what the document says ------------------------------------------------------
def test_answers_match_the_schemas_of_the_served_document(api):
    document = api.get("/api/v1/openapi.json").get_json()

    def check(response, schema_name: str) -> None:
        schema = {"$ref": f"#/components/schemas/{schema_name}",
                  "components": document["components"]}
        validator = jsonschema_rs.validator_for(schema, validate_formats=True)
        errors = [str(e) for e in validator.iter_errors(response.get_json())]
        assert not errors, (schema_name, errors)

    for anonymous, confidential in [(False, False), (True, True)]:
        created = api.submit(report(anonymous=anonymous, confidential=confidential))
        check(created, "Accepted")
        answer = created.get_json()
        path = f"/api/v1/reports/{answer['tracking_id']}"
        public = api.get(path)
        owner = api.get(path, headers={"Authorization": f"Bearer {answer['access_token']}"})
        check(public, "PublicReport")
        check(owner, "OwnerReport")
        # GET answers oneOf the two: each view must match its own schema and not the other.
        other = jsonschema_rs.validator_for({"$ref": "#/components/schemas/PublicReport",
                                             "components": document["components"]})
        assert not other.is_valid(owner.get_json())
    check(api.submit({}), "Problem")
    check(api.get("/api/v1/reports/not-an-id"), "Problem")
