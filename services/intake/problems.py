"""RFC 9457 problem details: every error intake returns is application/problem+json with a
stable machine-readable code and a detail that says what to fix."""

from __future__ import annotations

import json

from flask import Response

PROBLEM_BASE = "https://lapor.go.id/problems/"
MEDIA_TYPE = "application/problem+json"


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
