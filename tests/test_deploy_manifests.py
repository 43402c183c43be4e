"""Checks of deploy/ (compose, Traefik, Kubernetes) and the service Dockerfiles, by parsing them.

This is all that can run without a Docker engine or a cluster: no image is built, no container or pod started,
and `kubectl kustomize` is not run. What it catches: YAML that does not parse, a service without a Dockerfile or
healthcheck, a Deployment without probes, limits or a non-root securityContext, references that point nowhere
(PVCs, Services, ConfigMap/Secret names, kustomize resources and patches), and GPU settings in the wrong place.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S_BASE = DEPLOY / "k8s" / "base"
GPU_OVERLAY = DEPLOY / "k8s" / "overlays" / "gpu"

# Our processes: compose service name → gRPC port (None: not a gRPC server).
THERASCRIPT_SERVICES = {
    "gateway": None, "sessions": 50051, "transcriber": None, "chat": 50052,
    "analysis": 50053, "llm-manager": 50054, "ops": 50055,
}
GPU_SERVICES = {"transcriber", "llm-manager"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yml").read_text())


@pytest.fixture(scope="module")
def k8s_docs() -> list[dict]:
    kustomization = yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())
    return [doc for name in kustomization["resources"] for doc in load_all(K8S_BASE / name)]


def workloads(docs: list[dict]) -> list[dict]:
    return [doc for doc in docs if doc["kind"] in WORKLOAD_KINDS]


def of_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


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


@pytest.mark.parametrize("name", ["traefik", "redis", "elasticsearch", "postgres", *sorted(THERASCRIPT_SERVICES)])
def test_every_compose_service_has_a_healthcheck(compose, name) -> None:
    test = compose["services"][name]["healthcheck"]["test"]
    assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1


@pytest.mark.parametrize("name,port", [(n, p) for n, p in THERASCRIPT_SERVICES.items() if p])
def test_grpc_services_are_probed_with_grpc_health_on_their_port(compose, name, port) -> None:
    test = compose["services"][name]["healthcheck"]["test"]
    assert "grpc_health.v1" in " ".join(test) and test[-1] == str(port)


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


def test_traefik_routes_api_to_the_gateway_with_an_upload_body_limit() -> None:
    static = yaml.safe_load((DEPLOY / "traefik" / "traefik.yml").read_text())
    dynamic = yaml.safe_load((DEPLOY / "traefik" / "dynamic.yml").read_text())["http"]
    assert static["providers"]["file"]["filename"].endswith("dynamic.yml")
    routers = dynamic["routers"]
    assert "PathPrefix(`/api`)" in routers["api"]["rule"] and routers["api"]["service"] == "gateway"
    upload = routers["api-upload"]
    assert "/api/sessions/upload" in upload["rule"] and upload["priority"] > 0
    limit = dynamic["middlewares"][upload["middlewares"][0]]["buffering"]["maxRequestBodyBytes"]
    assert 1024**3 <= limit <= 1024**3 + 16 * 1024**2
    assert dynamic["services"]["gateway"]["loadBalancer"]["servers"][0]["url"] == "http://gateway:3001"


# --- Dockerfiles ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("service", ["gateway", "sessions", "analysis", "ops", "chat", "llm-manager"])
def test_dockerfiles_are_slim_non_root_and_generate_the_stubs(service) -> None:
    path = ROOT / "services" / service / "Dockerfile"
    if not path.exists():
        pytest.fail(f"services/{service}/Dockerfile is missing")
    text = path.read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert "proto/generate.py" in text
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and all(user not in ("root", "0") for user in users)


def test_torch_is_only_in_the_transcriber_image() -> None:
    stages = re.split(r"^FROM ", (ROOT / "services" / "sessions" / "Dockerfile").read_text(), flags=re.M)[1:]
    with_extra = [stage.splitlines()[0] for stage in stages if "[transcriber]" in stage]
    assert with_extra == ["stubs AS build-transcriber"]
    final = stages[-1]
    assert final.startswith("runtime AS sessions") and "build-sessions" in final


# --- Kubernetes -------------------------------------------------------------------------------------------------

def test_every_kustomize_resource_and_patch_exists() -> None:
    for folder in (K8S_BASE, GPU_OVERLAY):
        kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
        for name in kustomization.get("resources", []):
            assert (folder / name).exists(), f"{folder.name}: {name}"
        for patch in kustomization.get("patches", []):
            assert (folder / patch["path"]).is_file(), f"{folder.name}: {patch['path']}"
    assert (K8S_BASE / "secrets" / "api-token.env.example").is_file()


def test_every_service_of_ours_has_a_deployment_and_the_infrastructure_a_statefulset(k8s_docs) -> None:
    assert set(THERASCRIPT_SERVICES) <= set(of_kind(k8s_docs, "Deployment"))
    assert {"redis", "elasticsearch"} <= set(of_kind(k8s_docs, "StatefulSet"))


def _containers(workload: dict) -> list[dict]:
    return workload["spec"]["template"]["spec"]["containers"]


def test_every_workload_has_readiness_and_liveness_probes(k8s_docs) -> None:
    for workload in workloads(k8s_docs):
        for container in _containers(workload):
            name = f"{workload['metadata']['name']}/{container['name']}"
            assert "readinessProbe" in container and "livenessProbe" in container, name


@pytest.mark.parametrize("name,port", [(n, p) for n, p in THERASCRIPT_SERVICES.items() if p])
def test_grpc_services_use_native_grpc_probes_on_their_port(k8s_docs, name, port) -> None:
    container = _containers(of_kind(k8s_docs, "Deployment")[name])[0]
    assert container["readinessProbe"]["grpc"]["port"] == port
    assert container["livenessProbe"]["grpc"]["port"] == port
    assert {"name": "grpc", "containerPort": port} in container["ports"]


def test_every_workload_has_resource_requests_and_limits(k8s_docs) -> None:
    for workload in workloads(k8s_docs):
        for container in _containers(workload):
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[kind]), f"{workload['metadata']['name']}: {kind}"


def test_every_workload_runs_non_root_without_privilege_escalation(k8s_docs) -> None:
    for workload in workloads(k8s_docs):
        pod = workload["spec"]["template"]["spec"]
        name = workload["metadata"]["name"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] != 0, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name


def test_volume_claims_services_and_config_references_resolve(k8s_docs) -> None:
    claims = set(of_kind(k8s_docs, "PersistentVolumeClaim"))
    config_maps = set(of_kind(k8s_docs, "ConfigMap"))
    labels = [w["spec"]["template"]["metadata"]["labels"] for w in workloads(k8s_docs)]
    for workload in workloads(k8s_docs):
        pod = workload["spec"]["template"]["spec"]
        for volume in pod.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
        for container in pod["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps
            for env in container.get("env", []):
                secret = env.get("valueFrom", {}).get("secretKeyRef")
                if secret:
                    assert secret["name"] == "therascript-secrets"
    for name, service in of_kind(k8s_docs, "Service").items():
        assert any(service["spec"]["selector"].items() <= label.items() for label in labels), name


def test_the_api_token_comes_from_the_secret(k8s_docs) -> None:
    env = {e["name"]: e for e in _containers(of_kind(k8s_docs, "Deployment")["gateway"])[0]["env"]}
    assert env["THERASCRIPT_API_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "THERASCRIPT_API_TOKEN"
    generator = yaml.safe_load((K8S_BASE / "kustomization.yaml").read_text())["secretGenerator"][0]
    assert generator["name"] == "therascript-secrets"
    assert "THERASCRIPT_API_TOKEN=" in (K8S_BASE / "secrets" / "api-token.env.example").read_text()


def test_traefik_ingress_route_sends_api_to_the_gateway(k8s_docs) -> None:
    route = of_kind(k8s_docs, "IngressRoute")["therascript-api"]
    matches = {r["match"]: r for r in route["spec"]["routes"]}
    assert matches["PathPrefix(`/api`)"]["services"] == [{"name": "gateway", "port": 3001}]
    upload = next(r for m, r in matches.items() if "/api/sessions/upload" in m)
    assert upload["middlewares"][0]["name"] in of_kind(k8s_docs, "Middleware")


def test_base_requests_no_gpu(k8s_docs) -> None:
    for workload in workloads(k8s_docs):
        for container in _containers(workload):
            assert "nvidia.com/gpu" not in container["resources"]["limits"]


def test_gpu_overlay_gives_the_transcriber_and_llm_manager_one_gpu_on_gpu_nodes(k8s_docs) -> None:
    deployments = of_kind(k8s_docs, "Deployment")
    patched = set()
    for patch_ref in yaml.safe_load((GPU_OVERLAY / "kustomization.yaml").read_text())["patches"]:
        patch = yaml.safe_load((GPU_OVERLAY / patch_ref["path"]).read_text())
        name = patch["metadata"]["name"]
        pod = patch["spec"]["template"]["spec"]
        assert pod["nodeSelector"] and pod["tolerations"]
        container = pod["containers"][0]
        assert container["name"] == _containers(deployments[name])[0]["name"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        patched.add(name)
    assert patched == GPU_SERVICES
