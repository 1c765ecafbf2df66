import datetime

from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from lapor.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Complexity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPLEXITY_UNSPECIFIED: _ClassVar[Complexity]
    COMPLEXITY_SIMPLE: _ClassVar[Complexity]
    COMPLEXITY_DISPUTE: _ClassVar[Complexity]
    COMPLEXITY_FIELD: _ClassVar[Complexity]
COMPLEXITY_UNSPECIFIED: Complexity
COMPLEXITY_SIMPLE: Complexity
COMPLEXITY_DISPUTE: Complexity
COMPLEXITY_FIELD: Complexity

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
    __slots__ = ("category", "confidence", "agency", "needs_triage", "explanation", "subcategory", "subcategory_name", "alternatives", "model_version", "rule", "category_code")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    NEEDS_TRIAGE_FIELD_NUMBER: _ClassVar[int]
    EXPLANATION_FIELD_NUMBER: _ClassVar[int]
    SUBCATEGORY_FIELD_NUMBER: _ClassVar[int]
    SUBCATEGORY_NAME_FIELD_NUMBER: _ClassVar[int]
    ALTERNATIVES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_CODE_FIELD_NUMBER: _ClassVar[int]
    category: str
    confidence: float
    agency: _common_pb2.Agency
    needs_triage: bool
    explanation: str
    subcategory: str
    subcategory_name: str
    alternatives: _containers.RepeatedCompositeFieldContainer[CategoryScore]
    model_version: str
    rule: str
    category_code: str
    def __init__(self, category: _Optional[str] = ..., confidence: _Optional[float] = ..., agency: _Optional[_Union[_common_pb2.Agency, _Mapping]] = ..., needs_triage: _Optional[bool] = ..., explanation: _Optional[str] = ..., subcategory: _Optional[str] = ..., subcategory_name: _Optional[str] = ..., alternatives: _Optional[_Iterable[_Union[CategoryScore, _Mapping]]] = ..., model_version: _Optional[str] = ..., rule: _Optional[str] = ..., category_code: _Optional[str] = ...) -> None: ...

class CategoryScore(_message.Message):
    __slots__ = ("category", "category_code", "confidence")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_CODE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    category: str
    category_code: str
    confidence: float
    def __init__(self, category: _Optional[str] = ..., category_code: _Optional[str] = ..., confidence: _Optional[float] = ...) -> None: ...

class DuplicateCandidate(_message.Message):
    __slots__ = ("tracking_id", "similarity", "resolution")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    similarity: float
    resolution: str
    def __init__(self, tracking_id: _Optional[str] = ..., similarity: _Optional[float] = ..., resolution: _Optional[str] = ...) -> None: ...

class GetTicketRequest(_message.Message):
    __slots__ = ("tracking_id",)
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    def __init__(self, tracking_id: _Optional[str] = ...) -> None: ...

class TimelineEntry(_message.Message):
    __slots__ = ("at", "state", "actor_role", "agency_code", "note", "action")
    AT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ROLE_FIELD_NUMBER: _ClassVar[int]
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    state: _common_pb2.TicketState
    actor_role: str
    agency_code: str
    note: str
    action: str
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[_Union[_common_pb2.TicketState, str]] = ..., actor_role: _Optional[str] = ..., agency_code: _Optional[str] = ..., note: _Optional[str] = ..., action: _Optional[str] = ...) -> None: ...

class ChainEntry(_message.Message):
    __slots__ = ("agency", "reason", "at")
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    agency: _common_pb2.Agency
    reason: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, agency: _Optional[_Union[_common_pb2.Agency, _Mapping]] = ..., reason: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TicketMessageEntry(_message.Message):
    __slots__ = ("at", "direction", "author_role", "text")
    AT_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_ROLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    direction: str
    author_role: str
    text: str
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., direction: _Optional[str] = ..., author_role: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class DeliveryEntry(_message.Message):
    __slots__ = ("at", "channel", "audience", "outcome", "reason")
    AT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    AUDIENCE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    channel: str
    audience: str
    outcome: str
    reason: str
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., channel: _Optional[str] = ..., audience: _Optional[str] = ..., outcome: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class Ticket(_message.Message):
    __slots__ = ("ticket_id", "tracking_id", "state", "agency", "category", "deadline", "deadline_zone", "created_at", "updated_at", "timeline", "region_code", "version", "report", "decision", "confidence", "complexity", "accepted_at", "clock", "overdue", "escalation_level", "oversight_flagged", "support_count", "rating", "rating_comment", "chain", "messages", "deliveries", "allowed_actions", "subcategory", "model_version", "top_categories", "rule", "duplicate_of", "duplicate_candidates")
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
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    COMPLEXITY_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_AT_FIELD_NUMBER: _ClassVar[int]
    CLOCK_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    OVERSIGHT_FLAGGED_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_COUNT_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    RATING_COMMENT_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    SUBCATEGORY_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    TOP_CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_OF_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
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
    version: int
    report: _common_pb2.ReportContent
    decision: str
    confidence: float
    complexity: Complexity
    accepted_at: _timestamp_pb2.Timestamp
    clock: str
    overdue: bool
    escalation_level: int
    oversight_flagged: bool
    support_count: int
    rating: int
    rating_comment: str
    chain: _containers.RepeatedCompositeFieldContainer[ChainEntry]
    messages: _containers.RepeatedCompositeFieldContainer[TicketMessageEntry]
    deliveries: _containers.RepeatedCompositeFieldContainer[DeliveryEntry]
    allowed_actions: _containers.RepeatedScalarFieldContainer[str]
    subcategory: str
    model_version: str
    top_categories: _containers.RepeatedCompositeFieldContainer[CategoryScore]
    rule: str
    duplicate_of: str
    duplicate_candidates: _containers.RepeatedCompositeFieldContainer[DuplicateCandidate]
    def __init__(self, ticket_id: _Optional[str] = ..., tracking_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.TicketState, str]] = ..., agency: _Optional[_Union[_common_pb2.Agency, _Mapping]] = ..., category: _Optional[str] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deadline_zone: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., timeline: _Optional[_Iterable[_Union[TimelineEntry, _Mapping]]] = ..., region_code: _Optional[str] = ..., version: _Optional[int] = ..., report: _Optional[_Union[_common_pb2.ReportContent, _Mapping]] = ..., decision: _Optional[str] = ..., confidence: _Optional[float] = ..., complexity: _Optional[_Union[Complexity, str]] = ..., accepted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., clock: _Optional[str] = ..., overdue: _Optional[bool] = ..., escalation_level: _Optional[int] = ..., oversight_flagged: _Optional[bool] = ..., support_count: _Optional[int] = ..., rating: _Optional[int] = ..., rating_comment: _Optional[str] = ..., chain: _Optional[_Iterable[_Union[ChainEntry, _Mapping]]] = ..., messages: _Optional[_Iterable[_Union[TicketMessageEntry, _Mapping]]] = ..., deliveries: _Optional[_Iterable[_Union[DeliveryEntry, _Mapping]]] = ..., allowed_actions: _Optional[_Iterable[str]] = ..., subcategory: _Optional[str] = ..., model_version: _Optional[str] = ..., top_categories: _Optional[_Iterable[_Union[CategoryScore, _Mapping]]] = ..., rule: _Optional[str] = ..., duplicate_of: _Optional[str] = ..., duplicate_candidates: _Optional[_Iterable[_Union[DuplicateCandidate, _Mapping]]] = ...) -> None: ...

class Principal(_message.Message):
    __slots__ = ("username", "display_name", "role", "agency")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    username: str
    display_name: str
    role: str
    agency: _common_pb2.Agency
    def __init__(self, username: _Optional[str] = ..., display_name: _Optional[str] = ..., role: _Optional[str] = ..., agency: _Optional[_Union[_common_pb2.Agency, _Mapping]] = ...) -> None: ...

class ListTicketsRequest(_message.Message):
    __slots__ = ("states", "overdue_only", "category", "region_code", "text", "agency_code", "page_size", "page_token")
    STATES_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_ONLY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[_common_pb2.TicketState]
    overdue_only: bool
    category: str
    region_code: str
    text: str
    agency_code: str
    page_size: int
    page_token: str
    def __init__(self, states: _Optional[_Iterable[_Union[_common_pb2.TicketState, str]]] = ..., overdue_only: _Optional[bool] = ..., category: _Optional[str] = ..., region_code: _Optional[str] = ..., text: _Optional[str] = ..., agency_code: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class TicketSummary(_message.Message):
    __slots__ = ("tracking_id", "state", "agency", "category", "title", "region_code", "deadline", "deadline_zone", "overdue", "version", "created_at", "escalation_level", "support_count")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    REGION_CODE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_ZONE_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ESCALATION_LEVEL_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_COUNT_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    state: _common_pb2.TicketState
    agency: _common_pb2.Agency
    category: str
    title: str
    region_code: str
    deadline: _timestamp_pb2.Timestamp
    deadline_zone: str
    overdue: bool
    version: int
    created_at: _timestamp_pb2.Timestamp
    escalation_level: int
    support_count: int
    def __init__(self, tracking_id: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.TicketState, str]] = ..., agency: _Optional[_Union[_common_pb2.Agency, _Mapping]] = ..., category: _Optional[str] = ..., title: _Optional[str] = ..., region_code: _Optional[str] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deadline_zone: _Optional[str] = ..., overdue: _Optional[bool] = ..., version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., escalation_level: _Optional[int] = ..., support_count: _Optional[int] = ...) -> None: ...

class ListTicketsResponse(_message.Message):
    __slots__ = ("tickets", "next_page_token")
    TICKETS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tickets: _containers.RepeatedCompositeFieldContainer[TicketSummary]
    next_page_token: str
    def __init__(self, tickets: _Optional[_Iterable[_Union[TicketSummary, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class AuditEntry(_message.Message):
    __slots__ = ("at", "actor", "actor_role", "action", "from_state", "to_state", "from_agency", "to_agency", "reason", "note", "version")
    AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ACTOR_ROLE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    FROM_STATE_FIELD_NUMBER: _ClassVar[int]
    TO_STATE_FIELD_NUMBER: _ClassVar[int]
    FROM_AGENCY_FIELD_NUMBER: _ClassVar[int]
    TO_AGENCY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    actor: str
    actor_role: str
    action: str
    from_state: _common_pb2.TicketState
    to_state: _common_pb2.TicketState
    from_agency: str
    to_agency: str
    reason: str
    note: str
    version: int
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor: _Optional[str] = ..., actor_role: _Optional[str] = ..., action: _Optional[str] = ..., from_state: _Optional[_Union[_common_pb2.TicketState, str]] = ..., to_state: _Optional[_Union[_common_pb2.TicketState, str]] = ..., from_agency: _Optional[str] = ..., to_agency: _Optional[str] = ..., reason: _Optional[str] = ..., note: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class AuditTrail(_message.Message):
    __slots__ = ("tracking_id", "entries")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    entries: _containers.RepeatedCompositeFieldContainer[AuditEntry]
    def __init__(self, tracking_id: _Optional[str] = ..., entries: _Optional[_Iterable[_Union[AuditEntry, _Mapping]]] = ...) -> None: ...

class VerifyTicketRequest(_message.Message):
    __slots__ = ("tracking_id", "expected_version", "agency_code", "category", "note")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    expected_version: int
    agency_code: str
    category: str
    note: str
    def __init__(self, tracking_id: _Optional[str] = ..., expected_version: _Optional[int] = ..., agency_code: _Optional[str] = ..., category: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class HoldTicketRequest(_message.Message):
    __slots__ = ("tracking_id", "expected_version", "question")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    expected_version: int
    question: str
    def __init__(self, tracking_id: _Optional[str] = ..., expected_version: _Optional[int] = ..., question: _Optional[str] = ...) -> None: ...

class ArchiveTicketRequest(_message.Message):
    __slots__ = ("tracking_id", "expected_version", "reason", "note")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    expected_version: int
    reason: str
    note: str
    def __init__(self, tracking_id: _Optional[str] = ..., expected_version: _Optional[int] = ..., reason: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class LinkDuplicateRequest(_message.Message):
    __slots__ = ("tracking_id", "master_tracking_id", "expected_version")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    MASTER_TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    master_tracking_id: str
    expected_version: int
    def __init__(self, tracking_id: _Optional[str] = ..., master_tracking_id: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class DismissDuplicateRequest(_message.Message):
    __slots__ = ("tracking_id", "candidate", "expected_version")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    CANDIDATE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    candidate: str
    expected_version: int
    def __init__(self, tracking_id: _Optional[str] = ..., candidate: _Optional[str] = ..., expected_version: _Optional[int] = ...) -> None: ...

class AcceptTicketRequest(_message.Message):
    __slots__ = ("tracking_id", "expected_version", "complexity")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    COMPLEXITY_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    expected_version: int
    complexity: Complexity
    def __init__(self, tracking_id: _Optional[str] = ..., expected_version: _Optional[int] = ..., complexity: _Optional[_Union[Complexity, str]] = ...) -> None: ...

class ForwardTicketRequest(_message.Message):
    __slots__ = ("tracking_id", "expected_version", "unit_code", "note")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    UNIT_CODE_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    expected_version: int
    unit_code: str
    note: str
    def __init__(self, tracking_id: _Optional[str] = ..., expected_version: _Optional[int] = ..., unit_code: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class DeclineTicketRequest(_message.Message):
    __slots__ = ("tracking_id", "expected_version", "reason", "suggested_agency_code")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_AGENCY_CODE_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    expected_version: int
    reason: str
    suggested_agency_code: str
    def __init__(self, tracking_id: _Optional[str] = ..., expected_version: _Optional[int] = ..., reason: _Optional[str] = ..., suggested_agency_code: _Optional[str] = ...) -> None: ...

class FollowUpTicketRequest(_message.Message):
    __slots__ = ("tracking_id", "expected_version", "response")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    expected_version: int
    response: str
    def __init__(self, tracking_id: _Optional[str] = ..., expected_version: _Optional[int] = ..., response: _Optional[str] = ...) -> None: ...

class CloseTicketRequest(_message.Message):
    __slots__ = ("tracking_id", "expected_version", "note")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    expected_version: int
    note: str
    def __init__(self, tracking_id: _Optional[str] = ..., expected_version: _Optional[int] = ..., note: _Optional[str] = ...) -> None: ...

class MessageReporterRequest(_message.Message):
    __slots__ = ("tracking_id", "expected_version", "text")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    expected_version: int
    text: str
    def __init__(self, tracking_id: _Optional[str] = ..., expected_version: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

class ReporterReplyRequest(_message.Message):
    __slots__ = ("tracking_id", "message")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    message: str
    def __init__(self, tracking_id: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ReporterConfirmRequest(_message.Message):
    __slots__ = ("tracking_id", "comment")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    comment: str
    def __init__(self, tracking_id: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class RateTicketRequest(_message.Message):
    __slots__ = ("tracking_id", "rating", "comment")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    rating: int
    comment: str
    def __init__(self, tracking_id: _Optional[str] = ..., rating: _Optional[int] = ..., comment: _Optional[str] = ...) -> None: ...

class AppealTicketRequest(_message.Message):
    __slots__ = ("tracking_id", "reason")
    TRACKING_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tracking_id: str
    reason: str
    def __init__(self, tracking_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReporterActionResponse(_message.Message):
    __slots__ = ("outcome", "state", "version", "agency", "deadline", "deadline_zone")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    AGENCY_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_ZONE_FIELD_NUMBER: _ClassVar[int]
    outcome: str
    state: _common_pb2.TicketState
    version: int
    agency: _common_pb2.Agency
    deadline: _timestamp_pb2.Timestamp
    deadline_zone: str
    def __init__(self, outcome: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.TicketState, str]] = ..., version: _Optional[int] = ..., agency: _Optional[_Union[_common_pb2.Agency, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deadline_zone: _Optional[str] = ...) -> None: ...

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

class DirectoryCategory(_message.Message):
    __slots__ = ("code", "name", "subcategories")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SUBCATEGORIES_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    subcategories: _containers.RepeatedCompositeFieldContainer[DirectorySubcategory]
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ..., subcategories: _Optional[_Iterable[_Union[DirectorySubcategory, _Mapping]]] = ...) -> None: ...

class DirectorySubcategory(_message.Message):
    __slots__ = ("code", "name")
    CODE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    code: str
    name: str
    def __init__(self, code: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListCategoriesResponse(_message.Message):
    __slots__ = ("categories",)
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    categories: _containers.RepeatedCompositeFieldContainer[DirectoryCategory]
    def __init__(self, categories: _Optional[_Iterable[_Union[DirectoryCategory, _Mapping]]] = ...) -> None: ...
