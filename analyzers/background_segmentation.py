"""Person/background split per sampled frame: person coverage over time and what the background is.

Production model: a YOLO segmentation checkpoint by name (person masks). Offline: mediapipe's selfie
segmentation network, which ships inside the mediapipe package, run directly as TFLite (_tflite.py).
The background kind is read from the pixels outside the person mask:
  green_screen - one colour covers most of it and that colour is saturated green (chroma key)
  solid        - one colour covers most of it
  blurred      - no single colour, but almost no fine detail (bokeh / blur filter)
  natural      - anything else
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import cv2
import numpy as np
from pydantic import BaseModel, Field

from analyzers.base import Analyzer, AnalyzerUnavailable, FrameSpec, Needs
from analyzers.media import MediaBundle

SEGMENT_FRAMES = FrameSpec(fps=1.0, max_side=384)
MEDIAPIPE_SELFIE = "mediapipe_selfie"


class FrameBackground(BaseModel):
    time: float
    person_coverage: float = Field(..., description="Share of the frame covered by people, 0..1.")
    kind: str
    dominant_colour_share: float
    green_share: float = Field(..., description="Share of background pixels that are saturated green.")


class BackgroundSegmentationResult(BaseModel):
    frames: list[FrameBackground]
    mean_person_coverage: float
    max_person_coverage: float
    person_frames_ratio: float = Field(..., description="Share of frames with at least `min_person_coverage` person.")
    background_kind: str = Field(..., description="Most common kind over the frames.")
    green_screen: bool
    model: str


class BackgroundSegmentationSettings(BaseModel):
    model: str = Field("yolo11n-seg.pt", description=f"YOLO-seg checkpoint, or {MEDIAPIPE_SELFIE!r} (offline).")
    allow_random_weights: bool = Field(False, description="Permit a YOLO-seg .yaml with random weights (tests only).")
    threshold: float = Field(0.5, gt=0, lt=1, description="Person probability that counts as person.")
    min_person_coverage: float = Field(0.02, ge=0, le=1)
    solid_share: float = Field(0.6, description="Background share of the most common colour bin that makes it solid.")
    solid_brightness_spread: float = Field(12.0, description="Max brightness std (0..255) within a solid backdrop.")
    blurred_detail: float = Field(0.4, description="Background share of fine-detail pixels below which it is blurred.")
    batch_size: int = Field(16, ge=1, description="YOLO-seg: frames per predict() call.")


def person_mask_mediapipe(model, image_rgb: np.ndarray) -> np.ndarray:
    h, w = image_rgb.shape[:2]
    tensor = cv2.resize(image_rgb, (256, 256), interpolation=cv2.INTER_AREA).astype(np.float32)[None] / 255.0
    probability = model.run(tensor)["activation_10"][0, :, :, 0]
    return cv2.resize(probability, (w, h), interpolation=cv2.INTER_LINEAR)


def person_masks_yolo(model, images_rgb, device: str, batch_size: int = 16, conf: float = 0.25) -> list[np.ndarray]:
    """Person probability per frame, `batch_size` frames per predict() call. With one call per frame, 30 frames took
    1.8 s inside the GPU graph against 0.7 s alone (H100, 2026-12-08): each call synchronizes the device, and on a
    card shared with other processes each sync can wait for a time slice; batches make 2 calls of 30. `conf` is
    ultralytics' default."""
    masks = []
    for start in range(0, len(images_rgb), batch_size):
        batch = [np.ascontiguousarray(image[..., ::-1]) for image in images_rgb[start:start + batch_size]]  # BGR
        results = model.predict(batch, classes=[0], retina_masks=True, device=device, conf=conf, verbose=False)
        for image, result in zip(batch, results):
            h, w = image.shape[:2]
            if result.masks is None:
                masks.append(np.zeros((h, w), np.float32))
            else:
                masks.append(cv2.resize(result.masks.data.cpu().numpy().max(axis=0).astype(np.float32), (w, h)))
    return masks


def describe_background(image_rgb: np.ndarray, person: np.ndarray,
                        settings: BackgroundSegmentationSettings) -> tuple[str, float, float]:
    """(kind, share of the most common colour bin, green share) of the pixels outside `person` (bool mask)."""
    # stay clear of the mask edge, where hair and the model's soft border mix both
    background = cv2.erode((~person).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    if background.sum() < 0.02 * background.size:
        return "none_visible", 0.0, 0.0
    hsv = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2HSV)[background].astype(np.int32)
    green = (hsv[:, 0] >= 35) & (hsv[:, 0] <= 85) & (hsv[:, 1] >= 100) & (hsv[:, 2] >= 60)
    # colour bins: 12 hues for saturated pixels, 4 grey levels for unsaturated ones
    saturated = hsv[:, 1] >= 50
    bins = np.where(saturated, hsv[:, 0] * 12 // 180, 12 + hsv[:, 2] * 4 // 256)
    dominant_bin, dominant_count = Counter(bins.tolist()).most_common(1)[0]
    dominant_share = dominant_count / len(bins)
    green_share = float(green.mean())
    if green_share >= settings.solid_share:
        return "green_screen", dominant_share, green_share
    # one colour bin is not enough (a brown photo fills one hue bin): a backdrop is also one brightness
    spread = float(hsv[bins == dominant_bin, 2].std())
    if dominant_share >= settings.solid_share and spread <= settings.solid_brightness_spread:
        return "solid", dominant_share, green_share
    # share of background pixels with fine detail; a blurred backdrop keeps colour but loses this
    laplacian = np.abs(cv2.Laplacian(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY), cv2.CV_32F))
    detail = float((laplacian[background] > 4).mean())
    return ("blurred" if detail < settings.blurred_detail else "natural"), dominant_share, green_share


class BackgroundSegmentation(Analyzer):
    name = "background_segmentation"
    needs = Needs(frames=SEGMENT_FRAMES)
    Result = BackgroundSegmentationResult
    Settings = BackgroundSegmentationSettings

    def load(self, device: str) -> None:
        super().load(device)
        if self.settings.model == MEDIAPIPE_SELFIE:
            from analyzers._tflite import TFLiteModel, mediapipe_model_path

            try:
                self._mediapipe = TFLiteModel(mediapipe_model_path("selfie_segmentation/selfie_segmentation.tflite"))
            except AnalyzerUnavailable:
                raise
            except Exception as exc:
                raise AnalyzerUnavailable(f"selfie segmentation model could not load: {exc}") from exc
        else:
            from analyzers.object_detection import load_yolo

            self._yolo = load_yolo(self.settings.model, self.settings.allow_random_weights)

    @property
    def model_in_use(self) -> str:
        if self.settings.model == MEDIAPIPE_SELFIE:
            return "mediapipe selfie_segmentation (TFLite)"
        random = self.settings.model.endswith((".yaml", ".yml"))
        return f"{self.settings.model} (random weights, test only)" if random else self.settings.model

    def person_probabilities(self, images_rgb) -> list[np.ndarray]:
        if hasattr(self, "_mediapipe"):
            return [person_mask_mediapipe(self._mediapipe, image) for image in images_rgb]
        if hasattr(self, "_yolo"):
            return person_masks_yolo(self._yolo, images_rgb, self.device, self.settings.batch_size)
        raise AnalyzerUnavailable("load() was not called")

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> BackgroundSegmentationResult:
        s = self.settings
        frame_set = media.frames(SEGMENT_FRAMES)
        frames = []
        probabilities = self.person_probabilities(frame_set.frames)
        for image, t, probability in zip(frame_set.frames, frame_set.timestamps.tolist(), probabilities):
            person = probability >= s.threshold
            kind, dominant, green = describe_background(image, person, s)
            frames.append(FrameBackground(time=round(t, 3), person_coverage=round(float(person.mean()), 4), kind=kind,
                                          dominant_colour_share=round(dominant, 4), green_share=round(green, 4)))
        coverage = np.array([f.person_coverage for f in frames])
        kind = Counter(f.kind for f in frames).most_common(1)[0][0]
        return BackgroundSegmentationResult(
            frames=frames, mean_person_coverage=round(float(coverage.mean()), 4),
            max_person_coverage=round(float(coverage.max()), 4),
            person_frames_ratio=round(float((coverage >= s.min_person_coverage).mean()), 4),
            background_kind=kind, green_screen=kind == "green_screen", model=self.model_in_use)
