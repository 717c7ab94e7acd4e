"""eye_tracking: GRID speakers look into the camera; faces in a photo that look elsewhere do not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from analyzers.eye_tracking import EYE_FRAMES, EyeTracking
from analyzers.media import decode
from tests.synth import solid_clip



def still_clip(image_rgb: np.ndarray, out, seconds: float = 1.0):
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 25, (image_rgb.shape[1], image_rgb.shape[0]))
    for _ in range(int(seconds * 25)):
        writer.write(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return out


@pytest.fixture(scope="module")
def analyzer() -> EyeTracking:
    a = EyeTracking()
    a.load("cpu")
    return a


@pytest.mark.parametrize("clip", ["grid_bbaf2n", "grid_lbbc2a"])
def test_frontal_speaker_makes_eye_contact(analyzer, shared_media, clip):
    result = analyzer.analyze(decode(shared_media / "video" / f"{clip}.mpg", {EYE_FRAMES}, False), {})
    assert result.frames_with_faces == result.frames_analyzed >= 25
    assert len(result.faces) == 1
    face = result.faces[0]
    assert face.dominant_direction == "camera"
    assert result.eye_contact_ratio >= 0.9
    assert len(result.eye_contact_over_time) == result.frames_analyzed


@pytest.mark.parametrize("mirror", [False, True])
def test_faces_turned_away_make_no_eye_contact(analyzer, shared_media, tmp_path, mirror):
    """COCO 000000000110: a girl with head and eyes turned to the image left, a woman looking down at a pizza.
    Mirroring the photo must mirror the girl's gaze direction and nothing else."""
    image = cv2.cvtColor(cv2.imread(str(shared_media / "images" / "coco_000000000110.jpg")), cv2.COLOR_BGR2RGB)
    if mirror:
        image = np.ascontiguousarray(image[:, ::-1])
    result = analyzer.analyze(decode(still_clip(image, tmp_path / "coco110.mp4"), {EYE_FRAMES}, False), {})
    assert len(result.faces) == 2
    girl, woman = sorted(result.faces, key=lambda f: f.box[1], reverse=True)  # the girl sits lower in the frame
    assert girl.eye_contact_ratio == 0.0 and woman.eye_contact_ratio == 0.0
    assert girl.dominant_direction == ("right" if mirror else "left"), girl.mean_yaw
    assert abs(girl.mean_yaw) > 25
    assert woman.mean_pitch > 10  # looking down


# Blinks counted by looking at every frame of the clips (eyes visibly shut for 2-3 frames at 25 fps).
GRID_BLINKS = {"grid_bbaf2n": 2, "grid_brbk7n": 1, "grid_id2_vcd_swwp2s": 3, "grid_lbax4n": 1, "grid_lbbc2a": 0}


@pytest.mark.parametrize("clip,blinks", sorted(GRID_BLINKS.items()))
def test_blinks_match_the_frames(analyzer, shared_media, clip, blinks):
    face = analyzer.analyze(decode(shared_media / "video" / f"{clip}.mpg", {EYE_FRAMES}, False), {}).faces[0]
    assert len(face.blinks) == blinks, face.blinks
    assert all(b.end - b.start <= 0.5 for b in face.blinks)


def test_no_face_no_gaze(analyzer, tmp_path):
    result = analyzer.analyze(decode(solid_clip(tmp_path / "s.mp4", ["gray"], 1.0), {EYE_FRAMES}, False), {})
    assert result.faces == [] and result.eye_contact_ratio == 0.0 and result.eye_contact_over_time == []


@pytest.mark.parametrize("gray_frames", [13, 16])  # the face comes in on a searched sample, or between two
def test_a_face_that_comes_in_is_found_at_most_one_sample_late(analyzer, shared_media, tmp_path, gray_frames):
    """While no face is followed the detector looks on every other sample (search_every 2): against looking on every
    sample, the face's first sample is the same or the next one, and nothing else changes."""
    face = cv2.cvtColor(cv2.imread(str(shared_media / "images" / "face_recognition_obama.jpg")), cv2.COLOR_BGR2RGB)
    face = cv2.resize(face, (face.shape[1] // 2 * 2, face.shape[0] // 2 * 2))
    out = tmp_path / "enter.mp4"
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), 25, (face.shape[1], face.shape[0]))
    for k in range(gray_frames + 25):
        writer.write(np.full_like(face, 128) if k < gray_frames else cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    writer.release()
    media = decode(out, {EYE_FRAMES}, False)
    every = EyeTracking({"search_every": 1})
    every.load("cpu")
    reference, result = every.analyze(media, {}), analyzer.analyze(media, {})
    assert len(reference.faces) == len(result.faces) == 1
    first = reference.eye_contact_over_time[0][0]
    assert first >= gray_frames / 25 - 1e-6  # the reference finds it where it comes in
    samples = [round(float(t), 3) for t in media.frames(EYE_FRAMES).timestamps]
    k = min(range(len(samples)), key=lambda j: abs(samples[j] - first))  # the sample it comes in on
    found = result.eye_contact_over_time[0][0]
    assert abs(found - samples[k]) < 1e-3 or abs(found - samples[k + 1]) < 1e-3
    late = int(abs(found - samples[k]) > 1e-3)
    assert reference.frames_with_faces - result.frames_with_faces == late
    assert result.eye_contact_over_time == reference.eye_contact_over_time[late:]
