"""Gaze direction, eye contact with the camera and blinks, per face track.

Offline models: mediapipe's face mesh (468 3D points) and iris landmark networks, run directly as TFLite
(see _tflite.py), on faces found by dlib's HOG detector. Between detections a face is followed by its
own mesh, as mediapipe does, so the detector runs only when a face is new or lost.

Gaze = head direction (from the mesh's 3D cheek-to-cheek and forehead-to-chin vectors) plus the eyes'
direction in the head (iris position between the eye corners; about +/-45 degrees at the corners).
Eye contact = gaze within `contact_degrees` of the camera. A blink = eyelid opening below
`blink_ratio` of the track's median opening for at most `max_blink_seconds`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np
from pydantic import BaseModel, Field

from analyzers._faces import FaceDetector, link_tracks, normalized
from analyzers._tflite import TFLiteModel, mediapipe_model_path
from analyzers.base import Analyzer, AnalyzerUnavailable, FrameSpec, Needs
from analyzers.media import MediaBundle

EYE_FRAMES = FrameSpec(fps=10.0, max_side=480)  # blinks last 100-400 ms: 10 fps sees most of them

# face mesh indices (image-left eye first): eye corners, upper/lower lid, cheeks, forehead, chin
EYES = ((33, 133, 159, 145), (362, 263, 386, 374))
CHEEKS, FOREHEAD, CHIN = (234, 454), 10, 152


@dataclass
class EyeSample:
    box: tuple[float, float, float, float]
    yaw: float  # degrees, + = towards image right
    pitch: float  # degrees, + = down
    openness: float


class GazeSample(BaseModel):
    time: float
    yaw: float
    pitch: float
    eye_contact: bool


class Blink(BaseModel):
    start: float
    end: float


class FaceGaze(BaseModel):
    track_id: int
    first_seen: float
    last_seen: float
    frames: int
    eye_contact_ratio: float = Field(..., description="Share of this face's frames with gaze at the camera.")
    mean_yaw: float
    mean_pitch: float
    dominant_direction: str = Field(..., description="camera, left, right, up or down (image directions).")
    blinks: list[Blink]
    blinks_per_minute: float
    gaze: list[GazeSample]
    box: tuple[float, float, float, float]


class EyeTrackingResult(BaseModel):
    faces: list[FaceGaze]
    frames_analyzed: int
    frames_with_faces: int
    eye_contact_ratio: float = Field(..., description="Share of the main face's frames with gaze at the camera.")
    eye_contact_over_time: list[tuple[float, bool]] = Field(
        ..., description="(time, main face looks at the camera) for each frame showing the main face.")


class EyeTrackingSettings(BaseModel):
    contact_degrees: float = Field(15.0, gt=0, description="Gaze within this angle of the camera is eye contact.")
    eye_degrees_at_corner: float = Field(45.0, description="Eye rotation when the iris touches an eye corner.")
    blink_ratio: float = Field(
        0.8, gt=0, lt=1, description="The mesh under-reports closure: a full blink reads as ~0.65 of the open lid gap.")
    max_blink_seconds: float = Field(0.5, gt=0)
    upsample: int = Field(0, ge=0, le=2, description="dlib detector upsampling (faces in social video are large).")
    min_face_score: float = Field(0.3, description="Face mesh presence logit below which a face is dropped.")
    search_every: int = Field(
        2, ge=1, description="While no face is followed, look for one on every n-th sampled frame (1 = each). The "
        "detector is ~90 % of this analyzer's time, and most frames of most clips follow no face; a face that "
        "comes in is found at most n-1 samples (0.1 s at 10 fps) late.")


def _centre_inside(box, other) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return other[0] <= cx <= other[2] and other[1] <= cy <= other[3]


def _square_roi(box, scale: float = 1.5) -> tuple[float, float, float]:
    x0, y0, x1, y1 = box
    return (x0 + x1) / 2, (y0 + y1) / 2, scale * max(x1 - x0, y1 - y0)


def _crop(image: np.ndarray, cx: float, cy: float, side: float, size: int, flip: bool = False):
    s = size / side
    matrix = np.array([[s, 0, size / 2 - s * cx], [0, s, size / 2 - s * cy]], dtype=np.float64)
    if flip:
        matrix[0] = [-s, 0, size / 2 + s * cx]
    return cv2.warpAffine(image, matrix, (size, size), borderMode=cv2.BORDER_REPLICATE), matrix


class EyeTracking(Analyzer):
    name = "eye_tracking"
    needs = Needs(frames=EYE_FRAMES)
    Result = EyeTrackingResult
    Settings = EyeTrackingSettings

    def load(self, device: str) -> None:
        super().load(device)
        try:
            self._mesh = TFLiteModel(mediapipe_model_path("face_landmark/face_landmark.tflite"))
            self._iris = TFLiteModel(mediapipe_model_path("iris_landmark/iris_landmark.tflite"))
            self._detect = FaceDetector(self.settings.upsample, 0.0)
        except AnalyzerUnavailable:
            raise
        except Exception as exc:
            raise AnalyzerUnavailable(f"eye models could not load: {exc}") from exc

    @property
    def model_in_use(self) -> str:
        return "dlib HOG faces + mediapipe face_landmark + iris_landmark (TFLite)"

    def mesh(self, image: np.ndarray, box) -> tuple[np.ndarray, float]:
        """468 mesh points (x, y in image pixels, z in the same scale) and the face-presence logit."""
        cx, cy, side = _square_roi(box)
        crop, matrix = _crop(image, cx, cy, side, 192)
        out = self._mesh.run(crop.astype(np.float32)[None] / 255.0)
        points = out["conv2d_21"].reshape(468, 3).astype(np.float64)
        scale = matrix[0, 0]
        points[:, 0] = (points[:, 0] - matrix[0, 2]) / scale
        points[:, 1] = (points[:, 1] - matrix[1, 2]) / scale
        points[:, 2] /= scale
        return points, float(out["conv2d_31"].ravel()[0])

    def iris_offset(self, image: np.ndarray, points: np.ndarray, corner_a: int, corner_b: int, flip: bool) -> float:
        """Iris centre between the eye corners along the corner line: -1 at corner_a, +1 at corner_b."""
        a, b = points[corner_a, :2], points[corner_b, :2]
        centre, width = (a + b) / 2, float(np.linalg.norm(b - a))
        crop, matrix = _crop(image, centre[0], centre[1], 2.3 * width, 64, flip)
        iris = self._iris.run(crop.astype(np.float32)[None] / 255.0)["output_iris"].reshape(5, 3)[0, :2]
        inverse = cv2.invertAffineTransform(matrix)
        iris_xy = inverse[:, :2] @ iris + inverse[:, 2]
        axis = (b - a) / max(width, 1e-6)
        return float(np.clip(2 * np.dot(iris_xy - centre, axis) / max(width, 1e-6), -1, 1))

    def sample(self, image: np.ndarray, box) -> tuple[EyeSample, np.ndarray] | None:
        points, presence = self.mesh(image, box)
        if presence < self.settings.min_face_score:
            return None
        across = points[CHEEKS[1]] - points[CHEEKS[0]]
        down = points[CHIN] - points[FOREHEAD]
        head_yaw = np.degrees(np.arctan2(across[2], across[0]))
        head_pitch = np.degrees(np.arctan2(down[2], down[1]))  # chin further away than forehead: looking down
        offsets = [self.iris_offset(image, points, a, b, flip=i == 1) for i, (a, b, _, _) in enumerate(EYES)]
        eye_yaw = float(np.mean(offsets)) * self.settings.eye_degrees_at_corner
        openness = float(np.mean([np.linalg.norm(points[lo, :2] - points[up, :2])
                                  / max(np.linalg.norm(points[b, :2] - points[a, :2]), 1e-6) for a, b, up, lo in EYES]))
        xs, ys = points[:, 0], points[:, 1]
        mesh_box = (float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max()))
        return EyeSample(mesh_box, float(head_yaw + eye_yaw), float(head_pitch), openness), points

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> EyeTrackingResult:
        if not hasattr(self, "_mesh"):
            raise AnalyzerUnavailable("load() was not called")
        frame_set = media.frames(EYE_FRAMES)
        h, w = frame_set.frames.shape[1:3]
        times = frame_set.timestamps
        per_frame: list[list[EyeSample]] = []
        followed: list[tuple[float, float, float, float]] = []
        for i, frame in enumerate(frame_set.frames):
            boxes = list(followed)
            # look for new faces every 10th frame, keep following the known ones; while none is followed, look on
            # every search_every-th frame (and on the last, so a face shown only at the end is not missed)
            searching = i % self.settings.search_every == 0 or i == len(frame_set) - 1
            if (not followed and searching) or i % 10 == 0:
                boxes += [f.box for f in self._detect(frame) if not any(_centre_inside(f.box, b) for b in followed)]
            samples = [s for s in (self.sample(frame, b) for b in boxes) if s is not None]
            if not samples and followed:  # the followed faces were lost: look again
                samples = [s for s in (self.sample(frame, f.box) for f in self._detect(frame)) if s is not None]
            per_frame.append([s for s, _ in samples])
            followed = [s.box for s, _ in samples]
        tracks, assignment = link_tracks([[s.box for s in samples] for samples in per_frame], min_iou=0.2)
        faces = []
        for track in tracks:
            chosen = [per_frame[f][assignment[f].index(track.track_id)] for f in track.frames]
            faces.append(self._summarise(len(faces), [float(times[f]) for f in track.frames], chosen, w, h))
        faces.sort(key=lambda f: -f.frames)
        main = faces[0] if faces else None
        return EyeTrackingResult(
            faces=faces, frames_analyzed=len(frame_set), frames_with_faces=sum(1 for p in per_frame if p),
            eye_contact_ratio=main.eye_contact_ratio if main else 0.0,
            eye_contact_over_time=[(g.time, g.eye_contact) for g in main.gaze] if main else [])

    def _summarise(self, track_id: int, times: list[float], samples: list[EyeSample], w: int, h: int) -> FaceGaze:
        s = self.settings
        yaw = np.array([x.yaw for x in samples])
        pitch = np.array([x.pitch for x in samples])
        openness = np.array([x.openness for x in samples])
        closed = openness < s.blink_ratio * float(np.median(openness))
        contact = np.hypot(yaw, pitch) <= s.contact_degrees  # a blink does not break eye contact
        blinks, start = [], None
        for i, is_closed in enumerate([*closed.tolist(), False]):
            if is_closed and start is None:
                start = i
            elif not is_closed and start is not None:
                if times[i - 1] - times[start] <= s.max_blink_seconds:
                    blinks.append(Blink(start=round(times[start], 3), end=round(times[i - 1], 3)))
                start = None
        span = max(times[-1] - times[0], 1e-6)
        mean_yaw, mean_pitch = float(np.median(yaw)), float(np.median(pitch))
        if contact.mean() >= 0.5:
            direction = "camera"
        elif abs(mean_yaw) >= abs(mean_pitch):
            direction = "right" if mean_yaw > 0 else "left"
        else:
            direction = "down" if mean_pitch > 0 else "up"
        return FaceGaze(
            track_id=track_id, first_seen=times[0], last_seen=times[-1], frames=len(samples),
            eye_contact_ratio=round(float(contact.mean()), 4),
            mean_yaw=round(mean_yaw, 1), mean_pitch=round(mean_pitch, 1),
            dominant_direction=direction, blinks=blinks,
            blinks_per_minute=round(60.0 * len(blinks) / span, 2) if len(times) > 1 else 0.0,
            gaze=[GazeSample(time=round(t, 3), yaw=round(float(y), 1), pitch=round(float(p), 1), eye_contact=bool(c))
                  for t, y, p, c in zip(times, yaw, pitch, contact)],
            box=normalized(samples[0].box, w, h))
