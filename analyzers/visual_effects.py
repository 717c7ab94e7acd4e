"""Editing effects: fades to and from black or white, flashes, black frames, slow motion and speed ramps from
repeated frames, colour filters, and split screens.

Everything is read from every frame at 128 px (the same frames cut_analysis uses, so nothing more is decoded).
- Fades are runs of steadily falling (or rising) brightness that end (or start) on a plain black or white frame.
- A flash is a brightness jump that falls back to about where it was within a few frames; a cut does not.
- Slow motion made by repeating frames shows as frame steps with (almost) no change between steps that do
  change: the share of repeats in a window gives the speed (each frame shown twice = 0.5x).
- A colour filter is a stretch, begun and ended by a jump in colourfulness or tint (Lab a/b) while the
  picture's layout goes on, that differs from the frames on both sides of it.
- A split screen is a straight vertical or horizontal seam, away from the borders, that stays in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, Field

from analyzers.base import Analyzer, FrameSpec, Needs
from analyzers.media import MediaBundle

EFFECT_FRAMES = FrameSpec(fps=None, max_side=128)  # the spec cut_analysis uses: decoded once for both


class Span(BaseModel):
    start: float
    end: float
    start_frame: int
    end_frame: int = Field(..., description="Last frame, inclusive.")


class Fade(Span):
    kind: Literal["fade_in", "fade_out"]
    colour: Literal["black", "white"]


class Flash(Span):
    peak_brightness: float = Field(..., description="Mean brightness at the peak, 0..1.")
    jump: float = Field(..., description="Brightness rise over the frame before, 0..1.")


class SpeedSegment(Span):
    speed_factor: float = Field(..., description="Playback speed implied by repeated frames (0.5 = each frame twice).")
    repeated_share: float


class ColorFilter(Span):
    kind: Literal["grayscale", "desaturated", "saturated", "tint"]
    tint: Literal["warm", "cool", "green", "magenta"] | None = None
    saturation_ratio: float = Field(..., description="Colourfulness (Lab chroma) over that of the frames around it.")
    tint_shift: tuple[float, float] = Field(..., description="Lab (a, b) shift from the frames around it.")


class SplitScreen(Span):
    orientation: Literal["vertical", "horizontal"] = Field(..., description="Direction of the seam line.")
    position: float = Field(..., description="Where the seam is, as a fraction of width (vertical) or height.")


class EffectsResult(BaseModel):
    fades: list[Fade]
    flashes: list[Flash]
    black_frames: list[Span]
    slow_motion: list[SpeedSegment]
    speed_ramp: bool = Field(..., description="Slow and normal speed both occur, i.e. the speed changes in the clip.")
    color_filters: list[ColorFilter]
    split_screens: list[SplitScreen]
    effect_count: int


class EffectsSettings(BaseModel):
    black_level: float = Field(0.06, description="Mean brightness at or below which a plain frame is black.")
    white_level: float = Field(0.92, description="Mean brightness at or above which a plain frame is white.")
    plain_std: float = Field(0.02, description="Brightness spread below which a frame is plain.")
    min_fade_frames: int = Field(4, ge=2)
    flash_jump: float = Field(0.25, description="Brightness rise that starts a flash.")
    flash_max_s: float = Field(0.3, description="A flash is over within this time.")
    repeat_ratio: float = Field(
        0.15, description="A step with less change than this share of the moving steps is a repeat.")
    min_slow_share: float = Field(
        0.3, description="Share of repeated steps in a 1 s window that counts as slow motion.")
    min_filter_s: float = Field(0.5)
    seam_coverage: float = Field(0.85, description="Share of the seam's length where it shows a clear edge.")
    min_split_s: float = Field(1.0)


def _runs(flags: np.ndarray, max_gap: int = 0) -> list[tuple[int, int]]:
    """Inclusive (first, last) index pairs of True runs; gaps of up to `max_gap` False entries are bridged."""
    runs: list[list[int]] = []
    for i in np.flatnonzero(flags):
        if runs and i - runs[-1][1] <= max_gap + 1:
            runs[-1][1] = int(i)
        else:
            runs.append([int(i), int(i)])
    return [(a, b) for a, b in runs]


def seam_positions(gray: np.ndarray, coverage: float, axis: int) -> list[int]:
    """Columns (axis=1) or rows (axis=0), in the middle 60%, with a clear edge along most of their length that is
    much stronger than the edges next to it."""
    steps = np.abs(np.diff(gray, axis=axis))
    if axis == 0:
        steps = steps.T
    strong = (steps > 0.06).mean(axis=0)  # per column: share of rows with a clear step
    energy = steps.mean(axis=0)
    n = len(energy)
    found = []
    for x in range(int(0.2 * n), int(0.8 * n)):
        around = np.r_[energy[max(0, x - 5) : max(0, x - 1)], energy[x + 2 : x + 6]]
        if strong[x] >= coverage and energy[x] > 4 * max(float(np.median(around)) if len(around) else 0, 0.005):
            found.append(x)
    return found


# where seam_positions compares a line with its neighbours: 2 to 5 lines away on either side
_AROUND = np.array([-5, -4, -3, -2, 2, 3, 4, 5])


def seam_positions_of_frames(grays: np.ndarray, coverage: float, axis: int) -> list[list[int]]:
    """seam_positions of every frame of `grays` (N, H, W), in whole-array operations: one call per frame in a
    Python loop was half of this analyzer's time (0.8 of 1.7 s on a 30 s clip, 2-core CPU). Same comparisons on
    the same float32 values, so the same positions; frames too small for full neighbourhoods take the loop."""
    lines = grays.shape[1 + axis] - 1
    if lines < 25:  # a line in the middle 60% could lack neighbours 5 away
        return [seam_positions(gray, coverage, axis) for gray in grays]
    steps = np.abs(np.diff(grays, axis=1 + axis))
    along = 1 if axis == 1 else 2  # average along the seam's length
    strong = (steps > 0.06).mean(axis=along)  # (N, lines): share of the length with a clear step
    energy = steps.mean(axis=along)
    xs = np.arange(int(0.2 * lines), int(0.8 * lines))
    around = np.median(energy[:, xs[:, None] + _AROUND], axis=2)
    hit = (strong[:, xs] >= coverage) & (energy[:, xs] > 4 * np.maximum(around, 0.005))
    return [xs[row].tolist() for row in hit]


def structure_changes(grays: np.ndarray, min_correlation: float = 0.5) -> list[int]:
    """Frames where the grey layout stops matching the frame before: new shots. Unlike a colour-histogram cut
    detector this ignores a colour filter switching on, which is exactly what the filter test must see."""
    h, w = grays.shape[1:]
    thumbs = np.stack([cv2.resize(g, (24, max(4, round(24 * h / w))), interpolation=cv2.INTER_AREA) for g in grays])
    flat = thumbs.reshape(len(thumbs), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    flat /= np.linalg.norm(flat, axis=1, keepdims=True) + 1e-6
    correlation = (flat[1:] * flat[:-1]).sum(axis=1)
    return [i + 1 for i in np.flatnonzero(correlation < min_correlation)]


class VisualEffects(Analyzer):
    name = "visual_effects"
    needs = Needs(frames=EFFECT_FRAMES)
    Result = EffectsResult
    Settings = EffectsSettings

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> EffectsResult:
        fs = media.frames(EFFECT_FRAMES)
        self._times, self._indices = np.round(fs.timestamps.astype(np.float64), 3), fs.indices
        self._step = float(np.median(np.diff(fs.timestamps))) if len(fs) > 1 else 1 / max(media.metadata.fps, 1.0)
        grays = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in fs.frames]).astype(np.float32) / 255
        brightness, spread = grays.mean(axis=(1, 2)), grays.std(axis=(1, 2))
        s = self.settings
        black = (brightness <= s.black_level) & (spread < s.plain_std)
        white = (brightness >= s.white_level) & (spread < s.plain_std)
        fades = self._fades(brightness, black, "black") + self._fades(brightness, white, "white")
        fades.sort(key=lambda f: f.start)
        flashes = self._flashes(brightness)
        plain = spread < s.plain_std
        slow = self._slow_motion(grays, plain)
        normal_time = (len(fs) * self._step) - sum(x.end - x.start for x in slow)
        # colour is not judged on frames too dark, too bright or fading: their saturation is not the filter's
        judged = (brightness > 0.12) & (brightness < 0.88) & ~plain
        for fade in fades:
            judged[(fs.indices >= fade.start_frame) & (fs.indices <= fade.end_frame)] = False
        shot_starts = [0, *structure_changes(grays), len(fs)]
        filters = self._colour_filters(fs.frames, judged, shot_starts)
        splits = self._splits(grays)
        black_frames = [self._span(Span, a, b) for a, b in _runs(black)]
        return EffectsResult(
            fades=fades, flashes=flashes, black_frames=black_frames, slow_motion=slow,
            speed_ramp=bool(slow) and normal_time >= 1.0, color_filters=filters, split_screens=splits,
            effect_count=len(fades) + len(flashes) + len(black_frames) + len(slow) + len(filters) + len(splits),
        )

    def _span(self, model, a: int, b: int, **fields):
        return model(start=float(self._times[a]), end=round(float(self._times[b]) + self._step, 3),
                     start_frame=int(self._indices[a]),
                     end_frame=int(self._indices[b]), **fields)

    def _fades(self, brightness: np.ndarray, plain: np.ndarray, colour: str) -> list[Fade]:
        toward = -1.0 if colour == "black" else 1.0  # brightness moves this way while fading out
        fades = []
        for first, last in _runs(plain):
            for kind, edge, step in (("fade_out", first, -1), ("fade_in", last, 1)):
                k = edge
                # walk away from the plain run while brightness keeps moving away from the plain colour
                while 0 <= k + step < len(brightness) and toward * (brightness[k] - brightness[k + step]) > 0.002:
                    k += step
                length = abs(k - edge)
                if length >= self.settings.min_fade_frames and abs(brightness[k] - brightness[edge]) >= 0.1:
                    # the faintest frames of a fade already pass for plain: follow the same trend into the run
                    inner = edge
                    while (first <= inner - step <= last
                           and toward * (brightness[inner - step] - brightness[inner]) > 0.002):
                        inner -= step
                    a, b = sorted((k, inner))
                    fades.append(self._span(Fade, a, b, kind=kind, colour=colour))
        return fades

    def _flashes(self, brightness: np.ndarray) -> list[Flash]:
        s = self.settings
        longest = max(1, int(round(s.flash_max_s / self._step)))
        flashes, i = [], 1
        while i < len(brightness):
            jump = brightness[i] - brightness[i - 1]
            if jump < s.flash_jump:
                i += 1
                continue
            base = brightness[i - 1]
            back = next((k for k in range(i + 1, min(len(brightness), i + longest + 1))
                         if brightness[k] - base < 0.3 * jump), None)
            if back is None:  # stays bright: a cut or a fade, not a flash
                i += 1
                continue
            peak = float(brightness[i:back].max())
            flashes.append(self._span(Flash, i, back - 1, peak_brightness=round(peak, 3), jump=round(float(jump), 3)))
            i = back
        return flashes

    def _slow_motion(self, grays: np.ndarray, plain: np.ndarray) -> list[SpeedSegment]:
        if len(grays) < 3:
            return []
        change = np.abs(np.diff(grays, axis=0)).mean(axis=(1, 2))
        window = max(3, int(round(1.0 / self._step)))
        repeated = np.zeros(len(change), dtype=bool)
        for i in range(len(change)):
            around = change[max(0, i - window) : i + window + 1]
            moving = around[around > np.percentile(around, 50)]
            level = float(np.median(moving)) if len(moving) else 0.0
            # only a still step among moving ones is a repeat: a static shot repeats nothing
            repeated[i] = level > 0.004 and change[i] < self.settings.repeat_ratio * level and not plain[i + 1]
        share = np.convolve(repeated.astype(float), np.ones(window) / window, mode="same")
        segments = []
        for a, b in _runs(share >= self.settings.min_slow_share):
            # trim to the first and last repeat, then include the frame after the last step
            inside = np.flatnonzero(repeated[a : b + 1]) + a
            if len(inside) < 2:
                continue
            a, b = int(inside[0]), int(inside[-1]) + 1
            if (b - a) * self._step < 0.5:
                continue
            rep = float(repeated[a:b].mean())
            segments.append(self._span(SpeedSegment, a, b, speed_factor=round(1.0 - rep, 2),
                                       repeated_share=round(rep, 3)))
        return segments

    def _colour_filters(self, frames: np.ndarray, judged: np.ndarray, shot_starts: list[int]) -> list[ColorFilter]:
        """A filter switches on and off abruptly while the picture's layout goes on: cut each shot where
        colourfulness or mean tint jumps, and flag a piece that differs in the same way from every neighbouring
        piece of its shot. Slow drift (a pan from a red flag to a grey sky) makes no jump and no filter."""
        lab = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2LAB)[..., 1:].reshape(-1, 2).astype(np.float32) - 128
                        for f in frames])
        a, b = lab[..., 0], lab[..., 1]
        chroma = np.sqrt(a * a + b * b).mean(axis=1)  # colourfulness: mean distance from grey (norm's own sum, faster)
        mean_ab = lab.mean(axis=1)
        log_chroma = np.log1p(chroma)
        n = len(frames)
        bounds = set(shot_starts)
        # frame i against frame i - 1, for every i at once (a norm per frame in a loop cost 0.4 s on 900 frames)
        tint_jump = np.sqrt((np.diff(mean_ab, axis=0) ** 2).sum(axis=1))
        jumped = (np.abs(np.diff(log_chroma)) > 0.25) | (tint_jump > 5)
        for i in range(1, n):
            if judged[i] != judged[i - 1] or (judged[i] and jumped[i - 1]):
                bounds.add(i)
        jumps = bounds - set(shot_starts) - {i for i in range(1, n) if judged[i] != judged[i - 1]}
        edges = sorted(b for b in bounds if 0 <= b <= n) + ([n] if n not in bounds else [])
        pieces = [(a, b) for a, b in zip(edges[:-1], edges[1:]) if judged[a:b].all()]
        shot_of = np.searchsorted(np.asarray(shot_starts), np.arange(n), side="right")
        colourful_clip = bool(judged.any()) and float(np.median(chroma[judged])) > 3
        min_frames = max(2, int(round(self.settings.min_filter_s / self._step)))
        def oddness(a: int, b: int) -> tuple[int, float]:
            """Which of two differing neighbours is the filtered one: first the piece that a jump both switches
            on and off, then the one further from its shot's usual look."""
            usual = judged & (shot_of == shot_of[a])
            distance = abs(np.log((np.median(chroma[a:b]) + 1) / (np.median(chroma[usual]) + 1))) + float(
                np.linalg.norm(np.median(mean_ab[a:b], axis=0) - np.median(mean_ab[usual], axis=0))) / 20
            return (a in jumps) + (b in jumps), distance

        filters = []
        for k, (a, b) in enumerate(pieces):
            if b - a < min_frames:
                continue
            grey = colourful_clip and float(np.median(chroma[a:b])) < 2
            verdicts = []
            for j in (k - 1, k + 1):  # the neighbouring pieces of the same shot, their frames nearest to this one
                if not 0 <= j < len(pieces) or shot_of[pieces[j][0]] != shot_of[a]:
                    continue
                ja, jb = pieces[j]
                if oddness(ja, jb) > oddness(a, b):  # the neighbour is the filtered one, not this piece
                    verdicts.append(("", 1.0, np.zeros(2)))
                    continue
                near = slice(max(ja, jb - 5), jb) if j < k else slice(ja, min(jb, ja + 5))
                ratio = float(np.median(chroma[a:b])) / max(float(np.median(chroma[near])), 1.0)
                reference_ab = np.median(mean_ab[near], axis=0)
                shift = np.median(mean_ab[a:b], axis=0) - reference_ab
                # scaling the saturation by r moves the mean colour by (r - 1) x itself; a tint moves it elsewhere
                tint_part = float(np.linalg.norm(shift - (ratio - 1) * reference_ab))
                kind = ("grayscale" if grey else "tint" if tint_part > 10 else "desaturated" if ratio < 0.6
                        else "saturated" if ratio > 1.4 else "")
                verdicts.append((kind, ratio, shift))
            if not verdicts and grey:
                verdicts = [("grayscale", 0.0, np.zeros(2))]
            kinds = {v[0] for v in verdicts}
            if len(kinds) != 1 or "" in kinds:
                continue
            kind = kinds.pop()
            ratio = float(np.mean([v[1] for v in verdicts]))
            da, db = np.mean([v[2] for v in verdicts], axis=0)
            tint = None
            if kind == "tint":
                tint = ("magenta" if da > 0 else "green") if abs(da) > abs(db) else ("warm" if db > 0 else "cool")
            filters.append(self._span(ColorFilter, a, b - 1, kind=kind, tint=tint, saturation_ratio=round(ratio, 3),
                                      tint_shift=(round(float(da), 2), round(float(db), 2))))
        return filters

    def _splits(self, grays: np.ndarray) -> list[SplitScreen]:
        # every other frame is plenty: a split screen lasts seconds
        sample = np.arange(0, len(grays), 2)
        min_frames = max(2, int(round(self.settings.min_split_s / (2 * self._step))))
        splits = []
        for orientation, axis in (("vertical", 1), ("horizontal", 0)):
            size = grays.shape[1 + axis] - 1
            hits: dict[int, list[int]] = {}
            for j, positions in enumerate(seam_positions_of_frames(grays[sample], self.settings.seam_coverage, axis)):
                for x in positions:
                    hits.setdefault(x, []).append(j)
            flags_by_x = {}
            for x, js in hits.items():  # a seam may wobble by one pixel with scaling: pool neighbours
                flags = np.zeros(len(sample), dtype=bool)
                for xx in (x - 1, x, x + 1):
                    flags[hits.get(xx, [])] = True
                flags_by_x[x] = flags
            taken: list[tuple[int, int, int]] = []
            for x in sorted(flags_by_x, key=lambda x: -len(hits[x])):
                for a, b in _runs(flags_by_x[x], max_gap=2):
                    if b - a + 1 < min_frames or any(abs(x - tx) <= 2 and a <= tb and ta <= b for tx, ta, tb in taken):
                        continue
                    taken.append((x, a, b))
                    last = min(int(sample[b]) + 1, len(grays) - 1)
                    splits.append(self._span(SplitScreen, int(sample[a]), last, orientation=orientation,
                                             position=round((x + 1) / (size + 1), 3)))
        return sorted(splits, key=lambda s: s.start)
