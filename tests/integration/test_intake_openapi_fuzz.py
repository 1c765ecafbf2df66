"""The served OpenAPI document holds: schemathesis runs every operation of the real server
(waitress, SQLite, a stand-in routing on a real gRPC port) with all its checks — server
errors, status codes, content types, headers and bodies against their schemas, schema-valid
requests accepted, schema-invalid ones refused, unsupported methods answered 405 with Allow,
authentication not ignored — through all its phases (examples, coverage, fuzzing,
stateful), and must find nothing.

The stand-in routing (FakeRouting) answers the staff RPCs for one staff token, which
schemathesis sends as the staffToken scheme, with a plausible ticket, and the reporter's
RPCs as if they succeeded; so the staff endpoints are fuzzed past authentication and their
answers checked against the document. A real routing is not needed: with routing away
these endpoints answer 503 routing_unavailable (documented; test_intake_staff.py and
test_intake_reporter_actions.py check it). The endpoints added with the ticket workflow
get fewer examples each than the report endpoints, to keep the run near a minute.

Three rules of the API are not expressible in JSON Schema, and the document says them in
words, and one is expressible but not by a generator; the generator is told about them
here, as any client must be:
* the last character of a tracking id is a check character (format lapor-tracking-id):
  ids are drawn with a correct one, as a citizen copies them from the SMS;
* an email address must be one mail can be delivered to in principle (format lapor-email:
  a domain with a dot, not a special-use name such as .test): addresses are drawn that
  email-validator accepts;
* a phone number (format lapor-phone) matches its pattern within 24 characters; drawn
  from the pattern alone, whose separators may repeat, most strings are longer, and for
  some seeds hypothesis gave up on the gateway webhooks ("too many generated examples are
  filtered out"). Numbers are drawn as people write them: a prefix, the digits, and
  separators anywhere, within the length;
* an incident date lies within the last ten years and not in the future: a real date is
  moved into that window before the request is sent (a date that is not one is left as
  drawn).
A request body is refused over its byte limit (413 payload_too_large, documented) whatever
its content: JSON Schema counts characters, not the bytes of their encoding, and allows
white space around codes and unknown fields, so a schema-valid body can be larger than any
limit. 413 counts as a refusal for invalid data and as the documented answer for valid
data. And one rule is about state: an Idempotency-Key used for one report is refused for a
different one (422 idempotency_key_reused, documented). The generator draws keys from a
small space and would reuse them across different bodies, so each key that matches the
pattern is made unique before the request is sent.

This module is also the hooks module schemathesis loads (SCHEMATHESIS_HOOKS)."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
import schemathesis
from hypothesis import strategies as st

from services.intake import ids, models
from services.intake.validation import JAKARTA, normalise_email
from tests.integration.test_intake_server import FakeRouting, running_intake

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HOOKS_MODULE = "tests.integration.test_intake_openapi_fuzz"
EXAMPLES_PER_OPERATION = 200
# Staff and reporter actions, gateway webhooks, attachments and Open311 (form bodies of one
# shape, or reads): fewer examples each.
EXAMPLES_PER_WORKFLOW_OPERATION = 25
STATEFUL_SCENARIOS = 60  # submit, then read what was submitted: slower, and fewer suffice
_IDEMPOTENCY_KEY = re.compile(models.IDEMPOTENCY_KEY)


def _tracking_id(payload: str) -> str:
    chars = payload + ids.check_char(payload)
    return f"LPR-{chars[0:3]}-{chars[3:6]}-{chars[6:9]}"


def _into_incident_window(body) -> None:
    """Moves a real date in `body` (a report) into the accepted window, in place."""
    text = body.get("incident_date") if isinstance(body, dict) else None
    try:
        day = date.fromisoformat(text) if isinstance(text, str) and len(text) == 10 else None
    except ValueError:
        return  # not a date: the server's answer to that is what is being tested
    if day is not None:
        today = datetime.now(JAKARTA).date()
        earliest = today - timedelta(days=3649)
        body["incident_date"] = min(today, max(earliest, day)).isoformat()


def _deliverable(address: str) -> bool:
    return len(address) <= 254 and normalise_email(address)[0] is not None


schemathesis.openapi.format("lapor-email", st.one_of(
    st.emails().filter(_deliverable),
    st.sampled_from(["rína@contoh.id", "budi+lapor@mail.sijunjung.go.id", "表示@例え.jp"])))


@st.composite
def _phone(draw) -> str:
    """An Indonesian number as people write it (format lapor-phone): a prefix, as many digits
    as the pattern allows after it, and separators before, between and after any of them,
    within 24 characters. Drawn from the pattern alone, most strings would be longer."""
    prefix, fewest, most = draw(st.sampled_from(
        [("0", 8, 13), ("8", 7, 12), ("62", 8, 13), ("+62", 8, 13), ("+0", 8, 13)]))
    digits = draw(st.text(alphabet="0123456789", min_size=fewest, max_size=most))
    parts = ["", *prefix, *digits]  # "" for separators before the number
    room = 24 - len(prefix) - len(digits)
    runs = draw(st.lists(st.text(alphabet=" \t\r\n().-", max_size=2), min_size=len(parts),
                         max_size=len(parts)))
    text = ""
    for part, run in zip(parts, runs, strict=True):
        run = run[:room]
        text, room = text + part + run, room - len(run)
    return text


schemathesis.openapi.format(models.PHONE_FORMAT, _phone())
schemathesis.openapi.format("lapor-tracking-id", st.text(
    alphabet=ids.ALPHABET, min_size=ids.RANDOM_CHARS, max_size=ids.RANDOM_CHARS).map(
    _tracking_id))


# The SMS and WhatsApp webhooks are signed with their gateway's secret (HMAC of the raw
# body); the secrets are given to the server under test through its environment.
_SIGNATURE = re.compile(r"sha256=[0-9a-fA-F]{64}")
GATEWAY_SECRETS = {"INTAKE_SMS_GATEWAY_SECRET": "fuzz-sms-gateway-secret-0123456789",
                   "INTAKE_WHATSAPP_GATEWAY_SECRET": "fuzz-wa-gateway-secret-0123456789"}


def _sign_gateway_message(case) -> None:
    """Signs a JSON body sent to a gateway webhook as the transport will serialise it
    (requests' json=, or b"null"). A signature header schemathesis made invalid on purpose
    is left as it is."""
    if not case.path.startswith("/api/v1/channels/") or isinstance(case.body, bytes):
        return
    headers = case.meta.components.get("header") if case.meta else None
    if (headers is not None and getattr(headers.mode, "value", headers.mode) == "negative"
            or not _SIGNATURE.fullmatch(str((case.headers or {}).get("X-Lapor-Signature",
                                                                      "")))):
        return
    try:
        raw = b"null" if case.body is None else json.dumps(case.body, allow_nan=False).encode()
    except (TypeError, ValueError):
        return  # not JSON at all: sent unsigned, refused with 401
    channel = case.path.rsplit("/", 1)[-1]
    secret = GATEWAY_SECRETS[f"INTAKE_{channel.upper()}_GATEWAY_SECRET"].encode()
    case.headers = {**(case.headers or {}),
                    "X-Lapor-Signature": "sha256=" + hmac.new(secret, raw,
                                                              hashlib.sha256).hexdigest()}


@schemathesis.hook
def before_call(context, case, kwargs):
    _sign_gateway_message(case)
    for headers in (case.headers, kwargs.get("headers")):
        key = (headers or {}).get("Idempotency-Key")
        if isinstance(key, str) and _IDEMPOTENCY_KEY.fullmatch(key):
            headers["Idempotency-Key"] = str(uuid.uuid4())
    for body in (case.body, kwargs.get("json")):
        _into_incident_window(body)


# Derandomized, so CI sees the same cases every run. The status lists are schemathesis 4.32's
# defaults plus 413 (see above).
CONFIG = f"""
[generation]
max-examples = {EXAMPLES_PER_OPERATION}
deterministic = true
[phases.stateful.generation]
max-examples = {STATEFUL_SCENARIOS}
[auth.openapi.staffToken]
bearer = "{FakeRouting.STAFF_TOKEN}"
[[operations]]
include-path-regex = \
    "^/(api/v1/(staff/|reports/[{{]tracking_id[}}]/|channels/|attachments/)|open311/)"
generation = {{ max-examples = {EXAMPLES_PER_WORKFLOW_OPERATION} }}
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422",
                     "428", "429", "5xx"]
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "413", "429", "5xx"]
"""


def test_the_served_document_holds_for_every_operation(tmp_path, monkeypatch):
    for name, secret in GATEWAY_SECRETS.items():
        monkeypatch.setenv(name, secret)
    monkeypatch.setenv("INTAKE_RATE_LIMIT_CHANNEL_SENDER", "100000 per minute")
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG, encoding="utf-8")
    # One worker: hypothesis parses source (ast) while it builds and describes strategies,
    # and CPython 3.11's AST constructor keeps its recursion depth per interpreter, not per
    # thread; with two workers one run failed with "AST constructor recursion depth
    # mismatch". One worker also makes the stateful phase the same each run, and was no
    # slower on two cores, which the server under test shares.
    with FakeRouting() as routing, running_intake(
            tmp_path, routing_addr=f"127.0.0.1:{routing.port}") as intake:
        base = f"http://127.0.0.1:{intake.port}"
        command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run",
                   f"{base}/api/v1/openapi.json", "--url", base, "--checks", "all",
                   "--workers", "1", "--no-color", "--request-timeout", "10",
                   "--output-truncate", "true"]
        env = {**os.environ, "SCHEMATHESIS_HOOKS": HOOKS_MODULE,
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=600)
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-4000:]
    # Every operation the document declares was exercised, none filtered out.
    document = json.loads((ROOT / "services/intake/openapi.json").read_text(encoding="utf-8"))
    # (schemathesis leaves out GET of the document itself, the URL it loaded it from)
    operations = sum(method in ("get", "post", "put", "patch", "delete")
                     for url, path in document["paths"].items() for method in path
                     if url != "/api/v1/openapi.json")
    assert f"{operations} selected / {operations} total" in done.stdout, done.stdout[-3000:]
