"""deploy/k8s rendered as a fresh clone renders it, validated offline, and held against the services' real settings.

No cluster can run here (stand-in: nothing is applied). What runs for real:
- `kubectl kustomize` on the base and every overlay, in a copy of deploy/k8s made of git's files only (tracked or
  untracked-but-not-ignored), so a file that exists only on one machine (a git-ignored secret) breaks the render here
  as it would on a fresh clone;
- `kubernetes-validate --strict` (the Kubernetes OpenAPI schemas bundled in its PyPI package) on every rendered
  object of a built-in kind; the CRDs (Traefik, KEDA) are checked field by field below;
- every environment variable a container of ours gets (its `env`, and the ConfigMap keys of `envFrom`) is looked up
  in the pydantic-settings class of that service (services/*/src/*/settings.py, or server.py where a service keeps
  its settings there): a name the service does not read fails, as do a wrong port and a target that points at a
  Service or port that does not exist, or that the NetworkPolicies do not let the caller reach.
"""

from __future__ import annotations

import importlib
import inspect
import ipaddress
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["local", "gpu", "keda"]
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]   # oldest we claim, newest kubernetes-validate 1.37 bundles

# Our workloads: name → (service package, env prefix, gRPC port or None).
OURS: dict[str, tuple[str, str, int | None]] = {
    "gateway": ("gateway", "THERASCRIPT_", None),
    "sessions": ("sessions", "SESSIONS_", 50051),
    "transcriber": ("sessions", "SESSIONS_", None),
    "chat": ("chat", "CHAT_", 50052),
    "analysis": ("analysis", "ANALYSIS_", 50053),
    "analysis-worker": ("analysis", "ANALYSIS_", None),
    "llm-manager": ("llm-manager", "LLM_", 50054),
    "ops": ("ops", "OPS_", 50055),
}
GPU_WORKLOADS = {"transcriber", "llm-manager"}
# Read by libraries inside our images, not by our settings classes.
LIBRARY_ENV = {"HF_HUB_OFFLINE", "NUMBA_CACHE_DIR"}
CRD_KINDS = {("traefik.io/v1alpha1", "IngressRoute"), ("traefik.io/v1alpha1", "Middleware"),
             ("keda.sh/v1alpha1", "ScaledObject")}
WORKLOAD_KINDS = {"Deployment", "StatefulSet"}
# Variables a workload gets through its shared settings class but never dials (so no policy lets it).
NOT_DIALLED = {("transcriber", "SESSIONS_CHAT_TARGET")}   # the worker shares SessionsSettings; only the server calls chat


# --- rendering --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fresh_clone_k8s(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/k8s as a fresh clone has it: git's files only, no git-ignored ones."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "deploy/k8s"],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout.split("\0")
    target = tmp_path_factory.mktemp("clone")
    for name in filter(None, listed):
        if (ROOT / name).is_file():   # a tracked file deleted in the working tree is not in a clone either
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, target / name)
    return target / "deploy" / "k8s"


def kustomize(folder: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl is not on PATH (it ships kustomize: `kubectl kustomize`)"
    result = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"kubectl kustomize {folder.name} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="module")
def rendered(fresh_clone_k8s: Path) -> dict[str, list[dict[str, Any]]]:
    """Every overlay (and the base) rendered by `kubectl kustomize`: name → its objects."""
    out = {"base": kustomize(fresh_clone_k8s / "base")}
    for overlay in OVERLAYS:
        out[overlay] = kustomize(fresh_clone_k8s / "overlays" / overlay)
    return out


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def workloads(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] in WORKLOAD_KINDS}


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(workload: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec(workload)["containers"]
    assert len(containers) == 1, workload["metadata"]["name"]
    first: dict[str, Any] = containers[0]
    return first


def test_a_fresh_clone_has_no_secret_file_to_guess(fresh_clone_k8s: Path) -> None:
    """Before: the base's secretGenerator read secrets/api-token.env, which a clone does not have."""
    assert not list(fresh_clone_k8s.rglob("*.env"))
    for kustomization in fresh_clone_k8s.rglob("kustomization.yaml"):
        assert "secretGenerator" not in yaml.safe_load(kustomization.read_text()), kustomization


@pytest.mark.parametrize("name", ["base", *OVERLAYS])
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_overlay_validates_strictly_against_the_kubernetes_schemas(rendered, name, version) -> None:
    errors = []
    for doc in rendered[name]:
        if (doc["apiVersion"], doc["kind"]) in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {error.message} at {list(error.path)}")
        except kubernetes_validate.SchemaNotFoundError:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: unknown kind {doc['apiVersion']}")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_object_lands_in_the_therascript_namespace(rendered, name) -> None:
    for doc in rendered[name]:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "therascript", doc["metadata"]["name"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_service_of_ours_runs_and_the_stores_are_statefulsets(rendered, name) -> None:
    assert set(OURS) <= set(of_kind(rendered[name], "Deployment"))
    assert {"redis", "elasticsearch"} <= set(of_kind(rendered[name], "StatefulSet"))


# --- settings ---------------------------------------------------------------------------------------------------

def settings_class(package: str) -> type[BaseSettings]:
    """The pydantic-settings class of a service: in its settings module, else in its server module."""
    module_base = "therascript_" + package.replace("-", "_")
    for module_name in (f"{module_base}.settings", f"{module_base}.server"):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
                   if issubclass(c, BaseSettings) and c.__module__ == module.__name__]
        if classes:
            assert len(classes) == 1, f"{module_name}: several settings classes {classes}"
            return classes[0]
    raise AssertionError(f"no pydantic-settings class in {module_base}.settings or .server")


def env_names(settings: type[BaseSettings]) -> dict[str, Any]:
    """Environment variable name → default, as pydantic-settings reads them (prefix + field name, upper case)."""
    prefix = settings.model_config.get("env_prefix", "")
    return {(prefix + name).upper(): field.default for name, field in settings.model_fields.items()}


@pytest.fixture(scope="module")
def settings_env() -> dict[str, dict[str, Any]]:
    """Env prefix → {variable: default} of that prefix's settings class."""
    out: dict[str, dict[str, Any]] = {}
    for package, prefix, _ in OURS.values():
        settings = settings_class(package)
        assert settings.model_config.get("env_prefix") == prefix, package
        out[prefix] = env_names(settings)
    return out


def container_env(docs: list[dict[str, Any]], workload: dict[str, Any]) -> dict[str, Any]:
    """Every variable the container gets: ConfigMap keys (envFrom) then its own env (value, or the env entry)."""
    config_maps = of_kind(docs, "ConfigMap")
    env: dict[str, Any] = {}
    for source in container(workload).get("envFrom", []):
        env.update(config_maps[source["configMapRef"]["name"]]["data"])
    for entry in container(workload).get("env", []):
        env[entry["name"]] = entry.get("value", entry)
    return env


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_env_name_is_read_by_the_service_it_is_given_to(rendered, settings_env, name) -> None:
    docs = rendered[name]
    for config_map in of_kind(docs, "ConfigMap").values():
        for key in config_map["data"]:
            known = key in LIBRARY_ENV or any(key in names for names in settings_env.values())
            assert known, f"ConfigMap {config_map['metadata']['name']}: {key} is read by no service"
    for workload_name, (_, prefix, _) in OURS.items():
        workload = workloads(docs)[workload_name]
        for entry in container(workload).get("env", []):
            assert entry["name"] in settings_env[prefix], f"{workload_name}: {entry['name']} is not a {prefix} setting"


@pytest.mark.parametrize("name", OVERLAYS)
def test_ports_and_bind_hosts_match_the_settings(rendered, settings_env, name) -> None:
    docs = rendered[name]
    for workload_name, (_, prefix, grpc_port) in OURS.items():
        workload = workloads(docs)[workload_name]
        env = container_env(docs, workload)
        ports = {p["name"]: p["containerPort"] for p in container(workload).get("ports", [])}
        if workload_name == "gateway":
            assert ports == {"http": int(env.get("THERASCRIPT_PORT", settings_env[prefix]["THERASCRIPT_PORT"]))}
            assert env["THERASCRIPT_HOST"] == "0.0.0.0"   # the settings default is loopback only
        elif grpc_port is None:
            assert ports == {}, f"{workload_name}: a worker serves no port"
        else:
            configured = int(env.get(f"{prefix}GRPC_PORT", settings_env[prefix][f"{prefix}GRPC_PORT"]))
            assert configured == grpc_port and ports == {"grpc": grpc_port}, workload_name
            assert env[f"{prefix}GRPC_HOST"] == "0.0.0.0", f"{workload_name} would bind loopback only"
            for probe in ("readinessProbe", "livenessProbe"):
                assert container(workload)[probe]["grpc"]["port"] == grpc_port, f"{workload_name} {probe}"


def service_ports(docs: list[dict[str, Any]]) -> dict[tuple[str, int], str]:
    """(Service name, port) → the workload it selects."""
    labels = {name: w["spec"]["template"]["metadata"]["labels"] for name, w in workloads(docs).items()}
    out = {}
    for name, service in of_kind(docs, "Service").items():
        selected = [w for w, lab in labels.items() if service["spec"]["selector"].items() <= lab.items()]
        assert len(selected) == 1, f"Service {name} selects {selected}"
        for port in service["spec"]["ports"]:
            out[(name, port["port"])] = selected[0]
    return out


def targets(env: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """Env variables that name another component: *_TARGET (host:port) and *_URL (scheme://host:port/...)."""
    out = {}
    for key, value in env.items():
        if not isinstance(value, str):
            continue
        if key.endswith("_TARGET"):
            host, _, port = value.rpartition(":")
            out[key] = (host, int(port))
        elif key.endswith("_URL") and "://" in value:
            host_port = value.split("://", 1)[1].split("/", 1)[0]
            host, _, port = host_port.rpartition(":")
            out[key] = (host, int(port))
    return out


def allowed_callers(docs: list[dict[str, Any]], target: str, port: int) -> set[str] | None:
    """Workload names whose pods the NetworkPolicies let reach `target`'s pods on `port`; None = anyone."""
    labels = {name: w["spec"]["template"]["metadata"]["labels"] for name, w in workloads(docs).items()}

    def selects(selector: dict[str, Any], name: str) -> bool:
        if "matchLabels" in selector and not selector["matchLabels"].items() <= labels[name].items():
            return False
        for expression in selector.get("matchExpressions", []):
            assert expression["operator"] == "In"
            if labels[name].get(expression["key"]) not in expression["values"]:
                return False
        return True

    callers: set[str] = set()
    for policy in of_kind(docs, "NetworkPolicy").values():
        spec = policy["spec"]
        if "Ingress" not in spec["policyTypes"] or not selects(spec["podSelector"], target):
            continue
        for rule in spec.get("ingress", []):
            if rule.get("ports") and all(p["port"] != port for p in rule["ports"]):
                continue
            if "from" not in rule:
                return None
            for peer in rule["from"]:
                if "namespaceSelector" in peer:
                    continue   # other namespaces (ingress controller, KEDA): not our workloads
                callers |= {name for name in labels if selects(peer["podSelector"], name)}
    return callers


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_target_is_a_real_service_port_the_caller_may_reach(rendered, name) -> None:
    docs = rendered[name]
    ports = service_ports(docs)
    for workload_name, (_, prefix, _) in OURS.items():
        env = container_env(docs, workloads(docs)[workload_name])
        for key, (host, port) in targets({k: v for k, v in env.items() if k.startswith(prefix)}).items():
            if (workload_name, key) in NOT_DIALLED:
                continue
            try:
                ipaddress.ip_address(host)
                pytest.fail(f"{workload_name}: {key} is an address ({host}), not a Service name")
            except ValueError:
                pass
            assert (host, port) in ports, f"{workload_name}: {key}={host}:{port} is no Service port"
            callers = allowed_callers(docs, ports[(host, port)], port)
            assert callers is None or workload_name in callers, \
                f"{workload_name}: {key} points at {host}:{port}, which its NetworkPolicies do not let it reach"


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_secret_key_is_named_as_its_variable_and_documented(rendered, name) -> None:
    template = (K8S / "secret-template" / "therascript-secrets.env.example").read_text()
    for workload_name in OURS:
        for entry in container(workloads(rendered[name])[workload_name]).get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == "therascript-secrets" and ref["key"] == entry["name"], workload_name
                assert f"{ref['key']}=" in template, f"{ref['key']} is not in the secret template"


# --- policies, scaling, GPUs ------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", OVERLAYS)
def test_only_the_gateway_is_reachable_from_outside_and_stores_only_from_their_owners(rendered, name) -> None:
    docs = rendered[name]
    policies = of_kind(docs, "NetworkPolicy")
    assert policies["default-deny"]["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert allowed_callers(docs, "gateway", 3001) is None
    for workload_name, (_, _, port) in OURS.items():
        if port:
            callers = allowed_callers(docs, workload_name, port)
            assert callers is not None and "gateway" in callers and workload_name not in callers, workload_name
    assert allowed_callers(docs, "redis", 6379) == {"sessions", "transcriber", "analysis", "analysis-worker", "ops"}
    assert allowed_callers(docs, "elasticsearch", 9200) == {"sessions", "transcriber", "chat", "ops"}


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_workload_has_probes_limits_and_runs_non_root(rendered, name) -> None:
    for workload_name, workload in workloads(rendered[name]).items():
        pod = pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, workload_name
        for each in pod["containers"]:
            assert "readinessProbe" in each and "livenessProbe" in each, workload_name
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(each["resources"][kind]), f"{workload_name}: {kind}"
            context = each["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_every_claim_exists_and_the_audio_volume_is_shared(rendered, name) -> None:
    docs = rendered[name]
    claims = of_kind(docs, "PersistentVolumeClaim")
    for workload_name, workload in workloads(docs).items():
        for volume in pod_spec(workload).get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims, workload_name
    audio = {w for w, wl in workloads(docs).items()
             if any(v.get("persistentVolumeClaim", {}).get("claimName") == "sessions-data"
                    for v in pod_spec(wl).get("volumes", []))}
    assert audio == {"sessions", "transcriber"}
    modes = claims["sessions-data"]["spec"]["accessModes"]
    assert modes == (["ReadWriteOnce"] if name == "local" else ["ReadWriteMany"])


@pytest.mark.parametrize("name,autoscaled", [("local", {"gateway"}), ("gpu", {"gateway", "chat", "sessions"}),
                                              ("keda", {"gateway", "chat", "sessions"})])
def test_autoscalers_and_the_database_they_need(rendered, name, autoscaled) -> None:
    docs = rendered[name]
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    assert set(hpas) == autoscaled
    for hpa in hpas.values():
        assert hpa["spec"]["scaleTargetRef"]["name"] in of_kind(docs, "Deployment")
        assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"] >= 1
    for service in autoscaled - {"gateway"}:
        prefix = OURS[service][1]
        ref = {e["name"]: e for e in container(workloads(docs)[service])["env"]}[f"{prefix}DATABASE_URL"]
        assert ref["valueFrom"]["secretKeyRef"]["optional"] is False, f"{service} scales without PostgreSQL"
    budgets = {b["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
               for b in of_kind(docs, "PodDisruptionBudget").values()}
    assert {"gateway", "sessions", "chat", "transcriber", "analysis-worker", "llm-manager"} <= budgets


@pytest.mark.parametrize("name", OVERLAYS)
def test_gpus_only_where_the_overlay_says_and_only_for_the_two_gpu_doors(rendered, name) -> None:
    for workload_name, workload in workloads(rendered[name]).items():
        pod = pod_spec(workload)
        gpus = container(workload)["resources"]["limits"].get("nvidia.com/gpu")
        if name != "local" and workload_name in GPU_WORKLOADS:
            assert gpus == 1, workload_name
            assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        else:
            assert gpus is None and "nodeSelector" not in pod, workload_name


def test_keda_scales_the_rq_workers_on_their_queues(rendered) -> None:
    scaled = of_kind(rendered["keda"], "ScaledObject")
    queues = {"transcriber": "transcription", "analysis-worker": "analysis"}
    assert set(scaled) == set(queues)
    for name, queue in queues.items():
        spec = scaled[name]["spec"]
        assert spec["scaleTargetRef"] == {"name": name} and name in of_kind(rendered["keda"], "Deployment")
        assert spec["maxReplicaCount"] > spec["minReplicaCount"] >= 1
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "redis" and trigger["metadata"]["listName"] == f"rq:queue:{queue}"
        assert trigger["metadata"]["address"] == "redis.therascript.svc.cluster.local:6379"


@pytest.mark.parametrize("name", OVERLAYS)
def test_the_ingress_route_sends_api_to_the_gateway_with_the_upload_limit(rendered, name) -> None:
    docs = rendered[name]
    route = of_kind(docs, "IngressRoute")["therascript-api"]
    matches = {r["match"]: r for r in route["spec"]["routes"]}
    assert matches["PathPrefix(`/api`)"]["services"] == [{"name": "gateway", "port": 3001}]
    upload = next(r for m, r in matches.items() if "/api/sessions/upload" in m)
    assert upload["services"] == [{"name": "gateway", "port": 3001}]
    middleware = of_kind(docs, "Middleware")[upload["middlewares"][0]["name"]]
    limit = middleware["spec"]["buffering"]["maxRequestBodyBytes"]
    assert 1024**3 <= limit <= 1024**3 + 16 * 1024**2
    assert ("gateway", 3001) in service_ports(docs)


def console_scripts(package: str) -> set[str]:
    import tomllib

    pyproject = tomllib.loads((ROOT / "services" / package / "pyproject.toml").read_text())
    return set(pyproject["project"]["scripts"])


@pytest.mark.parametrize("name", OVERLAYS)
def test_commands_are_the_services_console_scripts_and_worker_probes_watch_their_queue(
        rendered, settings_env, name) -> None:
    docs = rendered[name]
    for workload_name, (package, prefix, _) in OURS.items():
        workload = workloads(docs)[workload_name]
        command = container(workload).get("command")
        if command:   # else the image's CMD (services/<package>/Dockerfile)
            assert command[0] in console_scripts(package), f"{workload_name}: {command[0]} is no console script"
        env = container_env(docs, workload)
        for probe in ("readinessProbe", "livenessProbe"):
            argv = container(workload)[probe].get("exec", {}).get("command")
            if not argv:
                continue
            assert argv[:2] == ["therascript-healthcheck", "rq-worker"], f"{workload_name} {probe}"
            queue, url_variable = argv[2:]
            assert queue == settings_env[prefix][f"{prefix}QUEUE_NAME"], f"{workload_name} watches {queue}"
            assert url_variable in env, f"{workload_name} {probe} reads {url_variable}, which it is not given"
