"""Framing: where the subject is, rule of thirds, symmetry, headroom, aspect ratio, and what the app's
interface would cover.

The subject is the largest frontal face (OpenCV's Haar cascade, shipped inside opencv-python), else the
most salient region (spectral-residual saliency, Hou & Zhang 2007, a few FFTs on a 64 px copy). A subject that
lies largely inside one of TikTok's interface zones (analyzers._safe_zones) is a violation, reported with times.
On-screen text in those zones is text_overlay's to report (each of its events lists its zones): composition waits
for no other analyzer, so on CPU it runs beside text_overlay's OCR instead of after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, Field

from analyzers._safe_zones import MIN_ZONE_OVERLAP, SAFE_ZONES, Zone, overlap_share
from analyzers.base import Analyzer, FrameSpec, Needs
from analyzers.media import MediaBundle

COMPOSITION_FRAMES = FrameSpec(fps=2, max_side=384)
POWER_POINTS = np.array([(x, y) for x in (1 / 3, 2 / 3) for y in (1 / 3, 2 / 3)])


class FrameComposition(BaseModel):
    time: float
    subject_source: Literal["face", "saliency", "none"]
    subject_box: tuple[float, float, float, float] | None = Field(
        None, description="x0, y0, x1, y1 as frame fractions.")
    subject_centre: tuple[float, float] | None = None
    face_count: int
    rule_of_thirds: float | None = Field(None, description="1 at a thirds intersection, 0 at 0.2 frame or more away.")
    symmetry: float = Field(..., description="Left-right mirror correlation of the picture, 0..1.")
    headroom: float | None = Field(None, description="Gap above the face, as a fraction of the frame height.")


class SafeZoneViolation(BaseModel):
    zone: Zone
    what: Literal["subject", "text"] = Field(
        ..., description="Always 'subject' (kept for compatibility): text in a zone is reported by "
        "text_overlay, whose events list their zones.")
    start: float
    end: float
    overlap: float = Field(..., description="Largest share of the subject's box inside the zone.")
    text: str | None = Field(None, description="Always None (kept for compatibility); see `what`.")


class CompositionResult(BaseModel):
    width: int
    height: int
    aspect_ratio: float
    framing: Literal["vertical_9_16", "vertical_other", "square", "landscape"]
    letterboxed: bool = Field(..., description="Black bars fill the top and bottom (or the sides) all through.")
    face_share: float = Field(..., description="Share of sampled frames with a face.")
    mean_subject_centre: tuple[float, float] | None
    mean_rule_of_thirds: float | None
    mean_symmetry: float
    median_headroom: float | None
    headroom_label: Literal["tight", "good", "excess"] | None
    safe_zone_violations: list[SafeZoneViolation]
    frames: list[FrameComposition]


class CompositionSettings(BaseModel):
    min_zone_overlap: float = Field(
        MIN_ZONE_OVERLAP, description="Share of the subject's box inside a zone that counts as a violation.")
    min_face_side: float = Field(0.06, description="Smallest face looked for, as a fraction of the frame's short side.")


def spectral_saliency(gray: np.ndarray) -> np.ndarray:
    small = cv2.resize(gray, (64, 64), interpolation=cv2.INTER_AREA).astype(np.float32)
    spectrum = np.fft.fft2(small)
    log_amplitude = np.log(np.abs(spectrum) + 1e-6)
    residual = log_amplitude - cv2.blur(log_amplitude, (3, 3))
    saliency = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    saliency = cv2.GaussianBlur(saliency.astype(np.float32), (0, 0), 2.5)
    return cv2.resize(saliency, (gray.shape[1], gray.shape[0]), interpolation=cv2.INTER_LINEAR)


def salient_box(gray: np.ndarray) -> tuple[float, float, float, float] | None:
    saliency = spectral_saliency(gray)
    if saliency.max() <= 0:
        return None
    mask = (saliency >= saliency.mean() + 2 * saliency.std()).astype(np.uint8)
    H, W = gray.shape
    # spectral residual lights up an object's edges more than its inside: fuse nearby blobs into one object
    size = max(3, min(H, W) // 10) | 1
    fused = cv2.dilate(mask, np.ones((size, size), np.uint8))
    count, labels = cv2.connectedComponents(fused)
    if count < 2:
        return None
    best = max(range(1, count), key=lambda k: saliency[labels == k].sum())  # most saliency, not merely largest
    ys, xs = np.nonzero(mask & (labels == best))
    return xs.min() / W, ys.min() / H, (xs.max() + 1) / W, (ys.max() + 1) / H


def symmetry(gray: np.ndarray) -> float:
    a = gray.astype(np.float32) - gray.mean()
    b = a[:, ::-1]
    return float(np.clip((a * b).sum() / ((a * a).sum() + 1e-6), 0.0, 1.0))


def framing_of(width: int, height: int) -> str:
    ratio = width / height
    if abs(ratio - 9 / 16) < 0.02:
        return "vertical_9_16"
    return "vertical_other" if ratio < 0.9 else "square" if ratio <= 1.1 else "landscape"


class CompositionAnalysis(Analyzer):
    name = "composition_analysis"
    needs = Needs(frames=COMPOSITION_FRAMES)
    Result = CompositionResult
    Settings = CompositionSettings

    _faces = None

    def load(self, device: str) -> None:
        super().load(device)
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        cascade = cv2.CascadeClassifier(path)
        self._faces = None if cascade.empty() else cascade  # without it the subject comes from saliency alone

    @property
    def model_in_use(self) -> str | None:
        saliency = "spectral-residual saliency"
        return f"OpenCV Haar frontal face cascade + {saliency}" if self._faces else saliency

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> CompositionResult:
        if self._faces is None:
            self.load(self.device)
        frame_set = media.frames(COMPOSITION_FRAMES)
        grays = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frame_set.frames]
        frames = [self._frame(round(float(t), 3), g) for t, g in zip(frame_set.timestamps, grays)]
        step = float(np.median(np.diff(frame_set.timestamps))) if len(frames) > 1 else 0.5
        violations = self._subject_violations(frames, step)
        meta = media.metadata
        with_subject = [f for f in frames if f.subject_centre]
        thirds = [f.rule_of_thirds for f in frames if f.rule_of_thirds is not None]
        headrooms = [f.headroom for f in frames if f.headroom is not None]
        headroom = float(np.median(headrooms)) if headrooms else None
        return CompositionResult(
            width=meta.width, height=meta.height, aspect_ratio=round(meta.width / meta.height, 4),
            framing=framing_of(meta.width, meta.height),
            letterboxed=self._letterboxed(np.stack(grays)),
            face_share=round(sum(f.face_count > 0 for f in frames) / max(len(frames), 1), 3),
            mean_subject_centre=tuple(np.round(np.mean([f.subject_centre for f in with_subject], axis=0), 3))
            if with_subject else None,
            mean_rule_of_thirds=round(float(np.mean(thirds)), 3) if thirds else None,
            mean_symmetry=round(float(np.mean([f.symmetry for f in frames])), 3) if frames else 0.0,
            median_headroom=round(headroom, 3) if headroom is not None else None,
            headroom_label=None if headroom is None
            else "tight" if headroom < 0.03 else "excess" if headroom > 0.25 else "good",
            safe_zone_violations=sorted(violations, key=lambda v: v.start),
            frames=frames,
        )

    def _frame(self, time: float, gray: np.ndarray) -> FrameComposition:
        H, W = gray.shape
        box, source, faces = None, "none", []
        if self._faces is not None:
            side = max(16, int(self.settings.min_face_side * min(H, W)))
            faces = self._faces.detectMultiScale(gray, scaleFactor=1.2, minNeighbors=4, minSize=(side, side))
            faces = list(faces) if len(faces) else []
        if faces:
            x, y, w, h = max(faces, key=lambda f: f[2] * f[3])
            box, source = (x / W, y / H, (x + w) / W, (y + h) / H), "face"
        else:
            box = salient_box(gray)
            source = "saliency" if box else "none"
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2) if box else None
        thirds = None
        if centre:
            distance = float(np.min(np.hypot(*(POWER_POINTS - np.array(centre)).T)))
            thirds = round(max(0.0, 1.0 - distance / 0.2), 3)
        return FrameComposition(
            time=time, subject_source=source, subject_box=tuple(round(v, 4) for v in box) if box else None,
            subject_centre=tuple(round(v, 4) for v in centre) if centre else None, face_count=len(faces),
            rule_of_thirds=thirds, symmetry=round(symmetry(gray), 3),
            headroom=round(box[1], 4) if source == "face" else None,
        )

    def _subject_violations(self, frames: list[FrameComposition], step: float) -> list[SafeZoneViolation]:
        found = []
        for zone, rect in SAFE_ZONES.items():
            run: list[tuple[float, float]] = []  # (time, overlap) of consecutive violating frames
            for f in [*frames, None]:
                share = overlap_share(f.subject_box, rect) if f and f.subject_box else 0.0
                if share >= self.settings.min_zone_overlap:
                    run.append((f.time, share))
                    continue
                if run:
                    found.append(SafeZoneViolation(zone=zone, what="subject", start=run[0][0],
                                                   end=round(run[-1][0] + step, 3),
                                                   overlap=round(max(s for _, s in run), 3)))
                    run = []
        return found

    @staticmethod
    def _letterboxed(grays: np.ndarray) -> bool:
        dark = grays.max(axis=0) < 20  # pixels black in every sampled frame
        H, W = dark.shape
        band_h, band_w = max(1, H // 12), max(1, W // 12)
        rows = dark[:band_h].all() and dark[-band_h:].all()
        cols = dark[:, :band_w].all() and dark[:, -band_w:].all()
        return bool(rows or cols)
