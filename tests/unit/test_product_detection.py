"""product_detection offline: brands read from real OCR of drawtext overlays; the detector reports why it is missing."""

from __future__ import annotations

import pytest

from analyzers.base import AnalyzerUnavailable
from analyzers.media import decode
from analyzers.product_detection import PRODUCT_FRAMES, ProductDetection, find_brands
from analyzers.text_overlay import TEXT_FRAMES, TextOverlay
from tests.synth import ffmpeg

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


@pytest.fixture(scope="module")
def products() -> ProductDetection:
    p = ProductDetection()
    p.load("cpu")
    return p


def test_brand_words_match_whole_words_only():
    brands = ["Nike", "Coca-Cola", "L'Oreal", "Stanley"]
    assert find_brands("just do it with NIKE today", brands) == ["Nike"]
    assert find_brands("ice cold coca cola", brands) == ["Coca-Cola"]
    assert find_brands("L'ORÉAL Paris", brands) == ["L'Oreal"]
    assert find_brands("New NlKE drop", brands) == ["Nike"]  # OCR's l-for-I in capitals
    assert find_brands("Nikeland and Stanleys", brands) == []


def test_brands_from_on_screen_text_with_times(products, tmp_path):
    clip = tmp_path / "ad.mp4"
    draw = (f"drawtext=fontfile={FONT}:text='New NIKE drop':fontsize=40:fontcolor=white:box=1:boxcolor=black:"
            f"x=(w-text_w)/2:y=150:enable='between(t,0.5,2.5)',"
            f"drawtext=fontfile={FONT}:text='Sip Starbucks daily':fontsize=32:fontcolor=white:box=1:boxcolor=black:"
            f"x=(w-text_w)/2:y=420:enable='between(t,2,4)'")
    ffmpeg("-f", "lavfi", "-i", "color=c=0x884422:s=360x640:r=25:d=4.5", "-vf", draw, "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(clip))
    media = decode(clip, {TEXT_FRAMES, PRODUCT_FRAMES}, False)
    ocr = TextOverlay()
    ocr.load("cpu")
    text = ocr.analyze(media, {})
    result = products.analyze(media, {"text_overlay": text})
    assert result.brands == ["Nike", "Starbucks"]
    nike = next(m for m in result.brand_mentions if m.brand == "Nike")
    starbucks = next(m for m in result.brand_mentions if m.brand == "Starbucks")
    interval = 1 / TEXT_FRAMES.fps
    assert abs(nike.start - 0.5) <= interval and abs(nike.end - 2.5) <= interval
    assert abs(starbucks.start - 2.0) <= interval and abs(starbucks.end - 4.0) <= interval
    assert result.brand_text_status == "ok"
    assert result.detector_status == "unavailable" and "not on this machine" in result.detector_reason
    assert result.products == []


def test_without_text_overlay_and_detector_it_is_unavailable(products, tmp_path):
    clip = tmp_path / "plain.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=160x284:r=25:d=1", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(clip))
    with pytest.raises(AnalyzerUnavailable, match="text_overlay"):
        products.analyze(decode(clip, {PRODUCT_FRAMES}, False), {})
