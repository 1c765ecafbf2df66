"""RabbitMQ the way its documentation asks: one durable topic exchange, a durable quorum
queue per consumer, publisher confirms with `mandatory`, manual acks after the consumer's
transaction commits, bounded prefetch, a retry path with growing delays (TTL queues that
dead-letter back) ending in a parking-lot queue, and reconnection with capped backoff."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pika
from pika.exceptions import AMQPError, NackError, UnroutableError

from lapor.v1 import events_pb2
from services.infra import events, logs
from services.infra.telemetry import EVENTS_CONSUMED, EVENTS_PUBLISHED, init_consumer_metrics

log = logging.getLogger(__name__)

EXCHANGE = "lapor.events"
ATTEMPT_HEADER = "x-lapor-attempt"
REASON_HEADER = "x-lapor-parked-reason"


@dataclass(frozen=True)
class QueueSpec:
    """A consumer's queue: its bindings and the delays of its retry path."""

    name: str
    bindings: tuple[str, ...]
    retry_delays_ms: tuple[int, ...] = (5_000, 30_000, 300_000)
    # Deliveries before the broker itself parks a message that keeps killing consumers.
    delivery_limit: int = 10

    def retry_queue(self, attempt: int) -> str:
        return f"{self.name}.retry.{attempt}"

    @property
    def parking_queue(self) -> str:
        return f"{self.name}.parking"


# Every process declares the whole topology on connect, so no event published by one service
# is unroutable because its consumer has not started yet (publishers use `mandatory`).
QUEUES: dict[str, QueueSpec] = {
    "routing": QueueSpec("routing.events", ("report.submitted", "report.updated")),
    "notify": QueueSpec("notify.events", ("reporter.registered", "ticket.*")),
    "intake": QueueSpec("intake.read-model", ("ticket.*", "notification.*")),
}


def connection_parameters(url: str, name: str) -> pika.URLParameters:
    params = pika.URLParameters(url)
    params.heartbeat = 30
    params.blocked_connection_timeout = 30
    params.socket_timeout = 5
    params.connection_attempts = 1
    params.client_properties = {"connection_name": name}
    return params


def declare_topology(channel, queues: Iterable[QueueSpec] | None = None) -> None:
    channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
    for spec in QUEUES.values() if queues is None else queues:
        channel.queue_declare(spec.parking_queue, durable=True,
                              arguments={"x-queue-type": "quorum"})
        channel.queue_declare(spec.name, durable=True, arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": spec.delivery_limit,
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": spec.parking_queue,
        })
        for key in spec.bindings:
            channel.queue_bind(spec.name, EXCHANGE, routing_key=key)
        for attempt, delay in enumerate(spec.retry_delays_ms, start=1):
            # Classic queues: one TTL for the whole queue, so expiry at the head is exact.
            channel.queue_declare(spec.retry_queue(attempt), durable=True, arguments={
                "x-message-ttl": delay,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": spec.name,
            })


class PublishError(Exception):
    """The broker did not confirm the message; the caller keeps it and tries again."""


class Unroutable(PublishError):
    """No queue is bound for the routing key (a topology error, not a transient one)."""


def _properties(envelope_type: str, event_id: str, headers: dict | None = None):
    return pika.BasicProperties(
        content_type="application/x-protobuf", delivery_mode=pika.DeliveryMode.Persistent,
        message_id=event_id, type=envelope_type, timestamp=int(time.time()),
        headers=headers or {})


class Publisher:
    """A confirmed, mandatory publisher on one connection. Not thread-safe: one per thread."""

    def __init__(self, url: str, name: str):
        self.url = url
        self.name = name
        self._connection = None
        self._channel = None

    def _ensure_channel(self):
        if self._channel is None or not self._channel.is_open:
            self.close()
            self._connection = pika.BlockingConnection(connection_parameters(self.url, self.name))
            self._channel = self._connection.channel()
            self._channel.confirm_delivery()
            declare_topology(self._channel)
        return self._channel

    def publish(self, event_type: str, body: bytes, event_id: str) -> None:
        try:
            channel = self._ensure_channel()
            channel.basic_publish(EXCHANGE, event_type, body,
                                  properties=_properties(event_type, event_id), mandatory=True)
        except UnroutableError:
            raise Unroutable(f"no queue bound for {event_type}") from None
        except NackError:
            raise PublishError("broker refused the message (nack)") from None
        except (AMQPError, OSError) as exc:
            self.close()
            raise PublishError(f"broker unreachable: {type(exc).__name__}") from None
        EVENTS_PUBLISHED.labels(event_type).inc()

    def check(self) -> bool:
        try:
            self._ensure_channel()
            return True
        except (AMQPError, OSError):
            self.close()
            return False

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except (AMQPError, OSError):
                pass


def broker_reachable(url: str) -> bool:
    """Readiness: a connection can be opened."""
    try:
        connection = pika.BlockingConnection(connection_parameters(url, "lapor-readiness"))
    except (AMQPError, OSError):
        return False
    connection.close()
    return True


Handler = Callable[[events_pb2.EventEnvelope], str]


class Consumer:
    """Consumes one queue in a thread of its own.

    The handler commits its own transaction (and dedupes on the event id) and returns
    "processed" or "duplicate"; only then is the message acked. A handler that raises sends
    the message down the retry path; after the last delay it is parked for an operator.
    """

    def __init__(self, url: str, spec: QueueSpec, handler: Handler, *, consumer: str,
                 prefetch: int = 16, backoff_cap: float = 30.0):
        self.url = url
        self.spec = spec
        self.handler = handler
        self.consumer = consumer
        self.prefetch = prefetch
        self.backoff_cap = backoff_cap
        self._stop = threading.Event()
        self.consuming = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"consumer-{spec.name}",
                                        daemon=True)
        init_consumer_metrics(consumer, [t for t in events.CATALOG])

    def start(self) -> Consumer:
        self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stops taking messages, lets the one in hand finish and be acked, then closes."""
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        self._failures = 0
        while not self._stop.is_set():
            try:
                self._consume()
            except (AMQPError, OSError) as exc:
                self.consuming.clear()
                self._failures += 1
                delay = min(self.backoff_cap, 0.5 * 2 ** min(self._failures, 10))
                delay *= random.uniform(0.5, 1.0)
                log.warning("broker connection lost (%s); reconnecting in %.1fs",
                            type(exc).__name__, delay, extra={"queue": self.spec.name})
                self._stop.wait(delay)
        self.consuming.clear()

    def _consume(self) -> None:
        connection = pika.BlockingConnection(
            connection_parameters(self.url, f"{self.consumer}-consumer"))
        try:
            channel = connection.channel()
            declare_topology(channel)
            channel.confirm_delivery()
            channel.basic_qos(prefetch_count=self.prefetch)
            tag = channel.basic_consume(self.spec.name, self._on_message, auto_ack=False)
            self.consuming.set()
            # Connected again: the next outage starts the backoff from its shortest delay.
            self._failures = 0
            log.info("consuming %s", self.spec.name)
            while not self._stop.is_set():
                connection.process_data_events(time_limit=0.5)
            # Messages prefetched but not yet handled go back to the queue when we close.
            channel.basic_cancel(tag)
        finally:
            self.consuming.clear()
            if connection.is_open:
                try:
                    connection.close()
                except (AMQPError, OSError):
                    pass

    def _on_message(self, channel, method, properties, body: bytes) -> None:
        if self._stop.is_set():
            # Prefetched before stop() and dispatched in the same batch: leave it unacked,
            # so closing the channel hands it back to the queue for another consumer.
            return
        headers = properties.headers or {}
        attempt = int(headers.get(ATTEMPT_HEADER, 0))
        try:
            envelope = events.decode(body)
        except events.BadEvent as exc:
            log.error("parking a malformed message: %s", exc, extra={"queue": self.spec.name})
            self._park(channel, properties, body, "malformed")
            channel.basic_ack(method.delivery_tag)
            EVENTS_CONSUMED.labels(self.consumer, "malformed", "parked").inc()
            return
        with logs.bound(tracking_id=envelope.aggregate_id, event_id=envelope.event_id):
            try:
                outcome = self.handler(envelope)
            except events.BadEvent as exc:
                log.error("parking %s: %s", envelope.type, exc)
                self._park(channel, properties, body, "malformed")
                outcome = "parked"
            except Exception:
                log.exception("handling %s failed (attempt %d)", envelope.type, attempt + 1)
                outcome = self._retry_or_park(channel, properties, body, attempt)
            channel.basic_ack(method.delivery_tag)
            EVENTS_CONSUMED.labels(self.consumer, envelope.type, outcome).inc()

    def _retry_or_park(self, channel, properties, body: bytes, attempt: int) -> str:
        if attempt < len(self.spec.retry_delays_ms):
            headers = dict(properties.headers or {}, **{ATTEMPT_HEADER: attempt + 1})
            channel.basic_publish("", self.spec.retry_queue(attempt + 1), body,
                                  properties=_properties(properties.type or "",
                                                         properties.message_id or "", headers),
                                  mandatory=True)
            return "retried"
        self._park(channel, properties, body, "handler failed after retries")
        return "parked"

    def _park(self, channel, properties, body: bytes, reason: str) -> None:
        headers = dict(properties.headers or {}, **{REASON_HEADER: reason})
        channel.basic_publish("", self.spec.parking_queue, body,
                              properties=_properties(properties.type or "",
                                                     properties.message_id or "", headers),
                              mandatory=True)
