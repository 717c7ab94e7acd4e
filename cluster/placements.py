"""Where the GPU groups go on a host with one or two GPUs: named placements applied to serve_config.yaml.

  .venv/bin/python -m cluster.placements two_gpu_heavy_alone > serve_config.2gpu.yaml   # then `serve deploy` it

Ray hands out GPUs by the fractions each replica asks for: a replica fits on a card while that card's fractions
sum to at most 1, so the fractions below decide which groups share a card. serve_config.yaml's own fractions
(0.4 / 0.1 / 0.2 / 0.15 / 0.1, and the ingress's 0.05 for NVDEC decoding) put every group on one card ("one_gpu").
Every placement leaves room for that 0.05 on one card.

- two_gpu_heavy_alone: stage1 (Video-LLaVA) asks for a whole card, so it is alone on one; the four other GPU
  groups (0.15 + 0.35 + 0.25 + 0.2) and the ingress share the second. Lowest latency for one request: nothing else
  competes with the 7B decode for the card's memory bandwidth.
- one_gpu_heavy_twice: two stage1 replicas on the one card (0.4 each; the other groups' models are OpenCV/numpy
  or small, so they keep a sliver): two processes, two copies of the 7B model. Measured on 2026-11-25, when stage1
  also held the YOLO models and video_llava decoded one request at a time.
- two_gpu_heavy_twice: two stage1 replicas at 0.6 each, which cannot share a card, so one per card; the other
  groups (0.1 + 0.2 + 0.1 + 0.1) fit beside them. stage1 is the bottleneck under concurrency (one request at a time
  per replica), so two replicas should roughly double throughput; each card holds one copy of the 7B model.

tests/integration/test_two_gpu_placement.py checks on a Ray with two logical GPUs that each group lands where
its placement says; bench/bench_gpu_graph.py --placement measures them on real cards.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]

# group -> (num_replicas, num_gpus per replica); groups not named keep serve_config.yaml's values
PLACEMENTS: dict[str, dict[str, Any]] = {
    "one_gpu": {"gpus": 1, "groups": {}},
    "one_gpu_heavy_twice": {"gpus": 1, "groups": {
        "stage1_gpu_heavy": (2, 0.4), "stage1_gpu_detection": (1, 0.05), "stage2_gpu_medium": (1, 0.04),
        "stage3_gpu_light": (1, 0.03), "stage4_gpu_fast": (1, 0.02)}},
    "two_gpu_heavy_alone": {"gpus": 2, "groups": {
        "stage1_gpu_heavy": (1, 1.0), "stage1_gpu_detection": (1, 0.15), "stage2_gpu_medium": (1, 0.35),
        "stage3_gpu_light": (1, 0.25), "stage4_gpu_fast": (1, 0.2)}},
    "two_gpu_heavy_twice": {"gpus": 2, "groups": {
        "stage1_gpu_heavy": (2, 0.6), "stage1_gpu_detection": (1, 0.1), "stage2_gpu_medium": (1, 0.2),
        "stage3_gpu_light": (1, 0.1), "stage4_gpu_fast": (1, 0.1)}},
}


def apply_placement(config: dict[str, Any], name: str) -> dict[str, Any]:
    """A copy of a serve config (as loaded from YAML) with the named placement's replicas and GPU fractions."""
    if name not in PLACEMENTS:
        raise ValueError(f"unknown placement {name!r}; known: {', '.join(PLACEMENTS)}")
    out = copy.deepcopy(config)
    wanted = PLACEMENTS[name]["groups"]
    for app in out["applications"]:
        groups = {g["name"]: g for g in app["args"]["groups"]}
        missing = set(wanted) - set(groups)
        if missing:
            raise ValueError(f"placement {name} names groups the config does not have: {sorted(missing)}")
        for group_name, (replicas, gpus) in wanted.items():
            groups[group_name]["num_replicas"] = replicas
            groups[group_name].setdefault("ray_actor_options", {})["num_gpus"] = gpus
    return out


def gpus_needed(name: str) -> int:
    return PLACEMENTS[name]["gpus"]


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in PLACEMENTS:
        print(f"usage: python -m cluster.placements {{{'|'.join(PLACEMENTS)}}} > serve_config.<name>.yaml", file=sys.stderr)
        return 2
    config = yaml.safe_load((REPO / "serve_config.yaml").read_text())
    header = f"# serve_config.yaml with placement {argv[0]} (cluster/placements.py): generated, do not edit by hand.\n"
    sys.stdout.write(header + yaml.safe_dump(apply_placement(config, argv[0]), sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
