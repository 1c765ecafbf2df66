"""RFC 9457 problem details: every error intake returns is application/problem+json with a
stable machine-readable code and a detail that says what to fix; routing's gRPC refusals
become the same (from_staff_call, from_citizen_call)."""

from __future__ import annotations

import json
import logging
import time

import grpc
from flask import Response
from google.rpc import error_details_pb2
from grpc_status import rpc_status

PROBLEM_BASE = "https://lapor.go.id/problems/"
MEDIA_TYPE = "application/problem+json"

log = logging.getLogger(__name__)


class Problem(Exception):
    def __init__(self, status: int, code: str, title: str, detail: str, *,
                 errors: list[dict[str, str]] | None = None, headers: dict | None = None):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}

    def body(self, instance: str | None = None) -> bytes:
        body = {"type": PROBLEM_BASE + self.code, "title": self.title, "status": self.status,
                "detail": self.detail, "code": self.code}
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        return json.dumps(body, ensure_ascii=False).encode()

    def response(self, instance: str | None = None) -> Response:
        response = Response(self.body(instance), status=self.status, mimetype=MEDIA_TYPE)
        response.headers.update(self.headers)
        return response


def validation(errors: list[dict[str, str]]) -> Problem:
    names = ", ".join(e["field"] for e in errors)
    return Problem(422, "validation_failed", "The request has invalid fields",
                   f"Fix these fields and send again: {names}", errors=errors)


# -- routing's answers as problems ------------------------------------------------------------
STAFF_REALM = 'Bearer realm="LAPOR staff"'
REPORT_REALM = 'Bearer realm="LAPOR report"'
_TOO_LARGE = ("larger than max", "message larger", "too large")


def rpc_violations(exc, rename: dict[str, str] | None = None) -> list[dict[str, str]]:
    """The field violations of an INVALID_ARGUMENT (google.rpc.BadRequest details), with
    routing's field names turned into the API's (`rename`)."""
    errors = []
    try:
        status = rpc_status.from_call(exc)
    except ValueError:  # details that do not match the status: use the message
        status = None
    for detail in status.details if status else []:
        bad = error_details_pb2.BadRequest()
        if detail.Unpack(bad):
            errors += [{"field": (rename or {}).get(v.field, v.field),
                        "message": v.description} for v in bad.field_violations]
    return errors or [{"field": "(body)", "message": exc.details() or "invalid"}]


def from_staff_call(exc, rename: dict[str, str] | None = None) -> Problem:
    """A staff call routing refused, as the problem the staff member gets: routing's own
    words for what to fix (they never say whether another agency's ticket exists)."""
    code, message = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Problem(401, "unauthenticated", "Sign in again",
                       f"Routing did not accept the token: {message}",
                       headers={"WWW-Authenticate": f'{STAFF_REALM}, error="invalid_token"'})
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return Problem(403, "forbidden", "Not allowed", message or "Your role may not do this")
    if code == grpc.StatusCode.NOT_FOUND:
        return Problem(404, "ticket_not_found", "No such ticket", message or "No such ticket")
    return _common(exc, rename)


def from_citizen_call(exc) -> Problem:
    """A citizen-side call routing refused. Intake's own credentials being refused is not the
    citizen's doing: they get 503 and the operator a log line."""
    code = exc.code()
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        _log_misconfigured(code.name)
        return unavailable()
    if code == grpc.StatusCode.NOT_FOUND:
        # Intake has the report, routing has no ticket yet: the report is still on its way.
        return Problem(409, "not_routed_yet", "The report is still being registered",
                       "The report has not reached the routing service yet; try again in a "
                       "minute", headers={"Retry-After": "60"})
    return _common(exc, None)


def _common(exc, rename: dict[str, str] | None) -> Problem:
    code, message = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        # Routing's message names the ticket's state and when the action is possible.
        return Problem(409, "not_allowed_in_state", "Not possible in the ticket's state",
                       message or "The ticket's state does not allow this")
    if code == grpc.StatusCode.ABORTED:
        return Problem(409, "stale_version", "The ticket changed meanwhile",
                       f"{message or 'The ticket changed since you loaded it'}. Reload the "
                       "ticket, check what changed, and send again with its new version")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return validation(rpc_violations(exc, rename))
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        if any(words in message.lower() for words in _TOO_LARGE):
            return Problem(413, "payload_too_large", "Request too large",
                           "The request is larger than the routing service takes; send "
                           "shorter text")
        return Problem(429, "rate_limited", "Too many requests",
                       "The routing service is busy with too many requests; wait "
                       "Retry-After seconds and try again", headers={"Retry-After": "5"})
    if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        _log_misconfigured(code.name)
    return unavailable()


def unavailable() -> Problem:
    return Problem(503, "routing_unavailable", "Temporarily unavailable",
                   "The routing service is unavailable right now; nothing was changed. Try "
                   "again after Retry-After seconds", headers={"Retry-After": "5"})


_last_logged: dict[str, float] = {}


def _log_misconfigured(code: str) -> None:
    """One log line per minute and code: a refused service token fails every citizen call."""
    now = time.monotonic()
    if now - _last_logged.get(code, -60.0) >= 60.0:
        _last_logged[code] = now
        log.error(
            "routing answered %s to intake: check INTAKE_ROUTING_TOKEN_FILE (intake's service "
            "account and token) and that routing and intake run the same API version", code)
