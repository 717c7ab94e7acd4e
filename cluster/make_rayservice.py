"""Generate cluster/rayservice.yaml, the KubeRay `RayService` of the production profile.

  .venv/bin/python -m cluster.make_rayservice            # rewrite cluster/rayservice.yaml
  .venv/bin/python -m cluster.make_rayservice --check    # exit 1 if the file is not what this script makes

`serveConfigV2` is serve_config.yaml's applications plus the few Kubernetes settings below (KUBERNETES_INGRESS:
the shared PostgreSQL store and the retention), never edited by hand: change serve_config.yaml or this file
and regenerate; tests/unit/test_cluster_files.py fails when the two drift apart.

The cluster: a head pod that runs no replicas (`num-cpus: "0"`: GCS, dashboard, Serve controller, and one HTTP
proxy per node as proxy_location EveryNode says) and a GPU worker group, one GPU per pod, that KubeRay's
autoscaler grows from 1 to MAX_GPU_WORKERS when Serve asks for more replicas than fit. The image is this repo
installed on rayproject/ray (cluster/Dockerfile). Token auth through KubeRay's authOptions (KubeRay >= 1.5.1).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "serve_config.yaml"
TARGET = REPO / "cluster" / "rayservice.yaml"

RAY_VERSION = "2.60.0"
IMAGE = "ghcr.io/reelscope/reelscope:0.1.0-ray2.60.0-gpu"  # built from cluster/Dockerfile
MAX_GPU_WORKERS = 4
# One worker pod holds one replica of everything serve_config.yaml deploys: its replicas ask for 16 CPUs in all
# (ingress 4, the five GPU groups 2+2+2+1+1, cpu_parallel 2 x 2) and 1.0 GPU. With fewer, the CPU-only replicas
# went to a second GPU pod (tests/unit/test_cluster_files.py checks that they fit).
WORKER_CPUS = 16
STORE_SECRET = "reelscope-postgres"  # keys: password (and the server it points at runs outside this manifest)

# What differs on Kubernetes from serve_config.yaml: several pods share one report store and keep it bounded.
KUBERNETES_INGRESS = {
    "store_url": "postgresql://reelscope@reelscope-postgres:5432/reelscope",
    "retention": {"max_age_days": 30, "max_total_mb": 20480, "prune_every_seconds": 600},
}


def serve_config_for_kubernetes(source: Path = SOURCE) -> dict[str, Any]:
    config = yaml.safe_load(source.read_text())
    out = {key: copy.deepcopy(config[key]) for key in ("proxy_location", "http_options", "applications") if key in config}
    for app in out["applications"]:
        app.setdefault("args", {}).setdefault("ingress", {}).update(copy.deepcopy(KUBERNETES_INGRESS))
    return out


def _container(name: str, cpu: str, memory: str, gpus: int, ports: list[dict[str, Any]]) -> dict[str, Any]:
    limits: dict[str, Any] = {"cpu": cpu, "memory": memory}
    if gpus:
        limits["nvidia.com/gpu"] = gpus
    return {
        "name": name,
        "image": IMAGE,
        "env": [
            # libpq reads PGPASSWORD: the store_url carries no secret.
            {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": STORE_SECRET, "key": "password"}}},
            {"name": "RAY_USAGE_STATS_ENABLED", "value": "0"},
        ],
        "resources": {"limits": limits, "requests": dict(limits)},
        "ports": ports,
        "volumeMounts": [{"name": "media", "mountPath": "/data/media", "readOnly": True},
                         {"name": "reports", "mountPath": "/data/reelscope"}],
    }


VOLUMES = [
    {"name": "media", "persistentVolumeClaim": {"claimName": "reelscope-media", "readOnly": True}},
    {"name": "reports", "emptyDir": {}},  # JSON copies of reports per pod; the reports themselves live in PostgreSQL
]


def rayservice(source: Path = SOURCE) -> dict[str, Any]:
    serve_config = serve_config_for_kubernetes(source)
    head_ports = [{"containerPort": 6379, "name": "gcs-server"}, {"containerPort": 8265, "name": "dashboard"},
                  {"containerPort": 10001, "name": "client"}, {"containerPort": 8000, "name": "serve"},
                  {"containerPort": 8080, "name": "metrics"}]
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": "reelscope", "labels": {"app.kubernetes.io/name": "reelscope"}},
        "spec": {
            "upgradeStrategy": {"type": "NewCluster"},  # a new model or group shape starts a new cluster, then switches
            "serveConfigV2": yaml.safe_dump(serve_config, sort_keys=False),
            "rayClusterConfig": {
                "rayVersion": RAY_VERSION,
                "authOptions": {"mode": "token"},
                "enableInTreeAutoscaling": True,
                "autoscalerOptions": {"idleTimeoutSeconds": 600, "upscalingMode": "Default"},
                "headGroupSpec": {
                    "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0", "metrics-export-port": "8080"},
                    "template": {"spec": {
                        "containers": [_container("ray-head", "4", "16Gi", 0, head_ports)],
                        "volumes": VOLUMES,
                    }},
                },
                "workerGroupSpecs": [{
                    "groupName": "gpu-workers",
                    "replicas": 1,
                    "minReplicas": 1,
                    "maxReplicas": MAX_GPU_WORKERS,
                    "rayStartParams": {"metrics-export-port": "8080"},
                    "template": {"spec": {
                        "containers": [_container("ray-worker", str(WORKER_CPUS), "96Gi", 1, [
                            {"containerPort": 8000, "name": "serve"}, {"containerPort": 8080, "name": "metrics"}])],
                        "volumes": VOLUMES,
                        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
                    }},
                }],
            },
        },
    }


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (serveConfigV2) as readable `|` blocks, as KubeRay's own samples write them."""


_BlockDumper.add_representer(
    str, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="|" if "\n" in v else None))


def render(source: Path = SOURCE) -> str:
    header = "# GENERATED by cluster/make_rayservice.py from serve_config.yaml: do not edit, regenerate.\n"
    return header + yaml.dump(rayservice(source), Dumper=_BlockDumper, sort_keys=False, width=120)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Generate cluster/rayservice.yaml from serve_config.yaml")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the file is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is stale: run python -m cluster.make_rayservice", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
