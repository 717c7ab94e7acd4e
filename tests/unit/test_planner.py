"""Planning: dependency stages, upstream added on demand, what is reported without running."""

from __future__ import annotations

import pytest

from analyzers.base import AnalyzerStatus, FrameSpec, Needs
from deployments.planner import UnknownAnalyzers, make_plan
from deployments.schema import AnalyzerInfo


def info(name, group="g", implemented=True, **needs):
    return AnalyzerInfo(name=name, description=name, group=group, implemented=implemented, needs=Needs(**needs))


INFOS = {
    i.name: i
    for i in [
        info("cut_analysis", frames=FrameSpec(max_side=128)),
        info("scene_segmentation", upstream=("cut_analysis",)),
        info("speech_transcription", audio=True),
        info("speech_rate", upstream=("speech_transcription",)),
        info("audio_analysis", audio=True),
        info("temporal_flow", upstream=("cut_analysis",), optional_upstream=("audio_analysis", "speech_transcription")),
        info("video_llava", implemented=False),
        info("age_estimation", group=None),
    ]
}


def test_upstream_is_added_and_ordered_first():
    plan = make_plan(["speech_rate"], INFOS, has_audio=True)
    assert plan.requested == ["speech_transcription", "speech_rate"]
    assert plan.stages == [["speech_transcription"], ["speech_rate"]]


def test_optional_upstream_waits_only_when_it_runs():
    assert make_plan(["temporal_flow"], INFOS, True).stages == [["cut_analysis"], ["temporal_flow"]]
    stages = make_plan(["temporal_flow", "audio_analysis"], INFOS, True).stages
    assert stages == [["cut_analysis", "audio_analysis"], ["temporal_flow"]]


def test_everything_when_nothing_is_asked_for():
    plan = make_plan(None, INFOS, has_audio=True)
    assert set(plan.requested) == set(INFOS)
    assert plan.preset["video_llava"].status == AnalyzerStatus.not_implemented
    assert plan.preset["age_estimation"].status == AnalyzerStatus.unavailable
    assert "video_llava" not in plan.to_run and "age_estimation" not in plan.to_run


def test_no_audio_skips_audio_analyzers_and_their_dependents_with_a_reason():
    plan = make_plan(["speech_rate", "cut_analysis"], INFOS, has_audio=False)
    assert plan.preset["speech_transcription"].status == AnalyzerStatus.skipped
    assert "no audio" in plan.preset["speech_transcription"].error
    assert plan.preset["speech_rate"].status == AnalyzerStatus.skipped
    assert "speech_transcription" in plan.preset["speech_rate"].error
    assert plan.stages == [["cut_analysis"]]


def test_unknown_analyzers_are_named():
    with pytest.raises(UnknownAnalyzers) as err:
        make_plan(["cut_analysis", "mind_reading"], INFOS, True)
    assert err.value.names == ["mind_reading"]


def test_each_analyzer_waits_only_for_its_own_upstream_that_runs():
    plan = make_plan(["temporal_flow", "speech_rate", "audio_analysis"], INFOS, True)
    assert plan.waits_for == {
        "cut_analysis": [], "temporal_flow": ["cut_analysis", "audio_analysis", "speech_transcription"],
        "speech_transcription": [], "speech_rate": ["speech_transcription"], "audio_analysis": [],
    }
    # an optional upstream that does not run in this request is not waited for
    assert make_plan(["temporal_flow"], INFOS, True).waits_for["temporal_flow"] == ["cut_analysis"]
