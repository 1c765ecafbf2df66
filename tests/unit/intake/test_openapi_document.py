"""The OpenAPI document served at /api/v1/openapi.json says what the code does."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from services.intake.app import OPENAPI_PATH, create_app

INTAKE = Path(__file__).resolve().parents[3] / "services" / "intake"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    db = tmp_path_factory.mktemp("openapi") / "intake.db"
    return create_app({"DATABASE_URL": f"sqlite:///{db}", "AMQP_URL": "amqp://127.0.0.1:1/",
                       "ROUTING_ADDR": "127.0.0.1:1", "ROUTING_TIMEOUT": 0.1,
                       "START_WORKERS": False})


def test_every_route_is_documented_and_every_documented_path_exists(app):
    document = json.loads(OPENAPI_PATH.read_text(encoding="utf-8"))
    served = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        served.setdefault(path, set()).update(m.lower() for m in rule.methods
                                              if m not in ("HEAD", "OPTIONS"))
    served["/metrics"] = {"get"}  # mounted beside Flask by DispatcherMiddleware
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
    codes.discard("http_error")
    assert codes, "no problem codes found: the pattern no longer matches the source"
    missing = sorted(c for c in codes if not re.search(rf"\b{c}\b", text))
    assert not missing, f"problem codes not in openapi.json: {missing}"
