"""Hard cuts: frames where the picture changes far more than it does around them.

Per frame pair we score the change in colour histogram (robust to motion) and in the small downscaled
picture (robust to histograms that happen to match). A cut is a score that is high in absolute terms *and*
stands out from its neighbourhood: that second test is what keeps fast motion and camera shake, which
raise every score in a window, from turning into strings of false cuts (PySceneDetect's AdaptiveDetector
uses the same idea).
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np
from pydantic import BaseModel, Field

from analyzers.base import Analyzer, FrameSpec, Needs
from analyzers.media import MediaBundle

CUT_FRAMES = FrameSpec(fps=None, max_side=128)


class Cut(BaseModel):
    frame: int = Field(..., description="Index of the first frame of the new shot.")
    time: float = Field(..., description="Seconds from the start of the video.")
    score: float = Field(..., description="Change score of the boundary, 0..1.")


class Shot(BaseModel):
    start_frame: int
    end_frame: int = Field(..., description="Last frame of the shot, inclusive.")
    start: float
    end: float


class CutResult(BaseModel):
    cuts: list[Cut]
    shots: list[Shot]
    cut_count: int
    frames_analyzed: int


class CutSettings(BaseModel):
    min_score: float = Field(0.18, description="Absolute change needed for a cut (0..1).")
    min_ratio: float = Field(3.0, description="How far the change must stand out from its neighbours.")
    window: int = Field(4, ge=1, description="Neighbours on each side used for the local baseline.")
    min_shot_frames: int = Field(6, ge=1, description="Cuts closer than this keep only the stronger one.")


def change_scores(frames: np.ndarray) -> np.ndarray:
    """Change between each frame and the one before it, 0..1; scores[0] is 0."""
    n = len(frames)
    scores = np.zeros(n, dtype=np.float64)
    if n < 2:
        return scores
    hists, thumbs = [], []
    for frame in frames:
        hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1, 2], None, [16, 8, 8], [0, 180, 0, 256, 0, 256]).ravel()
        hists.append(hist / max(hist.sum(), 1.0))
        thumbs.append(cv2.resize(hsv, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0)
    hists_a, thumbs_a = np.stack(hists), np.stack(thumbs)
    hist_change = 0.5 * np.abs(np.diff(hists_a, axis=0)).sum(axis=1)  # total variation distance
    pixel_change = np.abs(np.diff(thumbs_a, axis=0)).mean(axis=(1, 2, 3)) * 4.0
    scores[1:] = np.clip(0.5 * hist_change + 0.5 * np.minimum(pixel_change, 1.0), 0.0, 1.0)
    return scores


def find_cuts(scores: np.ndarray, settings: CutSettings) -> list[int]:
    n = len(scores)
    candidates = []
    for i in range(1, n):
        lo, hi = max(1, i - settings.window), min(n, i + settings.window + 1)
        neighbours = np.concatenate([scores[lo:i], scores[i + 1 : hi]])
        baseline = float(np.median(neighbours)) if len(neighbours) else 0.0
        if scores[i] >= settings.min_score and scores[i] >= settings.min_ratio * max(baseline, 0.01):
            candidates.append(i)
    kept: list[int] = []
    for i in candidates:  # of two cuts too close together keep the stronger
        if kept and i - kept[-1] < settings.min_shot_frames:
            if scores[i] > scores[kept[-1]]:
                kept[-1] = i
            continue
        kept.append(i)
    return kept


class CutAnalysis(Analyzer):
    name = "cut_analysis"
    needs = Needs(frames=CUT_FRAMES)
    Result = CutResult
    Settings = CutSettings

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> CutResult:
        frame_set = media.frames(CUT_FRAMES)
        scores = change_scores(frame_set.frames)
        cut_positions = find_cuts(scores, self.settings)
        indices, times = frame_set.indices, frame_set.timestamps
        cuts = [Cut(frame=int(indices[i]), time=float(times[i]), score=round(float(scores[i]), 4)) for i in cut_positions]
        bounds = [0, *cut_positions, len(indices)]
        end_time = max(media.metadata.duration, float(times[-1]))
        shots = [
            Shot(
                start_frame=int(indices[a]),
                end_frame=int(indices[b - 1]),
                start=float(times[a]),
                end=float(times[b]) if b < len(times) else end_time,
            )
            for a, b in zip(bounds[:-1], bounds[1:])
        ]
        return CutResult(cuts=cuts, shots=shots, cut_count=len(cuts), frames_analyzed=len(indices))
