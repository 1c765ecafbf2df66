"""Pieces every part of the OpenAPI document builds with (the API's own document in
openapi.py, and the path items of Open311, the SMS/WhatsApp webhooks and attachments); kept
apart so those parts need not import the document that imports them."""

from __future__ import annotations


def ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def problem(description: str, headers: dict | None = None) -> dict:
    """A problem+json answer."""
    answer = {"description": description,
              "content": {"application/problem+json": {"schema": ref("Problem")}}}
    if headers:
        answer["headers"] = headers
    return answer
