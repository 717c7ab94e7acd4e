"""Run in its own process (one Ray per process): deploy the production group shapes with a named placement
(cluster/placements.py) on a Ray with two logical GPUs and print, as JSON, the GPU ids every replica of every
group was given. Used by test_two_gpu_placement.py."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from cluster.placements import PLACEMENTS, apply_placement, gpus_needed  # noqa: E402
from deployments.launch import deploy, load_config, start_local_ray  # noqa: E402

# Light analyzers stand in for the models so the probe runs on a CPU-only machine; placement depends only on
# the resource requests, which come from serve_config.yaml and the placement unchanged.
STAND_INS = {"stage1_gpu_heavy": ["visual_effects"], "stage1_gpu_detection": ["temporal_flow"], "stage2_gpu_medium": ["camera_analysis"],
             "stage3_gpu_light": ["color_analysis"], "stage4_gpu_fast": ["cut_analysis"], "cpu_parallel": ["scene_segmentation"]}


def _gpu_ids(_replica) -> list[str]:
    import ray

    return sorted(str(i) for i in ray.get_gpu_ids())


def main(placement: str, port: int, dashboard_port: int) -> None:
    import ray
    from ray import serve

    config = apply_placement(load_config(REPO / "serve_config.yaml"), placement)
    config["http_options"] = {"host": "127.0.0.1", "port": port}
    config.pop("proxy_location", None)
    app = config["applications"][0]
    app.pop("runtime_env", None)
    args = app["args"]
    args["ingress"] = {"data_dir": tempfile.mkdtemp(prefix="rs-2gpu-"), "ray_actor_options": {"num_cpus": 0.05}}
    args["analyzers"] = {}  # production model settings: the stand-ins take none
    args.pop("timeouts", None)
    for group in args["groups"]:
        group["analyzers"] = STAND_INS[group["name"]]
        group["ray_actor_options"]["num_cpus"] = 0.05  # 2 cores here; the GPU fractions are what is checked
    start_local_ray(num_cpus=2, num_gpus=gpus_needed(placement), dashboard=False, dashboard_port=dashboard_port)
    try:
        deploy(config)
        placed: dict[str, list[list[str]]] = {}
        for entry in ray.util.list_named_actors(all_namespaces=True):
            name = entry["name"]
            if name.startswith("SERVE_REPLICA::"):
                group = name.split("::", 1)[1].split("#")[1]
                actor = ray.get_actor(name, namespace=entry["namespace"])
                placed.setdefault(group, []).append(ray.get(actor.__ray_call__.remote(_gpu_ids), timeout=60))
        print(json.dumps({"placement": placement, "groups": PLACEMENTS[placement]["groups"], "gpu_ids": placed}))
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
