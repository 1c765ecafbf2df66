"""The OpenAPI document of the citizen and staff API, written from the code: the schemas
come from the typed models (models.py) that validation runs, the patterns from the same
constants the code matches with. `python -m services.intake.openapi` rewrites
services/intake/openapi.json; `--check` exits 1 when the committed file differs from what
the code generates (the unit tests do the same)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from services.intake import attachments, ids, inbound, models, open311
from services.intake.openapi_parts import problem as _problem
from services.intake.openapi_parts import ref as _ref

PATH = Path(__file__).with_name("openapi.json")
MAX_BODY_KIB = 256  # the longest valid report fits even with every character \u-escaped


class _Generator(GenerateJsonSchema):
    def field_title_should_be_set(self, schema) -> bool:  # the property name says it
        return False


def _schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(m, "validation") for m in models.REQUEST_MODELS]
        + [(m, "serialization") for m in models.ANSWER_MODELS],
        ref_template="#/components/schemas/{model}", schema_generator=_Generator)
    schemas = top["$defs"]
    for name in _answer_names(models._Answer):
        for prop in schemas.get(name, {}).get("properties", {}).values():
            prop.pop("default", None)  # an answer has no defaults: a field is there or not
    return dict(sorted(schemas.items()))


def _answer_names(base: type) -> set[str]:
    names = set()
    for cls in base.__subclasses__():
        names |= {cls.__name__, *_answer_names(cls)}
    return names


_INT = {"type": "integer", "minimum": 0}
RATE_LIMIT_HEADERS = {
    "RateLimit-Limit": {"description": "requests allowed in the current window",
                        "schema": _INT},
    "RateLimit-Remaining": {"description": "requests left in the current window",
                            "schema": _INT},
    "RateLimit-Reset": {"description": "seconds until the window resets", "schema": _INT},
}
RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again",
                               "required": True, "schema": _INT}}
NO_STORE = {"Cache-Control": {"description": "no-store: the answer may hold a token or "
                                             "private detail",
                              "schema": {"type": "string", "const": "no-store"}}}

RATE_LIMITED = _problem(
    "Too many requests from this client (rate_limited); wait Retry-After seconds. Report "
    "lookups that fail (unknown tracking id, wrong access token) count against a much "
    "smaller allowance.", {**RETRY_AFTER, **RATE_LIMIT_HEADERS})
MALFORMED_JSON = "the body is not valid JSON (malformed_json)"
TOO_LARGE = _problem(f"Body larger than {MAX_BODY_KIB} KiB (payload_too_large)")
NOT_JSON = _problem("Not sent as application/json (unsupported_media_type)")
NOT_SAVED = _problem("Storage temporarily unavailable; nothing was saved "
                     "(temporarily_unavailable); retry after Retry-After seconds",
                     RETRY_AFTER)

DESCRIPTION = f"""\
The API of LAPOR. Citizens submit a report (pengaduan, aspirasi, permintaan informasi), \
follow its status, ask where a draft would go, and, with the report's access token, reply \
to the agency, confirm, rate and appeal; anyone may support (dukungan) a public report. \
Staff (agency officers and admins, national admins, oversight) work on tickets under \
`/api/v1/staff/` with their own bearer token, which intake passes to the routing service \
unchanged: routing decides who they are and what they may see and do. See \
docs/staff-api.md.

Endpoints that need the routing service (suggestions, the reporter's actions, every staff \
endpoint) answer 503 `routing_unavailable` with `Retry-After` while it cannot be reached; \
submitting and reading reports, and support, never need it.

Errors are application/problem+json (RFC 9457) with a stable `code` and a `detail` that \
says what to fix; invalid fields are listed in `errors` as {{field, message}}, each message \
saying what to send. Codes any endpoint can answer: `not_found` (404, no such endpoint), \
`method_not_allowed` (405, with `Allow`), `payload_too_large` (413, bodies over \
{MAX_BODY_KIB} KiB are refused as soon as the headers say so), `headers_too_large` (431), \
`request_timeout` (408, a request not received whole within the server's deadline), \
`bad_request` (400, not HTTP the server can read), `temporarily_unavailable` (503, nothing \
was saved; retry).

Optional fields may be left out or sent as null. Text is trimmed of surrounding ASCII white \
space (space, tab, CR, LF) before it is stored; lengths count the text as sent.

Submissions, suggestions, report lookups, the reporter's actions and support are \
rate-limited per client, the staff API per staff token; answers carry \
`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds); over the limit the \
answer is 429 `rate_limited` with `Retry-After`.

The access token of a report goes only in the `Authorization: Bearer` header; a token in \
the query string or another header is refused (400 `token_not_in_header`); so does a staff \
token. Answers that carry a token or private detail (every answer under /api/v1/reports \
and /api/v1/staff), and every error, are sent with `Cache-Control: no-store`."""


def document() -> dict[str, Any]:
    """The whole document, as the code defines it."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "LAPOR intake API", "version": "1.3.0", "description": DESCRIPTION},
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "paths": {
            "/api/v1/reports": {"post": _create_report()},
            "/api/v1/reports/{tracking_id}": {"get": _get_report()},
            "/api/v1/reports/suggest": {"post": _suggest()},
            "/api/v1/reports/{tracking_id}/replies": {"post": _reporter_action(
                "replyToReport", "Reply to the agency", "ReporterReply", 201,
                "A reply to the agency's follow-up (the report goes back to the agency), "
                "what a held report lacks (it goes back to verification), or else a message "
                "to whoever handles the report. The agency never learns who you are.")},
            "/api/v1/reports/{tracking_id}/confirm": {"post": _reporter_action(
                "confirmReport", "Satisfied with the follow-up: close the report",
                "ReporterConfirm", 200, "Possible while the report is followed up "
                "(FOLLOWED_UP); closes it.", optional_body=True)},
            "/api/v1/reports/{tracking_id}/rating": {"post": _reporter_action(
                "rateReport", "Rate the handling of a closed report", "ReporterRating", 200,
                "Once, after the report is closed (CLOSED).")},
            "/api/v1/reports/{tracking_id}/appeal": {"post": _reporter_action(
                "appealReport", "Appeal a closure", "ReporterAppeal", 200,
                "Reopens a closed report at the agency above the one that closed it (or at "
                "the national admin), once, within 10 working days of the closure.")},
            "/api/v1/reports/{tracking_id}/support": {"post": _support()},
            "/api/v1/staff/me": {"get": _staff("staffMe", "Who the token belongs to",
                                               "StaffMember", ticket=False)},
            "/api/v1/staff/tickets": {"get": _inbox()},
            "/api/v1/staff/tickets/{tracking_id}": {"get": _staff(
                "getTicket", "One ticket: the report, timeline, routing decision, chain of "
                "agencies, messages and deliveries", "StaffTicket")},
            "/api/v1/staff/tickets/{tracking_id}/audit": {"get": _staff(
                "getAuditTrail", "The ticket's audit trail (national admins and oversight)",
                "AuditTrail")},
            **{f"/api/v1/staff/tickets/{{tracking_id}}/{path}": {"post": _staff_action(path)}
               for path in models.STAFF_ACTION_MODELS},
            "/api/v1/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3.1 document",
                                      "content": {"application/json": {
                                          "schema": {"type": "object"}}}}}}},
            "/healthz": {"get": {
                "operationId": "healthz", "summary": "Alive",
                "responses": {
                    "200": {"description": "The process answers",
                            "content": {"application/json": {"schema": _ref("Health")}}},
                    "503": {"description": "The process is alive but broken inside; "
                                           "restart it",
                            "content": {"application/json": {"schema": _ref("Health")}}}}}},
            "/readyz": {"get": {
                "operationId": "readyz", "summary": "Ready to accept reports",
                "description": "503 when the database is unreachable or the process is "
                               "shutting down (status draining). Broker and routing are "
                               "reported in `checks` but do not fail readiness: reports "
                               "are accepted without them. `regions` is how many regions of "
                               "the official list intake holds (0: never imported, any "
                               "well-formed region code is accepted).",
                "responses": {
                    "200": {"description": "Ready", "content": {"application/json": {
                        "schema": _ref("Readiness")}}},
                    "503": {"description": "Not ready: database unreachable, or draining",
                            "content": {"application/json": {
                                "schema": _ref("Readiness")}}}}}},
            **open311.openapi_paths(),
            **inbound.openapi_paths(),
            **attachments.openapi_paths(),
        },
        "components": {
            "securitySchemes": {
                "reportToken": {
                    "type": "http", "scheme": "bearer",
                    "description": "The access token returned when the report was "
                                   "submitted"},
                "staffToken": {
                    "type": "http", "scheme": "bearer",
                    "description": "A staff account's token, issued by an admin with "
                                   "`python -m services.routing accounts token USERNAME`; "
                                   "passed to the routing service unchanged"}},
            "schemas": dict(sorted({**_schemas(), **open311.openapi_schemas(),
                                    **inbound.openapi_schemas(),
                                    **attachments.openapi_schemas()}.items())),
        },
    }


def _create_report() -> dict:
    return {
        "operationId": "createReport",
        "summary": "Submit a report",
        "description": "Stores the report and answers with its tracking id and an access "
                       "token (shown only here). Send an `Idempotency-Key` so that a retry on "
                       "a bad network gives the same answer instead of a second report.",
        "parameters": [{
            "name": "Idempotency-Key", "in": "header", "required": False,
            "description": "8-255 visible ASCII characters, e.g. a UUID made once per report. "
                           "The same key with the same body returns the first answer (header "
                           "Idempotent-Replayed: true); with another body it is refused (422 "
                           "idempotency_key_reused). Kept for 24 hours.",
            "schema": {"type": "string", "pattern": models.IDEMPOTENCY_KEY}}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": _ref("NewReport"),
            "example": {"kind": "PENGADUAN", "title": "Jalan rusak di Nagari Muaro",
                        "body": "Jalan utama di Nagari Muaro rusak berlubang sejak bulan "
                                "lalu.",
                        "region_code": "13.03", "anonymous": False, "confidential": False,
                        "reporter": {"name": "Rina", "email": "rina@contoh.id"}}}}},
        "responses": {
            "201": {"description": "Accepted. Keep the access token: it opens the full view.",
                    "headers": {
                        "Location": {"description": "the report's status page",
                                     "required": True, "schema": {"type": "string"}},
                        "Idempotent-Replayed": {
                            "description": "present when this is the stored answer to a "
                                           "repeated key",
                            "schema": {"type": "string", "enum": ["true"]}},
                        **NO_STORE, **RATE_LIMIT_HEADERS},
                    "content": {"application/json": {"schema": _ref("Accepted")}}},
            "400": _problem(f"{MALFORMED_JSON.capitalize()}, or a malformed Idempotency-Key "
                            "(invalid_idempotency_key)"),
            "413": TOO_LARGE,
            "415": NOT_JSON,
            "422": _problem("Invalid fields (validation_failed, with `errors` naming each "
                            "field; a region_code that is not in the official region list, "
                            "once the operator has imported it, is one) or a reused "
                            "Idempotency-Key (idempotency_key_reused)"),
            "429": RATE_LIMITED,
            "503": NOT_SAVED,
        },
    }


def _tracking_id_param() -> dict:
    return {
        "name": "tracking_id", "in": "path", "required": True,
        "description": "e.g. LPR-7K2-M9Q-XD4. Case, the LPR prefix, dashes, dots, "
                       "underscores and spaces, O for 0 and I/L for 1 are forgiven. The "
                       "last character is a check character (Luhn mod 32 over the "
                       "Crockford base32 alphabet, format lapor-tracking-id): an id whose "
                       "check character does not match is refused (400 "
                       "invalid_tracking_id), so one mistyped character never shows "
                       "someone else's report.",
        "schema": {"type": "string", "pattern": ids.TRACKING_ID_PATTERN,
                   "format": "lapor-tracking-id"}}


def _get_report() -> dict:
    return {
        "operationId": "getReport",
        "summary": "Status, agency and timeline of a report",
        "description": "Without a token: the public view (never the reporter; no title or "
                       "body when the report is confidential). With the report's access "
                       "token in `Authorization: Bearer …`: everything the reporter sent and "
                       "the full timeline.",
        "parameters": [_tracking_id_param()],
        "security": [{}, {"reportToken": []}],
        "responses": {
            "200": {"description": "The public view, or the owner's view with the right "
                                   "token",
                    "headers": {**NO_STORE, **RATE_LIMIT_HEADERS},
                    "content": {"application/json": {"schema": {
                        "oneOf": [_ref("PublicReport"), _ref("OwnerReport")]}}}},
            "400": _problem("Not a tracking id: the wrong shape, or the check character does "
                            "not match (invalid_tracking_id); or the access token was sent "
                            "outside the Authorization header (token_not_in_header)"),
            "403": _problem("The token is not this report's (wrong_access_token)"),
            "404": _problem("No such report (report_not_found)"),
            "429": RATE_LIMITED,
            "503": NOT_SAVED,
        },
    }


def _suggest() -> dict:
    return {
        "operationId": "suggestRoute",
        "summary": "Where would a draft go?",
        "description": "Asks routing for the category and agency of a draft. Stores "
                       "nothing. When routing is unavailable the answer is 503 "
                       "routing_unavailable with Retry-After; submitting still works.",
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": _ref("Draft")}}},
        "responses": {
            "200": {"description": "Suggestion",
                    "headers": RATE_LIMIT_HEADERS,
                    "content": {"application/json": {"schema": _ref("Suggestion")}}},
            "400": _problem(MALFORMED_JSON.capitalize()),
            "413": TOO_LARGE,
            "415": NOT_JSON,
            "422": _problem("Invalid fields (validation_failed)"),
            "429": RATE_LIMITED,
            "503": _problem("Routing is unavailable (routing_unavailable): try again after "
                            "Retry-After seconds; the report can still be submitted",
                            RETRY_AFTER),
        },
    }


ROUTING_UNAVAILABLE = _problem(
    "The routing service cannot be reached (routing_unavailable); nothing was changed. Try "
    "again after Retry-After seconds", RETRY_AFTER)
STATE_CONFLICT = ("the ticket's state does not allow it (not_allowed_in_state; the detail "
                  "names the state and when it is possible)")


def _reporter_action(operation_id: str, summary: str, model: str, status: int,
                     description: str, optional_body: bool = False) -> dict:
    return {
        "operationId": operation_id,
        "summary": summary,
        "description": description + " With the report's access token.",
        "parameters": [_tracking_id_param()],
        "security": [{"reportToken": []}],
        "requestBody": {"required": not optional_body, "content": {"application/json": {
            "schema": _ref(model)}}},
        "responses": {
            str(status): {"description": "Done: the report's status now",
                          "headers": {**NO_STORE, **RATE_LIMIT_HEADERS},
                          "content": {"application/json": {"schema": _ref("ReporterAction")}}},
            "400": _problem(f"Not a tracking id (invalid_tracking_id), {MALFORMED_JSON}, or "
                            "the token sent outside the Authorization header "
                            "(token_not_in_header)"),
            "401": _problem("No access token (access_token_required)",
                            {"WWW-Authenticate": {"description": "Bearer", "required": True,
                                                  "schema": {"type": "string"}}}),
            "403": _problem("The token is not this report's (wrong_access_token)"),
            "404": _problem("No such report (report_not_found)"),
            "409": _problem(f"Not now: {STATE_CONFLICT}, or the report has not reached the "
                            "routing service yet (not_routed_yet, with Retry-After)"),
            "413": TOO_LARGE,
            "415": NOT_JSON,
            "422": _problem("Invalid fields (validation_failed)"),
            "429": RATE_LIMITED,
            "503": ROUTING_UNAVAILABLE,
        },
    }


def _support() -> dict:
    return {
        "operationId": "supportReport",
        "summary": "Support a public report (dukungan)",
        "description": "Anyone may support a public report, once: a second support from the "
                       "same client is answered 200 with the same count. The client is the "
                       "`X-Client-Key` header when sent (an app makes one and keeps it), else "
                       "its network address; intake keeps only a salted hash of either. No "
                       "body is needed.",
        "parameters": [_tracking_id_param(), {
            "name": "X-Client-Key", "in": "header", "required": False,
            "description": "8-128 visible ASCII characters, the same for every support from "
                           "this app installation, e.g. a UUID made once",
            "schema": {"type": "string", "pattern": models.CLIENT_KEY}}],
        "responses": {
            "201": {"description": "Counted",
                    "headers": {**NO_STORE, **RATE_LIMIT_HEADERS},
                    "content": {"application/json": {"schema": _ref("Support")}}},
            "200": {"description": "This client had supported the report already: nothing "
                                   "counted, the count as it is",
                    "headers": {**NO_STORE, **RATE_LIMIT_HEADERS},
                    "content": {"application/json": {"schema": _ref("Support")}}},
            "400": _problem("Not a tracking id (invalid_tracking_id), or a malformed "
                            "X-Client-Key (invalid_client_key)"),
            "404": _problem("No such report (report_not_found)"),
            "409": _problem("A confidential report (confidential_report) or an archived one "
                            "(report_archived) cannot be supported"),
            "413": TOO_LARGE,
            "429": RATE_LIMITED,
            "503": NOT_SAVED,
        },
    }


STAFF_401 = _problem(
    "No staff token, or one routing does not accept: unknown, expired, revoked, or its account "
    "disabled (unauthenticated)",
    {"WWW-Authenticate": {"description": 'Bearer realm="LAPOR staff"', "required": True,
                          "schema": {"type": "string"}}})
STAFF_403 = _problem("Your role may not do this, or the ticket is not your agency's "
                     "(forbidden; the same answer whether or not it exists elsewhere)")


def _staff_responses(answer: str, ticket: bool) -> dict:
    responses = {
        "200": {"description": "The answer",
                "headers": {**NO_STORE, **RATE_LIMIT_HEADERS},
                "content": {"application/json": {"schema": _ref(answer)}}},
        "400": _problem("The token sent outside the Authorization header (token_not_in_header)"
                        + (", or not a tracking id (invalid_tracking_id)" if ticket else "")),
        "401": STAFF_401,
        "403": STAFF_403,
        "429": RATE_LIMITED,
        "503": ROUTING_UNAVAILABLE,
    }
    if ticket:
        responses["404"] = _problem("No such ticket (ticket_not_found; national admins and "
                                    "oversight, who see every agency's tickets)")
    return responses


def _staff(operation_id: str, summary: str, answer: str, ticket: bool = True) -> dict:
    return {
        "operationId": operation_id,
        "summary": summary,
        "tags": ["staff"],
        "parameters": [_tracking_id_param()] if ticket else [],
        "security": [{"staffToken": []}],
        "responses": _staff_responses(answer, ticket),
    }


def _inbox() -> dict:
    def query(name: str, description: str, schema: dict) -> dict:
        return {"name": name, "in": "query", "required": False, "description": description,
                "schema": schema}

    responses = _staff_responses("TicketList", ticket=False)
    responses["422"] = _problem("A bad query parameter (validation_failed, naming it)")
    return {
        "operationId": "listTickets",
        "summary": "The inbox: tickets sorted by deadline, the nearest first",
        "description": "Agency staff see their agency's tickets and its units'; national "
                       "admins and oversight see every agency's.",
        "tags": ["staff"],
        "parameters": [
            {**query("state", "only tickets in these states (repeat the parameter); default "
                              "the open ones", {"type": "array", "items": {
                                  "type": "string", "enum": list(models.STATES)}}),
             "style": "form", "explode": True},
            query("overdue", "true: only tickets past their deadline",
                  {"type": "string", "enum": ["true", "false", "1", "0"]}),
            query("category", "a category code such as PUPR",
                  {"type": "string", "pattern": models.padded_or_blank(models.CATEGORY_CODE)}),
            query("region_code", "this region and everything in it, e.g. 13.03",
                  {"type": "string", "pattern": models.padded_or_blank(models.REGION_CODE)}),
            query("q", "words in the title or body", {
                "type": "string", "maxLength": 200, "pattern": models.NO_NUL}),
            query("agency", "national admins and oversight: one agency's tickets, e.g. "
                            "PUPR-13.03", {"type": "string",
                                           "pattern": models.padded_or_blank(models.AGENCY_CODE)}),
            query("page_size", "tickets per page, 1 to 200 (default 50)",
                  {"type": "integer", "minimum": 1, "maximum": 200}),
            query("page_token", "next_page_token of the previous page",
                  {"type": "string", "pattern": models.PAGE_TOKEN})],
        "security": [{"staffToken": []}],
        "responses": responses,
    }


def _staff_action(path: str) -> dict:
    method, model = models.STAFF_ACTION_MODELS[path]
    optional = not any(field.is_required() for field in model.model_fields.values())
    responses = _staff_responses("StaffTicket", ticket=True)
    responses["400"] = _problem("Not a tracking id (invalid_tracking_id), "
                                f"{MALFORMED_JSON}, or the token sent outside the "
                                "Authorization header (token_not_in_header)")
    responses.update({
        "409": _problem(f"Not now: {STATE_CONFLICT}; or expected_version is not the "
                        "ticket's version any more (stale_version: reload it)"),
        "413": TOO_LARGE,
        "415": NOT_JSON,
        "422": _problem("Invalid fields (validation_failed, naming each)"),
    })
    return {
        "operationId": "ticket" + "".join(part.capitalize() for part in path.split("-")),
        "summary": (model.__doc__ or method).strip().splitlines()[0],
        "description": f"Calls routing's {method}; answers the ticket as it is now."
                       + (" The body may be left out." if optional else ""),
        "tags": ["staff"],
        "parameters": [_tracking_id_param()],
        "security": [{"staffToken": []}],
        "requestBody": {"required": not optional, "content": {"application/json": {
            "schema": _ref(model.__name__)}}},
        "responses": responses,
    }


def render() -> str:
    return json.dumps(document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.intake.openapi",
                                     description=f"writes {PATH.name} from the code")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the file differs from what the code generates")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if PATH.read_text(encoding="utf-8") != text:
            parser.exit(1, f"{PATH} is out of date: run python -m services.intake.openapi\n")
        return 0
    PATH.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
