"""Checks of deploy/compose.yml, the Traefik files and the service Dockerfiles, by parsing them.

No image is built and no container started here (no Docker engine: deploy/ci/compose-smoke.sh builds and runs them
under podman). What it catches: YAML that does not parse, a service without a Dockerfile or healthcheck, a stage
that does not exist, GPU reservations in the wrong place. Kubernetes: tests/test_deploy_k8s.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"

# Our processes: compose service name → gRPC port (None: not a gRPC server).
THERASCRIPT_SERVICES = {
    "gateway": None, "sessions": 50051, "transcriber": None, "chat": 50052,
    "analysis": 50053, "llm-manager": 50054, "ops": 50055,
}
GPU_SERVICES = {"transcriber", "llm-manager"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yml").read_text())


# --- compose ----------------------------------------------------------------------------------------------------

def test_compose_has_every_part_of_the_system(compose) -> None:
    expected = set(THERASCRIPT_SERVICES) | {"traefik", "redis", "elasticsearch", "postgres"}
    assert expected <= set(compose["services"])


@pytest.mark.parametrize("name", sorted(THERASCRIPT_SERVICES))
def test_every_compose_service_of_ours_is_built_from_an_existing_dockerfile(compose, name) -> None:
    build = compose["services"][name]["build"]
    dockerfile = (DEPLOY / build["context"] / build["dockerfile"]).resolve()
    assert dockerfile.is_file(), f"{name}: {dockerfile.relative_to(ROOT)} does not exist"
    if "target" in build:
        assert re.search(rf"^FROM .+ AS {re.escape(build['target'])}$", dockerfile.read_text(), re.M | re.I), \
            f"{name}: no stage {build['target']!r} in {dockerfile.name}"


@pytest.mark.parametrize("name", ["traefik", "redis", "elasticsearch", "postgres", "analysis-worker",
                                  *sorted(THERASCRIPT_SERVICES)])
def test_every_compose_service_has_a_healthcheck(compose, name) -> None:
    test = compose["services"][name]["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1


@pytest.mark.parametrize("name,port", [(n, p) for n, p in THERASCRIPT_SERVICES.items() if p])
def test_grpc_services_are_probed_with_grpc_health_on_their_port(compose, name, port) -> None:
    assert compose["services"][name]["healthcheck"]["test"] == ["CMD", "therascript-healthcheck", "grpc", str(port)]


def test_gpu_services_reserve_an_nvidia_gpu_and_the_others_do_not(compose) -> None:
    for name, service in compose["services"].items():
        devices = service.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
        if name in GPU_SERVICES:
            assert devices and devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"], name
        else:
            assert not devices, f"{name} should not reserve a GPU"


def test_ops_reads_the_docker_socket_read_only(compose) -> None:
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in compose["services"]["ops"]["volumes"]


def test_stateful_services_keep_data_in_named_volumes(compose) -> None:
    for name in ["sessions", "transcriber", "chat", "analysis", "llm-manager", "ops", "redis", "elasticsearch",
                 "postgres"]:
        volumes = [v.split(":")[0] for v in compose["services"][name]["volumes"]]
        assert any(v in compose["volumes"] for v in volumes), f"{name} has no named volume"
    assert "--appendonly" in compose["services"]["redis"]["command"]
    assert compose["services"]["postgres"]["profiles"] == ["postgres"]


def test_only_traefik_publishes_a_port_and_the_backend_network_is_internal(compose) -> None:
    published = [name for name, service in compose["services"].items() if service.get("ports")]
    assert published == ["traefik"]
    assert compose["networks"]["backend"]["internal"] is True


def render_traefik_template(text: str) -> str:
    """deploy/traefik/dynamic.yml as Traefik renders it with no EDGE_* variable set: each
    `{{ env "NAME" | default "VALUE" }}` becomes VALUE (the file is a Go template)."""
    rendered = re.sub(r'\{\{ env "[A-Z_]+" \| default "([^"]*)" \}\}', r"\1", text)
    assert "{{" not in rendered, "a template expression this test does not know"
    return rendered


def test_traefik_routes_api_to_the_gateway_with_an_upload_body_limit() -> None:
    static = yaml.safe_load((DEPLOY / "traefik" / "traefik.yml").read_text())
    dynamic = yaml.safe_load(render_traefik_template((DEPLOY / "traefik" / "dynamic.yml").read_text()))["http"]
    assert static["providers"]["file"]["filename"].endswith("dynamic.yml")
    routers = dynamic["routers"]
    assert "PathPrefix(`/api`)" in routers["api"]["rule"] and routers["api"]["service"] == "gateway"
    upload = routers["api-upload"]
    assert "/api/sessions/upload" in upload["rule"] and upload["priority"] > 0
    limit = dynamic["middlewares"][upload["middlewares"][0]]["buffering"]["maxRequestBodyBytes"]
    assert 1024**3 <= limit <= 1024**3 + 16 * 1024**2
    assert dynamic["services"]["gateway"]["loadBalancer"]["servers"][0]["url"] == "http://gateway:3001"
    # Nothing that could carry clinical text in the access log: no query strings, no headers (bodies never are).
    fields = static["accessLog"]["fields"]
    assert fields["queryParameters"]["defaultMode"] == "drop" and fields["headers"]["defaultMode"] == "drop"


# --- Dockerfiles ------------------------------------------------------------------------------------------------

BASE_DOCKERFILE = DEPLOY / "images" / "base.Dockerfile"
SERVICE_DOCKERFILES = ["gateway", "sessions", "analysis", "ops", "chat", "llm-manager"]


def stages(path: Path) -> dict[str, str]:
    """Stage name (or its index when unnamed) → the stage's text, FROM line first."""
    parts = re.split(r"^(?=FROM )", path.read_text(), flags=re.M)[1:]
    out = {}
    for index, part in enumerate(parts):
        match = re.match(r"FROM \S+(?: AS (\S+))?", part)
        assert match, part.splitlines()[0]
        out[match.group(1) or str(index)] = part
    return out


def test_the_shared_base_pins_python_generates_the_stubs_and_makes_the_non_root_user() -> None:
    text = BASE_DOCKERFILE.read_text()
    assert re.search(r"^ARG PYTHON_IMAGE=docker\.io/library/python:3\.11-slim-bookworm$", text, re.M)
    base = stages(BASE_DOCKERFILE)
    assert set(base) == {"build", "runtime"} and all(s.startswith("FROM ${PYTHON_IMAGE}") for s in base.values())
    assert "proto/generate.py" in base["build"] and "grpcio-tools==" in base["build"]
    assert "grpcio-tools" not in base["runtime"] and "--uid 10001" in base["runtime"]
    assert "therascript-healthcheck" in base["runtime"]


@pytest.mark.parametrize("service", SERVICE_DOCKERFILES)
def test_service_dockerfiles_build_on_the_shared_base_non_root_with_a_healthcheck(service) -> None:
    path = ROOT / "services" / service / "Dockerfile"
    text = path.read_text()
    assert "ARG BASE_BUILD=therascript/base-build:dev" in text and "ARG BASE_RUNTIME=therascript/base-runtime:dev" in text
    froms = re.findall(r"^FROM (\S+)", text, re.M)
    assert set(froms) <= {"${BASE_BUILD}", "${BASE_RUNTIME}", *stages(path)}, f"{service}: {froms}"
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert "proto/generate.py" not in code and "grpcio-tools" not in code   # the base did that, once
    # No BuildKit-only syntax: buildah 1.28 (podman 4.3) builds these too.
    assert not re.search(r"<<\s*['\"]?[A-Z]+", text) and "--link" not in text
    finals = [stage for stage in stages(path).values() if re.search(r"^CMD ", stage, re.M)]
    assert finals, service
    for stage in finals:
        users = re.findall(r"^USER (\S+)", stage, re.M)
        assert users and users[-1] == "10001", f"{service}: {stage.splitlines()[0]}"
        assert re.search(r'^HEALTHCHECK .*CMD \["therascript-healthcheck", "(grpc|http|rq-worker)"', stage, re.M | re.S)
        assert re.search(r"^COPY --from=\S+ /opt/venv /opt/venv$", stage, re.M), "the runtime starts from a built venv"


def test_torch_is_only_in_the_transcriber_image_and_its_compiler_is_purged_in_the_same_layer() -> None:
    """The transcriber installs its ~6.6 GB venv in its own final stage (one layer: a build stage copied in held it
    on disk three times while committing, which ran CI out of disk); the gcc it needs for webrtcvad must be purged
    in the RUN that installs it, or the compiler stays in a layer of the image."""
    sessions = stages(ROOT / "services" / "sessions" / "Dockerfile")
    assert [name for name, stage in sessions.items() if "[transcriber]" in stage] == ["transcriber"]
    runs = [run for run in re.split(r"^(?=[A-Z]+ )", sessions["transcriber"], flags=re.M) if run.startswith("RUN ")]
    installing = [run for run in runs if "[transcriber]" in run]
    assert len(installing) == 1 and "install -y --no-install-recommends gcc" in installing[0]
    assert re.search(r"apt-get purge -y --auto-remove gcc", installing[0]), installing[0]
    assert "--from=build-sessions" in sessions["sessions"] and "transcriber" not in sessions["sessions"].split("\n", 1)[1]
    assert list(sessions)[-1] == "sessions"   # a plain `docker build` gives the gRPC server


# --- compose environment against the services' settings --------------------------------------------------------

COMPOSE_PREFIX = {"gateway": ("gateway", "THERASCRIPT_"), "sessions": ("sessions", "SESSIONS_"),
                  "transcriber": ("sessions", "SESSIONS_"), "chat": ("chat", "CHAT_"),
                  "analysis": ("analysis", "ANALYSIS_"), "analysis-worker": ("analysis", "ANALYSIS_"),
                  "llm-manager": ("llm-manager", "LLM_"), "ops": ("ops", "OPS_")}


@pytest.mark.parametrize("name", sorted(COMPOSE_PREFIX))
def test_every_compose_env_name_is_a_setting_of_that_service(compose, name) -> None:
    """Before: LOG_LEVEL (read by nobody: env_prefix applies to ServiceSettings.log_level), SESSIONS_/CHAT_
    ELASTICSEARCH_URL and LLM_REDIS_URL (no such settings) were set and silently ignored."""
    from test_deploy_k8s import LIBRARY_ENV, env_names, settings_class

    package, prefix = COMPOSE_PREFIX[name]
    known = env_names(settings_class(package))
    for key in compose["services"][name]["environment"]:
        assert key in LIBRARY_ENV or key in known, f"{name}: {key} is not a {prefix} setting"
    for key, value in compose["services"][name]["environment"].items():
        if key.endswith("_TARGET"):
            host, _, port = value.rpartition(":")
            assert host in compose["services"], f"{name}: {key} → {host}, no such compose service"
            target_port = THERASCRIPT_SERVICES.get(host)
            assert target_port == int(port), f"{name}: {key} → {value}, but {host} serves {target_port}"


def test_compose_elasticsearch_is_the_version_the_local_run_uses() -> None:
    compose_image = yaml.safe_load((DEPLOY / "compose.yml").read_text())["services"]["elasticsearch"]["image"]
    local = re.search(r'^VERSION = "([\d.]+)"', (ROOT / "scripts" / "elasticsearch_local.py").read_text(), re.M)
    assert local and compose_image.endswith(f":{local.group(1)}")
