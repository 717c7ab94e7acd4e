"""Two GPUs: the heavy group alone on one card, the other GPU groups together on the other (logical GPUs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import free_port

pytestmark = pytest.mark.integration


def test_groups_land_on_the_cards_the_placement_intends():
    probe = Path(__file__).with_name("two_gpu_probe.py")
    done = subprocess.run([sys.executable, str(probe), str(free_port()), str(free_port())],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # Ray also prints its workers' log lines to stdout: take the probe's JSON line.
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith('{"placement"')))
    ids = result["gpu_ids"]
    heavy = ids["stage1_gpu_heavy"]
    shared = {tuple(ids[g]) for g in ("stage2_gpu_medium", "stage3_gpu_light", "stage4_gpu_fast")}
    assert len(heavy) == 1 and len(shared) == 1  # the three light groups share one card
    (light,) = shared
    assert len(light) == 1 and light[0] != heavy[0]  # ... which is not the heavy group's card
    assert ids["cpu_parallel"] == []
