"""The citizen API under /api/v1."""

from __future__ import annotations

import re

import grpc
from flask import Blueprint, current_app, g, jsonify, request
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from werkzeug.routing import BaseConverter

from lapor.v1 import common_pb2, routing_pb2
from services.infra.db import reading
from services.intake import ids, models, reports
from services.intake.problems import Problem, validation
from services.intake.validation import ValidationFailed, parse_draft, parse_new_report

bp = Blueprint("api", __name__, url_prefix="/api/v1")


class _ReportId(BaseConverter):
    """A report's path segment: anything but the names of the other resources under
    /reports. As in OpenAPI, /reports/suggest is its own resource, not a report called
    "suggest", so GET on it is 405 with Allow: POST like any other unsupported method."""

    regex = r"(?!suggest\Z)[^/]+"


bp.record_once(lambda state: state.app.url_map.converters.setdefault("report_id", _ReportId))
IDEMPOTENCY_KEY = re.compile(models.IDEMPOTENCY_KEY)


def _ctx():
    return current_app.extensions["lapor"]


def _json_body() -> dict:
    if not request.is_json:
        raise Problem(415, "unsupported_media_type", "Send JSON",
                      "Send the report as JSON with the header Content-Type: application/json")
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser goes: not a report either way
        data = None
    if data is None:
        raise Problem(400, "malformed_json", "The body is not valid JSON",
                      "Check the JSON syntax: quotes, commas and braces")
    return data


@bp.post("/reports")
def create_report():
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise Problem(400, "invalid_idempotency_key", "Invalid Idempotency-Key",
                      "Idempotency-Key must be 8 to 255 visible ASCII characters; "
                      "a fresh UUID per report is best", errors=[
                          {"field": "Idempotency-Key", "message": "8-255 visible ASCII chars"}])
    try:
        report = parse_new_report(_json_body())
    except ValidationFailed as exc:
        raise validation(exc.errors) from None
    ctx = _ctx()
    try:
        answer, replayed = reports.submit(ctx.engine, ctx.outbox, report, key)
    except reports.IdempotencyConflict:
        raise Problem(422, "idempotency_key_reused", "Idempotency-Key already used",
                      "This Idempotency-Key was used for a different report; use a new key "
                      "for a new report") from None
    g.tracking_id = answer["tracking_id"]
    response = jsonify(answer)
    response.status_code = 201
    response.headers["Location"] = f"/api/v1/reports/{answer['tracking_id']}"
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _access_token() -> str | None:
    """The bearer token of the Authorization header. Anywhere else a token ends up in
    proxy logs, browser history and Referer headers, so it is refused there."""
    if "token" in request.args or "X-Access-Token" in request.headers:
        raise Problem(400, "token_not_in_header", "Send the access token in the header",
                      "Send the access token as the header Authorization: Bearer <token>, "
                      "never in the address (?token=) or another header")
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(400, "token_not_in_header", "Send the access token as a bearer token",
                      "Send the access token as the header Authorization: Bearer <token>")
    return token.strip()


@bp.get("/reports/<report_id:tracking_id>")
def get_report(tracking_id: str):
    canonical = ids.normalise_tracking_id(tracking_id)
    if canonical is None:
        raise Problem(400, "invalid_tracking_id", "Not a tracking id",
                      "A tracking id looks like LPR-7K2-M9Q-XD4; its last character is a "
                      "check character, so one mistyped character is caught here",
                      errors=[{"field": "tracking_id", "message": "check each character"}])
    g.tracking_id = canonical
    token = _access_token()
    with reading(_ctx().engine) as conn:
        row, entries = reports.load(conn, canonical)
    if row is None:
        raise Problem(404, "report_not_found", "No such report",
                      f"No report has tracking id {canonical}")
    if token is None:
        return jsonify(reports.public_view(row, entries))
    if not ids.token_matches(token, row.access_token_hash):
        raise Problem(403, "wrong_access_token", "Access token does not match",
                      "This access token is not the one issued for this report; leave it out "
                      "to see the public view")
    return jsonify(reports.owner_view(row, entries))


@bp.post("/reports/suggest")
def suggest_route():
    try:
        draft = parse_draft(_json_body())
    except ValidationFailed as exc:
        raise validation(exc.errors) from None
    kind = common_pb2.ReportKind.Value("REPORT_KIND_" + draft.kind) if draft.kind else 0
    try:
        answer = _ctx().routing.suggest(routing_pb2.SuggestRouteRequest(
            kind=kind, title=draft.title, body=draft.body, region_code=draft.region_code,
            category=draft.category))
    except grpc.RpcError as exc:
        raise _from_rpc_error(exc) from None
    return jsonify({
        "category": answer.category or None,
        "category_name": answer.category_name or None,
        "confidence": round(answer.confidence, 3),
        "agency": {"code": answer.agency.code, "name": answer.agency.name,
                   "level": answer.agency.level},
        "needs_triage": answer.needs_triage,
        "explanation": answer.explanation,
    })


def _from_rpc_error(exc: grpc.RpcError) -> Problem:
    code = exc.code()
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        errors = []
        status = rpc_status.from_call(exc)
        for detail in status.details if status else []:
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(bad):
                errors += [{"field": v.field, "message": v.description}
                           for v in bad.field_violations]
        return validation(errors or [{"field": "(body)", "message": exc.details()}])
    return Problem(503, "routing_unavailable", "Suggestions are unavailable right now",
                   "Route suggestions are temporarily unavailable. You can still submit the "
                   "report: it will be routed as soon as possible",
                   headers={"Retry-After": "30"})
