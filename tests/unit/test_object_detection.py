"""object_detection: the real YOLO11 architecture with random weights (no COCO weights exist offline) for the
model path, and ByteTrack fed with boxes whose truth is exact for the tracking and counting.

Random weights mean nothing, but a network is a pure function of its input: on a still picture every frame
gets the same boxes, so every track must span the whole clip. That checks batching, timestamps and counts
without pretending the detections are objects."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from analyzers.base import AnalyzerUnavailable
from analyzers.media import decode
from analyzers.object_detection import DETECTION_FRAMES, ObjectDetection
from tests.synth import ffmpeg

RANDOM = {"model": "yolo11n.yaml", "allow_random_weights": True, "confidence": 0.0, "batch_size": 4,
          "max_detections": 20, "fuse_score": False}  # random scores are ~1e-5: weighting IoU by them forbids matches


@pytest.fixture(scope="module")
def analyzer() -> ObjectDetection:
    a = ObjectDetection(RANDOM)
    a.load("cpu")
    return a


def test_random_weight_model_runs_batched_and_tracks_a_still_picture(analyzer, shared_media, tmp_path):
    clip = tmp_path / "still.mp4"
    ffmpeg("-loop", "1", "-t", "3", "-r", "25", "-i", str(shared_media / "images" / "coco_000000000049.jpg"),
           "-vf", "scale=320:240", "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p", str(clip))
    media = decode(clip, {DETECTION_FRAMES}, False)
    times = media.frames(DETECTION_FRAMES).timestamps.round(3).tolist()
    result = analyzer.analyze(media, {})
    assert result.weights == "random (test only)" and "random weights" in result.model
    assert result.frames_analyzed == len(times) == 9 and result.batches == math.ceil(len(times) / 4)
    assert [c.time for c in result.counts_over_time] == times
    assert len(result.tracks) == 20
    for track in result.tracks:
        assert (track.first_seen, track.last_seen, track.frames) == (times[0], times[-1], len(times))
        assert 0 <= track.box[0] < track.box[2] <= 1 and 0 <= track.box[1] < track.box[3] <= 1
    assert all(sum(c.counts.values()) == 20 for c in result.counts_over_time)


def test_tracker_follows_moving_objects_and_counts_them(analyzer):
    """A person walking right in frames 0-7, a dog from frame 3 to 9, a 1-frame flicker at frame 5."""
    times = np.arange(10) / DETECTION_FRAMES.fps
    frames = []
    for i in range(10):
        rows = []
        if i <= 7:
            rows.append([20 + 12 * i, 40, 80 + 12 * i, 200, 0.9, 0])
        if 3 <= i <= 9:
            rows.append([200, 150 - 4 * i, 280, 220 - 4 * i, 0.8, 16])
        if i == 5:
            rows.append([10, 10, 30, 30, 0.6, 2])
        frames.append(np.array(rows, dtype=np.float32))
    names = {0: "person", 2: "car", 16: "dog"}
    result = analyzer.track(frames, times, (320, 240), names, batches=3)
    by_label = {t.label: t for t in result.tracks}
    assert set(by_label) == {"person", "dog"}  # the one-frame car is flicker
    person, dog = by_label["person"], by_label["dog"]
    assert (person.first_seen, person.last_seen, person.frames) == (round(times[0], 3), round(times[7], 3), 8)
    assert (dog.first_seen, dog.last_seen, dog.frames) == (round(times[3], 3), round(times[9], 3), 7)
    assert person.max_confidence == pytest.approx(0.9, abs=1e-3)
    assert person.box == pytest.approx((20 / 320, 40 / 240, 80 / 320, 200 / 240), abs=1e-3)
    assert [c.counts.get("person", 0) for c in result.counts_over_time] == [1] * 8 + [0] * 2
    assert [c.counts.get("dog", 0) for c in result.counts_over_time] == [0] * 3 + [1] * 7
    assert result.max_simultaneous == {"person": 1, "dog": 1}  # unconfirmed flicker is not counted either


def test_missing_checkpoint_is_unavailable_at_once_without_download():
    started = time.monotonic()
    with pytest.raises(AnalyzerUnavailable, match="not on this machine"):
        ObjectDetection({"model": "yolo11m.pt"}).load("cpu")
    assert time.monotonic() - started < 1.0


def test_architecture_without_weights_needs_the_test_switch():
    with pytest.raises(AnalyzerUnavailable, match="allow_random_weights"):
        ObjectDetection({"model": "yolo11n.yaml"}).load("cpu")
