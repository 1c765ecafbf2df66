"""RabbitMQ the way its documentation asks: one durable topic exchange, a durable quorum
queue per consumer, publisher confirms with `mandatory`, manual acks after the consumer's
transaction commits, bounded prefetch, a retry path with growing delays (TTL queues that
dead-letter back) ending in a parking-lot queue, and reconnection with capped backoff.

Queue behaviour that may change (delivery limit, dead-lettering, TTLs) lives in broker
policies, not in declare arguments: a changed argument would make every later declare fail
with PRECONDITION_FAILED, a changed policy is just applied. Declares carry only the queue
type. The services apply the policies through the management API when they start (and
deploy/rabbitmq/definitions.json carries the same ones)."""

from __future__ import annotations

import base64
import collections
import contextlib
import functools
import http.client
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pika
from pika.exceptions import ChannelClosedByBroker
from prometheus_client import Gauge, Histogram

from lapor.v1 import events_pb2
from services.infra import events, logs
from services.infra.config import DEFAULT_CONSUMER_BATCH
from services.infra.lifecycle import SupervisedLoop
from services.infra.telemetry import EVENTS_CONSUMED, EVENTS_PUBLISHED, init_consumer_metrics

log = logging.getLogger(__name__)

EXCHANGE = "lapor.events"
ATTEMPT_HEADER = "x-lapor-attempt"
REASON_HEADER = "x-lapor-parked-reason"
POLICY_PRIORITY = 10
DEFAULT_HEARTBEAT = 30
# How long a publisher waits for the broker to confirm a batch it sent. A broker that takes
# messages and then answers nothing would otherwise hold the relay until missed heartbeats
# close the connection (pika checks every heartbeat + 5 s: 35-70 s with the default). What
# was not confirmed stays due and goes again: a slow but living broker may get it twice.
CONFIRM_TIMEOUT = 15.0
# How long closing a connection waits for the broker's Close-Ok before cutting the socket;
# a living broker answers within milliseconds.
CLOSE_TIMEOUT = 2.0

POLICIES_APPLIED = Gauge("lapor_broker_policies_applied",
                         "1 once this process has applied the queue policies to the broker")
BATCH_SIZE = Histogram("lapor_consumer_batch_size",
                       "Messages handled in one transaction by a consumer (1: one by one)",
                       ["consumer"], buckets=(1, 2, 4, 8, 16, 32, 64))


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

    def policies(self) -> dict[str, dict]:
        """Policy name -> body for the management API: the main queue dead-letters to its
        parking lot after the delivery limit; retry queue n holds a message for its delay,
        then dead-letters it back. At-least-once dead-lettering, so a broker failure in
        between loses nothing (it needs overflow=reject-publish)."""
        safe = {"dead-letter-exchange": "", "dead-letter-strategy": "at-least-once",
                "overflow": "reject-publish"}
        out = {f"lapor.{self.name}": _policy(self.name, {
            **safe, "dead-letter-routing-key": self.parking_queue,
            "delivery-limit": self.delivery_limit})}
        for attempt, delay in enumerate(self.retry_delays_ms, start=1):
            queue = self.retry_queue(attempt)
            out[f"lapor.{queue}"] = _policy(queue, {
                **safe, "dead-letter-routing-key": self.name, "message-ttl": delay})
        return out


def _policy(queue: str, definition: dict) -> dict:
    return {"pattern": f"^{re.escape(queue)}$", "definition": definition,
            "priority": POLICY_PRIORITY, "apply-to": "queues"}


# Every process declares the whole topology on connect, so no event published by one service
# is unroutable because its consumer has not started yet (publishers use `mandatory`).
QUEUES: dict[str, QueueSpec] = {
    # Every notification outcome, whoever it was for (events.outcome_key).
    "routing": QueueSpec("routing.events", ("report.submitted", "report.updated",
                                            "report.supported", "notification.#")),
    "notify": QueueSpec("notify.events", ("reporter.registered", "contact.opted_out",
                                          "ticket.*")),
    # The reporter's delivered and failed notices only: their timeline shows nothing else
    # of notify's. "notification.*" takes the outcomes of a notify from before the audience
    # was in the key, while one still runs in a rolling upgrade.
    "intake": QueueSpec("intake.read-model", ("ticket.*", "notification.*",
                                              "notification.reporter.delivered",
                                              "notification.reporter.failed")),
}


def all_policies(queues: Iterable[QueueSpec] | None = None) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for spec in QUEUES.values() if queues is None else queues:
        out.update(spec.policies())
    return out


def connection_parameters(url: str, name: str) -> pika.URLParameters:
    """Parameters for `url`; `heartbeat`, `socket_timeout` and `stack_timeout` given in the
    URL's query win over these defaults."""
    params = pika.URLParameters(url)
    given = set(parse_qs(urlsplit(url).query))
    defaults = {
        "heartbeat": DEFAULT_HEARTBEAT,
        "socket_timeout": 5,
        # A broker that accepts TCP and never completes the handshake fails the attempt here.
        "stack_timeout": 10,
    }
    for key, value in defaults.items():
        if key not in given:
            setattr(params, key, value)
    params.blocked_connection_timeout = 30
    params.connection_attempts = 1
    params.client_properties = {"connection_name": name}
    return params


def declare_topology(channel, queues: Iterable[QueueSpec] | None = None):
    """Declares the exchange, the queues and their bindings; returns the channel to use (a
    new one when the broker closed the first over a queue declared with other arguments)."""
    channel.exchange_declare(EXCHANGE, exchange_type="topic", durable=True)
    for spec in QUEUES.values() if queues is None else queues:
        names = [spec.parking_queue, spec.name,
                 *(spec.retry_queue(n) for n in range(1, len(spec.retry_delays_ms) + 1))]
        for name in names:
            channel = _declare_quorum(channel, name)
        for key in spec.bindings:
            channel.queue_bind(spec.name, EXCHANGE, routing_key=key)
    return channel


def _declare_quorum(channel, name: str):
    try:
        channel.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
        return channel
    except ChannelClosedByBroker as exc:
        if exc.reply_code != 406:  # PRECONDITION_FAILED: it exists with other arguments
            raise
    # Declared by an earlier release with arguments of its own (or as a classic queue): use
    # it as it is rather than fail every declare; its own arguments win over the policies.
    log.warning("queue %s exists with other arguments than this release declares; using it "
                "as it is (delete it when empty to get the current settings)", name)
    channel = channel.connection.channel()
    channel.queue_declare(name, passive=True)
    return channel


class PublishError(Exception):
    """The broker did not confirm the message; the caller keeps it and tries again."""


class Unroutable(PublishError):
    """No queue is bound for the routing key (a topology error, not a transient one)."""


def _properties(envelope_type: str, event_id: str, headers: dict | None = None,
                content_type: str = events.CONTENT_TYPE):
    return pika.BasicProperties(
        content_type=content_type, delivery_mode=pika.DeliveryMode.Persistent,
        message_id=event_id, type=envelope_type, timestamp=int(time.time()),
        headers=headers or {})


# A batch message holds at most this many events and this many bytes of them; the next
# event of the type starts another. (A report may carry 20,000 characters.)
BATCH_EVENTS = 64
BATCH_BYTES = 512 * 1024


@dataclass
class _Outgoing:
    """One message of a publish_many: an event, or several of one type (their positions
    in the call); `message_id` is the event's id, or for a batch its first event's with
    "batch:" before it."""

    key: str
    body: bytes
    message_id: str
    content_type: str
    positions: list[int]


def _outgoing(messages: list[tuple[str, bytes, str]], pack: bool) -> list[_Outgoing]:
    """The messages to send for (routing key, body, event id) events: with `pack`, the
    events of one routing key together, up to BATCH_EVENTS and BATCH_BYTES a message, each
    message where its first event was. Events of one key keep their order; events of
    different keys may pass each other (consumers never relied on that: retries and
    replicas reorder them too)."""
    if not pack:
        return [_Outgoing(key, body, event_id, events.CONTENT_TYPE, [i])
                for i, (key, body, event_id) in enumerate(messages)]
    open_for: dict[str, tuple[list[int], int]] = {}   # key -> (positions, bytes)
    groups: list[list[int]] = []
    for i, (key, body, _event_id) in enumerate(messages):
        current = open_for.get(key)
        if current is not None and len(current[0]) < BATCH_EVENTS and \
                current[1] + len(body) <= BATCH_BYTES:
            current[0].append(i)
            open_for[key] = (current[0], current[1] + len(body))
            continue
        positions = [i]
        groups.append(positions)
        open_for[key] = (positions, len(body))
    out = []
    for positions in groups:
        key, body, event_id = messages[positions[0]]
        if len(positions) == 1:
            out.append(_Outgoing(key, body, event_id, events.CONTENT_TYPE, positions))
        else:
            out.append(_Outgoing(key, events.pack([messages[i][1] for i in positions]),
                                 f"batch:{event_id}", events.BATCH_CONTENT_TYPE, positions))
    return out


# -- policies ---------------------------------------------------------------------------------
def management_url(amqp_url: str) -> str | None:
    """The management API for `amqp_url`'s broker: LAPOR_RABBITMQ_API_URL, "off" for none
    (policies then come from definitions.json), else http://<broker host>:15672; without
    credentials of its own it uses the AMQP URL's."""
    configured = os.environ.get("LAPOR_RABBITMQ_API_URL", "").strip()
    if configured.lower() == "off":
        return None
    amqp = urlsplit(amqp_url)
    api = urlsplit(configured or f"http://{amqp.hostname or '127.0.0.1'}:15672")
    user = api.username or unquote(amqp.username or "guest")
    password = api.password or unquote(amqp.password or "guest")
    host = api.hostname or "127.0.0.1"
    port = f":{api.port}" if api.port else ""
    return (f"{api.scheme}://{quote(unquote(user), safe='')}:{quote(unquote(password), safe='')}"
            f"@{host}{port}{api.path.rstrip('/')}")


class BrokerPolicies:
    """Applies the queue policies to the vhost of `amqp_url` once per process; until that
    succeeds, tries again at most every `retry_every` seconds."""

    _done: set[tuple[str, str]] = set()
    _lock = threading.Lock()

    def __init__(self, amqp_url: str, queues: Iterable[QueueSpec] | None = None,
                 api_url: str | None = "", retry_every: float = 30.0, timeout: float = 5.0):
        self.api_url = management_url(amqp_url) if api_url == "" else api_url
        self.vhost = unquote(urlsplit(amqp_url).path.lstrip("/")) or "/"
        self.policies = all_policies(queues)
        self.retry_every = retry_every
        self.timeout = timeout
        self._last_try = -float("inf")
        self._key = (self.api_url or "", self.vhost,
                     json.dumps(self.policies, sort_keys=True))

    @property
    def applied(self) -> bool:
        return self.api_url is None or self._key in self._done

    def ensure(self) -> bool:
        """Applies them if not yet done and not tried too recently; True once applied."""
        if self.applied:
            POLICIES_APPLIED.set(1)
            return True
        if time.monotonic() - self._last_try < self.retry_every:
            return False
        self._last_try = time.monotonic()
        with self._lock:
            if self._key in self._done:
                return True
            try:
                self._apply()
            except (OSError, http.client.HTTPException, ValueError) as exc:
                POLICIES_APPLIED.set(0)
                log.warning("could not apply the queue policies through the management API "
                            "(%s); retries and parking need them: enable rabbitmq_management "
                            "or load deploy/rabbitmq/definitions.json", _describe(exc))
                return False
            self._done.add(self._key)
        POLICIES_APPLIED.set(1)
        log.info("queue policies applied", extra={"policies": len(self.policies)})
        return True

    def _apply(self) -> None:
        # http.client rather than requests: a few PUTs at start did not justify the 5 MB of
        # modules requests brings into every service process.
        parts = urlsplit(self.api_url)
        credentials = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        headers = {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode(),
                   "Content-Type": "application/json"}
        kind = http.client.HTTPSConnection if parts.scheme == "https" else \
            http.client.HTTPConnection
        connection = kind(parts.hostname or "127.0.0.1", parts.port, timeout=self.timeout)
        vhost = quote(self.vhost, safe="")
        try:
            for name, body in self.policies.items():
                connection.request(
                    "PUT", f"{parts.path}/api/policies/{vhost}/{quote(name, safe='')}",
                    body=json.dumps(body).encode(), headers=headers)
                response = connection.getresponse()
                response.read()
                if response.status not in (200, 201, 204):
                    raise ValueError(f"HTTP {response.status} for policy {name}")
        finally:
            connection.close()


def _describe(exc: Exception) -> str:
    # Only a ValueError's text, which this module wrote; another error's text may quote
    # the address, whose URL carries the broker password.
    return exc.args[0] if isinstance(exc, ValueError) and exc.args else type(exc).__name__


# -- publishing -------------------------------------------------------------------------------
@dataclass
class Published:
    """What the broker said of a batch (publish_many), by position in the batch: confirmed,
    returned as unroutable (confirmed too, but no queue took it), and when the broker failed
    or refused before confirming the rest, why; the positions in none of the lists were not
    confirmed and must be sent again."""

    sent: list[int]
    unroutable: list[int]
    failed: str = ""


class Publisher:
    """A confirmed, mandatory publisher on one connection. Not thread-safe: one per thread.

    A batch goes out whole and its confirms are awaited together (publish_many): waiting for
    each message's confirm before sending the next cost the broker a quorum-queue write and
    the service a round trip per message (0.65 and 0.19 ms of CPU a message against 0.1-0.24
    and 0.04-0.06 ms with sixteen in flight, measured on the project's machine). pika's
    blocking channel only waits message by message, so the confirms are taken on its
    underlying channel (`channel._impl`) and awaited with the blocking channel's own I/O
    loop (`_flush_output`), which ends the wait when the channel or connection closes."""

    def __init__(self, url: str, name: str, confirm_timeout: float | None = None, *,
                 pack: bool = True):
        self.url = url
        self.name = name
        # A batch's events of one routing key go out as one message (_outgoing).
        self.pack = pack
        self.confirm_timeout = CONFIRM_TIMEOUT if confirm_timeout is None else confirm_timeout
        self._connection = None
        self._channel = None
        self._tags = 0                               # delivery tags used on this channel
        self._unconfirmed: dict[int, str] = {}       # delivery tag -> message id
        self._confirmed: dict[str, bool] = {}        # message id -> acked (False: nacked)
        self._returned: set[str] = set()             # message ids the broker could not route

    def _ensure_channel(self):
        if (self._channel is None or not self._channel.is_open
                or not self._connection.is_open):
            self.close()
            connection = pika.BlockingConnection(connection_parameters(self.url, self.name))
            try:
                channel = declare_topology(connection.channel())
                selected = []
                channel._impl.add_on_return_callback(self._on_return)
                channel._impl.confirm_delivery(ack_nack_callback=self._on_confirm,
                                               callback=selected.append)
                channel._flush_output(lambda: bool(selected))
            except BaseException:
                _close_quietly(connection)
                raise
            self._connection, self._channel = connection, channel
            self._tags = 0
            self._unconfirmed.clear()
            self._confirmed.clear()
            self._returned.clear()
        return self._channel

    def _on_return(self, _channel, _method, properties, _body) -> None:
        # Sent before the message's own confirm (RabbitMQ returns, then acks).
        self._returned.add(properties.message_id or "")

    def _on_confirm(self, frame) -> None:
        method = frame.method
        acked = isinstance(method, pika.spec.Basic.Ack)
        tags = ([t for t in self._unconfirmed if t <= method.delivery_tag] if method.multiple
                else [method.delivery_tag])
        for tag in tags:
            message_id = self._unconfirmed.pop(tag, None)
            if message_id is not None:
                self._confirmed[message_id] = acked

    def publish(self, event_type: str, body: bytes, event_id: str) -> None:
        """One message, confirmed; raises Unroutable or PublishError."""
        result = self.publish_many([(event_type, body, event_id)])
        if result.unroutable:
            raise Unroutable(f"no queue bound for {event_type}")
        if not result.sent:
            raise PublishError(result.failed)

    def publish_many(self, messages: list[tuple[str, bytes, str]]) -> Published:
        """Sends (routing key, body, event id) events, as one message each or, with `pack`,
        those of one routing key together (_outgoing), and waits for the broker to confirm
        them all. A connection that died while idle (a broker restart, a missed
        heartbeat) is replaced once, quietly; only a fresh connection's failure is the
        broker's, and then what was confirmed before it still counts."""
        result = Published([], [])
        if not messages:
            return result
        outgoing = _outgoing(messages, self.pack)
        reused = self._channel is not None
        broken = False
        for last in (not reused, True):
            try:
                self._send_and_wait(outgoing)
                break
            except Exception as exc:  # noqa: BLE001 - pika raises plain Exceptions too
                reason = f"broker unreachable: {type(exc).__name__}"
                broken = True
                if last or any(o.message_id in self._confirmed for o in outgoing):
                    # A fresh connection failed, or part of the batch got through (said
                    # rather than sent twice).
                    result.failed = reason
                    break
                self.close(abandon=True)
        for message in outgoing:
            acked = self._confirmed.pop(message.message_id, None)
            if acked is None:
                continue
            if not acked:
                result.failed = result.failed or "broker refused the message (nack)"
            elif message.message_id in self._returned:
                self._returned.discard(message.message_id)
                result.unroutable.extend(message.positions)
            else:
                result.sent.extend(message.positions)
                EVENTS_PUBLISHED.labels(events.type_of_key(message.key)).inc(
                    len(message.positions))
        result.sent.sort()
        result.unroutable.sort()
        if result.failed:
            self.close(abandon=broken)
        return result

    def _send_and_wait(self, outgoing: list[_Outgoing]) -> None:
        channel = self._ensure_channel()
        for message in outgoing:
            self._tags += 1
            self._unconfirmed[self._tags] = message.message_id
            channel._impl.basic_publish(
                EXCHANGE, message.key, message.body,
                properties=_properties(events.type_of_key(message.key), message.message_id,
                                       content_type=message.content_type),
                mandatory=True)
        deadline = time.monotonic() + self.confirm_timeout
        # The timer only wakes the I/O loop at the deadline; the waiter below ends the wait.
        timer = self._connection.call_later(self.confirm_timeout, lambda: None)
        try:
            channel._flush_output(lambda: not self._unconfirmed
                                  or time.monotonic() >= deadline)
        finally:
            if self._connection is not None and self._connection.is_open:
                self._connection.remove_timeout(timer)
        if self._unconfirmed:
            if time.monotonic() >= deadline:
                raise PublishError(f"the broker confirmed nothing more within "
                                   f"{self.confirm_timeout:g} s")
            raise PublishError("channel closed before the broker confirmed")

    def keep_alive(self) -> None:
        """Lets an idle connection answer the broker's heartbeats (call every few seconds)."""
        if self._connection is None:
            return
        try:
            if self._connection.is_open:
                self._connection.process_data_events(time_limit=0)
        except Exception:  # noqa: BLE001 - it is replaced at the next publish
            self.close()

    def check(self) -> bool:
        try:
            self._ensure_channel()
            return True
        except Exception:  # noqa: BLE001
            self.close()
            return False

    def close(self, *, abandon: bool = False) -> None:
        """Closes the connection; with `abandon` (it failed), without the close handshake."""
        connection, self._connection, self._channel = self._connection, None, None
        self._unconfirmed.clear()
        if connection is not None:
            (_abandon if abandon else _close_quietly)(connection)


def _close_quietly(connection) -> None:
    """Closes with the AMQP handshake (the channels', then the connection's), cut after
    CLOSE_TIMEOUT if the broker does not answer it."""
    try:
        if connection.is_open:
            with _answer_within(connection, CLOSE_TIMEOUT):
                # pika's underlying close, not BlockingConnection.close(): after a cut
                # during its channels' handshakes, that one asks the ended connection to
                # close too, which pika logs as an error.
                connection._impl.close(200, "Normal shutdown")
                connection._flush_output(lambda: False)  # until the connection has ended
    except Exception:  # noqa: BLE001 - closing a broken connection
        pass


def _abandon(connection) -> None:
    """Drops a connection that failed without the close handshake, whose answer would never
    come either; pika's loop runs until it has seen the connection end."""
    try:
        if not connection.is_closed:
            _cut(connection)
            connection._flush_output(lambda: False)
    except Exception:  # noqa: BLE001 - the connection ending is the point
        pass


def _cut(connection) -> None:
    """Ends the connection without the handshake, as pika ends one whose heartbeats stopped,
    recorded as closed by this side (private to pika, pinned in constraints.txt)."""
    connection._impl._terminate_stream(pika.exceptions.ConnectionClosedByClient(
        200, "the broker stopped answering"))


@contextlib.contextmanager
def _answer_within(connection, seconds: float):
    """A handshake with the broker (a cancel, a close) inside the block is waited for at
    most `seconds`, then the connection is cut. pika waits for the answer until missed
    heartbeats end the wait, 35-70 s, when the broker has stopped answering. The timer runs
    in pika's own I/O loop, which the blocking calls turn while they wait."""
    impl = connection._impl
    timer = impl._adapter_call_later(
        seconds, lambda: None if impl.is_closed else _cut(connection))
    try:
        yield
    finally:
        timer.cancel()


def _cancel(connection, channel, consumer_tag: str) -> bool:
    """Cancels a subscription, waiting at most CLOSE_TIMEOUT for the broker's Cancel-Ok.
    False when it did not come and the connection was cut: what was unacked goes back to
    the queue, and handlers still running will find no connection to ack on."""
    try:
        with _answer_within(connection, CLOSE_TIMEOUT):
            channel.basic_cancel(consumer_tag)
    except pika.exceptions.AMQPError:
        return False
    return connection.is_open


def broker_reachable(url: str) -> bool:
    """Readiness: a connection can be opened."""
    try:
        connection = pika.BlockingConnection(connection_parameters(url, "lapor-readiness"))
    except Exception:  # noqa: BLE001
        return False
    _close_quietly(connection)
    return True


# -- consuming --------------------------------------------------------------------------------
Handler = Callable[[events_pb2.EventEnvelope], str]
# A context manager under which several handler calls share one transaction (db.batch).
BatchScope = Callable[[], contextlib.AbstractContextManager]


class ConsumerCancelled(Exception):
    """The broker cancelled our subscription (queue deleted, or its leader moved)."""


@dataclass(frozen=True)
class _Settle:
    """What the I/O thread does with a handled message: republish it (retry or park) and ack."""

    outcome: str
    event_type: str
    republish_to: str = ""
    headers: dict | None = None
    # The event's id when it came in a batch (the message's own id is the batch's).
    event_id: str = ""


def attempt_of(headers: dict | None) -> int:
    """The retry attempt a message is on; a header that is not a small number counts as 0."""
    raw = (headers or {}).get(ATTEMPT_HEADER, 0)
    if isinstance(raw, bytes):
        raw = raw.decode("ascii", "replace")
    try:
        value = int(raw)
    except (TypeError, ValueError):
        log.warning("ignoring a malformed %s header", ATTEMPT_HEADER)
        return 0
    return value if 0 <= value < 1000 else 0


class Consumer:
    """Consumes one queue under a supervised loop.

    The handler runs on a worker thread while the connection's own thread keeps answering
    heartbeats, so a slow handler never gets the connection dropped (and its message handled
    twice); acks and republishes go back to the connection's thread. The handler commits its
    own transaction (and dedupes on the event id) and returns "processed" or "duplicate";
    only then is the message acked. A handler that raises sends the message down the retry
    path; after the last delay it is parked for an operator. A handler running longer than
    `handler_timeout` marks the consumer wedged (unhealthy), so the process gets restarted.

    With a `batch` scope (db.batch for the handler's engine), the messages already in hand
    when the handler thread gets to them, up to `batch_max`, are handled under one scope:
    one transaction for all of them, then acked together. When a message arrives while the
    handler thread is idle, the connection's thread first lets more arrive for up to `gather`
    seconds and reads them all at once before handing them over (a stop cuts the wait
    short): messages arriving one by one share a transaction and an ack, and the
    connection's thread wakes once for them rather than once each. A busy handler thread
    finds what arrived meanwhile waiting, so nothing waits then; with `gather` 0 a lone
    message goes through at once. If the batch fails (any handler raised),
    it has been rolled back and the same messages are handled again one by one, each with
    its own outcome: a bad message is retried or parked alone, and the others go through.
    `prepare`, given, is called with a batch's events inside its scope before their
    handlers, to read ahead in one go what they would read one at a time; what it raises
    fails the batch like a handler's error. Events handled one by one are not prepared.

    A message that carries several events (an EventBatch, see Publisher) is taken apart
    first: its events are handled like messages of their own, and it is acked once all of
    them are settled.
    """

    def __init__(self, url: str, spec: QueueSpec, handler: Handler, *, consumer: str,
                 prefetch: int = 32, backoff_cap: float = 30.0, handler_timeout: float = 120.0,
                 policies: BrokerPolicies | None = None, batch: BatchScope | None = None,
                 batch_max: int = DEFAULT_CONSUMER_BATCH, gather: float = 0.0,
                 prepare: Callable[[list[events_pb2.EventEnvelope]], None] | None = None):
        if batch_max < 1:
            raise ValueError("batch_max must be at least 1")
        self.url = url
        self.spec = spec
        self.handler = handler
        self.consumer = consumer
        self.prefetch = prefetch
        self.batch = batch
        self.batch_max = batch_max if batch is not None else 1
        self.gather = gather if self.batch_max > 1 else 0.0
        self.prepare = prepare
        self._stop_wait = threading.Event()
        self.handler_timeout = handler_timeout
        # The whole topology plus this consumer's own queue (tests and tools bring their own).
        self.topology = list({q.name: q for q in (*QUEUES.values(), spec)}.values())
        self.policies = policies if policies is not None else BrokerPolicies(url, self.topology)
        self.consuming = threading.Event()
        self._cancelled = threading.Event()
        # (connection, delivery tag) -> when its handler started. Tags start again at 1 on
        # each connection, and the handler thread of a dropped one may still be finishing.
        self._busy: dict[tuple[object, int], float] = {}
        self._in_hand: set[int] = set()       # delivered to us, not yet acked
        self._drain_until = 0.0
        self.loop = SupervisedLoop(f"consumer-{spec.name}", self._session,
                                   backoff_cap=backoff_cap, stall_after=60.0,
                                   extra_stall=self._handler_wedged)
        init_consumer_metrics(consumer, [t for t in events.CATALOG])

    def start(self) -> Consumer:
        self.loop.start()
        return self

    def stop(self, timeout: float = 30.0) -> bool:
        """Stops taking messages, lets the ones in hand finish and be acked, then closes.
        True when it finished within `timeout`."""
        self._drain_until = time.monotonic() + max(0.0, timeout - 0.5)
        self._stop_wait.set()  # a handler thread gathering takes what it has at once
        return self.loop.stop(timeout)

    def healthy(self) -> bool:
        return self.loop.healthy()

    def _handler_wedged(self) -> bool:
        now = time.monotonic()
        return any(now - started > self.handler_timeout for started in list(self._busy.values()))

    # -- the connection's thread --------------------------------------------------------------
    def _session(self, loop: SupervisedLoop) -> None:
        self.policies.ensure()
        connection = pika.BlockingConnection(
            connection_parameters(self.url, f"{self.consumer}-consumer"))
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"handler-{self.spec.name}")
        self._cancelled.clear()
        self._in_hand.clear()
        # Delivered on this connection and not yet taken by the handler thread, in delivery
        # order; a handler thread of an earlier connection still finishing never sees them.
        waiting: collections.deque = collections.deque()
        # Whether a task for the handler thread is queued and has not yet looked at
        # `waiting`: what arrives meanwhile needs no task of its own. `working`: whether the
        # handler thread is in a task (what arrives meanwhile will be found waiting).
        scheduled, working = [False], [False]
        try:
            channel = declare_topology(connection.channel(), self.topology)
            channel.confirm_delivery()
            channel.basic_qos(prefetch_count=self.prefetch)
            channel.add_on_cancel_callback(lambda _frame: self._cancelled.set())
            tag = channel.basic_consume(self.spec.name,
                                        functools.partial(self._on_message, waiting),
                                        auto_ack=False)
            self.consuming.set()
            loop.ok()
            log.info("consuming %s", self.spec.name)
            while not loop.stopping and not self._cancelled.is_set():
                # Returns as soon as it has dispatched deliveries (into `waiting`).
                connection.process_data_events(time_limit=0.5)
                if waiting and not scheduled[0]:
                    # Queue a handler task (one at most), after gathering more if it is idle.
                    self._gather(connection, waiting, working)
                    scheduled[0] = True
                    worker.submit(self._work, connection, channel, waiting, scheduled, working)
                loop.beat()
                self.policies.ensure()
            if self._cancelled.is_set():
                raise ConsumerCancelled(f"the broker cancelled the subscription to "
                                        f"{self.spec.name}; subscribing again")
            # Stopping: no new messages; the ones in hand finish and are acked; whatever was
            # prefetched but not started goes back to the queue when the channel closes.
            if _cancel(connection, channel, tag):
                while self._busy and time.monotonic() < self._drain_until:
                    connection.process_data_events(time_limit=0.1)
                connection.process_data_events(time_limit=0)
        finally:
            self.consuming.clear()
            worker.shutdown(wait=False, cancel_futures=True)
            _close_quietly(connection)

    def _on_message(self, waiting, channel, method, properties, body: bytes) -> None:
        # In hand even when it is left unhandled below, so that no `multiple` ack covers it.
        self._in_hand.add(method.delivery_tag)
        if self.loop.stopping:
            # Prefetched before stop() and dispatched in the same batch: leave it unacked,
            # so closing the channel hands it back to the queue for another consumer.
            return
        waiting.append((method.delivery_tag, properties, body))

    def _gather(self, connection, waiting, working) -> None:
        """With the handler thread idle and less than a batch waiting, lets more messages
        arrive for up to `gather` seconds, then reads all of them at once. A message read
        on its own cost this thread a wake-up, a read and a dispatch of its own: about
        100 µs of CPU, as much again as the rest of a batched message's handling."""
        if not self.gather or working[0] or len(waiting) >= self.batch_max:
            return
        self._stop_wait.wait(self.gather)
        if not self.loop.stopping:
            connection.process_data_events(time_limit=0)

    def _settle(self, channel, settled: list) -> None:
        """Republishes what goes to a retry or parking queue (each waits for its confirm),
        then acks. A batch that holds every message delivered up to its last one is acked
        with one `multiple` ack: one frame and one socket write instead of one per message."""
        if not channel.is_open:
            return  # from a connection that is gone: the broker redelivers them
        live = [item for item in settled if item[0] in self._in_hand]
        for _tag, properties, body, settle in live:
            if settle.republish_to:
                channel.basic_publish(
                    "", settle.republish_to, body,
                    properties=_properties(properties.type or "",
                                           settle.event_id or properties.message_id or "",
                                           settle.headers,
                                           properties.content_type or events.CONTENT_TYPE),
                    mandatory=True)
        tags = {item[0] for item in live}
        last = max(tags, default=0)
        if len(tags) > 1 and all(tag in tags for tag in self._in_hand if tag <= last):
            channel.basic_ack(last, multiple=True)
        else:
            for tag in sorted(tags):
                channel.basic_ack(tag)
        self._in_hand.difference_update(tags)
        for item in live:
            settle = item[3]
            EVENTS_CONSUMED.labels(self.consumer, settle.event_type, settle.outcome).inc()

    # -- the handler's thread -----------------------------------------------------------------
    def _work(self, connection, channel, waiting: collections.deque, scheduled: list,
              working: list) -> None:
        """Handles what is waiting, in batches of up to batch_max, until nothing is. A task
        is queued only when none is; the flag drops before the first look at `waiting`, so
        a delivery after that look queues the next task, and each delivery costs one task
        at most, not one each."""
        working[0] = True
        scheduled[0] = False
        try:
            self._work_through(connection, channel, waiting)
        finally:
            working[0] = False

    def _work_through(self, connection, channel, waiting: collections.deque) -> None:
        # Only this connection's one handler thread takes from `waiting`.
        while waiting and not self.loop.stopping:
            # (Once stopping, what was not started is handed back when the channel closes.)
            taken = []
            while waiting and len(taken) < self.batch_max:
                taken.append(waiting.popleft())
            started = time.monotonic()
            for tag, _properties, _body in taken:
                self._busy[connection, tag] = started
            try:
                settled = self._handle_taken(taken)
            finally:
                for tag, _properties, _body in taken:
                    self._busy.pop((connection, tag), None)
            try:
                connection.add_callback_threadsafe(
                    functools.partial(self._settle, channel, settled))
            except Exception:  # noqa: BLE001 - the connection closed meanwhile
                log.info("connection gone before the ack; the broker will redeliver the "
                         "messages")
                return

    def _handle_taken(self, taken: list) -> list:
        """(tag, properties, body, settle) for every event of the messages taken: a batch
        message's events are handled as if each had come alone, in transactions of up to
        batch_max, and the message is acked once all of them are settled (so all of them
        are in the one list returned). An event of a batch that fails goes down the retry
        path, and then to the parking lot, alone, as a message of its own."""
        settled, items = [], []
        for tag, properties, body in taken:
            if properties.content_type != events.BATCH_CONTENT_TYPE:
                items.append((tag, properties, body))
                continue
            try:
                bodies = events.unpack(properties.content_type, body)
            except events.BadEvent as exc:
                log.error("parking a malformed batch: %s", exc, extra={"queue": self.spec.name})
                settled.append((tag, properties, body,
                                self._park(properties.headers or {}, "malformed", "malformed")))
                continue
            alone = pika.BasicProperties(content_type=events.CONTENT_TYPE, type=properties.type,
                                         headers=properties.headers)
            items.extend((tag, alone, inner) for inner in bodies)
        for start in range(0, len(items), self.batch_max):
            chunk = items[start:start + self.batch_max]
            if len(chunk) > 1:
                done = self._handle_batch(chunk)
                if done is not None:
                    BATCH_SIZE.labels(self.consumer).observe(len(chunk))
                    settled.extend(done)
                    continue
            for _ in chunk:
                BATCH_SIZE.labels(self.consumer).observe(1)
            settled.extend((tag, properties, body, self._handle(properties, body))
                           for tag, properties, body in chunk)
        return settled

    def _handle_batch(self, taken: list) -> list | None:
        """The messages' handlers under one batch scope; None if the batch failed (and was
        rolled back): the caller then handles them one by one. A malformed message never
        goes into a batch."""
        try:
            envelopes = [events.decode(body) for _tag, _properties, body in taken]
        except events.BadEvent:
            return None
        outcomes = []
        try:
            with self.batch():
                if self.prepare is not None:
                    self.prepare(envelopes)
                for envelope in envelopes:
                    with logs.bound(tracking_id=envelope.aggregate_id,
                                    event_id=envelope.event_id):
                        outcomes.append(self.handler(envelope))
        except Exception as exc:  # noqa: BLE001 - each is handled again on its own
            log.info("a batch of %d failed (%s); handling them one by one", len(taken),
                     type(exc).__name__, extra={"queue": self.spec.name})
            return None
        return [(tag, properties, body, _Settle(str(outcome), envelope.type,
                                                event_id=envelope.event_id))
                for (tag, properties, body), envelope, outcome
                in zip(taken, envelopes, outcomes, strict=True)]

    def _handle(self, properties, body: bytes) -> _Settle:
        headers = properties.headers or {}
        try:
            envelope = events.decode(body)
        except events.BadEvent as exc:
            log.error("parking a malformed message: %s", exc, extra={"queue": self.spec.name})
            return self._park(headers, "malformed", "malformed")
        attempt = attempt_of(headers)
        with logs.bound(tracking_id=envelope.aggregate_id, event_id=envelope.event_id):
            try:
                outcome = self.handler(envelope)
            except events.BadEvent as exc:
                log.error("parking %s: %s", envelope.type, exc)
                return self._park(headers, "malformed", envelope.type, envelope.event_id)
            except Exception:
                log.exception("handling %s failed (attempt %d)", envelope.type, attempt + 1)
                if attempt < len(self.spec.retry_delays_ms):
                    return _Settle("retried", envelope.type, self.spec.retry_queue(attempt + 1),
                                   {**headers, ATTEMPT_HEADER: attempt + 1}, envelope.event_id)
                return self._park(headers, "handler failed after retries", envelope.type,
                                  envelope.event_id)
        return _Settle(str(outcome), envelope.type, event_id=envelope.event_id)

    def _park(self, headers: dict, reason: str, event_type: str,
              event_id: str = "") -> _Settle:
        return _Settle("parked", event_type, self.spec.parking_queue,
                       {**headers, REASON_HEADER: reason}, event_id)
