"""scene_segmentation on A B A' C C' D clips built with ffmpeg: A and A' are two separate shots of one place
(different crops of one photo) with B cut in between, C and C' two crops of another photo. Truth: scenes
[A B A'], [C C'], [D] by construction."""

from __future__ import annotations

import pytest

from analyzers.cut_analysis import CUT_FRAMES, CutAnalysis
from analyzers.media import decode
from analyzers.scene_segmentation import SCENE_FRAMES, SceneSegmentation
from tests.synth import SHARED_MEDIA, ffmpeg

IMAGES = SHARED_MEDIA / "images"
# (image, crop x, crop y) of a 1024x1024 scaling; each shot 1.2 s = 30 frames
SHOTS = [
    ("skimage_astronaut.png", 80, 120),  # A
    ("skimage_coffee.png", 200, 100),  # B
    ("skimage_astronaut.png", 380, 300),  # A'
    ("coco_000000000074.jpg", 100, 200),  # C
    ("coco_000000000074.jpg", 500, 350),  # C'
    ("tesseract_phototest.tif", 300, 300),  # D
]


def build(tmp_path, shots):
    inputs, chains = [], []
    for i, (image, x, y) in enumerate(shots):
        inputs += ["-loop", "1", "-framerate", "25", "-t", "1.2", "-i", str(IMAGES / image)]
        chains.append(f"[{i}:v]format=rgb24,scale=1024:1024,crop=360:640:x='{x}+20*t':y={y},setsar=1[s{i}]")
    graph = ";".join(chains) + ";" + "".join(f"[s{i}]" for i in range(len(shots))) + f"concat=n={len(shots)}:v=1:a=0[v]"
    out = tmp_path / "scenes.mp4"
    ffmpeg(*inputs, "-filter_complex", graph, "-map", "[v]", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(out))
    media = decode(out, {CUT_FRAMES, SCENE_FRAMES}, False)
    cuts = CutAnalysis().analyze(media, {})
    return media, cuts


def test_a_b_a_prime_is_one_scene(tmp_path):
    media, cuts = build(tmp_path, SHOTS)
    assert [c.frame for c in cuts.cuts] == [30, 60, 90, 120, 150], "shots must be cut as built"
    result = SceneSegmentation().analyze(media, {"cut_analysis": cuts})
    assert [s.shot_indices for s in result.scenes] == [[0, 1, 2], [3, 4], [5]], result.adjacent_similarity
    first = result.scenes[0]
    assert (first.start_frame, first.end_frame) == (0, 89)
    assert first.start == 0.0 and first.end == pytest.approx(3.6, abs=0.05)
    assert 0 <= first.keyframe_frame <= 89
    # the keyframe of A B A' shows the astronaut (A or A'), the look two of its three shots share
    assert not 30 <= first.keyframe_frame < 60
    assert result.scenes[2].start_frame == 150 and result.scenes[2].end_frame == 179


def test_every_shot_different_gives_one_scene_each(tmp_path):
    media, cuts = build(tmp_path, [SHOTS[0], SHOTS[1], SHOTS[3], SHOTS[5]])
    result = SceneSegmentation().analyze(media, {"cut_analysis": cuts})
    assert [s.shot_indices for s in result.scenes] == [[0], [1], [2], [3]], result.adjacent_similarity
