"""The citizen API under /api/v1: reports, their status, the reporter's replies, rating,
confirmation and appeal (with the report's access token), support from the public
(dukungan), and route suggestions for drafts."""

from __future__ import annotations

import logging
import re

import grpc
import sqlalchemy as sa
from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.routing import BaseConverter

from lapor.v1 import common_pb2, routing_pb2
from services.infra import logs
from services.infra.db import reading
from services.intake import ids, limits, models, regions, reports, support
from services.intake.problems import (
    REPORT_REALM,
    Problem,
    from_citizen_call,
    rpc_violations,
    validation,
)
from services.intake.validation import (
    ValidationFailed,
    parse_draft,
    parse_model,
    parse_new_report,
)

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api/v1")


class _ReportId(BaseConverter):
    """A report's path segment: anything but the names of the other resources under
    /reports. As in OpenAPI, /reports/suggest is its own resource, not a report called
    "suggest", so GET on it is 405 with Allow: POST like any other unsupported method."""

    regex = r"(?!suggest\Z)[^/]+"


bp.record_once(lambda state: state.app.url_map.converters.setdefault("report_id", _ReportId))
IDEMPOTENCY_KEY = re.compile(models.IDEMPOTENCY_KEY)
CLIENT_KEY = re.compile(models.CLIENT_KEY)


def _ctx():
    return current_app.extensions["lapor"]


def json_body(*, optional: bool = False) -> dict:
    """The request's JSON body; with `optional`, no body at all is an empty object."""
    if optional and not request.content_length and not request.get_data(cache=True):
        return {}
    if not request.is_json:
        raise Problem(415, "unsupported_media_type", "Send JSON",
                      "Send the body as JSON with the header Content-Type: application/json")
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
        report = parse_new_report(
            json_body(), region_problem=lambda code: regions.problem(_ctx().engine, code))
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


def all_optional(model) -> bool:
    """Whether a request model has only optional fields: its body may be left out."""
    return not any(field.is_required() for field in model.model_fields.values())


def bearer_token(malformed: Problem | None = None) -> str | None:
    """The bearer token of the Authorization header (a report's access token, or a staff
    member's token). Anywhere else a token ends up in proxy logs, browser history and Referer
    headers, so it is refused there. An Authorization header that is not `Bearer <token>` is
    answered with `malformed` (default 400)."""
    if "token" in request.args or "X-Access-Token" in request.headers:
        raise Problem(400, "token_not_in_header", "Send the access token in the header",
                      "Send the access token as the header Authorization: Bearer <token>, "
                      "never in the address (?token=) or another header")
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise malformed or Problem(
            400, "token_not_in_header", "Send the access token as a bearer token",
            "Send the access token as the header Authorization: Bearer <token>")
    return token.strip()


def tracking_id_of(text: str) -> str:
    """The canonical tracking id in a path, or 400 invalid_tracking_id."""
    canonical = ids.normalise_tracking_id(text)
    if canonical is None:
        raise Problem(400, "invalid_tracking_id", "Not a tracking id",
                      "A tracking id looks like LPR-7K2-M9Q-XD4; its last character is a "
                      "check character, so one mistyped character is caught here",
                      errors=[{"field": "tracking_id", "message": "check each character"}])
    g.tracking_id = canonical
    return canonical


@bp.get("/reports/<report_id:tracking_id>")
def get_report(tracking_id: str):
    canonical = tracking_id_of(tracking_id)
    token = bearer_token()
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
        draft = parse_draft(json_body())
    except ValidationFailed as exc:
        raise validation(exc.errors) from None
    kind = common_pb2.ReportKind.Value("REPORT_KIND_" + draft.kind) if draft.kind else 0
    try:
        answer = _ctx().routing.suggest(routing_pb2.SuggestRouteRequest(
            kind=kind, title=draft.title, body=draft.body, region_code=draft.region_code,
            category=draft.category))
    except grpc.RpcError as exc:
        raise _suggest_problem(exc) from None
    return jsonify({
        "category": answer.category or None,
        "category_code": answer.category_code or None,
        "subcategory": answer.subcategory_name or None,
        "subcategory_code": answer.subcategory or None,
        "agency": {"code": answer.agency.code, "name": answer.agency.name,
                   "level": answer.agency.level},
        "confidence": round(answer.confidence, 3),
        "alternatives": reports.category_scores(answer.alternatives),
        "needs_triage": answer.needs_triage,
        "explanation": answer.explanation,
        "rule": answer.rule or None,
        "model_version": answer.model_version or None,
    })


def _suggest_problem(exc: grpc.RpcError) -> Problem:
    if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
        return validation(rpc_violations(exc))
    problem = from_citizen_call(exc)
    if problem.status != 503:
        return problem
    return Problem(503, "routing_unavailable", "Suggestions are unavailable right now",
                   "Route suggestions are temporarily unavailable. You can still submit the "
                   "report: it will be routed as soon as possible",
                   headers={"Retry-After": "30"})


# -- the reporter's actions, with the report's access token -----------------------------------
def _owned_report(tracking_id: str) -> str:
    """The canonical id of the report the request's access token opens. 401 without a token,
    404 for an unknown report, 403 for another report's token (both count as failed lookups)."""
    canonical = tracking_id_of(tracking_id)
    required = Problem(401, "access_token_required", "Send the report's access token",
                       "Send the access token you got when you submitted the report as "
                       "Authorization: Bearer <token>",
                       headers={"WWW-Authenticate": REPORT_REALM})
    token = bearer_token(malformed=required)
    if token is None:
        raise required
    with reading(_ctx().engine) as conn:
        row = conn.execute(reports.token_hash_query(canonical)).first()
    if row is None:
        raise Problem(404, "report_not_found", "No such report",
                      f"No report has tracking id {canonical}")
    if not ids.token_matches(token, row.access_token_hash):
        raise Problem(403, "wrong_access_token", "Access token does not match",
                      "This access token is not the one issued for this report")
    return canonical


def _reporter_action(tracking_id: str, model, method: str, build, *, status: int = 200,
                     rating: bool = False):
    canonical = _owned_report(tracking_id)
    try:
        body = parse_model(model, json_body(optional=all_optional(model)))
    except ValidationFailed as exc:
        raise validation(exc.errors) from None
    ctx = _ctx()
    try:
        answer = ctx.routing.for_citizen(method, build(canonical, body))
    except grpc.RpcError as exc:
        raise from_citizen_call(exc) from None
    with logs.bound(tracking_id=canonical):
        log.info("reporter action", extra={"outcome": answer.outcome})
        try:
            with ctx.engine.begin() as conn:
                reports.record_action(conn, canonical, answer,
                                      rating=body.rating if rating else None)
        except sa.exc.SQLAlchemyError as exc:
            # Routing has done it: answering 503 would invite a second reply. Routing's
            # events bring the status; only an offered-again rating button is lost.
            log.warning("reporter action not shown at once (%s)", type(exc).__name__)
    state = common_pb2.TicketState.Name(answer.state).removeprefix("TICKET_STATE_")
    response = jsonify({
        "tracking_id": canonical,
        "outcome": answer.outcome,
        "status": state,
        "status_label": reports.STATUS_LABELS.get(state, state),
        "agency": ({"code": answer.agency.code, "name": answer.agency.name}
                   if answer.agency.code else None),
        "deadline": reports.iso_timestamp(answer.deadline),
        "deadline_zone": answer.deadline_zone or None,
        "version": answer.version,
    })
    response.status_code = status
    return response


@bp.post("/reports/<report_id:tracking_id>/replies")
def reply(tracking_id: str):
    return _reporter_action(
        tracking_id, models.ReporterReply, "ReporterReply",
        lambda tid, b: routing_pb2.ReporterReplyRequest(tracking_id=tid, message=b.message),
        status=201)


@bp.post("/reports/<report_id:tracking_id>/confirm")
def confirm(tracking_id: str):
    return _reporter_action(
        tracking_id, models.ReporterConfirm, "ReporterConfirm",
        lambda tid, b: routing_pb2.ReporterConfirmRequest(tracking_id=tid, comment=b.comment))


@bp.post("/reports/<report_id:tracking_id>/rating")
def rate(tracking_id: str):
    return _reporter_action(
        tracking_id, models.ReporterRating, "RateTicket",
        lambda tid, b: routing_pb2.RateTicketRequest(tracking_id=tid, rating=b.rating,
                                                     comment=b.comment), rating=True)


@bp.post("/reports/<report_id:tracking_id>/appeal")
def appeal(tracking_id: str):
    return _reporter_action(
        tracking_id, models.ReporterAppeal, "AppealTicket",
        lambda tid, b: routing_pb2.AppealTicketRequest(tracking_id=tid, reason=b.reason))


# -- dukungan: the public's support ----------------------------------------------------------
@bp.post("/reports/<report_id:tracking_id>/support")
def support_report(tracking_id: str):
    canonical = tracking_id_of(tracking_id)
    key = request.headers.get("X-Client-Key")
    if key is not None and not CLIENT_KEY.fullmatch(key):
        raise Problem(400, "invalid_client_key", "Invalid X-Client-Key",
                      "X-Client-Key must be 8 to 128 visible ASCII characters, e.g. a UUID "
                      "the app makes once and keeps; or leave it out",
                      errors=[{"field": "X-Client-Key", "message": "8-128 visible ASCII "
                                                                  "characters"}])
    # Distinct prefixes: a key can never pass for an address.
    client = f"key:{key}" if key is not None else f"address:{limits.client_key()}"
    try:
        outcome = support.support(_ctx().engine, _ctx().outbox, canonical, client)
    except support.Refused as exc:
        if exc.reason == support.Refusal.NOT_FOUND:
            raise Problem(404, "report_not_found", "No such report",
                          f"No report has tracking id {canonical}") from None
        if exc.reason == support.Refusal.CONFIDENTIAL:
            raise Problem(409, "confidential_report", "A confidential report cannot be "
                          "supported", "The content of this report is not public, so it "
                          "cannot be supported") from None
        raise Problem(409, "report_archived", "An archived report cannot be supported",
                      "This report was archived (spam, a duplicate, not a public service, "
                      "…); support the report it duplicates, or another one") from None
    response = jsonify({"tracking_id": canonical, "support_count": outcome.count,
                        "counted": outcome.counted})
    response.status_code = 201 if outcome.counted else 200
    return response
