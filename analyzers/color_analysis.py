"""Colour: dominant palette, brightness, saturation and warmth, per sampled frame and for the whole video."""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np
from pydantic import BaseModel, Field

from analyzers.base import Analyzer, FrameSpec, Needs
from analyzers.media import MediaBundle

COLOR_FRAMES = FrameSpec(fps=2.0, max_side=160)


class Swatch(BaseModel):
    rgb: tuple[int, int, int]
    hex: str
    share: float = Field(..., description="Fraction of pixels closest to this colour, 0..1.")


class ColorSample(BaseModel):
    time: float
    brightness: float = Field(..., description="Mean luma, 0..1 (Rec. 709).")
    saturation: float = Field(..., description="Mean HSV saturation, 0..1.")
    warmth: float = Field(..., description="(R - B) / 255 averaged, -1 (cool/blue) .. +1 (warm/red).")
    contrast: float = Field(..., description="Standard deviation of luma, 0..0.5.")
    dominant_hex: str


class ColorResult(BaseModel):
    palette: list[Swatch] = Field(..., description="Dominant colours of the whole video, largest share first.")
    brightness: float
    saturation: float
    warmth: float
    contrast: float
    temperature: str = Field(..., description="warm, neutral or cool, from the mean warmth.")
    timeline: list[ColorSample]


class ColorSettings(BaseModel):
    palette_size: int = Field(5, ge=1, le=16)
    pixels_per_frame: int = Field(2000, ge=100, description="Pixels sampled per frame for the palette clustering.")


def _hex(rgb: np.ndarray) -> str:
    return "#" + "".join(f"{int(c):02x}" for c in rgb)


def palette(pixels: np.ndarray, k: int) -> list[Swatch]:
    """k-means in RGB; clusters of identical colours collapse, so a solid frame yields one swatch."""
    pixels = pixels.reshape(-1, 3).astype(np.float32)
    unique = np.unique(pixels, axis=0)
    k = max(1, min(k, len(unique)))
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0)
    _, labels, centers = cv2.kmeans(pixels, k, None, criteria, 2, cv2.KMEANS_PP_CENTERS)
    shares = np.bincount(labels.ravel(), minlength=k) / len(labels)
    order = np.argsort(-shares)
    return [
        Swatch(rgb=tuple(int(round(c)) for c in centers[i]), hex=_hex(np.round(centers[i])), share=round(float(shares[i]), 4))
        for i in order
        if shares[i] > 0
    ]


def frame_stats(frame: np.ndarray) -> tuple[float, float, float, float]:
    rgb = frame.astype(np.float32) / 255.0
    luma = 0.2126 * rgb[..., 0] + 0.7152 * rgb[..., 1] + 0.0722 * rgb[..., 2]
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
    saturation = hsv[..., 1].astype(np.float32) / 255.0
    warmth = rgb[..., 0] - rgb[..., 2]
    return float(luma.mean()), float(saturation.mean()), float(warmth.mean()), float(luma.std())


class ColorAnalysis(Analyzer):
    name = "color_analysis"
    needs = Needs(frames=COLOR_FRAMES)
    Result = ColorResult
    Settings = ColorSettings

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> ColorResult:
        frame_set = media.frames(COLOR_FRAMES)
        rng = np.random.default_rng(0)  # fixed seed: the same video gives the same palette
        samples, pooled = [], []
        for frame, time in zip(frame_set.frames, frame_set.timestamps):
            flat = frame.reshape(-1, 3)
            take = rng.choice(len(flat), size=min(self.settings.pixels_per_frame, len(flat)), replace=False)
            pooled.append(flat[take])
            brightness, saturation, warmth, contrast = frame_stats(frame)
            samples.append(
                ColorSample(
                    time=round(float(time), 3),
                    brightness=round(brightness, 4),
                    saturation=round(saturation, 4),
                    warmth=round(warmth, 4),
                    contrast=round(contrast, 4),
                    dominant_hex=palette(flat[take], 1)[0].hex,
                )
            )
        mean = {f: float(np.mean([getattr(s, f) for s in samples])) for f in ("brightness", "saturation", "warmth", "contrast")}
        temperature = "warm" if mean["warmth"] > 0.05 else "cool" if mean["warmth"] < -0.05 else "neutral"
        return ColorResult(
            palette=palette(np.concatenate(pooled), self.settings.palette_size),
            temperature=temperature,
            timeline=samples,
            **{k: round(v, 4) for k, v in mean.items()},
        )
