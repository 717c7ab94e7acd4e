"""Technical picture quality: sharpness, noise, exposure, contrast, compression blocking, resolution, bit rate.

Measured on a dozen frames spread over the video, at up to 1280 px so that codec blocks and sensor noise
survive the scaling. Sharpness is compared at one common size (640 px) so that a big frame does not look
sharper only for being big, and with the Laplacian energy of flat areas (noise, not detail) taken out.
Noise is Immerkaer's Laplacian-difference estimate taken only in the flattest quarter of each frame, where
texture cannot pass for noise; grain also caps the sharpness score, since it hides detail while raising the
Laplacian. Blockiness checks 8 px and 16 px grids: H.264's deblocking filter hides the 8 px one. The 0..100
score is a weighted mean of per-metric scores; every metric is returned so a caller can weigh them differently.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np
from pydantic import BaseModel, Field

from analyzers.base import Analyzer, FrameSpec, Needs
from analyzers.media import MediaBundle

QUALITY_FRAMES = FrameSpec(count=12, max_side=1280)
SHARPNESS_SIDE = 640
NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


class FrameQuality(BaseModel):
    time: float
    sharpness: float = Field(
        ..., description="Variance of the Laplacian at 640 px on the long side, less its energy in flat areas.")
    noise_sigma: float = Field(..., description="Estimated noise standard deviation, 0..255 grey levels.")
    highlights_clipped: float = Field(..., description="Share of pixels at 250 or above.")
    shadows_clipped: float = Field(..., description="Share of pixels at 5 or below.")
    brightness: float = Field(..., description="Mean grey level, 0..1.")
    contrast: float = Field(..., description="RMS contrast: grey standard deviation, 0..1.")
    blockiness: float = Field(
        ..., description="Extra step at 8 or 16 px block edges over other pixel steps (0 = none).")


class QualityResult(BaseModel):
    score: float = Field(..., description="Overall technical quality, 0..100.")
    component_scores: dict[str, float] = Field(..., description="Each metric mapped to 0..1 (1 = good).")
    sharpness: float
    noise_sigma: float
    highlights_clipped: float
    shadows_clipped: float
    brightness: float
    contrast: float
    blockiness: float
    width: int
    height: int
    bitrate: int | None = Field(None, description="Container bit rate, bits per second.")
    bits_per_pixel: float | None = Field(None, description="Bit rate / (width x height x fps).")
    brisque: float | None = None
    brisque_unavailable_reason: str | None = None
    issues: list[str] = Field(..., description="Named problems: blurry, noisy, overexposed, underexposed, "
                              "low_contrast, blocky, low_resolution, low_bitrate.")
    frames: list[FrameQuality]


class QualitySettings(BaseModel):
    weights: dict[str, float] = Field(
        default_factory=lambda: {"sharpness": 0.3, "noise": 0.2, "exposure": 0.1, "contrast": 0.1, "blockiness": 0.2,
                                 "resolution": 0.1},
        description="Weights of the component scores in the overall score.",
    )


def flat_mask(gray: np.ndarray) -> np.ndarray:
    """The flattest quarter of the picture, judged on a smoothed copy: judged on the noisy frame itself it would
    pick exactly the pixels where the noise happens to be small."""
    smooth = cv2.GaussianBlur(gray, (0, 0), 2.0)
    gradient = np.abs(cv2.Sobel(smooth, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(smooth, cv2.CV_32F, 0, 1))
    return gradient <= np.percentile(gradient, 25)


def noise_sigma(gray: np.ndarray) -> float:
    residual = np.abs(cv2.filter2D(gray, cv2.CV_32F, NOISE_KERNEL))
    return float(np.sqrt(np.pi / 2) / 6 * residual[flat_mask(gray)].mean())


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian less its energy in flat areas: there it is noise, and noise is not detail."""
    laplacian = cv2.Laplacian(gray, cv2.CV_32F)
    return max(float(laplacian.var() - np.mean(laplacian[flat_mask(gray)] ** 2)), 0.0)


def blockiness(gray: np.ndarray, block: float) -> float:
    """Mean step across block edges over the mean step elsewhere, minus one, both directions averaged."""
    values = []
    for steps in (np.abs(np.diff(gray, axis=1)).mean(axis=0), np.abs(np.diff(gray, axis=0)).mean(axis=1)):
        edges = np.unique(np.round(np.arange(block, len(steps) + 1, block)).astype(int) - 1)
        edges = edges[(edges >= 0) & (edges < len(steps))]
        inner = np.ones(len(steps), dtype=bool)
        inner[edges] = False
        if len(edges) == 0 or not inner.any():
            continue
        values.append(steps[edges].mean() / max(steps[inner].mean(), 1e-3) - 1.0)
    return float(max(np.mean(values), 0.0)) if values else 0.0


def measure(frame: np.ndarray, block: float) -> dict[str, float]:
    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    scale = SHARPNESS_SIDE / max(h, w)
    small = cv2.resize(gray, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else gray
    grayf, smallf = gray.astype(np.float32), small.astype(np.float32)
    return {
        "sharpness": sharpness(smallf),
        "noise_sigma": noise_sigma(grayf),
        "highlights_clipped": float((gray >= 250).mean()),
        "shadows_clipped": float((gray <= 5).mean()),
        "brightness": float(grayf.mean() / 255),
        "contrast": float(grayf.std() / 255),
        # 8 px transform blocks (JPEG, MPEG-2) or 16 px macroblocks (H.264, whose deblocking hides the 8 px grid)
        "blockiness": max(blockiness(grayf, block), blockiness(grayf, 2 * block)),
    }


def _ramp(value: float, bad: float, good: float) -> float:
    """0 at `bad`, 1 at `good`, linear between (works either way round)."""
    return float(np.clip((value - bad) / (good - bad), 0.0, 1.0))


def component_scores(m: Mapping[str, float], short_side: int) -> dict[str, float]:
    noise = _ramp(np.log10(max(m["noise_sigma"], 1e-3)), np.log10(20.0), 0.0)  # sigma 20 .. 1
    return {
        # grain raises the Laplacian like detail does, but it hides detail: sharpness cannot score above noise
        "sharpness": min(_ramp(np.log10(max(m["sharpness"], 1e-3)), 0.5, 2.5), noise),  # Laplacian variance 3 .. 316
        "noise": noise,
        "exposure": _ramp(m["highlights_clipped"] + m["shadows_clipped"], 0.3, 0.02),
        "contrast": _ramp(m["contrast"], 0.05, 0.18),
        "blockiness": _ramp(m["blockiness"], 0.8, 0.15),
        "resolution": _ramp(short_side, 144, 1080),
    }


class ContentQuality(Analyzer):
    name = "content_quality"
    needs = Needs(frames=QUALITY_FRAMES)
    Result = QualityResult
    Settings = QualitySettings

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> QualityResult:
        frame_set = media.frames(QUALITY_FRAMES)
        meta = media.metadata
        delivered_w = frame_set.frames.shape[2]
        block = 8 * delivered_w / max(meta.width, 1)  # codec blocks are 8 source pixels wide
        per_frame = [measure(f, block) for f in frame_set.frames]
        summary = {k: float(np.median([m[k] for m in per_frame])) for k in per_frame[0]}
        scores = component_scores(summary, min(meta.width, meta.height))
        weights = self.settings.weights
        score = 100 * sum(weights[k] * scores[k] for k in weights) / sum(weights.values())
        bits_per_pixel = meta.bitrate / (meta.width * meta.height * meta.fps) if meta.bitrate and meta.fps else None
        issues = [name for name, bad in (
            ("blurry", scores["sharpness"] < 0.3), ("noisy", scores["noise"] < 0.5),
            ("overexposed", summary["highlights_clipped"] > 0.1), ("underexposed", summary["shadows_clipped"] > 0.2),
            ("low_contrast", scores["contrast"] < 0.3), ("blocky", scores["blockiness"] < 0.5),
            ("low_resolution", min(meta.width, meta.height) < 480),
            ("low_bitrate", bits_per_pixel is not None and bits_per_pixel < 0.02),
        ) if bad]
        brisque, reason = None, None
        if not hasattr(cv2, "quality"):
            reason = "cv2.quality is missing: BRISQUE needs opencv-contrib-python and the BRISQUE model files"
        return QualityResult(
            score=round(score, 1),
            component_scores={k: round(v, 3) for k, v in scores.items()},
            **{k: round(v, 4) for k, v in summary.items()},
            width=meta.width,
            height=meta.height,
            bitrate=meta.bitrate,
            bits_per_pixel=round(bits_per_pixel, 4) if bits_per_pixel else None,
            brisque=brisque,
            brisque_unavailable_reason=reason,
            issues=issues,
            frames=[FrameQuality(time=round(float(t), 3), **{k: round(v, 4) for k, v in m.items()})
                    for t, m in zip(frame_set.timestamps, per_frame)],
        )
