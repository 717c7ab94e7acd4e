"""camera_analysis on ffmpeg crops of a still photo that pan, tilt, zoom and shake at known speeds, so the
true label, direction and speed of every segment are known by construction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from analyzers.camera_analysis import CAMERA_FRAMES, CameraAnalysis
from analyzers.cut_analysis import CUT_FRAMES, CutAnalysis
from analyzers.media import decode
from tests.synth import SHARED_MEDIA, ffmpeg

ASTRONAUT = str(SHARED_MEDIA / "images" / "skimage_astronaut.png")
STILL = ["-loop", "1", "-framerate", "25", "-t", "3", "-i", ASTRONAUT]
BIG = "scale=1024:1024"  # 320x240 crops of this move 1 px of the big picture per 1 px of output


@dataclass(frozen=True)
class Motion:
    label: str
    filters: str
    speed: float | None = None  # true magnitude: frame widths/heights per second, or log-zoom per second at t=1.5 s


CASES = [
    Motion("static", f"{BIG},crop=320:240:x=300:y=300"),
    Motion("pan_right", f"{BIG},crop=320:240:x='100+60*t':y=300", 60 / 320),  # crop window moves right
    Motion("pan_left", f"{BIG},crop=320:240:x='600-60*t':y=300", 60 / 320),
    Motion("tilt_down", f"{BIG},crop=320:240:x=300:y='100+50*t'", 50 / 240),  # crop window moves down
    Motion("tilt_up", f"{BIG},crop=320:240:x=300:y='600-50*t'", 50 / 240),
    Motion("pan_right", f"{BIG},crop=320:240:x='100+25*t':y=400", 25 / 320),  # slow
    Motion("zoom_in", f"{BIG},zoompan=z='1+0.006*on':x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2':d=1:s=320x320:fps=25",
           0.15 / 1.225),
    Motion("zoom_out", f"{BIG},zoompan=z='1.6-0.006*on':x='iw/2-iw/zoom/2':y='ih/2-ih/zoom/2':d=1:s=320x320:fps=25",
           0.15 / 1.375),
    Motion("shake", f"{BIG},crop=320:240:x='300+24*random(1)':y='300+24*random(2)'"),
]


def make(tmp: Path, name: str, *args: str) -> Path:
    out = tmp / f"{name}.mp4"
    ffmpeg(*args, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "20", str(out))
    return out


def analyze(path: Path, with_cuts: bool = False):
    media = decode(path, {CAMERA_FRAMES, CUT_FRAMES}, False)
    upstream = {"cut_analysis": CutAnalysis().analyze(media, {})} if with_cuts else {}
    return CameraAnalysis().analyze(media, upstream)


def test_label_and_direction_of_synthetic_motions(tmp_path):
    right, total = 0, 0
    for k, case in enumerate(CASES):
        result = analyze(make(tmp_path, f"m{k}", *STILL, "-vf", case.filters))
        for segment in result.segments:
            total += 1
            right += segment.label == case.label
            if case.speed and segment.label == case.label:
                assert segment.magnitude == pytest.approx(case.speed, rel=0.15), (case, segment)
        assert result.dominant_motion == case.label, (case, result.segments)
    assert right / total >= 0.95, f"{right}/{total} segments right"


@pytest.mark.parametrize("subject", [
    "testsrc2=s=120x120:r=25:d=3",  # animated pattern, a fifth of the frame
    "testsrc2=s=160x160:r=25:d=3,hue=h=90",  # a third of the frame, more corners than the background
])
def test_moving_subject_on_still_background_is_static(tmp_path, subject):
    clip = make(tmp_path, "subject", *STILL, "-f", "lavfi", "-i", subject, "-filter_complex",
                "[0:v]scale=320:240[bg];[bg][1:v]overlay=x='10+50*t':y=40")
    result = analyze(clip)
    assert [s.label for s in result.segments] == ["static"], result.segments


def test_sequence_of_moves_with_cuts_between_them(tmp_path):
    # 0-3 s pan right, 3-6 s static, 6-9 s tilt up: each part a separate shot
    clip = make(tmp_path, "sequence", *STILL, *STILL, *STILL, "-filter_complex",
                f"[0:v]{BIG},crop=320:240:x='100+60*t':y=300[a];[1:v]{BIG},crop=320:240:x=500:y=200[b];"
                f"[2:v]{BIG},crop=320:240:x=300:y='600-50*t'[c];[a][b][c]concat=n=3:v=1:a=0[v]", "-map", "[v]")
    result = analyze(clip, with_cuts=True)
    assert [s.label for s in result.segments] == ["pan_right", "static", "tilt_up"], result.segments
    assert abs(result.segments[1].start - 3.0) <= 0.3 and abs(result.segments[2].start - 6.0) <= 0.3


def test_locked_off_talking_head_is_static(shared_media):
    result = analyze(shared_media / "video" / "grid_bbaf2n.mpg")
    assert [s.label for s in result.segments] == ["static"]
