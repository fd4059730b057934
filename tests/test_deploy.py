"""The container image and Kubernetes manifests point at what the code really has: every
container's arguments parse as a `streetwatch` command, probes hit real paths on the ports
those commands listen on, mounted config files validate, secrets referenced exist. (No
container engine or cluster here: the image is not built, the manifests not applied.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from api.server.routes.ops import router as ops_router
from streams.cli import build_parser
from streams.config import load_config

REPO = Path(__file__).resolve().parents[1]
K8S = REPO / "deploy" / "k8s"


@pytest.fixture(scope="module")
def manifests() -> dict[tuple[str, str], dict]:
    docs = [d for f in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def containers(manifests: dict, kind: str, name: str) -> list[dict]:
    return manifests[(kind, name)]["spec"]["template"]["spec"]["containers"]


def option(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


def port_number(container: dict, port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


def test_every_container_runs_a_real_command(manifests):
    parser = build_parser()
    seen = set()
    for (kind, _), doc in manifests.items():
        if kind in ("Deployment", "StatefulSet", "Job"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                args = parser.parse_args(container["args"])  # exits (fails) on a bad flag
                seen.add(args.command)
    assert seen == {"serve", "run", "cameras"}


def test_probes_hit_real_paths_on_the_ports_the_commands_listen_on(manifests):
    (api,) = containers(manifests, "Deployment", "streetwatch-api")
    ops_paths = {route.path for route in ops_router.routes}
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz" in ops_paths
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz" in ops_paths
    for probe in ("livenessProbe", "readinessProbe"):
        port = port_number(api, api[probe]["httpGet"]["port"])
        assert port == int(option(api["args"], "--port"))

    (worker,) = containers(manifests, "StatefulSet", "streetwatch-worker")
    args = worker["args"]
    assert "--fleet" in args
    probe = worker["livenessProbe"]["httpGet"]
    assert probe["path"] == "/healthz"
    assert port_number(worker, probe["port"]) == int(option(args, "--health-port"))
    assert option(args, "--health-host") == "0.0.0.0"  # a probe comes from outside the pod
    assert port_number(worker, "metrics") == int(option(args, "--metrics-port"))
    # The worker's fleet id is its pod name: stable across restarts.
    env = {e["name"]: e for e in worker["env"]}
    assert env["STREETWATCH_WORKER_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_mounted_configs_validate_and_secrets_exist(manifests, tmp_path):
    config_map = manifests[("ConfigMap", "streetwatch-config")]["data"]
    secret = manifests[("Secret", "streetwatch-keys")]["stringData"]
    for kind, name in [
        ("Deployment", "streetwatch-api"),
        ("StatefulSet", "streetwatch-worker"),
        ("Job", "streetwatch-cameras-import"),
    ]:
        spec = manifests[(kind, name)]["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == "streetwatch-keys" and ref["key"] in secret
            if "--config" not in container["args"]:
                continue
            path = Path(option(container["args"], "--config"))
            mount = next(
                m for m in container["volumeMounts"] if path.is_relative_to(m["mountPath"])
            )
            assert volumes[mount["name"]]["configMap"]["name"] == "streetwatch-config"
            text = config_map[path.relative_to(mount["mountPath"]).as_posix()]
            local = tmp_path / path.name
            local.write_text(text)
            config = load_config(local)
            assert config.api is not None
            # The key each command reads is the one the pod gets from the Secret.
            assert config.api.key_env in {e["name"] for e in container["env"]}
            assert config.api.url.startswith("http://streetwatch-api:")


def test_dockerfile_runs_streetwatch_and_exposes_the_manifests_ports(manifests):
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["streetwatch"]' in dockerfile
    exposed = {
        int(p) for line in re.findall(r"^EXPOSE (.+)$", dockerfile, re.M) for p in line.split()
    }
    ports = {
        p["containerPort"]
        for kind, name in [("Deployment", "streetwatch-api"), ("StatefulSet", "streetwatch-worker")]
        for c in containers(manifests, kind, name)
        for p in c["ports"]
    }
    assert ports <= exposed
    for package in ("api", "detector", "models", "streams"):
        assert f"COPY {package} ./{package}" in dockerfile
