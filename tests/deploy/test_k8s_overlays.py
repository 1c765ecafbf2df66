"""deploy/k8s as built: the base, the dev and production overlays and the Jobs each build with
kustomize; every object passes offline schema validation (core kinds against Kubernetes'
OpenAPI schemas from the kubernetes-validate package, custom resources against the subset of
their operators' CRD schemas in tests/deploy/crds/ and, for KEDA, CloudNativePG and the
Prometheus Operator, validators generated from the upstream CRDs); and what the overlays
add (alerts, dashboard, KEDA scaling, PostgreSQL backups, broker users, Jobs) says what
LAPOR needs.

Needs `kubectl` (or `kustomize`) on PATH, the kubernetes-validate and jsonschema packages,
and node with tests/deploy/crd-validate installed (`npm ci`) for the schema checks; each
test that lacks one skips and names it.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from services.infra.messaging import EXCHANGE, QUEUES
from tests.deploy.test_k8s import promql_problems

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
CRDS = Path(__file__).resolve().parent / "crds"
MONITORING = K8S / "base" / "monitoring"
BUILDS = {"base": K8S / "base", "dev": K8S / "overlays" / "dev",
          "production": K8S / "overlays" / "production", "jobs": K8S / "jobs"}
OVERLAYS = ("dev", "production")
SERVICES = ("intake", "routing", "notify")
# The Kubernetes version the core kinds are checked against (kubernetes-validate's schemas).
KUBERNETES_VERSION = "1.30.0"


def _kustomize_command(path: Path) -> list[str]:
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize", str(path)]
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build", str(path)]
    pytest.skip("neither kubectl nor kustomize is on PATH")


@functools.cache
def _built(name: str) -> tuple[dict, ...]:
    result = subprocess.run(_kustomize_command(BUILDS[name]), capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, f"{name}: {result.stderr}"
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def built(name: str) -> list[dict]:
    return list(_built(name))


def _find(documents, kind: str, name: str) -> dict:
    matches = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def _of_kind(documents, kind: str) -> list[dict]:
    return [d for d in documents if d["kind"] == kind]


# --- building and schemas ---------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(BUILDS))
def test_every_kustomization_builds_into_the_lapor_namespace(name):
    documents = built(name)
    assert documents
    for document in documents:
        if document["kind"] != "Namespace":
            assert document["metadata"].get("namespace") == "lapor", (
                name, document["kind"], document["metadata"]["name"])
        assert document["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == (
            "lapor"), (name, document["kind"], document["metadata"]["name"])


@functools.cache
def _crd_schemas() -> dict[tuple[str, str], dict]:
    schemas = {}
    for path in sorted(CRDS.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schemas[(f"{group}/{version['name']}", kind)] = version["schema"][
                    "openAPIV3Schema"]
    return schemas


def _is_custom(document: dict) -> bool:
    group = document["apiVersion"].rpartition("/")[0]
    return "." in group and not group.endswith(".k8s.io")


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_core_kinds_pass_offline_schema_validation(name):
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate")
    for document in built(name):
        if _is_custom(document):
            continue
        try:
            kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name}: {document['kind']}/{document['metadata']['name']}: "
                        f"{'.'.join(map(str, error.path))}: {error.message}")


def _crd_problems(document: dict) -> list[str]:
    import jsonschema

    schema = _crd_schemas().get((document["apiVersion"], document["kind"]))
    if schema is None:
        return [f"no CRD schema for {document['apiVersion']} {document['kind']} in {CRDS}"]
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(document)]


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_custom_resources_pass_their_operators_crd_schemas(name):
    pytest.importorskip("jsonschema", reason="pip install jsonschema")
    for document in built(name):
        if _is_custom(document):
            problems = _crd_problems(document)
            assert not problems, (name, document["kind"], document["metadata"]["name"],
                                  problems)


def test_the_crd_check_catches_a_misspelt_field():
    pytest.importorskip("jsonschema", reason="pip install jsonschema")
    scaled = json.loads(json.dumps(_find(built("production"), "ScaledObject", "routing")))
    assert _crd_problems(scaled) == []
    scaled["spec"]["maxReplicas"] = scaled["spec"].pop("maxReplicaCount")
    assert _crd_problems(scaled)
    backup = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "ScheduledBackup",
              "metadata": {"name": "x"},
              "spec": {"schedule": "0 2 * * *", "cluster": {"name": "postgres"}}}
    assert _crd_problems(backup), "a five-field schedule has no seconds field"


# The same custom resources against validators generated from the operators' own CRDs
# (kubernetes-models for KEDA, CloudNativePG and the Prometheus Operator, pinned in
# crd-validate/package-lock.json; scripts/test.sh installs them). Those check the types,
# enums, patterns and required fields of the whole upstream schema but let unknown fields
# through, as the API server does (it prunes them): the hand-kept subsets above catch those.
# No such package exists for RabbitMQ's operators, whose resources only the subset checks.
VALIDATORS = Path(__file__).resolve().parent / "crd-validate"
UPSTREAM_GROUPS = ("keda.sh", "postgresql.cnpg.io", "monitoring.coreos.com")


def _upstream_problems(documents: list[dict]) -> list[list[str] | None]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH (scripts/test.sh installs Debian's nodejs)")
    if not (VALIDATORS / "node_modules").is_dir():
        pytest.skip(f"the CRD validators are not installed: npm ci --prefix {VALIDATORS}")
    result = subprocess.run([node, str(VALIDATORS / "validate.mjs")],
                            input=json.dumps(documents), capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return [entry["problems"] for entry in json.loads(result.stdout)]


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_custom_resources_pass_validators_built_from_the_upstream_crds(name):
    custom = [d for d in built(name) if _is_custom(d)]
    checked = 0
    for document, problems in zip(custom, _upstream_problems(custom), strict=True):
        if document["apiVersion"].split("/")[0] in UPSTREAM_GROUPS:
            assert problems == [], (name, document["kind"], document["metadata"]["name"])
            checked += 1
        else:
            assert problems is None, (document["apiVersion"], "a group with a validator")
    if name != "jobs":
        assert checked, f"{name}: no ScaledObject, PrometheusRule or Cluster was checked"


def test_the_upstream_validators_refuse_what_the_operators_would():
    production = built("production")
    scaled = json.loads(json.dumps(_find(production, "ScaledObject", "routing")))
    scaled["spec"]["minReplicaCount"] = "two"
    rule = json.loads(json.dumps(_of_kind(production, "PrometheusRule")[0]))
    rule["spec"]["groups"][0]["rules"][0]["for"] = "5 minutes"
    cluster = json.loads(json.dumps(_of_kind(production, "Cluster")[0]))
    cluster["spec"]["instances"] = "3"
    backup = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "ScheduledBackup",
              "metadata": {"name": "x"}, "spec": {"cluster": {"name": "postgres"}}}
    problems = _upstream_problems([scaled, rule, cluster, backup])
    assert "minReplicaCount must be integer" in problems[0][0]
    assert "/for must match pattern" in problems[1][0]
    assert "instances must be integer" in problems[2][0]
    assert "spec must have required property schedule" in problems[3][0]


# --- alerts and dashboard ---------------------------------------------------------------

def test_the_prometheus_rule_carries_exactly_the_alert_rules():
    alerts = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    for name in ("base", *OVERLAYS):
        rule = _find(built(name), "PrometheusRule", "lapor-alerts")
        assert rule["spec"]["groups"] == alerts["groups"], (
            f"{name}: deploy/k8s/base/monitoring/prometheusrule.yaml differs from "
            "deploy/prometheus/alerts.yml; run `python deploy/k8s/base/monitoring/sync.py`")


def test_the_dashboard_configmap_is_the_grafana_dashboard():
    source = (ROOT / "deploy" / "grafana" / "dashboards" / "lapor.json").read_text()
    assert (MONITORING / "lapor.json").read_text() == source, (
        "deploy/k8s/base/monitoring/lapor.json differs from deploy/grafana/dashboards/"
        "lapor.json; run `python deploy/k8s/base/monitoring/sync.py`")
    for name in ("base", *OVERLAYS):
        configmap = _find(built(name), "ConfigMap", "lapor-dashboard")
        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert json.loads(configmap["data"]["lapor.json"]) == json.loads(source)


def test_prometheus_scrapes_every_service_under_its_app_name():
    documents = built("production")
    monitor = _find(documents, "PodMonitor", "lapor")["spec"]
    # alerts.yml keys `up` on job="intake" etc.: the job must be the app name.
    assert monitor["jobLabel"] == "app.kubernetes.io/name"
    (expression,) = monitor["selector"]["matchExpressions"]
    assert expression["key"] == "app.kubernetes.io/name" and set(expression["values"]) == set(
        SERVICES)
    assert [e["port"] for e in monitor["podMetricsEndpoints"]] == ["metrics"]
    for name in SERVICES:
        deployment = _find(documents, "Deployment", name)
        ports = {p.get("name") for c in deployment["spec"]["template"]["spec"]["containers"]
                 for p in c["ports"]}
        assert "metrics" in ports, name
    rabbit = _find(documents, "ServiceMonitor", "rabbitmq")["spec"]
    assert [e["port"] for e in rabbit["endpoints"]] == ["prometheus"]


# --- autoscaling ------------------------------------------------------------------------

def _triggers(scaled: dict, kind: str) -> list[dict]:
    return [t for t in scaled["spec"]["triggers"] if t["type"] == kind]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_scales_every_service_and_no_second_autoscaler_fights_it(overlay):
    documents = built(overlay)
    assert not _of_kind(documents, "HorizontalPodAutoscaler"), (
        "KEDA makes the HPA; a second one on the same Deployment fights it")
    for name in SERVICES:
        scaled = _find(documents, "ScaledObject", name)["spec"]
        assert scaled["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                            "name": name}
        assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
        for trigger in _triggers({"spec": scaled}, "prometheus"):
            query = trigger["metadata"]["query"]
            assert not promql_problems(query), (name, query, promql_problems(query))
            assert trigger["metadata"]["serverAddress"].startswith("http")
        for trigger in scaled["triggers"]:
            if "authenticationRef" in trigger:
                _find(documents, "TriggerAuthentication", trigger["authenticationRef"]["name"])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_consumers_scale_on_queue_depth_and_age_and_intake_on_cpu_and_requests(overlay):
    documents = built(overlay)
    ages = {"routing": "lapor_outbox_oldest_age_seconds",
            "notify": "lapor_notify_oldest_pending_age_seconds"}
    for name, age in ages.items():
        scaled = _find(documents, "ScaledObject", name)
        (queue,) = _triggers(scaled, "rabbitmq")
        assert queue["metadata"]["queueName"] == QUEUES[name].name
        assert queue["metadata"]["mode"] == "QueueLength"
        assert float(queue["metadata"]["value"]) > 0
        assert any(age in t["metadata"]["query"] for t in _triggers(scaled, "prometheus")), name
    intake = _find(documents, "ScaledObject", "intake")
    assert _triggers(intake, "cpu")
    assert any("lapor_http_requests_total" in t["metadata"]["query"]
               for t in _triggers(intake, "prometheus"))
    auth = _find(documents, "TriggerAuthentication", "lapor-rabbitmq")["spec"]
    assert {"parameter": "host", "name": "lapor-secrets", "key": "keda-rabbitmq-url"} in auth[
        "secretTargetRef"]
    example = yaml.safe_load((K8S / "base" / "secret.example.yaml").read_text())
    assert "keda-rabbitmq-url" in example["stringData"]


def test_production_scales_further_than_dev_and_never_below_two():
    for name in SERVICES:
        dev = _find(built("dev"), "ScaledObject", name)["spec"]
        production = _find(built("production"), "ScaledObject", name)["spec"]
        assert production["minReplicaCount"] >= 2, name
        assert production["maxReplicaCount"] > dev["maxReplicaCount"], name
        budget = _find(built("production"), "PodDisruptionBudget", name)["spec"]
        assert budget.get("maxUnavailable", 0) >= 1, name


# --- PostgreSQL -------------------------------------------------------------------------

def test_production_archives_wal_and_takes_scheduled_backups_to_object_storage():
    documents = built("production")
    cluster = _find(documents, "Cluster", "postgres")["spec"]
    store = cluster["backup"]["barmanObjectStore"]
    assert store["destinationPath"].startswith("s3://")
    credentials = store["s3Credentials"]
    for key in ("accessKeyId", "secretAccessKey"):
        assert credentials[key]["name"] == "postgres-backup-s3", key
    example = yaml.safe_load(
        (K8S / "overlays" / "production" / "backup-credentials.example.yaml").read_text())
    assert example["metadata"]["name"] == "postgres-backup-s3"
    assert {credentials[k]["key"] for k in ("accessKeyId", "secretAccessKey")} <= set(
        example["stringData"])
    assert not _of_kind(documents, "Secret"), "a Secret is committed"
    assert store["wal"]["compression"]
    assert cluster["backup"]["retentionPolicy"]
    (scheduled,) = _of_kind(documents, "ScheduledBackup")
    assert scheduled["spec"]["cluster"]["name"] == "postgres"
    assert scheduled["spec"]["method"] == "barmanObjectStore"
    assert cluster["instances"] >= 3


def test_dev_runs_one_database_instance_without_backups():
    documents = built("dev")
    cluster = _find(documents, "Cluster", "postgres")["spec"]
    assert cluster["instances"] == 1 and "backup" not in cluster
    assert not _of_kind(documents, "ScheduledBackup")


def _yaml_blocks(markdown: str) -> list[dict]:
    blocks = re.findall(r"```yaml\n(.*?)```", markdown, flags=re.S)
    return [d for block in blocks for d in yaml.safe_load_all(block) if isinstance(d, dict)]


def test_the_restore_recipe_is_a_valid_recovery_cluster():
    pytest.importorskip("jsonschema", reason="pip install jsonschema")
    docs = (ROOT / "docs" / "kubernetes.md").read_text()
    clusters = [d for d in _yaml_blocks(docs) if d.get("kind") == "Cluster"]
    recovery = [c for c in clusters if "recovery" in c["spec"].get("bootstrap", {})]
    assert recovery, "docs/kubernetes.md has no Cluster with bootstrap.recovery"
    assert any("recoveryTarget" in c["spec"]["bootstrap"]["recovery"] for c in recovery), (
        "no point-in-time example")
    production = _find(built("production"), "Cluster", "postgres")["spec"]["backup"]
    for cluster in recovery:
        source = cluster["spec"]["bootstrap"]["recovery"]["source"]
        (external,) = [e for e in cluster["spec"]["externalClusters"] if e["name"] == source]
        store = external["barmanObjectStore"]
        assert store["destinationPath"] == production["barmanObjectStore"]["destinationPath"]
        # The original cluster's name is the folder the backups are under.
        assert store["serverName"] == "postgres"
        assert not _crd_problems(cluster), _crd_problems(cluster)


# --- RabbitMQ users ---------------------------------------------------------------------

def _matches(pattern: str, name: str) -> bool:
    # RabbitMQ searches (re:run), it does not match the whole name: hence the anchors.
    return re.search(pattern, name) is not None


def _all_queues(spec) -> list[str]:
    return [spec.name, spec.parking_queue,
            *(spec.retry_queue(n) for n in range(1, len(spec.retry_delays_ms) + 1))]


def test_each_service_has_its_own_broker_user_with_least_permissions():
    documents = built("production")
    every_queue = [q for spec in QUEUES.values() for q in _all_queues(spec)]
    for name in SERVICES:
        _find(documents, "User", f"lapor-{name}")
        permission = _find(documents, "Permission", f"lapor-{name}")["spec"]
        assert permission["userReference"]["name"] == f"lapor-{name}"
        assert permission["vhost"] == "/"
        allowed = permission["permissions"]
        for regex in allowed.values():
            assert regex.startswith("^") and regex.endswith("$"), regex
        # Every process declares the whole topology (messaging.declare_topology).
        for queue in [EXCHANGE, *every_queue]:
            assert _matches(allowed["configure"], queue), (name, "configure", queue)
        # Publish to the exchange and, for retries, through the default exchange; bind the
        # three consumer queues.
        for target in [EXCHANGE, "amq.default", *(s.name for s in QUEUES.values())]:
            assert _matches(allowed["write"], target), (name, "write", target)
        own = QUEUES[name]
        for target in [EXCHANGE, own.name, own.parking_queue]:
            assert _matches(allowed["read"], target), (name, "read", target)
        for other, spec in QUEUES.items():
            if other != name:
                for queue in _all_queues(spec):
                    assert not _matches(allowed["read"], queue), (name, "reads", queue)
        assert not _matches(allowed["configure"], "unrelated.queue")
        deployment = _find(documents, "Deployment", name)
        env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0][
            "env"]}
        assert env["LAPOR_AMQP_URL"]["valueFrom"]["secretKeyRef"] == {
            "name": "lapor-secrets", "key": f"{name}-amqp-url"}
    keda = _find(documents, "Permission", "lapor-keda")["spec"]["permissions"]
    for regex in keda.values():
        assert not any(_matches(regex, q) for q in [EXCHANGE, *every_queue]), regex
    assert _find(documents, "User", "lapor-keda")["spec"]["tags"] == ["monitoring"]


# --- network policies -------------------------------------------------------------------

@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_intake_faces_outside_and_routing_grpc_answers_intake_only(overlay):
    documents = built(overlay)
    policies = {p["metadata"]["name"]: p["spec"] for p in _of_kind(documents, "NetworkPolicy")}
    open_rules = [(name, rule) for name, spec in policies.items()
                  for rule in spec.get("ingress", []) if not rule.get("from")]
    assert [name for name, _ in open_rules] == ["intake"], open_rules
    assert [p["port"] for _, rule in open_rules for p in rule["ports"]] == ["http"]
    routing = policies["routing"]
    grpc_rules = [r for r in routing["ingress"]
                  if any(p["port"] in ("grpc", 50051) for p in r["ports"])]
    assert grpc_rules and all(
        r["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "intake"}}}]
        for r in grpc_rules), grpc_rules
    for name in SERVICES:
        assert policies[name]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": name}


# --- Jobs -------------------------------------------------------------------------------

def _pod(job: dict) -> dict:
    return job["spec"]["template"]["spec"]


def test_one_migration_job_per_service_runs_the_migrations_cli():
    documents = built("jobs")
    for name in SERVICES:
        job = _find(documents, "Job", f"migrate-{name}")
        (container,) = _pod(job)["containers"]
        assert container["command"] == ["python", "-m", "services.infra.migrations", name,
                                        "upgrade"]
        assert re.fullmatch(rf"lapor/{name}:[\w.-]+", container["image"]), container["image"]
        env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
        assert env == {f"{name.upper()}_DATABASE_URL": {"name": "lapor-secrets",
                                                        "key": f"{name}-database-url"}}


def test_the_directory_job_imports_regions_into_both_services_then_loads_the_directory():
    job = _find(built("jobs"), "Job", "directory-import")
    pod = _pod(job)
    (intake,) = pod["initContainers"]
    assert intake["image"].startswith("lapor/intake:")
    assert intake["command"][:4] == ["python", "-m", "services.intake", "import-regions"]
    (routing,) = pod["containers"]
    assert routing["image"].startswith("lapor/routing:")
    script = routing["command"][-1]
    steps = ["services.routing import-regions", "services.routing directory generate",
             "services.routing directory load"]
    positions = [script.index(step) for step in steps]
    assert positions == sorted(positions), script
    (data,) = [v for v in pod["volumes"] if v["name"] == "data"]
    assert data["persistentVolumeClaim"]["claimName"] == "lapor-directory-data"


def test_jobs_are_locked_down_and_bounded():
    for job in _of_kind(built("jobs"), "Job"):
        name = job["metadata"]["name"]
        pod = _pod(job)
        assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] <= 3, name
        assert job["spec"]["activeDeadlineSeconds"] and job["spec"]["ttlSecondsAfterFinished"]
        assert pod["automountServiceAccountToken"] is False, name
        for container in pod["containers"] + pod.get("initContainers", []):
            context = {**pod["securityContext"], **container["securityContext"]}
            assert context["runAsNonRoot"] is True and context["readOnlyRootFilesystem"], name
            assert context["allowPrivilegeEscalation"] is False, name
            assert "ALL" in context["capabilities"]["drop"], name
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
    (policy,) = _of_kind(built("jobs"), "NetworkPolicy")
    assert policy["spec"]["ingress"] == [] and "Ingress" in policy["spec"]["policyTypes"]


def test_jobs_use_the_same_image_tags_as_the_base():
    def tags(path: Path) -> dict:
        kustomization = yaml.safe_load((path / "kustomization.yaml").read_text())
        return {i["name"]: i["newTag"] for i in kustomization["images"]}

    assert tags(K8S / "jobs") == tags(K8S / "base")
