"""What intake's database gives away to whoever copies it: no reporter contacts (only notify
keeps them) once the broker has the events, and no working access token in the idempotency
answers kept for retries."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from services.intake.app import create_app
from tests.conftest import free_port
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.integration

REPORTER = {"name": "Rina Marlina", "email": "rina.marlina@contoh.id", "phone": "081234567890"}
REPORT = {
    "kind": "PENGADUAN", "title": "Jalan rusak di Nagari Muaro",
    "body": "Jalan utama berlubang besar dan aspalnya rusak sejak tiga bulan lalu.",
    "region_code": "13.03", "reporter": REPORTER,
}


def dump(engine) -> str:
    """Every value of every table, as text: what a copy of the database shows."""
    out = []
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        out.append(bytes(value).decode("utf-8", "replace"))
                    else:
                        out.append(str(value))
    return "\n".join(out)


@pytest.fixture
def app(database_url, amqp_url):
    app = create_app({"DATABASE_URL": database_url, "AMQP_URL": amqp_url,
                      "ROUTING_ADDR": f"127.0.0.1:{free_port()}", "ROUTING_TIMEOUT": 1.0,
                      "START_WORKERS": True})
    yield app
    ctx = app.extensions["lapor"]
    ctx.stop_workers(2)
    ctx.engine.dispose()


def test_once_the_broker_has_the_events_intake_keeps_no_contact(app):
    client = app.test_client()
    response = client.post("/api/v1/reports", json=REPORT)
    assert response.status_code == 201
    answer = response.get_json()
    ctx = app.extensions["lapor"]
    wait_for(lambda: ctx.outbox.backlog()[0] == 0, 15, what="the outbox to be confirmed")

    copy = dump(ctx.engine)
    assert answer["tracking_id"] in copy
    for value in (REPORTER["name"], REPORTER["email"], "81234567890"):
        assert value not in copy, f"{value!r} is still in intake's database"
    assert answer["access_token"] not in copy

    own = client.get(f"/api/v1/reports/{answer['tracking_id']}",
                     headers={"Authorization": f"Bearer {answer['access_token']}"}).get_json()
    assert own["reporter"] == {"language": "id"}
    assert REPORTER["email"] not in str(own)


def test_a_copy_of_the_idempotency_answers_yields_no_token(app):
    client = app.test_client()
    key = str(uuid.uuid4())
    first = client.post("/api/v1/reports", json=REPORT, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    token = first.get_json()["access_token"]

    copy = dump(app.extensions["lapor"].engine)
    assert token not in copy
    assert key not in copy, "the key itself is not stored either"

    again = client.post("/api/v1/reports", json=REPORT, headers={"Idempotency-Key": key})
    assert again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json() == first.get_json(), "the retry gets the first answer, token too"

    other = dict(REPORT, title="Lampu jalan mati di Muaro")
    reused = client.post("/api/v1/reports", json=other, headers={"Idempotency-Key": key})
    assert reused.status_code == 422
    assert reused.get_json()["code"] == "idempotency_key_reused"
