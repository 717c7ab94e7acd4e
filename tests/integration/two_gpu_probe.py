"""Run in its own process (one Ray per process): deploy the production group shapes on a Ray with two logical
GPUs and print, as JSON, which GPU ids each group's replica was given. Used by test_two_gpu_placement.py."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from deployments.launch import deploy, start_local_ray  # noqa: E402

# The two-GPU placement: the heavy group (Video-LLaVA and the YOLO models) alone on one card, the other GPU
# groups together on the second (fractions sum to at most 1 per card). Light analyzers stand in for the
# models so the probe runs on a CPU-only machine; placement depends only on the resource requests.
PLACEMENT = {"stage1_gpu_heavy": 1.0, "stage2_gpu_medium": 0.4, "stage3_gpu_light": 0.3, "stage4_gpu_fast": 0.3, "cpu_parallel": 0.0}
STAND_INS = {"stage1_gpu_heavy": ["visual_effects"], "stage2_gpu_medium": ["camera_analysis"],
             "stage3_gpu_light": ["color_analysis"], "stage4_gpu_fast": ["cut_analysis"], "cpu_parallel": ["scene_segmentation"]}


def main(port: int, dashboard_port: int) -> None:
    import ray
    from ray import serve

    data = tempfile.mkdtemp(prefix="rs-2gpu-")
    config = {
        "http_options": {"host": "127.0.0.1", "port": port},
        "applications": [{"name": "reelscope", "route_prefix": "/", "args": {
            "ingress": {"data_dir": data, "ray_actor_options": {"num_cpus": 0.1}},
            "groups": [{"name": g, "analyzers": STAND_INS[g], "ray_actor_options": {"num_cpus": 0.1, "num_gpus": f}}
                       for g, f in PLACEMENT.items()],
        }}],
    }
    start_local_ray(num_cpus=2, num_gpus=2, dashboard=False, dashboard_port=dashboard_port)
    try:
        deploy(config)
        listing = httpx.get(f"http://127.0.0.1:{port}/analyzers", timeout=60).json()
        placed = {a["group"]: a.get("gpu_ids") for a in listing if a["status"] == "available"}
        print(json.dumps({"placement": PLACEMENT, "gpu_ids": placed}))
    finally:
        serve.shutdown()
        ray.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
