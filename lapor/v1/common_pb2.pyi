import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReportKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPORT_KIND_UNSPECIFIED: _ClassVar[ReportKind]
    REPORT_KIND_PENGADUAN: _ClassVar[ReportKind]
    REPORT_KIND_ASPIRASI: _ClassVar[ReportKind]
    REPORT_KIND_PERMINTAAN_INFORMASI: _ClassVar[ReportKind]

class TicketState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TICKET_STATE_UNSPECIFIED: _ClassVar[TicketState]
    TICKET_STATE_SUBMITTED: _ClassVar[TicketState]
    TICKET_STATE_ON_HOLD: _ClassVar[TicketState]
    TICKET_STATE_DISPATCHED: _ClassVar[TicketState]
    TICKET_STATE_FOLLOWED_UP: _ClassVar[TicketState]
    TICKET_STATE_REPORTER_REPLIED: _ClassVar[TicketState]
    TICKET_STATE_CLOSED: _ClassVar[TicketState]
    TICKET_STATE_ARCHIVED: _ClassVar[TicketState]
REPORT_KIND_UNSPECIFIED: ReportKind
REPORT_KIND_PENGADUAN: ReportKind
REPORT_KIND_ASPIRASI: ReportKind
REPORT_KIND_PERMINTAAN_INFORMASI: ReportKind
TICKET_STATE_UNSPECIFIED: TicketState
TICKET_STATE_SUBMITTED: TicketState
TICKET_STATE_ON_HOLD: TicketState
TICKET_STATE_DISPATCHED: TicketState
TICKET_STATE_FOLLOWED_UP: TicketState
TICKET_STATE_REPORTER_REPLIED: TicketState
TICKET_STATE_CLOSED: TicketState
TICKET_STATE_ARCHIVED: TicketState

class GeoPoint(_message.Message):
    __slots__ = ("latitude", "longitude")
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    latitude: float
    longitude: float
    def __init__(self, latitude: _Optional[float] = ..., longitude: _Optional[float] = ...) -> None: ...

class Agency(_message.Message):
    __slots__ = ("code", "name", "level", "region_code", "parent_code")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    PARENT_CODE_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    level: str
    region_code: str
    parent_code: str
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ..., level: _Optional[str] = ..., region_code: _Optional[str] = ..., parent_code: _Optional[str] = ...) -> None: ...

class ReportContent(_message.Message):
    __slots__ = ("kind", "title", "body", "region_code", "region_name", "category", "anonymous", "confidential", "reporter_name", "channel", "incident_date", "location", "address", "target_agency", "submitted_at")
    KIND_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    BODY_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    REGION_NAME_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENTIAL_FIELD_NUMBER: _ClassVar[int]
    REPORTER_NAME_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_DATE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    TARGET_AGENCY_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_AT_FIELD_NUMBER: _ClassVar[int]
    kind: ReportKind
    title: str
    body: str
    region_code: str
    region_name: str
    category: str
    anonymous: bool
    confidential: bool
    reporter_name: str
    channel: str
    incident_date: str
    location: GeoPoint
    address: str
    target_agency: str
    submitted_at: _timestamp_pb2.Timestamp
    def __init__(self, kind: _Optional[_Union[ReportKind, str]] = ..., title: _Optional[str] = ..., body: _Optional[str] = ..., region_code: _Optional[str] = ..., region_name: _Optional[str] = ..., category: _Optional[str] = ..., anonymous: _Optional[bool] = ..., confidential: _Optional[bool] = ..., reporter_name: _Optional[str] = ..., channel: _Optional[str] = ..., incident_date: _Optional[str] = ..., location: _Optional[_Union[GeoPoint, _Mapping]] = ..., address: _Optional[str] = ..., target_agency: _Optional[str] = ..., submitted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
