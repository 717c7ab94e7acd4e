"""Configuration is typed and validated at start: bad combinations fail before any replica starts."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from analyzers.registry import ANALYZER_NAMES
from deployments.planner import make_plan
from graph import AppConfig, analyzer_infos

REPO = Path(__file__).resolve().parents[2]


def args_of(name: str) -> dict:
    return yaml.safe_load((REPO / name).read_text())["applications"][0]["args"]


@pytest.mark.parametrize("name", ["serve_config.yaml", "serve_config.cpu.yaml"])
def test_shipped_configs_validate_and_place_every_analyzer_once(name):
    config = AppConfig.model_validate(args_of(name))
    placed = [a for g in config.groups for a in g.analyzers]
    assert sorted(placed) == sorted(ANALYZER_NAMES) and len(ANALYZER_NAMES) == 21


def test_production_profile_keeps_the_gpu_shape():
    groups = {g.name: g for g in AppConfig.model_validate(args_of("serve_config.yaml")).groups}
    assert "video_llava" in groups["stage1_gpu_heavy"].analyzers
    assert groups["stage1_gpu_heavy"].ray_actor_options.num_gpus == 0.4
    config = AppConfig.model_validate(args_of("serve_config.yaml"))
    # everything fits one card, the ingress's NVDEC share included
    assert config.ingress.ray_actor_options.num_gpus + sum(g.ray_actor_options.num_gpus for g in groups.values()) <= 1.0


def test_cpu_profile_fits_two_cores():
    config = AppConfig.model_validate(args_of("serve_config.cpu.yaml"))
    total = config.ingress.ray_actor_options.num_cpus + sum(
        g.ray_actor_options.num_cpus * g.num_replicas for g in config.groups
    )
    assert total <= 2.0
    assert all(g.ray_actor_options.num_gpus == 0 for g in config.groups)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda a: a["groups"][0]["analyzers"].append("cut_analysis"), "in two groups"),
        (lambda a: a["groups"][0]["analyzers"].append("telepathy"), "unknown analyzer"),
        (lambda a: a["analyzers"].update(speech_transcription={"beam_size": 0}), "beam_size"),
        (lambda a: a["analyzers"].update(speech_transcription={"no_such_option": 1}) or None, None),
        (lambda a: a["groups"][0]["ray_actor_options"].update(num_gpus=-1), "num_gpus"),
        (lambda a: a["groups"].append(copy.deepcopy(a["groups"][0])), "unique"),
        (lambda a: a.update(critical_path=["text_overlay", "mind_reading"]), "critical_path names unknown analyzers: mind_reading"),
        (lambda a: a["ingress"].update(decoder="nvdec"), "decoder nvdec needs a GPU share"),
        (lambda a: a["ingress"].update(decoder="quicksync"), "decoder"),
        (lambda a: a["groups"][0].update(gil_switch_interval_ms=0), "gil_switch_interval_ms"),
        (lambda a: a["ingress"].update(seek_first=["cut_analysis"]), "cut_analysis needs frames at a rate"),
        (lambda a: a["ingress"].update(seek_first=["speech_rate"]), "speech_rate needs no frames"),
        (lambda a: a["ingress"].update(seek_first=["telepathy"]), "not an implemented analyzer"),
    ],
)
def test_bad_configs_are_rejected_with_the_reason(mutate, message):
    args = args_of("serve_config.cpu.yaml")
    mutate(args)
    if message is None:
        # Unknown analyzer options are ignored by pydantic's default; known ones are type-checked.
        AppConfig.model_validate(args)
        return
    with pytest.raises(ValidationError, match=message):
        AppConfig.model_validate(args)


def test_catalogue_reports_not_built_analyzers_without_a_schema():
    infos = analyzer_infos(AppConfig.model_validate(args_of("serve_config.cpu.yaml")))
    assert len(infos) == 21
    for i in infos:
        assert (i.result_schema is not None) == i.implemented


def test_only_the_cpu_profile_names_a_critical_path():
    cpu = AppConfig.model_validate(args_of("serve_config.cpu.yaml"))
    assert not cpu.runs_in_background("text_overlay") and cpu.runs_in_background("eye_tracking")
    production = AppConfig.model_validate(args_of("serve_config.yaml"))
    assert production.critical_path is None and not production.runs_in_background("eye_tracking")


def test_on_cpu_composition_runs_beside_text_overlay_not_after_it():
    # composition_analysis waits for no analyzer, so it has no place on the chain behind text_overlay's OCR
    cpu = AppConfig.model_validate(args_of("serve_config.cpu.yaml"))
    infos = {i.name: i for i in analyzer_infos(cpu)}
    plan = make_plan(["text_overlay", "composition_analysis", "product_detection"], infos, has_audio=True)
    assert plan.waits_for == {"text_overlay": [], "composition_analysis": [], "product_detection": ["text_overlay"]}
    assert cpu.critical_path == ["text_overlay"] and cpu.runs_in_background("composition_analysis")


def test_the_decoder_is_part_of_the_result_cache_key():
    """NVDEC's pixels differ from FFmpeg's by a few levels, so a report made with one is not the other's."""
    from graph import config_digest

    args = args_of("serve_config.yaml")
    args["ingress"].update(decoder="cpu")
    cpu = config_digest(AppConfig.model_validate(args))
    args["ingress"].update(decoder="nvdec", ray_actor_options={"num_cpus": 4, "num_gpus": 0.05})
    assert config_digest(AppConfig.model_validate(args)) != cpu
