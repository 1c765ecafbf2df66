"""The transactional outbox on SQLite and PostgreSQL with a real RabbitMQ: what reaches the
broker (and what never does), in which order, and what happens while the broker is away."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import sqlalchemy as sa

from services.infra import db, events, messaging
from services.infra.outbox import Outbox, outbox_table
from tests.integration.helpers import (
    BlackHole,
    TcpProxy,
    channel,
    collect_events,
    connection_pids,
    dead_amqp_url,
    each_event,
    metric,
    observe,
    take_messages,
    ticket_dispatched,
    wait_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def store(database_url):
    """An engine with an outbox table, as a service's migration would create it."""
    engine = db.make_engine(database_url)
    table = outbox_table(sa.MetaData())
    table.metadata.create_all(engine)
    yield engine, table
    engine.dispose()


@pytest.fixture
def service() -> str:
    """A service name of its own, so this test's metrics are not another test's."""
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def outboxes():
    made: list[Outbox] = []

    def make(*args, **kwargs) -> Outbox:
        made.append(Outbox(*args, **kwargs))
        return made[-1]

    yield make
    for outbox in made:
        outbox.stop(flush_timeout=0.2)


def live(amqp_url: str, *, pack: bool = True):
    return lambda: messaging.Publisher(amqp_url, "test-outbox", pack=pack)


def new_event():
    return ticket_dispatched(f"LPR-T{uuid.uuid4().hex[:10].upper()}")


def add_committed(engine, outbox, count: int) -> list[str]:
    """Adds `count` events, each in a transaction of its own; returns their ids in order."""
    ids = []
    for _ in range(count):
        envelope = new_event()
        with engine.begin() as conn:
            outbox.add(conn, envelope)
        ids.append(envelope.event_id)
    return ids


def rows(engine, table):
    with engine.connect() as conn:
        return conn.execute(sa.select(table).order_by(table.c.id)).all()


def test_only_committed_events_are_published_in_order_and_deleted_once_confirmed(
        store, amqp_url, service, outboxes):
    engine, table = store
    watched = observe(amqp_url, "ticket.*")
    outbox = outboxes(engine, table, service, live(amqp_url))

    rolled_back = new_event()
    with pytest.raises(RuntimeError), engine.begin() as conn:
        outbox.add(conn, rolled_back)
        raise RuntimeError("the state change failed, so its event must not exist")
    committed = []
    with engine.begin() as conn:  # several events in one transaction keep their order
        for _ in range(3):
            committed.append(new_event())
            outbox.add(conn, committed[-1])
    committed_ids = [e.event_id for e in committed] + add_committed(engine, outbox, 2)

    assert outbox.backlog()[0] == 5
    assert outbox.flush(10) == 0
    # Confirms mean the broker has routed them: everything is in the queue already.
    published = [properties.message_id for properties, _ in take_messages(amqp_url, watched)]
    assert published == committed_ids
    assert rolled_back.event_id not in published
    # Events may carry contacts or confidential text: nothing needs them after the confirm,
    # and a row kept would be one more write for every event (decision 96).
    assert rows(engine, table) == []

    assert outbox.flush(10) == 0
    assert take_messages(amqp_url, watched) == [], "sent rows are not sent again"


def test_a_batch_the_broker_takes_only_in_part_is_finished_later_each_event_once(
        store, amqp_url, service, outboxes):
    """The relay sends a whole batch before awaiting the confirms. A queue at its length
    limit (reject-publish) refuses the end of it: the confirmed rows are deleted, the
    refused ones stay due, and they go out once there is room: that queue gets every event
    once, in order. (A message each, as with LAPOR_EVENT_BATCHES=false: packed, the eight
    events are one message, which the queue takes whole.)"""
    engine, table = store
    watched = observe(amqp_url, "ticket.*")
    full = f"test.full.{uuid.uuid4().hex[:8]}"
    with channel(amqp_url) as ch:
        ch.queue_declare(full, arguments={"x-max-length": 3, "x-overflow": "reject-publish"})
        ch.queue_bind(full, messaging.EXCHANGE, routing_key="ticket.dispatched")
    try:
        outbox = outboxes(engine, table, service, live(amqp_url, pack=False))
        ids = add_committed(engine, outbox, 8)
        sent, failed = outbox.relay_once()
        assert (sent, "nack" in failed) == (3, True)
        stored = rows(engine, table)
        assert [r.event_id for r in stored] == ids[3:], "the confirmed three are gone"
        assert stored[0].attempts == 1 and "nack" in stored[0].last_error
        assert all(r.attempts == 0 for r in stored[1:]), "the rest were not tried"

        taken = []
        for _ in range(5):
            taken += [p.message_id for p, _ in take_messages(amqp_url, full)]
            outbox.relay_once()
        taken += [p.message_id for p, _ in take_messages(amqp_url, full)]
        assert outbox.backlog()[0] == 0
        assert taken == ids
        # A queue with room took the refused messages the first time too (the broker nacks
        # when any queue refuses): they reach it again, and consumers dedupe on the id.
        assert set(p.message_id for p, _ in take_messages(amqp_url, watched)) == set(ids)
    finally:
        with channel(amqp_url) as ch:
            ch.queue_delete(full)


def test_a_packed_batch_the_broker_refuses_stays_due_whole_and_goes_out_once(
        store, amqp_url, service, outboxes):
    """Events packed into one message are confirmed or refused together: a full queue
    refuses the message, every event stays due, and once there is room the queue gets each
    of them once, in order, in one message."""
    engine, table = store
    full = f"test.full.{uuid.uuid4().hex[:8]}"
    with channel(amqp_url) as ch:
        messaging.declare_topology(ch, [])
        ch.queue_declare(full, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        ch.queue_bind(full, messaging.EXCHANGE, routing_key="ticket.dispatched")
        ch.basic_publish("", full, b"already here")
    try:
        outbox = outboxes(engine, table, service, live(amqp_url))
        ids = add_committed(engine, outbox, 4)
        sent, failed = outbox.relay_once()
        assert (sent, "nack" in failed) == (0, True)
        stored = rows(engine, table)
        assert [r.published_at is None for r in stored] == [True] * 4
        assert stored[0].attempts == 1 and "nack" in stored[0].last_error
        assert [body for _, body in take_messages(amqp_url, full, raw=True)] \
            == [b"already here"]

        for _ in range(3):
            outbox.relay_once()
        taken = take_messages(amqp_url, full, raw=True)
        assert [p.content_type for p, _ in taken] == [events.BATCH_CONTENT_TYPE]
        assert [event.message_id for p, body in taken
                for event, _ in each_event(p, body)] == ids
        assert outbox.backlog()[0] == 0
    finally:
        with channel(amqp_url) as ch:
            ch.queue_delete(full)


def test_with_the_broker_down_events_are_kept_and_sent_once_it_is_reachable(
        store, amqp_url, service, outboxes):
    engine, table = store
    watched = observe(amqp_url, "ticket.*")
    outbox = outboxes(engine, table, service, lambda: messaging.Publisher(dead_amqp_url(), "t"))

    ids = add_committed(engine, outbox, 3)  # the state change commits: the broker is not asked
    count, age = outbox.backlog()
    assert count == 3 and age >= 0

    started = time.monotonic()
    sent, failure = outbox.relay_once()
    assert (sent, "broker unreachable" in failure) == (0, True)
    assert time.monotonic() - started < 3, "a dead broker is noticed quickly"
    first = rows(engine, table)[0]
    assert first.published_at is None and first.attempts == 1
    assert "broker unreachable" in first.last_error
    assert metric("lapor_outbox_publish_errors_total", service=service, reason="broker") == 1

    # Shutting down with the broker away reports what is left; nothing is lost.
    assert outbox.stop(flush_timeout=0.3) == 3
    assert outbox.backlog()[0] == 3

    outbox.publisher_factory = live(amqp_url)
    assert outbox.flush(10) == 0
    assert [p.message_id for p, _ in take_messages(amqp_url, watched)] == ids
    assert rows(engine, table) == []


def test_the_relay_catches_up_after_an_outage_and_the_backlog_gauge_follows(
        store, amqp_url, service, outboxes):
    engine, table = store
    watched = observe(amqp_url, "ticket.*")
    proxy = TcpProxy().start()
    try:
        outbox = outboxes(engine, table, service, live(proxy.url(amqp_url)),
                          poll_interval=0.1, backoff_cap=0.3).start()
        before = add_committed(engine, outbox, 1)
        outbox.wake()
        assert [e.event_id for e in collect_events(amqp_url, watched, 1)] == before
        wait_for(lambda: metric("lapor_outbox_backlog", service=service) == 0, 5,
                 what="the gauge to show an empty backlog")

        proxy.stop()  # the broker goes away, cutting the relay's open connection
        during = add_committed(engine, outbox, 4)
        outbox.wake()
        wait_for(lambda: metric("lapor_outbox_backlog", service=service) == 4, 5,
                 what="the gauge to show the four waiting events")
        assert metric("lapor_outbox_oldest_age_seconds", service=service) >= 0
        assert take_messages(amqp_url, watched) == []

        proxy.start()  # back on the same address; nobody calls flush()
        got = collect_events(amqp_url, watched, 4, timeout=10)
        # At least once: a publish cut off with the connection may go out again.
        first_seen = list(dict.fromkeys(e.event_id for e in got))
        assert set(first_seen) - set(before) == set(during)
        wait_for(lambda: metric("lapor_outbox_backlog", service=service) == 0, 5,
                 what="the gauge to drop back to zero")
        assert outbox.backlog()[0] == 0
    finally:
        proxy.stop()


def test_two_relays_on_one_database_lose_no_event(store, amqp_url, service, outboxes):
    _two_relays_send_every_event_once(*store, amqp_url, service, outboxes)


def test_on_a_sqlite_without_returning_two_relays_read_then_lease_and_lose_no_event(
        sqlite_url, amqp_url, service, outboxes):
    """SQLite before 3.35 has no RETURNING: the claim reads the due rows, then leases them."""
    engine = db.make_engine(sqlite_url)
    table = outbox_table(sa.MetaData())
    table.metadata.create_all(engine)
    try:
        _two_relays_send_every_event_once(engine, table, amqp_url, service, outboxes,
                                          returning=False)
    finally:
        engine.dispose()


def _two_relays_send_every_event_once(engine, table, amqp_url, service, outboxes,
                                      returning: bool = True) -> None:
    watched = observe(amqp_url, "ticket.*")
    seed = outboxes(engine, table, service, live(amqp_url))
    ids = []
    with engine.begin() as conn:
        for _ in range(200):
            envelope = new_event()
            seed.add(conn, envelope)
            ids.append(envelope.event_id)

    relays = [outboxes(engine, table, service, live(amqp_url), batch=10, poll_interval=0.05)
              for _ in range(2)]
    if not returning:
        for relay in relays:
            relay._claim_returning = None
    gate = threading.Barrier(2)

    def run(relay):
        gate.wait()
        relay.start()

    starters = [threading.Thread(target=run, args=(relay,)) for relay in relays]
    for thread in starters:
        thread.start()
    for thread in starters:
        thread.join()
    wait_for(lambda: relays[0].backlog()[0] == 0, 30, interval=0.1,
             what="both relays to publish the backlog")
    for relay in relays:
        relay.stop(flush_timeout=1)

    published = [p.message_id for p, _ in take_messages(amqp_url, watched)]
    assert set(published) == set(ids), "every committed event reached the broker"
    # Delivery is at least once; with row locks (SKIP LOCKED on PostgreSQL, the write lock
    # on SQLite) a row is not taken by both relays, so in practice each goes out once.
    duplicates = len(published) - len(set(published))
    assert duplicates == 0, f"{duplicates} events were published twice"
    assert rows(engine, table) == []


def add_unroutable(engine, table, count: int) -> None:
    """Rows whose type no queue binds (a producer deployed before its consumer's binding)."""
    with engine.begin() as conn:
        conn.execute(table.insert(), [
            dict(event_id=str(uuid.uuid4()), event_type="nobody.binds.this", aggregate_id="x",
                 body=b"x", created_at=db.utcnow(), attempts=0) for _ in range(count)])


def test_unroutable_rows_never_block_the_events_behind_them(store, amqp_url, service, outboxes):
    engine, table = store
    watched = observe(amqp_url, "ticket.*")
    outbox = outboxes(engine, table, service, live(amqp_url), batch=100)
    add_unroutable(engine, table, 150)
    routable = add_committed(engine, outbox, 1)

    for _ in range(3):
        outbox.relay_once()
    assert [p.message_id for p, _ in take_messages(amqp_url, watched)] == routable
    assert metric("lapor_outbox_publish_errors_total", service=service,
                  reason="unroutable") == 150, "each unroutable row tried once, then it waits"
    waiting = rows(engine, table)
    assert len(waiting) == 150 and all(r.published_at is None for r in waiting)
    assert all(r.attempts == 1 and "no queue bound" in r.last_error for r in waiting)
    assert all(db.as_utc(r.next_attempt_at) > db.utcnow() for r in waiting), (
        "an unroutable row waits a delay of its own before it is tried again")
    # The relay as a whole does not back off for them: new events still go out at once.
    later = add_committed(engine, outbox, 1)
    assert outbox.relay_once() == (1, "")
    assert [p.message_id for p, _ in take_messages(amqp_url, watched)] == later


def test_a_broker_that_stops_confirming_mid_batch_holds_the_relay_only_its_confirm_timeout(
        store, amqp_url, service, outboxes):
    """The broker takes a batch and then answers nothing (no confirm, no heartbeat): the
    relay gives up after the publisher's confirm timeout and one fresh connection attempt,
    not after missed heartbeats (35-70 s by default), marks nothing sent, and once the
    broker answers again every event goes out. The broker may have queued the first copy:
    consumers dedupe on the event id (at least once)."""
    engine, table = store
    watched = observe(amqp_url, "ticket.*")
    proxy = TcpProxy().start()
    try:
        url = proxy.url(amqp_url) + "?stack_timeout=2&socket_timeout=2"
        outbox = outboxes(engine, table, service, lambda: messaging.Publisher(
            url, "test-outbox", confirm_timeout=1))
        first = add_committed(engine, outbox, 2)
        assert outbox.relay_once()[0] == 2  # the connection is up and confirming
        held = add_committed(engine, outbox, 8)
        proxy.hold_replies()
        started = time.monotonic()
        sent, failed = outbox.relay_once()
        waited = time.monotonic() - started
        assert (sent, bool(failed)) == (0, True)
        # 1 s for the confirms, then up to 2 s for a fresh connection's handshake.
        assert waited < 6, f"the relay waited {waited:.1f}s on a silent broker"
        assert [r.event_id for r in rows(engine, table)] == held, "only the first two went"
        proxy.release_replies()
        wait_for(lambda: outbox.relay_once() and outbox.backlog()[0] == 0, 20,
                 what="the held events to go out once the broker answers")
        got = [p.message_id for p, _ in take_messages(amqp_url, watched)]
        assert set(got) == set(first + held)
        assert [i for i in got if i in first] == first, "what was confirmed went once"
    finally:
        proxy.stop()


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_on_postgresql_a_relay_held_by_a_silent_broker_blocks_no_insert_nor_other_relay(
        store, amqp_url, service, outboxes):
    """On PostgreSQL the relay keeps its batch's row locks while it publishes (one commit a
    batch). A broker that takes the batch and answers nothing holds those rows only: a
    submission's insert commits at once, and another replica's relay publishes every other
    due row meanwhile. Once the silent one gives up, its rows are due again at once (no
    lease to wait out) and go out."""
    engine, table = store
    watched = observe(amqp_url, "ticket.*")
    proxy = TcpProxy().start()
    publishing = threading.Event()

    class Signalling(messaging.Publisher):
        def publish_many(self, messages):
            publishing.set()  # the batch's rows are locked by now
            return super().publish_many(messages)

    try:
        held_relay = outboxes(engine, table, service, lambda: Signalling(
            proxy.url(amqp_url) + "?stack_timeout=2&socket_timeout=2", "held-outbox",
            confirm_timeout=2), batch=5)
        first = add_committed(engine, held_relay, 1)
        assert held_relay.relay_once() == (1, "")  # the connection is up and confirming
        held = add_committed(engine, held_relay, 5)
        publishing.clear()
        proxy.hold_replies()
        stuck = threading.Thread(target=held_relay.relay_once)
        stuck.start()
        assert publishing.wait(5)

        started = time.monotonic()
        later = add_committed(engine, held_relay, 3)
        assert time.monotonic() - started < 1, "an insert waited for the relay"
        other = outboxes(engine, table, service, live(amqp_url))
        assert other.relay_once() == (3, "")  # the held batch's rows are skipped
        stuck.join(15)
        assert not stuck.is_alive()
        proxy.release_replies()
        wait_for(lambda: other.relay_once() is not None and other.backlog()[0] == 0, 10,
                 what="the held rows to go out")
        got = [p.message_id for p, _ in take_messages(amqp_url, watched)]
        assert set(got) == set(first + held + later)
        assert [i for i in got if i in later] == later
    finally:
        proxy.stop()


def test_a_slow_broker_never_holds_up_a_submission(sqlite_url, amqp_url, service, outboxes):
    """The relay talks to the broker outside any transaction: with a broker that accepts TCP
    and never answers, a concurrent write (a citizen's report) does not wait for it."""
    engine = db.make_engine(sqlite_url)
    table = outbox_table(sa.MetaData())
    table.metadata.create_all(engine)
    hole = BlackHole()
    try:
        outbox = outboxes(engine, table, service, lambda: messaging.Publisher(
            hole.url(amqp_url, stack_timeout=5, socket_timeout=5), "test-outbox"),
            poll_interval=0.05)
        add_committed(engine, outbox, 3)
        outbox.start()
        wait_for(lambda: hole.accepted, 5, what="the relay to reach the silent broker")
        time.sleep(0.3)  # it is now waiting for the handshake
        started = time.monotonic()
        add_committed(engine, outbox, 1)
        waited = time.monotonic() - started
        assert waited < 2, f"a submission waited {waited:.1f}s behind the relay"
        assert outbox.loop.status().alive
    finally:
        hole.close()
        engine.dispose()


class RecordingPublisher(messaging.Publisher):
    """A real publisher that notes, for every batch, the thread that sent it and its size."""

    calls: list[tuple[int, int]] = []
    delay = 0.0  # seconds before each batch goes out

    def publish_many(self, messages):
        messages = list(messages)
        self.calls.append((threading.get_ident(), len(messages)))
        time.sleep(self.delay)
        return super().publish_many(messages)


def recording(amqp_url: str, delay: float = 0.0):
    """A relay's publisher factory whose batches RecordingPublisher.calls lists afresh."""
    RecordingPublisher.calls, RecordingPublisher.delay = [], delay
    return lambda: RecordingPublisher(amqp_url, "test-outbox")


def test_stop_flushes_on_the_relays_own_thread(store, amqp_url, service, outboxes):
    """One connection, one thread: stop() never publishes on the caller's thread while the
    relay may still be using the same connection."""
    engine, table = store
    watched = observe(amqp_url, "ticket.*")
    outbox = outboxes(engine, table, service, recording(amqp_url, delay=0.002),
                      batch=5, poll_interval=0.05).start()
    ids = add_committed(engine, outbox, 40)
    outbox.wake()
    wait_for(lambda: RecordingPublisher.calls, 5, what="the relay to start publishing")
    assert outbox.stop(flush_timeout=10) == 0
    threads = [thread for thread, _ in RecordingPublisher.calls]
    assert threading.get_ident() not in threads
    assert len(set(threads)) == 1
    assert set(p.message_id for p, _ in take_messages(amqp_url, watched)) == set(ids)


def test_an_idle_publisher_keeps_its_connection(store, amqp_url, service, outboxes):
    """After a quiet spell longer than the broker's heartbeat timeout the next event goes out
    on the same connection, without a (false) broker error."""
    engine, table = store
    watched = observe(amqp_url, "ticket.*")
    url = f"{amqp_url}?heartbeat=1"
    outbox = outboxes(engine, table, service, lambda: messaging.Publisher(url, "test-idle"),
                      poll_interval=0.2).start()
    first = add_committed(engine, outbox, 1)
    outbox.wake()
    wait_for(lambda: take_messages(amqp_url, watched), 5, what="the first event")
    connections = connection_pids(amqp_url, "test-idle")
    assert len(connections) == 1

    time.sleep(5)  # the broker drops a connection after two missed heartbeats (2 s here)
    second = add_committed(engine, outbox, 1)
    outbox.wake()
    got = collect_events(amqp_url, watched, 1, timeout=5)
    assert [e.event_id for e in got] == second and first != second
    assert metric("lapor_outbox_publish_errors_total", service=service, reason="broker") == 0
    assert connection_pids(amqp_url, "test-idle") == connections, "the same connection"


def test_rows_an_earlier_version_kept_after_their_confirm_are_never_sent_and_are_purged(
        store, amqp_url, service, outboxes):
    """Before decision 96 a confirmed row stayed (its body cleared, `published_at` set) for
    the retention job; a replica of that version may still be running beside this one in a
    rolling upgrade. Such rows are not sent again, and the retention job deletes them in
    small batches, leaving the events still to send."""
    engine, table = store
    watched = observe(amqp_url, "ticket.*")
    outbox = outboxes(engine, table, service, live(amqp_url))
    with engine.begin() as conn:
        conn.execute(table.insert(), [
            dict(event_id=str(uuid.uuid4()), event_type="ticket.dispatched", aggregate_id="x",
                 body=b"", created_at=db.utcnow(), published_at=db.utcnow(), attempts=1)
            for _ in range(5)])
    unsent = add_committed(engine, outbox, 2)

    assert outbox.backlog()[0] == 2
    assert outbox.purge_kept(batch=2) == 2, "in small batches"
    assert outbox.purge_kept(batch=2) == 2
    assert {r.event_id for r in rows(engine, table) if r.published_at is None} == set(unsent)
    assert outbox.flush(10) == 0
    assert [p.message_id for p, _ in take_messages(amqp_url, watched)] == unsent
    assert outbox.purge_kept(batch=2) == 1
    assert outbox.purge_kept(batch=2) == 0
    assert rows(engine, table) == []


def test_with_a_gather_window_events_committed_one_by_one_go_out_together(
        store, amqp_url, service, outboxes):
    """notify records deliveries one by one, each with its outcome event and a wake: with a
    gather window the relay sends what came within it in one round (one confirmed publish)."""
    engine, table = store
    watched = observe(amqp_url, "ticket.*")
    outbox = outboxes(engine, table, service, recording(amqp_url), poll_interval=5,
                      gather=2.0).start()
    # Its first look at start, which finds nothing, is behind it: it waits to be woken.
    wait_for(lambda: outbox.loop._waiting, 5, what="the relay to wait")
    ids = []
    for _ in range(5):
        ids += add_committed(engine, outbox, 1)
        outbox.wake()
        time.sleep(0.05)
    got = collect_events(amqp_url, watched, 5, timeout=10)
    assert [e.event_id for e in got] == ids
    assert [size for _, size in RecordingPublisher.calls] == [5]


def test_without_a_gather_window_each_event_goes_out_when_woken(
        store, amqp_url, service, outboxes):
    engine, table = store
    watched = observe(amqp_url, "ticket.*")
    outbox = outboxes(engine, table, service, recording(amqp_url), poll_interval=5).start()
    for _ in range(5):
        ids = add_committed(engine, outbox, 1)
        outbox.wake()
        # Well within the 5 s poll: the wake, not the poll, sent it.
        assert [e.event_id for e in collect_events(amqp_url, watched, 1, timeout=2)] == ids
    assert [size for _, size in RecordingPublisher.calls] == [1] * 5


def test_a_stop_during_the_gather_window_still_sends_what_was_gathered(
        store, amqp_url, service, outboxes):
    engine, table = store
    watched = observe(amqp_url, "ticket.*")
    outbox = outboxes(engine, table, service, live(amqp_url), poll_interval=5,
                      gather=30).start()
    ids = add_committed(engine, outbox, 3)
    outbox.wake()
    time.sleep(0.2)  # the relay is in its gather pause now
    started = time.monotonic()
    assert outbox.stop(flush_timeout=5) == 0
    assert time.monotonic() - started < 5, "the stop does not wait out the window"
    assert [e.event_id for e in collect_events(amqp_url, watched, 3, timeout=5)] == ids


def test_an_idle_relay_only_reads_and_a_woken_one_goes_straight_to_its_batch(
        store, amqp_url, service, outboxes):
    """Polls with nothing due are one read each, no write (on SQLite the process's one write
    lock); a round after an add skips that read and takes its batch at once."""
    engine, table = store
    watched = observe(amqp_url, "ticket.*")
    statements: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def record(_conn, _cursor, statement, *_):
        if threading.current_thread().name != "MainThread":
            statements.append(" ".join(statement.split()))

    outbox = outboxes(engine, table, service, live(amqp_url), poll_interval=0.05).start()
    time.sleep(0.5)
    idle = list(statements)
    assert idle and all(s.startswith("SELECT") for s in idle), idle
    read_check = idle[0]

    outbox.poll_interval = 30  # no timed poll from here on: what follows is the wake's
    time.sleep(0.3)
    statements.clear()
    ids = add_committed(engine, outbox, 1)
    outbox.wake()
    assert [e.event_id for e in collect_events(amqp_url, watched, 1, timeout=5)] == ids
    woken = list(statements)
    # Its first statement takes the batch: PostgreSQL's locking read, SQLite's claim (a lease
    # that returns the rows).
    assert woken[0] != read_check
    assert (woken[0].startswith("SELECT outbox.id, outbox.event_id")
            or (woken[0].startswith("UPDATE outbox") and " RETURNING " in woken[0])), woken[0]
    wait_for(lambda: any(s.startswith("DELETE FROM outbox") for s in statements), 5,
             what="the confirmed row deleted")


@pytest.mark.parametrize("database_url", [pytest.param("postgres", marks=pytest.mark.postgres)],
                         indirect=True)
def test_a_relay_whose_kept_connection_the_server_dropped_sends_everything_once(
        store, amqp_url, service, outboxes, database_url, caplog):
    """The relay keeps its connection between rounds that send. PostgreSQL restarted (every
    backend of the database terminated) while it was kept: the next round fails on it and
    the relay carries on with a new one, each event sent once; idle again, it gives its
    connection back to the pool."""
    engine, table = store
    watched = observe(amqp_url, "ticket.*")
    outbox = outboxes(engine, table, service, live(amqp_url), poll_interval=30).start()
    first = add_committed(engine, outbox, 1)
    outbox.wake()
    assert [e.event_id for e in collect_events(amqp_url, watched, 1)] == first
    wait_for(lambda: rows(engine, table) == [], 5, what="the first event recorded as sent")
    assert engine.pool.checkedout() == 1, "kept between rounds that send"

    admin = db.make_engine(database_url)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = current_database() "
                                 "AND pid <> pg_backend_pid()"))
        outbox.poll_interval = 0.05
        more = add_committed(admin, outbox, 3)
    finally:
        admin.dispose()
    outbox.wake()
    assert [e.event_id for e in collect_events(amqp_url, watched, 3, timeout=20)] == more
    failed = [r.getMessage() for r in caplog.records if r.name == "services.infra.lifecycle"
              and r.getMessage().startswith(f"loop outbox-{service} failed")]
    assert failed and "OperationalError" in failed[0], "the kept connection failed a round"
    wait_for(lambda: engine.pool.checkedout() == 0, 5, what="the idle relay to give it back")
    assert take_messages(amqp_url, watched) == [], "nothing sent twice"
    assert outbox.backlog()[0] == 0
