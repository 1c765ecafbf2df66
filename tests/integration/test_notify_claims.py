"""A sending thread records an attempt and claims its next delivery in one transaction: the
claim it holds has its own lease (no other worker takes it), and a stopping thread puts it
back instead of leaving it to the lease. SQLite and PostgreSQL, a real SMTP server and
agency endpoint."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from lapor.v1 import events_pb2
from services.infra import db, events
from services.notify import store
from tests.integration import test_notify as base
from tests.integration.helpers import wait_for
from tests.integration.test_notify import (
    attempts_of,
    dispatched,
    registered,
    rows,
    subscribe,
    tracking_id,
)

# test_notify's fixtures: a real SMTP server, an agency receiver, notify replicas.
smtp, agency, start_notify = base.smtp, base.agency, base.start_notify

pytestmark = pytest.mark.integration


def _backlog(start_notify, agency, tickets=3):
    """A notify whose sending threads are stopped, with two due deliveries per ticket."""
    service = start_notify()
    service.worker.stop()  # the test turns the crank itself
    subscribe(service, "PUPR-13.03", agency.url)
    for i in range(tickets):
        tid = tracking_id()
        service.handler(registered(tid, email_address=f"pelapor{i}@example.id"))
        service.handler(dispatched(tid))
    return service


def _row(service, row_id):
    return next(r for r in rows(service, store.deliveries) if r["id"] == row_id)


def _claim_all(worker) -> list:
    """Every delivery a claim can take now, claimed (as other threads or replicas would)."""
    claims = []
    while (claim := worker.claim()) is not None:
        claims.append(claim)
    return claims


def test_recording_an_attempt_claims_the_next_delivery_under_its_own_lease(
        start_notify, agency, smtp):
    service = _backlog(start_notify, agency)
    worker = service.worker
    first = worker.claim()
    held = worker.record(first, worker.attempt(first), claim_next=True)

    assert held is not None and held.id != first.id and held.attempt == 1
    assert _row(service, first.id)["status"] == "delivered"
    assert [a["attempt"] for a in attempts_of(service, first.delivery_id)] == [1]
    row = _row(service, held.id)
    assert row["status"] == "pending" and row["attempts"] == 1
    leased_until = db.as_utc(row["next_attempt_at"])
    assert leased_until > db.utcnow() + worker.settings.lease - timedelta(seconds=5)
    assert attempts_of(service, held.delivery_id) == []  # claimed, not yet tried

    # Any other claim (another thread, another replica) never gets the held delivery.
    taken = [claim.id for claim in _claim_all(worker)]
    assert held.id not in taken and first.id not in taken
    assert len(taken) == 4  # the rest of the six

    # The holder sends it with the attempt number it claimed.
    worker.record(held, worker.attempt(held))
    assert _row(service, held.id)["status"] == "delivered"
    assert [a["attempt"] for a in attempts_of(service, held.delivery_id)] == [1]


def test_a_stopping_thread_puts_back_the_claim_it_holds_uncounted(start_notify, agency, smtp):
    service = _backlog(start_notify, agency)
    worker = service.worker
    assert worker.run_once()  # sends one, holds the next
    held = worker._local.held
    assert held is not None
    worker._put_back_held()
    row = _row(service, held.id)
    assert row["status"] == "pending" and row["attempts"] == 0
    assert db.as_utc(row["next_attempt_at"]) <= db.utcnow()

    while worker.run_once():
        pass
    deliveries = rows(service, store.deliveries)
    assert len(deliveries) == 6
    assert {(d["status"], d["attempts"]) for d in deliveries} == {("delivered", 1)}
    for d in deliveries:
        assert [a["attempt"] for a in attempts_of(service, d["delivery_id"])] == [1]
    assert len(smtp.messages) == 3 and len(agency.delivered()) == 3


def test_a_service_stopped_mid_backlog_leaves_nothing_leased(start_notify, agency, smtp):
    """Stopping the sending threads, whatever each holds at that moment, leaves no delivery
    claimed but unsent: each is delivered, or pending and due with its attempt uncounted."""
    service = _backlog(start_notify, agency, tickets=10)
    service.worker.loops = [type(loop)(loop.name, loop.body, on_exit=loop.on_exit)
                            for loop in service.worker.loops]
    service.worker.start()
    service.worker.stop()
    now = db.utcnow()
    for d in rows(service, store.deliveries):
        tried = len(attempts_of(service, d["delivery_id"]))
        assert d["attempts"] == tried
        if d["status"] == "pending":
            assert tried == 0 and db.as_utc(d["next_attempt_at"]) <= now
        else:
            assert d["status"] == "delivered"


def test_deliveries_made_wake_as_many_sending_threads_not_all_of_them(start_notify, agency,
                                                                      smtp):
    """A woken thread that finds nothing due has spent a claim transaction (on SQLite the
    write lock) for nothing: a ticket's two notices wake two of the four threads."""
    service = start_notify(poll_interval=30.0, workers=4)
    subscribe(service, "PUPR-13.03", agency.url)
    worker = service.worker
    wait_for(lambda: all(loop.status().alive for loop in worker.loops), what="the threads")
    time.sleep(0.3)  # each has looked once at start and found nothing: they wait
    claimed_by: set[int] = set()
    claim = worker.claim

    def counting_claim():
        claimed_by.add(threading.get_ident())
        return claim()

    worker.claim = counting_claim
    tid = tracking_id()
    service.handler(registered(tid))
    service.handler(dispatched(tid))
    wait_for(lambda: [d["status"] for d in rows(service, store.deliveries)]
             == ["delivered", "delivered"], what="both deliveries")
    time.sleep(0.3)
    assert len(worker.loops) == 4
    assert 1 <= len(claimed_by) <= 2


def test_a_thread_that_found_nothing_more_after_a_send_waits_without_looking_again(
        start_notify, agency, smtp):
    """The claim made with a record is the thread's look for more work: when it finds none
    the thread waits for a wake (or its poll) instead of spending another claim transaction
    on an empty look, and a delivery made meanwhile still goes out at once."""
    service = start_notify(poll_interval=30.0, workers=1)
    subscribe(service, "PUPR-13.03", agency.url)
    worker = service.worker
    wait_for(lambda: worker.loops[0].status().alive, what="the sending thread")
    time.sleep(0.3)  # it has looked once at start and found nothing: it waits
    empty_looks = []
    claim_next = worker._claim_next

    def counting(conn, *args):
        found = claim_next(conn, *args)
        if found is None:
            empty_looks.append(time.monotonic())
        return found

    worker._claim_next = counting
    for _ in range(2):
        tid = tracking_id()
        service.handler(registered(tid))
        service.handler(dispatched(tid))
        wait_for(lambda tid=tid: [d["status"] for d in rows(service, store.deliveries)
                                  if d["tracking_id"] == tid] == ["delivered", "delivered"],
                 timeout=5, what="both deliveries well before the 30 s poll")
        time.sleep(0.3)
    # One empty look after each ticket's two sends; the old loop made two.
    assert len(empty_looks) == 2
    assert len(smtp.messages) == 2 and len(agency.delivered()) == 2


@pytest.mark.parametrize(
    ("database_url", "returning"),
    [("sqlite", True), pytest.param("postgres", True, marks=pytest.mark.postgres),
     ("sqlite", False)],
    ids=["sqlite", "postgres", "sqlite-without-returning"], indirect=["database_url"])
def test_a_claim_counts_the_attempt_takes_the_lease_settles_the_channel_and_skips_the_unknown(
        start_notify, agency, smtp, returning):
    """A claim is one UPDATE … RETURNING (SQLite before 3.35: the due row read, then
    claimed). Either way it counts the attempt and takes the lease, sends a reporter's first
    notice on the channel their contact names by then, and puts a notice whose contact has
    not come back to wait without counting an attempt."""
    service = start_notify()
    worker = service.worker
    worker.stop()  # the test turns the crank itself
    worker.claim_returning = returning
    subscribe(service, "PUPR-13.03", agency.url)
    known, unknown, late = tracking_id(), tracking_id(), tracking_id()
    service.handler(registered(known))
    for tid in (known, unknown, late):
        service.handler(dispatched(tid))
    # The contact comes after the event: it wrote by SMS, so it is answered by SMS.
    service.handler(events.new("reporter.registered", late, events_pb2.ReporterRegistered(
        tracking_id=late, name="Budi", phone="081298765432", channel="sms"), "intake"))
    before = db.utcnow()

    claims = _claim_all(worker)

    by_ticket = sorted((c.tracking_id, c.channel) for c in claims)
    assert by_ticket == sorted([(known, "email"), (known, "webhook"), (unknown, "webhook"),
                                (late, "sms"), (late, "webhook")])
    assert all(c.attempt == 1 for c in claims)
    for claim in claims:
        row = _row(service, claim.id)
        assert (row["status"], row["attempts"], row["channel"]) == ("pending", 1, claim.channel)
        assert db.as_utc(row["next_attempt_at"]) > before + worker.settings.lease \
            - timedelta(seconds=5)
    waiting = [r for r in rows(service, store.deliveries, tracking_id=unknown)
               if r["channel"] != "webhook"]
    assert [(r["attempts"], r["last_error"]) for r in waiting] == [(0, "contact not yet known")]
    assert db.as_utc(waiting[0]["next_attempt_at"]) > before
    assert worker.claim() is None  # the rest are claimed or waiting

    # The contact arrives: the waiting notice is due again and claimed with its first attempt.
    service.handler(registered(unknown))
    again = _claim_all(worker)
    assert [(c.tracking_id, c.channel, c.attempt) for c in again] == [(unknown, "email", 1)]
    assert _row(service, again[0].id)["last_error"] is None


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_a_claim_of_its_own_commits_as_it_goes_on_postgresql(start_notify, agency, smtp):
    """A claim made on its own (not with a record) holds no transaction open on PostgreSQL:
    its UPDATE is committed, and seen by everybody, as soon as it has run (the look that
    finds nothing is one round trip, not BEGIN, the UPDATE and COMMIT), and its
    connection goes back to the pool as it came, the driver's autocommit off again."""
    import sqlalchemy as sa

    service = _backlog(start_notify, agency, tickets=1)
    worker = service.worker
    d = store.deliveries
    seen, connections = [], []

    def from_elsewhere(conn, _cursor, statement, _params, _context, _many):
        if statement.lstrip().upper().startswith("UPDATE DELIVERIES"):
            connections.append(conn.connection.dbapi_connection)
            with service.engine.connect() as other:  # another connection, as a replica's
                seen.append(sorted(other.execute(sa.select(d.c.attempts)).scalars()))

    sa.event.listen(service.engine, "after_cursor_execute", from_elsewhere)
    try:
        claims = _claim_all(worker)
    finally:
        sa.event.remove(service.engine, "after_cursor_execute", from_elsewhere)

    assert len(claims) == 2
    # Each claim's UPDATE already visible to the other connection while the claim ran on:
    # the first saw one delivery counted, the second both; the empty look nothing new.
    assert seen[:2] == [[0, 1], [1, 1]] and seen[2:] == [[1, 1]]
    assert connections and not any(c.autocommit for c in connections)
    # The claims behave as before: each counted once and leased.
    assert sorted(r["attempts"] for r in rows(service, store.deliveries)) == [1, 1]


def test_a_record_after_the_lease_was_taken_over_writes_nothing(start_notify, agency, smtp):
    """A worker whose lease ran out while it sent records nothing: no attempt row, no outcome
    event (on PostgreSQL the record, the attempt and the event are one statement whose
    inserts follow the UPDATE's match); the worker that took the delivery over records its
    own attempt, once."""
    import sqlalchemy as sa

    from services.notify.worker import Outcome

    service = _backlog(start_notify, agency, tickets=1)
    worker = service.worker
    stale = worker.claim()
    d = store.deliveries
    with service.engine.begin() as conn:  # its lease runs out
        conn.execute(d.update().where(d.c.id == stale.id).values(
            next_attempt_at=db.utcnow() - timedelta(seconds=1)))
    taken = worker.claim()
    assert (taken.id, taken.attempt) == (stale.id, 2)

    assert worker.record(stale, Outcome("delivered", "250 ok")) is None
    assert attempts_of(service, stale.delivery_id) == []
    assert _row(service, stale.id)["status"] == "pending"

    worker.record(taken, Outcome("delivered", "250 ok"))
    assert [(a["attempt"], a["outcome"]) for a in attempts_of(service, stale.delivery_id)] \
        == [(2, "delivered")]
    assert _row(service, stale.id)["status"] == "delivered"
    with service.engine.connect() as conn:
        events_of_it = conn.execute(sa.select(store.outbox.c.event_type).where(
            store.outbox.c.aggregate_id == stale.tracking_id)).scalars().all()
    assert len([t for t in events_of_it if "delivered" in t]) == 1, events_of_it


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_a_sending_thread_records_in_a_transaction_after_a_claim_of_its_own(
        start_notify, agency, smtp, monkeypatch):
    """On a sending thread's kept connection the claim commits statement by statement, and
    the record that follows on the same connection is a transaction again: its statements
    commit together, so a record that fails part-way leaves no attempt row behind."""
    import types

    import sqlalchemy as sa

    from services.notify import worker as worker_module
    from services.notify.worker import Outcome

    service = _backlog(start_notify, agency, tickets=1)
    worker = service.worker
    worker._local.loop = types.SimpleNamespace(stopping=False)  # as on a sending thread
    try:
        claim = worker.claim()
        with worker._tx.begin() as conn:
            assert conn.connection.dbapi_connection.autocommit is False
        # The record fails after its UPDATE ran: nothing of it stays.
        def record_then_fail(conn, *_args):
            worker_module._RECORD.execute(conn, {
                "b_id": claim.id, "b_attempt": claim.attempt, "b_status": "delivered",
                "b_next": None, "b_now": db.utcnow(), "b_error": None})
            raise sa.exc.OperationalError("INSERT INTO outbox", {}, RuntimeError("gone"))

        monkeypatch.setattr(worker, "_record_in_one", record_then_fail)
        with pytest.raises(sa.exc.OperationalError):
            worker.record(claim, Outcome("delivered", "250 ok"))
        assert _row(service, claim.id)["status"] == "pending"
        assert attempts_of(service, claim.delivery_id) == []
    finally:
        worker._tx.release()
        worker._local.loop = None


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_a_claim_whose_reads_fail_is_undone(start_notify, agency, smtp, monkeypatch):
    """The claim's UPDATE has committed when the contact is settled (read after it on
    SQLite, taken from the claim's own row on PostgreSQL); if that fails the claim is
    undone as a rollback would: the attempt uncounted, the delivery due again, and the next
    claim is attempt 1 (which settles a first notice's channel)."""
    import sqlalchemy as sa

    from services.notify import worker as worker_module

    service = _backlog(start_notify, agency, tickets=1)
    worker = service.worker
    real = worker_module._contact_of

    def failing(conn, row):
        raise sa.exc.OperationalError("SELECT contacts", {}, RuntimeError("gone"))

    monkeypatch.setattr(worker_module, "_contact_of", failing)
    claims = []
    with pytest.raises(sa.exc.OperationalError):
        while True:  # the webhook may come first; the email's claim settles the contact
            claims.append(worker.claim())
    monkeypatch.setattr(worker_module, "_contact_of", real)
    email = next(r for r in rows(service, store.deliveries) if r["channel"] == "email")
    assert email["attempts"] == 0
    assert db.as_utc(email["next_attempt_at"]) <= db.utcnow()
    again = worker.claim()
    assert (again.id, again.attempt, again.channel) == (email["id"], 1, "email")


def test_a_claim_carries_the_reporters_contact_and_the_agencys_own_endpoint_else_the_default(
        start_notify, agency, smtp):
    """What a claim settles with, read by the claim's own statement on PostgreSQL and after
    it on SQLite: each reporter's own contact, an agency's own active endpoint before the
    default, the default for an agency without one (or whose own is switched off)."""
    from lapor.v1 import common_pb2

    service = start_notify()
    service.worker.stop()
    subscribe(service, "*", f"{agency.url}/default")
    subscribe(service, "PUPR-13.03", f"{agency.url}/pupr")
    subscribe(service, "DINSOS-13.03", f"{agency.url}/dinsos")
    with service.engine.begin() as conn:
        store.set_subscription(conn, "DINSOS-13.03", f"{agency.url}/dinsos", "s" * 32,
                               active=False)
    expected = {}
    for i, code in enumerate(("PUPR-13.03", "DISHUB-13.03", "DINSOS-13.03")):
        tid = tracking_id()
        service.handler(registered(tid, email_address=f"pelapor{i}@example.id"))
        service.handler(dispatched(tid, agency=common_pb2.Agency(code=code, name=code)))
        expected[tid] = (f"pelapor{i}@example.id",
                         f"{agency.url}/pupr" if code == "PUPR-13.03" else f"{agency.url}/default")
    claims = _claim_all(service.worker)
    assert len(claims) == 6
    for claim in claims:
        email, url = expected[claim.tracking_id]
        if claim.channel == "email":
            assert (claim.contact.tracking_id, claim.contact.email) == (claim.tracking_id, email)
            assert claim.endpoint is None
        else:
            assert claim.channel == "webhook" and claim.contact is None
            assert claim.endpoint.url == url and claim.endpoint.active
