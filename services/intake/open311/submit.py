"""POST requests: the spec's form fields turned into a NewReport, checked by the same rules as
the JSON API (validation.parse_new_report), every problem named by the Open311 field the
client sent."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from services.intake import models
from services.intake.open311 import geo
from services.intake.open311.catalog import Service
from services.intake.open311.render import Open311Error
from services.intake.validation import NewReport, ValidationFailed, parse_new_report

TITLE_MAX = 120
MAX_DESCRIPTION = 10_000
_REGION_CODE = re.compile(models.REGION_CODE, re.ASCII)
_CATEGORY_CODE = re.compile(models.CATEGORY_CODE, re.ASCII)
# The JSON API's field names as the Open311 client knows them.
FIELD_NAMES = {"title": "description", "body": "description", "reporter.email": "email",
               "reporter.phone": "phone", "reporter.name": "first_name/last_name",
               "region_code": "lat/long, address_string or address_id",
               "location.latitude": "lat", "location.longitude": "long",
               "location": "lat/long", "address": "address_string",
               "category": "service_code", "kind": "attribute[kind]"}
TRUE, FALSE = ("true", "1", "yes", "ya"), ("false", "0", "no", "tidak", "")


@dataclass(frozen=True)
class Built:
    report: NewReport
    media_url: str


def _title(description: str, subcategory: str) -> str:
    """The first sentence of the description, shortened; the subcategory's name before it."""
    first = re.split(r"(?<=[.!?])\s|\n", description.strip(), maxsplit=1)[0].strip()
    if len(first) > TITLE_MAX:
        first = first[:TITLE_MAX].rsplit(" ", 1)[0] + "…"
    title = f"{subcategory}: {first}" if subcategory else first
    return title[:200]


def _flag(form, name: str, errors: list[str]) -> bool:
    value = (form.get(f"attribute[{name}]") or "").strip().lower()
    if value in TRUE:
        return True
    if value not in FALSE:
        errors.append(f"attribute[{name}] must be true or false")
    return False


def build_report(form, services: dict[str, Service] | None,
                 gazetteer: Callable[[], geo.Gazetteer],
                 region_problem: Callable[[str], str | None] | None = None) -> Built:
    """The report a POST requests form describes; Open311Error 400 listing every problem.
    `region_problem` says why a region code is not in the official list (regions.problem)."""
    errors: list[str] = []
    code = (form.get("service_code") or "").strip()
    service = None
    if not code:
        errors.append("service_code is required: one of GET services")
    elif services is not None:
        service = services.get(code)
        if service is None:
            errors.append(f"service_code {code[:40]} is not a service; GET services lists them")
    elif not _CATEGORY_CODE.fullmatch(code):
        errors.append(f"service_code {code[:40]} is not a service code such as PUPR")

    subcategory_name = ""
    subcategory = (form.get("attribute[subcategory]") or "").strip()
    if subcategory and service is not None:
        names = dict(service.subcategories)
        if subcategory not in names:
            errors.append(f"attribute[subcategory] must be one of the values of GET "
                          f"services/{code}")
        subcategory_name = names.get(subcategory, "")
    kind = (form.get("attribute[kind]") or "PENGADUAN").strip().upper()
    anonymous, confidential = _flag(form, "anonymous", errors), _flag(form, "confidential",
                                                                      errors)

    description = (form.get("description") or "").strip()
    if not description:
        errors.append("description is required: what happened, where and since when "
                      "(at least 10 characters)")
    region_code, point = _place(form, errors, gazetteer)
    media_url = (form.get("media_url") or "").strip()
    if media_url:
        parts = urlsplit(media_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or len(media_url) > 2000:
            errors.append("media_url must be an http or https URL of at most 2000 characters")
    if errors:
        raise Open311Error(400, *errors)

    name = " ".join(p for p in ((form.get("first_name") or "").strip(),
                                (form.get("last_name") or "").strip()) if p)
    data = {"kind": kind, "title": _title(description, subcategory_name), "body": description,
            "region_code": region_code, "category": code,
            "address": (form.get("address_string") or "").strip(),
            "anonymous": anonymous, "confidential": confidential,
            "reporter": {k: v for k, v in (("name", name),
                                           ("email", (form.get("email") or "").strip()),
                                           ("phone", (form.get("phone") or "").strip()))
                         if v}}
    if point is not None:
        data["location"] = {"latitude": point[0], "longitude": point[1]}
    try:
        report = parse_new_report(data, channel="open311", region_problem=region_problem)
    except ValidationFailed as exc:
        raise Open311Error(400, *(f"{FIELD_NAMES.get(e['field'], e['field'])}: {e['message']}"
                                  for e in exc.errors)) from None
    return Built(report, media_url)


def _place(form, errors: list[str], gazetteer: Callable[[], geo.Gazetteer]
           ) -> tuple[str, tuple[float, float] | None]:
    """(region code, point): the point placed offline, else address_id as a Kemendagri
    code, else a regency named in address_string."""
    address_id = (form.get("address_id") or "").strip()
    address = (form.get("address_string") or "").strip()
    try:
        point = geo.parse_point((form.get("lat") or "").strip(),
                                (form.get("long") or "").strip())
    except geo.PlaceError as exc:
        errors.append(str(exc))
        return "", None
    if address_id and not _REGION_CODE.fullmatch(address_id):
        errors.append("address_id must be a Kemendagri region code such as 13.03")
        return "", point
    if point is None and not address_id and not address:
        errors.append("send lat and long, or address_string naming the regency or city "
                      "(e.g. 'Kabupaten Sijunjung'), or address_id with its Kemendagri code")
        return "", None
    places = gazetteer() if (point is not None or not address_id) else None
    if places is not None and not places:
        raise Open311Error(503, "locations cannot be placed yet (the official region list is "
                                "not imported); send address_id with the Kemendagri code",
                           headers={"Retry-After": "3600"})
    try:
        if point is not None:
            region = places.locate(*point)
            return region.code, point
        if address_id:
            return address_id, None
        return places.find_in_text(address).code, None
    except geo.PlaceError as exc:
        errors.append(str(exc))
        return "", point
