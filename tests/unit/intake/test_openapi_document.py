"""The OpenAPI document served at /api/v1/openapi.json says what the code does: it is
generated from the code's models and patterns, and the committed file is what the code
generates today."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from services.intake import openapi, server
from services.intake.app import OPENAPI_PATH, create_app

INTAKE = Path(__file__).resolve().parents[3] / "services" / "intake"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    db = tmp_path_factory.mktemp("openapi") / "intake.db"
    return create_app({"DATABASE_URL": f"sqlite:///{db}", "AMQP_URL": "amqp://127.0.0.1:1/",
                       "ROUTING_ADDR": "127.0.0.1:1", "ROUTING_TIMEOUT": 0.1,
                       "START_WORKERS": False})


def test_the_committed_document_is_what_the_code_generates():
    # Fails after a change to a model, a pattern or a route's answers until
    # `python -m services.intake.openapi` has rewritten the file.
    assert OPENAPI_PATH.read_text(encoding="utf-8") == openapi.render()
    assert openapi.main(["--check"]) == 0


def test_every_route_is_documented_and_every_documented_path_exists(app):
    document = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
    served = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        served.setdefault(path, set()).update(m.lower() for m in rule.methods
                                              if m not in ("HEAD", "OPTIONS"))
    documented = {path: set(ops) for path, ops in document["paths"].items()}
    assert documented == served


def test_served_document_is_the_file(app):
    response = app.test_client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.get_json() == json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))


def test_every_problem_code_the_api_can_return_is_documented():
    text = OPENAPI_PATH.read_text(encoding="utf-8")
    source = "".join(p.read_text(encoding="utf-8") for p in INTAKE.glob("*.py"))
    codes = set(re.findall(r'Problem\(\s*\d{3},\s*"([a-z_]+)"', source))
    codes |= set(re.findall(r'\d{3}: \("([a-z_]+)"', source))  # the HTTP error table
    codes |= {code for _, code, _, _ in server._SERVER_ERRORS.values()}  # waitress's answers
    codes |= {"request_timeout", server._UNAVAILABLE[1]}
    codes.discard("http_error")
    assert {"rate_limited", "token_not_in_header", "headers_too_large"} <= codes
    assert len(codes) > 10, "few problem codes found: the patterns no longer match the source"
    missing = sorted(c for c in codes if not re.search(rf"\b{c}\b", text))
    assert not missing, f"problem codes not in openapi.json: {missing}"


def test_a_report_read_has_exactly_one_answer_schema():
    # oneOf: the public view may not hold owner fields (an allow-list), the owner view must.
    schemas = openapi.document()["components"]["schemas"]
    public, owner = schemas["PublicReport"], schemas["OwnerReport"]
    assert public["additionalProperties"] is False and owner["additionalProperties"] is False
    assert set(owner["required"]) - set(public["properties"]) >= {"anonymous", "reporter"}
    assert owner["properties"]["reporter"] == {"$ref": "#/components/schemas/OwnerReporter"}
    assert set(schemas["OwnerReporter"]["properties"]) == {"language"}
