"""Two GPUs: each named placement (cluster/placements.py) puts every group's replicas on the cards it intends
(logical GPUs: Ray assigns ids by the fractions, so this runs on a CPU-only machine)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration
LIGHT = ("stage1_gpu_detection", "stage2_gpu_medium", "stage3_gpu_light", "stage4_gpu_fast")


def placed(placement: str) -> dict[str, list[list[str]]]:
    probe = Path(__file__).with_name("two_gpu_probe.py")
    done = subprocess.run([sys.executable, str(probe), placement, str(free_port()), str(free_port())],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # Ray also prints its workers' log lines to stdout: take the probe's JSON line.
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith('{"placement"')))["gpu_ids"]


def test_heavy_alone_has_a_card_to_itself_and_the_light_groups_share_the_other():
    ids = placed("two_gpu_heavy_alone")
    (heavy,) = ids["stage1_gpu_heavy"]
    light = {tuple(ids[g][0]) for g in LIGHT}
    assert len(heavy) == 1 and len(light) == 1  # the four light groups share one card ...
    (card,) = light
    assert len(card) == 1 and card[0] != heavy[0]  # ... which is not the heavy group's card
    assert ids["cpu_parallel"] == [[], []]  # two CPU replicas, no GPU


def test_heavy_twice_puts_one_heavy_replica_on_each_card():
    ids = placed("two_gpu_heavy_twice")
    heavy = sorted(tuple(r) for r in ids["stage1_gpu_heavy"])
    assert heavy == [("0",), ("1",)]
    assert all(len(ids[g]) == 1 and len(ids[g][0]) == 1 for g in LIGHT)  # each light group got a card beside one
