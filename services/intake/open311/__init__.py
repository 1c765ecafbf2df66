"""Open311 GeoReport v2 served by intake under /open311/v2 (XML by default, JSON with .json):
discovery, services and their definitions (the directory's categories), service requests
(the public view of reports) with the spec's filters, POST requests with a client's API
key, and tokens. Errors are the spec's error document, never problem+json."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta, timezone

from flask import Blueprint, current_app, g, request
from werkzeug.exceptions import HTTPException

from services.infra.config import Env
from services.infra.db import reading
from services.intake import attachments, ids, models, regions, reports
from services.intake.limits import RateLimited
from services.intake.open311 import catalog, geo, keys
from services.intake.open311 import requests as service_requests
from services.intake.open311.openapi import openapi_paths, openapi_schemas
from services.intake.open311.render import (
    JSON,
    XML,
    Open311Error,
    error_response,
    response,
    split_format,
)
from services.intake.open311.submit import build_report

log = logging.getLogger(__name__)

__all__ = ["bp", "openapi_paths", "openapi_schemas"]

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"


@bp.record_once
def _settings(state) -> None:
    """Read once at start: the discovery's contact lines and the category cache's ages."""
    config, env = state.app.config, Env()
    config.setdefault("OPEN311_CONTACT", env.str(
        "INTAKE_OPEN311_CONTACT", "SP4N-LAPOR! helpdesk: https://www.lapor.go.id"))
    config.setdefault("OPEN311_KEY_SERVICE", env.str(
        "INTAKE_OPEN311_KEY_SERVICE", "Ask the LAPOR operator for an API key"))
    state.app.extensions["lapor.open311"] = catalog.Catalog(
        fresh=float(config.get("OPEN311_CATEGORIES_SECONDS") or catalog.FRESH_SECONDS),
        stale=float(config.get("OPEN311_CATEGORIES_STALE_SECONDS") or catalog.STALE_SECONDS),
        retry=float(config.get("OPEN311_CATEGORIES_RETRY_SECONDS") or catalog.RETRY_SECONDS))


def _ctx():
    return current_app.extensions["lapor"]


def _format() -> str:
    """The format asked for, also for errors raised before the view ran (a rate limit)."""
    return g.get("open311_format") or split_format(request.path.rsplit("/", 1)[-1])[1]


@bp.errorhandler(Open311Error)
def _open311_error(exc: Open311Error):
    return error_response(_format(), exc)


@bp.errorhandler(RateLimited)
def _rate_limited(exc: RateLimited):
    return error_response(_format(), Open311Error(
        429, f"{exc.allowance.message} (at most {exc.limit}); wait {exc.wait} seconds and "
        "try again", headers={"Retry-After": str(exc.wait)}))


@bp.errorhandler(HTTPException)
def http_error(exc: HTTPException):
    """Also answers, through the app's handler, what matched no route under the prefix (an
    unknown path, a method a resource lacks): Open311 clients get the spec's errors."""
    descriptions = {413: "the request is too large; send at most the fields of the spec",
                    405: f"{request.method} is not supported here"}
    # 405 says which methods the resource has (RFC 9110 requires Allow).
    return error_response(_format(), Open311Error(
        exc.code or 400, descriptions.get(exc.code, exc.description or exc.name),
        headers={name: value for name, value in exc.get_headers() if name == "Allow"}))


@bp.errorhandler(Exception)
def _unexpected(exc: Exception):
    log.exception("unhandled error on an Open311 endpoint")
    return error_response(_format(), Open311Error(
        503, "the service could not complete the request; nothing was saved; try again "
             "shortly", headers={"Retry-After": "5"}))


def _fmt_routes(path: str, endpoint: str, methods=("GET",)):
    """`path`, `path.xml` and `path.json`, one view. Each its own endpoint (`endpoint`,
    `endpoint_xml`, `endpoint_json`): rules of one endpoint with equal defaults make werkzeug
    redirect the later ones to the first, and a GeoReport client asking for `.xml` must get
    XML, not a 308."""
    def register(view):
        for suffix, fmt in (("", XML), (".xml", XML), (".json", JSON)):
            bp.add_url_rule(path + suffix, endpoint + suffix.replace(".", "_"), view,
                            methods=list(methods), defaults={"fmt": fmt})
        return view
    return register


def _set_format(fmt: str) -> str:
    g.open311_format = fmt
    return fmt


# -- discovery and services --------------------------------------------------------------------
@_fmt_routes("/discovery", "discovery")
def discovery(fmt: str):
    _set_format(fmt)
    config = current_app.config
    base = request.host_url.rstrip("/") + bp.url_prefix
    return response(fmt, "discovery", {
        "changeset": "2026-12-02T00:00:00Z",
        "contact": config["OPEN311_CONTACT"],
        "key_service": config["OPEN311_KEY_SERVICE"],
        "endpoints": [{"specification": SPECIFICATION, "url": base,
                       "changeset": "2026-12-02T00:00:00Z", "type": "production",
                       "formats": ["text/xml", "application/json"]}],
    })


def _services() -> dict[str, catalog.Service]:
    try:
        return current_app.extensions["lapor.open311"].services(_ctx().routing.categories)
    except catalog.CatalogUnavailable:
        raise Open311Error(503, "the list of services is unavailable right now (the "
                                "directory does not answer); try again in a minute",
                           headers={"Retry-After": "30"}) from None


@_fmt_routes("/services", "services")
def services(fmt: str):
    _set_format(fmt)
    return response(fmt, "services", [catalog.service_item(s) for s in _services().values()])


@bp.get("/services/<name>", endpoint="service_definition")
def service_definition(name: str):
    code, fmt = split_format(name)
    _set_format(fmt)
    service = _services().get(code)
    if service is None:
        raise Open311Error(404, f"no service with service_code {code[:40]}; GET services "
                                "lists them")
    return response(fmt, "service_definition", catalog.definition(service))


# -- service requests ------------------------------------------------------------------------
# RFC 3339 date-times, as JSON Schema's date-time format reads them.
_DATE_TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
                        r"(Z|[+-]\d{2}:\d{2})", re.ASCII | re.IGNORECASE)
_CATEGORY = re.compile(models.CATEGORY_CODE, re.ASCII)


def _list_param(name: str, limit: int = service_requests.MAX_IDS) -> list[str]:
    text = request.args.get(name) or ""
    values = text.split(",") if text else []
    if len(values) > limit:
        raise Open311Error(400, f"{name}: at most {limit} values, comma-separated")
    return values


def _date_param(name: str) -> datetime | None:
    """The parameter as a UTC datetime (out-of-range years clamp to the first or last)."""
    text = request.args.get(name)
    if text is None:
        return None
    match = _DATE_TIME.fullmatch(text)
    value = None
    if match:
        year, month, day, hour, minute, second, fraction, zone = match.groups()
        zone = "+00:00" if zone.upper() == "Z" else zone
        try:
            offset = timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
            value = datetime(max(1, int(year)), int(month), int(day), int(hour), int(minute),
                             int(second), int((fraction or "0")[:6].ljust(6, "0")),
                             tzinfo=timezone(-offset if zone[0] == "-" else offset))
        except ValueError:
            value = None
    if value is None:
        raise Open311Error(400, f"{name} must be a date and time in W3C format with a time "
                                "zone, e.g. 2026-12-01T00:00:00+07:00 or "
                                "2026-12-01T00:00:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 1 east of Greenwich or 9999 west of it
        return datetime.min.replace(tzinfo=UTC) if value.year == 1 else \
            datetime.max.replace(tzinfo=UTC)


def _service_names() -> dict[str, str]:
    try:
        return {code: s.name for code, s in _services().items()}
    except Open311Error:  # the requests themselves do not depend on routing
        return {}


def _items(conn, rows) -> list[dict]:
    names = service_requests.region_names(conn, {r.region_code for r in rows})
    services_by_code = _service_names() if rows else {}
    return [service_requests.item(r, names, services_by_code) for r in rows]


@_fmt_routes("/requests", "list_requests")
def list_requests(fmt: str):
    _set_format(fmt)
    canonical = []
    for value in _list_param("service_request_id"):
        tracking_id = ids.normalise_tracking_id(value)
        if tracking_id is None:
            raise Open311Error(400, f"service_request_id {value[:40]!r} is not a request id "
                                    "such as LPR-7K2-M9Q-XD4 (its last character is a check "
                                    "character)")
        canonical.append(tracking_id)
    statuses = _list_param("status")
    if any(s not in ("open", "closed") for s in statuses):
        raise Open311Error(400, "status must be open, closed or both, comma-separated")
    codes = _list_param("service_code")
    if any(not _CATEGORY.fullmatch(code) for code in codes):
        raise Open311Error(400, "service_code must be service codes of GET services (such "
                                "as PUPR), comma-separated")
    start, end = _date_param("start_date"), _date_param("end_date")
    with reading(_ctx().engine) as conn:
        rows = service_requests.find(conn, ids=canonical, codes=codes, start=start, end=end,
                                     statuses=statuses)
        items = _items(conn, rows)
    return response(fmt, "service_requests", items)


@bp.get("/requests/<name>", endpoint="get_request")
def get_request(name: str):
    value, fmt = split_format(name)
    _set_format(fmt)
    tracking_id = ids.normalise_tracking_id(value)
    if tracking_id is None:
        raise Open311Error(404, f"no service request {value[:40]!r}: an id looks like "
                                "LPR-7K2-M9Q-XD4 (its last character is a check character)")
    with reading(_ctx().engine) as conn:
        row = service_requests.one(conn, tracking_id)
        if row is None:
            raise Open311Error(404, f"no public service request {tracking_id}")
        items = _items(conn, [row])
    return response(fmt, "service_requests", items)


@bp.get("/tokens/<name>", endpoint="get_token")
def get_token(name: str):
    token, fmt = split_format(name)
    _set_format(fmt)
    with reading(_ctx().engine) as conn:
        tracking_id = keys.tracking_id_of_token(conn, token)
        if tracking_id is None:
            raise Open311Error(404, "no such token; POST requests answers one")
        routed = service_requests.routed(conn, tracking_id)
    item = {"service_request_id": tracking_id if routed else None, "token": token}
    return response(fmt, "service_requests", [item])


def _gazetteer(rows) -> geo.Gazetteer:
    return geo.Gazetteer([geo.Region(r.code, r.name.strip(), r.level) for r in rows])


def gazetteer() -> geo.Gazetteer:
    """The provinces and regencies of intake's region list, read again every few minutes;
    an empty list is not remembered: an import takes effect at once."""
    return regions.matcher(_ctx().engine, _gazetteer)


@_fmt_routes("/requests", "create_request", methods=("POST",))
def create_request(fmt: str):
    _set_format(fmt)
    form = request.form
    ctx = _ctx()
    with reading(ctx.engine) as conn:
        client = keys.client_id(conn, form.get("api_key", ""))
    if client is None:
        raise Open311Error(403, "api_key is missing or not valid; ask the LAPOR operator for "
                                "a key and send it as the api_key field")
    try:
        known = _services()
    except Open311Error:
        known = None  # routing is down: accept any well-formed code, routing checks later
    built = build_report(form, known, gazetteer,
                         lambda code: regions.problem(ctx.engine, code))
    token = keys.new_token()

    def also(conn, tracking_id: str) -> None:
        keys.store_token(conn, token, tracking_id, client)
        if built.media_url:
            attachments.enqueue_media_url(conn, tracking_id, built.media_url)

    answer, _ = reports.submit(ctx.engine, ctx.outbox, built.report, None, also=also)
    g.tracking_id = answer["tracking_id"]
    notice = (f"Laporan diterima ({reports.STATUS_LABELS['SUBMITTED']}); GET tokens/{token} "
              "gives its service_request_id once it is routed")
    return response(fmt, "service_requests",
                    [{"token": token, "service_notice": notice, "account_id": None}],
                    status=201)
