"""Pacing: how fast shots change, how much moves, whether cuts land on the beat, and how strong the first 3 s are.

Shot lengths come from cut_analysis. Motion energy is the mean absolute grey difference between frames
0.2 s apart at 96 px, with steps across a shot change left out: a cut is editing, not motion. Beats come
from audio_analysis when it ran; a cut counts as on the beat within `beat_tolerance_s`, and the share
expected by chance alone is reported next to it, because at 150 bpm a +-0.1 s window covers half the
timeline. The hook score is the mean of its components, each reported, over the ones that could be measured.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np
from pydantic import BaseModel, Field

from analyzers.base import Analyzer, FrameSpec, Needs
from analyzers.media import MediaBundle

FLOW_FRAMES = FrameSpec(fps=5, max_side=96)


class MotionSample(BaseModel):
    time: float = Field(..., description="Time of the later frame of the pair.")
    energy: float = Field(..., description="Mean absolute grey change, 0..1.")


class BeatAlignment(BaseModel):
    tempo_bpm: float | None
    beat_count: int
    cuts_considered: int
    cuts_on_beat: int
    share_on_beat: float | None
    chance_share: float | None = Field(None, description="Share of cuts expected on a beat by chance at this tempo.")
    mean_offset_s: float | None = Field(None, description="Mean distance from each cut to its nearest beat.")
    tolerance_s: float


class HookComponents(BaseModel):
    cut_in_hook: float | None = Field(None, description="1 if a cut or transition starts in the hook window.")
    motion: float | None = Field(None, description="Motion energy in the window mapped to 0..1.")
    text_present: float | None = Field(
        None, description="1 if on-screen text shows in the window; null if text_overlay did not run.")
    speech_present: float | None = Field(
        None, description="1 if speech starts in the window; null if speech_transcription did not run.")


class Hook(BaseModel):
    window_s: float
    score: float = Field(..., description="0..100: mean of the measured components.")
    components: HookComponents
    cuts_in_window: int
    motion_energy: float


class FlowResult(BaseModel):
    duration: float
    shot_count: int
    shots_per_minute: float
    mean_shot_length: float
    median_shot_length: float
    shortest_shot: float
    longest_shot: float
    motion_energy: list[MotionSample]
    mean_motion_energy: float
    beat_alignment: BeatAlignment | None = Field(
        None, description="Null when audio_analysis did not run or found no beats.")
    hook: Hook


class FlowSettings(BaseModel):
    hook_window_s: float = Field(3.0, gt=0)
    beat_tolerance_s: float = Field(0.1, gt=0, description="A cut this close to a beat is on it.")
    motion_full_scale: float = Field(0.06, gt=0, description="Motion energy that counts as full motion in the hook.")


def motion_energy(frames: np.ndarray) -> np.ndarray:
    grays = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]).astype(np.float32) / 255.0
    return np.abs(np.diff(grays, axis=0)).mean(axis=(1, 2))


def _attr(obj, name, default=None):
    return getattr(obj, name, default) if obj is not None else default


class TemporalFlow(Analyzer):
    name = "temporal_flow"
    needs = Needs(frames=FLOW_FRAMES, upstream=("cut_analysis",),
                  optional_upstream=("audio_analysis", "text_overlay", "speech_transcription"))
    Result = FlowResult
    Settings = FlowSettings

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> FlowResult:
        cut_result = upstream["cut_analysis"]
        frame_set = media.frames(FLOW_FRAMES)
        times = frame_set.timestamps
        duration = max(media.metadata.duration, float(times[-1]) if len(times) else 0.0)
        lengths = np.array([s.end - s.start for s in cut_result.shots]) if cut_result.shots else np.array([duration])
        # shot changes: hard cuts and the starts of later shots (dissolve middles, fades through black)
        changes = sorted({c.time for c in cut_result.cuts} | {s.start for s in cut_result.shots[1:]})
        transition_starts = [t.start for t in _attr(cut_result, "transitions", [])]

        energy = motion_energy(frame_set.frames) if len(times) > 1 else np.zeros(0)
        across_change = np.array(
            [any(times[i] < c <= times[i + 1] + 1e-6 for c in changes) for i in range(len(energy))], dtype=bool)
        if across_change.any() and (~across_change).any():
            energy[across_change] = np.interp(np.flatnonzero(across_change), np.flatnonzero(~across_change),
                                              energy[~across_change])
        samples = [MotionSample(time=round(float(t), 3), energy=round(float(e), 5)) for t, e in zip(times[1:], energy)]

        return FlowResult(
            duration=round(duration, 3),
            shot_count=len(lengths),
            shots_per_minute=round(60.0 * len(lengths) / max(duration, 1e-6), 2),
            mean_shot_length=round(float(lengths.mean()), 3),
            median_shot_length=round(float(np.median(lengths)), 3),
            shortest_shot=round(float(lengths.min()), 3),
            longest_shot=round(float(lengths.max()), 3),
            motion_energy=samples,
            mean_motion_energy=round(float(energy.mean()) if len(energy) else 0.0, 5),
            beat_alignment=self._beats(changes, upstream.get("audio_analysis")),
            hook=self._hook(changes + transition_starts, times[1:], energy, upstream),
        )

    def _beats(self, changes: list[float], audio) -> BeatAlignment | None:
        beats = np.asarray(sorted(_attr(audio, "beats", []) or []), dtype=np.float64)
        if len(beats) == 0:
            return None
        tempo = _attr(audio, "tempo_bpm")
        tol = self.settings.beat_tolerance_s
        considered = [c for c in changes if beats[0] - tol <= c <= beats[-1] + tol]  # cuts where the music plays
        offsets = np.array([np.abs(beats - c).min() for c in considered])
        period = 60.0 / tempo if tempo else (float(np.median(np.diff(beats))) if len(beats) > 1 else None)
        return BeatAlignment(
            tempo_bpm=float(tempo) if tempo else None,
            beat_count=len(beats),
            cuts_considered=len(considered),
            cuts_on_beat=int((offsets <= tol).sum()),
            share_on_beat=round(float((offsets <= tol).mean()), 3) if len(offsets) else None,
            chance_share=round(min(1.0, 2 * tol / period), 3) if period else None,
            mean_offset_s=round(float(offsets.mean()), 3) if len(offsets) else None,
            tolerance_s=tol,
        )

    def _hook(self, changes: list[float], energy_times: np.ndarray, energy: np.ndarray, upstream) -> Hook:
        window = self.settings.hook_window_s
        in_window = [c for c in changes if 0 < c < window]
        hook_energy = float(energy[energy_times <= window].mean()) if (energy_times <= window).any() else 0.0
        text = upstream.get("text_overlay")
        speech = upstream.get("speech_transcription")
        components = HookComponents(
            cut_in_hook=1.0 if in_window else 0.0,
            motion=round(min(1.0, hook_energy / self.settings.motion_full_scale), 3),
            text_present=None if text is None else float(any(e.start < window for e in _attr(text, "events", []))),
            speech_present=None if speech is None else float(any(
                s.start < window for s in (_attr(speech, "segments") or _attr(speech, "words") or []))),
        )
        measured = [v for v in components.model_dump().values() if v is not None]
        return Hook(window_s=window, score=round(100 * float(np.mean(measured)), 1), components=components,
                    cuts_in_window=len(set(round(c, 3) for c in in_window)), motion_energy=round(hook_energy, 5))
