import datetime

from google.protobuf import any_pb2 as _any_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from lapor.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EventEnvelope(_message.Message):
    __slots__ = ("event_id", "type", "occurred_at", "producer", "aggregate_id", "schema_version", "payload")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    PRODUCER_FIELD_NUMBER: _ClassVar[int]
    AGGREGATE_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    type: str
    occurred_at: _timestamp_pb2.Timestamp
    producer: str
    aggregate_id: str
    schema_version: int
    payload: _any_pb2.Any
    def __init__(self, event_id: _Optional[str] = ..., type: _Optional[str] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., producer: _Optional[str] = ..., aggregate_id: _Optional[str] = ..., schema_version: _Optional[int] = ..., payload: _Optional[_Union[_any_pb2.Any, _Mapping]] = ...) -> None: ...

class EventBatch(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, events: _Optional[_Iterable[bytes]] = ...) -> None: ...

class ReportSubmitted(_message.Message):
    __slots__ = ("tracking_id", "report")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    report: _common_pb2.ReportContent
    def __init__(self, tracking_id: _Optional[str] = ..., report: _Optional[_Union[_common_pb2.ReportContent, _Mapping]] = ...) -> None: ...

class ReporterRegistered(_message.Message):
    __slots__ = ("tracking_id", "name", "email", "phone", "language", "anonymous", "channel")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    name: str
    email: str
    phone: str
    language: str
    anonymous: bool
    channel: str
    def __init__(self, tracking_id: _Optional[str] = ..., name: _Optional[str] = ..., email: _Optional[str] = ..., phone: _Optional[str] = ..., language: _Optional[str] = ..., anonymous: _Optional[bool] = ..., channel: _Optional[str] = ...) -> None: ...

class ContactOptedOut(_message.Message):
    __slots__ = ("channel", "phone", "opted_out")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    PHONE_FIELD_NUMBER: _ClassVar[int]
    OPTED_OUT_FIELD_NUMBER: _ClassVar[int]
    channel: str
    phone: str
    opted_out: bool
    def __init__(self, channel: _Optional[str] = ..., phone: _Optional[str] = ..., opted_out: _Optional[bool] = ...) -> None: ...

class ReportUpdated(_message.Message):
    __slots__ = ("tracking_id", "message", "at")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    message: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, tracking_id: _Optional[str] = ..., message: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TicketDispatched(_message.Message):
    __slots__ = ("tracking_id", "ticket_id", "agency", "deadline", "deadline_zone", "working_days", "category", "confidence", "decision", "report", "actor_role", "ticket_version", "subcategory")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_ZONE_FIELD_NUMBER: _ClassVar[int]
    WORKING_DAYS_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ROLE_FIELD_NUMBER: _ClassVar[int]
    TICKET_VERSION_FIELD_NUMBER: _ClassVar[int]
    SUBCATEGORY_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    ticket_id: str
    agency: _common_pb2.Agency
    deadline: _timestamp_pb2.Timestamp
    deadline_zone: str
    working_days: int
    category: str
    confidence: float
    decision: str
    report: _common_pb2.ReportContent
    actor_role: str
    ticket_version: int
    subcategory: str
    def __init__(self, tracking_id: _Optional[str] = ..., ticket_id: _Optional[str] = ..., agency: _Optional[_Union[_common_pb2.Agency, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deadline_zone: _Optional[str] = ..., working_days: _Optional[int] = ..., category: _Optional[str] = ..., confidence: _Optional[float] = ..., decision: _Optional[str] = ..., report: _Optional[_Union[_common_pb2.ReportContent, _Mapping]] = ..., actor_role: _Optional[str] = ..., ticket_version: _Optional[int] = ..., subcategory: _Optional[str] = ...) -> None: ...

class TicketStatusChanged(_message.Message):
    __slots__ = ("tracking_id", "ticket_id", "from_state", "to_state", "actor_role", "deadline", "deadline_zone", "public_note", "agency", "ticket_version", "action", "reporter_note", "confidential")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ROLE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_ZONE_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_NOTE_FIELD_NUMBER: _ClassVar[int]
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    TICKET_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REPORTER_NOTE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENTIAL_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    ticket_id: str
    from_state: _common_pb2.TicketState
    to_state: _common_pb2.TicketState
    actor_role: str
    deadline: _timestamp_pb2.Timestamp
    deadline_zone: str
    public_note: str
    agency: _common_pb2.Agency
    ticket_version: int
    action: str
    reporter_note: str
    confidential: bool
    def __init__(self, tracking_id: _Optional[str] = ..., ticket_id: _Optional[str] = ..., from_state: _Optional[_Union[_common_pb2.TicketState, str]] = ..., to_state: _Optional[_Union[_common_pb2.TicketState, str]] = ..., actor_role: _Optional[str] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deadline_zone: _Optional[str] = ..., public_note: _Optional[str] = ..., agency: _Optional[_Union[_common_pb2.Agency, _Mapping]] = ..., ticket_version: _Optional[int] = ..., action: _Optional[str] = ..., reporter_note: _Optional[str] = ..., confidential: _Optional[bool] = ...) -> None: ...

class TicketSlaWarning(_message.Message):
    __slots__ = ("tracking_id", "ticket_id", "stage", "deadline", "agency", "ticket_version", "clock", "deadline_zone")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    TICKET_VERSION_FIELD_NUMBER: _ClassVar[int]
    CLOCK_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_ZONE_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    ticket_id: str
    stage: _common_pb2.TicketState
    deadline: _timestamp_pb2.Timestamp
    agency: _common_pb2.Agency
    ticket_version: int
    clock: str
    deadline_zone: str
    def __init__(self, tracking_id: _Optional[str] = ..., ticket_id: _Optional[str] = ..., stage: _Optional[_Union[_common_pb2.TicketState, str]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., agency: _Optional[_Union[_common_pb2.Agency, _Mapping]] = ..., ticket_version: _Optional[int] = ..., clock: _Optional[str] = ..., deadline_zone: _Optional[str] = ...) -> None: ...

class TicketEscalated(_message.Message):
    __slots__ = ("tracking_id", "ticket_id", "stage", "level", "from_agency", "to_agency", "deadline", "reason", "ticket_version", "kind", "deadline_zone")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    FROM_AGENCY_FIELD_NUMBER: _ClassVar[int]
    TO_AGENCY_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TICKET_VERSION_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_ZONE_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    ticket_id: str
    stage: _common_pb2.TicketState
    level: int
    from_agency: _common_pb2.Agency
    to_agency: _common_pb2.Agency
    deadline: _timestamp_pb2.Timestamp
    reason: str
    ticket_version: int
    kind: str
    deadline_zone: str
    def __init__(self, tracking_id: _Optional[str] = ..., ticket_id: _Optional[str] = ..., stage: _Optional[_Union[_common_pb2.TicketState, str]] = ..., level: _Optional[int] = ..., from_agency: _Optional[_Union[_common_pb2.Agency, _Mapping]] = ..., to_agency: _Optional[_Union[_common_pb2.Agency, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., ticket_version: _Optional[int] = ..., kind: _Optional[str] = ..., deadline_zone: _Optional[str] = ...) -> None: ...

class TicketMessage(_message.Message):
    __slots__ = ("tracking_id", "ticket_id", "agency", "direction", "text", "ticket_version", "confidential")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TICKET_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFIDENTIAL_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    ticket_id: str
    agency: _common_pb2.Agency
    direction: str
    text: str
    ticket_version: int
    confidential: bool
    def __init__(self, tracking_id: _Optional[str] = ..., ticket_id: _Optional[str] = ..., agency: _Optional[_Union[_common_pb2.Agency, _Mapping]] = ..., direction: _Optional[str] = ..., text: _Optional[str] = ..., ticket_version: _Optional[int] = ..., confidential: _Optional[bool] = ...) -> None: ...

class ReportSupported(_message.Message):
    __slots__ = ("tracking_id", "count")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    count: int
    def __init__(self, tracking_id: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class TicketLinked(_message.Message):
    __slots__ = ("tracking_id", "master_tracking_id", "similarity", "ticket_version", "actor_role", "master_state", "master_agency", "master_deadline", "master_deadline_zone")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    MASTER_TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    TICKET_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ROLE_FIELD_NUMBER: _ClassVar[int]
    MASTER_STATE_FIELD_NUMBER: _ClassVar[int]
    MASTER_AGENCY_FIELD_NUMBER: _ClassVar[int]
    MASTER_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    MASTER_DEADLINE_ZONE_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    master_tracking_id: str
    similarity: float
    ticket_version: int
    actor_role: str
    master_state: _common_pb2.TicketState
    master_agency: _common_pb2.Agency
    master_deadline: _timestamp_pb2.Timestamp
    master_deadline_zone: str
    def __init__(self, tracking_id: _Optional[str] = ..., master_tracking_id: _Optional[str] = ..., similarity: _Optional[float] = ..., ticket_version: _Optional[int] = ..., actor_role: _Optional[str] = ..., master_state: _Optional[_Union[_common_pb2.TicketState, str]] = ..., master_agency: _Optional[_Union[_common_pb2.Agency, _Mapping]] = ..., master_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., master_deadline_zone: _Optional[str] = ...) -> None: ...

class NotificationOutcome(_message.Message):
    __slots__ = ("tracking_id", "delivery_id", "channel", "audience", "attempt", "outcome", "reason", "trigger_type")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_TYPE_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    delivery_id: str
    channel: str
    audience: str
    attempt: int
    outcome: str
    reason: str
    trigger_type: str
    def __init__(self, tracking_id: _Optional[str] = ..., delivery_id: _Optional[str] = ..., channel: _Optional[str] = ..., audience: _Optional[str] = ..., attempt: _Optional[int] = ..., outcome: _Optional[str] = ..., reason: _Optional[str] = ..., trigger_type: _Optional[str] = ...) -> None: ...
