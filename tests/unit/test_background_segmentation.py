"""background_segmentation: a person photo composited on known backgrounds (green, solid, blurred, detailed)."""

from __future__ import annotations

import pytest

from analyzers.background_segmentation import SEGMENT_FRAMES, BackgroundSegmentation
from analyzers.base import AnalyzerUnavailable
from analyzers.media import decode
from tests.synth import ffmpeg, solid_clip

PERSON = "face_recognition_obama.jpg"


def composite(shared_media, out, background: str, seconds: float = 3.0):
    """The portrait (300 px wide) standing at the bottom centre of a 360x640 frame over `background`:
    a lavfi colour, or 'coffee' / 'coffee_blurred' (the coffee photo filling the frame)."""
    person = ["-loop", "1", "-i", str(shared_media / "images" / PERSON)]
    if background.startswith("coffee"):
        blur = ",gblur=sigma=25" if background.endswith("blurred") else ""
        back = ["-loop", "1", "-i", str(shared_media / "images" / "skimage_coffee.png")]
        prep = f"[0:v]scale=360:640,setsar=1{blur}[bg]"
    else:
        back = ["-f", "lavfi", "-i", f"color=c={background}:s=360x640:r=25"]
        prep = "[0:v]setsar=1[bg]"
    ffmpeg(*back, *person, "-filter_complex", f"{prep};[1:v]scale=300:-2[p];[bg][p]overlay=(W-w)/2:H-h,format=yuv420p[v]",
           "-map", "[v]", "-t", str(seconds), "-r", "25", "-c:v", "libx264", str(out))
    return out


@pytest.fixture(scope="module")
def analyzer() -> BackgroundSegmentation:
    a = BackgroundSegmentation({"model": "mediapipe_selfie"})
    a.load("cpu")
    return a


@pytest.mark.parametrize("background,kind", [
    ("0x00FF00", "green_screen"), ("0x1B2A6B", "solid"), ("coffee_blurred", "blurred"), ("coffee", "natural")])
def test_person_and_background_kind(analyzer, shared_media, tmp_path, background, kind):
    result = analyzer.analyze(decode(composite(shared_media, tmp_path / "c.mp4", background), {SEGMENT_FRAMES}, False), {})
    assert result.background_kind == kind, result.frames[0]
    assert result.green_screen == (kind == "green_screen")
    # the portrait covers 300x375 of 360x640 and Obama roughly half of his portrait
    assert 0.15 < result.mean_person_coverage < 0.45, result.mean_person_coverage
    assert result.person_frames_ratio == 1.0
    assert [f.time for f in result.frames] == [0.0, 1.0, 2.0]


def test_empty_solid_frame_has_no_person(analyzer, tmp_path):
    result = analyzer.analyze(decode(solid_clip(tmp_path / "s.mp4", ["gray", "navy"], 1.5), {SEGMENT_FRAMES}, False), {})
    assert result.max_person_coverage < 0.01 and result.person_frames_ratio == 0.0
    assert result.background_kind == "solid" and not result.green_screen


def test_production_checkpoint_missing_is_unavailable():
    with pytest.raises(AnalyzerUnavailable, match="not on this machine"):
        BackgroundSegmentation({"model": "yolo11n-seg.pt"}).load("cpu")


def test_yolo_segmentation_path_runs_with_random_weights(shared_media, tmp_path):
    """Plumbing only: the YOLO11n-seg architecture, random weights, through the production code path."""
    seg = BackgroundSegmentation({"model": "yolo11n-seg.yaml", "allow_random_weights": True})
    seg.load("cpu")
    result = seg.analyze(decode(composite(shared_media, tmp_path / "g.mp4", "0x00FF00", 2.0), {SEGMENT_FRAMES}, False), {})
    assert "random weights" in result.model
    assert len(result.frames) == 2 and all(0.0 <= f.person_coverage <= 1.0 for f in result.frames)
