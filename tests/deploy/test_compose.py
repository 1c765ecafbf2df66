"""docker-compose.yml as someone running `docker-compose up` relies on it.

The file is checked the way Compose itself reads it (`docker-compose config`, Debian's v1
binary), so anchors, merges and interpolation are resolved before anything is asserted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
SERVICES = ("intake", "routing", "notify")

# What each service reads from its environment (DESIGN §8 and the services' config). A name
# outside this list is a typo the service would silently ignore, falling back to a default.
KNOWN_ENV = {
    "intake": {"INTAKE_HOST", "INTAKE_PORT", "INTAKE_METRICS_HOST", "INTAKE_METRICS_PORT",
               "INTAKE_DATABASE_URL", "LAPOR_AMQP_URL", "ROUTING_ADDR",
               "LAPOR_SHUTDOWN_SECONDS", "INTAKE_ROUTING_TOKEN_FILE", "INTAKE_TRUSTED_PROXIES",
               "INTAKE_SMS_GATEWAY_SECRET", "INTAKE_WHATSAPP_GATEWAY_SECRET",
               "LAPOR_ATTACHMENT_LINK_SECRET"},
    "routing": {"ROUTING_LISTEN", "ROUTING_METRICS_HOST", "ROUTING_METRICS_PORT",
                "ROUTING_DATABASE_URL", "LAPOR_AMQP_URL", "ROUTING_SEED_DEMO",
                "LAPOR_SHUTDOWN_SECONDS"},
    "notify": {"NOTIFY_METRICS_HOST", "NOTIFY_METRICS_PORT", "NOTIFY_DATABASE_URL",
               "LAPOR_AMQP_URL", "NOTIFY_SMTP_URL", "NOTIFY_MAIL_FROM", "LAPOR_PUBLIC_URL",
               "LAPOR_SHUTDOWN_SECONDS", "NOTIFY_INTAKE_PUBLIC_URL",
               "LAPOR_ATTACHMENT_LINK_SECRET", "NOTIFY_SMS_GATEWAY_URL",
               "NOTIFY_SMS_GATEWAY_AUTH", "NOTIFY_WHATSAPP_GATEWAY_URL",
               "NOTIFY_WHATSAPP_GATEWAY_AUTH"},
}
DATABASE_URL_VAR = {s: f"{s.upper()}_DATABASE_URL" for s in SERVICES}
# Where each service answers /metrics and /healthz: its own ops port, apart from its work.
METRICS_PORT_VAR = {s: f"{s.upper()}_METRICS_PORT" for s in SERVICES}


def _run_compose(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose is not installed (Debian package docker-compose; CI "
                    "installs it)")
    # The documented defaults are what is under test, not whatever this shell overrides.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    return subprocess.run(
        [binary, "--file", str(COMPOSE_FILE), "--project-directory", str(ROOT), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def config() -> dict:
    result = _run_compose("config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def services(config) -> dict:
    return config["services"]


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def _published_ports(service: dict) -> list[tuple[str | None, int]]:
    """(host port or None, container port) for each `ports` entry, short or long syntax."""
    found = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            published = entry.get("published")
            found.append((None if published is None else str(published), int(entry["target"])))
        else:
            spec = str(entry).split("/", 1)[0]
            parts = spec.split(":")
            host = parts[-2] if len(parts) >= 2 else None
            found.append((host, int(parts[-1])))
    return found


def _mounts(service: dict) -> dict[str, str]:
    """Container path -> host path for every bind mount of a service."""
    mounts = {}
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            mounts[volume["target"]] = volume.get("source", "")
        else:
            source, target = str(volume).split(":")[:2]
            mounts[target] = source
    return mounts


def test_compose_file_is_valid():
    result = _run_compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_lapor_services_have_healthchecks(services):
    for name in SERVICES:
        check = services[name].get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no healthcheck"
        test = check["test"]
        command = " ".join(test if isinstance(test, list) else [test])
        assert "services.infra.healthcheck" in command, (name, command)


def test_healthchecks_probe_the_port_the_service_listens_on(services):
    expected = {
        "intake": "http://127.0.0.1:"
        f"{_env(services['intake'])['INTAKE_METRICS_PORT']}/healthz",
        "routing": "grpc://127.0.0.1:" + _env(services["routing"])["ROUTING_LISTEN"]
        .rsplit(":", 1)[1],
        "notify": "http://127.0.0.1:"
        f"{_env(services['notify'])['NOTIFY_METRICS_PORT']}/healthz",
    }
    for name, url in expected.items():
        assert url in services[name]["healthcheck"]["test"], (name, url)


def test_lapor_services_wait_for_a_healthy_broker_and_database(services):
    for name in SERVICES:
        depends = services[name].get("depends_on") or {}
        for dependency in ("rabbitmq", "postgres"):
            assert dependency in depends, f"{name} does not wait for {dependency}"
            assert depends[dependency].get("condition") == "service_healthy", (name, dependency)
    rabbit_check = " ".join(services["rabbitmq"]["healthcheck"]["test"])
    postgres_check = " ".join(services["postgres"]["healthcheck"]["test"])
    assert "rabbitmq-diagnostics -q ping" in rabbit_check
    assert "pg_isready" in postgres_check


def test_every_service_dependency_exists_and_can_become_healthy(services):
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            if spec.get("condition") == "service_healthy":
                assert services[dependency].get("healthcheck"), (
                    f"{name} waits for {dependency} to be healthy, which has no healthcheck")


def test_each_service_gets_its_own_postgres_database(services):
    init_sql = (DEPLOY / "postgres" / "init.sql").read_text()
    created = set(re.findall(r"CREATE DATABASE\s+(\w+)", init_sql, flags=re.IGNORECASE))
    databases = set()
    for name in SERVICES:
        url = urlsplit(_env(services[name])[DATABASE_URL_VAR[name]])
        assert url.scheme == "postgresql", (name, url.geturl())
        assert url.hostname == "postgres" and (url.port or 5432) == 5432, url.geturl()
        database = url.path.lstrip("/")
        assert database == f"lapor_{name}", (name, database)
        assert database in created, f"deploy/postgres/init.sql does not create {database}"
        databases.add(database)
    assert len(databases) == len(SERVICES)
    init_mounts = {target: source for target, source in _mounts(services["postgres"]).items()
                   if target.startswith("/docker-entrypoint-initdb.d/")}
    assert any(Path(source).resolve() == DEPLOY / "postgres" / "init.sql"
               for source in init_mounts.values()), init_mounts


def test_database_credentials_match_the_postgres_container(services):
    postgres_env = _env(services["postgres"])
    for name in SERVICES:
        url = urlsplit(_env(services[name])[DATABASE_URL_VAR[name]])
        assert url.username == postgres_env["POSTGRES_USER"], name
        assert url.password == postgres_env.get("POSTGRES_PASSWORD"), name


def _rabbit_password_matches(password_hash: str, password: str) -> bool:
    raw = base64.b64decode(password_hash)
    salt, digest = raw[:4], raw[4:]
    return hashlib.sha256(salt + password.encode()).digest() == digest


def test_services_log_in_to_the_broker_as_a_user_the_definitions_create(services):
    definitions = json.loads((DEPLOY / "rabbitmq" / "definitions.json").read_text())
    users = {user["name"]: user for user in definitions["users"]}
    for name in SERVICES:
        url = urlsplit(_env(services[name])["LAPOR_AMQP_URL"])
        assert url.scheme == "amqp" and url.hostname == "rabbitmq", (name, url.geturl())
        assert url.username in users, f"{name} logs in as {url.username}, not defined"
        user = users[url.username]
        assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
        assert _rabbit_password_matches(user["password_hash"], url.password), (
            f"{name}'s broker password does not match definitions.json")
        granted = {p["vhost"] for p in definitions["permissions"] if p["user"] == url.username}
        assert "/" in granted


def test_broker_loads_the_definitions_it_is_given(services):
    mounts = _mounts(services["rabbitmq"])
    conf = (DEPLOY / "rabbitmq" / "rabbitmq.conf").read_text()
    load = re.search(r"^load_definitions\s*=\s*(\S+)", conf, flags=re.MULTILINE)
    assert load, "rabbitmq.conf does not load definitions"
    assert Path(mounts[load.group(1)]).resolve() == DEPLOY / "rabbitmq" / "definitions.json"
    conf_targets = [t for t in mounts if t.startswith("/etc/rabbitmq/conf.d/")]
    assert [Path(mounts[t]).resolve() for t in conf_targets] == [
        DEPLOY / "rabbitmq" / "rabbitmq.conf"]


def test_definitions_declare_the_events_exchange():
    definitions = json.loads((DEPLOY / "rabbitmq" / "definitions.json").read_text())
    exchanges = {(e["vhost"], e["name"]): e for e in definitions["exchanges"]}
    events = exchanges[("/", "lapor.events")]
    assert events["type"] == "topic"
    assert events["durable"] is True and events["auto_delete"] is False
    assert {"name": "/"} in [{"name": v["name"]} for v in definitions["vhosts"]]


def test_no_service_pins_a_container_name(services):
    pinned = [name for name, service in services.items() if "container_name" in service]
    assert not pinned, f"container_name prevents --scale: {pinned}"


def test_the_proxy_publishes_8080_for_every_intake_replica(services):
    proxy = services["proxy"]
    assert ("8080", 8080) in _published_ports(proxy)
    assert proxy["depends_on"]["intake"]["condition"] == "service_healthy"
    conf_path = _mounts(proxy)["/etc/nginx/conf.d/default.conf"]
    assert Path(conf_path).resolve() == DEPLOY / "proxy" / "intake.conf"
    conf = (DEPLOY / "proxy" / "intake.conf").read_text()
    intake_port = _env(services["intake"])["INTAKE_PORT"]
    assert re.search(r"^\s*listen 8080;", conf, flags=re.MULTILINE)
    # Through a variable and Docker's resolver, so replicas started later are found too.
    assert re.search(r"^\s*resolver 127\.0\.0\.11\b", conf, flags=re.MULTILINE)
    upstream = re.search(r"^\s*set \$(\w+) (\S+);", conf, flags=re.MULTILINE)
    assert upstream and upstream.group(2) == f"http://intake:{intake_port}", conf
    assert re.search(rf"^\s*proxy_pass \${upstream.group(1)};", conf, flags=re.MULTILINE)
    assert intake_port in [str(p) for p in services["intake"].get("expose", [])]


def test_intake_believes_exactly_the_proxys_forwarded_for(services):
    # Rate limits count per client: without this every citizen would share the proxy's
    # address; with more than one hop a client could write its own.
    assert _env(services["intake"]).get("INTAKE_TRUSTED_PROXIES") == "1"
    conf = (DEPLOY / "proxy" / "intake.conf").read_text()
    assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in conf


def test_proxy_config_is_accepted_by_nginx(tmp_path):
    nginx = shutil.which("nginx")
    if nginx is None:
        pytest.skip("nginx is not installed (the proxy container brings its own)")
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{ access_log off; include {DEPLOY / 'proxy' / 'intake.conf'}; }}\n")
    result = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c",
                             str(tmp_path / "nginx.conf")],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr


def _seconds(duration: str | int | float) -> float:
    """Compose's durations: "1m30s", "45s", "500ms" or a number of seconds."""
    if isinstance(duration, int | float):
        return float(duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_stop_grace_outlasts_each_services_shutdown_budget(services):
    for name in SERVICES:
        budget = float(_env(services[name])["LAPOR_SHUTDOWN_SECONDS"])
        # Compose's default of 10 s would kill every drain half way.
        grace = _seconds(services[name].get("stop_grace_period", "10s"))
        assert grace >= budget + 5, (name, grace, budget)


def test_routing_and_the_metrics_ports_stay_on_the_project_network(services):
    routing_port = int(_env(services["routing"])["ROUTING_LISTEN"].rsplit(":", 1)[1])
    assert not services["routing"].get("ports"), "routing's gRPC port is for intake only"
    assert str(routing_port) in [str(p) for p in services["routing"].get("expose", [])]
    for name in SERVICES:
        metrics_port = int(_env(services[name])[METRICS_PORT_VAR[name]])
        assert metrics_port not in [target for _, target in _published_ports(services[name])]
        assert str(metrics_port) in [str(p) for p in services[name].get("expose", [])], name


def test_lapor_services_publish_no_fixed_host_port(services):
    # `docker-compose up --scale <service>=N` starts N containers; a fixed host port lets
    # only the first one bind.
    for name in SERVICES:
        fixed = [p for p in _published_ports(services[name]) if p[0]]
        assert not fixed, f"{name} publishes {fixed}; a second replica could not start"


def test_notify_sends_mail_to_the_mailpit_sink(services):
    sinks = [name for name, s in services.items() if s.get("image", "").startswith(
        "axllent/mailpit")]
    assert sinks, "no mailpit service"
    url = urlsplit(_env(services["notify"])["NOTIFY_SMTP_URL"])
    assert url.scheme == "smtp" and url.hostname in sinks and url.port == 1025, url.geturl()
    assert ("8025" in [host for host, target in _published_ports(services[url.hostname])
                       if target == 8025]), "mailpit's web UI is not published"


def test_every_lapor_image_is_built_from_the_one_dockerfile(services):
    built = {name: s for name, s in services.items() if "build" in s}
    assert {name for name in built} >= {*SERVICES, "routing-accounts"}
    for name, service in built.items():
        build = service["build"]
        assert Path(build["context"]).resolve() == ROOT, name
        assert build.get("dockerfile") == "Dockerfile", name
        target = build.get("args", {}).get("SERVICE")
        assert target in SERVICES, f"{name} builds without a SERVICE the Dockerfile knows"
        # The image name says which service it holds: routing-accounts runs routing's.
        assert service["image"].split(":")[0] == f"lapor/{target}", (name, service["image"])
        assert name.split("-")[0] == target, (name, target)


def test_intake_reads_the_token_the_one_shot_account_job_writes(services):
    job = services["routing-accounts"]
    path = _env(services["intake"])["INTAKE_ROUTING_TOKEN_FILE"]
    assert job["command"][-1] == path and job["command"][:2] == ["accounts", "ensure-service"]
    volume = path.rsplit("/", 1)[0]
    assert any(v.endswith(f":{volume}") or volume in str(v) for v in job["volumes"])
    assert any(volume in str(v) for v in services["intake"]["volumes"])
    assert services["intake"]["depends_on"]["routing-accounts"]["condition"] == (
        "service_completed_successfully")


def test_environment_names_are_ones_the_services_read(services):
    for name in SERVICES:
        unknown = set(_env(services[name])) - KNOWN_ENV[name]
        assert not unknown, f"{name} is given variables it never reads: {sorted(unknown)}"


def test_services_listen_beyond_loopback(services):
    env = {name: _env(services[name]) for name in SERVICES}
    assert env["intake"]["INTAKE_HOST"] == "0.0.0.0"
    assert env["intake"]["INTAKE_METRICS_HOST"] == "0.0.0.0"
    assert env["routing"]["ROUTING_LISTEN"].startswith("0.0.0.0:")
    assert env["routing"]["ROUTING_METRICS_HOST"] == "0.0.0.0"
    assert env["notify"]["NOTIFY_METRICS_HOST"] == "0.0.0.0"
    routing_port = env["routing"]["ROUTING_LISTEN"].rsplit(":", 1)[1]
    assert env["intake"]["ROUTING_ADDR"] == f"routing:{routing_port}"


def test_lapor_services_run_read_only_and_unprivileged(services):
    for name in SERVICES:
        service = services[name]
        assert service.get("read_only") is True, name
        assert "/tmp" in (service.get("tmpfs") or []), name
        assert "ALL" in (service.get("cap_drop") or []), name


def test_prometheus_scrapes_every_replica_where_it_serves_metrics(services):
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in scrape["scrape_configs"]}
    for name in SERVICES:
        port = int(_env(services[name])[METRICS_PORT_VAR[name]])
        discovery = jobs[name].get("dns_sd_configs")
        assert discovery, f"{name} is not discovered by DNS, so replicas would be missed"
        assert discovery[0]["names"] == [name] and discovery[0]["port"] == port, name
    mounts = _mounts(services["prometheus"])
    assert Path(mounts["/etc/prometheus"]).resolve() == DEPLOY / "prometheus"


def test_grafana_is_provisioned_with_the_dashboard(services):
    mounts = _mounts(services["grafana"])
    assert Path(mounts["/etc/grafana/provisioning"]).resolve() == DEPLOY / "grafana" / (
        "provisioning")
    dashboards_dir = Path(mounts["/etc/grafana/dashboards"]).resolve()
    assert list(dashboards_dir.glob("*.json")), "no dashboard to provision"
    providers = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "lapor.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/etc/grafana/dashboards"
    sources = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    url = urlsplit(sources["datasources"][0]["url"])
    assert url.hostname in services and url.hostname == "prometheus"
