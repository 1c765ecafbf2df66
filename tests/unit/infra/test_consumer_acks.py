"""How a consumer settles what its handler thread finished: which acks go to the broker.
The channel records what it is told; nothing here talks to RabbitMQ (the integration tests
in tests/integration/test_consumer_batches.py run the same path against a real one)."""

from __future__ import annotations

import pika
import pytest

from services.infra import messaging


class RecordingChannel:
    is_open = True

    def __init__(self):
        self.calls: list[tuple] = []

    def basic_publish(self, exchange, routing_key, body, properties=None, mandatory=False):
        self.calls.append(("publish", routing_key, properties.headers))

    def basic_ack(self, delivery_tag, multiple=False):
        self.calls.append(("ack", delivery_tag, multiple))


@pytest.fixture
def consumer():
    spec = messaging.QueueSpec("unit.acks", ("ticket.dispatched",), retry_delays_ms=(100,))
    return messaging.Consumer("amqp://guest:guest@127.0.0.1:1/%2F", spec, lambda e: "processed",
                              consumer="unit-acks")


def settled(*tags, retry: int | None = None):
    properties = pika.BasicProperties(type="ticket.dispatched", message_id="e", headers={})
    return [(tag, properties, b"", messaging._Settle(
        "retried" if tag == retry else "processed", "ticket.dispatched",
        "unit.acks.retry.1" if tag == retry else "", {"x": 1} if tag == retry else None))
        for tag in tags]


def test_a_batch_holding_everything_delivered_up_to_its_last_is_acked_with_one_frame(consumer):
    channel = RecordingChannel()
    consumer._in_hand.update({1, 2, 3, 4, 5})
    consumer._settle(channel, settled(1, 2, 3))
    assert channel.calls == [("ack", 3, True)]
    assert consumer._in_hand == {4, 5}


def test_a_message_still_in_hand_below_the_batch_keeps_the_acks_one_by_one(consumer):
    channel = RecordingChannel()
    consumer._in_hand.update({1, 2, 3, 4})
    consumer._settle(channel, settled(2, 3, 4))
    assert channel.calls == [("ack", 2, False), ("ack", 3, False), ("ack", 4, False)]
    assert consumer._in_hand == {1}


def test_a_retried_message_is_republished_before_any_ack(consumer):
    channel = RecordingChannel()
    consumer._in_hand.update({1, 2, 3})
    consumer._settle(channel, settled(1, 2, 3, retry=2))
    assert channel.calls == [("publish", "unit.acks.retry.1", {"x": 1}), ("ack", 3, True)]


def test_what_a_dropped_connection_delivered_is_left_to_the_broker_to_redeliver(consumer):
    old_channel = RecordingChannel()
    old_channel.is_open = False
    consumer._in_hand.update({1, 2})  # the new connection's deliveries, tags from 1 again
    consumer._settle(old_channel, settled(1, 2))
    assert old_channel.calls == []
    assert consumer._in_hand == {1, 2}


def test_a_lone_message_is_acked_alone(consumer):
    channel = RecordingChannel()
    consumer._in_hand.add(1)
    consumer._settle(channel, settled(1))
    assert channel.calls == [("ack", 1, False)]
