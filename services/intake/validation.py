"""Validation of citizen input. Every problem names the field and says what to send
instead, in words a front-end developer can show to a citizen."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

KINDS = ("PENGADUAN", "ASPIRASI", "PERMINTAAN_INFORMASI")
CHANNELS = ("web", "mobile", "sms", "whatsapp", "open311")
LANGUAGES = ("id", "en")
REGION_CODE = re.compile(r"^\d{2}(\.\d{2}(\.\d{2}(\.\d{4})?)?)?$", re.ASCII)
CATEGORY_CODE = re.compile(r"^[A-Z][A-Z0-9_]{1,39}$")
AGENCY_CODE = re.compile(r"^[A-Z0-9][A-Z0-9.\-]{1,39}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}[A-Za-z0-9])?)+$")
LIMITS = {"title": (5, 200), "body": (10, 10_000), "address": (0, 500), "name": (0, 100)}
JAKARTA = ZoneInfo("Asia/Jakarta")


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored or passed on, or None. NUL characters (PostgreSQL refuses
    them) and lone surrogates (not encodable as UTF-8) only come from broken clients."""
    if "\x00" in value:
        return "must not contain NUL (\\u0000) characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (it holds an unpaired surrogate)"
    return None


class ValidationFailed(ValueError):
    def __init__(self, errors: list[dict[str, str]]):
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


@dataclass
class Reporter:
    name: str = ""
    email: str = ""
    phone: str = ""
    language: str = "id"


@dataclass
class NewReport:
    kind: str
    title: str
    body: str
    region_code: str
    category: str = ""
    target_agency: str = ""
    incident_date: str = ""
    latitude: float | None = None
    longitude: float | None = None
    address: str = ""
    channel: str = "web"
    anonymous: bool = False
    confidential: bool = False
    reporter: Reporter = field(default_factory=Reporter)


def normalise_phone(raw: str) -> str | None:
    """Indonesian numbers in E.164 (+62…); 08…, 628… and +62… are accepted."""
    digits = re.sub(r"[\s\-().]", "", raw).removeprefix("+")
    if not re.fullmatch(r"[0-9]+", digits):
        return None
    if digits.startswith("0"):
        digits = "62" + digits[1:]
    elif digits.startswith("8"):
        digits = "62" + digits  # a mobile number typed without its leading 0
    if not digits.startswith("62") or not 10 <= len(digits) <= 15:
        return None
    return "+" + digits


class _Collector:
    def __init__(self, data):
        self.data = data
        self.errors: list[dict[str, str]] = []

    def fail(self, name: str, message: str) -> None:
        self.errors.append({"field": name, "message": message})

    def text(self, name: str, *, required: bool, limits: tuple[int, int],
             source=None, path: str | None = None) -> str:
        source = self.data if source is None else source
        path = path or name
        value = source.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                self.fail(path, "is required")
            return ""
        if not isinstance(value, str):
            self.fail(path, "must be a string")
            return ""
        value = value.strip()
        problem = text_problem(value)
        if problem:
            self.fail(path, problem)
            return ""
        low, high = limits
        if len(value) < low:
            self.fail(path, f"must be at least {low} characters")
        elif len(value) > high:
            self.fail(path, f"must be at most {high} characters (got {len(value)})")
        return value

    def boolean(self, name: str) -> bool:
        value = self.data.get(name, False)
        if value is None:
            return False
        if not isinstance(value, bool):
            self.fail(name, "must be true or false")
            return False
        return value

    def choice(self, name: str, choices, *, required: bool, default: str = "") -> str:
        value = self.data.get(name)
        if value in (None, ""):
            if required:
                self.fail(name, "is required: one of " + ", ".join(choices))
            return default
        if value not in choices:
            self.fail(name, f"must be one of {', '.join(choices)} (got {value!r})")
            return default
        return value


def parse_new_report(data, *, channel: str | None = None) -> NewReport:
    """Checks a POST /api/v1/reports body; raises ValidationFailed listing every problem."""
    if not isinstance(data, dict):
        raise ValidationFailed([{"field": "(body)", "message":
                                 "send a JSON object with kind, title, body and region_code"}])
    c = _Collector(data)
    kind = c.choice("kind", KINDS, required=True)
    title = c.text("title", required=True, limits=LIMITS["title"])
    body = c.text("body", required=True, limits=LIMITS["body"])
    region_code = c.text("region_code", required=True, limits=(2, 16))
    if region_code and not REGION_CODE.match(region_code):
        c.fail("region_code", "must be a Kemendagri region code such as 13 (province), 13.03 "
                              "(regency/city), 13.03.01 (district) or 13.03.01.2001 (village)")
    category = c.text("category", required=False, limits=(0, 40))
    if category and not CATEGORY_CODE.match(category):
        c.fail("category", "must be a category code in capitals such as INFRASTRUKTUR; "
                           "leave it out to let routing classify the report")
    target_agency = c.text("target_agency", required=False, limits=(0, 40))
    if target_agency and not AGENCY_CODE.match(target_agency):
        c.fail("target_agency", "must be an agency code from the directory, e.g. PUPR-13.03")
    incident_date = c.text("incident_date", required=False, limits=(0, 10))
    if incident_date:
        try:
            if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", incident_date):
                raise ValueError(incident_date)
            when = date.fromisoformat(incident_date)
            today = datetime.now(JAKARTA).date()
            if when > today + timedelta(days=1):
                c.fail("incident_date", "cannot be in the future")
            elif when < today - timedelta(days=3650):
                c.fail("incident_date", "must be within the last ten years")
        except ValueError:
            c.fail("incident_date", "must be a date as YYYY-MM-DD")
    latitude = longitude = None
    location = data.get("location")
    if location is not None:
        if not isinstance(location, dict):
            c.fail("location", "must be an object {\"latitude\": …, \"longitude\": …}")
        else:
            lat, lon = location.get("latitude"), location.get("longitude")
            lat_ok = _number(lat) and -90 <= lat <= 90
            lon_ok = _number(lon) and -180 <= lon <= 180
            if not lat_ok:
                c.fail("location.latitude", "must be a number between -90 and 90")
            if not lon_ok:
                c.fail("location.longitude", "must be a number between -180 and 180")
            if lat_ok and lon_ok:
                latitude, longitude = float(lat), float(lon)
    address = c.text("address", required=False, limits=LIMITS["address"])
    chosen_channel = channel or c.choice("channel", CHANNELS, required=False, default="web")
    anonymous = c.boolean("anonymous")
    confidential = c.boolean("confidential")
    reporter = Reporter()
    raw_reporter = data.get("reporter")
    if raw_reporter is not None:
        if not isinstance(raw_reporter, dict):
            c.fail("reporter", "must be an object with name, email and/or phone")
        else:
            reporter.name = c.text("name", required=False, limits=LIMITS["name"],
                                   source=raw_reporter, path="reporter.name")
            reporter.email = c.text("email", required=False, limits=(0, 254),
                                    source=raw_reporter, path="reporter.email")
            if reporter.email and not EMAIL.match(reporter.email):
                c.fail("reporter.email", "is not an email address like nama@contoh.id")
            phone = c.text("phone", required=False, limits=(0, 24), source=raw_reporter,
                           path="reporter.phone")
            if phone:
                normalised = normalise_phone(phone)
                if normalised is None:
                    c.fail("reporter.phone", "must be a phone number such as 081234567890 "
                                             "or +6281234567890")
                reporter.phone = normalised or ""
            language = raw_reporter.get("language", "id")
            if language not in LANGUAGES:
                c.fail("reporter.language", "must be id or en")
            else:
                reporter.language = language
    if c.errors:
        raise ValidationFailed(c.errors)
    return NewReport(kind=kind, title=title, body=body, region_code=region_code,
                     category=category, target_agency=target_agency,
                     incident_date=incident_date, latitude=latitude, longitude=longitude,
                     address=address, channel=chosen_channel, anonymous=anonymous,
                     confidential=confidential, reporter=reporter)


@dataclass
class Draft:
    title: str
    body: str
    region_code: str
    category: str = ""
    kind: str = ""


def parse_draft(data) -> Draft:
    """Checks a POST /api/v1/reports/suggest body: the same rules as a report, but every
    field optional except the region and some text to classify."""
    if not isinstance(data, dict):
        raise ValidationFailed([{"field": "(body)", "message": "send a JSON object"}])
    c = _Collector(data)
    title = c.text("title", required=False, limits=(0, LIMITS["title"][1]))
    body = c.text("body", required=False, limits=(0, LIMITS["body"][1]))
    region_code = c.text("region_code", required=False, limits=(0, 16))
    if not REGION_CODE.match(region_code):
        c.fail("region_code", "a Kemendagri code such as 13.03")
    category = c.text("category", required=False, limits=(0, 40))
    if category and not CATEGORY_CODE.match(category):
        c.fail("category", "a category code such as INFRASTRUKTUR")
    kind = c.choice("kind", KINDS, required=False)
    if not (title or body):
        c.fail("body", "give a title or a body to classify")
    if c.errors:
        raise ValidationFailed(c.errors)
    return Draft(title, body, region_code, category, kind)


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value
