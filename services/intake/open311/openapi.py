"""The OpenAPI path items and schemas of the Open311 endpoints (JSON and XML forms), merged
into intake's document by services/intake/openapi.py."""

from __future__ import annotations

from services.intake import ids, models
from services.intake.open311 import keys
from services.intake.openapi_parts import ref as _ref

PREFIX = "/open311/v2"
_STR = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}


def _content(schema: dict) -> dict:
    return {"application/json": {"schema": schema},
            "text/xml": {"schema": {"type": "string", "description": "the same answer as "
                                    "the spec's XML document"}}}


def _errors(*statuses: int) -> dict:
    meanings = {400: "a parameter to fix: each error's description says which and how",
                403: "api_key missing or not valid", 404: "no such resource",
                413: "the request is too large",
                429: "too many requests; Retry-After says when to try again",
                503: "the directory or the region list is unavailable; try again later"}
    return {str(s): {"description": meanings[s], "content": _content(
        {"type": "array", "items": _ref("Open311Error")})} for s in statuses}


def _operation(operation_id: str, summary: str, answer: dict, *errors: int,
               parameters: list | None = None, description: str = "") -> dict:
    op = {"operationId": operation_id, "summary": summary, "tags": ["Open311 GeoReport v2"],
          "responses": {"200": {"description": "OK", "content": _content(answer)},
                        **_errors(*errors)}}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    return op


def _query(name: str, description: str, schema: dict) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}


def _list(items: dict, most: int = 100) -> dict:
    """A comma-separated list in the query (form style, not exploded)."""
    return {"type": "array", "items": items, "maxItems": most}


def _comma_separated(parameter: dict) -> dict:
    return {**parameter, "style": "form", "explode": False}


def _path(name: str, description: str, pattern: str, format_: str | None = None) -> dict:
    schema = {"type": "string", "pattern": pattern}
    if format_:
        schema["format"] = format_
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": schema}


def _suffixed(pattern: str) -> str:
    """An anchored pattern followed by an optional .xml or .json."""
    return pattern.removesuffix("$") + "(?:\\.xml|\\.json)?$"


_FORMATS = ("", ".xml", ".json")
_XML_DEFAULT = "Without a suffix or with .xml the answer is XML; with .json, JSON."


def openapi_paths() -> dict:
    """The path items: each resource with no suffix (XML), .xml and .json."""
    array = {"type": "array"}
    discovery = _operation("open311Discovery", "Service discovery", _ref("Open311Discovery"),
                           429, description=_XML_DEFAULT)
    services = _operation("open311Services", "The services: the directory's categories",
                          {**array, "items": _ref("Open311Service")}, 429, 503,
                          description=_XML_DEFAULT)
    date_time = {"type": "string", "format": "date-time"}
    request_filters = [
        _comma_separated(_query(
            "service_request_id", "comma-separated ids (their last character is a check "
            "character); when given, the other filters are ignored", _list(
                {"type": "string", "pattern": ids.TRACKING_ID_PATTERN,
                 "format": "lapor-tracking-id"}))),
        _comma_separated(_query("service_code", "comma-separated service codes", _list(
            {"type": "string", "pattern": f"^{models.CATEGORY_CODE}$"}))),
        _query("start_date", "W3C date and time with zone; requested on or after", date_time),
        _query("end_date", "W3C date and time with zone; requested on or before (before "
                           "start_date: nothing matches)", date_time),
        _comma_separated(_query("status", "open, closed or both (comma-separated)", _list(
            {"enum": ["open", "closed"]}, 2)))]
    list_requests = _operation(
        "open311ListRequests", "Public service requests, newest first (at most 1000; the "
        "last 90 days without dates)", {**array, "items": _ref("Open311Request")}, 400, 429,
        parameters=request_filters,
        description="Confidential reports are never listed; no reporter detail and no exact "
                    "location is shown (the regency is, as address and address_id).")
    create = {
        "operationId": "open311CreateRequest", "summary": "Submit a service request",
        "tags": ["Open311 GeoReport v2"],
        "description": "Form-encoded. Answers a token at once; GET tokens/{token} gives the "
                       "service_request_id once routing has the report.",
        "requestBody": {"required": True, "content": {
            "application/x-www-form-urlencoded": {"schema": _ref("Open311NewRequest")}}},
        "responses": {"201": {"description": "Accepted", "content": _content(
            {**array, "items": _ref("Open311Accepted")})}, **_errors(400, 403, 413, 429, 503)}}
    paths = {}
    for suffix in _FORMATS:
        paths[f"{PREFIX}/discovery{suffix}"] = {"get": discovery}
        paths[f"{PREFIX}/services{suffix}"] = {"get": services}
        paths[f"{PREFIX}/requests{suffix}"] = {"get": list_requests, "post": create}
    paths[f"{PREFIX}/services/{{name}}"] = {"get": _operation(
        "open311ServiceDefinition", "A service's definition: its attributes",
        _ref("Open311ServiceDefinition"), 404, 429, 503,
        parameters=[_path("name", "the service_code, then .xml or .json (XML without)",
                          _suffixed(f"^{models.CATEGORY_CODE}$"))])}
    paths[f"{PREFIX}/requests/{{name}}"] = {"get": _operation(
        "open311GetRequest", "One public service request",
        {"type": "array", "items": _ref("Open311Request")}, 404, 429,
        parameters=[_path("name", "the service_request_id, then .xml or .json; an id whose "
                                  "check character does not match is not found",
                          _suffixed(ids.TRACKING_ID_PATTERN), "lapor-tracking-id")])}
    paths[f"{PREFIX}/tokens/{{name}}"] = {"get": _operation(
        "open311GetToken", "The service_request_id of a token (null until routed)",
        {"type": "array", "items": _ref("Open311Token")}, 404, 429,
        parameters=[_path("name", "the token, then .xml or .json",
                          _suffixed(f"^{keys.TOKEN.pattern}$"))])}
    return paths


def _object(properties: dict, required: bool = True) -> dict:
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(properties)
    return schema


def openapi_schemas() -> dict:
    value = _object({"key": {"type": "string"}, "name": {"type": "string"}})
    return {
        "Open311Error": _object({"code": {"type": "integer"},
                                 "description": {"type": "string"}}),
        "Open311Discovery": _object({
            "changeset": {"type": "string", "format": "date-time"},
            "contact": {"type": "string"}, "key_service": {"type": "string"},
            "endpoints": {"type": "array", "items": _object({
                "specification": {"type": "string"}, "url": {"type": "string"},
                "changeset": {"type": "string", "format": "date-time"},
                "type": {"type": "string"},
                "formats": {"type": "array", "items": {"type": "string"}}})}}),
        "Open311Service": _object({
            "service_code": {"type": "string"}, "service_name": {"type": "string"},
            "description": {"type": "string"}, "metadata": {"type": "boolean"},
            "type": {"enum": ["realtime", "batch", "blackbox"]},
            "keywords": {"type": "string"}, "group": {"type": "string"}}),
        "Open311ServiceDefinition": _object({
            "service_code": {"type": "string"},
            "attributes": {"type": "array", "items": _object({
                "variable": {"type": "boolean"}, "code": {"type": "string"},
                "datatype": {"type": "string"}, "required": {"type": "boolean"},
                "datatype_description": _STR, "order": {"type": "integer"},
                "description": {"type": "string"},
                "values": {"type": "array", "items": value}})}}),
        "Open311Request": _object({
            "service_request_id": {"type": "string"},
            "status": {"enum": ["open", "closed"]},
            "status_notes": _STR, "service_name": _STR, "service_code": _STR,
            "description": _STR, "agency_responsible": _STR, "service_notice": _STR,
            "requested_datetime": _TIME, "updated_datetime": _TIME,
            "expected_datetime": _TIME, "address": _STR, "address_id": _STR,
            "zipcode": _STR, "lat": {"type": ["number", "null"]},
            "long": {"type": ["number", "null"]}, "media_url": _STR}),
        "Open311Accepted": _object({"token": {"type": "string"}, "service_notice": _STR,
                                    "account_id": _STR}),
        "Open311Token": _object({"service_request_id": _STR, "token": {"type": "string"}}),
        "Open311NewRequest": {"type": "object", "required": ["api_key", "service_code",
                                                             "description"],
                              "properties": {name: {"type": "string", "description": d}
                                             for name, d in NEW_REQUEST_FIELDS.items()}},
    }


NEW_REQUEST_FIELDS = {
    "api_key": "the client's key (python -m services.intake open311-keys add NAME)",
    "service_code": "one of GET services",
    "lat": "decimal degrees (WGS84); with long, placed in its regency",
    "long": "decimal degrees (WGS84)",
    "address_string": "the address; names the regency or city when lat/long are not sent",
    "address_id": "a Kemendagri region code such as 13.03, instead of lat/long",
    "email": "the reporter's email: only the notification service keeps it",
    "first_name": "the reporter's first name (hidden from agencies when anonymous)",
    "last_name": "the reporter's last name",
    "phone": "the reporter's Indonesian phone number",
    "description": "what happened, where and since when (10 to 10,000 characters)",
    "media_url": "an http(s) URL of a photo, fetched and attached",
    "attribute[subcategory]": "a subcategory code of GET services/{service_code}",
    "attribute[kind]": "PENGADUAN (default), ASPIRASI or PERMINTAAN_INFORMASI",
    "attribute[anonymous]": "true: hide the reporter from agencies and the public",
    "attribute[confidential]": "true: hide the content from the public",
}
