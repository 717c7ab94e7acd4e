"""A 2-node Ray cluster on this one machine (a head and a worker, both `ray start` processes), for trying the
multi-node shape without a cloud: custom resources pin groups to the worker, `serve deploy` goes through the
head's dashboard exactly as it would on a real cluster.

  .venv/bin/python -m cluster.local_cluster up /tmp/rs-cluster --config serve_config.cpu.yaml
  .venv/bin/python -m cluster.local_cluster status /tmp/rs-cluster
  .venv/bin/python -m cluster.local_cluster down /tmp/rs-cluster

Private, so it can run beside other engineers' Ray clusters on the same machine:
- everything binds 127.0.0.1, and every port (GCS, dashboard, agents, metrics, object managers, worker
  ports) is chosen free, per node, instead of Ray's fixed defaults (52365, 8265, 10002-19999...);
- both nodes share one private --temp-dir under ROOT (Ray names each node's sockets apart, as its own
  multi-node test cluster does), so the whole cluster is found by that path;
- memory: each node's object store is capped (--object-store-memory). Ray 2.60's `ray start` has no --memory
  flag and refuses `memory` in --resources, so the schedulable memory is what Ray detects; replicas that
  need a bound ask for it (`ray_actor_options.memory`);
- it is stopped by its own processes: those whose command line names ROOT's temp dir. Never a bare
  `ray stop`, which ends every Ray on the machine.

Authentication: token mode (RAY_AUTH_MODE=token), with a fresh token in ROOT/auth_token (0600) passed by
RAY_AUTH_TOKEN_PATH to the nodes, to `serve deploy` and to any driver this module starts. That is what a real
cluster needs (every node and client holds the token) and keeps ~/.ray/auth_token untouched. `auth="disabled"`
is accepted for debugging only.

Code on the cluster: the nodes are started from .venv/bin/ray, where the project is pip-installed editable,
so `import graph` (the config's import_path) works in every worker. On a real cluster the image or the
setup commands install the project (cluster/ray-cluster.aws.yaml), or the config's runtime_env carries it
(`working_dir: "local://..."` / a zip URI).
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
BIN = Path(sys.executable).parent  # .venv/bin: ray, serve
CLUSTER_MARK = "REELSCOPE_LOCAL_CLUSTER"  # in the environment of every process of one local cluster: its ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _free_range(size: int) -> tuple[int, int]:
    """A block of ports for Ray's worker processes: away from Ray's default 10002-19999 that other clusters use,
    and below the kernel's ephemeral range, from which free_port() draws every other port of the cluster."""
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    for _ in range(50):
        low = random.randrange(20000, ephemeral_low - size)
        probes = (low, low + size // 2, low + size - 1)
        try:
            for port in probes:
                with socket.socket() as s:
                    s.bind((LOOPBACK, port))
            return low, low + size - 1
        except OSError:
            continue
    raise RuntimeError("no free port range for Ray workers")


@dataclass
class NodePorts:
    node_manager: int = field(default_factory=free_port)
    object_manager: int = field(default_factory=free_port)
    metrics_export: int = field(default_factory=free_port)
    dashboard_agent_listen: int = field(default_factory=free_port)
    dashboard_agent_grpc: int = field(default_factory=free_port)
    runtime_env_agent: int = field(default_factory=free_port)
    workers: tuple[int, int] = field(default_factory=lambda: _free_range(200))

    def flags(self) -> list[str]:
        return [
            f"--node-manager-port={self.node_manager}", f"--object-manager-port={self.object_manager}",
            f"--metrics-export-port={self.metrics_export}", f"--dashboard-agent-listen-port={self.dashboard_agent_listen}",
            f"--dashboard-agent-grpc-port={self.dashboard_agent_grpc}", f"--runtime-env-agent-port={self.runtime_env_agent}",
            f"--min-worker-port={self.workers[0]}", f"--max-worker-port={self.workers[1]}",
        ]


@dataclass
class LocalCluster:
    root: Path
    auth: str = "token"
    head_cpus: int = 1
    worker_cpus: int = 1
    head_resources: dict[str, float] = field(default_factory=lambda: {"head_node": 1})
    worker_resources: dict[str, float] = field(default_factory=lambda: {"worker_node": 1})
    object_store_bytes: int = 256 * 1024 * 1024  # per node: small, this machine is shared
    extra_env: dict[str, str] = field(default_factory=dict)
    gcs_port: int = 0
    dashboard_port: int = 0
    client_server_port: int = 0
    head: NodePorts | None = None
    worker: NodePorts | None = None

    def __post_init__(self):
        self.root = Path(self.root).resolve()
        if len(str(self.temp_dir)) > 40:
            raise ValueError("ROOT must be a short path: Ray's socket paths under it must fit 107 bytes")

    # ---- addresses ---------------------------------------------------------------------------------------

    @property
    def temp_dir(self) -> Path:
        return self.root / "ray"

    @property
    def token_path(self) -> Path:
        return self.root / "auth_token"

    @property
    def gcs_address(self) -> str:
        return f"{LOOPBACK}:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{LOOPBACK}:{self.dashboard_port}"

    def env(self) -> dict[str, str]:
        """Environment for the nodes and for every client of this cluster (serve CLI, drivers)."""
        env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": self.auth, **self.extra_env,
               CLUSTER_MARK: str(self.root)}
        if self.auth == "token":
            env["RAY_AUTH_TOKEN_PATH"] = str(self.token_path)
        env.pop("RAY_ADDRESS", None)  # never attach to someone else's cluster by accident
        # Every process that resolves its own address (drivers, the dashboard's Serve API) resolves 127.0.0.1 to the
        # machine's reachable one unless this is 0; the nodes are on 127.0.0.1 (cluster/loopback_ray_start.py).
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        return env

    # ---- life cycle ------------------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o700)
        if self.auth == "token" and not self.token_path.exists():
            self.token_path.write_text(secrets.token_hex(32))
            self.token_path.chmod(0o600)
        self.gcs_port, self.dashboard_port, self.client_server_port = free_port(), free_port(), free_port()
        self.head, self.worker = NodePorts(), NodePorts()
        self._save()
        common = [f"--node-ip-address={LOOPBACK}", f"--temp-dir={self.temp_dir}", f"--object-store-memory={self.object_store_bytes}",
                  "--disable-usage-stats"]
        self._ray_start([
            "--head", f"--port={self.gcs_port}", *common, f"--num-cpus={self.head_cpus}", "--num-gpus=0",
            f"--resources={json.dumps(self.head_resources)}", "--include-dashboard=true", f"--dashboard-host={LOOPBACK}",
            f"--dashboard-port={self.dashboard_port}", f"--ray-client-server-port={self.client_server_port}", *self.head.flags(),
        ], timeout)
        self._ray_start([
            f"--address={self.gcs_address}", *common, f"--num-cpus={self.worker_cpus}", "--num-gpus=0",
            f"--resources={json.dumps(self.worker_resources)}", *self.worker.flags(),
        ], timeout)
        self.wait_for_nodes(2, timeout)

    def _ray_start(self, args: list[str], timeout: float) -> None:
        # through cluster/loopback_ray_start.py: Ray's own `ray start` would move the nodes off 127.0.0.1
        done = subprocess.run([str(BIN / "python"), "-m", "cluster.loopback_ray_start", "start", *args], cwd=REPO,
                              env=self.env(), capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"ray start failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")

    def _save(self) -> None:
        (self.root / "cluster.json").write_text(json.dumps(asdict(self), default=str, indent=2))

    @classmethod
    def load(cls, root: Path) -> LocalCluster:
        data = json.loads((Path(root) / "cluster.json").read_text())
        data["root"] = Path(data["root"])
        for key in ("head", "worker"):
            if data.get(key):
                data[key] = NodePorts(**{**data[key], "workers": tuple(data[key]["workers"])})
        return cls(**data)

    def processes(self) -> list[Any]:
        """This cluster's processes, found by what is ours, never by name: a command line naming our temp dir or
        our GCS port; any descendant of those (workers and agents retitle themselves `ray::...`, which also
        overwrites their environment in /proc); any process holding a file open under our temp dir (its logs),
        which catches orphans of an interrupted stop; the CLUSTER_MARK variable where it is still readable."""
        import psutil

        temp_dir, gcs = str(self.temp_dir), f":{self.gcs_port}" if self.gcs_port else None
        found: dict[int, Any] = {}
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if proc.pid == os.getpid():
                continue
            try:
                cmdline = proc.info["cmdline"] or ()
                ours = any(temp_dir in part for part in cmdline) or bool(
                    gcs and any(part.startswith(("--address=", "--gcs-address=", "--gcs_address=")) and part.endswith(gcs)
                                for part in cmdline))
                if not ours:
                    ours = proc.environ().get(CLUSTER_MARK) == str(self.root) or _holds_file_under(proc.pid, temp_dir)
                if ours:
                    found[proc.pid] = proc
                    for child in proc.children(recursive=True):
                        found.setdefault(child.pid, child)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        found.pop(os.getpid(), None)
        return list(found.values())

    def stop(self, grace: float = 15) -> int:
        """SIGTERM this cluster's processes, SIGKILL what is left after `grace` seconds; returns how many there were."""
        import psutil

        procs = self.processes()
        for proc in procs:
            try:
                proc.send_signal(signal.SIGTERM)
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=grace)
        for proc in alive:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=5)
        # Workers started after the first sweep (a replica restarting) are caught by a second one.
        late = self.processes()
        for proc in late:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        return len(procs) + len(late)

    # ---- clients ---------------------------------------------------------------------------------------

    def python(self, code: str, timeout: float = 90) -> Any:
        """Run `code` in a driver attached to this cluster (in its own process: the auth mode and token stay out
        of the caller's Ray). `code` sees `ray` and DASHBOARD (this cluster's, for the state API: left to itself
        that API looks for "the" local Ray and fails when other clusters run on the machine), and prints one JSON
        value as its last line, which is returned."""
        prelude = (f"import json, ray\nDASHBOARD = {self.dashboard_url!r}\n"
                   f"ray.init(address={self.gcs_address!r}, logging_level='ERROR', log_to_driver=False)\n")
        done = subprocess.run([sys.executable, "-c", prelude + code], env=self.env(), capture_output=True, text=True,
                              timeout=timeout, cwd=REPO)
        if done.returncode != 0:
            raise RuntimeError(f"driver failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def nodes(self) -> list[dict[str, Any]]:
        return self.python("print(json.dumps([{k: n[k] for k in ('NodeID', 'Alive', 'Resources')} for n in ray.nodes()]))")

    def wait_for_nodes(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if sum(n["Alive"] for n in self.nodes()) >= count:
                    return
            except RuntimeError:
                pass
            time.sleep(2)
        raise TimeoutError(f"{count} nodes did not join within {timeout} s")

    def node_id(self, resource: str) -> str:
        """The id of the node that offers a custom resource (head_node, worker_node)."""
        return next(n["NodeID"] for n in self.nodes() if n["Alive"] and resource in n["Resources"])

    def serve(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run([str(BIN / "serve"), *args, "--address", self.dashboard_url], env=self.env(),
                              capture_output=True, text=True, timeout=timeout, cwd=REPO)
        if done.returncode != 0:
            raise RuntimeError(f"serve {args[0]} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done.stdout

    def deploy(self, config_path: Path) -> None:
        self.serve("deploy", str(config_path))

    def serve_status(self) -> dict[str, Any]:
        return yaml.safe_load(self.serve("status")) or {}

    def wait_until_running(self, timeout: float) -> dict[str, Any]:
        """Until every application is RUNNING and every deployment HEALTHY; raises with the last status."""
        deadline, status = time.monotonic() + timeout, {}
        while time.monotonic() < deadline:
            try:
                status = self.serve_status()
            except (RuntimeError, subprocess.TimeoutExpired):
                status = {}
            apps = status.get("applications") or {}
            if apps and all(a.get("status") == "RUNNING" for a in apps.values()):
                deployments = [d for a in apps.values() for d in (a.get("deployments") or {}).values()]
                if deployments and all(d.get("status") == "HEALTHY" for d in deployments):
                    return status
            if any(a.get("status") == "DEPLOY_FAILED" for a in apps.values()):
                raise RuntimeError(f"deploy failed: {json.dumps(status, default=str)[-3000:]}")
            time.sleep(3)
        raise TimeoutError(f"not RUNNING/HEALTHY within {timeout} s: {json.dumps(status, default=str)[-3000:]}")


def cpu_config_for_cluster(source: Path, http_port: int, pin: dict[str, dict[str, float]] | None = None) -> dict[str, Any]:
    """serve_config.cpu.yaml made fit for this cluster: HTTP on a free loopback port, the head's proxy only (two
    proxies of one machine would fight over the port), paths absolute, groups pinned by custom resources."""
    from deployments.launch import load_config

    config = load_config(source)
    config["proxy_location"] = "HeadOnly"
    config["http_options"] = {"host": LOOPBACK, "port": http_port}
    for app in config["applications"]:
        for group in app["args"]["groups"]:
            if pin and group["name"] in pin:
                group.setdefault("ray_actor_options", {})["resources"] = pin[group["name"]]
    return config


def _holds_file_under(pid: int, folder: str) -> bool:
    """Reads /proc/PID/fd itself: psutil skips files already deleted, which an orphan's logs may be."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(folder + "/"):
                return True
        except OSError:
            continue
    return False


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "status", "down"])
    parser.add_argument("root", type=Path, help="private folder of this cluster (short path, e.g. /tmp/rs-cluster)")
    parser.add_argument("--config", type=Path, default=REPO / "serve_config.cpu.yaml")
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--pin", action="append", default=[], metavar="GROUP",
                        help="run this group on the worker node (repeatable)")
    args = parser.parse_args(argv)
    if args.action == "up":
        cluster = LocalCluster(args.root)
        cluster.start()
        config = cpu_config_for_cluster(args.config, args.http_port, {g: {"worker_node": 0.01} for g in args.pin})
        path = cluster.root / "serve_config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        cluster.deploy(path)
        cluster.wait_until_running(600)
        print(f"up: http://{LOOPBACK}:{args.http_port}  dashboard {cluster.dashboard_url}  "
              f"metrics :{cluster.head.metrics_export} (head) :{cluster.worker.metrics_export} (worker)\n"
              f"clients: RAY_AUTH_MODE=token RAY_AUTH_TOKEN_PATH={cluster.token_path} serve status --address {cluster.dashboard_url}")
    elif args.action == "status":
        print(yaml.safe_dump(LocalCluster.load(args.root).serve_status(), sort_keys=False))
    else:
        print(f"stopped {LocalCluster.load(args.root).stop()} processes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
