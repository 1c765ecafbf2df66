"""Validation of citizen input. The rules are the request models in models.py (the OpenAPI
document is written from the same models); this module runs them, adds the checks JSON
Schema cannot express, and turns every problem into a message that names the field and says
what to send instead, in words a front-end developer can show to a citizen."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from email_validator import EmailNotValidError, validate_email
from pydantic import BaseModel, ValidationError

from services.intake import models

KINDS, CHANNELS, LANGUAGES = models.KINDS, models.CHANNELS, models.LANGUAGES
JAKARTA = ZoneInfo("Asia/Jakarta")
_PHONE = re.compile(models.PHONE)


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored or passed on, or None. Lone surrogates (not encodable as
    UTF-8) only come from broken clients; NUL characters are refused by the models."""
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


@dataclass
class Draft:
    title: str
    body: str
    region_code: str
    category: str = ""
    kind: str = ""


def normalise_phone(raw: str) -> str | None:
    """Indonesian numbers in E.164 (+62…); 08…, 8…, 628… and +62… are accepted, written
    with spaces, dashes, dots or brackets (models.PHONE)."""
    if not _PHONE.fullmatch(raw):
        return None
    digits = re.sub(r"[^0-9]", "", raw)
    if digits.startswith("0"):
        digits = "62" + digits[1:]
    elif digits.startswith("8"):
        digits = "62" + digits  # a mobile number typed without its leading 0
    return "+" + digits


def normalise_email(raw: str) -> tuple[str | None, str]:
    """(the normalised address, "") or (None, why it is not one). Syntax only: whether the
    domain receives mail is notify's business, at send time."""
    try:
        return validate_email(raw, check_deliverability=False).normalized, ""
    except EmailNotValidError as exc:
        return None, str(exc)


def _trim(value: str | None) -> str:
    return (value or "").strip(models.TRIMMED)


def _check(model: type[BaseModel], data, body_hint: str):
    """The validated model, or ValidationFailed with one message per field."""
    if not isinstance(data, dict):
        raise ValidationFailed([{"field": "(body)", "message": body_hint}])
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, _messages(model, exc)


def _messages(model: type[BaseModel], exc: ValidationError) -> list[dict[str, str]]:
    found: dict[str, str] = {}
    for error in exc.errors():
        path, info = _field(model, error["loc"])
        if path not in found:
            found[path] = _message(error, info)
    return [{"field": path, "message": message} for path, message in found.items()]


def _field(model: type[BaseModel], loc) -> tuple[str, object]:
    """The dotted field name of an error location (union branches left out) and its
    pydantic FieldInfo."""
    names, info, current = [], None, model
    for part in loc:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            break
        info = current.model_fields[part]
        names.append(part)
        current = _model_in(info.annotation)
    return ".".join(names) or "(body)", info


def _model_in(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _message(error: dict, info) -> str:
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    hint = getattr(info, "description", None) or "valid"
    required = info is not None and info.is_required()
    blank = value is None or (isinstance(value, str) and not _trim(value))
    if kind == "missing" or (required and blank):
        return f"is required: {hint}"
    if kind == "string_type":
        return "must be a string"
    if kind == "bool_type":
        return "must be true or false"
    if kind == "string_too_short":
        return f"must be at least {ctx['min_length']} characters"
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters (got {len(value)})"
    if kind == "literal_error":
        shown = repr(value) if isinstance(value, str | int | float) else type(value).__name__
        return f"must be {hint} (got {shown[:40]})"
    return f"must be {hint}"


def _text_problems(values: dict[str, str], errors: list[dict[str, str]]) -> None:
    for name, value in values.items():
        problem = text_problem(value) if value else None
        if problem:
            errors.append({"field": name, "message": problem})


def parse_new_report(data, *, channel: str | None = None,
                     region_problem: Callable[[str], str | None] | None = None) -> NewReport:
    """Checks a POST /api/v1/reports body; raises ValidationFailed listing every problem.
    `region_problem` says why a well-formed region code cannot be taken (regions.problem:
    not in the official list), or None."""
    checked, errors = _check(models.NewReport, data, "send a JSON object with kind, title, "
                                                     "body and region_code")
    # The checks JSON Schema cannot express, on the fields that passed the model.
    passed = _passed(data, errors)
    if passed("incident_date"):
        _check_incident_date(passed("incident_date"), errors)
    if region_problem is not None and passed("region_code"):
        problem = region_problem(_trim(passed("region_code")))
        if problem:
            errors.append({"field": "region_code", "message": problem})
    raw_email = _raw(data, "reporter.email")
    email = (normalise_email(raw_email) if isinstance(raw_email, str)
             and "reporter.email" not in {e["field"] for e in errors} else ("", ""))
    if email[0] is None:
        errors.append({"field": "reporter.email", "message": f"is not a valid email address "
                       f"({email[1]}); send one like nama@contoh.id"})
    phone = normalise_phone(passed("reporter.phone")) if passed("reporter.phone") else None
    if checked is not None:
        _text_problems({"title": checked.title, "body": checked.body,
                        "address": checked.address,
                        "reporter.name": checked.reporter.name if checked.reporter else ""},
                       errors)
    if errors:
        raise ValidationFailed(errors)
    reporter = checked.reporter or models.Reporter()
    location = checked.location
    return NewReport(
        kind=checked.kind, title=_trim(checked.title), body=_trim(checked.body),
        region_code=_trim(checked.region_code), category=_trim(checked.category),
        target_agency=_trim(checked.target_agency), incident_date=checked.incident_date or "",
        latitude=location.latitude if location else None,
        longitude=location.longitude if location else None,
        address=_trim(checked.address), channel=channel or checked.channel or "web",
        anonymous=bool(checked.anonymous), confidential=bool(checked.confidential),
        reporter=Reporter(name=_trim(reporter.name), email=email[0], phone=phone or "",
                          language=reporter.language or "id"))


def _passed(data: dict, errors: list[dict[str, str]]):
    """A lookup of the non-blank string a field (dotted name) holds when the model found
    nothing wrong with it; None otherwise."""
    failed = {e["field"] for e in errors}

    def lookup(path: str) -> str | None:
        value = _raw(data, path)
        if path in failed or not isinstance(value, str) or not _trim(value):
            return None
        return value

    return lookup


def _raw(data: dict, path: str):
    value = data
    for name in path.split("."):
        value = value.get(name) if isinstance(value, dict) else None
    return value


def _check_incident_date(text: str, errors: list[dict[str, str]]) -> None:
    try:
        when = date.fromisoformat(text)
    except ValueError:
        errors.append({"field": "incident_date", "message": "must be a date as YYYY-MM-DD"})
        return
    today = datetime.now(JAKARTA).date()
    if when > today + timedelta(days=1):
        errors.append({"field": "incident_date", "message": "cannot be in the future"})
    elif when < today - timedelta(days=3650):
        errors.append({"field": "incident_date", "message": "must be within the last ten "
                                                            "years"})


def parse_model(model: type[BaseModel], data):
    """A body checked against `model` (a request of models.py) with its text trimmed;
    raises ValidationFailed listing every problem."""
    checked, errors = _check(model, data, "send a JSON object")
    if checked is not None:
        _text_problems({name: value for name, value in checked if isinstance(value, str)},
                       errors)
    if errors:
        raise ValidationFailed(errors)
    return checked.model_copy(update={name: _trim(value) for name, value in checked
                                      if isinstance(value, str)})


def parse_draft(data) -> Draft:
    """Checks a POST /api/v1/reports/suggest body: the same rules as a report, but every
    field optional except the region and some text to classify."""
    checked, errors = _check(models.Draft, data, "send a JSON object")
    has_text = any(isinstance(data.get(name), str) and _trim(data.get(name))
                   for name in models.DRAFT_TEXT_FIELDS)
    if not has_text:
        errors.append({"field": "body", "message": "give a title or a body to classify"})
    if checked is not None:
        _text_problems({"title": checked.title, "body": checked.body}, errors)
    if errors:
        raise ValidationFailed(errors)
    return Draft(_trim(checked.title), _trim(checked.body), _trim(checked.region_code),
                 _trim(checked.category), checked.kind or "")
