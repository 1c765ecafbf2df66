"""The one Dockerfile, as `docker build --build-arg SERVICE=<service> .` reads it.

Docker does not run here, so the file is read with dockerfile-parse (the parser OpenShift's
build system uses) and the image each SERVICE selects is followed stage by stage: its user,
ports, healthcheck and entrypoint, checked against docker-compose.yml and deploy/k8s, which
must agree with it.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
SERVICES = ("intake", "routing", "notify")
UID = "10001"

# What each service's image must declare: work and ops ports, and what its healthcheck probes.
EXPOSED = {"intake": {8080, 9100}, "routing": {50051, 9101}, "notify": {9102}}
HEALTHCHECK_URL = {"intake": "http://127.0.0.1:9100/healthz",
                   "routing": "grpc://127.0.0.1:50051",
                   "notify": "http://127.0.0.1:9102/healthz"}
MODEL_BUILD = "python -m services.routing model build --no-corrections --out /opt/lapor-model"
# python:<3.11.x>-slim-bookworm@sha256:<digest>: a patch release, and the bytes behind it.
PINNED_BASE = re.compile(r"^python:(3\.\d+\.\d+)-slim-bookworm@sha256:[0-9a-f]{64}$")


def _parser(service: str | None = None) -> DockerfileParser:
    # env_replace substitutes ARG/ENV values as the builder would (global ARGs in FROM).
    return DockerfileParser(str(DOCKERFILE), build_args={"SERVICE": service} if service else {},
                            env_replace=True)


def _stages(parser: DockerfileParser) -> dict[str, dict]:
    """Stage name -> {"parent": what its FROM names, "instructions": [(name, value), ...]}.
    The unnamed last stage is "" (the image the build produces)."""
    stages: dict[str, dict] = {}
    current = None
    # parent_images: each FROM's image with the build arguments substituted, in order.
    parents = iter(parser.parent_images)
    for item in parser.structure:
        instruction, value = item["instruction"], item["value"]
        if instruction == "FROM":
            parts = value.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else ""
            current = stages[name] = {"parent": next(parents), "instructions": []}
        elif current is not None and instruction != "COMMENT":
            current["instructions"].append((instruction, value))
    return stages


def _chain(service: str) -> list[tuple[str, str]]:
    """The instructions that make `service`'s image, from the base image's stage to the last
    line, in order: what the builder applies to the final image."""
    parser = _parser(service)
    stages = _stages(parser)
    chain, name = [], ""
    while name in stages:
        chain = stages[name]["instructions"] + chain
        name = stages[name]["parent"]
    return chain


def _last(chain: list[tuple[str, str]], instruction: str) -> str | None:
    values = [v for i, v in chain if i == instruction]
    return values[-1] if values else None


def _env(chain: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction, value in chain:
        if instruction == "ENV":
            env.update(dict(item.split("=", 1) for item in shlex.split(value)))
    return env


def _compose_services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_the_per_service_dockerfiles_are_gone():
    leftovers = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "services").glob("*/Dockerfile"))
    assert not leftovers, f"one Dockerfile at the root builds every service: {leftovers}"


def test_base_image_is_pinned_to_a_patch_release_and_digest():
    parser = _parser("intake")
    external = [image for image in parser.parent_images if image not in _stages(parser)]
    assert external, "no base image"
    versions = set()
    for image in external:
        match = PINNED_BASE.match(image)
        assert match, f"{image} is not python:<x.y.z>-slim-bookworm@sha256:<digest>"
        versions.add(match.group(1))
    assert len(set(external)) == 1, f"every stage starts from the same base: {set(external)}"
    # The interpreter the project declares (pyproject's requires-python) and tests on.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    minimum = re.search(r">=\s*(\d+)\.(\d+)", project["requires-python"]).groups()
    (version,) = versions
    assert tuple(int(n) for n in version.split(".")[:2]) >= tuple(int(n) for n in minimum)
    assert version.startswith("3.11."), version


@pytest.mark.parametrize("service", SERVICES)
def test_service_builds_its_own_stage(service):
    parser = _parser(service)
    assert parser.baseimage == f"service-{service}"
    assert f"service-{service}" in _stages(parser)
    assert parser.labels.get("org.opencontainers.image.title") == f"lapor-{service}"


def test_a_build_without_service_stops_with_a_message():
    parser = _parser()
    stages = _stages(parser)
    assert parser.baseimage == "service-unset", "a missing SERVICE must not build an image"
    check = stages["service-unset"]["instructions"]
    script = " ".join(value for instruction, value in check if instruction == "RUN")
    assert "exit 1" in script and "--build-arg SERVICE=" in script
    assert re.search(r"intake\|routing\|notify\)\s*;;", script), (
        "the check must let exactly the three services through")


@pytest.mark.parametrize("service", SERVICES)
def test_image_runs_as_the_unprivileged_lapor_user(service):
    chain = _chain(service)
    user = _last(chain, "USER")
    assert user == f"{UID}:{UID}", f"{service} runs as {user!r}"
    creates = " ".join(value for instruction, value in chain if instruction == "RUN")
    assert f"--uid {UID}" in creates and f"--gid {UID}" in creates
    # Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
    path = ROOT / "deploy" / "k8s" / "base" / f"{service}.yaml"
    manifest = yaml.safe_load_all(path.read_text())
    deployment = next(d for d in manifest if d and d.get("kind") == "Deployment")
    security = deployment["spec"]["template"]["spec"].get("securityContext", {})
    if "runAsUser" in security:
        assert str(security["runAsUser"]) == UID


@pytest.mark.parametrize("service", SERVICES)
def test_image_exposes_and_probes_its_own_ports(service):
    chain = _chain(service)
    exposed = {int(p.split("/")[0]) for i, v in chain if i == "EXPOSE" for p in v.split()}
    assert exposed == EXPOSED[service], (service, exposed)
    healthcheck = _last(chain, "HEALTHCHECK")
    command = json.loads(healthcheck.split("CMD", 1)[1])
    assert command == ["python", "-m", "services.infra.healthcheck", HEALTHCHECK_URL[service]]
    assert int(HEALTHCHECK_URL[service].rsplit(":", 1)[1].split("/")[0]) in exposed


@pytest.mark.parametrize("service", SERVICES)
def test_image_starts_its_own_service_without_a_shell(service):
    entrypoint = json.loads(_last(_chain(service), "ENTRYPOINT"))
    assert entrypoint == ["python", "-m", f"services.{service}"]


@pytest.mark.parametrize("service", SERVICES)
def test_image_listens_where_compose_and_kubernetes_connect(service):
    env = _env(_chain(service))
    compose_env = _compose_services()[service].get("environment") or {}
    ours = {k: v for k, v in env.items() if k.startswith(f"{service.upper()}_")}
    assert ours, f"{service}'s image sets none of its listen variables"
    for name, value in ours.items():
        if name in compose_env:
            assert str(compose_env[name]) == value, (service, name)
        if name.endswith(("_HOST", "_LISTEN")):
            assert value.startswith("0.0.0.0"), (service, name, value)
    # Only its own: another service's settings in this image would be dead weight or a trap.
    others = {k for k in env if k.split("_", 1)[0].lower() in set(SERVICES) - {service}}
    assert not others, (service, others)


def test_routing_carries_the_classifier_built_at_image_build():
    chain = _chain("routing")
    assert ("COPY", "--from=model /opt/lapor-model /opt/lapor-model") in chain
    assert _env(chain)["ROUTING_MODEL_DIR"] == "/opt/lapor-model"
    stages = _stages(_parser("routing"))
    model_runs = " ".join(v for i, v in stages["model"]["instructions"] if i == "RUN")
    assert MODEL_BUILD in " ".join(model_runs.split())
    assert "mkdir -p /run/lapor" in " ".join(v for i, v in chain if i == "RUN")


@pytest.mark.parametrize("service", ("intake", "notify"))
def test_only_routing_carries_the_model(service):
    chain = _chain(service)
    assert not [v for i, v in chain if i == "COPY" and "lapor-model" in v], service
    assert "ROUTING_MODEL_DIR" not in _env(chain)


def test_the_shared_venv_does_not_depend_on_service():
    # So the three builds reuse one cached pip install instead of three.
    stages = _stages(_parser("intake"))
    venv = stages["venv"]["instructions"]
    assert ("RUN", "pip install --no-cache-dir -c constraints.txt .") in venv
    assert not [v for i, v in venv if i == "ARG"], "SERVICE in the venv stage splits its cache"


def test_build_context_admits_what_the_dockerfile_copies():
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    parser = _parser("routing")
    for instruction, value in _stages(parser)["venv"]["instructions"]:
        if instruction == "COPY" and not value.startswith("--from"):
            for source in value.split()[:-1]:
                assert source.rstrip("/") in allowed, f"{source} is left out of the context"
