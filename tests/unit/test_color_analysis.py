"""color_analysis on clips whose colours are exact by construction."""

from __future__ import annotations

import pytest

from analyzers.color_analysis import COLOR_FRAMES, ColorAnalysis
from analyzers.media import decode
from tests.synth import solid_clip


def analyze(path):
    return ColorAnalysis().analyze(decode(path, {COLOR_FRAMES}, want_audio=False), {})


def test_two_colour_clip_has_both_colours_in_equal_shares(tmp_path):
    result = analyze(solid_clip(tmp_path / "rb.mp4", ["0xFF0000", "0x0000FF"], seconds_each=2))
    top = {s.hex: s.share for s in result.palette[:2]}
    reds = [h for h in top if int(h[1:3], 16) > 200 and int(h[5:7], 16) < 60]
    blues = [h for h in top if int(h[5:7], 16) > 200 and int(h[1:3], 16) < 60]
    assert reds and blues
    assert top[reds[0]] == pytest.approx(0.5, abs=0.1)
    # warmth over time: red shots warm (+), blue shots cool (-)
    assert result.timeline[0].warmth > 0.8 and result.timeline[-1].warmth < -0.8
    assert result.temperature == "neutral"  # equal halves cancel out


@pytest.mark.parametrize("color, brightness, saturation, temperature", [
    ("white", 1.0, 0.0, "neutral"), ("black", 0.0, 0.0, "neutral"), ("0xFF8000", 0.59, 1.0, "warm"), ("0x3060FF", 0.4, 0.81, "cool"),
])
def test_known_colours_give_known_brightness_saturation_temperature(tmp_path, color, brightness, saturation, temperature):
    result = analyze(solid_clip(tmp_path / "c.mp4", [color], seconds_each=1))
    assert result.brightness == pytest.approx(brightness, abs=0.05)
    assert result.saturation == pytest.approx(saturation, abs=0.06)
    assert result.temperature == temperature
    assert len(result.palette) == 1 or result.palette[0].share > 0.95
