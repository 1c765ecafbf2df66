"""Webhook signatures as an agency checks them with services.notify.signing.verify."""

import hashlib
import hmac
import re
import time
from email.message import Message
from pathlib import Path

from services.notify import channels, signing

SECRET = "s3cret-shared-with-the-agency"
BODY = b'{"event":"ticket.dispatched","tracking_id":"LPR-7K3QX9M2"}'
NOW = 1_784_000_000


def _headers(secret=SECRET, body=BODY, now=NOW):
    return channels.webhook_headers("ticket.dispatched", "0b0f6a52-1111-4c2e-9d3c-2f1b8c1e0001",
                                    secret, body, now=now)


def test_signature_is_hmac_sha256_over_timestamp_dot_body():
    expected = hmac.new(SECRET.encode(), b"1784000000." + BODY, hashlib.sha256).hexdigest()
    assert signing.sign(SECRET, 1784000000, BODY) == "sha256=" + expected


def test_a_genuine_request_verifies():
    assert signing.verify(SECRET, _headers(), BODY, tolerance_s=300, now=NOW + 10)


def test_header_names_match_whatever_their_case():
    lowered = {key.lower(): value for key, value in _headers().items()}
    assert signing.verify(SECRET, lowered, BODY, tolerance_s=300, now=NOW)


def test_a_tampered_body_fails():
    tampered = BODY.replace(b"LPR-7K3QX9M2", b"LPR-7K3QX9M3")
    assert not signing.verify(SECRET, _headers(), tampered, tolerance_s=300, now=NOW)


def test_the_wrong_secret_fails():
    assert not signing.verify("another-agency-secret", _headers(), BODY, tolerance_s=300,
                              now=NOW)


def test_a_stale_or_future_timestamp_fails_even_with_a_valid_signature():
    headers = _headers()
    assert not signing.verify(SECRET, headers, BODY, tolerance_s=300, now=NOW + 301)
    assert not signing.verify(SECRET, headers, BODY, tolerance_s=300, now=NOW - 301)


def test_a_timestamp_changed_to_look_fresh_breaks_the_signature():
    headers = dict(_headers(), **{signing.TIMESTAMP_HEADER: str(NOW + 3600)})
    assert not signing.verify(SECRET, headers, BODY, tolerance_s=300, now=NOW + 3600)


def test_missing_or_garbled_headers_fail():
    headers = _headers()
    for name in (signing.SIGNATURE_HEADER, signing.TIMESTAMP_HEADER):
        partial = {k: v for k, v in headers.items() if k != name}
        assert not signing.verify(SECRET, partial, BODY, now=NOW)
    assert not signing.verify(SECRET, dict(headers, **{signing.TIMESTAMP_HEADER: "soon"}),
                              BODY, now=NOW)


def test_headers_carry_event_and_delivery_id():
    headers = _headers()
    assert headers["Content-Type"] == "application/json"
    assert headers[signing.EVENT_HEADER] == "ticket.dispatched"
    assert headers[signing.DELIVERY_HEADER] == "0b0f6a52-1111-4c2e-9d3c-2f1b8c1e0001"
    assert headers[signing.TIMESTAMP_HEADER] == str(NOW)


def test_the_verification_example_in_the_agencies_doc_accepts_what_notify_signs():
    doc = (Path(__file__).resolve().parents[3] / "docs" / "webhooks.md").read_text()
    [example] = re.findall(r"```python\n(.*?)```", doc, re.S)
    namespace: dict = {}
    exec(compile(example, "docs/webhooks.md", "exec"), namespace)  # noqa: S102 (our own doc)
    verify = namespace["verify_lapor_request"]
    now = int(time.time())
    headers = Message()  # case-insensitive, like a web framework's
    for name, value in channels.webhook_headers("ticket.dispatched", "d-1", SECRET, BODY,
                                                now=now).items():
        headers[name.lower()] = value
    assert verify(SECRET.encode(), headers, BODY)
    assert not verify(SECRET.encode(), headers, BODY + b" ")
    assert not verify(b"another-agency-secret", headers, BODY)
    stale = Message()
    for name, value in channels.webhook_headers("ticket.dispatched", "d-1", SECRET, BODY,
                                                now=now - 600).items():
        stale[name] = value
    assert not verify(SECRET.encode(), stale, BODY)
