"""The event envelope: building, encoding and decoding events of the catalog."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError, Message

from lapor.v1 import events_pb2
from services.infra import randomness

SCHEMA_VERSION = 1

# Event type -> payload message. A type never changes meaning (DESIGN §3).
CATALOG: dict[str, type[Message]] = {
    "report.submitted": events_pb2.ReportSubmitted,
    "reporter.registered": events_pb2.ReporterRegistered,
    "contact.opted_out": events_pb2.ContactOptedOut,
    "report.updated": events_pb2.ReportUpdated,
    "ticket.dispatched": events_pb2.TicketDispatched,
    "ticket.status_changed": events_pb2.TicketStatusChanged,
    "ticket.sla_warning": events_pb2.TicketSlaWarning,
    "ticket.escalated": events_pb2.TicketEscalated,
    "ticket.message": events_pb2.TicketMessage,
    "ticket.linked": events_pb2.TicketLinked,
    "report.supported": events_pb2.ReportSupported,
    "notification.delivered": events_pb2.NotificationOutcome,
    "notification.failed": events_pb2.NotificationOutcome,
    "notification.skipped": events_pb2.NotificationOutcome,
}


# Events are published under their type as the routing key, but for a notification's outcome,
# which goes under "notification.<audience>.<outcome>": intake's read model binds only the
# reporter's, and so never receives (to drop) the agencies' and the admin's, one event in
# eight of a report's. The envelope's type stays "notification.<outcome>".
OUTCOME_PREFIX = "notification."


def outcome_key(audience: str, outcome: str) -> str:
    """The routing key of a notification outcome for `audience` (reporter, agency, ...)."""
    return f"{OUTCOME_PREFIX}{audience}.{outcome}"


def type_of_key(routing_key: str) -> str:
    """The event type published under `routing_key`: the key itself, or for an outcome's
    "notification.<audience>.<outcome>" the type "notification.<outcome>"."""
    if routing_key.startswith(OUTCOME_PREFIX) and routing_key.count(".") == 2:
        return OUTCOME_PREFIX + routing_key.rpartition(".")[2]
    return routing_key


class BadEvent(ValueError):
    """A message that is not a well-formed event of the catalog; it is parked, not retried."""


# A message holding several events of one type (EventBatch); any other content type is one
# event. Publishers send a relay round's events of one type as one message (messaging.
# Publisher); consumers take each event out and handle it as if it had come alone.
CONTENT_TYPE = "application/x-protobuf"
BATCH_CONTENT_TYPE = "application/x-lapor-event-batch"


def pack(bodies: list[bytes]) -> bytes:
    """One message body for several serialized envelopes of one type."""
    return events_pb2.EventBatch(events=bodies).SerializeToString()


def unpack(content_type: str | None, body: bytes) -> list[bytes]:
    """The serialized envelopes a message carries: its body, or a batch's events."""
    if content_type != BATCH_CONTENT_TYPE:
        return [body]
    batch = events_pb2.EventBatch()
    try:
        batch.ParseFromString(body)
    except DecodeError as exc:
        raise BadEvent(f"not an EventBatch: {exc}") from None
    if not batch.events:
        raise BadEvent("an EventBatch without events")
    return list(batch.events)


_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=UTC)


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    """As `Timestamp.FromDatetime` (a naive datetime is UTC), by arithmetic on the datetime:
    the library's way through `utctimetuple` and `calendar.timegm` took three times as long,
    and a report's events take several."""
    since = value - (_EPOCH if value.utcoffset() is None else _EPOCH_UTC)
    return timestamp_pb2.Timestamp(seconds=since.days * 86400 + since.seconds,
                                   nanos=since.microseconds * 1000)


def now() -> timestamp_pb2.Timestamp:
    """The current time to the microsecond, as `Timestamp.GetCurrentTime` gives it."""
    seconds, nanos = divmod(time.time_ns(), 1_000_000_000)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos // 1000 * 1000)


def new(event_type: str, aggregate_id: str, payload: Message, producer: str,
        occurred_at: datetime | None = None) -> events_pb2.EventEnvelope:
    expected = CATALOG.get(event_type)
    if expected is None:
        raise ValueError(f"unknown event type {event_type!r}; add it to the catalog first")
    if not isinstance(payload, expected):
        raise TypeError(f"{event_type} carries {expected.__name__}, not {type(payload).__name__}")
    envelope = events_pb2.EventEnvelope(
        event_id=randomness.uuid4(), type=event_type, producer=producer,
        aggregate_id=aggregate_id, schema_version=SCHEMA_VERSION,
        occurred_at=now() if occurred_at is None else timestamp(occurred_at))
    envelope.payload.Pack(payload)
    return envelope


def decode(body: bytes) -> events_pb2.EventEnvelope:
    envelope = events_pb2.EventEnvelope()
    try:
        envelope.ParseFromString(body)
    except DecodeError as exc:
        raise BadEvent(f"not an EventEnvelope: {exc}") from None
    if not envelope.event_id or envelope.type not in CATALOG:
        raise BadEvent(f"envelope without id or with unknown type {envelope.type!r}")
    return envelope


def payload(envelope: events_pb2.EventEnvelope) -> Message:
    message = CATALOG[envelope.type]()
    if not envelope.payload.Unpack(message):
        raise BadEvent(f"{envelope.type} payload is {envelope.payload.TypeName()}")
    return message

