"""notify's health as Kubernetes sees it: /healthz (liveness) fails for a dead or wedged
sending or claims loop, the claims loop survives what it does not expect, and the whole stop fits
LAPOR_SHUTDOWN_SECONDS even with a send in hand that would take longer."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
import sqlalchemy as sa

from services.infra import db
from services.notify import store
from services.notify.app import NotifyService, Settings
from services.notify.channels import parse_smtp_url
from tests.conftest import free_port
from tests.integration.helpers import wait_for

pytestmark = pytest.mark.integration


def healthz(service: NotifyService) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/healthz",
                                    timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def start(sqlite_url: str, amqp_url: str, **overrides) -> NotifyService:
    options = dict(smtp=parse_smtp_url(f"smtp://127.0.0.1:{free_port()}"), metrics_port=0,
                   poll_interval=0.1, shutdown_seconds=4.0)
    options.update(overrides)
    return NotifyService(Settings(database_url=sqlite_url, amqp_url=amqp_url,
                                  **options)).start()


def test_a_wedged_sending_loop_fails_liveness(sqlite_url, amqp_url):
    service = start(sqlite_url, amqp_url)
    try:
        wait_for(lambda: healthz(service)[0] == 200, 5, what="notify to be alive")
        service.worker.loops[0].extra_stall = lambda: True
        status, body = healthz(service)
        assert status == 503 and body["checks"] == {"loops": False}
    finally:
        service.stop()


def test_the_claims_loop_survives_a_failure_it_did_not_expect(sqlite_url, amqp_url):
    """The claims loop's transaction fails twice (a bug, the database gone for a moment):
    the loop goes on after its backoff, the outcome it held is recorded after all, once,
    and the service stays healthy."""
    service = start(sqlite_url, amqp_url, workers=1)
    calls: list[int] = []
    real = service.worker.record_and_claim

    def flaky(finished, want):
        calls.append(len(finished))
        if finished and calls.count(len(finished)) <= 2:
            raise RuntimeError("a bug, or the database gone for a moment")
        return real(finished, want)

    service.worker.record_and_claim = flaky
    try:
        with service.engine.begin() as conn:  # no endpoint for anyone: it ends skipped
            conn.execute(store.deliveries.insert().values(
                delivery_id="d-1", tracking_id="LPR-X", channel="webhook", audience="agency",
                target="PUPR-13.03", trigger_event_id="e-1", trigger_type="ticket.dispatched",
                payload="{}", status="pending", attempts=0, next_attempt_at=db.utcnow(),
                created_at=db.utcnow(), updated_at=db.utcnow()))
        service.worker.wake()
        wait_for(lambda: _status(service, "d-1") == "skipped", 15,
                 what="the outcome recorded after two failures")
        assert calls.count(1) == 3
        with service.engine.connect() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(
                store.delivery_attempts)).scalar_one() == 1
        assert all(loop.status().alive for loop in service.worker.loops)
        assert healthz(service)[0] == 200
    finally:
        service.stop()


def _status(service, delivery_id: str) -> str:
    d = store.deliveries
    with service.engine.connect() as conn:
        return conn.execute(sa.select(d.c.status).where(
            d.c.delivery_id == delivery_id)).scalar_one()


def test_the_stop_fits_its_budget_with_a_send_in_hand(sqlite_url, amqp_url):
    """A webhook receiver that never answers holds a send for its whole limit (20 s with
    the default 10 s timeout); the stop still ends within the 4 s budget."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    port = silent.getsockname()[1]
    accepted: list[socket.socket] = []
    service = start(sqlite_url, amqp_url, webhook_timeout=10.0)
    try:
        with service.engine.begin() as conn:
            store.set_subscription(conn, "*", f"http://127.0.0.1:{port}/hook", "s" * 32)
            conn.execute(store.deliveries.insert().values(
                delivery_id="d-1", tracking_id="LPR-X", channel="webhook", audience="agency",
                target="PUPR-13.03", trigger_event_id="e-1", trigger_type="ticket.dispatched",
                payload="{}", status="pending", attempts=0, next_attempt_at=db.utcnow(),
                created_at=db.utcnow(), updated_at=db.utcnow()))
        threading.Thread(target=lambda: accepted.append(silent.accept()[0]),
                         daemon=True).start()
        service.worker.wake()
        wait_for(lambda: accepted, 5, what="the send to start")
        began = time.monotonic()
    finally:
        service.stop()
    try:
        assert time.monotonic() - began < 4 + 1
    finally:
        for sock in [*accepted, silent]:
            sock.close()
