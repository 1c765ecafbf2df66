"""A small GeoReport v2 client written from the spec (wiki.open311.org/GeoReport_v2), not from
intake's code: it asks for `.xml` or `.json` and parses both into the same Python structures,
so a test can check that the two formats say the same thing.

XML carries text only; the spec's datatypes give the types back: booleans (metadata,
variable, required), integers (order, an error's code), decimals (lat, long). An empty
element and an empty JSON string are both None."""

from __future__ import annotations

from xml.etree import ElementTree

import requests

# Elements holding a list, and their item's tag.
LISTS = {"endpoints": "endpoint", "formats": "format", "attributes": "attribute",
         "values": "value"}
ROOT_ITEMS = {"services": "service", "service_requests": "request", "errors": "error"}
BOOLEANS = {"metadata", "variable", "required"}
INTEGERS = {"order"}
DECIMALS = {"lat", "long"}


class GeoReportError(Exception):
    """An answer with the spec's error document."""

    def __init__(self, status: int, errors: list[dict], content_type: str):
        super().__init__(f"{status}: {errors}")
        self.status = status
        self.errors = errors
        self.content_type = content_type

    @property
    def descriptions(self) -> str:
        return " | ".join(e["description"] for e in self.errors)


def _typed(name: str, text: str | None):
    if text is None or text == "":
        return None
    if name in BOOLEANS:
        if text not in ("true", "false"):
            raise ValueError(f"<{name}> is not a boolean: {text!r}")
        return text == "true"
    if name in INTEGERS:
        return int(text)
    if name in DECIMALS:
        return float(text)
    return text


def _element(element: ElementTree.Element) -> dict:
    out = {}
    for child in element:
        if child.tag in LISTS:
            items = []
            for item in child:
                if item.tag != LISTS[child.tag]:
                    raise ValueError(f"<{child.tag}> holds <{item.tag}>")
                items.append(_element(item) if len(item) else _typed(item.tag, item.text))
            out[child.tag] = items
        elif len(child):
            out[child.tag] = _element(child)
        else:
            out[child.tag] = _typed(child.tag, child.text)
    return out


def parse_xml(body: bytes):
    """A GeoReport XML document as dicts and lists."""
    if not body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>'):
        raise ValueError("the XML declaration with encoding UTF-8 must come first")
    root = ElementTree.fromstring(body)
    if root.tag in ROOT_ITEMS:
        items = []
        for item in root:
            if item.tag != ROOT_ITEMS[root.tag]:
                raise ValueError(f"<{root.tag}> holds <{item.tag}>")
            items.append(_element(item))
        if root.tag == "errors":
            for error in items:
                error["code"] = int(error["code"])
        return items
    return _element(root)


def _normalised(value):
    """JSON as the XML parse gives it: "" is None."""
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return None if value == "" else value


def parse_json(body: bytes):
    import json

    return _normalised(json.loads(body))


class GeoReportClient:
    def __init__(self, endpoint: str, fmt: str = "xml", api_key: str | None = None,
                 timeout: float = 10.0):
        """`endpoint` is the discovery's url, e.g. http://127.0.0.1:8080/open311/v2."""
        if fmt not in ("xml", "json"):
            raise ValueError("fmt is xml or json")
        self.endpoint, self.fmt, self.api_key, self.timeout = endpoint, fmt, api_key, timeout
        self.session = requests.Session()
        # A GeoReport server answers each format at its own URL: a redirect is a fault.
        self.session.max_redirects = 0

    def _url(self, resource: str) -> str:
        return f"{self.endpoint}/{resource}.{self.fmt}"

    def _answer(self, response: requests.Response):
        content_type = response.headers.get("Content-Type", "")
        expected = "text/xml" if self.fmt == "xml" else "application/json"
        if not content_type.startswith(expected):
            raise ValueError(f"asked for {self.fmt}, got {content_type} "
                             f"({response.status_code})")
        data = parse_xml(response.content) if self.fmt == "xml" else parse_json(
            response.content)
        if response.status_code >= 400:
            raise GeoReportError(response.status_code, data, content_type)
        return data

    def get(self, resource: str, **params):
        return self._answer(self.session.get(self._url(resource), params=params,
                                             timeout=self.timeout))

    def discovery(self) -> dict:
        return self.get("discovery")

    def services(self) -> list[dict]:
        return self.get("services")

    def service_definition(self, service_code: str) -> dict:
        return self.get(f"services/{service_code}")

    def requests(self, **filters) -> list[dict]:
        """GET requests; filters: service_request_id, service_code, start_date, end_date,
        status (lists are joined with commas)."""
        params = {k: ",".join(v) if isinstance(v, list | tuple) else v
                  for k, v in filters.items()}
        return self.get("requests", **params)

    def request(self, service_request_id: str) -> dict:
        found = self.get(f"requests/{service_request_id}")
        if len(found) != 1:
            raise ValueError(f"requests/{service_request_id} gave {len(found)} requests")
        return found[0]

    def create(self, service_code: str, description: str, *,
               attributes: dict[str, str] | None = None, api_key: str | None = None,
               **fields) -> dict:
        """POST requests (form-encoded): lat/long, address_string, address_id, email,
        first_name, last_name, phone, media_url; attribute[code] for each attribute."""
        form = {"service_code": service_code, "description": description, **fields}
        key = api_key if api_key is not None else self.api_key
        if key is not None:
            form["api_key"] = key
        for code, value in (attributes or {}).items():
            form[f"attribute[{code}]"] = value
        answer = self._answer(self.session.post(self._url("requests"), data=form,
                                                timeout=self.timeout))
        if len(answer) != 1:
            raise ValueError(f"POST requests answered {len(answer)} items")
        return answer[0]

    def token(self, token: str) -> dict:
        found = self.get(f"tokens/{token}")
        if len(found) != 1:
            raise ValueError(f"tokens/{token} gave {len(found)} items")
        return found[0]
