"""The staff API under /api/v1/staff: agency officers and admins, national admins and
oversight work on tickets over HTTP. Each request's bearer token is the staff member's own
and goes to routing unchanged; routing decides who they are, what they see and what they may
do (intake's service token is never used here). Answers are routing's, turned into JSON
field by field: snake_case names, enums as their names ("DISPATCHED", "SIMPLE"), times in
UTC as ISO 8601."""

from __future__ import annotations

import re

import grpc
from flask import Blueprint, current_app, jsonify, request
from google.protobuf import empty_pb2

from lapor.v1 import common_pb2, routing_pb2
from services.intake import ids, models
from services.intake.api import all_optional, bearer_token, json_body, tracking_id_of
from services.intake.attachments.api import attachments_for_staff
from services.intake.problems import STAFF_REALM, Problem, from_staff_call, validation
from services.intake.reports import STATUS_LABELS, category_scores, iso_timestamp
from services.intake.routing_client import TOKEN
from services.intake.validation import ValidationFailed, parse_model

bp = Blueprint("staff", __name__, url_prefix="/api/v1/staff")

MAX_PAGE = 200
MAX_QUERY_TEXT = 200
_REGION = re.compile(models.padded_or_blank(models.REGION_CODE))
_CATEGORY = re.compile(models.padded_or_blank(models.CATEGORY_CODE))
_AGENCY = re.compile(models.padded_or_blank(models.AGENCY_CODE))
_PAGE_TOKEN = re.compile(models.PAGE_TOKEN)
# Routing's request fields -> the inbox's query parameters, for the errors routing finds.
LIST_FIELDS = {"states": "state", "overdue_only": "overdue", "text": "q",
               "agency_code": "agency", "category": "category", "region_code": "region_code",
               "page_size": "page_size", "page_token": "page_token"}
# The lifecycle's action names -> the paths of the staff actions (POST …/{action}).
ACTION_PATHS = {"not_our_authority": "decline", "follow_up": "follow-up"}
# Body fields naming another ticket (duplicates) -> routing's request field.
OTHER_TICKET_FIELDS = {"master": "master_tracking_id", "candidate": "candidate"}


def staff_token() -> str:
    """The staff member's bearer token; 401 without one (or with one that cannot be a token),
    telling the client to authenticate with Bearer."""
    required = Problem(401, "unauthenticated", "Sign in with your staff token",
                       "Send your staff token as Authorization: Bearer <token>; an admin "
                       "issues it with `python -m services.routing accounts token USERNAME`",
                       headers={"WWW-Authenticate": STAFF_REALM})
    token = bearer_token(malformed=required)
    if token is None:
        raise required
    if not TOKEN.fullmatch(token):
        raise Problem(401, "unauthenticated", "Sign in with your staff token",
                      "This is not a staff token: send the token as issued",
                      headers={"WWW-Authenticate": f'{STAFF_REALM}, error="invalid_token"'})
    return token


def _call(method: str, request_message, token: str, rename: dict | None = None):
    try:
        return current_app.extensions["lapor"].routing.for_staff(method, request_message, token)
    except grpc.RpcError as exc:
        raise from_staff_call(exc, rename) from None


# -- queries -----------------------------------------------------------------------------------
@bp.get("/me")
def me():
    principal = _call("WhoAmI", empty_pb2.Empty(), staff_token())
    return jsonify({"username": principal.username,
                    "display_name": principal.display_name or None,
                    "role": principal.role,
                    "agency": agency_json(principal.agency)})


@bp.get("/tickets")
def list_tickets():
    token = staff_token()
    query = inbox_query(request.args)
    answer = _call("ListTickets", query, token, LIST_FIELDS)
    return jsonify({"tickets": [summary_json(t) for t in answer.tickets],
                    "next_page_token": answer.next_page_token or None})


@bp.get("/tickets/<tracking_id>")
def get_ticket(tracking_id: str):
    token = staff_token()
    canonical = tracking_id_of(tracking_id)
    ticket = ticket_json(_call(
        "GetTicket", routing_pb2.GetTicketRequest(tracking_id=canonical), token))
    # Routing has let this member see the ticket: the reporter's files come with it.
    ticket["attachments"] = attachments_for_staff(canonical)
    return jsonify(ticket)


@bp.get("/tickets/<tracking_id>/audit")
def audit_trail(tracking_id: str):
    token = staff_token()
    canonical = tracking_id_of(tracking_id)
    trail = _call("GetAuditTrail", routing_pb2.GetTicketRequest(tracking_id=canonical), token)
    return jsonify({"tracking_id": canonical, "entries": [
        {"at": iso_timestamp(e.at), "actor": e.actor, "actor_role": e.actor_role or None,
         "action": e.action or None, "from_state": _state(e.from_state),
         "to_state": _state(e.to_state), "from_agency": e.from_agency or None,
         "to_agency": e.to_agency or None, "reason": e.reason or None,
         "note": e.note or None, "version": e.version} for e in trail.entries]})


def inbox_query(args) -> routing_pb2.ListTicketsRequest:
    """The inbox's query parameters as routing's request; 422 naming each bad parameter."""
    errors = []

    def bad(field: str, message: str) -> None:
        errors.append({"field": field, "message": message})

    query = routing_pb2.ListTicketsRequest()
    for value in args.getlist("state"):
        if value.strip().upper() in models.STATES:
            query.states.append(common_pb2.TicketState.Value(
                "TICKET_STATE_" + value.strip().upper()))
        else:
            bad("state", "one of " + ", ".join(models.STATES) + "; repeat the parameter for "
                "several")
            break
    overdue = args.get("overdue", "").strip().lower()
    if overdue in ("true", "1"):
        query.overdue_only = True
    elif overdue not in ("", "false", "0"):
        bad("overdue", "true or false")
    for name, field, pattern, hint in (
            ("category", "category", _CATEGORY, "a category code such as PUPR"),
            ("region_code", "region_code", _REGION, "a region code such as 13.03"),
            ("agency", "agency_code", _AGENCY, "an agency code such as PUPR-13.03")):
        value = args.get(name, "")
        if not pattern.fullmatch(value):
            bad(name, hint)
        elif value.strip(models.TRIMMED):
            setattr(query, field, value.strip(models.TRIMMED))
    text = args.get("q", "")
    if len(text) > MAX_QUERY_TEXT or "\x00" in text:
        bad("q", f"at most {MAX_QUERY_TEXT} characters of text, without NUL characters")
    else:
        query.text = text.strip(models.TRIMMED)
    size = args.get("page_size", "")
    if size.strip():
        if size.strip().isascii() and size.strip().isdigit() and \
                1 <= int(size.strip()) <= MAX_PAGE:
            query.page_size = int(size.strip())
        else:
            bad("page_size", f"a whole number from 1 to {MAX_PAGE} (default 50)")
    token = args.get("page_token", "")
    if token:
        if _PAGE_TOKEN.fullmatch(token):
            query.page_token = token
        else:
            bad("page_token", "pass next_page_token from the previous page unchanged")
    if errors:
        raise validation(errors)
    return query


# -- actions -----------------------------------------------------------------------------------
def _action_view(path: str, method: str, model):
    def act(tracking_id: str):
        token = staff_token()
        canonical = tracking_id_of(tracking_id)
        try:
            body = parse_model(model, json_body(optional=all_optional(model)))
        except ValidationFailed as exc:
            raise validation(exc.errors) from None
        fields = {name: value for name, value in body if value is not None}
        if "complexity" in fields:
            fields["complexity"] = routing_pb2.Complexity.Value(
                "COMPLEXITY_" + fields["complexity"])
        renamed = {}
        for name, field in OTHER_TICKET_FIELDS.items():
            if name in fields:
                other = ids.normalise_tracking_id(fields.pop(name))
                if other is None:
                    raise validation([{"field": name, "message": "a tracking id such as "
                                       "LPR-7K2-M9Q-XD4: check each character (the last is "
                                       "a check character)"}])
                fields[field], renamed[field] = other, name
        message = getattr(routing_pb2, method + "Request")(tracking_id=canonical, **fields)
        return jsonify(ticket_json(_call(method, message, token, renamed or None)))

    act.__name__ = "ticket_" + path.replace("-", "_")
    act.__doc__ = model.__doc__
    return act


for _path, (_method, _model) in models.STAFF_ACTION_MODELS.items():
    bp.add_url_rule(f"/tickets/<tracking_id>/{_path}", view_func=_action_view(
        _path, _method, _model), methods=["POST"])


# -- protobuf -> JSON, field by field ------------------------------------------------------------
def _state(value: int) -> str | None:
    name = common_pb2.TicketState.Name(value) if value in common_pb2.TicketState.values() \
        else ""
    state = name.removeprefix("TICKET_STATE_")
    return state if state in STATUS_LABELS else None


def agency_json(agency: common_pb2.Agency) -> dict | None:
    if not agency.code:
        return None
    return {"code": agency.code, "name": agency.name, "level": agency.level or None,
            "region_code": agency.region_code or None, "parent_code": agency.parent_code or None}


def summary_json(t: routing_pb2.TicketSummary) -> dict:
    state = _state(t.state)
    return {"tracking_id": t.tracking_id, "state": state,
            "state_label": STATUS_LABELS.get(state, ""), "agency": agency_json(t.agency),
            "category": t.category or None, "title": t.title, "region_code": t.region_code,
            "deadline": iso_timestamp(t.deadline), "deadline_zone": t.deadline_zone or None,
            "overdue": t.overdue, "version": t.version,
            "created_at": iso_timestamp(t.created_at), "escalation_level": t.escalation_level,
            "support_count": t.support_count}


def _report_json(r: common_pb2.ReportContent) -> dict:
    kind = common_pb2.ReportKind.Name(r.kind).removeprefix("REPORT_KIND_") \
        if r.kind in common_pb2.ReportKind.values() else ""
    return {"kind": kind if kind in models.KINDS else None, "title": r.title, "body": r.body,
            "region_code": r.region_code, "region_name": r.region_name or None,
            "category": r.category or None, "anonymous": r.anonymous,
            "confidential": r.confidential,
            # Routing leaves the name out when the report is anonymous; so does this.
            "reporter_name": (r.reporter_name or None) if not r.anonymous else None,
            "channel": r.channel or None, "incident_date": r.incident_date or None,
            "location": ({"latitude": r.location.latitude, "longitude": r.location.longitude}
                         if r.HasField("location") else None),
            "address": r.address or None, "target_agency": r.target_agency or None,
            "submitted_at": iso_timestamp(r.submitted_at)}


def ticket_json(t: routing_pb2.Ticket) -> dict:
    state = _state(t.state)
    complexity = routing_pb2.Complexity.Name(t.complexity).removeprefix("COMPLEXITY_") \
        if t.complexity in routing_pb2.Complexity.values() else ""
    return {
        "tracking_id": t.tracking_id, "ticket_id": t.ticket_id, "state": state,
        "state_label": STATUS_LABELS.get(state, ""), "agency": agency_json(t.agency),
        "category": t.category or None, "region_code": t.region_code,
        "deadline": iso_timestamp(t.deadline), "deadline_zone": t.deadline_zone or None,
        "clock": t.clock or None, "overdue": t.overdue,
        "created_at": iso_timestamp(t.created_at), "updated_at": iso_timestamp(t.updated_at),
        "version": t.version, "report": _report_json(t.report),
        "decision": t.decision or None, "confidence": round(t.confidence, 3),
        "subcategory": t.subcategory or None, "rule": t.rule or None,
        "top_categories": category_scores(t.top_categories),
        "model_version": t.model_version or None,
        "complexity": complexity if complexity in models.COMPLEXITIES else None,
        "accepted_at": iso_timestamp(t.accepted_at),
        "escalation_level": t.escalation_level, "oversight_flagged": t.oversight_flagged,
        "support_count": t.support_count, "rating": t.rating or None,
        "rating_comment": t.rating_comment or None,
        "timeline": [{"at": iso_timestamp(e.at), "state": _state(e.state),
                      "action": e.action or None, "actor_role": e.actor_role or None,
                      "agency_code": e.agency_code or None, "note": e.note or None}
                     for e in t.timeline if _state(e.state)],
        "chain": [{"agency": agency_json(c.agency), "reason": c.reason,
                   "at": iso_timestamp(c.at)} for c in t.chain if c.agency.code],
        "messages": [{"at": iso_timestamp(m.at), "direction": m.direction,
                      "author_role": m.author_role or None, "text": m.text}
                     for m in t.messages if m.direction in ("to_reporter", "to_agency")],
        "deliveries": [{"at": iso_timestamp(d.at), "channel": d.channel,
                        "audience": d.audience, "outcome": d.outcome,
                        "reason": d.reason or None} for d in t.deliveries],
        "allowed_actions": [ACTION_PATHS.get(a, a) for a in t.allowed_actions],
        "duplicate_of": t.duplicate_of or None,
        "duplicate_candidates": [{"tracking_id": c.tracking_id,
                                  "similarity": round(c.similarity, 3),
                                  "resolution": c.resolution or "pending"}
                                 for c in t.duplicate_candidates],
    }
