"""Emotion per speech segment from a speech-emotion model, plus prosody (pitch, energy, syllable rate).

Emotion: any Hugging Face audio-classification model, loaded by name or folder through transformers'
pipeline (production: e.g. "superb/wav2vec2-base-superb-er", labels neutral/happy/angry/sad). No such model
ships offline, so without one the analyzer still runs: `emotion_status` says "unavailable" with the
reason, and only prosody is delivered. Prosody is measured signal, not an emotion, and is never mapped to
one here.

Segments: those of `speech_transcription` when it ran in the same request (anything with `segments`
carrying start/end), else an energy voice-activity detector; long segments are split into windows of at
most `max_segment_seconds`, the length these models are trained on.

Prosody per segment and overall: pitch from librosa's pYIN (median, mean, 10th-90th percentile range in Hz
and semitones, voiced fraction), energy (mean and spread of 30 ms RMS in dBFS), and a speaking-rate proxy:
peaks of the smoothed energy envelope (>= 3 dB prominence, at least 80 ms apart, voiced) per second of
speech, which approximates syllables per second without knowing the words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from analyzers._yamnet import frame_rms_db
from analyzers.base import Analyzer, AnalyzerUnavailable, Needs
from analyzers.media import MediaBundle

SHORT_LABELS = {"neu": "neutral", "hap": "happy", "ang": "angry", "sad": "sad", "fea": "fearful", "dis": "disgust",
                "sur": "surprised", "cal": "calm"}


class Prosody(BaseModel):
    pitch_median_hz: float | None
    pitch_mean_hz: float | None
    pitch_p10_hz: float | None
    pitch_p90_hz: float | None
    pitch_range_semitones: float | None = Field(..., description="From the 10th to the 90th percentile of pitch.")
    voiced_fraction: float
    energy_mean_dbfs: float | None
    energy_std_db: float | None
    syllable_rate_proxy: float | None = Field(..., description="Voiced energy peaks per second of speech (approximate syllables/s).")


class SegmentEmotion(BaseModel):
    start: float
    end: float
    emotion: str | None = Field(..., description="Most probable label; null when the emotion model is unavailable.")
    confidence: float | None
    scores: dict[str, float] = Field(default_factory=dict, description="Probability of every label of the model.")
    prosody: Prosody


class SpeechEmotionResult(BaseModel):
    emotion_status: Literal["ok", "unavailable"]
    emotion_unavailable_reason: str | None = None
    emotion_model: str | None
    emotion_labels: list[str]
    segment_source: Literal["speech_transcription", "energy_vad"]
    segments: list[SegmentEmotion]
    dominant_emotion: str | None
    emotion_shares: dict[str, float] = Field(default_factory=dict, description="Share of speech time per top label.")
    prosody: Prosody = Field(..., description="Over all speech segments together.")


class SpeechEmotionSettings(BaseModel):
    model: str | None = Field("superb/wav2vec2-base-superb-er", description="Hub name or local folder; null: prosody only.")
    local_files_only: bool = Field(False, description="Never ask the hub (offline profile).")
    max_segment_seconds: float = Field(8.0, gt=1)
    min_segment_seconds: float = Field(0.4, gt=0)
    pitch_fmin_hz: float = Field(60.0, gt=20)
    pitch_fmax_hz: float = Field(500.0, gt=60)
    vad_margin_db: float = Field(12.0, gt=0, description="Energy VAD: speech is this far above the noise floor.")


def _field(item: Any, key: str) -> Any:
    return item.get(key) if isinstance(item, Mapping) else getattr(item, key, None)


def upstream_segments(upstream: Mapping[str, BaseModel]) -> list[tuple[float, float]] | None:
    found = upstream.get("speech_transcription")
    segments = _field(found, "segments") if found is not None else None
    if segments is None:
        return None
    spans = [(float(_field(s, "start")), float(_field(s, "end"))) for s in segments]
    return [(a, b) for a, b in spans if b > a]


def energy_vad(samples: np.ndarray, rate: int, margin_db: float) -> list[tuple[float, float]]:
    """Stretches where 30 ms RMS stands `margin_db` above the noise floor (and above -60 dBFS); gaps under 0.3 s are bridged."""
    levels = frame_rms_db(samples, rate, 0.03, 0.01)
    audible = levels[levels > -130]
    if not len(audible):
        return []
    peak = audible.max()
    # a track that never gets quiet (a steady voice over music, a tone) has no floor to stand above: all of it counts
    threshold = max(min(np.percentile(audible, 10) + margin_db, peak - 6.0), peak - 45.0, -60.0)
    active = levels >= threshold
    edges = np.diff(np.r_[0, active.astype(np.int8), 0])
    spans = [[a * 0.01, b * 0.01 + 0.03] for a, b in zip(np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0])]
    merged: list[list[float]] = []
    for span in spans:
        if merged and span[0] - merged[-1][1] < 0.3:
            merged[-1][1] = span[1]
        else:
            merged.append(span)
    return [(round(a, 3), round(b, 3)) for a, b in merged]


def split_long(spans: list[tuple[float, float]], longest: float, shortest: float) -> list[tuple[float, float]]:
    out = []
    for a, b in spans:
        pieces = int(np.ceil((b - a) / longest))
        edges = np.linspace(a, b, pieces + 1)
        out += [(round(float(x), 3), round(float(y), 3)) for x, y in zip(edges[:-1], edges[1:]) if y - x >= shortest]
    return out


def pitch_track(samples: np.ndarray, rate: int, fmin: float, fmax: float) -> tuple[np.ndarray, np.ndarray]:
    """(f0 in Hz with NaN where unvoiced, voiced flags) every 20 ms."""
    import librosa

    if len(samples) < 1024:
        return np.array([]), np.array([], dtype=bool)
    f0, voiced, _ = librosa.pyin(samples, fmin=fmin, fmax=fmax, sr=rate, frame_length=1024, hop_length=320)
    return f0, voiced


@dataclass
class Measurement:
    """Raw prosody of one piece of speech, kept so that pieces can be summarized alone or together."""

    pitch: np.ndarray  # Hz, voiced frames only
    voiced: np.ndarray
    energy: np.ndarray  # dBFS of 30 ms frames, digital silence left out
    peaks: int
    seconds: float


def measure(piece: np.ndarray, rate: int, settings: SpeechEmotionSettings) -> Measurement:
    f0, voiced = pitch_track(piece, rate, settings.pitch_fmin_hz, settings.pitch_fmax_hz)
    pitch = f0[voiced] if len(f0) else f0
    levels = frame_rms_db(piece, rate, 0.03, 0.01)
    return Measurement(pitch=pitch[np.isfinite(pitch)], voiced=voiced, energy=levels[levels > -130],
                       peaks=syllable_peaks(levels, voiced), seconds=len(piece) / rate)


def summarize(parts: list[Measurement]) -> Prosody:
    pitch = np.concatenate([m.pitch for m in parts]) if parts else np.array([])
    voiced = np.concatenate([m.voiced for m in parts]) if parts else np.array([])
    energy = np.concatenate([m.energy for m in parts]) if parts else np.array([])
    seconds = sum(m.seconds for m in parts)

    def r(value: float, digits: int = 2) -> float:
        return round(float(value), digits)

    has_pitch = len(pitch) >= 5
    p10, p90 = np.percentile(pitch, [10, 90]) if has_pitch else (None, None)
    return Prosody(
        pitch_median_hz=r(np.median(pitch)) if has_pitch else None,
        pitch_mean_hz=r(np.mean(pitch)) if has_pitch else None,
        pitch_p10_hz=r(p10) if has_pitch else None,
        pitch_p90_hz=r(p90) if has_pitch else None,
        pitch_range_semitones=r(12 * np.log2(p90 / p10)) if has_pitch else None,
        voiced_fraction=r(np.mean(voiced), 3) if len(voiced) else 0.0,
        energy_mean_dbfs=r(np.mean(energy)) if len(energy) else None,
        energy_std_db=r(np.std(energy)) if len(energy) else None,
        syllable_rate_proxy=r(sum(m.peaks for m in parts) / seconds) if seconds >= 0.5 else None,
    )


def syllable_peaks(levels_db: np.ndarray, voiced: np.ndarray) -> int:
    from scipy.signal import find_peaks

    if len(levels_db) < 5:
        return 0
    smooth = np.convolve(levels_db, np.ones(5) / 5, mode="same")
    found, _ = find_peaks(smooth, prominence=3.0, distance=8)
    if len(voiced):  # levels are every 10 ms, pitch every 20 ms
        found = [p for p in found if voiced[min(len(voiced) - 1, p // 2)]]
    return len(found)


class SpeechEmotion(Analyzer):
    name = "speech_emotion"
    needs = Needs(audio=True, optional_upstream=("speech_transcription",))
    Result = SpeechEmotionResult
    Settings = SpeechEmotionSettings

    def load(self, device: str) -> None:
        super().load(device)
        self.classifier, self.unavailable_reason = None, None
        if self.settings.model is None:
            self.unavailable_reason = "no speech-emotion model is configured"
        else:
            try:
                self.classifier = load_emotion_pipeline(self.settings.model, device, self.settings.local_files_only)
            except Exception as exc:  # a missing or broken model must not cost the prosody
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                self.unavailable_reason = f"speech-emotion model {self.settings.model!r} could not be loaded: {first}"
        pitch_track(np.zeros(4000, dtype=np.float32), 16000, 60.0, 500.0)  # pYIN compiles on first use: pay it here

    @property
    def model_in_use(self) -> str | None:
        return self.settings.model if getattr(self, "classifier", None) is not None else None

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> SpeechEmotionResult:
        if media.audio is None or len(media.audio.samples) == 0:
            raise AnalyzerUnavailable("video has no audio track")
        if not hasattr(self, "classifier"):
            self.load(self.device)
        s = self.settings
        samples, rate = media.audio.samples, media.audio.sample_rate
        spans = upstream_segments(upstream)
        source = "speech_transcription" if spans is not None else "energy_vad"
        if spans is None:
            spans = energy_vad(samples, rate, s.vad_margin_db)
        spans = split_long([(max(0.0, a), min(media.audio.duration, b)) for a, b in spans], s.max_segment_seconds,
                           s.min_segment_seconds)
        pieces = [samples[int(a * rate) : int(b * rate)] for a, b in spans]
        predictions = self._classify(pieces, rate) if self.classifier is not None and pieces else [None] * len(pieces)
        measured = [measure(piece, rate, s) for piece in pieces]
        segments = []
        for (a, b), part, scores in zip(spans, measured, predictions):
            top = max(scores, key=scores.get) if scores else None
            segments.append(SegmentEmotion(start=a, end=b, emotion=top, confidence=scores[top] if top else None,
                                           scores=scores or {}, prosody=summarize([part])))
        shares: dict[str, float] = {}
        for seg in segments:
            if seg.emotion:
                shares[seg.emotion] = shares.get(seg.emotion, 0.0) + seg.end - seg.start
        total = sum(shares.values())
        shares = {k: round(v / total, 3) for k, v in sorted(shares.items(), key=lambda kv: -kv[1])} if total else {}
        return SpeechEmotionResult(
            emotion_status="ok" if self.classifier is not None else "unavailable",
            emotion_unavailable_reason=self.unavailable_reason,
            emotion_model=self.model_in_use,
            emotion_labels=self.labels() if self.classifier is not None else [],
            segment_source=source,
            segments=segments,
            dominant_emotion=next(iter(shares), None),
            emotion_shares=shares,
            prosody=summarize(measured),
        )

    def labels(self) -> list[str]:
        id2label = self.classifier.model.config.id2label
        return [readable(id2label[i]) for i in sorted(id2label)]

    def _classify(self, pieces: list[np.ndarray], rate: int) -> list[dict[str, float]]:
        inputs = [{"raw": np.ascontiguousarray(p, dtype=np.float32), "sampling_rate": rate} for p in pieces]
        outputs = self.classifier(inputs, top_k=None)
        return [{readable(o["label"]): round(float(o["score"]), 4) for o in out} for out in outputs]


def readable(label: str) -> str:
    return SHORT_LABELS.get(label.lower(), label)


def load_emotion_pipeline(model: str, device: str, local_files_only: bool):
    """transformers' audio-classification pipeline for a hub name or a local folder."""
    from pathlib import Path

    from transformers import pipeline

    source = model
    if local_files_only and not Path(model).is_dir():
        from huggingface_hub import snapshot_download

        source = snapshot_download(repo_id=model, local_files_only=True)  # raises at once when not cached
    return pipeline("audio-classification", model=source, device="cuda" if device.startswith("cuda") else "cpu")
