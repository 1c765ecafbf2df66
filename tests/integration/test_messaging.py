"""services.infra.messaging against a real RabbitMQ (a vhost of its own per test): what a
consumer's handler sees, what ends up acked, retried or parked, and what a publisher reports
when the broker cannot take a message."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from urllib.parse import quote

import pika
import pytest
import requests

from lapor.v1 import events_pb2
from services.infra import events, messaging
from tests.integration.helpers import (
    BlackHole,
    TcpProxy,
    channel,
    close_connections,
    connection_pids,
    dead_amqp_url,
    declare,
    metric,
    peek_messages,
    queue_depth,
    take_messages,
    ticket_dispatched,
    vhost_of,
    wait_for,
)

pytestmark = pytest.mark.integration

EVENT = "ticket.dispatched"


def tracking_id() -> str:
    return f"LPR-T{uuid.uuid4().hex[:10].upper()}"


@pytest.fixture
def spec(amqp_url):
    """A consumer queue of its own, with a short retry path, declared on the broker."""
    queue = messaging.QueueSpec(f"test.{uuid.uuid4().hex[:8]}", (EVENT,),
                                retry_delays_ms=(200, 200))
    declare(amqp_url, queue)
    return queue


@pytest.fixture
def publisher(amqp_url):
    publisher = messaging.Publisher(amqp_url, "test-publisher")
    yield publisher
    publisher.close()


class Recorder:
    """A handler that remembers what it was given and when, optionally failing."""

    def __init__(self, fail: Exception | None = None):
        self.fail = fail
        self.calls: list[tuple[float, events_pb2.EventEnvelope]] = []
        self.lock = threading.Lock()

    def __call__(self, envelope):
        with self.lock:
            self.calls.append((time.monotonic(), envelope))
        if self.fail is not None:
            raise self.fail
        return "processed"

    def ids(self) -> list[str]:
        with self.lock:
            return [envelope.event_id for _, envelope in self.calls]


@pytest.fixture
def start_consumer(amqp_url):
    started: list[messaging.Consumer] = []

    def start(spec, handler, **kwargs) -> messaging.Consumer:
        consumer = messaging.Consumer(amqp_url, spec, handler,
                                      consumer=f"test-{uuid.uuid4().hex[:8]}", **kwargs)
        started.append(consumer.start())
        wait_for(consumer.consuming.is_set, 10, what="the consumer to start consuming")
        return consumer

    yield start
    for consumer in started:
        consumer.stop(timeout=10)


def publish(publisher, envelope) -> None:
    publisher.publish(envelope.type, envelope.SerializeToString(), envelope.event_id)


def test_a_published_event_is_handled_once_and_acked(amqp_url, spec, publisher, start_consumer):
    handler = Recorder()
    consumer = start_consumer(spec, handler)
    sent = ticket_dispatched(tracking_id())
    publish(publisher, sent)

    wait_for(lambda: handler.calls, what="the handler to be called")
    (_, got), = handler.calls
    assert (got.event_id, got.type, got.aggregate_id) == (sent.event_id, EVENT, sent.aggregate_id)
    assert events.payload(got).agency.code == "PUPR-13.03"
    consumer.stop(timeout=10)
    # Had it not been acked, closing the connection would have put it back in the queue.
    assert queue_depth(amqp_url, spec.name) == 0
    assert queue_depth(amqp_url, spec.parking_queue) == 0
    assert handler.ids() == [sent.event_id]
    assert metric("lapor_events_consumed_total", consumer=consumer.consumer, type=EVENT,
                  outcome="processed") == 1


def test_a_failing_handler_is_retried_after_each_delay_then_parked(
        amqp_url, spec, publisher, start_consumer, caplog):
    handler = Recorder(fail=RuntimeError("database is down"))
    caplog.set_level(logging.ERROR, logger="services.infra.messaging")
    consumer = start_consumer(spec, handler)
    sent = ticket_dispatched(tracking_id())
    publish(publisher, sent)

    wait_for(lambda: queue_depth(amqp_url, spec.parking_queue) == 1, 10,
             what="the message to be parked")
    times = [at for at, _ in handler.calls]
    assert handler.ids() == [sent.event_id] * 3, "first delivery plus one per retry delay"
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert all(gap >= 0.15 for gap in gaps), f"each retry waits its delay (200 ms): {gaps}"
    failures = [r.getMessage() for r in caplog.records if "failed (attempt" in r.getMessage()]
    assert [f"(attempt {n})" in line for n, line in enumerate(failures, start=1)] == [True] * 3

    # An operator inspects the parking lot without emptying it.
    (properties, body), = peek_messages(amqp_url, spec.parking_queue)
    wait_for(lambda: queue_depth(amqp_url, spec.parking_queue) == 1, 5,
             what="the inspected message to stay parked")
    assert events.decode(body).event_id == sent.event_id
    assert properties.message_id == sent.event_id
    assert properties.headers[messaging.ATTEMPT_HEADER] == 2
    assert properties.headers[messaging.REASON_HEADER] == "handler failed after retries"
    for queue in (spec.name, spec.retry_queue(1), spec.retry_queue(2)):
        assert queue_depth(amqp_url, queue) == 0, queue
    assert len(handler.calls) == 3, "a parked message is not delivered again"
    labels = dict(consumer=consumer.consumer, type=EVENT)
    assert metric("lapor_events_consumed_total", **labels, outcome="retried") == 2
    assert metric("lapor_events_consumed_total", **labels, outcome="parked") == 1


def test_malformed_messages_are_parked_at_once(amqp_url, spec, publisher, start_consumer):
    seen = Recorder()

    def strict(envelope):
        seen(envelope)
        events.payload(envelope)  # raises BadEvent for a payload of the wrong type
        return "processed"

    start_consumer(spec, strict)
    publisher.publish(EVENT, b"this is not a protobuf envelope", str(uuid.uuid4()))
    wait_for(lambda: queue_depth(amqp_url, spec.parking_queue) == 1, 5,
             what="the undecodable message to be parked")
    assert seen.calls == [], "a body that is not an envelope never reaches the handler"

    wrong_payload = ticket_dispatched(tracking_id())
    wrong_payload.payload.Pack(events_pb2.ReportUpdated(tracking_id="x"))
    publish(publisher, wrong_payload)
    wait_for(lambda: queue_depth(amqp_url, spec.parking_queue) == 2, 5,
             what="the envelope with the wrong payload to be parked")

    parked = take_messages(amqp_url, spec.parking_queue)
    reasons = [properties.headers[messaging.REASON_HEADER] for properties, _ in parked]
    assert reasons == ["malformed", "malformed"]
    assert parked[0][1] == b"this is not a protobuf envelope"
    assert seen.ids() == [wrong_payload.event_id], "handled once, never retried"
    assert all(queue_depth(amqp_url, spec.retry_queue(n)) == 0 for n in (1, 2))


def test_the_consumer_reconnects_after_the_broker_drops_its_connection(
        amqp_url, spec, publisher, start_consumer, caplog):
    handler = Recorder()
    consumer = start_consumer(spec, handler)
    name = f"{consumer.consumer}-consumer"
    sent = [ticket_dispatched(tracking_id())]
    publish(publisher, sent[0])
    wait_for(lambda: handler.ids() == [sent[0].event_id], what="the first event")

    # Each outage is a fresh one: the consumer that got back in must not wait longer each
    # time (a broker restart a week later is not the fourth failure in a row).
    # (Without that, the third reconnect alone would wait 2 to 4 seconds.) The delay the
    # consumer chose is read from its log line, so the check does not depend on timing.
    caplog.set_level("WARNING", logger="services.infra.lifecycle")
    dropped: list[str] = []
    for outage in range(3):
        dropped += close_connections(amqp_url, name)
        assert len(dropped) == outage + 1
        wait_for(lambda: not consumer.consuming.is_set(), 5, what="the drop to be noticed")
        wait_for(consumer.consuming.is_set, 10, what="the consumer to reconnect")
        delays = [r.args[2] for r in caplog.records if "retrying in" in r.msg]
        assert len(delays) == outage + 1
        assert delays[-1] <= 1.0, f"outage {outage + 1} waited {delays[-1]:.1f}s"
        sent.append(ticket_dispatched(tracking_id()))
        publish(publisher, sent[-1])
        wait_for(lambda: sent[-1].event_id in handler.ids(), 10,
                 what="the event published after the reconnect")

    assert len(connection_pids(amqp_url, name)) == 1, "one live connection, the old ones gone"
    consumer.stop(timeout=10)
    assert queue_depth(amqp_url, spec.name) == 0, "all were acked"
    assert handler.ids() == [envelope.event_id for envelope in sent], "each handled once"


def test_stop_lets_the_message_in_hand_finish_and_be_acked(amqp_url, spec, publisher,
                                                           start_consumer):
    entered, release = threading.Event(), threading.Event()
    finished: list[tuple[str, float]] = []

    def slow(envelope):
        entered.set()
        release.wait(10)
        finished.append((envelope.event_id, time.monotonic()))
        return "processed"

    in_hand, waiting = ticket_dispatched(tracking_id()), ticket_dispatched(tracking_id())
    publish(publisher, in_hand)
    publish(publisher, waiting)
    consumer = start_consumer(spec, slow)
    assert entered.wait(10), "the handler was never called"

    stopped_at: list[float] = []

    def stop():
        consumer.stop(timeout=10)
        stopped_at.append(time.monotonic())

    stopper = threading.Thread(target=stop)
    stopper.start()
    # The handler is released only once stop() has been asked for (as on SIGTERM mid-work).
    wait_for(lambda: consumer.loop.stopping, 5, what="stop() to be requested")
    release.set()
    stopper.join(15)
    assert stopped_at, "stop() did not return"
    assert [event_id for event_id, _ in finished] == [in_hand.event_id], (
        "the message in hand finishes; nothing else is handled after stop()")
    assert finished[0][1] <= stopped_at[0], "stop() returned before the handler finished"
    assert not consumer.consuming.is_set()
    # The one in hand was acked; the prefetched one goes back to the queue, unhandled.
    wait_for(lambda: queue_depth(amqp_url, spec.name) == 1, 5,
             what="the prefetched message to be back in the queue")
    (properties, _), = take_messages(amqp_url, spec.name)
    assert properties.message_id == waiting.event_id


def test_publisher_raises_unroutable_for_a_key_nobody_binds(amqp_url, publisher):
    with pytest.raises(messaging.Unroutable):
        publisher.publish("nobody.listens.here", b"x", str(uuid.uuid4()))
    # The publisher stays usable: the next routable event is confirmed and queued.
    sent = ticket_dispatched(tracking_id())
    publish(publisher, sent)
    (properties, _), = take_messages(amqp_url, messaging.QUEUES["notify"].name)
    assert properties.message_id == sent.event_id
    assert properties.delivery_mode == 2, "persistent"


def test_an_outcome_reaches_intake_only_when_it_was_for_the_reporter(amqp_url, publisher):
    """Routing lists every delivery on the ticket; the reporter's timeline in intake shows only
    their own notices, so intake's queue is not sent the agency's or the admin's at all."""
    sent = {}
    for audience, outcome in (("agency", "delivered"), ("reporter", "delivered"),
                              ("national_admin", "failed"), ("reporter", "skipped"),
                              ("reporter", "failed")):
        envelope = events.new(f"notification.{outcome}", tracking_id(),
                              events_pb2.NotificationOutcome(audience=audience, outcome=outcome),
                              "notify")
        publisher.publish(events.outcome_key(audience, outcome), envelope.SerializeToString(),
                          envelope.event_id)
        sent[audience, outcome] = envelope.event_id
    # A notify from before the audience was in the key, still running in a rolling upgrade.
    legacy = events.new("notification.delivered", tracking_id(),
                        events_pb2.NotificationOutcome(audience="reporter"), "notify")
    publisher.publish(legacy.type, legacy.SerializeToString(), legacy.event_id)

    to_routing = take_messages(amqp_url, messaging.QUEUES["routing"].name)
    to_intake = take_messages(amqp_url, messaging.QUEUES["intake"].name)
    assert [p.message_id for p, _ in to_routing] == [*sent.values(), legacy.event_id]
    assert [p.message_id for p, _ in to_intake] == [
        sent["reporter", "delivered"], sent["reporter", "failed"], legacy.event_id]
    # The message's type is still the event's, not the key.
    assert {p.type for p, _ in to_routing} == {"notification.delivered", "notification.failed",
                                               "notification.skipped"}
    assert [events.decode(body).type for _, body in to_intake] == [
        "notification.delivered", "notification.failed", "notification.delivered"]


def test_a_batch_goes_out_whole_and_says_which_messages_no_queue_took(amqp_url, spec,
                                                                     publisher):
    sent = [ticket_dispatched(tracking_id()) for _ in range(30)]
    batch = [(e.type, e.SerializeToString(), e.event_id) for e in sent]
    batch.insert(12, ("nobody.listens.here", b"x", str(uuid.uuid4())))
    result = publisher.publish_many(batch)
    assert result.unroutable == [12]
    assert result.sent == [i for i in range(31) if i != 12]
    assert result.failed == ""
    # Every routable one queued once, in the order sent.
    assert [p.message_id for p, _ in take_messages(amqp_url, spec.name)] \
        == [e.event_id for e in sent]


def test_events_of_one_type_go_out_as_one_message_and_are_handled_one_by_one(
        amqp_url, spec, publisher, start_consumer):
    """A relay round's events of one type are one message for the broker, and still one
    handler call, one outcome and one count each for the consumer, in the order sent."""
    sent = [ticket_dispatched(tracking_id()) for _ in range(5)]
    result = publisher.publish_many([(e.type, e.SerializeToString(), e.event_id)
                                     for e in sent])
    assert result.sent == [0, 1, 2, 3, 4]
    (properties, body), = take_messages(amqp_url, spec.name, raw=True)
    assert (properties.content_type, properties.type) == (events.BATCH_CONTENT_TYPE, EVENT)
    assert [events.decode(inner).event_id for inner in events.unpack(
        properties.content_type, body)] == [e.event_id for e in sent]

    # Without packing (LAPOR_EVENT_BATCHES=off, for a rolling upgrade): a message each.
    single = messaging.Publisher(amqp_url, "test-single", pack=False)
    try:
        assert single.publish_many([(e.type, e.SerializeToString(), e.event_id)
                                    for e in sent]).sent == [0, 1, 2, 3, 4]
    finally:
        single.close()
    assert [p.content_type for p, _ in take_messages(amqp_url, spec.name, raw=True)] == [
        events.CONTENT_TYPE] * 5

    handler = Recorder()
    consumer = start_consumer(spec, handler)
    publisher.publish_many([(e.type, e.SerializeToString(), e.event_id) for e in sent])
    wait_for(lambda: len(handler.calls) == 5, what="the batch's five events to be handled")
    consumer.stop(timeout=10)
    assert handler.ids() == [e.event_id for e in sent]
    assert queue_depth(amqp_url, spec.name) == 0, "acked once all five were handled"
    assert metric("lapor_events_consumed_total", consumer=consumer.consumer, type=EVENT,
                  outcome="processed") == 5


def test_an_event_of_a_batch_that_fails_is_retried_and_parked_alone(
        amqp_url, spec, publisher, start_consumer):
    """The others of its batch are handled once; the failing one goes down the retry path
    as a message of its own, and the operator finds it parked under its own id."""
    sent = [ticket_dispatched(tracking_id()) for _ in range(4)]
    bad = sent[2].event_id
    handler = Recorder()

    def failing_one(envelope):
        handler(envelope)
        if envelope.event_id == bad:
            raise RuntimeError("this one cannot be applied")
        return "processed"

    start_consumer(spec, failing_one)
    publisher.publish_many([(e.type, e.SerializeToString(), e.event_id) for e in sent])
    wait_for(lambda: queue_depth(amqp_url, spec.parking_queue) == 1, 10,
             what="the failing event to be parked")
    ids = handler.ids()
    assert sorted(ids) == sorted([e.event_id for e in sent] + [bad, bad])
    assert ids[:4] == [e.event_id for e in sent], "the batch's events in order, once each"
    (properties, body), = take_messages(amqp_url, spec.parking_queue, raw=True)
    assert properties.content_type == events.CONTENT_TYPE
    assert properties.message_id == bad and events.decode(body).event_id == bad
    assert properties.headers[messaging.ATTEMPT_HEADER] == 2
    assert properties.headers[messaging.REASON_HEADER] == "handler failed after retries"
    assert queue_depth(amqp_url, spec.name) == 0


def test_a_malformed_batch_is_parked_as_it_came(amqp_url, spec, start_consumer):
    handler = Recorder()
    start_consumer(spec, handler)
    with channel(amqp_url) as ch:
        ch.basic_publish(messaging.EXCHANGE, EVENT, b"\xff\xfe not a batch",
                         properties=pika.BasicProperties(
                             content_type=events.BATCH_CONTENT_TYPE, type=EVENT,
                             message_id="batch:x"))
    wait_for(lambda: queue_depth(amqp_url, spec.parking_queue) == 1, 5,
             what="the malformed batch to be parked")
    (properties, body), = take_messages(amqp_url, spec.parking_queue, raw=True)
    assert body == b"\xff\xfe not a batch"
    assert properties.content_type == events.BATCH_CONTENT_TYPE
    assert properties.headers[messaging.REASON_HEADER] == "malformed"
    assert handler.calls == []


def test_what_a_full_queue_refuses_is_reported_unsent_and_goes_out_later(amqp_url):
    """A queue at its length limit with reject-publish nacks what it cannot take: the
    confirmed part of the batch counts, the rest is reported unsent, and once there is room
    the publisher sends it on a fresh channel. (A message each, as with packing off.)"""
    publisher = messaging.Publisher(amqp_url, "test-single", pack=False)
    name, key = f"test.full.{uuid.uuid4().hex[:8]}", f"test.full.{uuid.uuid4().hex[:8]}"
    with channel(amqp_url) as ch:
        messaging.declare_topology(ch, [])
        ch.queue_declare(name, arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
        ch.queue_bind(name, messaging.EXCHANGE, routing_key=key)
    try:
        batch = [(key, b"m%d" % i, str(uuid.uuid4())) for i in range(5)]
        result = publisher.publish_many(batch)
        assert result.sent == [0, 1]
        assert result.unroutable == []
        assert "nack" in result.failed
        assert [body for _, body in take_messages(amqp_url, name)] == [b"m0", b"m1"]

        result = publisher.publish_many(batch[2:4])
        assert (result.sent, result.failed) == ([0, 1], "")
        assert [body for _, body in take_messages(amqp_url, name)] == [b"m2", b"m3"]
    finally:
        publisher.close()
        with channel(amqp_url) as ch:
            ch.queue_delete(name)


def test_publisher_fails_fast_when_the_broker_is_unreachable():
    publisher = messaging.Publisher(dead_amqp_url(), "test-dead")
    started = time.monotonic()
    with pytest.raises(messaging.PublishError) as raised:
        publisher.publish(EVENT, b"x", str(uuid.uuid4()))
    assert not isinstance(raised.value, messaging.Unroutable)
    assert publisher.check() is False
    assert messaging.broker_reachable(publisher.url) is False
    assert time.monotonic() - started < 3


def test_publisher_recovers_after_the_broker_drops_its_connection(amqp_url, publisher):
    publish(publisher, ticket_dispatched(tracking_id()))
    assert close_connections(amqp_url, "test-publisher")
    sent = ticket_dispatched(tracking_id())
    for _attempt in range(2):  # the first may find the connection gone, as the outbox expects
        try:
            publish(publisher, sent)
            break
        except messaging.PublishError:
            continue
    else:
        pytest.fail("the publisher did not reconnect")
    ids = [p.message_id for p, _ in take_messages(amqp_url, messaging.QUEUES["notify"].name)]
    assert ids[-1] == sent.event_id
    assert messaging.broker_reachable(amqp_url) is True


# -- failure paths found by review and fault runs ------------------------------------------
def test_a_broker_that_never_answers_does_not_kill_the_consumer(amqp_url, spec, publisher):
    """pika gives up on a silent broker with a plain Exception; the consumer keeps trying,
    stays alive (and says it is not consuming), and consumes once the broker is back."""
    hole = BlackHole()
    handler = Recorder()
    consumer = messaging.Consumer(hole.url(amqp_url, stack_timeout=1, socket_timeout=1), spec,
                                  handler, consumer=f"test-{uuid.uuid4().hex[:8]}",
                                  backoff_cap=0.5)
    consumer.start()
    proxy = None
    try:
        wait_for(lambda: consumer.loop.status().failures >= 2, 15,
                 what="two connection attempts to time out")
        status = consumer.loop.status()
        assert status.alive and not status.stalled, "failing to connect is not dying"
        assert "Timeout" in status.last_error or "Error" in status.last_error
        assert not consumer.consuming.is_set()

        port = hole.port
        hole.close()
        proxy = TcpProxy()
        proxy.port = port
        proxy.start()  # the broker answers on the same address now
        wait_for(consumer.consuming.is_set, 15, what="the consumer to connect")
        sent = ticket_dispatched(tracking_id())
        publish(publisher, sent)
        wait_for(lambda: handler.ids() == [sent.event_id], 10, what="the event to be handled")
        assert consumer.loop.status().failures == 0
    finally:
        consumer.stop(timeout=5)
        hole.close()
        if proxy is not None:
            proxy.stop()


def test_closing_a_publisher_whose_broker_went_silent_takes_seconds_not_minutes(amqp_url,
                                                                                caplog):
    """At shutdown the relay closes its publisher; a broker that stopped answering (no
    Close-Ok, no heartbeat) used to hold that close until missed heartbeats ended it (35-70
    s with the default heartbeat). Now the handshake is waited for a moment, then the
    socket is cut, and a publisher on the same broker works once it answers again."""
    proxy = TcpProxy().start()
    try:
        publisher = messaging.Publisher(proxy.url(amqp_url), "test-silent-close")
        publish(publisher, ticket_dispatched(tracking_id()))
        proxy.hold_replies()
        started = time.monotonic()
        with caplog.at_level(logging.INFO, logger="pika"):
            publisher.close()
        closed_in = time.monotonic() - started
        assert closed_in < messaging.CLOSE_TIMEOUT + 2, f"close took {closed_in:.1f} s"
        assert any("stopped answering" in r.getMessage() for r in caplog.records)

        proxy.release_replies()
        sent = ticket_dispatched(tracking_id())
        publish(publisher, sent)
        ids = [p.message_id for p, _ in take_messages(amqp_url, messaging.QUEUES["notify"].name)]
        assert ids[-1] == sent.event_id
        publisher.close()
    finally:
        proxy.stop()


def test_a_consumer_whose_broker_went_silent_stops_in_seconds_and_its_message_comes_back(
        amqp_url, spec, publisher):
    """SIGTERM while the broker answers nothing: the consumer does not wait for the
    Cancel-Ok and Close-Ok that never come (pika waits until missed heartbeats, 35-70 s),
    and what it had not acked is the broker's again for the next consumer."""
    proxy = TcpProxy().start()
    handler = Recorder()
    name = f"test-{uuid.uuid4().hex[:8]}"
    consumer = messaging.Consumer(proxy.url(amqp_url), spec, handler, consumer=name)
    consumer.start()
    try:
        wait_for(consumer.consuming.is_set, 10, what="the consumer to start consuming")
        first = ticket_dispatched(tracking_id())
        publish(publisher, first)
        wait_for(lambda: handler.ids() == [first.event_id], 10, what="the first event")
        # Handled is not yet acked: the ack goes out after the handler returns, and the
        # consumer counts the event once it has.
        wait_for(lambda: metric("lapor_events_consumed_total", consumer=name,
                                type="ticket.dispatched", outcome="processed") == 1,
                 10, what="the first event's ack")
        proxy.hold_replies()
        started = time.monotonic()
        finished = consumer.stop(timeout=20)
        stopped_in = time.monotonic() - started
        assert finished, "the consumer's loop did not finish"
        assert stopped_in < 2 * messaging.CLOSE_TIMEOUT + 2, f"stop took {stopped_in:.1f} s"
    finally:
        consumer.stop(timeout=1)
        proxy.stop()
    # Nothing was lost: the next consumer gets what arrives now, once.
    second = ticket_dispatched(tracking_id())
    publish(publisher, second)
    again = Recorder()
    other = messaging.Consumer(amqp_url, spec, again, consumer=f"test-{uuid.uuid4().hex[:8]}")
    other.start()
    try:
        wait_for(lambda: second.event_id in again.ids(), 10, what="the second event")
    finally:
        other.stop(timeout=5)
    assert first.event_id not in again.ids(), "the first was acked before the silence"


def test_a_publisher_closes_with_the_handshake_when_the_broker_answers(amqp_url, caplog):
    publisher = messaging.Publisher(amqp_url, "test-polite-close")
    publish(publisher, ticket_dispatched(tracking_id()))
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="pika"):
        publisher.close()
    assert time.monotonic() - started < 1.0
    # pika logs how the connection ended: by the broker's Close-Ok to this side's Close.
    closes = [r.getMessage() for r in caplog.records if "User-initiated close" in r.getMessage()]
    assert len(closes) == 1 and "Normal shutdown" in closes[0], closes


def test_a_malformed_attempt_header_does_not_kill_the_consumer(amqp_url, spec, publisher,
                                                                start_consumer):
    handler = Recorder()
    consumer = start_consumer(spec, handler)
    odd = ticket_dispatched(tracking_id())
    with channel(amqp_url) as ch:
        ch.basic_publish("", spec.name, odd.SerializeToString(), properties=pika.BasicProperties(
            message_id=odd.event_id, type=EVENT,
            headers={messaging.ATTEMPT_HEADER: "not a number"}))
    after = ticket_dispatched(tracking_id())
    publish(publisher, after)
    wait_for(lambda: handler.ids() == [odd.event_id, after.event_id], 10,
             what="both messages to be handled")
    assert consumer.loop.status().healthy
    assert queue_depth(amqp_url, spec.parking_queue) == 0


def test_the_consumer_subscribes_again_when_the_broker_cancels_it(amqp_url, spec, publisher,
                                                                   start_consumer):
    """Deleting the queue (or a quorum leader moving) cancels the subscription; the consumer
    declares the queue again and goes on consuming instead of idling as if all were well."""
    handler = Recorder()
    consumer = start_consumer(spec, handler)
    with channel(amqp_url) as ch:
        ch.queue_delete(spec.name)
    wait_for(lambda: consumer.loop.status().failures >= 1 or not consumer.consuming.is_set(),
             5, what="the cancellation to be noticed")
    wait_for(consumer.consuming.is_set, 10, what="the consumer to subscribe again")
    sent = ticket_dispatched(tracking_id())
    publish(publisher, sent)
    wait_for(lambda: handler.ids() == [sent.event_id], 10,
             what="an event published after the cancel to be handled")


def test_a_handler_slower_than_the_heartbeat_keeps_the_connection(amqp_url, spec, publisher):
    """Heartbeats keep flowing while a handler works, so the broker does not drop the
    connection and hand the message to someone else a second time."""
    calls: list[str] = []

    def slow(envelope):
        calls.append(envelope.event_id)
        time.sleep(4)  # the broker gives up after two missed heartbeats: 2 s here
        return "processed"

    name = f"test-{uuid.uuid4().hex[:8]}"
    consumer = messaging.Consumer(f"{amqp_url}?heartbeat=1", spec, slow, consumer=name)
    consumer.start()
    try:
        wait_for(consumer.consuming.is_set, 10, what="the consumer to start")
        before = connection_pids(amqp_url, f"{name}-consumer")
        sent = ticket_dispatched(tracking_id())
        publish(publisher, sent)
        wait_for(lambda: metric("lapor_events_consumed_total", consumer=name, type=EVENT,
                                outcome="processed") == 1, 15, what="the message to be acked")
        time.sleep(1)
        assert calls == [sent.event_id], "handled exactly once"
        assert connection_pids(amqp_url, f"{name}-consumer") == before, "never reconnected"
        assert queue_depth(amqp_url, spec.name) == 0
    finally:
        consumer.stop(timeout=10)


def test_a_wedged_handler_makes_the_consumer_unhealthy(amqp_url, spec, publisher):
    release = threading.Event()

    def stuck(envelope):
        release.wait(10)
        return "processed"

    consumer = messaging.Consumer(amqp_url, spec, stuck, consumer=f"test-{uuid.uuid4().hex[:8]}",
                                  handler_timeout=0.5)
    consumer.start()
    try:
        wait_for(consumer.consuming.is_set, 10, what="the consumer to start")
        publish(publisher, ticket_dispatched(tracking_id()))
        wait_for(lambda: not consumer.healthy(), 5, what="the consumer to count as wedged")
        release.set()
        wait_for(consumer.healthy, 5, what="the consumer to be healthy again")
    finally:
        release.set()
        consumer.stop(timeout=10)


# -- queue settings as broker policies -------------------------------------------------------
def management(method: str, path: str, **kwargs):
    response = requests.request(method, f"http://127.0.0.1:15672/api{path}",
                                auth=("guest", "guest"), timeout=10, **kwargs)
    response.raise_for_status()
    return response.json() if response.content else None


def test_queue_settings_are_policies_the_services_apply(amqp_url, spec, publisher,
                                                        start_consumer):
    start_consumer(spec, Recorder())
    vhost = quote(vhost_of(amqp_url), safe="")
    policies = {p["name"]: p for p in management("GET", f"/policies/{vhost}")}
    main = policies[f"lapor.{spec.name}"]["definition"]
    assert main["dead-letter-routing-key"] == spec.parking_queue
    assert main["delivery-limit"] == spec.delivery_limit
    assert main["dead-letter-strategy"] == "at-least-once"
    retry = policies[f"lapor.{spec.retry_queue(1)}"]["definition"]
    assert (retry["message-ttl"], retry["dead-letter-routing-key"]) == (200, spec.name)
    for name in ("routing.events", "notify.events", "intake.read-model"):
        assert f"lapor.{name}" in policies, "the whole topology's policies"
    # Retry queues are replicated like the rest: quorum queues, settings from the policy.
    queue = management("GET", f"/queues/{vhost}/{quote(spec.retry_queue(1), safe='')}")
    assert queue["type"] == "quorum"
    assert queue["arguments"] == {"x-queue-type": "quorum"}


def test_changing_a_retry_delay_is_a_policy_update_not_a_broken_declare(amqp_url, publisher):
    name = f"test.{uuid.uuid4().hex[:8]}"
    first = messaging.QueueSpec(name, (EVENT,), retry_delays_ms=(200, 200))
    changed = messaging.QueueSpec(name, (EVENT,), retry_delays_ms=(300, 300, 300))
    handler = Recorder(fail=RuntimeError("still failing"))
    for spec in (first, changed):
        consumer = messaging.Consumer(amqp_url, spec, handler,
                                      consumer=f"test-{uuid.uuid4().hex[:8]}")
        consumer.start()
        try:
            wait_for(consumer.consuming.is_set, 10, what="the consumer to start")
        finally:
            consumer.stop(timeout=5)
    vhost = quote(vhost_of(amqp_url), safe="")
    policy = management("GET", f"/policies/{vhost}/{quote(f'lapor.{name}.retry.1', safe='')}")
    assert policy["definition"]["message-ttl"] == 300
    # The new third retry step exists and works through its policy.
    consumer = messaging.Consumer(amqp_url, changed, handler,
                                  consumer=f"test-{uuid.uuid4().hex[:8]}").start()
    try:
        wait_for(consumer.consuming.is_set, 10, what="the consumer to start")
        publish(publisher, ticket_dispatched(tracking_id()))
        wait_for(lambda: queue_depth(amqp_url, changed.parking_queue) == 1, 10,
                 what="the message to go through three retries and be parked")
        assert len(handler.calls) == 4
    finally:
        consumer.stop(timeout=5)


def test_a_queue_declared_with_old_arguments_is_used_as_it_is(amqp_url, caplog):
    """A queue an earlier release declared with x-delivery-limit and dead-letter arguments
    must not make every declare fail (PRECONDITION_FAILED): it is used, with a warning."""
    routing = messaging.QUEUES["routing"]
    with channel(amqp_url) as ch:
        ch.queue_declare(routing.name, durable=True, arguments={
            "x-queue-type": "quorum", "x-delivery-limit": 10,
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": routing.parking_queue})
    caplog.set_level(logging.WARNING, logger="services.infra.messaging")
    publisher = messaging.Publisher(amqp_url, "test-legacy")
    try:
        event = events.new("report.submitted", "LPR-X", events_pb2.ReportSubmitted(
            tracking_id="LPR-X"), producer="intake")
        publish(publisher, event)
    finally:
        publisher.close()
    assert queue_depth(amqp_url, routing.name) == 1
    assert any("exists with other arguments" in r.getMessage() for r in caplog.records)


def test_a_management_api_that_never_answers_costs_one_timeout_and_no_password(caplog):
    """A management port that accepts and says nothing (a proxy with no backend): the
    services go on without policies after the timeout, and the warning names no secret."""
    hole = BlackHole()
    caplog.set_level(logging.WARNING, logger="services.infra.messaging")
    try:
        policies = messaging.BrokerPolicies(
            "amqp://guest:guest@127.0.0.1:5672/%2F", api_url=(
                f"http://lapor:s3cret-pw@127.0.0.1:{hole.port}"), timeout=0.5)
        started = time.monotonic()
        assert policies.ensure() is False
        assert time.monotonic() - started < 3
        assert policies.ensure() is False  # not tried again before retry_every
        wait_for(lambda: hole.accepted, 5, what="the one connection to be accepted")
        time.sleep(0.2)
        assert len(hole.accepted) == 1
    finally:
        hole.close()
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "could not apply the queue policies" in warning and "TimeoutError" in warning
    assert "s3cret" not in warning


def test_a_refused_management_login_is_named_in_the_warning(caplog):
    """A 401 (the service's user lacks the policymaker tag or the password is wrong) is said
    as such, and the policies count as not applied."""
    policies = messaging.BrokerPolicies(
        "amqp://guest:guest@127.0.0.1:5672/%2F",
        api_url="http://guest:not-the-password@127.0.0.1:15672", timeout=5)
    caplog.set_level(logging.WARNING, logger="services.infra.messaging")
    assert policies.ensure() is False
    assert not policies.applied
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "HTTP 401 for policy lapor." in warning
    assert "not-the-password" not in warning
