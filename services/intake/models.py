"""Typed bodies of the citizen API, the one place their rules live.

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

from pydantic import BaseModel, ConfigDict, Field

from services.intake import ids

KINDS = ("PENGADUAN", "ASPIRASI", "PERMINTAAN_INFORMASI")
CHANNELS = ("web", "mobile", "sms", "whatsapp", "open311")
LANGUAGES = ("id", "en")
STATES = ("SUBMITTED", "ON_HOLD", "DISPATCHED", "FOLLOWED_UP", "REPORTER_REPLIED", "CLOSED",
          "ARCHIVED")
ZONES = ("WIB", "WITA", "WIT")

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
IDEMPOTENCY_KEY = "^[!-~]{8,255}$"
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
    phone: Annotated[str, Field(max_length=24,
                                pattern=f"^(?:{_WS}|{PHONE})$")] | None = Field(
        None, description="a phone number such as 081234567890 or +6281234567890 "
                          "(Indonesian numbers; stored as +62…)")
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
                    "13.03.01 (district) or 13.03.01.2001 (village)")
    category: Annotated[str, Field(pattern=padded_or_blank(CATEGORY_CODE))] | None = Field(
        None, description="a category code in capitals such as INFRASTRUKTUR; leave it out "
                          "to let routing classify the report")
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
        None, description="a category code such as INFRASTRUKTUR")
    kind: Literal[KINDS] | None = Field(
        None, description="one of PENGADUAN, ASPIRASI, PERMINTAAN_INFORMASI")


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


class TimelineEntry(_Answer):
    at: datetime
    status: str = Field(description="the ticket state, or NOTIFICATION (owner view only)")
    status_label: str
    note: str | None
    agency_name: str | None


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


class SuggestedAgency(_Answer):
    code: str
    name: str
    level: str


class Suggestion(_Answer):
    category: str | None
    category_name: str | None
    confidence: float = Field(ge=0, le=1)
    agency: SuggestedAgency
    needs_triage: bool = Field(description="true when a national admin verifies before "
                                           "dispatch")
    explanation: str


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


REQUEST_MODELS = (NewReport, Draft)
ANSWER_MODELS = (Accepted, PublicReport, OwnerReport, Suggestion, Problem, Health, Readiness)
