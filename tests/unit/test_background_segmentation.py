"""background_segmentation: a person photo composited on known backgrounds (green, solid, blurred, detailed)."""

from __future__ import annotations

import numpy as np
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


def test_yolo_masks_in_batches_are_the_masks_of_one_frame_at_a_time(shared_media, tmp_path):
    """Batching the YOLO-seg calls (fewer device syncs on a shared GPU) changes no frame's mask: ultralytics with the
    real architecture, batches of 3 against one frame per call. A confidence of 0 makes the random weights find
    'persons', so the masks compared are not empty."""
    from analyzers.background_segmentation import person_masks_yolo

    seg = BackgroundSegmentation({"model": "yolo11n-seg.yaml", "allow_random_weights": True})
    seg.load("cpu")
    frames = np.stack([
        decode(composite(shared_media, tmp_path / f"{i}.mp4", background, 1.0), {SEGMENT_FRAMES}, False)
        .frames(SEGMENT_FRAMES).frames[0]
        for i, background in enumerate(["0x00FF00", "coffee", "0x1B2A6B", "coffee_blurred", "0xFFFFFF"])])
    batched = person_masks_yolo(seg._yolo, frames, "cpu", batch_size=3, conf=0.0)
    alone = [person_masks_yolo(seg._yolo, [frame], "cpu", batch_size=1, conf=0.0)[0] for frame in frames]
    assert any(mask.max() > 0.5 for mask in alone)
    for a, b in zip(alone, batched):
        assert a.shape == b.shape == frames.shape[1:3]
        assert ((a >= 0.5) == (b >= 0.5)).mean() > 0.999  # float sums in another order may flip a border pixel


class _RedIsPerson:
    """Stands in for a trained YOLO-seg where random weights cannot: its 'person' is wherever the frame is red, so
    every frame's mask is its own (random weights give every frame the same mask, and would hide a mix-up)."""

    def __init__(self):
        self.calls = []

    def predict(self, batch, **kwargs):
        import torch

        self.calls.append(len(batch))
        results = []
        for bgr in batch:
            red = torch.from_numpy((bgr[..., 2] > 128) & (bgr[..., 1] < 100)).float()
            masks = None if not red.any() else type("Masks", (), {"data": red[None]})()
            results.append(type("Result", (), {"masks": masks})())
        return results


def test_yolo_batches_keep_each_frame_its_own_mask_in_order():
    from analyzers.background_segmentation import person_masks_yolo

    frames = np.zeros((7, 64, 36, 3), np.uint8)
    for i in range(7):
        frames[i, : 8 * i, :, 0] = 255  # frame i: its top 8*i rows red (none in frame 0)
    model = _RedIsPerson()
    masks = person_masks_yolo(model, frames, "cpu", batch_size=3)
    assert model.calls == [3, 3, 1]
    assert [float(mask.sum()) for mask in masks] == [8.0 * i * 36 for i in range(7)]
