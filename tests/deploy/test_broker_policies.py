"""The queue policies exist in one version: the services apply what
services/infra/messaging.py defines, the broker's definitions.json (compose) and the
Messaging Topology Operator's Policy resources (Kubernetes) carry the same."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from services.infra import messaging

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_definitions_json_carries_the_policies_the_services_apply():
    definitions = json.loads((DEPLOY / "rabbitmq" / "definitions.json").read_text())
    found = {p["name"]: p for p in definitions["policies"]}
    expected = messaging.all_policies()
    assert set(found) == set(expected)
    for name, body in expected.items():
        policy = found[name]
        assert policy["vhost"] == "/"
        assert (policy["pattern"], policy["apply-to"], policy["priority"]) == (
            body["pattern"], body["apply-to"], body["priority"])
        assert policy["definition"] == body["definition"], name


def test_the_kubernetes_policy_resources_match_too():
    documents = list(yaml.safe_load_all((DEPLOY / "k8s" / "base" / "rabbitmq.yaml").read_text()))
    found = {d["spec"]["name"]: d["spec"] for d in documents if d and d["kind"] == "Policy"}
    expected = messaging.all_policies()
    assert set(found) == set(expected)
    for name, body in expected.items():
        spec = found[name]
        assert (spec["pattern"], spec["applyTo"], spec["priority"], spec["vhost"]) == (
            body["pattern"], body["apply-to"], body["priority"], "/")
        assert spec["definition"] == body["definition"], name
        assert spec["rabbitmqClusterReference"] == {"name": "rabbitmq"}


def test_every_retry_and_main_queue_has_its_policy():
    policies = messaging.all_policies()
    for spec in messaging.QUEUES.values():
        assert policies[f"lapor.{spec.name}"]["definition"]["dead-letter-routing-key"] == (
            spec.parking_queue)
        for attempt, delay in enumerate(spec.retry_delays_ms, start=1):
            retry = policies[f"lapor.{spec.retry_queue(attempt)}"]["definition"]
            assert (retry["message-ttl"], retry["dead-letter-routing-key"]) == (delay, spec.name)
