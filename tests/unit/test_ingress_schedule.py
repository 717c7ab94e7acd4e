"""How the ingress schedules one request, without Ray: fake groups record when each analyzer is called, a fake
decode holds the frame pass until the audio-only analyzers have been called (it fails the request if they are
not, which is what a decode-then-run ingress would do), and each analyzer waits only for its own upstream.
With `seek_first`, the full pass is also held until video_llava, whose 8 frames come from a pass of their own,
has been called."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from analyzers.base import AnalyzerStatus, FrameSpec, Needs
from analyzers.media import AudioTrack, FrameSet, MediaBundle, MediaError, VideoMetadata
from deployments import ingress as ingress_module
from deployments.planner import make_plan
from deployments.schema import AnalyzerInfo, AnalyzerOutcome, MediaRefs

FRAMES = FrameSpec(max_side=64)
EIGHT = FrameSpec(count=8, max_side=336)
INFOS = {
    i.name: i
    for i in [
        AnalyzerInfo(name="cut_analysis", description="", group="video", implemented=True, needs=Needs(frames=FRAMES)),
        AnalyzerInfo(name="scene_segmentation", description="", group="video", implemented=True,
                     needs=Needs(frames=FRAMES, upstream=("cut_analysis",))),
        AnalyzerInfo(name="speech_transcription", description="", group="audio", implemented=True, needs=Needs(audio=True)),
        AnalyzerInfo(name="video_llava", description="", group="video", implemented=True, needs=Needs(frames=EIGHT)),
        AnalyzerInfo(name="speech_rate", description="", group="audio", implemented=True,
                     needs=Needs(audio=True, upstream=("speech_transcription",))),
    ]
}
METADATA = VideoMetadata(duration=1.0, fps=10, frame_count=10, width=64, height=64, codec="h264", has_audio=True,
                         size_bytes=1, container="mp4")
AUDIO_ONLY = {"speech_transcription", "speech_rate"}


class FakeGroup:
    """Stands in for a DeploymentHandle: `.options(stream=True).run_stream.remote(call)` yields one outcome."""

    def __init__(self, calls: list[tuple[str, bool]], audio_started: threading.Event, fail: set[str],
                 frame_keys: dict[str, list[str]], llava_started: threading.Event):
        self.calls, self.audio_started, self.fail = calls, audio_started, fail
        self.frame_keys, self.llava_started = frame_keys, llava_started
        self.run_stream = self

    def options(self, **_):
        return self

    def remote(self, call):
        return self._stream(call)

    async def _stream(self, call):
        (name,) = call.analyzers
        self.calls.append((name, bool(call.media.frame_refs)))
        self.frame_keys[name] = sorted(call.media.frame_refs)
        if name == "video_llava":
            self.llava_started.set()
        if AUDIO_ONLY <= {n for n, _ in self.calls}:
            self.audio_started.set()
        await asyncio.sleep(0.01)
        status = AnalyzerStatus.error if name in self.fail else AnalyzerStatus.ok
        outcome = AnalyzerOutcome(status=status, seconds=0.01, result={} if status == AnalyzerStatus.ok else None,
                                  error="broken" if status == AnalyzerStatus.error else None)
        yield name, outcome.model_dump(mode="json")


@pytest.fixture
def run(tmp_path, monkeypatch):
    """Run one request through Ingress._analyze_core with fake groups and decode; returns (report, calls,
    frame_keys, decodes): the analyzers in call order, the frame-set keys each was handed, and the frame specs of
    each decode pass in the order the passes began."""
    audio_started, llava_started = threading.Event(), threading.Event()
    state = {"seek_first": (), "first_pass_error": None}
    decodes: list[set] = []

    def fake_decode(path, specs, want_audio, metadata, *args):
        if specs:
            decodes.append(set(specs))
        if specs and specs <= set(state["seek_first_specs"]):  # the seek pass: it does not wait for anything
            if state["first_pass_error"]:
                raise MediaError(state["first_pass_error"])
        elif specs:  # the full pass: a decode-then-run ingress calls no analyzer before this returns
            assert audio_started.wait(10), "the audio-only analyzers did not start while the frames were decoding"
            if state["seek_first_specs"] and not state["first_pass_error"]:
                assert llava_started.wait(10), "video_llava did not start while the full pass was decoding"
        if specs:
            frames = np.zeros((2, 64, 64, 3), np.uint8)
            return MediaBundle(metadata, {s: FrameSet(s, frames, np.array([0.0, 0.5]), np.array([0, 5])) for s in specs})
        return MediaBundle(metadata, audio=AudioTrack(np.zeros(16000, np.float32)) if want_audio else None)

    def fake_put(bundle):  # references stand in for ObjectRefs: the groups here are fakes
        return MediaRefs(metadata=bundle.metadata, frame_refs={s.key: "frames-ref" for s in bundle.frame_sets},
                         audio_ref="audio-ref" if bundle.audio is not None else None)

    original = ingress_module.Ingress.__bases__[0]  # the class under serve.ingress's ASGI wrapper
    # serve.ingress ships the class by value: its methods read a copy of the module's names, so patch that copy
    names = original._analyze_core.__globals__
    for name, fake in [("decode", fake_decode), ("_put", fake_put), ("make_thumbnails", lambda bundle: []),
                       ("record_report", lambda report: None)]:
        monkeypatch.setitem(names, name, fake)

    def go(requested: list[str], fail: set[str] = frozenset(), seek_first: tuple[str, ...] = (),
           first_pass_error: str | None = None):
        state.update(seek_first_specs=[INFOS[n].needs.frames for n in seek_first], first_pass_error=first_pass_error)
        settings = ingress_module.IngressSettings(data_dir=tmp_path, max_upload_bytes=1 << 20, max_duration_seconds=60,
                                                  max_pixels=1 << 20, max_concurrent_decodes=1, group_timeout_seconds=30,
                                                  seek_first=list(seek_first))
        calls: list[tuple[str, bool]] = []
        frame_keys: dict[str, list[str]] = {}
        groups = {g: FakeGroup(calls, audio_started, fail, frame_keys, llava_started) for g in ("video", "audio")}
        ingress = original(groups, [i.model_dump(mode="json") for i in INFOS.values()], settings.model_dump(mode="json"))
        source = ingress_module._Source(Path(tmp_path / "clip.mp4"), "clip.mp4", "0" * 64, 1)
        prepared = ingress_module._Prepared(source, False, METADATA, make_plan(requested, INFOS, has_audio=True))
        report = asyncio.run(ingress._analyze_core(prepared, 0.0, refresh=True))
        return report, calls, frame_keys, decodes

    return go


def test_audio_only_analyzers_run_while_the_frames_decode(run):
    report, calls, _, _ = run(["scene_segmentation", "speech_rate"])
    assert all(o.status == AnalyzerStatus.ok for o in report.analyzers.values()), report.analyzers
    order = [name for name, _ in calls]
    # both audio analyzers (speech_rate after its upstream) were called before any frame analyzer
    assert order[:2] == ["speech_transcription", "speech_rate"] and set(order[2:]) == {"cut_analysis", "scene_segmentation"}
    assert order.index("cut_analysis") < order.index("scene_segmentation")
    # audio analyzers were handed no frame references (none existed yet), frame analyzers were
    assert dict(calls) == {"speech_transcription": False, "speech_rate": False, "cut_analysis": True, "scene_segmentation": True}


def test_a_failed_upstream_skips_only_its_dependents(run):
    report, calls, _, _ = run(["scene_segmentation", "speech_rate"], fail={"cut_analysis"})
    status = {n: o.status for n, o in report.analyzers.items()}
    assert status == {"cut_analysis": AnalyzerStatus.error, "scene_segmentation": AnalyzerStatus.skipped,
                      "speech_transcription": AnalyzerStatus.ok, "speech_rate": AnalyzerStatus.ok}
    assert "scene_segmentation" not in [name for name, _ in calls]
    assert "needs cut_analysis" in report.analyzers["scene_segmentation"].error


def test_a_seek_first_analyzer_starts_before_the_full_pass_ends_and_its_frames_are_decoded_once(run):
    report, calls, frame_keys, decodes = run(["video_llava", "scene_segmentation", "speech_rate"], seek_first=("video_llava",))
    assert all(o.status == AnalyzerStatus.ok for o in report.analyzers.values()), report.analyzers
    # the fake full pass refuses to finish until video_llava was called: it started on its own pass's frames
    assert decodes == [{EIGHT}, {FRAMES}] or decodes == [{FRAMES}, {EIGHT}]  # each spec in one pass, never twice
    assert frame_keys["video_llava"] == [EIGHT.key]
    # the others get every spec's reference, the first pass's included (an analyzer may share video_llava's spec)
    assert frame_keys["cut_analysis"] == sorted([EIGHT.key, FRAMES.key])


def test_without_seek_first_every_spec_is_one_pass(run):
    report, _, frame_keys, decodes = run(["video_llava", "cut_analysis", "speech_rate"])
    assert all(o.status == AnalyzerStatus.ok for o in report.analyzers.values())
    assert decodes == [{EIGHT, FRAMES}]


def test_a_failing_first_pass_answers_415_without_hanging(run):
    with pytest.raises(ingress_module.ApiError) as caught:
        run(["video_llava", "cut_analysis", "speech_rate"], seek_first=("video_llava",), first_pass_error="damaged near frame 3")
    assert caught.value.status == 415 and "damaged near frame 3" in caught.value.message
