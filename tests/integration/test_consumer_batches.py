"""Consumers handle the events already in hand in one transaction (db.batch), on a real
RabbitMQ and on SQLite and PostgreSQL: every event's effect is written exactly once, a bad
event in a burst is parked alone while the rest go through, and nothing a failed batch did
stays behind."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid

import pytest
import sqlalchemy as sa

from lapor.v1 import common_pb2, events_pb2
from services.infra import db, events, logs, messaging
from tests.integration.helpers import (
    close_connections,
    declare,
    metric,
    queue_depth,
    take_messages,
    ticket_dispatched,
    wait_for,
)

pytestmark = pytest.mark.integration

EVENT = "ticket.dispatched"
CONSUMER = "batch-test"
BAD_AGENCY = "TOLAK"
log = logging.getLogger("tests.batch_ledger")


@pytest.fixture
def spec(amqp_url):
    queue = messaging.QueueSpec(f"test.{uuid.uuid4().hex[:8]}", (EVENT,),
                                retry_delays_ms=(100,))
    declare(amqp_url, queue)
    return queue


class Ledger:
    """A handler the way the services write theirs: `with db.begin(engine)`, the event id
    recorded for dedupe, one row per event written, a wake-up asked for after the commit."""

    def __init__(self, engine):
        self.engine = engine
        meta = sa.MetaData()
        db.processed_events_table(meta)
        # No unique key: a row written twice would show as two.
        self.rows = sa.Table("effects", meta,
                             sa.Column("id", db.BigId, primary_key=True, autoincrement=True),
                             sa.Column("tracking_id", sa.String(40), nullable=False))
        meta.create_all(engine)
        self.wakes = 0
        self.lock = threading.Lock()

    def wake(self) -> None:
        with self.lock:
            self.wakes += 1

    def __call__(self, envelope: events_pb2.EventEnvelope) -> str:
        message = events.payload(envelope)
        with db.begin(self.engine) as conn:
            if not db.first_delivery(conn, CONSUMER, envelope.event_id):
                return "duplicate"
            conn.execute(self.rows.insert().values(tracking_id=message.tracking_id))
            if message.agency.code == BAD_AGENCY:
                raise events.BadEvent("this agency refuses every event")
        db.after_commit(self.engine, self.wake)
        db.log_after_commit(self.engine, log, "effect written")
        return "processed"

    def written(self) -> list[str]:
        with db.reading(self.engine) as conn:
            return list(conn.execute(sa.select(self.rows.c.tracking_id)).scalars())


class Lines(logging.Handler):
    """The ledger's log lines as the services write them (JSON, with the bound context)."""

    def __init__(self):
        super().__init__()
        self.setFormatter(logs.JsonFormatter("test"))
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def lines():
    handler = Lines()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    yield handler.lines
    log.removeHandler(handler)


@pytest.fixture
def ledger(database_url):
    engine = db.make_engine(database_url)
    yield Ledger(engine)
    engine.dispose()


def _publish_all(amqp_url: str, envelopes) -> None:
    publisher = messaging.Publisher(amqp_url, "test-publisher")
    try:
        for envelope in envelopes:
            publisher.publish(envelope.type, envelope.SerializeToString(), envelope.event_id)
    finally:
        publisher.close()


def _consume(amqp_url, spec, ledger, handler=None, **kwargs) -> messaging.Consumer:
    """A consumer batching into the ledger's database; `handler` (default the ledger)."""
    consumer = messaging.Consumer(amqp_url, spec, handler or ledger,
                                  consumer=f"test-{uuid.uuid4().hex[:8]}",
                                  batch=lambda: db.batch(ledger.engine), **kwargs)
    consumer.start()
    wait_for(consumer.consuming.is_set, 10, what="the consumer to start consuming")
    return consumer


class Held:
    """The ledger's handler, except that the first event `holds` picks waits in the handler
    until `gate` is set (a database lock, a peer that never answers), then is written, or
    raises when `fail_after`."""

    def __init__(self, ledger, holds, fail_after: bool = False):
        self.ledger = ledger
        self.holds = holds
        self.fail_after = fail_after
        self.gate = threading.Event()
        self.entered = threading.Event()

    def __call__(self, envelope):
        if not self.entered.is_set() and self.holds(envelope):
            self.entered.set()
            self.gate.wait(30)
            if self.fail_after:
                raise RuntimeError("released only when the test ends")
        return self.ledger(envelope)


def _batches(consumer) -> tuple[float, float]:
    """(transactions, events handled in them) from the consumer's batch-size histogram."""
    return (metric("lapor_consumer_batch_size_count", consumer=consumer.consumer),
            metric("lapor_consumer_batch_size_sum", consumer=consumer.consumer))


def _each_written_once(amqp_url, spec, ledger, consumer, sent, timeout: float) -> float:
    """Waits for the `sent` events written and none left in the queue, stops the consumer,
    checks each was written and counted once; the transactions they took."""
    try:
        wait_for(lambda: len(ledger.written()) >= len(sent)
                 and queue_depth(amqp_url, spec.name) == 0,
                 timeout, what=f"{len(sent)} events to be written and acked")
        transactions, handled = _batches(consumer)
    finally:
        consumer.stop(timeout=10)
    assert sorted(ledger.written()) == sorted(e.aggregate_id for e in sent)
    assert handled == len(sent)
    assert metric("lapor_events_consumed_total", consumer=consumer.consumer, type=EVENT,
                  outcome="processed") == len(sent)
    return transactions


def test_a_backlog_is_handled_in_few_transactions_each_event_exactly_once(
        amqp_url, spec, ledger):
    sent = [ticket_dispatched(f"LPR-B{i:09d}") for i in range(120)]
    _publish_all(amqp_url, sent)

    consumer = _consume(amqp_url, spec, ledger, batch_max=16, prefetch=32)
    transactions = _each_written_once(amqp_url, spec, ledger, consumer, sent, 30)
    # A backlog goes in batches of up to 16: far fewer transactions than events.
    assert transactions <= 40, transactions
    # One wake-up per committed batch that wrote something, not one per event.
    assert 1 <= ledger.wakes <= transactions
    assert queue_depth(amqp_url, spec.parking_queue) == 0


def test_a_bad_event_in_a_burst_is_parked_alone_and_the_rest_written_once(
        amqp_url, spec, ledger):
    bad_agency = common_pb2.Agency(code=BAD_AGENCY, name="Instansi yang menolak", level="regency")
    sent = [ticket_dispatched(f"LPR-C{i:09d}") for i in range(40)]
    bad = ticket_dispatched("LPR-CBAD000001", agency=bad_agency)
    sent.insert(17, bad)
    _publish_all(amqp_url, sent)

    consumer = _consume(amqp_url, spec, ledger, batch_max=16, prefetch=32)
    try:
        wait_for(lambda: queue_depth(amqp_url, spec.parking_queue) == 1
                 and queue_depth(amqp_url, spec.name) == 0 and len(ledger.written()) >= 40,
                 30, what="the good events handled and the bad one parked")
    finally:
        consumer.stop(timeout=10)

    good = sorted(e.aggregate_id for e in sent if e is not bad)
    # The failed batch was rolled back, so its good events are written once, not twice, and
    # the bad one's row is not written at all.
    assert sorted(ledger.written()) == good
    parked = take_messages(amqp_url, spec.parking_queue)
    assert [events.decode(body).event_id for _props, body in parked] == [bad.event_id]
    assert metric("lapor_events_consumed_total", consumer=consumer.consumer, type=EVENT,
                  outcome="parked") == 1
    assert metric("lapor_events_consumed_total", consumer=consumer.consumer, type=EVENT,
                  outcome="processed") == 40


def test_a_redelivered_event_inside_a_batch_is_a_duplicate_and_writes_nothing(
        amqp_url, spec, ledger):
    first = ticket_dispatched("LPR-D000000001")
    again = events_pb2.EventEnvelope()
    again.CopyFrom(first)
    sent = [ticket_dispatched(f"LPR-D{i:09d}") for i in range(2, 12)]
    _publish_all(amqp_url, [first, *sent[:5], again, *sent[5:]])

    consumer = _consume(amqp_url, spec, ledger, batch_max=16, prefetch=32)
    try:
        wait_for(lambda: queue_depth(amqp_url, spec.name) == 0 and len(ledger.written()) >= 11,
                 30, what="the events to be handled")
    finally:
        consumer.stop(timeout=10)
    assert sorted(ledger.written()) == sorted([first.aggregate_id]
                                              + [e.aggregate_id for e in sent])
    assert metric("lapor_events_consumed_total", consumer=consumer.consumer, type=EVENT,
                  outcome="duplicate") == 1


def test_a_connection_lost_while_a_batch_is_in_hand_loses_and_strands_nothing(
        amqp_url, spec, ledger):
    """The broker drops the connection while the handler is inside a batch: the consumer
    reconnects and takes the redelivered events on the new connection, while the old
    handler thread finishes its batch (its acks have nowhere to go). Every event is
    written once and every one is acked in the end: nothing is left in the queue."""
    held = Held(ledger, lambda _envelope: True)
    sent = [ticket_dispatched(f"LPR-G{i:09d}") for i in range(40)]
    _publish_all(amqp_url, sent)
    consumer = _consume(amqp_url, spec, ledger, held, batch_max=4, prefetch=8)
    try:
        wait_for(held.entered.is_set, 10, what="the first batch to be in hand")
        assert close_connections(amqp_url, f"{consumer.consumer}-consumer")
        wait_for(lambda: not consumer.consuming.is_set(), 5, what="the drop to be noticed")
        wait_for(consumer.consuming.is_set, 10, what="the consumer to reconnect")
        held.gate.set()
        wait_for(lambda: len(ledger.written()) >= 40 and queue_depth(amqp_url, spec.name) == 0,
                 30, what="every event written and acked")
    finally:
        held.gate.set()
        consumer.stop(timeout=10)
    assert sorted(ledger.written()) == sorted(e.aggregate_id for e in sent)
    assert queue_depth(amqp_url, spec.name) == 0
    assert queue_depth(amqp_url, spec.parking_queue) == 0


def test_a_handler_that_never_returns_inside_a_batch_shows_in_health_and_loses_nothing(
        amqp_url, spec, ledger):
    """One handler in a batch hangs (a database lock, a peer that never answers): the
    consumer reports itself unhealthy once the handler has run past its limit, so the
    supervisor's health check sees it; when the handler returns, the batch commits and
    every event is written once."""
    held = Held(ledger, lambda envelope: envelope.aggregate_id == "LPR-H000000002")
    sent = [ticket_dispatched(f"LPR-H{i:09d}") for i in range(12)]
    _publish_all(amqp_url, sent)
    consumer = _consume(amqp_url, spec, ledger, held, batch_max=8, prefetch=16,
                        handler_timeout=1.0)
    try:
        wait_for(held.entered.is_set, 10, what="the hanging handler to be entered")
        assert consumer.healthy(), "unhealthy before the handler ran past its limit"
        wait_for(lambda: not consumer.healthy(), 5, what="the wedged handler to show")
        assert consumer.loop.status().stalled
        # Nothing from the hanging event on is written while it hangs (its batch is not
        # committed, and the events behind it wait for the handler thread).
        assert set(ledger.written()) <= {"LPR-H000000000", "LPR-H000000001"}
        held.gate.set()
        wait_for(lambda: len(ledger.written()) >= 12 and queue_depth(amqp_url, spec.name) == 0,
                 30, what="every event written and acked")
        wait_for(consumer.healthy, 5, what="the consumer to be healthy again")
    finally:
        held.gate.set()
        consumer.stop(timeout=10)
    assert sorted(ledger.written()) == sorted(e.aggregate_id for e in sent)
    assert queue_depth(amqp_url, spec.parking_queue) == 0


def test_a_handler_still_hanging_from_a_dropped_connection_stays_visible_in_health(
        amqp_url, spec, ledger):
    """The first connection's handler hangs and the broker drops that connection; the
    event is redelivered on the next connection with the same delivery tag and handled
    there at once. The old handler is still stuck, and the consumer must still say so."""
    held = Held(ledger, lambda _envelope: True, fail_after=True)
    sent = ticket_dispatched("LPR-J000000001")
    _publish_all(amqp_url, [sent])
    consumer = _consume(amqp_url, spec, ledger, held, handler_timeout=1.0)
    try:
        wait_for(held.entered.is_set, 10, what="the first handler to hang")
        assert close_connections(amqp_url, f"{consumer.consumer}-consumer")
        # Handled again on the new connection (delivery tag 1 there too).
        wait_for(lambda: ledger.written() == [sent.aggregate_id], 15,
                 what="the redelivered event handled on the new connection")
        time.sleep(1.2)
        assert not consumer.healthy(), "the handler stuck on the old connection went unseen"
    finally:
        held.gate.set()
        consumer.stop(timeout=10)


def test_events_arriving_one_by_one_within_the_gather_share_one_transaction(
        amqp_url, spec, ledger):
    """A consumer handed one event waits up to its gather window for more: five events
    published one by one, each after the previous was confirmed, go in one or two
    transactions instead of five, each written once and acked."""
    consumer = _consume(amqp_url, spec, ledger, batch_max=16, gather=1.0)
    sent = [ticket_dispatched(f"LPR-K{i:09d}") for i in range(5)]
    try:
        _publish_all(amqp_url, sent)
    except BaseException:
        consumer.stop(timeout=10)
        raise
    transactions = _each_written_once(amqp_url, spec, ledger, consumer, sent, 15)
    assert transactions <= 2, transactions


def test_stop_during_the_gather_does_not_wait_it_out_and_loses_nothing(amqp_url, spec, ledger):
    """SIGTERM while the handler thread waits for more events: stop() returns at once,
    and the event it was waiting with is either written and acked or back in the queue."""
    consumer = _consume(amqp_url, spec, ledger, batch_max=16, gather=60.0)
    sent = ticket_dispatched("LPR-L000000001")
    _publish_all(amqp_url, [sent])
    wait_for(lambda: queue_depth(amqp_url, spec.name) == 0 and consumer._in_hand, 10,
             what="the event to be delivered to the consumer")
    started = time.monotonic()
    assert consumer.stop(timeout=10)
    assert time.monotonic() - started < 5, "stop() waited out the gather window"
    wait_for(lambda: len(ledger.written()) + queue_depth(amqp_url, spec.name) == 1, 5,
             what="the event written, or back in the queue")
    assert ledger.written() in ([], [sent.aggregate_id])


# -- db.batch itself ------------------------------------------------------------------------
def test_a_batch_commits_its_handlers_together_and_runs_after_commit_actions_once(
        ledger, lines):
    sent = [ticket_dispatched(f"LPR-E{i:09d}") for i in range(3)]
    with db.batch(ledger.engine):
        for envelope in sent:
            with logs.bound(tracking_id=envelope.aggregate_id, event_id=envelope.event_id):
                assert ledger(envelope) == "processed"
        # Not yet committed: another connection sees nothing, nobody was woken, and no line
        # says it was written.
        assert ledger.written() == []
        assert ledger.wakes == 0
        assert lines == []
    assert len(ledger.written()) == 3
    assert ledger.wakes == 1
    # Each handler's line after the commit, with its own event's ids.
    assert [(line["msg"], line["tracking_id"], line["event_id"]) for line in lines] == [
        ("effect written", e.aggregate_id, e.event_id) for e in sent]


def test_a_batch_in_which_a_handler_failed_is_rolled_back_even_if_the_error_was_caught(
        ledger, lines):
    bad = ticket_dispatched("LPR-F000000009",
                            agency=common_pb2.Agency(code=BAD_AGENCY, level="regency"))
    with pytest.raises(db.BatchFailed):
        with db.batch(ledger.engine):
            ledger(ticket_dispatched("LPR-F000000001"))
            try:
                ledger(bad)
            except events.BadEvent:
                pass  # swallowed by a careless handler: the batch still fails
            ledger(ticket_dispatched("LPR-F000000002"))
    assert ledger.written() == []
    assert ledger.wakes == 0
    assert lines == [], "a rolled-back handler logged that it wrote"
    # Outside a batch the same handler commits on its own, as before, and says so once.
    assert ledger(ticket_dispatched("LPR-F000000001")) == "processed"
    assert ledger.written() == ["LPR-F000000001"] and ledger.wakes == 1
    assert [line["msg"] for line in lines] == ["effect written"]


def test_rows_held_for_the_commit_are_written_once_in_order_and_never_after_a_rollback(ledger):
    """db.hold_until_commit: what a batch's handlers hold under one key reaches its writer
    in one call just before the commit, in the order held; write_held hands over what is
    held so far at once; a batch that fails writes nothing; outside a batch it is refused."""
    calls: list[tuple[list, bool]] = []

    def write(conn, held):
        calls.append((list(held), db.batch_memo(conn) is not None))

    with db.batch(ledger.engine):
        with db.begin(ledger.engine) as conn:
            db.hold_until_commit(conn, "k", [1, 2], write)
            db.hold_until_commit(conn, "k", [3], write)
            db.write_held(conn, "k", write)
            assert calls == [([1, 2, 3], True)]
            db.write_held(conn, "k", write)  # nothing held: no call
            db.hold_until_commit(conn, "k", [4], write)
            db.hold_until_commit(conn, "other", ["x"], write)
        assert calls == [([1, 2, 3], True)], "the rest waits for the commit"
    assert calls == [([1, 2, 3], True), ([4], True), (["x"], True)]

    calls.clear()
    with pytest.raises(db.BatchFailed), db.batch(ledger.engine):
        with contextlib.suppress(ValueError), db.begin(ledger.engine) as conn:
            db.hold_until_commit(conn, "k", [5], write)
            raise ValueError("a handler failed")
    assert calls == []
    with ledger.engine.begin() as conn, pytest.raises(RuntimeError):
        db.hold_until_commit(conn, "k", [6], write)
