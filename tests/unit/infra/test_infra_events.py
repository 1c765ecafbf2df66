"""The event envelope on lapor.events: what producers may publish and what consumers park
instead of retrying forever."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from google.protobuf import any_pb2, timestamp_pb2

from lapor.v1 import common_pb2, events_pb2
from services.infra import events

TRACKING_ID = "LPR-7K2-M9Q-4TX"


def submitted() -> events_pb2.ReportSubmitted:
    return events_pb2.ReportSubmitted(tracking_id=TRACKING_ID, report=common_pb2.ReportContent(
        kind=common_pb2.REPORT_KIND_PENGADUAN, title="Jalan rusak berlubang",
        body="Jalan utama Nagari Muaro berlubang besar.", region_code="13.03"))


# DESIGN §3, the first version of the catalog: these routing keys are what queues bind to.
DESIGN_TYPES = ["report.submitted", "reporter.registered", "report.updated",
                "ticket.dispatched", "ticket.status_changed", "ticket.sla_warning",
                "ticket.escalated", "notification.delivered", "notification.failed"]


def test_the_catalog_has_every_type_the_design_promises():
    assert set(DESIGN_TYPES) <= set(events.CATALOG)


def test_an_unknown_type_cannot_be_published():
    with pytest.raises(ValueError, match="report.deleted"):
        events.new("report.deleted", TRACKING_ID, submitted(), producer="intake")


@pytest.mark.parametrize("event_type,payload", [
    ("report.submitted", events_pb2.ReportUpdated(tracking_id=TRACKING_ID)),
    ("ticket.dispatched", events_pb2.TicketStatusChanged(tracking_id=TRACKING_ID)),
    ("notification.failed", events_pb2.ReportSubmitted(tracking_id=TRACKING_ID)),
    ("report.updated", common_pb2.ReportContent()),
])
def test_a_type_with_the_wrong_payload_cannot_be_published(event_type, payload):
    with pytest.raises(TypeError, match=event_type):
        events.new(event_type, TRACKING_ID, payload, producer="intake")


@pytest.mark.parametrize("event_type", DESIGN_TYPES)
def test_every_catalog_type_survives_the_wire(event_type):
    payload_class = events.CATALOG[event_type]
    sent = payload_class(tracking_id=TRACKING_ID)
    envelope = events.new(event_type, TRACKING_ID, sent, producer="routing")
    received = events.decode(envelope.SerializeToString())
    assert received.type == event_type
    assert events.payload(received) == sent


def test_round_trip_keeps_ids_time_producer_and_payload():
    occurred = datetime(2025, 3, 3, 9, 15, 30, 123456, tzinfo=ZoneInfo("Asia/Jakarta"))
    sent = submitted()
    envelope = events.new("report.submitted", TRACKING_ID, sent, producer="intake",
                          occurred_at=occurred)
    received = events.decode(envelope.SerializeToString())
    assert received.event_id == envelope.event_id
    assert uuid.UUID(received.event_id)  # consumers dedupe on it
    assert received.aggregate_id == TRACKING_ID
    assert received.producer == "intake"
    assert received.schema_version == events.SCHEMA_VERSION
    assert received.occurred_at.ToDatetime(tzinfo=UTC) == occurred
    payload = events.payload(received)
    assert isinstance(payload, events_pb2.ReportSubmitted)
    assert payload == sent
    assert payload.report.title == "Jalan rusak berlubang"


def test_occurred_at_defaults_to_now():
    before = datetime.now(UTC)
    envelope = events.new("report.submitted", TRACKING_ID, submitted(), producer="intake")
    stamped = envelope.occurred_at.ToDatetime(tzinfo=UTC)
    assert before - timedelta(seconds=1) <= stamped <= datetime.now(UTC) + timedelta(seconds=1)


@pytest.mark.parametrize("value", [
    datetime(2025, 3, 3, 9, 15, 30, 123456),  # naive: UTC
    datetime(2025, 3, 3, 9, 15, 30, 123456, tzinfo=ZoneInfo("Asia/Jakarta")),
    datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=ZoneInfo("Asia/Jayapura")),
    datetime(1969, 12, 31, 23, 59, 59, 500000),  # before the epoch
    datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999),
])
def test_a_time_is_stamped_as_the_protobuf_library_stamps_it(value):
    library = timestamp_pb2.Timestamp()
    library.FromDatetime(value)
    assert events.timestamp(value) == library


def test_every_event_gets_its_own_id():
    ids = {events.new("report.submitted", TRACKING_ID, submitted(), producer="intake").event_id
           for _ in range(100)}
    assert len(ids) == 100


@pytest.mark.parametrize("body", [
    b"\xff\xff\xff\xff", b"garbage, not protobuf", b'{"type": "report.submitted"}',
    b"\x0a\x03\xff\xfe\xfd",  # event_id with invalid UTF-8
])
def test_garbage_is_a_bad_event(body):
    with pytest.raises(events.BadEvent):
        events.decode(body)


def test_an_empty_message_is_a_bad_event():
    with pytest.raises(events.BadEvent):
        events.decode(b"")


def test_an_envelope_of_an_unknown_type_is_a_bad_event():
    envelope = events.new("report.submitted", TRACKING_ID, submitted(), producer="intake")
    envelope.type = "report.deleted"
    with pytest.raises(events.BadEvent, match="report.deleted"):
        events.decode(envelope.SerializeToString())


def test_an_envelope_without_event_id_is_a_bad_event():
    # Without an id the consumer cannot dedupe; retrying it would process it twice.
    envelope = events.new("report.submitted", TRACKING_ID, submitted(), producer="intake")
    envelope.event_id = ""
    with pytest.raises(events.BadEvent):
        events.decode(envelope.SerializeToString())


def test_a_payload_that_does_not_match_its_type_is_a_bad_event():
    envelope = events.new("report.submitted", TRACKING_ID, submitted(), producer="intake")
    wrong = any_pb2.Any()
    wrong.Pack(events_pb2.ReportUpdated(tracking_id=TRACKING_ID, message="tambahan"))
    envelope.payload.CopyFrom(wrong)
    received = events.decode(envelope.SerializeToString())
    with pytest.raises(events.BadEvent, match="ReportUpdated"):
        events.payload(received)


def test_bad_event_is_a_value_error_for_generic_handlers():
    assert issubclass(events.BadEvent, ValueError)


def test_an_outcome_is_published_under_its_audience_and_read_back_as_its_type():
    for audience in ("reporter", "agency", "national_admin"):
        for outcome in ("delivered", "failed", "skipped"):
            key = events.outcome_key(audience, outcome)
            assert key == f"notification.{audience}.{outcome}"
            assert events.type_of_key(key) == f"notification.{outcome}"
            assert events.type_of_key(key) in events.CATALOG
    # Every other key is the event's own type.
    for event_type in events.CATALOG:
        assert events.type_of_key(event_type) == event_type


# -- batches: a relay round's events of one type in one message ---------------------------------
def test_a_relay_rounds_events_are_packed_by_routing_key_in_order_within_each():
    from services.infra import messaging

    keys = ["report.submitted", "reporter.registered"] * 3 + ["report.updated"]
    messages = [(key, f"{key}#{i}".encode(), f"id-{i}") for i, key in enumerate(keys)]
    out = messaging._outgoing(messages, pack=True)
    assert [(o.key, o.positions) for o in out] == [
        ("report.submitted", [0, 2, 4]), ("reporter.registered", [1, 3, 5]),
        ("report.updated", [6])]
    assert out[0].content_type == events.BATCH_CONTENT_TYPE
    assert out[0].message_id == "batch:id-0"
    assert events.unpack(out[0].content_type, out[0].body) == [
        b"report.submitted#0", b"report.submitted#2", b"report.submitted#4"]
    # A lone event stays the message it always was.
    assert (out[2].content_type, out[2].body, out[2].message_id) == (
        events.CONTENT_TYPE, b"report.updated#6", "id-6")
    # Packing off: one message each, in order.
    assert [o.positions for o in messaging._outgoing(messages, pack=False)] == [
        [i] for i in range(7)]


def test_a_batch_stops_at_its_count_and_size_and_the_next_event_starts_another():
    from services.infra import messaging

    many = [("ticket.dispatched", b"x", f"id-{i}") for i in range(messaging.BATCH_EVENTS + 1)]
    assert [len(o.positions) for o in messaging._outgoing(many, pack=True)] == [
        messaging.BATCH_EVENTS, 1]
    big = b"y" * (messaging.BATCH_BYTES // 2)
    large = [("report.submitted", big, f"id-{i}") for i in range(3)]
    assert [o.positions for o in messaging._outgoing(large, pack=True)] == [[0, 1], [2]]


def test_a_batch_that_is_not_one_is_refused_as_malformed():
    with pytest.raises(events.BadEvent):
        events.unpack(events.BATCH_CONTENT_TYPE, b"\xff\xfe")
    with pytest.raises(events.BadEvent):
        events.unpack(events.BATCH_CONTENT_TYPE, b"")
    assert events.unpack(events.CONTENT_TYPE, b"\xff") == [b"\xff"]
