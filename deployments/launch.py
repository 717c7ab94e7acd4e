"""Start a private local Ray on 127.0.0.1 and deploy a serve config file to it.

Private means: its own temp dir, bound to loopback, shut down by its own handle (never `ray stop`, which
would end every Ray on the machine). Token authentication: this cluster listens on 127.0.0.1 only, so the
embedded default sets RAY_AUTH_MODE=disabled explicitly (Ray 2.60 would otherwise turn token auth on and
write ~/.ray/auth_token); a multi-node cluster uses token mode (see cluster/).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

LOOPBACK = "127.0.0.1"


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a serve config file; relative paths in the ingress args are taken from the config's own folder."""
    path = Path(path).resolve()
    config = yaml.safe_load(path.read_text())
    for app in config.get("applications", []):
        ingress = app.setdefault("args", {}).setdefault("ingress", {})
        for key in ("media_root", "data_dir"):
            if ingress.get(key) and not Path(ingress[key]).is_absolute():
                ingress[key] = str((path.parent / ingress[key]).resolve())
    return config


def start_local_ray(num_cpus: float | None = None, num_gpus: float | None = None, dashboard: bool = True,
                    object_store_bytes: int | None = None, env_vars: dict[str, str] | None = None,
                    dashboard_port: int = 8265, metrics_export_port: int | None = None) -> str:
    """Start a private Ray head on loopback; returns its temp dir. Idempotent within one process.
    `metrics_export_port`: where this node serves Prometheus metrics (Ray's and reelscope_*); None: Ray picks one."""
    import ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Ray starts every worker at niceness 15. The CPU profile's critical path (graph.AppConfig.critical_path) runs
    # at the workers' niceness against background analyzers in SCHED_IDLE, whose weight (3) is small next to nice 0's
    # (1024) but not next to nice 15's (36): four runnable idle threads took a quarter of the first core from
    # text_overlay (measured: 0.93 s vs 0.66 s for the same loop; 0.73 s at nice 0). Our own Ray's workers are the
    # service, so they run at 0, like the raylet; RAY_worker_niceness set beforehand still wins.
    os.environ.setdefault("RAY_worker_niceness", "0")
    if ray.is_initialized():
        return ""  # already connected in this process
    temp_dir = tempfile.mkdtemp(prefix="rs-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    # Ray 2.60 turns a loopback node address into the machine's reachable one (services.resolve_ip_for_localhost)
    # unless multi-node clusters are off (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read once at `import ray`), and its
    # GCS and raylets then listen on every interface: seen here as *:PORT. This Ray is one node by design, so
    # clusters are off while it starts (and on again after: cluster/local_cluster.py starts real worker nodes).
    from ray._private import ray_constants

    clusters_enabled, ray_constants.ENABLE_RAY_CLUSTER = ray_constants.ENABLE_RAY_CLUSTER, False
    try:
        ray.init(
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            _node_ip_address=LOOPBACK,
            _temp_dir=temp_dir,
            include_dashboard=dashboard,
            dashboard_host=LOOPBACK,
            dashboard_port=dashboard_port,
            object_store_memory=object_store_bytes,
            _metrics_export_port=metrics_export_port,
            runtime_env={"env_vars": {"RAY_AUTH_MODE": os.environ["RAY_AUTH_MODE"], **(env_vars or {})}},
            logging_level="WARNING",
        )
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = clusters_enabled
    address = ray.util.get_node_ip_address()
    if address != LOOPBACK:  # a Ray that resolves addresses another way: refuse rather than listen on the network
        ray.shutdown()
        raise RuntimeError(f"the private Ray came up on {address}, not {LOOPBACK}; refusing to serve from it")
    return temp_dir


def keep_replica_grpc_on_loopback() -> None:
    """Called first in every replica. Serve 2.60 starts an inter-deployment gRPC server in each replica on [::]:0,
    every interface, with no setting to change it (serve/_private/replica.py); on a node whose address is 127.0.0.1
    (start_local_ray, cluster/local_cluster.py) it is bound to 127.0.0.1 instead, where that node's replicas reach it.
    Nodes of a real cluster keep Ray's binding."""
    import ray
    from ray.serve._private import replica

    if ray.util.get_node_ip_address() != LOOPBACK or getattr(replica, "_reelscope_on_loopback", False):
        return
    bind = replica.add_port_to_grpc_server

    def bind_on_loopback(server, address: str) -> int:
        return bind(server, f"{LOOPBACK}:0" if address == "[::]:0" else address)

    replica.add_port_to_grpc_server = bind_on_loopback
    replica._reelscope_on_loopback = True


def config_env_vars(config: dict[str, Any]) -> dict[str, str]:
    """The env_vars of the config's applications, so a Ray we start ourselves gives them to every replica."""
    env: dict[str, str] = {}
    for app in config.get("applications", []):
        env.update({k: str(v) for k, v in (app.get("runtime_env") or {}).get("env_vars", {}).items()})
    return env


def deploy(config: dict[str, Any], blocking: bool = False) -> None:
    """Deploy every application of a loaded serve config to the connected Ray (HTTP on the config's host/port)."""
    from ray import serve

    from graph import build_app

    http = config.get("http_options", {})
    serve.start(http_options={"host": http.get("host", LOOPBACK), "port": http.get("port", 8000)},
                proxy_location=config.get("proxy_location", "HeadOnly"))
    for app in config["applications"]:
        serve.run(build_app(app.get("args", {})), name=app["name"], route_prefix=app.get("route_prefix", "/"),
                  blocking=False)
    if blocking:
        import time

        while True:
            time.sleep(3600)
