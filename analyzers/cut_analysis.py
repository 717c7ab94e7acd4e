"""Hard cuts and gradual transitions (dissolves, fades to and from black or white).

Per frame pair we score the change in colour histogram (robust to motion) and in the small downscaled
picture (robust to histograms that happen to match). A cut is a score that is high in absolute terms *and*
stands out from its neighbourhood: that second test is what keeps fast motion and camera shake, which
raise every score in a window, from turning into strings of false cuts (PySceneDetect's AdaptiveDetector
uses the same idea).

A gradual transition changes the picture a little on every frame, always towards the next shot: each frame
is a linear blend of the frame before the transition and the frame after it. We mark frames that are the
mean of their neighbours k frames either side while those neighbours differ clearly, grow each run while
the frame steps keep moving towards the far end, and keep it only if the whole run adds up to a real change
and its frames are blends of its two ends. The blend test is what rejects camera pans and subject motion:
a shifted picture is not a mix of two others, and a cut leaves half the change unexplained.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

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


class Transition(BaseModel):
    kind: Literal["dissolve", "fade_in", "fade_out"] = Field(
        ..., description="fade_in starts from a plain (black/white/solid) frame, fade_out ends on one."
    )
    start_frame: int = Field(..., description="First frame that is part of the blend.")
    end_frame: int = Field(..., description="Last frame that is part of the blend, inclusive.")
    start: float
    end: float
    change: float = Field(..., description="Mean absolute change between the frames just outside the transition, 0..1.")


class CutResult(BaseModel):
    cuts: list[Cut] = Field(..., description="Hard cuts only.")
    shots: list[Shot] = Field(..., description="Split at hard cuts, at the middle of dissolves and between a fade "
                              "out and the next fade in.")
    transitions: list[Transition] = Field(default_factory=list, description="Gradual transitions.")
    cut_count: int
    frames_analyzed: int


class CutSettings(BaseModel):
    min_score: float = Field(0.18, description="Absolute change needed for a cut (0..1).")
    min_ratio: float = Field(3.0, description="How far the change must stand out from its neighbours.")
    window: int = Field(4, ge=1, description="Neighbours on each side used for the local baseline.")
    min_shot_frames: int = Field(6, ge=1, description="Cuts closer than this keep only the stronger one.")
    max_flash_s: float = Field(0.3, ge=0, description="A change undone within this time is a flash, not a cut.")
    min_transition_frames: int = Field(4, ge=2, description="Shortest gradual transition, frames.")
    min_transition_change: float = Field(0.06, description="Mean absolute change a transition must add up to (0..1).")
    blend_half_window: int = Field(4, ge=2, description="Frames on each side used to test that a frame is a blend.")
    min_window_change: float = Field(0.015, description="Mean absolute change across a blend window (0..1).")
    max_blend_residual: float = Field(
        0.25, description="Part of the change a blend of the two ends may leave unexplained.")
    max_fade_gap_s: float = Field(2.0, description="A fade out followed this soon by a fade in is one shot change.")


class FrameSignatures:
    """Colour histogram and 32x32 HSV thumbnail of every frame, to compare any two frames."""

    def __init__(self, frames: np.ndarray) -> None:
        hists, thumbs = [], []
        for frame in frames:
            hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV)
            hist = cv2.calcHist([hsv], [0, 1, 2], None, [16, 8, 8], [0, 180, 0, 256, 0, 256]).ravel()
            hists.append(hist / max(hist.sum(), 1.0))
            thumbs.append(cv2.resize(hsv, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0)
        self.hists, self.thumbs = np.stack(hists), np.stack(thumbs)

    def distance(self, i: int, j: int) -> float:
        hist_change = 0.5 * float(np.abs(self.hists[i] - self.hists[j]).sum())  # total variation distance
        pixel_change = float(np.abs(self.thumbs[i] - self.thumbs[j]).mean()) * 4.0
        return float(np.clip(0.5 * hist_change + 0.5 * min(pixel_change, 1.0), 0.0, 1.0))


def change_scores(frames: np.ndarray, signatures: FrameSignatures | None = None) -> np.ndarray:
    """Change between each frame and the one before it, 0..1; scores[0] is 0."""
    scores = np.zeros(len(frames), dtype=np.float64)
    if len(frames) < 2:
        return scores
    sig = signatures or FrameSignatures(frames)
    hist_change = 0.5 * np.abs(np.diff(sig.hists, axis=0)).sum(axis=1)
    pixel_change = np.abs(np.diff(sig.thumbs, axis=0)).mean(axis=(1, 2, 3)) * 4.0
    scores[1:] = np.clip(0.5 * hist_change + 0.5 * np.minimum(pixel_change, 1.0), 0.0, 1.0)
    return scores


def find_cuts(scores: np.ndarray, settings: CutSettings, signatures: FrameSignatures | None = None,
              flash_frames: int = 0) -> list[int]:
    """Cut positions. With `signatures`, a change that is undone within `flash_frames` (the picture before it
    comes back) is a flash or a glitch, not two cuts."""
    n = len(scores)
    candidates = []
    for i in range(1, n):
        # stand out from each side on its own: motion that starts at a frame raises only the scores after it,
        # which a median over both sides would half ignore
        before = scores[max(1, i - settings.window) : i]
        after = scores[i + 1 : min(n, i + settings.window + 1)]
        sides = [float(np.median(side)) for side in (before, after) if len(side)]
        baseline = max(sides) if sides else 0.0
        if scores[i] >= settings.min_score and scores[i] >= settings.min_ratio * max(baseline, 0.01):
            candidates.append(i)
    if signatures is not None and flash_frames > 0:
        def undone(i: int) -> bool:
            back = 0.5 * scores[i]
            starts = any(signatures.distance(i - 1, j) < back for j in range(i + 1, min(n, i + flash_frames + 1)))
            ends = any(signatures.distance(j, i) < back for j in range(max(0, i - flash_frames - 1), i - 1))
            return starts or ends

        candidates = [i for i in candidates if not undone(i)]
    kept: list[int] = []
    for i in candidates:  # of two cuts too close together keep the stronger
        if kept and i - kept[-1] < settings.min_shot_frames:
            if scores[i] > scores[kept[-1]]:
                kept[-1] = i
            continue
        kept.append(i)
    return kept


def blend_thumbnails(frames: np.ndarray) -> np.ndarray:
    """Grey 64-px-wide thumbnails, 0..1: small enough to hide compression noise, big enough that a shift of a
    couple of source pixels breaks the blend test."""
    h, w = frames.shape[1:3]
    size = (64, max(8, round(64 * h / w)))
    return np.stack(
        [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), size, interpolation=cv2.INTER_AREA) for f in frames]
    ).astype(np.float32) / 255.0


def _is_plain(thumb: np.ndarray) -> bool:
    return float(thumb.std()) < 0.04


def find_transitions(
    thumbs: np.ndarray, hard_cuts: list[int], settings: CutSettings
) -> list[tuple[str, int, int, float]]:
    """(kind, first blended frame, last blended frame, change) for each gradual transition."""
    n, k = len(thumbs), settings.blend_half_window
    if n < 2 * k + 2:
        return []
    flat = thumbs.reshape(n, -1).astype(np.float64)
    cut_set = set(hard_cuts)
    # Inside a blend, frame t is the mean of frames t-k and t+k; a cut or a pan leaves about half the change
    # unexplained.
    in_blend = np.zeros(n, dtype=bool)
    for t in range(k, n - k):
        wide = np.abs(flat[t + k] - flat[t - k]).mean()
        if wide < settings.min_window_change or any(t - k < c <= t + k for c in cut_set):
            continue
        middle = np.abs(flat[t] - 0.5 * (flat[t - k] + flat[t + k])).mean()
        in_blend[t] = middle <= settings.max_blend_residual * wide
    found: list[tuple[str, int, int, float]] = []
    t = 0
    while t < n:
        if not in_blend[t]:
            t += 1
            continue
        core_start = t
        while t + 1 < n and in_blend[t + 1]:
            t += 1
        core_end, t = t, t + 1
        if core_end - core_start < 1:
            continue
        # grow the core while each frame step still moves towards the far end of the blend
        direction = flat[core_end] - flat[core_start]
        direction /= float(direction @ direction) or 1.0
        progress = np.diff(flat, axis=0) @ direction  # progress[i]: frame i -> i+1, in units of the core's change
        typical = float(np.median(progress[core_start:core_end]))
        lo, hi = core_start, core_end - 1  # first and last step of the blend
        # a step across a cut ends the growth, unless it comes from or goes to a plain frame: from black, the
        # first faint frame of a fade changes the colour histogram as much as a cut does
        while lo > 0 and progress[lo - 1] > 0.3 * typical and (lo not in cut_set or _is_plain(thumbs[lo - 1])):
            lo -= 1
        while (hi + 1 < n - 1 and progress[hi + 1] > 0.3 * typical
               and ((hi + 2) not in cut_set or _is_plain(thumbs[hi + 2]))):
            hi += 1
        before, after = lo, hi + 1  # the frames just outside the blend
        if found and before < found[-1][2]:
            continue
        if after - before - 1 < settings.min_transition_frames:
            continue
        total = flat[after] - flat[before]
        change = float(np.abs(total).mean())
        if change < settings.min_transition_change:
            continue
        inside = flat[before + 1 : after] - flat[before]
        alpha = inside @ total / float(total @ total)
        residual = np.abs(inside - alpha[:, None] * total[None, :]).mean(axis=1) / change
        if float(np.median(residual)) > settings.max_blend_residual:
            continue
        kind = "fade_in" if _is_plain(thumbs[before]) else "fade_out" if _is_plain(thumbs[after]) else "dissolve"
        found.append((kind, before + 1, after - 1, change))
        t = max(t, after)
    return found


def shot_boundaries(
    n: int, cuts: list[int], transitions: list[tuple[str, int, int, float]], fade_gap: int
) -> list[int]:
    """Positions where a new shot starts: hard cuts, dissolve middles, and the middle between a fade out and a
    fade in that follows it closely (a fade through black is one change of shot)."""
    bounds = set(cuts)
    for k, (kind, start, end, _) in enumerate(transitions):
        if kind == "dissolve":
            bounds.add((start + end + 1) // 2)
        elif kind == "fade_out" and k + 1 < len(transitions):
            nxt_kind, nxt_start = transitions[k + 1][0], transitions[k + 1][1]
            if nxt_kind == "fade_in" and nxt_start - end <= fade_gap and not any(end < c <= nxt_start for c in cuts):
                bounds.add((end + 1 + nxt_start) // 2)
    return sorted(b for b in bounds if 0 < b < n)


class CutAnalysis(Analyzer):
    name = "cut_analysis"
    needs = Needs(frames=CUT_FRAMES)
    Result = CutResult
    Settings = CutSettings

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> CutResult:
        frame_set = media.frames(CUT_FRAMES)
        signatures = FrameSignatures(frame_set.frames)
        scores = change_scores(frame_set.frames, signatures)
        indices, times = frame_set.indices, np.round(frame_set.timestamps.astype(np.float64), 3)
        step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0 / max(media.metadata.fps, 1.0)
        flash_frames = int(round(self.settings.max_flash_s / max(step, 1e-3)))
        cut_positions = find_cuts(scores, self.settings, signatures, flash_frames)
        found = find_transitions(blend_thumbnails(frame_set.frames), cut_positions, self.settings)
        cut_positions = [c for c in cut_positions if not any(a <= c <= b for _, a, b, _ in found)]
        fade_gap = max(1, round(self.settings.max_fade_gap_s / max(step, 1e-3)))
        cuts = [Cut(frame=int(indices[i]), time=float(times[i]), score=round(float(scores[i]), 4))
                for i in cut_positions]
        transitions = [
            Transition(kind=kind, start_frame=int(indices[a]), end_frame=int(indices[b]), start=float(times[a]),
                       end=round(float(times[b]) + step, 3), change=round(change, 4))
            for kind, a, b, change in found
        ]
        bounds = [0, *shot_boundaries(len(indices), cut_positions, found, fade_gap), len(indices)]
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
        return CutResult(cuts=cuts, shots=shots, transitions=transitions, cut_count=len(cuts),
                         frames_analyzed=len(indices))
