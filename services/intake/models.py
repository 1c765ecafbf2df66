"""Typed bodies of the citizen and staff API, the one place their rules live.

validation.py checks every request body against the request models, and openapi.py writes
the OpenAPI document's schemas from all of them, so the document and the code cannot
disagree. Each field's description says what to send: it is also the message a client gets
when the field is wrong. What JSON Schema cannot say (a date not in the future, an email
address email-validator accepts, the check character of a tracking id) is checked in
validation.py and api.py after the model, and described here in words.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from services.intake import ids

KINDS = ("PENGADUAN", "ASPIRASI", "PERMINTAAN_INFORMASI")
CHANNELS = ("web", "mobile", "sms", "whatsapp", "open311")
LANGUAGES = ("id", "en")
STATES = ("SUBMITTED", "ON_HOLD", "DISPATCHED", "FOLLOWED_UP", "REPORTER_REPLIED", "CLOSED",
          "ARCHIVED")
ZONES = ("WIB", "WITA", "WIT")
COMPLEXITIES = ("SIMPLE", "DISPUTE", "FIELD")
ROLES = ("national_admin", "agency_admin", "agency_officer", "oversight", "service")
# Routing's fixed reasons for archiving a report (its statemachine.ARCHIVE_REASONS).
ARCHIVE_REASONS = ("SPAM", "DUPLICATE", "NOT_PUBLIC_SERVICE", "UNCLEAR", "ABUSIVE", "WITHDRAWN")
# What the reporter may still do with their report (the owner view's `actions`).
REPORTER_ACTIONS = ("reply", "confirm", "rate", "appeal")
REPORTER_OUTCOMES = ("replied", "information_added", "message_sent", "closed", "rated",
                     "appealed")
# The staff actions on a ticket: the path under /api/v1/staff/tickets/{tracking_id}/.
STAFF_ACTIONS = ("verify", "hold", "archive", "accept", "forward", "decline", "follow-up",
                 "close", "messages", "link", "dismiss-duplicate")
MAX_NOTE = 2_000      # notes, questions, reasons, comments (routing's limit too)
MAX_TEXT = 10_000     # a follow-up response, a message, a reply

# Patterns are written for both Python's re and JSON Schema (ECMA-262): ASCII classes only
# ([0-9], never \d, which is any script's digit in Python) and no look-around.
TRIMMED = " \t\r\n"  # what the API trims around text: ASCII white space, nothing else
_WS = "[ \\t\\r\\n]*"
NO_NUL = "^[^\\x00]*$"
NON_BLANK = "^[^\\x00]*[^\\x00 \\t\\r\\n][^\\x00]*$"
REGION_CODE = "[0-9]{2}(?:\\.[0-9]{2}(?:\\.[0-9]{2}(?:\\.[0-9]{4})?)?)?"
CATEGORY_CODE = "[A-Z][A-Z0-9_]{1,39}"
AGENCY_CODE = "[A-Z0-9][A-Z0-9.\\-]{1,39}"
ISO_DATE = "[0-9]{4}-[0-9]{2}-[0-9]{2}"
_PHONE_SEP = "[ \\t\\r\\n().\\-]*"
# Indonesian numbers as people write them: 08…, 8… (the 0 forgotten), 62… or +62…, with
# spaces, dashes, dots or brackets anywhere; 10 to 15 digits once written as +62….
PHONE = (f"{_PHONE_SEP}(?:\\+{_PHONE_SEP})?(?:0(?:{_PHONE_SEP}[0-9]){{8,13}}"
         f"|8(?:{_PHONE_SEP}[0-9]){{7,12}}|6{_PHONE_SEP}2(?:{_PHONE_SEP}[0-9]){{8,13}})"
         f"{_PHONE_SEP}")
# The pattern says which numbers; the format names them for generators and readers, since
# a pattern whose separators may repeat does not say how numbers of at most 24 characters
# look.
PHONE_FORMAT = "lapor-phone"
PHONE_FORMAT_SAYS = (f"format {PHONE_FORMAT}: 08…, 8…, 62… or +62… followed by the "
                     "number's digits, 10 to 15 digits in all once written as +62…, with "
                     "spaces, dashes, dots or brackets anywhere")
IDEMPOTENCY_KEY = "^[!-~]{8,255}$"
CLIENT_KEY = "^[!-~]{8,128}$"
PAGE_TOKEN = "^[A-Za-z0-9_=-]{0,64}$"
TRACKING_ID_SHOWN = "^LPR-{c}{{3}}-{c}{{3}}-{c}{{3}}$".format(c=f"[{ids.ALPHABET}]")


def padded(core: str) -> str:
    """A code that may come with white space around it (trimmed before use)."""
    return f"^{_WS}{core}{_WS}$"


def padded_or_blank(core: str) -> str:
    """An optional code: the code with white space around it, or only white space (absent)."""
    return f"^{_WS}(?:{core})?{_WS}$"


class _Request(BaseModel):
    # Strict: "true" is not true and "13" is not 13. Unknown fields are ignored, so an older
    # server takes a newer client's body.
    model_config = ConfigDict(strict=True, extra="ignore")


class _Answer(BaseModel):
    # What intake answers: exactly these fields (an allow-list), nothing else.
    model_config = ConfigDict(extra="forbid")


# -- requests -----------------------------------------------------------------------------

class Location(_Request):
    latitude: float = Field(ge=-90, le=90, allow_inf_nan=False,
                            description="a number between -90 and 90")
    longitude: float = Field(ge=-180, le=180, allow_inf_nan=False,
                             description="a number between -180 and 180")


class Reporter(_Request):
    name: Annotated[str, Field(max_length=100, pattern=NO_NUL)] | None = Field(
        None, description="the reporter's name, at most 100 characters; never shown to the "
                          "public, nor to agencies when the report is anonymous")
    # Not format idn-email: that also allows addresses no mail reaches (a@b, x@y.test, quoted
    # local parts, IP literals), which email-validator refuses and the description rules out.
    email: Annotated[str, Field(max_length=254,
                                json_schema_extra={"format": "lapor-email"})] | None = Field(
        None, description="an email address like nama@contoh.id (international addresses "
                          "such as rína@contoh.id too; format lapor-email: an RFC 6531 "
                          "address without quoted local part or IP literal, whose domain has "
                          "a dot and is not a special-use name such as .test, .localhost, "
                          ".local, .invalid, .onion or .arpa), where status updates go; "
                          "stored in its normalised form")
    phone: Annotated[str, Field(max_length=24, pattern=f"^(?:{_WS}|{PHONE})$",
                                json_schema_extra={"format": PHONE_FORMAT})] | None = Field(
        None, description=f"a phone number such as 081234567890 or +6281234567890 "
                          f"(Indonesian numbers; stored as +62…; {PHONE_FORMAT_SAYS})")
    language: Literal[LANGUAGES] | None = Field(
        "id", description="id or en (default id), the language of messages to the reporter")


class NewReport(_Request):
    """A report as a citizen's app sends it."""

    kind: Literal[KINDS] = Field(
        description="one of PENGADUAN (complaint), ASPIRASI (aspiration), "
                    "PERMINTAAN_INFORMASI (information request)")
    title: str = Field(min_length=5, max_length=200, pattern=NON_BLANK,
                       description="5 to 200 characters of text, without NUL characters")
    body: str = Field(min_length=10, max_length=10_000, pattern=NON_BLANK,
                      description="10 to 10000 characters of text, without NUL characters")
    region_code: str = Field(
        pattern=padded(REGION_CODE),
        description="a Kemendagri region code such as 13 (province), 13.03 (regency/city), "
                    "13.03.01 (district) or 13.03.01.2001 (village), in the official region "
                    "list once the operator has imported it")
    category: Annotated[str, Field(pattern=padded_or_blank(CATEGORY_CODE))] | None = Field(
        None, description="a category code in capitals such as PUPR or KESEHATAN; leave it "
                          "out to let routing classify the report")
    target_agency: Annotated[str, Field(pattern=padded_or_blank(AGENCY_CODE))] | None = Field(
        None, description="an agency code from the directory, e.g. PUPR-13.03")
    incident_date: Annotated[str, Field(pattern=f"^{ISO_DATE}$",
                                        json_schema_extra={"format": "date"})] | None = Field(
        None, description="a date as YYYY-MM-DD, within the last ten years and not in the "
                          "future (Asia/Jakarta)")
    location: Location | None = Field(
        None, description="an object {\"latitude\": …, \"longitude\": …}")
    address: Annotated[str, Field(max_length=500, pattern=NO_NUL)] | None = Field(
        None, description="at most 500 characters of text, without NUL characters")
    channel: Literal[CHANNELS] | None = Field(
        "web", description="one of web, mobile, sms, whatsapp, open311 (default web)")
    anonymous: bool | None = Field(
        False, description="true or false: hide the reporter's identity from agencies and the "
                          "public (default false)")
    confidential: bool | None = Field(
        False, description="true or false: hide the report's content from the public "
                          "(default false)")
    reporter: Reporter | None = Field(
        None, description="an object with name, email, phone and/or language")


def _draft_has_text(schema: dict[str, Any]) -> None:
    schema["anyOf"] = [{"required": [name], "properties": {name: {"type": "string",
                                                                  "pattern": NON_BLANK}}}
                       for name in DRAFT_TEXT_FIELDS]


DRAFT_TEXT_FIELDS = ("title", "body")


class Draft(_Request):
    """A report being written: where would it go? At least a title or a body that is not
    blank, and the region."""

    model_config = ConfigDict(json_schema_extra=_draft_has_text)

    title: Annotated[str, Field(max_length=200, pattern=NO_NUL)] | None = Field(
        None, description="at most 200 characters of text, without NUL characters")
    body: Annotated[str, Field(max_length=10_000, pattern=NO_NUL)] | None = Field(
        None, description="at most 10000 characters of text, without NUL characters")
    region_code: str = Field(pattern=padded(REGION_CODE),
                             description="a Kemendagri region code such as 13.03")
    category: Annotated[str, Field(pattern=padded_or_blank(CATEGORY_CODE))] | None = Field(
        None, description="a category code such as PUPR")
    kind: Literal[KINDS] | None = Field(
        None, description="one of PENGADUAN, ASPIRASI, PERMINTAAN_INFORMASI")


def _integral(value):
    # JSON does not tell 5 from 5.0 (JSON Schema's integer takes both); strings and booleans
    # stay refused.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def whole_number(minimum: int, maximum: int):
    """An integer from `minimum` to `maximum`, sent as 5 or 5.0."""
    return Annotated[int, Field(ge=minimum, le=maximum), BeforeValidator(_integral)]

# Text a person writes to another (a question, a response, a message), and notes.
_Note = Annotated[str, Field(max_length=MAX_NOTE, pattern=NO_NUL)] | None
_AgencyCode = Annotated[str, Field(pattern=padded_or_blank(AGENCY_CODE))] | None


def _required_text(limit: int, what: str):
    return Field(max_length=limit, pattern=NON_BLANK,
                 description=f"{what}: 1 to {limit} characters of text, without NUL "
                             "characters")


NOTE_HINT = f"at most {MAX_NOTE} characters of text, without NUL characters"


class _TicketChange(_Request):
    expected_version: whole_number(0, 2**63 - 1) | None = Field(
        None, description="the ticket's version as you last saw it (from GET); a ticket that "
                          "changed since is refused (409 stale_version). Leave it out, or 0, "
                          "not to check")


class VerifyTicket(_TicketChange):
    """National admin: verify a report in the triage queue and dispatch it."""

    agency_code: _AgencyCode = Field(
        None, description="the agency to dispatch to, e.g. PUPR-13.03; leave it out for the "
                          "agency routing suggested")
    category: Annotated[str, Field(pattern=padded_or_blank(CATEGORY_CODE))] | None = Field(
        None, description="a category code such as PUPR; leave it out to keep the "
                          "one routing found")
    note: _Note = Field(None, description=f"for the audit trail: {NOTE_HINT}")


class HoldTicket(_TicketChange):
    """National admin: ask the reporter for what is missing; the clock stops meanwhile."""

    question: str = _required_text(MAX_NOTE, "what the reporter must add; sent to them")


class ArchiveTicket(_TicketChange):
    """National admin: archive a report with one of the fixed reasons."""

    reason: Literal[ARCHIVE_REASONS] = Field(
        description="one of " + ", ".join(ARCHIVE_REASONS))
    note: _Note = Field(None, description=f"for the audit trail: {NOTE_HINT}")


# Another ticket's tracking id in a body: forgiven like one in a path (case, dashes, the LPR
# prefix); its last character is a check character (format lapor-tracking-id), checked after.
_OtherTicket = Annotated[str, Field(pattern=ids.TRACKING_ID_PATTERN,
                                    json_schema_extra={"format": "lapor-tracking-id"})]


class LinkDuplicate(_TicketChange):
    """National admin: link a report still in triage to an open ticket it repeats (its
    master): archived as a duplicate, its reporter follows the master, and it counts as the
    master's support."""

    master: _OtherTicket = Field(
        description="the tracking id of the open ticket this report repeats, e.g. "
                    "LPR-7K2-M9Q-XD4 (its check character is checked)")


class DismissDuplicate(_TicketChange):
    """National admin: a pair routing suggested as possible duplicates is not one."""

    candidate: _OtherTicket = Field(
        description="the tracking id of the other ticket of the suggestion, e.g. "
                    "LPR-7K2-M9Q-XD4 (its check character is checked)")


class AcceptTicket(_TicketChange):
    """The agency takes the ticket and declares how long its follow-up takes."""

    complexity: Literal[COMPLEXITIES] | None = Field(
        "SIMPLE", description="SIMPLE (5 working days), DISPUTE (14: coordination or a "
                              "dispute to settle) or FIELD (60: a field inspection); "
                              "default SIMPLE")


class ForwardTicket(_TicketChange):
    """The agency's admin hands the ticket to one of its units."""

    unit_code: str = Field(pattern=padded(AGENCY_CODE),
                           description="the code of an agency whose parent is yours")
    note: _Note = Field(None, description=f"for the unit and the audit trail: {NOTE_HINT}")


class DeclineTicket(_TicketChange):
    """Not our authority (bukan wewenang): routing hands the ticket on (pelimpahan)."""

    reason: str = _required_text(MAX_NOTE, "why it is not your agency's authority")
    suggested_agency_code: _AgencyCode = Field(
        None, description="the agency you think should handle it, e.g. DISHUB-13.03")


class FollowUpTicket(_TicketChange):
    """The agency's response (tindak lanjut); the reporter is told and may reply."""

    response: str = _required_text(MAX_TEXT, "the response to the reporter")


class CloseTicket(_TicketChange):
    """Close a followed-up ticket once the reporter is satisfied."""

    note: _Note = Field(None, description=f"for the audit trail: {NOTE_HINT}")


class MessageReporter(_TicketChange):
    """A message to the reporter, relayed by the platform (anonymous reporters stay so)."""

    text: str = _required_text(MAX_TEXT, "the message")


class ReporterReply(_Request):
    """The reporter answers a follow-up, adds what a held report lacks, or writes to the
    agency handling the report."""

    message: str = _required_text(MAX_TEXT, "your reply")


class ReporterRating(_Request):
    rating: whole_number(1, 5) = Field(description="a whole number from 1 (poor) to 5 (very "
                                                "good)")
    comment: _Note = Field(None, description=NOTE_HINT)


class ReporterAppeal(_Request):
    reason: str = _required_text(MAX_NOTE, "why the closure is not right")


class ReporterConfirm(_Request):
    comment: _Note = Field(None, description=NOTE_HINT)


# -- answers ------------------------------------------------------------------------------

class Accepted(_Answer):
    tracking_id: str = Field(pattern=TRACKING_ID_SHOWN, examples=["LPR-7K2-M9Q-XD4"])
    access_token: str = Field(description="shown only here; send it as Authorization: Bearer "
                                          "to see the whole report")
    status: Literal["SUBMITTED"]
    status_label: str


class Agency(_Answer):
    code: str
    name: str


class LinkedReport(_Answer):
    """The open report a duplicate was linked to, as it is now."""

    tracking_id: str = Field(pattern=TRACKING_ID_SHOWN)
    status: Literal[STATES] | None = Field(description="absent when intake does not hold it")
    status_label: str | None
    agency: Agency | None
    deadline: datetime | None
    deadline_zone: Literal[ZONES] | None


class TimelineEntry(_Answer):
    at: datetime
    status: str = Field(description="the ticket state; in the owner view also NOTIFICATION "
                                    "(a message to the reporter was delivered or failed) "
                                    "and MESSAGE (a message relayed between the agency and "
                                    "the reporter)")
    status_label: str
    note: str | None
    agency_name: str | None


class OwnerTimelineEntry(TimelineEntry):
    private_note: str | None = Field(
        description="what only the reporter sees: the question of a hold, the agency's "
                    "response, a relayed message, the reason of an archive")


class _ReportStatus(_Answer):
    """What every view of a report shows: its status, handler and timeline."""

    tracking_id: str = Field(pattern=TRACKING_ID_SHOWN)
    kind: Literal[KINDS]
    status: Literal[STATES]
    status_label: str
    agency: Agency | None
    deadline: datetime | None
    deadline_zone: Literal[ZONES] | None
    region_code: str
    category: str | None
    confidential: bool
    support_count: int = Field(ge=0, description="how many people support the report "
                                                 "(dukungan), reports linked to it as its "
                                                 "duplicates included")
    linked_to: LinkedReport | None = Field(
        description="set when routing found this report near-identical to an open one and "
                    "linked it there (status ARCHIVED, label 'Digabung dengan laporan …'): "
                    "that report's progress is this one's")
    created_at: datetime
    updated_at: datetime
    timeline: list[TimelineEntry]


class PublicReport(_ReportStatus):
    """What anyone may see: never the reporter; no title or body when confidential."""

    title: str = Field(None, description="absent when the report is confidential")
    body: str = Field(None, description="absent when the report is confidential")


class OwnerLocation(_Answer):
    latitude: float
    longitude: float


class OwnerReporter(_Answer):
    """Contacts are not kept by intake (only notify has them): just the language."""

    language: Literal[LANGUAGES]


class OwnerReport(_ReportStatus):
    """What the holder of the report's access token sees: what they sent and the whole
    timeline, including the delivery of their own notifications."""

    title: str
    body: str
    anonymous: bool
    channel: Literal[CHANNELS]
    incident_date: str | None
    location: OwnerLocation | None
    address: str | None
    target_agency: str | None
    reporter: OwnerReporter
    timeline: list[OwnerTimelineEntry]
    rating: int | None = Field(ge=1, le=5, description="your rating once you gave one")
    actions: list[Literal[REPORTER_ACTIONS]] = Field(
        description="what you may do now: reply (POST …/replies: answer a follow-up, add "
                    "what a held report lacks, or write to the agency), confirm (POST "
                    "…/confirm: satisfied, closes the report), rate (POST …/rating), appeal "
                    "(POST …/appeal, within 10 working days of the closure)")


class SuggestedAgency(_Answer):
    code: str
    name: str
    level: str


class CategoryScore(_Answer):
    category: str = Field(description="the category's name exactly as in the directory")
    category_code: str = Field(description="its stable code, e.g. KESEHATAN")
    confidence: float = Field(ge=0, le=1)


class Suggestion(_Answer):
    category: str | None = Field(
        description="the category's name exactly as in the directory, e.g. PEKERJAAN UMUM "
                    "DAN PENATAAN RUANG")
    category_code: str | None = Field(description="its stable code, e.g. PUPR")
    subcategory: str | None = Field(description="the subcategory's name, e.g. Jalan")
    subcategory_code: str | None = Field(description="its code, e.g. PUPR.JALAN")
    agency: SuggestedAgency
    confidence: float = Field(ge=0, le=1)
    alternatives: list[CategoryScore] = Field(
        description="the next most likely categories, most likely first")
    needs_triage: bool = Field(description="true when a national admin verifies before "
                                           "dispatch")
    explanation: str
    rule: str | None = Field(description="the handling rule that chose the agency, in words")
    model_version: str | None = Field(description="the classifier model that read the text")


class ReporterAction(_Answer):
    """What the reporter sees after acting: the report's status and who holds it."""

    tracking_id: str = Field(pattern=TRACKING_ID_SHOWN)
    outcome: Literal[REPORTER_OUTCOMES] = Field(
        description="replied (to a follow-up), information_added (to a held report), "
                    "message_sent (to the agency), closed, rated, appealed")
    status: Literal[STATES]
    status_label: str
    agency: Agency | None
    deadline: datetime | None
    deadline_zone: Literal[ZONES] | None
    version: int = Field(ge=0)


class Support(_Answer):
    tracking_id: str = Field(pattern=TRACKING_ID_SHOWN)
    support_count: int = Field(ge=0, description="supports so far (dukungan)")
    counted: bool = Field(description="false when this client had supported the report "
                                      "already: counted once")


class StaffAgency(_Answer):
    code: str
    name: str
    level: str | None = Field(description="national, provincial, regency, … or triage (the "
                                          "national admin's queue)")
    region_code: str | None
    parent_code: str | None = Field(description="the agency above it (atasan)")


class StaffMember(_Answer):
    """The account behind the token."""

    username: str
    display_name: str | None
    role: Literal[ROLES]
    agency: StaffAgency | None = Field(description="absent for national admins, oversight "
                                                   "and platform services")


class TicketSummary(_Answer):
    tracking_id: str = Field(pattern=TRACKING_ID_SHOWN)
    state: Literal[STATES]
    state_label: str
    agency: StaffAgency | None
    category: str | None
    title: str
    region_code: str
    deadline: datetime | None
    deadline_zone: Literal[ZONES] | None
    overdue: bool
    version: int = Field(ge=0)
    created_at: datetime | None
    escalation_level: int = Field(ge=0)
    support_count: int = Field(ge=0)


class TicketList(_Answer):
    tickets: list[TicketSummary] = Field(description="sorted by deadline, the nearest first")
    next_page_token: str | None = Field(
        description="pass it as page_token for the next page; null on the last page")


class TicketLocation(_Answer):
    latitude: float
    longitude: float


class TicketReport(_Answer):
    """The report as the agency sees it: never contacts; no name when anonymous."""

    kind: Literal[KINDS] | None
    title: str
    body: str
    region_code: str
    region_name: str | None
    category: str | None = Field(description="as the reporter chose it")
    anonymous: bool
    confidential: bool
    reporter_name: str | None = Field(description="null when the report is anonymous")
    channel: str | None
    incident_date: str | None
    location: TicketLocation | None
    address: str | None
    target_agency: str | None
    submitted_at: datetime | None


class TicketEvent(_Answer):
    at: datetime
    state: Literal[STATES]
    action: str | None = Field(description="what changed it: verify, accept, follow_up, …")
    actor_role: str | None
    agency_code: str | None
    note: str | None


class ChainEntry(_Answer):
    agency: StaffAgency
    reason: str = Field(description="dispatched, forwarded, not_our_authority, escalated or "
                                    "appeal")
    at: datetime


class TicketMessage(_Answer):
    at: datetime
    direction: Literal["to_reporter", "to_agency"]
    author_role: str | None
    text: str


class TicketDelivery(_Answer):
    at: datetime
    channel: str
    audience: str
    outcome: str = Field(description="delivered, failed or skipped")
    reason: str | None


class DuplicateCandidate(_Answer):
    tracking_id: str = Field(pattern=TRACKING_ID_SHOWN)
    similarity: float = Field(ge=0, le=1, description="how alike the two reports' texts are")
    resolution: Literal["pending", "linked", "dismissed"]


class TicketAttachment(_Answer):
    """A file the reporter attached (services/intake/attachments), for the handling agency."""

    id: str = Field(pattern=r"^[0-9a-f]{32}$")
    content_type: Literal["image/jpeg", "image/png", "image/webp", "application/pdf"]
    size: int = Field(ge=1, description="bytes")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    location_kept: bool = Field(description="the photo keeps its GPS position (the reporter "
                                            "asked; never for anonymous reports)")
    created_at: datetime
    url: str | None = Field(description="a signed link that serves the file without a token "
                                        "until it expires; null when the operator has set no "
                                        "link secret")


class StaffTicket(_Answer):
    """One ticket as staff see it."""

    tracking_id: str = Field(pattern=TRACKING_ID_SHOWN)
    ticket_id: str
    state: Literal[STATES]
    state_label: str
    agency: StaffAgency | None
    category: str | None
    region_code: str
    deadline: datetime | None
    deadline_zone: Literal[ZONES] | None
    clock: str | None = Field(description="what the deadline measures: verify, respond, "
                                          "auto_close, paused or none")
    overdue: bool
    created_at: datetime | None
    updated_at: datetime | None
    version: int = Field(ge=0, description="send it back as expected_version")
    report: TicketReport
    decision: str | None = Field(description="why routing chose this agency")
    confidence: float
    subcategory: str | None = Field(description="the subcategory's code, e.g. PUPR.JALAN")
    rule: str | None = Field(description="the handling rule that chose the agency, in words")
    top_categories: list[CategoryScore] = Field(
        description="the classifier's three most likely categories when the report came in")
    model_version: str | None = Field(description="the classifier model that read the text")
    complexity: Literal[COMPLEXITIES] | None
    accepted_at: datetime | None
    escalation_level: int = Field(ge=0)
    oversight_flagged: bool
    support_count: int = Field(ge=0)
    rating: int | None = Field(ge=1, le=5)
    rating_comment: str | None
    timeline: list[TicketEvent]
    chain: list[ChainEntry] = Field(description="the agencies that held the ticket, and why")
    messages: list[TicketMessage]
    deliveries: list[TicketDelivery]
    allowed_actions: list[str] = Field(
        description="what you may do now, as the paths of POST /api/v1/staff/tickets/"
                    "{tracking_id}/{action}: " + ", ".join(STAFF_ACTIONS))
    duplicate_of: str | None = Field(
        description="the open ticket this one was linked to as a duplicate (archived)")
    duplicate_candidates: list[DuplicateCandidate] = Field(
        description="national admin and oversight: tickets routing found alike (either "
                    "side of the pair); a pending one waits for link or dismiss-duplicate")
    attachments: list[TicketAttachment] | None = Field(
        None, description="GET of one ticket only: the reporter's files, each with a signed "
                          "link")


class AuditEntry(_Answer):
    at: datetime
    actor: str = Field(description="the account's username, system or citizen")
    actor_role: str | None
    action: str | None
    from_state: Literal[STATES] | None
    to_state: Literal[STATES] | None
    from_agency: str | None
    to_agency: str | None
    reason: str | None
    note: str | None
    version: int = Field(ge=0)


class AuditTrail(_Answer):
    tracking_id: str = Field(pattern=TRACKING_ID_SHOWN)
    entries: list[AuditEntry]


class FieldError(_Answer):
    field: str = Field(description="the field, e.g. reporter.email, or (body)")
    message: str = Field(description="what to send instead")


class Problem(_Answer):
    """RFC 9457 problem details."""

    type: str = Field(json_schema_extra={"format": "uri"})
    title: str
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="what to fix")
    code: str = Field(description="stable machine-readable code")
    instance: str = Field(None, description="the path asked for")
    errors: list[FieldError] = Field(None, description="one entry per field to fix")


class Health(BaseModel):
    status: str
    checks: dict[str, Any] = Field(None)


class Readiness(BaseModel):
    status: Literal["ok", "unavailable", "draining"] = Field(
        description="draining while the process shuts down")
    checks: dict[str, Any]


# The staff actions: path -> (RPC, request body).
STAFF_ACTION_MODELS: dict[str, tuple[str, type[_TicketChange]]] = {
    "verify": ("VerifyTicket", VerifyTicket),
    "hold": ("HoldTicket", HoldTicket),
    "archive": ("ArchiveTicket", ArchiveTicket),
    "accept": ("AcceptTicket", AcceptTicket),
    "forward": ("ForwardTicket", ForwardTicket),
    "decline": ("DeclineTicket", DeclineTicket),
    "follow-up": ("FollowUpTicket", FollowUpTicket),
    "close": ("CloseTicket", CloseTicket),
    "messages": ("MessageReporter", MessageReporter),
    "link": ("LinkDuplicate", LinkDuplicate),
    "dismiss-duplicate": ("DismissDuplicate", DismissDuplicate),
}
REQUEST_MODELS = (NewReport, Draft, ReporterReply, ReporterRating, ReporterAppeal,
                  ReporterConfirm, *(model for _, model in STAFF_ACTION_MODELS.values()))
ANSWER_MODELS = (Accepted, PublicReport, OwnerReport, Suggestion, ReporterAction, Support,
                 StaffMember, TicketList, StaffTicket, AuditTrail, Problem, Health, Readiness)
