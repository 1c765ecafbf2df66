"""The claims loop records a round of outcomes and claims the next round in one transaction:
the claims it holds have their own lease (no other worker takes them), and a stopping worker
puts back those no thread has started instead of leaving them to the lease. SQLite and
PostgreSQL, a real SMTP server and agency endpoint."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import sqlalchemy as sa

from lapor.v1 import events_pb2
from services.infra import db, events
from services.notify import store
from services.notify import worker as worker_module
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
    """A notify whose sending threads and outbox relay are stopped, with two due deliveries
    per ticket."""
    service = start_notify()
    service.worker.stop()  # the test turns the crank itself
    _keep_announcements(service)
    subscribe(service, "PUPR-13.03", agency.url)
    for i in range(tickets):
        tid = tracking_id()
        service.handler(registered(tid, email_address=f"pelapor{i}@example.id"))
        service.handler(dispatched(tid))
    return service


def _keep_announcements(service) -> None:
    """Stops notify's outbox relay: the outbox table then holds every outcome event a round
    wrote. A running relay deletes each once the broker confirms it (decision 96), within
    its gathering window of the round."""
    service.outbox.stop(flush_timeout=0)


def _row(service, row_id):
    return next(r for r in rows(service, store.deliveries) if r["id"] == row_id)


def _claim_all(worker) -> list:
    """Every delivery a claim can take now, claimed (as other threads or replicas would)."""
    claims = []
    while (claim := worker.claim()) is not None:
        claims.append(claim)
    return claims


def _transactions(engine) -> list[str]:
    """The engine's transactions' ends from now on, "commit" or "rollback", in order."""
    ends: list[str] = []
    sa.event.listen(engine, "commit", lambda _conn: ends.append("commit"))
    sa.event.listen(engine, "rollback", lambda _conn: ends.append("rollback"))
    return ends


def test_a_round_of_outcomes_is_recorded_and_the_next_round_claimed_in_one_transaction(
        start_notify, agency, smtp):
    service = _backlog(start_notify, agency)
    worker = service.worker
    first = worker.claim_many(2)
    assert len(first) == 2
    sent = [(claim, worker.attempt(claim)) for claim in first]
    ends = _transactions(service.engine)
    held = worker.record_and_claim(sent, 3)

    assert ends == ["commit"]  # one transaction, not redone record by record
    for claim in first:
        assert _row(service, claim.id)["status"] == "delivered"
        assert [a["attempt"] for a in attempts_of(service, claim.delivery_id)] == [1]
    assert len(held) == 3 and not {c.id for c in held} & {c.id for c in first}
    for claim in held:
        row = _row(service, claim.id)
        assert row["status"] == "pending" and row["attempts"] == 1 and claim.attempt == 1
        leased_until = db.as_utc(row["next_attempt_at"])
        assert leased_until > db.utcnow() + worker.settings.lease - timedelta(seconds=5)
        assert attempts_of(service, claim.delivery_id) == []  # claimed, not yet tried

    # Any other claim (another thread, another replica) never gets a held delivery.
    taken = [claim.id for claim in _claim_all(worker)]
    assert len(taken) == 1 and not set(taken) & {c.id for c in held + first}

    # The holders send them with the attempt numbers they claimed.
    worker.record_and_claim([(claim, worker.attempt(claim)) for claim in held], 0)
    for claim in held:
        assert _row(service, claim.id)["status"] == "delivered"
        assert [a["attempt"] for a in attempts_of(service, claim.delivery_id)] == [1]
    with service.engine.connect() as conn:
        announced = conn.execute(sa.select(store.outbox.c.aggregate_id)).scalars().all()
    # One outcome event each, written with its record.
    assert sorted(announced) == sorted(c.tracking_id for c in first + held)


def test_a_round_with_a_lease_taken_over_records_the_rest_and_nothing_of_that_one(
        start_notify, agency, smtp):
    """One delivery of a round was taken over by another worker while it was sent (its lease
    ran out): the round's other records are written, that one's attempt, outcome event and
    status are left to the worker that holds it now."""
    from services.notify.worker import Outcome

    service = _backlog(start_notify, agency, tickets=2)
    worker = service.worker
    stale, fresh = worker.claim_many(2)
    d = store.deliveries
    with service.engine.begin() as conn:  # stale's lease runs out
        conn.execute(d.update().where(d.c.id == stale.id).values(
            next_attempt_at=db.utcnow() - timedelta(seconds=1)))
    taken = worker.claim()
    assert (taken.id, taken.attempt) == (stale.id, 2)

    ends = _transactions(service.engine)
    assert worker.record_and_claim([(stale, Outcome("delivered", "250 ok")),
                                    (fresh, Outcome("delivered", "250 ok"))], 0) == []
    assert ends == ["rollback", "commit"]  # the round, then each record on its own
    assert attempts_of(service, stale.delivery_id) == []
    assert _row(service, stale.id)["status"] == "pending"
    assert [a["attempt"] for a in attempts_of(service, fresh.delivery_id)] == [1]
    assert _row(service, fresh.id)["status"] == "delivered"
    with service.engine.connect() as conn:
        events_of = conn.execute(sa.select(store.outbox.c.aggregate_id)).scalars().all()
    assert events_of == [fresh.tracking_id]


def test_a_round_of_mixed_outcomes_records_each_as_its_own(start_notify, agency, smtp):
    """A round holding a delivery, a retry and a failure for good is recorded as each would
    be alone: the delivered one without an error or a next time, the retry pending with
    its error and the next attempt's time from the retry delays, the failure with its
    error and no next time; each attempt logged under its number."""
    from services.notify.worker import Outcome

    service = _backlog(start_notify, agency, tickets=2)
    worker = service.worker
    delivered, retried, failed = worker.claim_many(3)
    before = db.utcnow()
    worker.record_and_claim([(delivered, Outcome("delivered", "250 ok")),
                             (retried, Outcome("retry", "421 try again later")),
                             (failed, Outcome("failed", "550 no such mailbox"))], 0)
    # The delivery and the failure announced, in that order; the retry not (yet).
    announced = [events.payload(events_pb2.EventEnvelope.FromString(r["body"]))
                 for r in rows(service, store.outbox)
                 if r["event_type"].startswith("notification.")]
    assert [(o.delivery_id, o.outcome) for o in announced] == [
        (delivered.delivery_id, "delivered"), (failed.delivery_id, "failed")]

    row = _row(service, delivered.id)
    assert (row["status"], row["last_error"], row["next_attempt_at"]) == (
        "delivered", None, None)
    row = _row(service, retried.id)
    assert (row["status"], row["attempts"], row["last_error"]) == (
        "pending", 1, "421 try again later")
    first_delay = timedelta(seconds=worker.settings.retry_delays[0])
    assert before + first_delay - timedelta(seconds=5) <= db.as_utc(row["next_attempt_at"]) \
        <= db.utcnow() + first_delay + timedelta(seconds=5)
    row = _row(service, failed.id)
    assert (row["status"], row["last_error"], row["next_attempt_at"]) == (
        "failed", "550 no such mailbox", None)
    for claim, outcome in ((delivered, "delivered"), (retried, "retry"), (failed, "failed")):
        assert [(a["attempt"], a["outcome"]) for a in attempts_of(
            service, claim.delivery_id)] == [(1, outcome)]


def test_a_round_of_retries_alone_announces_nothing(start_notify, agency, smtp):
    from services.notify.worker import Outcome

    service = _backlog(start_notify, agency, tickets=1)
    worker = service.worker
    claims = worker.claim_many(2)
    worker.record_and_claim([(claim, Outcome("retry", "451 busy")) for claim in claims], 0)
    for claim in claims:
        row = _row(service, claim.id)
        assert (row["status"], row["attempts"], row["last_error"]) == ("pending", 1, "451 busy")
        assert [a["outcome"] for a in attempts_of(service, claim.delivery_id)] == ["retry"]
    assert not [r for r in rows(service, store.outbox)
                if r["event_type"].startswith("notification.")]


def _gated(worker):
    """Makes the worker's sends wait for the returned event (at most 10 s); the list counts
    the sends that have started."""
    gate, started = threading.Event(), []
    for name in ("send_webhook", "send_email"):
        real = getattr(worker, name)

        def held_back(*args, real=real, **kwargs):
            started.append(1)
            gate.wait(10)
            return real(*args, **kwargs)

        setattr(worker, name, held_back)
    return gate, started


def _restartable(worker) -> None:
    """New loops for a worker whose loops were stopped (a loop starts once)."""
    worker.claims_loop = type(worker.claims_loop)(
        "notify-claims", worker._claims_iteration, on_exit=worker._claims_exit)
    worker.senders = [type(loop)(loop.name, loop.body, on_exit=loop.on_exit)
                      for loop in worker.senders]


def test_a_stopping_worker_finishes_its_sends_and_puts_back_the_claims_waiting(
        start_notify, agency, smtp):
    """Each sending thread has a claim in hand, and claims wait for them to finish. A stop
    lets the sends in hand finish and records them; the claims still waiting go back due
    now, their attempt uncounted, and are sent later with attempt 1."""
    service = _backlog(start_notify, agency, tickets=10)
    worker = service.worker
    _restartable(worker)
    gate, started = _gated(worker)
    worker.start()
    threads = len(worker.senders)
    wait_for(lambda: len(started) == threads, what="every thread to hold a send")
    time.sleep(0.2)
    claimed = sum(r["attempts"] for r in rows(service, store.deliveries))
    assert threads < claimed <= 2 * threads  # some wait for a thread to take them
    threading.Timer(0.3, gate.set).start()  # the sends in hand finish while stop waits
    assert worker.stop(timeout=10)

    deliveries = rows(service, store.deliveries)
    delivered = [d for d in deliveries if d["status"] == "delivered"]
    assert len(delivered) == threads
    now = db.utcnow()
    for d in deliveries:
        tried = attempts_of(service, d["delivery_id"])
        if d["status"] == "delivered":
            assert [a["attempt"] for a in tried] == [1]
        else:
            assert (d["status"], d["attempts"], tried) == ("pending", 0, [])
            assert db.as_utc(d["next_attempt_at"]) <= now

    while worker.run_once():
        pass
    deliveries = rows(service, store.deliveries)
    assert {(d["status"], d["attempts"]) for d in deliveries} == {("delivered", 1)}
    assert len(smtp.messages) == 10 and len(agency.delivered()) == 10


def test_a_service_stopped_mid_backlog_leaves_nothing_leased(start_notify, agency, smtp):
    """Stopping the worker, whatever each thread holds at that moment, leaves no delivery
    claimed but unsent: each is delivered, or pending and due with its attempt uncounted."""
    service = _backlog(start_notify, agency, tickets=10)
    _restartable(service.worker)
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


def _counting_looks(worker) -> list[int]:
    """Counts the claim statements the worker runs from now on, each by what it found."""
    looks: list[int] = []
    claim_next = worker._claim_next

    def counting(conn, limit, *args):
        found = claim_next(conn, limit, *args)
        looks.append(len(found[0]))
        return found

    worker._claim_next = counting
    return looks


def test_a_tickets_notices_are_claimed_in_one_look_and_recorded_in_one_round(
        start_notify, agency, smtp, monkeypatch):
    """New deliveries cost one look for all the waiting threads, not one per thread, and
    their outcomes go in together."""
    # Outcomes finished within the record window go in one round; on a busy machine the
    # email and the webhook can finish more than the 10 ms apart, so the window is wide.
    monkeypatch.setattr(worker_module, "RECORD_WINDOW_S", 1.0)
    service = start_notify(poll_interval=30.0, workers=4)
    subscribe(service, "PUPR-13.03", agency.url)
    worker = service.worker
    wait_for(lambda: all(loop.status().alive for loop in worker.loops), what="the threads")
    time.sleep(0.3)  # each has looked once at start and found nothing: they wait
    looks = _counting_looks(worker)
    rounds: list[int] = []
    record_round = worker._record_round

    def counting_rounds(conn, finished, now):
        rounds.append(len(finished))
        return record_round(conn, finished, now)

    worker._record_round = counting_rounds
    tid = tracking_id()
    service.handler(registered(tid))
    service.handler(dispatched(tid))
    wait_for(lambda: [d["status"] for d in rows(service, store.deliveries)]
             == ["delivered", "delivered"], what="both deliveries")
    time.sleep(0.3)
    assert looks[0] == 2 and looks[1:] == [0] * (len(looks) - 1) and len(looks) <= 2
    assert rounds == [2]
    assert len(smtp.messages) == 1 and len(agency.delivered()) == 1


def test_an_idle_worker_makes_no_look_until_woken_and_then_sends_at_once(
        start_notify, agency, smtp):
    """With nothing due the claims loop waits for a wake (or its poll) instead of looking
    again and again, and a delivery made meanwhile still goes out at once."""
    service = start_notify(poll_interval=30.0, workers=1)
    subscribe(service, "PUPR-13.03", agency.url)
    worker = service.worker
    wait_for(lambda: worker.claims_loop.status().alive, what="the claims loop")
    time.sleep(0.3)  # it has looked once at start and found nothing: it waits
    looks = _counting_looks(worker)
    for _ in range(2):
        tid = tracking_id()
        service.handler(registered(tid))
        service.handler(dispatched(tid))
        wait_for(lambda tid=tid: [d["status"] for d in rows(service, store.deliveries)
                                  if d["tracking_id"] == tid] == ["delivered", "delivered"],
                 timeout=5, what="both deliveries well before the 30 s poll")
        time.sleep(0.3)
        before = len(looks)
        time.sleep(1.0)
        assert len(looks) == before  # idle: not a statement
    assert sum(looks) == 4 and looks.count(0) <= 4
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
        if statement.lstrip().upper().startswith(("UPDATE DELIVERIES", "WITH CLAIMED AS")):
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


def test_the_claim_finds_due_deliveries_in_the_index_of_pending_ones(start_notify, agency,
                                                                     smtp):
    """The claim looks for due deliveries in the index that holds only pending ones, in the
    claim's order, also in the generic plan PostgreSQL keeps for a statement prepared on a
    kept connection (where a status given as a value could not use that index), while the
    deliveries already made stay out of it."""
    service = _backlog(start_notify, agency, tickets=2)
    _claim_all(service.worker)  # claimed: still pending, no longer due
    with service.engine.begin() as conn:
        done = conn.execute(store.deliveries.update().where(
            store.deliveries.c.id == sa.select(sa.func.min(store.deliveries.c.id))
            .scalar_subquery()).values(status="delivered")).rowcount
        due = worker_module._DUE_ID.compile(dialect=conn.dialect)
        if db.is_postgres(conn):
            text = str(due).replace("%(now)s", "$1").replace("%(b_limit)s", "$2")
            conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
            conn.exec_driver_sql(f"PREPARE due_claim(timestamptz, integer) AS {text}")
            plan = "\n".join(conn.exec_driver_sql(
                "EXPLAIN EXECUTE due_claim(now(), 8)").scalars())
            conn.exec_driver_sql("DEALLOCATE due_claim")
            # What the index holds, read from the index itself (a table scan is the
            # cheaper plan for so few rows).
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            count = ("SELECT count(*) FROM deliveries WHERE status = 'pending' "
                     "AND next_attempt_at IS NOT NULL")
            assert "ix_deliveries_pending" in "\n".join(
                conn.exec_driver_sql(f"EXPLAIN {count}").scalars())
            in_index = conn.exec_driver_sql(count).scalar_one()
        else:
            plan = "\n".join(row[-1] for row in conn.exec_driver_sql(
                f"EXPLAIN QUERY PLAN {due}", (db.utcnow().isoformat(), 8, 0)))
            in_index = conn.exec_driver_sql(
                "SELECT count(*) FROM deliveries INDEXED BY ix_deliveries_pending "
                "WHERE status = 'pending' AND next_attempt_at IS NOT NULL").scalar_one()
    assert done == 1
    assert "ix_deliveries_pending" in plan
    assert "Sort" not in plan and "TEMP B-TREE" not in plan  # the index's order is the claim's
    assert in_index == 3


def test_a_reporters_notices_about_one_report_go_out_in_the_order_of_their_events(
        start_notify, agency, smtp):
    """Four threads are free, but a report's second and third notice to its reporter wait
    for the one before to be sent, even when that one is slow: the reporter reads "followed
    up" before "closed"."""
    from lapor.v1 import common_pb2
    from tests.integration.test_duplicates import changed

    service = _backlog(start_notify, agency, tickets=3)  # three reports, dispatched
    worker = service.worker
    tids = sorted({d["tracking_id"] for d in rows(service, store.deliveries)})
    for tid in tids:
        service.handler(changed(tid, "follow_up", common_pb2.TICKET_STATE_FOLLOWED_UP, 4,
                                public_note="Ditindaklanjuti"))
        service.handler(changed(tid, "close", common_pb2.TICKET_STATE_CLOSED, 5,
                                public_note="Selesai"))
    real_email = worker.send_email

    def slow_first_email(settings, mail, *args, **kwargs):
        if b"Ditindaklanjuti" not in mail.data and b"Selesai" not in mail.data:
            time.sleep(0.3)  # the dispatch notice is slow to send
        return real_email(settings, mail, *args, **kwargs)

    worker.send_email = slow_first_email
    _restartable(worker)
    worker.start()
    try:
        wait_for(lambda: len(smtp.messages) == 9, what="every notice")
    finally:
        worker.stop()
    for tid in tids:
        subjects = [message["Subject"] for _, message in smtp.messages
                    if tid in message["Subject"]]
        assert len(subjects) == 3
        assert [next((word for word in ("ditindaklanjuti", "selesai")
                      if word in subject.lower()), "dispatched") for subject in subjects] \
            == ["dispatched", "ditindaklanjuti", "selesai"], subjects


def test_a_claim_that_waited_longer_than_a_send_goes_back_instead_of_out(
        start_notify, agency, smtp):
    """A claim waits for a thread to finish the send in its hand; one that has waited longer
    than a whole send (the thread's send was that slow) would leave its lease too short for
    its own, so it goes back uncounted and is claimed afresh. Every notice is still sent
    once, as attempt 1."""
    service = start_notify(workers=1, webhook_timeout=0.25, smtp_timeout=0.25,
                           gateway_timeout=0.25)
    worker = service.worker
    assert worker.settings.send_limit == 0.5
    worker.stop()
    subscribe(service, "PUPR-13.03", agency.url)
    for i in range(2):
        tid = tracking_id()
        service.handler(registered(tid, email_address=f"pelapor{i}@example.id"))
        service.handler(dispatched(tid))
    real_webhook = worker.send_webhook
    slowed: list[int] = []

    def slow_once(*args, **kwargs):
        if not slowed:
            slowed.append(1)
            time.sleep(0.7)  # within its own limit, longer than the next claim may wait
        return real_webhook(*args, **kwargs)

    put_back: list[int] = []
    real_put_back = worker.put_back

    def counting(claims):
        put_back.extend(claim.id for claim in claims)
        return real_put_back(claims)

    worker.send_webhook, worker.put_back = slow_once, counting
    _restartable(worker)
    worker.start()
    try:
        wait_for(lambda: len(smtp.messages) == 2 and len(agency.delivered()) == 2,
                 what="every notice")
        wait_for(lambda: {d["status"] for d in rows(service, store.deliveries)}
                 == {"delivered"}, what="every record")
    finally:
        worker.stop()
    assert put_back
    for d in rows(service, store.deliveries):
        assert d["attempts"] == 1
        assert [a["attempt"] for a in attempts_of(service, d["delivery_id"])] == [1]


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_a_record_blocked_by_another_sessions_lock_is_recorded_once_the_lock_goes(
        start_notify, agency, smtp):
    """Another session holds the delivery log locked (a migration, a hand-run statement):
    the sends go out, the claims loop's record waits out its lock timeout, fails, backs
    off and tries again, keeping the outcomes in hand; once the lock goes every delivery is
    recorded once, as sent once, and the loop is healthy again."""
    import psycopg

    service = start_notify(workers=2)
    worker = service.worker
    worker.stop()
    _keep_announcements(service)
    subscribe(service, "PUPR-13.03", agency.url)
    tid = tracking_id()
    service.handler(registered(tid))
    service.handler(dispatched(tid))  # two deliveries: one claim holds both
    url = service.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as blocker:
        blocker.execute("LOCK TABLE delivery_attempts IN EXCLUSIVE MODE")
        _restartable(worker)
        worker.start()
        wait_for(lambda: len(smtp.messages) == 1 and len(agency.delivered()) == 1,
                 what="the sends, which need no lock")
        wait_for(lambda: worker.claims_loop.status().failures >= 1, timeout=15,
                 what="the record to give up on the lock")
        assert {d["status"] for d in rows(service, store.deliveries)} == {"pending"}
        blocker.rollback()
    wait_for(lambda: {d["status"] for d in rows(service, store.deliveries)} == {"delivered"},
             timeout=40, what="the records once the lock is gone")
    for d in rows(service, store.deliveries):
        assert d["attempts"] == 1
        assert [a["attempt"] for a in attempts_of(service, d["delivery_id"])] == [1]
    with service.engine.connect() as conn:
        announced = conn.execute(sa.select(store.outbox.c.aggregate_id)).scalars().all()
    assert announced == [tid, tid]
    assert len(smtp.messages) == 1 and len(agency.delivered()) == 1
    wait_for(lambda: worker.claims_loop.status().failures == 0, what="the loop to recover")
    assert all(loop.status().healthy for loop in worker.loops)
    worker.stop()
