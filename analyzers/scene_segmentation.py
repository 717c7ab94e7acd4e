"""Scenes: runs of shots that belong together, found by linking shots that look alike.

Each shot is described by the mean colour histogram of the frames sampled inside it. Two shots at most
`link_shots` apart are linked when their histograms are similar enough, and every shot between two linked shots
joins their scene (the "overlapping links" idea of Hanjalic et al.): a conversation that cuts A B A B is
one scene although B looks nothing like A, while a clean change of place breaks every link across it.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np
from pydantic import BaseModel, Field

from analyzers.base import Analyzer, FrameSpec, Needs
from analyzers.media import MediaBundle

SCENE_FRAMES = FrameSpec(fps=4, max_side=128)


class Scene(BaseModel):
    start: float
    end: float
    start_frame: int
    end_frame: int = Field(..., description="Last frame, inclusive.")
    shot_indices: list[int] = Field(..., description="Indices into cut_analysis's shots.")
    keyframe_frame: int = Field(..., description="Source frame most typical of the scene's colours.")
    keyframe_time: float


class SceneResult(BaseModel):
    scenes: list[Scene]
    scene_count: int
    shot_count: int
    adjacent_similarity: list[float] = Field(..., description="Histogram similarity of each shot with the next, 0..1.")


class SceneSettings(BaseModel):
    link_similarity: float = Field(0.7, description="Histogram similarity (0..1) above which two shots are linked.")
    link_shots: int = Field(3, ge=1, description="How many shots ahead a link may reach.")
    max_link_gap_s: float = Field(60.0, description="Shots further apart in time are never linked.")


def colour_histogram(frame: np.ndarray) -> np.ndarray:
    # RGB rather than HSV: hue is noise for the greys and whites of indoor scenes and paper, which made
    # unrelated pale shots look alike
    hist = cv2.calcHist([frame], [0, 1, 2], None, [8, 8, 8], [0, 256, 0, 256, 0, 256]).ravel()
    return hist / max(hist.sum(), 1.0)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Bhattacharyya coefficient of two histograms: 1 for identical colour distributions, 0 for disjoint."""
    return float(np.sqrt(a * b).sum())


class SceneSegmentation(Analyzer):
    name = "scene_segmentation"
    needs = Needs(frames=SCENE_FRAMES, upstream=("cut_analysis",))
    Result = SceneResult
    Settings = SceneSettings

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> SceneResult:
        shots = upstream["cut_analysis"].shots
        frame_set = media.frames(SCENE_FRAMES)
        hists = np.stack([colour_histogram(f) for f in frame_set.frames])
        indices = frame_set.indices
        members = []  # sampled frames per shot; a shot shorter than the sampling step takes its nearest frame
        for shot in shots:
            inside = np.flatnonzero((indices >= shot.start_frame) & (indices <= shot.end_frame))
            if len(inside) == 0:
                inside = np.array([int(np.argmin(np.abs(indices - (shot.start_frame + shot.end_frame) / 2)))])
            members.append(inside)
        descriptors = [hists[m].mean(axis=0) for m in members]

        # scene_of_shot[k] is the first shot of k's scene; links make every shot they span join one scene
        reach = list(range(len(shots)))  # furthest shot each shot is linked to
        for i in range(len(shots)):
            for j in range(i + 1, min(len(shots), i + 1 + self.settings.link_shots)):
                if shots[j].start - shots[i].end > self.settings.max_link_gap_s:
                    break
                if similarity(descriptors[i], descriptors[j]) >= self.settings.link_similarity:
                    reach[i] = j
        groups, current, furthest = [], [], -1
        for k in range(len(shots)):
            if current and k > furthest:
                groups.append(current)
                current = []
            current.append(k)
            furthest = max(furthest, reach[k])
        if current:
            groups.append(current)

        scenes = []
        for group in groups:
            frames = np.concatenate([members[k] for k in group])
            centre = hists[frames].mean(axis=0)
            key = int(frames[np.argmax([similarity(hists[f], centre) for f in frames])])
            first, last = shots[group[0]], shots[group[-1]]
            scenes.append(Scene(start=first.start, end=last.end, start_frame=first.start_frame,
                                end_frame=last.end_frame,
                                shot_indices=group, keyframe_frame=int(indices[key]),
                                keyframe_time=round(float(frame_set.timestamps[key]), 3)))
        adjacent = [round(similarity(a, b), 3) for a, b in zip(descriptors, descriptors[1:])]
        return SceneResult(scenes=scenes, scene_count=len(scenes), shot_count=len(shots), adjacent_similarity=adjacent)
