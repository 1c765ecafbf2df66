import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from lapor.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SuggestRouteRequest(_message.Message):
    __slots__ = ("kind", "title", "body", "region_code", "category")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    kind: _common_pb2.ReportKind
    title: str
    body: str
    region_code: str
    category: str
    def __init__(self, kind: _Optional[_Union[_common_pb2.ReportKind, str]] = ..., title: _Optional[str] = ..., body: _Optional[str] = ..., region_code: _Optional[str] = ..., category: _Optional[str] = ...) -> None: ...

class SuggestRouteResponse(_message.Message):
    __slots__ = ("category", "category_name", "confidence", "agency", "needs_triage", "explanation")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_NAME_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    NEEDS_TRIAGE_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    category: str
    category_name: str
    confidence: float
    agency: _common_pb2.Agency
    needs_triage: bool
    explanation: str
    def __init__(self, category: _Optional[str] = ..., category_name: _Optional[str] = ..., confidence: _Optional[float] = ..., agency: _Optional[_Union[_common_pb2.Agency, _Mapping]] = ..., needs_triage: _Optional[bool] = ..., explanation: _Optional[str] = ...) -> None: ...

class GetTicketRequest(_message.Message):
    __slots__ = ("tracking_id",)
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    def __init__(self, tracking_id: _Optional[str] = ...) -> None: ...

class TimelineEntry(_message.Message):
    __slots__ = ("at", "state", "actor_role", "agency_code", "note")
    AT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ROLE_FIELD_NUMBER: _ClassVar[int]
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    state: _common_pb2.TicketState
    actor_role: str
    agency_code: str
    note: str
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[_common_pb2.TicketState, str]] = ..., actor_role: _Optional[str] = ..., agency_code: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class Ticket(_message.Message):
    __slots__ = ("ticket_id", "tracking_id", "state", "agency", "category", "deadline", "deadline_zone", "created_at", "updated_at", "timeline", "region_code")
    TICKET_ID_FIELD_NUMBER: _ClassVar[int]
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_ZONE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    ticket_id: str
    tracking_id: str
    state: _common_pb2.TicketState
    agency: _common_pb2.Agency
    category: str
    deadline: _timestamp_pb2.Timestamp
    deadline_zone: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    timeline: _containers.RepeatedCompositeFieldContainer[TimelineEntry]
    region_code: str
    def __init__(self, ticket_id: _Optional[str] = ..., tracking_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.TicketState, str]] = ..., agency: _Optional[_Union[_common_pb2.Agency, _Mapping]] = ..., category: _Optional[str] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deadline_zone: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., timeline: _Optional[_Iterable[_Union[TimelineEntry, _Mapping]]] = ..., region_code: _Optional[str] = ...) -> None: ...

class GetAgencyRequest(_message.Message):
    __slots__ = ("code",)
    CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    def __init__(self, code: _Optional[str] = ...) -> None: ...

class ListAgenciesRequest(_message.Message):
    __slots__ = ("region_code", "page_size", "page_token")
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    region_code: str
    page_size: int
    page_token: str
    def __init__(self, region_code: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListAgenciesResponse(_message.Message):
    __slots__ = ("agencies", "next_page_token")
    AGENCIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    agencies: _containers.RepeatedCompositeFieldContainer[_common_pb2.Agency]
    next_page_token: str
    def __init__(self, agencies: _Optional[_Iterable[_Union[_common_pb2.Agency, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
