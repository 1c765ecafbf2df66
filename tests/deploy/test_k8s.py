"""deploy/k8s, deploy/prometheus and deploy/grafana as an operator relies on them.

The manifests are read as plain YAML so the checks run anywhere; `kubectl kustomize` and
`promtool` add their own verdict where they are installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s" / "base"
PROMETHEUS = DEPLOY / "prometheus"
EXAMPLE_SECRET = "secret.example.yaml"
SERVICES = ("intake", "routing", "notify")

SHARED_ENV = {"LAPOR_AMQP_URL", "LAPOR_SHUTDOWN_SECONDS", "LAPOR_RABBITMQ_API_URL"}
# Read by boto3, not by the project's code.
AWS_ENV = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
KNOWN_ENV = {
    "intake": {"INTAKE_HOST", "INTAKE_PORT", "INTAKE_METRICS_HOST", "INTAKE_METRICS_PORT",
               "INTAKE_DATABASE_URL", "ROUTING_ADDR", "INTAKE_ROUTING_TOKEN_FILE",
               "INTAKE_ATTACHMENTS_S3_BUCKET", "INTAKE_ATTACHMENTS_S3_ENDPOINT",
               "LAPOR_ATTACHMENT_LINK_SECRET", "INTAKE_SMS_GATEWAY_SECRET",
               "INTAKE_WHATSAPP_GATEWAY_SECRET"} | AWS_ENV | SHARED_ENV,
    "routing": {"ROUTING_LISTEN", "ROUTING_METRICS_HOST", "ROUTING_METRICS_PORT",
                "ROUTING_DATABASE_URL"} | SHARED_ENV,
    "notify": {"NOTIFY_METRICS_HOST", "NOTIFY_METRICS_PORT", "NOTIFY_DATABASE_URL",
               "NOTIFY_SMTP_URL", "NOTIFY_MAIL_FROM", "NOTIFY_INTAKE_PUBLIC_URL",
               "LAPOR_PUBLIC_URL", "LAPOR_ATTACHMENT_LINK_SECRET", "NOTIFY_SMS_GATEWAY_URL",
               "NOTIFY_SMS_GATEWAY_AUTH", "NOTIFY_WHATSAPP_GATEWAY_URL",
               "NOTIFY_WHATSAPP_GATEWAY_AUTH"} | SHARED_ENV,
}
# Where each service serves /metrics and /healthz, apart from the port it does its work on.
METRICS_PORT = {"intake": 9100, "routing": 9101, "notify": 9102}

GRPC_CODES = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
              "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
              "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
              "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}
TICKET_STATES = {"SUBMITTED", "ON_HOLD", "DISPATCHED", "FOLLOWED_UP", "REPORTER_REPLIED",
                 "CLOSED", "ARCHIVED"}
AGENCY_LEVELS = {"triage", "national", "provincial", "regency", "other"}
# The metrics the services export: name -> {label: allowed values, or None for open sets}.
METRICS: dict[str, dict[str, set[str] | None]] = {
    "lapor_http_requests_total": {"route": None, "method": None, "status": None},
    "lapor_http_request_duration_seconds": {"route": None},
    "lapor_http_queue_wait_seconds": {},
    "lapor_grpc_server_handled_total": {"method": None, "code": GRPC_CODES},
    "lapor_grpc_server_handling_seconds": {"method": None},
    "lapor_events_published_total": {"type": None},
    "lapor_events_consumed_total": {
        "consumer": None, "type": None,
        "outcome": {"processed", "duplicate", "retried", "parked"}},
    "lapor_consumer_batch_size": {"consumer": None},
    "lapor_commit_group_size": {},
    "lapor_outbox_backlog": {"service": set(SERVICES)},
    "lapor_outbox_oldest_age_seconds": {"service": set(SERVICES)},
    "lapor_notify_deliveries_total": {
        "channel": {"email", "sms", "whatsapp", "webhook"},
        "outcome": {"delivered", "retry", "failed"}},
    "lapor_notify_fallbacks_total": {"from_channel": {"email", "sms", "whatsapp"},
                                     "to_channel": {"email", "sms", "whatsapp"}},
    "lapor_notify_sms_parts_total": {},
    "lapor_inbound_messages_total": {
        "channel": {"sms", "whatsapp"},
        "outcome": {"report", "question", "status", "cancel", "opt_out", "opt_in", "help",
                    "replayed", "rate_limited", "unauthenticated", "invalid"}},
    "lapor_attachments_stored_total": {"source": {"upload", "media_url"}},
    "lapor_attachments_refused_total": {"reason": None},
    "lapor_attachment_scans_total": {"outcome": None},
    "lapor_media_fetches_total": {"outcome": None},
    "lapor_tickets_created_total": {"outcome": {"dispatched", "triage"}},
    "lapor_outbox_publish_errors_total": {"service": set(SERVICES),
                                          "reason": {"broker", "unroutable"}},
    "lapor_loop_healthy": {"loop": None},
    "lapor_loop_seconds_since_progress": {"loop": None},
    "lapor_loop_failures_total": {"loop": None},
    "lapor_broker_policies_applied": {},
    "lapor_retention_deleted_total": {"service": set(SERVICES), "table": None},
    "lapor_tickets": {"state": TICKET_STATES, "level": AGENCY_LEVELS},
    "lapor_tickets_overdue": {"level": AGENCY_LEVELS},
    "lapor_followups_total": {"on_time": {"true", "false"}},
    "lapor_ticket_escalations_total": {"kind": {"parent", "national", "verification",
                                                "oversight"}},
    "lapor_sla_warnings_total": {"clock": {"verify", "respond", "auto_close"}},
    "lapor_tickets_auto_closed_total": {},
    "lapor_notify_pending_deliveries": {},
    "lapor_notify_oldest_pending_age_seconds": {},
    "lapor_notify_send_duration_seconds": {"channel": {"email", "sms", "whatsapp", "webhook"}},
    "lapor_classifier_reloads_total": {"outcome": {"loaded", "failed"}},
    "lapor_duplicates_total": {"outcome": {"linked", "suggested"}},
    "lapor_duplicate_check_seconds": {},
    # RabbitMQ's own exporter (rabbitmq_prometheus, per-object metrics on: rabbitmq.conf).
    "rabbitmq_queue_messages_ready": {"queue": None, "vhost": None},
    "rabbitmq_queue_messages_unacked": {"queue": None, "vhost": None},
    "up": {},
}

HISTOGRAMS = {"lapor_http_request_duration_seconds", "lapor_http_queue_wait_seconds",
              "lapor_grpc_server_handling_seconds", "lapor_notify_send_duration_seconds",
              "lapor_duplicate_check_seconds", "lapor_consumer_batch_size",
              "lapor_commit_group_size"}
TARGET_LABELS = {"job", "instance"}
PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                   "unless", "bool", "offset", "Inf", "NaN"}


def _metric_labels(name: str) -> dict[str, set[str] | None] | None:
    if name in METRICS:
        return METRICS[name]
    for base in HISTOGRAMS:
        if name in (f"{base}_bucket", f"{base}_sum", f"{base}_count"):
            labels = dict(METRICS[base])
            if name.endswith("_bucket"):
                labels["le"] = None
            return labels
    return None


def promql_problems(expr: str) -> list[str]:
    """Metric names, label names and enumerated label values in `expr` that the services do
    not export; an empty list when every reference is known."""
    problems = []
    stripped = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    stripped = re.sub(r"\{[^}]*\}", "", stripped)
    stripped = re.sub(r"\[[^\]]*\]", "", stripped)
    grouping = re.findall(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)",
                          stripped)
    stripped = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "",
                      stripped)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", stripped):
        before = stripped[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == ".":
            continue  # the exponent or unit of a number or duration
        if stripped[match.end():].lstrip().startswith("("):
            continue  # a function or aggregation
        if match.group(0) in PROMQL_KEYWORDS:
            continue
        names.add(match.group(0))
    if not names:
        problems.append("references no metric at all")
    labels_in_scope = set(TARGET_LABELS)
    for name in sorted(names):
        labels = _metric_labels(name)
        if labels is None:
            problems.append(f"unknown metric {name}")
        else:
            labels_in_scope |= set(labels)
    for name, matchers in re.findall(r"([A-Za-z_:][A-Za-z0-9_:]*)\s*\{([^}]*)\}", expr):
        labels = _metric_labels(name)
        if labels is None:
            continue
        for label, op, value in re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"', matchers):
            if label not in labels and label not in TARGET_LABELS:
                problems.append(f"{name} has no label {label}")
            allowed = labels.get(label)
            if allowed is None or op in ("!=", "!~"):
                continue
            for alternative in value.split("|") if op == "=~" else [value]:
                if not re.search(r"[.*+?()\[\]\\]", alternative) and alternative not in allowed:
                    problems.append(f"{name}{{{label}}} is never {alternative!r}")
    for clause in grouping:
        for label in filter(None, (part.strip() for part in clause.split(","))):
            if label not in labels_in_scope:
                problems.append(f"groups by {label}, which no metric here carries")
    return problems


def _k8s_documents() -> list[tuple[Path, dict]]:
    documents = []
    for path in sorted(K8S.glob("*.y*ml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents.append((path, document))
    return documents


@pytest.fixture(scope="module")
def documents() -> list[tuple[Path, dict]]:
    return _k8s_documents()


@pytest.fixture(scope="module")
def resources(documents) -> list[dict]:
    """The objects `kubectl apply -k` creates: every document except the example Secret."""
    return [doc for path, doc in documents
            if path.name not in (EXAMPLE_SECRET, "kustomization.yaml")]


def _find(resources, kind: str, name: str) -> dict:
    matches = [d for d in resources if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def _custom_queries(resources) -> dict:
    """The custom queries CloudNativePG runs for postgres.yaml's Cluster (its ConfigMap)."""
    return yaml.safe_load(_find(resources, "ConfigMap", "postgres-lapor-queries")["data"]
                          ["queries"])


def _cnpg_custom_metrics() -> dict[str, dict[str, set[str] | None]]:
    """What CloudNativePG's exporter makes of those queries: a metric cnpg_<query>_<column>
    for each GAUGE or COUNTER column, labelled by the LABEL columns; so the alerts are
    checked against the query the cluster runs, not a list kept apart."""
    metrics = {}
    for query, spec in _custom_queries([doc for _, doc in _k8s_documents()]).items():
        columns = [(name, column["usage"]) for entry in spec["metrics"]
                   for name, column in entry.items()]
        labels = {name: None for name, usage in columns if usage == "LABEL"}
        for name, usage in columns:
            if usage in ("GAUGE", "COUNTER"):
                metrics[f"cnpg_{query}_{name}"] = labels
    return metrics


METRICS.update(_cnpg_custom_metrics())


def _deployments(resources) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in resources if d["kind"] == "Deployment"}


def _containers(deployment: dict) -> list[dict]:
    spec = deployment["spec"]["template"]["spec"]
    return spec["containers"] + spec.get("initContainers", [])


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _main_container(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def _port_number(container: dict, port: int | str) -> int:
    """A probe's or policy's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return number


def _env_values(container: dict) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_every_service_has_deployment_service_autoscaler_and_disruption_budget(resources):
    for name in SERVICES:
        assert _find(resources, "Deployment", name)["apiVersion"] == "apps/v1"
        assert _find(resources, "Service", name)["apiVersion"] == "v1"
        assert _find(resources, "HorizontalPodAutoscaler", name)["apiVersion"] == (
            "autoscaling/v2")
        assert _find(resources, "PodDisruptionBudget", name)["apiVersion"] == "policy/v1"


def test_every_container_has_resources_probes_and_a_locked_down_context(resources):
    for name, deployment in _deployments(resources).items():
        pod = deployment["spec"]["template"]["spec"]
        pod_context = pod.get("securityContext", {})
        for container in _containers(deployment):
            where = f"{name}/{container['name']}"
            resources_ = container.get("resources", {})
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources_.get(kind, {})), (where, kind)
            assert container.get("readinessProbe"), f"{where} has no readiness probe"
            assert container.get("livenessProbe"), f"{where} has no liveness probe"
            context = {**pod_context, **container.get("securityContext", {})}
            assert context.get("runAsNonRoot") is True, where
            assert context.get("readOnlyRootFilesystem") is True, where
            assert context.get("allowPrivilegeEscalation") is False, where
            assert "ALL" in context.get("capabilities", {}).get("drop", []), where
            assert context.get("runAsUser", 10001) != 0, where


def _http_probe(container: dict, probe: str) -> tuple[str, int]:
    get = container[probe]["httpGet"]
    return get["path"], _port_number(container, get["port"])


def test_probes_ask_the_right_endpoints(resources):
    deployments = _deployments(resources)

    def container(name):
        return _main_container(deployments[name])

    # Liveness on the ops port: /healthz fails when a background loop is dead or wedged.
    routing = container("routing")
    assert _http_probe(routing, "livenessProbe") == ("/healthz", 9101)
    # Readiness from the gRPC server itself, for the API's own service name, which turns
    # NOT_SERVING while the database is down.
    assert routing["readinessProbe"]["grpc"] == {"port": 50051,
                                                 "service": "lapor.v1.RoutingService"}
    intake = container("intake")
    assert _http_probe(intake, "livenessProbe") == ("/healthz", 9100)
    assert _http_probe(intake, "readinessProbe") == ("/readyz", 8080)
    notify = container("notify")
    assert _http_probe(notify, "livenessProbe") == ("/healthz", 9102)
    assert _http_probe(notify, "readinessProbe") == ("/readyz", 9102)
    for name in SERVICES:
        # The startup probe guards the liveness probe, so it asks the same question.
        assert container(name)["startupProbe"]["httpGet"]["path"] == "/healthz", name


def _pre_stop_seconds(container: dict) -> int:
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    if "sleep" in pre_stop:
        return int(pre_stop["sleep"]["seconds"])
    command = pre_stop.get("exec", {}).get("command", [])
    assert command[:1] == ["sleep"] and len(command) == 2, command
    return int(command[1])


def test_pods_leave_the_endpoints_before_sigterm_and_drain_within_the_grace_period(resources):
    for name, deployment in _deployments(resources).items():
        pod = deployment["spec"]["template"]["spec"]
        container = _main_container(deployment)
        pause = _pre_stop_seconds(container)
        assert pause >= 3, f"{name}: too short for the endpoint removal to reach every node"
        budget = float(_env_values(container)["LAPOR_SHUTDOWN_SECONDS"])
        # The kill comes terminationGracePeriodSeconds after the preStop hook starts.
        assert pod["terminationGracePeriodSeconds"] >= pause + budget + 5, name


def test_prometheus_scrapes_the_metrics_port_not_the_public_one(resources):
    for name, deployment in _deployments(resources).items():
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        container = _main_container(deployment)
        assert annotations["prometheus.io/scrape"] == "true", name
        assert int(annotations["prometheus.io/port"]) == METRICS_PORT[name], name
        assert _port_number(container, "metrics") == METRICS_PORT[name], name
        assert annotations["prometheus.io/path"] == "/metrics", name


def _policies_for(resources, deployment: dict) -> list[dict]:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return [d["spec"] for d in resources if d["kind"] == "NetworkPolicy"
            and _selects(d["spec"]["podSelector"].get("matchLabels", {}), labels)]


def _allowed_sources(resources, deployment: dict, port: int) -> list[list[dict] | None]:
    """For each ingress rule that opens `port`: its `from` list, None meaning anyone."""
    container = _main_container(deployment)
    found = []
    for policy in _policies_for(resources, deployment):
        for rule in policy.get("ingress", []):
            ports = rule.get("ports")
            if ports is None or any(_port_number(container, p["port"]) == port for p in ports):
                found.append(rule.get("from"))
    return found


def _only_pods_named(sources: list[dict] | None, app: str) -> bool:
    return bool(sources) and all(
        "ipBlock" not in source
        and source.get("podSelector", {}).get("matchLabels", {}).get(
            "app.kubernetes.io/name") == app
        for source in sources)


def test_network_policies_let_only_intake_call_routing_and_only_prometheus_scrape(resources):
    deployments = _deployments(resources)
    for name, deployment in deployments.items():
        policies = _policies_for(resources, deployment)
        assert policies, f"no NetworkPolicy selects {name}'s pods: every port is open"
        assert all("Ingress" in p["policyTypes"] for p in policies), name
        metrics = _allowed_sources(resources, deployment, METRICS_PORT[name])
        assert metrics and all(_only_pods_named(s, "prometheus") for s in metrics), (
            name, metrics)

    grpc_sources = _allowed_sources(resources, deployments["routing"], 50051)
    assert grpc_sources and all(_only_pods_named(s, "intake") for s in grpc_sources), (
        grpc_sources)
    # Intake's pods in this namespace, not pods with that label anywhere in the cluster.
    assert not [s for sources in grpc_sources for s in sources if "namespaceSelector" in s]
    # The public API port stays open to the Ingress, wherever it runs.
    assert None in _allowed_sources(resources, deployments["intake"], 8080)


def test_probe_and_service_ports_are_ports_the_containers_declare(resources):
    deployments = _deployments(resources)
    for name, deployment in deployments.items():
        for container in _containers(deployment):
            declared = {p.get("name") for p in container.get("ports", [])} | {
                p["containerPort"] for p in container.get("ports", [])}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                spec = container.get(probe)
                if not spec:
                    continue
                handler = spec.get("httpGet") or spec.get("grpc") or spec.get("tcpSocket")
                assert handler and handler["port"] in declared, (name, probe)
    for service in (d for d in resources if d["kind"] == "Service"):
        name = service["metadata"]["name"]
        targets = [d for d in deployments.values()
                   if _selects(service["spec"]["selector"],
                               d["spec"]["template"]["metadata"]["labels"])]
        assert targets, f"Service {name} selects no Deployment's pods"
        for port in service["spec"]["ports"]:
            declared = {p.get("name") for c in _containers(targets[0]) for p in c["ports"]} | {
                p["containerPort"] for c in _containers(targets[0]) for p in c["ports"]}
            assert port.get("targetPort", port["port"]) in declared, (name, port)


def test_listen_settings_agree_with_container_ports(resources):
    deployments = _deployments(resources)
    for name, var in (("intake", "INTAKE_PORT"), ("intake", "INTAKE_METRICS_PORT"),
                      ("routing", "ROUTING_METRICS_PORT"), ("notify", "NOTIFY_METRICS_PORT")):
        container = deployments[name]["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert int(env[var]) in {p["containerPort"] for p in container["ports"]}, name
        # The default 127.0.0.1 would leave Prometheus and the kubelet outside.
        assert env[f"{name.upper()}_METRICS_HOST"] == "0.0.0.0", name
    routing = deployments["routing"]["spec"]["template"]["spec"]["containers"][0]
    listen = {e["name"]: e.get("value") for e in routing["env"]}["ROUTING_LISTEN"]
    assert listen.startswith("0.0.0.0:")
    assert int(listen.rsplit(":", 1)[1]) in {p["containerPort"] for p in routing["ports"]}


def test_autoscalers_and_budgets_target_their_deployments(resources):
    deployments = _deployments(resources)
    for name in SERVICES:
        pod_labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert _selects(deployments[name]["spec"]["selector"]["matchLabels"], pod_labels)
        assert "replicas" not in deployments[name]["spec"], (
            f"{name} fixes replicas, which fights its autoscaler on every apply")
        hpa = _find(resources, "HorizontalPodAutoscaler", name)["spec"]
        assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                         "name": name}
        assert 2 <= hpa["minReplicas"] <= hpa["maxReplicas"]
        pdb = _find(resources, "PodDisruptionBudget", name)["spec"]
        assert _selects(pdb["selector"]["matchLabels"], pod_labels), name
        # A budget that allows no disruption at all blocks every node drain.
        assert pdb.get("maxUnavailable", 1) >= 1 or pdb.get("minAvailable", 0) < hpa[
            "minReplicas"], name


def test_environment_names_are_ones_the_services_read(resources):
    for name, deployment in _deployments(resources).items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            names = {e["name"] for e in container.get("env", [])}
            assert not container.get("envFrom"), f"{name}: envFrom hides which names it sets"
            unknown = names - KNOWN_ENV[name]
            assert not unknown, f"{name} is given variables it never reads: {sorted(unknown)}"
            assert {f"{name.upper()}_DATABASE_URL", "LAPOR_AMQP_URL"} <= names, name


def test_secrets_come_from_lapor_secrets_and_the_example_has_every_key(documents, resources):
    example = [doc for path, doc in documents if path.name == EXAMPLE_SECRET]
    assert len(example) == 1 and example[0]["kind"] == "Secret"
    assert example[0]["metadata"]["name"] == "lapor-secrets"
    example_keys = set(example[0].get("stringData", {})) | set(example[0].get("data", {}))
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in resources
                  if d["kind"] == "ConfigMap"}
    secret_vars = {"INTAKE_DATABASE_URL", "ROUTING_DATABASE_URL", "NOTIFY_DATABASE_URL",
                   "LAPOR_AMQP_URL", "NOTIFY_SMTP_URL"}
    for name, deployment in _deployments(resources).items():
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for env in container.get("env", []):
                source = env.get("valueFrom", {})
                if "secretKeyRef" in source:
                    ref = source["secretKeyRef"]
                    assert ref["name"] == "lapor-secrets", (name, env["name"])
                    assert ref["key"] in example_keys, (name, env["name"], ref["key"])
                elif "configMapKeyRef" in source:
                    ref = source["configMapKeyRef"]
                    assert ref["key"] in configmaps.get(ref["name"], {}), (name, env["name"])
                if env["name"] in secret_vars:
                    assert "secretKeyRef" in source, f"{name} sets {env['name']} in plain text"
    assert not [d for d in resources if d["kind"] == "Secret"], "a Secret is committed"


def test_example_secret_points_at_the_operator_managed_services(documents, resources):
    example = next(doc for path, doc in documents if path.name == EXAMPLE_SECRET)["stringData"]
    postgres = _find(resources, "Cluster", "postgres")
    assert postgres["apiVersion"] == "postgresql.cnpg.io/v1"
    databases = {postgres["spec"]["bootstrap"]["initdb"]["database"]} | {
        d["spec"]["name"] for d in resources
        if d["kind"] == "Database" and d["spec"]["cluster"]["name"] == "postgres"}
    for name in SERVICES:
        url = urlsplit(example[f"{name}-database-url"])
        assert url.scheme == "postgresql" and url.hostname == "postgres-rw", url.geturl()
        assert url.path.lstrip("/") == f"lapor_{name}" and f"lapor_{name}" in databases
    rabbit = _find(resources, "RabbitmqCluster", "rabbitmq")
    assert rabbit["apiVersion"] == "rabbitmq.com/v1beta1"
    # One broker user per service (rabbitmq-users.yaml), never the operator's administrator.
    for name in SERVICES:
        url = urlsplit(example[f"{name}-amqp-url"])
        assert url.hostname == rabbit["metadata"]["name"], url.geturl()
        _find(resources, "User", f"lapor-{name}")
    exchange = next(d for d in resources if d["kind"] == "Exchange")
    assert exchange["spec"]["name"] == "lapor.events"
    assert exchange["spec"]["type"] == "topic" and exchange["spec"]["durable"] is True
    assert exchange["spec"]["rabbitmqClusterReference"]["name"] == "rabbitmq"


def test_kustomization_lists_every_resource_file_but_the_example_secret():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    # Folders are kustomizations of their own (monitoring/), checked by test_k8s_overlays.py.
    folders = {r for r in listed if (K8S / r).is_dir()}
    assert all((K8S / f / "kustomization.yaml").is_file() for f in folders), folders
    listed -= folders
    on_disk = {p.name for p in K8S.glob("*.y*ml")} - {"kustomization.yaml"}
    assert EXAMPLE_SECRET not in listed, "the example Secret would be applied"
    assert listed == on_disk - {EXAMPLE_SECRET}, (
        f"unlisted: {sorted(on_disk - listed - {EXAMPLE_SECRET})}, "
        f"missing: {sorted(listed - on_disk)}")
    for name in SERVICES:
        images = {i["name"] for i in kustomization.get("images", [])}
        assert f"lapor/{name}" in images, f"no tag for lapor/{name}"


def test_kustomize_builds_the_base():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not on PATH; `kubectl kustomize` cannot run")
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    built = [d for d in yaml.safe_load_all(result.stdout) if d]
    for document in built:
        if document["kind"] != "Namespace":
            assert document["metadata"].get("namespace") == "lapor", document["metadata"]
    for deployment in (d for d in built if d["kind"] == "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert re.fullmatch(r"lapor/\w+:[\w.-]+", container["image"]), container["image"]


def _alert_rules() -> list[dict]:
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def test_alert_rules_and_scrape_config_parse():
    assert yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["scrape_configs"]
    alerts = _alert_rules()
    assert alerts and all(rule.get("alert") and rule.get("expr") for rule in alerts)
    for rule in alerts:
        assert rule.get("labels", {}).get("severity") in {"critical", "warning", "info"}, rule
        assert rule.get("annotations", {}).get("summary"), rule["alert"]


def test_alert_expressions_use_only_exported_metrics():
    for rule in _alert_rules():
        assert not promql_problems(rule["expr"]), (rule["alert"], promql_problems(rule["expr"]))


def test_metric_reference_check_catches_typos():
    assert promql_problems('sum(rate(lapor_notify_deliveries_total{outcome="failed"}[5m]))') == []
    assert promql_problems("lapor_outbox_backlogg > 0") == ["unknown metric lapor_outbox_backlogg"]
    assert promql_problems('lapor_events_consumed_total{outcome="parkd"}') == [
        "lapor_events_consumed_total{outcome} is never 'parkd'"]
    assert promql_problems("sum by (channle) (lapor_notify_deliveries_total)") == [
        "groups by channle, which no metric here carries"]


def test_the_metrics_table_is_what_the_services_export():
    """The table the dashboard and alert checks trust is checked against the metrics the
    three services register, names and label names both."""
    import prometheus_client

    import services.intake.app
    import services.intake.server
    import services.notify.app
    import services.routing.app  # noqa: F401 (registers routing's metrics)

    exported = {}
    for metric in prometheus_client.REGISTRY.collect():
        if metric.name.startswith("lapor_"):
            labels = set()
            for sample in metric.samples:
                labels |= set(sample.labels) - {"le"}
            exported[metric.name] = labels
    for name, labels in METRICS.items():
        if not name.startswith("lapor_"):
            continue
        base = name.removesuffix("_total")
        assert base in exported, f"{name} is not registered by any service"
        if exported[base]:
            assert set(labels) == exported[base], (name, set(labels), exported[base])


def test_every_alert_has_a_unit_test():
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])
              if case.get("exp_alerts")}
    untested = [rule["alert"] for rule in _alert_rules() if rule["alert"] not in tested]
    assert not untested, f"no promtool case in alerts_test.yml sees these fire: {untested}"


def test_alerts_cover_what_operators_are_paged_for():
    expressions = [rule["expr"] for rule in _alert_rules()]

    def covered(*needles):
        return any(all(n in expr for n in needles) for expr in expressions)

    assert covered("lapor_outbox_backlog"), "outbox backlog"
    assert covered("lapor_outbox_oldest_age_seconds"), "outbox age"
    assert covered("lapor_events_consumed_total", '"parked"'), "parked events"
    assert covered("lapor_notify_deliveries_total", '"failed"'), "delivery failures"
    assert covered("lapor_http_requests_total", "5.."), "intake 5xx ratio"
    assert covered("lapor_grpc_server_handled_total", "INTERNAL"), "routing RPC errors"
    assert covered("up", "== 0"), "service down"


def test_dashboard_queries_use_only_exported_metrics():
    dashboards = list((DEPLOY / "grafana" / "dashboards").glob("*.json"))
    assert dashboards
    for path in dashboards:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["title"]
        panels = [p for p in dashboard["panels"] if p["type"] != "row"]
        assert panels
        for panel in panels:
            for target in panel["targets"]:
                problems = promql_problems(target["expr"])
                assert not problems, (path.name, panel["title"], problems)


def _promtool(*args: str) -> subprocess.CompletedProcess:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not on PATH (Debian package prometheus provides it)")
    return subprocess.run([promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True,
                          timeout=120, check=False)


def test_promtool_accepts_the_rules():
    result = _promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_config():
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_fire_as_their_unit_tests_expect():
    result = _promtool("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


# What Grafana puts in place of its variables before a query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "2m", "$__range": "1h", "$__interval": "30s"}


def _dashboard_queries(title: str | None = None) -> list[str]:
    """Every dashboard's queries (or those of the panels titled `title`) as Prometheus
    receives them."""
    panels = [panel for path in sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
              for panel in json.loads(path.read_text())["panels"]]
    queries = []
    for panel in panels:
        if panel["type"] == "row" or title not in (None, panel["title"]):
            continue
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            assert "$" not in expr, (panel["title"], "a Grafana variable this test does not know")
            queries.append(expr)
    return queries


def test_promtool_parses_every_dashboard_query(tmp_path):
    """A panel whose query Prometheus refuses shows "bad_data" at 3 a.m.; promtool parses
    each one as a recording rule's expression."""
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"lapor:panel_{i}", "expr": expr}
        for i, expr in enumerate(_dashboard_queries())]}]}
    (tmp_path / "panels.yml").write_text(yaml.safe_dump(rules))
    result = _promtool("check", "rules", str(tmp_path / "panels.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dead_rows_panel_keeps_a_table_that_peaked_earlier_in_its_range(tmp_path):
    """The panel shows eight tables. Chosen at every step by the value at that step, the
    eight changed along the graph and a table vacuumed a moment ago dropped out of it; chosen
    by their peak over the dashboard's range, the outbox that climbed to 50,000 dead rows
    and was vacuumed stays, and the smallest of the steady ones gives way."""
    [expr] = _dashboard_queries("PostgreSQL dead row versions")
    steady = [f"table_{n}" for n in range(1, 9)]
    series = [{"series": f'cnpg_lapor_tables_n_dead_tup{{datname="lapor_notify", '
                         f'relname="{name}", pod="postgres-1"}}',
               "values": f"{1000 * n}x60"} for n, name in enumerate(steady, start=1)]
    series.append({"series": 'cnpg_lapor_tables_n_dead_tup{datname="lapor_intake", '
                             'relname="outbox", pod="postgres-1"}',
                   "values": "0x10 50000 0x49"})
    shown = [{"labels": f'{{datname="lapor_notify", relname="{name}"}}', "value": 1000 * n}
             for n, name in enumerate(steady, start=1) if n > 1]
    shown.append({"labels": '{datname="lapor_intake", relname="outbox"}', "value": 0})
    case = {"rule_files": [], "evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": series,
        "promql_expr_test": [{"expr": expr, "eval_time": "60m", "exp_samples": shown}]}]}
    (tmp_path / "panel_test.yml").write_text(yaml.safe_dump(case))
    result = _promtool("test", "rules", str(tmp_path / "panel_test.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dead_row_query_reads_every_services_database(resources):
    """LaporPostgresVacuumBehind sees a table only if the custom query runs in its database:
    the query's target_databases are the cluster's databases, every one of them."""
    databases = {_find(resources, "Cluster", "postgres")["spec"]["bootstrap"]["initdb"]
                 ["database"]}
    databases |= {d["spec"]["name"] for d in resources if d["kind"] == "Database"}
    assert databases == {"lapor_intake", "lapor_routing", "lapor_notify"}
    assert set(_custom_queries(resources)["lapor_tables"]["target_databases"]) == databases
