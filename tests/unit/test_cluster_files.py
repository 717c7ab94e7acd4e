"""The deployment files in cluster/ stay valid and in step with serve_config.yaml (no Ray started)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from cluster import make_rayservice

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"


def test_launcher_config_follows_rays_schema():
    import ray.autoscaler

    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    config = yaml.safe_load((CLUSTER / "ray-cluster.aws.yaml").read_text())
    jsonschema.validate(config, schema)
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    gpu_types = [t for t in types.values() if t["resources"].get("GPU")]
    assert gpu_types and all(t["resources"]["GPU"] == 1 for t in gpu_types)
    assert sum(t.get("max_workers", 0) for t in types.values()) <= config["max_workers"]
    # every node authenticates with the same token, and setup installs the project
    assert "~/.ray/auth_token" in config["file_mounts"]
    assert any("scripts/setup.sh" in c for c in config["setup_commands"])
    assert all("RAY_AUTH_MODE=token" in c for c in config["head_start_ray_commands"] + config["worker_start_ray_commands"])


def test_launcher_config_is_the_same_schema_the_launcher_itself_checks():
    """A config that breaks the schema is refused the way `ray up` refuses it."""
    from ray.autoscaler._private.util import validate_config

    config = yaml.safe_load((CLUSTER / "ray-cluster.aws.yaml").read_text())
    broken = copy.deepcopy(config)
    broken["available_node_types"]["gpu_worker"]["resources"]["GPU"] = 0.5  # the schema wants whole numbers
    with pytest.raises(jsonschema.ValidationError):
        validate_config(broken)


def test_rayservice_yaml_is_exactly_what_the_generator_makes_now():
    assert (CLUSTER / "rayservice.yaml").read_text() == make_rayservice.render(), \
        "cluster/rayservice.yaml is stale: run .venv/bin/python -m cluster.make_rayservice"


def test_rayservice_serve_config_is_serve_config_yaml_plus_the_kubernetes_store():
    manifest = yaml.safe_load((CLUSTER / "rayservice.yaml").read_text())
    assert manifest["apiVersion"] == "ray.io/v1" and manifest["kind"] == "RayService"
    served = yaml.safe_load(manifest["spec"]["serveConfigV2"])
    source = yaml.safe_load((REPO / "serve_config.yaml").read_text())
    expected = copy.deepcopy(source["applications"])
    for app in expected:
        app["args"]["ingress"].update(make_rayservice.KUBERNETES_INGRESS)
    assert served["applications"] == expected
    assert served["http_options"] == source["http_options"] and served["proxy_location"] == source["proxy_location"]


def test_rayservice_has_a_head_and_one_gpu_per_worker_pod_with_token_auth():
    spec = yaml.safe_load((CLUSTER / "rayservice.yaml").read_text())["spec"]["rayClusterConfig"]
    assert spec["authOptions"]["mode"] == "token"
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    (workers,) = spec["workerGroupSpecs"]
    (container,) = workers["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert 1 <= workers["minReplicas"] <= workers["replicas"] <= workers["maxReplicas"]
    # one worker pod holds every replica serve_config.yaml deploys: their GPU fractions fit its card, their CPUs its CPUs
    args = yaml.safe_load((REPO / "serve_config.yaml").read_text())["applications"][0]["args"]
    deployments = [args["ingress"], *args["groups"]]
    asks = [(d.get("num_replicas", 1), d["ray_actor_options"]) for d in deployments]
    assert sum(n * o.get("num_gpus", 0) for n, o in asks) <= 1.0 + 1e-9
    assert sum(n * o.get("num_cpus", 1) for n, o in asks) <= int(container["resources"]["limits"]["cpu"])


def test_the_app_config_in_the_manifest_passes_the_services_own_validation():
    from graph import AppConfig

    manifest = yaml.safe_load((CLUSTER / "rayservice.yaml").read_text())
    for app in yaml.safe_load(manifest["spec"]["serveConfigV2"])["applications"]:
        config = AppConfig.model_validate(app["args"])
        assert config.ingress.store_url.startswith("postgresql://") and config.ingress.retention.max_age_days


def test_grafana_dashboard_is_valid_and_queries_reelscope_and_serve_metrics():
    dashboard = json.loads((CLUSTER / "grafana-reelscope.json").read_text())
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert all(e.count("(") == e.count(")") for e in exprs)
    metrics = {m for e in exprs for m in re.findall(r"\b(ray_[a-z_]+)", e)}
    assert any(m.startswith("ray_reelscope_analyzer_seconds") for m in metrics)
    assert any(m.startswith("ray_serve_") for m in metrics)


@pytest.mark.parametrize("name", ["one_gpu", "two_gpu_heavy_alone", "two_gpu_heavy_twice"])
def test_each_placement_is_a_valid_config_that_fits_its_cards(name, capsys):
    from cluster import placements
    from graph import AppConfig

    assert placements.main([name]) == 0
    config = yaml.safe_load(capsys.readouterr().out)
    app = AppConfig.model_validate(config["applications"][0]["args"])  # validated as at start
    cards = placements.gpus_needed(name)
    per_replica = [(g.ray_actor_options.num_gpus, g.num_replicas) for g in app.groups if g.ray_actor_options.num_gpus]
    assert sum(f * n for f, n in per_replica) <= cards + 1e-9  # everything fits on the host's cards
    assert all(f <= 1 for f, _ in per_replica)
    if name == "one_gpu":
        assert config == yaml.safe_load((REPO / "serve_config.yaml").read_text())


def test_an_unknown_placement_or_group_is_refused():
    from cluster.placements import PLACEMENTS, apply_placement

    config = yaml.safe_load((REPO / "serve_config.yaml").read_text())
    with pytest.raises(ValueError, match="unknown placement"):
        apply_placement(config, "three_gpu")
    config["applications"][0]["args"]["groups"] = config["applications"][0]["args"]["groups"][1:]
    with pytest.raises(ValueError, match="stage1_gpu_heavy"):
        apply_placement(config, next(iter(p for p in PLACEMENTS if p != "one_gpu")))
