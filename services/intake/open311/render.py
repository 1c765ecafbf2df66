"""GeoReport v2's two formats: the same Python structures written as the spec's XML (root
element, one child per item, nested lists with their item tags) or as its JSON, and its
error document `<errors><error><code/><description/></error></errors>`. No I/O."""

from __future__ import annotations

import json
from xml.etree import ElementTree

from flask import Response

XML = "xml"
JSON = "json"
CONTENT_TYPES = {XML: "text/xml; charset=utf-8", JSON: "application/json; charset=utf-8"}
# The item tag of each nested list the spec has.
ITEM_TAGS = {"endpoints": "endpoint", "formats": "format", "attributes": "attribute",
             "values": "value", "service_requests": "request", "services": "service",
             "errors": "error"}


class Open311Error(Exception):
    """An answer as the spec's error document: one or more (code, description) with the
    HTTP status of the first."""

    def __init__(self, status: int, *descriptions: str, headers: dict | None = None):
        super().__init__("; ".join(descriptions))
        self.status = status
        self.descriptions = descriptions
        self.headers = headers or {}

    def items(self) -> list[dict]:
        return [{"code": self.status, "description": d} for d in self.descriptions]


def split_format(name: str) -> tuple[str, str]:
    """('PUPR', 'json') for 'PUPR.json'; XML, the spec's default, without a suffix."""
    for fmt in (XML, JSON):
        if name.endswith("." + fmt):
            return name[: -len(fmt) - 1], fmt
    return name, XML


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fill(element: ElementTree.Element, data: dict) -> None:
    for key, value in data.items():
        child = ElementTree.SubElement(element, key)
        if isinstance(value, list):
            tag = ITEM_TAGS[key]
            for item in value:
                sub = ElementTree.SubElement(child, tag)
                if isinstance(item, dict):
                    _fill(sub, item)
                else:
                    sub.text = _text(item)
        elif isinstance(value, dict):
            _fill(child, value)
        else:
            child.text = _text(value)


def to_xml(root: str, data: dict | list[dict]) -> bytes:
    """A list becomes `<root><item>…</item>…</root>` (item tag from ITEM_TAGS); a dict is the
    root element's children."""
    element = ElementTree.Element(root)
    if isinstance(data, list):
        for item in data:
            _fill(ElementTree.SubElement(element, ITEM_TAGS[root]), item)
    else:
        _fill(element, data)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ElementTree.tostring(
        element, encoding="unicode").encode("utf-8")


def response(fmt: str, root: str, data: dict | list[dict], status: int = 200,
             headers: dict | None = None) -> Response:
    """The answer in `fmt`: JSON is the data itself (a list stays a bare array, as in the
    spec's examples), XML wraps it in `root`."""
    if fmt == JSON:
        body = json.dumps(data, ensure_ascii=False).encode("utf-8")
    else:
        body = to_xml(root, data)
    return Response(body, status=status, headers=headers or {},
                    content_type=CONTENT_TYPES[fmt])


def error_response(fmt: str, error: Open311Error) -> Response:
    return response(fmt, "errors", error.items(), error.status, error.headers)
