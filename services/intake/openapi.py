"""The OpenAPI document of the citizen API, written from the code: the schemas come from the
typed models (models.py) that validation runs, the patterns from the same constants the
code matches with. `python -m services.intake.openapi` rewrites services/intake/openapi.json;
`--check` exits 1 when the committed file differs from what the code generates (the unit
tests do the same)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from services.intake import ids, models

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
    answers = {m.__name__ for m in models.ANSWER_MODELS} | {
        "Agency", "TimelineEntry", "OwnerLocation", "OwnerReporter", "SuggestedAgency",
        "FieldError"}
    for name in answers:
        for prop in schemas[name].get("properties", {}).values():
            prop.pop("default", None)  # an answer has no defaults: a field is there or not
    return dict(sorted(schemas.items()))


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem(description: str, headers: dict | None = None) -> dict:
    answer = {"description": description,
              "content": {"application/problem+json": {"schema": _ref("Problem")}}}
    if headers:
        answer["headers"] = headers
    return answer


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
The citizen API of LAPOR: submit a report (pengaduan, aspirasi, permintaan informasi), \
follow its status, and ask where a draft would go.

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

Submissions, suggestions and report lookups are rate-limited per client and answer \
`RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (seconds); over the limit the \
answer is 429 `rate_limited` with `Retry-After`.

The access token of a report goes only in the `Authorization: Bearer` header; a token in \
the query string or another header is refused (400 `token_not_in_header`). Answers that \
carry a token or private detail, and every error, are sent with `Cache-Control: no-store`."""


def document() -> dict[str, Any]:
    """The whole document, as the code defines it."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "LAPOR intake API", "version": "1.1.0", "description": DESCRIPTION},
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "paths": {
            "/api/v1/reports": {"post": _create_report()},
            "/api/v1/reports/{tracking_id}": {"get": _get_report()},
            "/api/v1/reports/suggest": {"post": _suggest()},
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
                               "are accepted without them.",
                "responses": {
                    "200": {"description": "Ready", "content": {"application/json": {
                        "schema": _ref("Readiness")}}},
                    "503": {"description": "Not ready: database unreachable, or draining",
                            "content": {"application/json": {
                                "schema": _ref("Readiness")}}}}}},
        },
        "components": {
            "securitySchemes": {"reportToken": {
                "type": "http", "scheme": "bearer",
                "description": "The access token returned when the report was submitted"}},
            "schemas": _schemas(),
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
                            "field) or a reused Idempotency-Key (idempotency_key_reused)"),
            "429": RATE_LIMITED,
            "503": NOT_SAVED,
        },
    }


def _get_report() -> dict:
    return {
        "operationId": "getReport",
        "summary": "Status, agency and timeline of a report",
        "description": "Without a token: the public view (never the reporter; no title or "
                       "body when the report is confidential). With the report's access "
                       "token in `Authorization: Bearer …`: everything the reporter sent and "
                       "the full timeline.",
        "parameters": [{
            "name": "tracking_id", "in": "path", "required": True,
            "description": "e.g. LPR-7K2-M9Q-XD4. Case, the LPR prefix, dashes, dots, "
                           "underscores and spaces, O for 0 and I/L for 1 are forgiven. The "
                           "last character is a check character (Luhn mod 32 over the "
                           "Crockford base32 alphabet, format lapor-tracking-id): an id whose "
                           "check character does not match is refused (400 "
                           "invalid_tracking_id), so one mistyped character never shows "
                           "someone else's report.",
            "schema": {"type": "string", "pattern": ids.TRACKING_ID_PATTERN,
                       "format": "lapor-tracking-id"}}],
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
