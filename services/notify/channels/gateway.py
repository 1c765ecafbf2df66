"""SMS and WhatsApp through the operator's HTTP gateways: settings (URL, Authorization value,
JSON body template), the body of one message, and one POST classed as the contract says."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from services.notify import signing
from services.notify.channels.sending import USER_AGENT, Result
from services.notify.channels.webhook import send_webhook

DEFAULT_GATEWAY_BODY = {"to": "{to}", "text": "{text}", "reference": "{reference}"}


@dataclass(frozen=True)
class GatewaySettings:
    """An HTTP gateway that sends SMS or WhatsApp messages for us: where to POST, the whole
    Authorization header value (may be empty), and the JSON body with {to}, {text} and
    {reference} in its strings."""

    url: str
    authorization: str = ""
    body: object = field(default_factory=lambda: dict(DEFAULT_GATEWAY_BODY))

    def __repr__(self) -> str:  # the header is a credential; the URL may carry one too
        parts = urlsplit(self.url)
        where = f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}"
        return (f"GatewaySettings(url={where!r}, "
                f"authorization={'<set>' if self.authorization else ''!r})")


def _strings(value: object):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def parse_gateway(url: str, authorization: str = "", template: str = "") -> GatewaySettings:
    """Checks a gateway's settings; ValueError says what to fix (without quoting the header)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the gateway URL must be http(s)://host/path")
    if any(ch in authorization for ch in "\r\n"):
        raise ValueError("the Authorization value must be one line")
    body: object = dict(DEFAULT_GATEWAY_BODY)
    if template.strip():
        try:
            body = json.loads(template)
        except json.JSONDecodeError as exc:
            raise ValueError(f"the body template is not JSON ({exc.msg} at character "
                             f"{exc.pos})") from None
        if not isinstance(body, dict):
            raise ValueError("the body template must be a JSON object")
        used = "".join(_strings(body))
        missing = [p for p in ("{to}", "{text}") if p not in used]
        if missing:
            raise ValueError(f"the body template has no {' or '.join(missing)}: put them in "
                             f"its string values, e.g. {json.dumps(DEFAULT_GATEWAY_BODY)}")
    return GatewaySettings(url, authorization.strip(), body)


_PLACEHOLDER = re.compile(r"\{(to|text|reference)\}")


def _fill(value: object, values: dict[str, str]) -> object:
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda match: values[match.group(1)], value)
    if isinstance(value, dict):
        return {key: _fill(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill(item, values) for item in value]
    return value


def gateway_body(template: object, to: str, text: str, reference: str) -> bytes:
    """The template with its placeholders filled inside the JSON strings, so a quote or a
    newline in the text stays text and cannot change the body's structure; one pass, so a
    text that itself reads "{to}" stays as it is."""
    filled = _fill(template, {"to": to, "text": text, "reference": reference})
    return json.dumps(filled, ensure_ascii=False).encode()


def gateway_headers(gateway: GatewaySettings, reference: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               signing.DELIVERY_HEADER: reference}
    if gateway.authorization:
        headers["Authorization"] = gateway.authorization
    return headers


def send_gateway(gateway: GatewaySettings, body: bytes, reference: str, timeout: float,
                 limit: float | None = None,
                 post: Callable[..., Result] | None = None) -> Result:
    """One POST to an SMS or WhatsApp gateway: 2xx delivered; 408, 429, 5xx, timeouts and
    network errors tried again; any other answer (a refused number, a rejected body, bad
    credentials) failed for good, since sending the same again gets the same answer."""
    result = (post or send_webhook)(gateway.url, gateway_headers(gateway, reference), body,
                                    timeout, limit=limit)
    if not result.ok and 400 <= result.status < 500 and result.status not in (408, 429):
        return Result(False, result.detail, permanent=True, status=result.status)
    return result
