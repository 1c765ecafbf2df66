"""Dukungan (support) on SQLite and PostgreSQL: anyone may support a public report, counted
once per client (its X-Client-Key, else its address), idempotent, rate-limited, stored only
as salted hashes; the count shows in the report's views and reaches routing through the
outbox (report.supported), where staff see it on the ticket."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from lapor.v1 import events_pb2
from services.infra import events
from services.intake import readmodel, storage
from services.intake.app import create_app
from tests.conftest import free_port
from tests.integration.helpers import dead_amqp_url, status_changed, wait_for
from tests.integration.test_intake_api import (
    HIGH_LIMITS,
    Api,
    close,
    make_app,
    outbox_rows,
    problem,
    report,
)
from tests.integration.test_intake_staff import ROAD, running_platform

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    with running_platform(tmp_path_factory) as running:
        yield running

KEY_A, KEY_B = "app-install-7f3c9a1e", "app-install-0b24d6e8"


@pytest.fixture
def app(database_url):
    app = make_app(database_url)
    yield app
    close(app)


@pytest.fixture
def api(app) -> Api:
    return Api(app)


def submitted(api: Api, **overrides) -> tuple[str, str]:
    answer = api.submit(report(**overrides)).get_json()
    return answer["tracking_id"], answer["access_token"]


def support(api: Api, tracking_id: str, key: str | None = None, address: str = "203.0.113.7"):
    headers = {"X-Client-Key": key} if key is not None else {}
    return api.post(f"/api/v1/reports/{tracking_id}/support", headers=headers,
                    environ_base={"REMOTE_ADDR": address})


def supported_events(app, tracking_id: str) -> list[int]:
    counts = []
    for row in outbox_rows(app, tracking_id):
        if row.event_type == "report.supported":
            payload = events.payload(events.decode(row.body))
            assert isinstance(payload, events_pb2.ReportSupported)
            assert payload.tracking_id == tracking_id
            counts.append(payload.count)
    return counts


def test_each_client_counts_once(app, api):
    tracking_id, token = submitted(api)
    first = support(api, tracking_id, KEY_A)
    assert (first.status_code, first.get_json()) == (201, {
        "tracking_id": tracking_id, "support_count": 1, "counted": True})
    assert first.headers["Cache-Control"] == "no-store"
    again = support(api, tracking_id, KEY_A, address="198.51.100.9")
    assert (again.status_code, again.get_json()["support_count"],
            again.get_json()["counted"]) == (200, 1, False)
    assert support(api, tracking_id, KEY_B).get_json()["support_count"] == 2
    # Without a key the client is its address (as the rate limiter counts it: an IPv6 /64).
    assert support(api, tracking_id, address="2001:db8:1:2::10").status_code == 201
    assert support(api, tracking_id, address="2001:db8:1:2::99").status_code == 200
    assert support(api, tracking_id, address="203.0.113.7").get_json()["support_count"] == 4

    assert api.get(f"/api/v1/reports/{tracking_id}").get_json()["support_count"] == 4
    own = api.get(f"/api/v1/reports/{tracking_id}",
                  headers={"Authorization": f"Bearer {token}"}).get_json()
    assert own["support_count"] == 4
    assert supported_events(app, tracking_id) == [1, 2, 3, 4], "one event per counted support"


def test_neither_keys_nor_addresses_are_stored(app, api):
    tracking_id, _ = submitted(api)
    support(api, tracking_id, KEY_A)
    support(api, tracking_id, address="203.0.113.77")
    other, _ = submitted(api)
    support(api, other, KEY_A)
    with app.extensions["lapor"].engine.connect() as conn:
        dump = " ".join(str(tuple(row)) for table in storage.metadata.sorted_tables
                        for row in conn.execute(sa.select(table)))
        hashes = conn.execute(sa.select(storage.report_supports.c.supporter_hash)).scalars()
        hashes = list(hashes)
    for secret in (KEY_A, "203.0.113.77", "203.0.113"):
        assert secret not in dump
    assert len(set(hashes)) == 3, "the same key on two reports gives two unlinkable hashes"


def test_only_public_live_reports_can_be_supported(app, api):
    confidential, _ = submitted(api, confidential=True)
    problem(support(api, confidential, KEY_A), 409, "confidential_report")
    archived, _ = submitted(api)
    readmodel.ReadModel(app.extensions["lapor"].engine).handle(
        status_changed(archived, "ARCHIVED", version=2, note="Diarsipkan: Spam atau iklan"))
    problem(support(api, archived, KEY_A), 409, "report_archived")
    problem(support(api, "LPR-000-000-000", KEY_A), 404, "report_not_found")
    problem(support(api, "LPR-000-000-001", KEY_A), 400, "invalid_tracking_id")
    for bad in ("short", "has space inside", "x" * 129, "kunci-ü-unicode"):
        body = problem(support(api, archived, bad), 400, "invalid_client_key")
        assert body["errors"][0]["field"] == "X-Client-Key"
    assert supported_events(app, confidential) == []


def test_supports_arriving_at_once_all_count(app, api):
    tracking_id, _ = submitted(api)
    clients = [f"client-key-{n:04d}" for n in range(16)]
    answers, gate = [], threading.Barrier(len(clients))

    def one(key: str) -> None:
        gate.wait(10)
        client = app.test_client()
        for _ in range(2):  # each client twice: still once
            answers.append(client.post(f"/api/v1/reports/{tracking_id}/support",
                                       headers={"X-Client-Key": key}).status_code)

    threads = [threading.Thread(target=one, args=(key,)) for key in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(answers) == [200] * 16 + [201] * 16
    assert api.get(f"/api/v1/reports/{tracking_id}").get_json()["support_count"] == 16
    assert sorted(supported_events(app, tracking_id)) == list(range(1, 17))


def test_support_is_rate_limited_per_address(database_url):
    app = create_app({"DATABASE_URL": database_url, "AMQP_URL": dead_amqp_url(),
                      "ROUTING_ADDR": f"127.0.0.1:{free_port()}", "ROUTING_TIMEOUT": 1.0,
                      "START_WORKERS": False, **HIGH_LIMITS,
                      "RATE_LIMIT_SUPPORT": "3 per minute"})
    try:
        api = Api(app)
        tracking_id, _ = submitted(api)
        for n in range(3):
            assert support(api, tracking_id, f"client-key-{n:04d}").status_code == 201
        limited = problem(support(api, tracking_id, "client-key-9999"), 429, "rate_limited")
        assert "supports" in limited["detail"]
        assert support(api, tracking_id, "client-key-9999", address="198.51.100.1"
                       ).status_code == 201, "another address has its own allowance"
    finally:
        close(app)


def test_the_count_reaches_routing_and_the_staff_view(platform):
    p = platform
    tracking_id, _ = p.routed(ROAD)
    for key in (KEY_A, KEY_B, KEY_A):
        p.http.post(f"/api/v1/reports/{tracking_id}/support", headers={"X-Client-Key": key})
    wait_for(lambda: p.ticket(tracking_id)["support_count"] == 2, 15,
             what="routing to store the support count")
    inbox = p.get("/tickets", p.officer, query_string={"q": "Muaro"}).get_json()
    (summary,) = [t for t in inbox["tickets"] if t["tracking_id"] == tracking_id]
    assert summary["support_count"] == 2
