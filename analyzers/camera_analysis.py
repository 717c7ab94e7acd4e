"""Camera motion per segment: static, pan, tilt, zoom or shake, from the global motion between sampled frames.

Between consecutive frames we track a grid of points plus corners (pyramidal Lucas-Kanade, kept only when
tracking back returns to the start) and fit one similarity transform (shift, scale, rotation) with RANSAC,
so a subject moving through the frame is outvoted by the background.
Per step that gives the image content's velocity; the camera moves the other way: content sliding left
means the camera pans right, content growing means it zooms in. Shake is the part of the motion a 0.5 s
running median cannot follow: hand jitter flips direction several times a second, a deliberate move doesn't.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, Field

from analyzers.base import Analyzer, FrameSpec, Needs
from analyzers.media import MediaBundle

CAMERA_FRAMES = FrameSpec(fps=10, max_side=192)
Label = Literal["static", "pan_left", "pan_right", "tilt_up", "tilt_down", "zoom_in", "zoom_out", "shake"]


class CameraSegment(BaseModel):
    start: float
    end: float
    label: Label
    magnitude: float = Field(..., description="Pan/tilt: frame widths (heights) per second; zoom: relative size "
                             "change per second; shake: jitter RMS in frame sizes per second; static: residual speed.")
    content_dx_per_s: float = Field(
        ..., description="Mean horizontal content velocity, frame widths per second (+ = right).")
    content_dy_per_s: float = Field(
        ..., description="Mean vertical content velocity, frame heights per second (+ = down).")
    zoom_per_s: float = Field(..., description="Mean log scale change per second (+ = content grows = zoom in).")


class CameraResult(BaseModel):
    segments: list[CameraSegment]
    dominant_motion: Label
    static_fraction: float
    moving_fraction: float = Field(..., description="Share of time in pan, tilt or zoom.")
    shake_fraction: float
    steps_analyzed: int
    steps_untracked: int = Field(..., description="Frame pairs with too few tracked points (cuts, blank frames).")


class CameraSettings(BaseModel):
    move_threshold: float = Field(0.04, description="Frame sizes per second below which the camera counts as static.")
    shake_threshold: float = Field(0.15, description="Jitter RMS, frame sizes per second, above which it is shake.")
    smoothing_s: float = Field(0.5, description="Running median window for the deliberate motion.")
    min_segment_s: float = Field(0.6, description="Shorter segments merge into a neighbour.")


def global_motion(prev: np.ndarray, cur: np.ndarray) -> tuple[float, float, float] | None:
    """(dx, dy, log scale) of the content from `prev` to `cur` in pixels, or None when it cannot be tracked."""
    h, w = prev.shape
    # corners alone crowd onto the most textured object (often the subject); a grid spreads the votes over the
    # whole picture, so the background, which covers most of it, carries the RANSAC majority
    grid = np.stack(np.meshgrid(np.linspace(0.05 * w, 0.95 * w, 10), np.linspace(0.05 * h, 0.95 * h, 8)), -1)
    corners = cv2.goodFeaturesToTrack(prev, maxCorners=80, qualityLevel=0.001, minDistance=6, blockSize=5)
    points = grid.reshape(-1, 1, 2).astype(np.float32)
    if corners is not None:
        points = np.concatenate([points, corners.astype(np.float32)])
    moved, status, _ = cv2.calcOpticalFlowPyrLK(prev, cur, points, None, winSize=(15, 15), maxLevel=3)
    back, status_back, _ = cv2.calcOpticalFlowPyrLK(cur, prev, moved, None, winSize=(15, 15), maxLevel=3)
    # keep tracks that lead back to where they started: flat areas and occlusions do not
    returned = np.linalg.norm((back - points).reshape(-1, 2), axis=1) < 0.5
    ok = (status.ravel() == 1) & (status_back.ravel() == 1) & returned
    if ok.sum() < 12:
        return None
    matrix, inliers = cv2.estimateAffinePartial2D(points[ok], moved[ok], method=cv2.RANSAC, ransacReprojThreshold=1.0)
    if matrix is None or inliers is None or inliers.sum() < max(8, 0.3 * ok.sum()):
        return None
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    # translation of the frame centre, so that a zoom about the centre reads as pure zoom
    cx, cy = w / 2, h / 2
    dx = matrix[0, 0] * cx + matrix[0, 1] * cy + matrix[0, 2] - cx
    dy = matrix[1, 0] * cx + matrix[1, 1] * cy + matrix[1, 2] - cy
    return float(dx), float(dy), float(np.log(max(scale, 1e-3)))


def _running(values: np.ndarray, window: int, fn) -> np.ndarray:
    half = window // 2
    return np.array([fn(values[max(0, i - half) : i + half + 1]) for i in range(len(values))])


def _fill_gaps(values: np.ndarray) -> np.ndarray:
    good = ~np.isnan(values)
    if not good.any():
        return np.zeros_like(values)
    idx = np.arange(len(values))
    return np.interp(idx, idx[good], values[good])


class CameraAnalysis(Analyzer):
    name = "camera_analysis"
    needs = Needs(frames=CAMERA_FRAMES, optional_upstream=("cut_analysis",))
    Result = CameraResult
    Settings = CameraSettings

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> CameraResult:
        frame_set = media.frames(CAMERA_FRAMES)
        times = np.round(frame_set.timestamps.astype(np.float64), 3)
        grays = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frame_set.frames]
        h, w = grays[0].shape
        cut_times = [c.time for c in getattr(upstream.get("cut_analysis"), "cuts", [])]
        steps = len(grays) - 1
        if steps < 1:
            return CameraResult(segments=[], dominant_motion="static", static_fraction=1.0, moving_fraction=0.0,
                                shake_fraction=0.0, steps_analyzed=0, steps_untracked=0)
        motion = np.full((steps, 3), np.nan)
        for i in range(steps):
            if any(times[i] < c <= times[i + 1] for c in cut_times):
                continue
            found = global_motion(grays[i], grays[i + 1])
            if found is not None:
                motion[i] = found
        untracked = int(np.isnan(motion[:, 0]).sum())
        dt = np.maximum(np.diff(times), 1e-3)
        raw = np.stack([_fill_gaps(motion[:, 0]) / w, _fill_gaps(motion[:, 1]) / h, _fill_gaps(motion[:, 2])], axis=1)
        # velocities, not per-step shifts: a fixed-fps sampling of 25 or 30 fps video has uneven steps
        raw_velocity = raw / dt[:, None]
        window = max(3, int(round(self.settings.smoothing_s / float(np.median(dt)))) | 1)
        velocity = np.stack([_running(raw_velocity[:, j], window, np.median) for j in range(3)], axis=1)
        wobble = np.hypot(*(raw_velocity[:, :2] - velocity[:, :2]).T)
        jitter = _running(wobble**2, 2 * window + 1, np.mean) ** 0.5
        labels = [self._label(v, j) for v, j in zip(velocity, jitter)]
        segments = self._segments(labels, times, velocity, jitter, media.metadata.duration)
        total = sum(s.end - s.start for s in segments) or 1.0
        share = {lab: sum(s.end - s.start for s in segments if s.label == lab) / total for lab in Label.__args__}
        return CameraResult(
            segments=segments,
            dominant_motion=max(share, key=share.get),
            static_fraction=round(share["static"], 3),
            moving_fraction=round(1.0 - share["static"] - share["shake"], 3),
            shake_fraction=round(share["shake"], 3),
            steps_analyzed=steps,
            steps_untracked=untracked,
        )

    def _label(self, velocity: np.ndarray, jitter: float) -> str:
        if jitter > self.settings.shake_threshold:
            return "shake"
        vx, vy, zoom = velocity
        # the relative size change per second is about how fast the frame corners move: comparable with a pan
        speeds = {"pan": abs(vx), "tilt": abs(vy), "zoom": abs(zoom)}
        kind = max(speeds, key=speeds.get)
        if speeds[kind] < self.settings.move_threshold:
            return "static"
        if kind == "pan":
            return "pan_right" if vx < 0 else "pan_left"
        if kind == "tilt":
            return "tilt_up" if vy > 0 else "tilt_down"
        return "zoom_in" if zoom > 0 else "zoom_out"

    def _segments(self, labels, times, velocity, jitter, duration) -> list[CameraSegment]:
        runs: list[list] = []  # [label, first step, last step]
        for i, label in enumerate(labels):
            if runs and runs[-1][0] == label:
                runs[-1][2] = i
            else:
                runs.append([label, i, i])
        span = lambda r: times[r[2] + 1] - times[r[1]]  # noqa: E731
        while len(runs) > 1:
            shortest = min(range(len(runs)), key=lambda k: span(runs[k]))
            if span(runs[shortest]) >= self.settings.min_segment_s:
                break
            if shortest == 0:
                neighbour = 1
            elif shortest == len(runs) - 1:
                neighbour = shortest - 1
            else:
                neighbour = max(shortest - 1, shortest + 1, key=lambda k: span(runs[k]))
            lo, hi = sorted((shortest, neighbour))
            runs[lo:hi + 1] = [[runs[neighbour][0], runs[lo][1], runs[hi][2]]]
            merged = [runs[0]]  # neighbours may now share a label
            for r in runs[1:]:
                if r[0] == merged[-1][0]:
                    merged[-1][2] = r[2]
                else:
                    merged.append(r)
            runs = merged
        segments = []
        for k, (label, a, b) in enumerate(runs):
            vx, vy, zoom = velocity[a : b + 1].mean(axis=0)
            magnitude = {"pan": abs(vx), "tilt": abs(vy), "zoom": abs(zoom), "shake": float(jitter[a : b + 1].mean()),
                         "static": float(np.hypot(vx, vy))}[label.split("_")[0]]
            end = float(times[b + 1]) if k < len(runs) - 1 else max(float(times[b + 1]), duration)
            segments.append(CameraSegment(start=float(times[a]), end=end, label=label,
                                          magnitude=round(float(magnitude), 4),
                                          content_dx_per_s=round(float(vx), 4), content_dy_per_s=round(float(vy), 4),
                                          zoom_per_s=round(float(zoom), 4)))
        return segments
