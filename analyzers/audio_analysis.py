"""Audio signal analysis: loudness (EBU R128 / ITU-R BS.1770), true peak, RMS curve, silence, tempo and beats."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, Field

from analyzers.base import Analyzer, AnalyzerUnavailable, Needs
from analyzers.media import MediaBundle

SILENCE_FLOOR_DB = -120.0


class Segment(BaseModel):
    start: float
    end: float


class LoudnessPoint(BaseModel):
    time: float = Field(..., description="Centre of the window, seconds.")
    lufs: float


class AudioAnalysisResult(BaseModel):
    integrated_lufs: float | None = Field(..., description="Gated programme loudness; None when too short or silent.")
    loudness_range_lu: float | None = Field(..., description="EBU R128 LRA from short-term loudness.")
    true_peak_dbtp: float = Field(..., description="4x oversampled peak, dB true peak.")
    sample_peak_dbfs: float
    short_term_lufs: list[LoudnessPoint] = Field(..., description="3 s windows every second (ungated).")
    rms_curve_dbfs: list[float] = Field(..., description="RMS level per `rms_hop_seconds`, dBFS.")
    rms_hop_seconds: float
    silence: list[Segment]
    silence_ratio: float
    tempo_bpm: float | None = Field(..., description="None when no steady beat was found.")
    beats: list[float] = Field(..., description="Beat times, seconds; empty without a steady beat.")
    pulse_clarity: float | None = Field(..., description="Autocorrelation of the onset envelope at the beat period, 0..1.")
    music_share: float | None = Field(None, description="From audio_environment (YAMNet) when it ran in the same request.")
    speech_share: float | None = Field(None, description="From audio_environment (YAMNet) when it ran in the same request.")
    duration: float


class AudioAnalysisSettings(BaseModel):
    silence_threshold_dbfs: float = -50.0
    min_silence_seconds: float = Field(0.3, gt=0)
    rms_hop_seconds: float = Field(0.1, gt=0)
    min_beats_for_tempo: int = Field(4, ge=2, description="Fewer detected beats than this means no steady tempo.")
    min_pulse_clarity: float = Field(
        0.3, ge=0, le=1,
        description="A beat tracker always finds 'beats', even in speech or noise (measured: speech 0.10, noise 0.0, "
        "a click track 0.84); below this clarity no tempo is reported.",
    )


def db(x: np.ndarray | float) -> np.ndarray | float:
    return 20.0 * np.log10(np.maximum(x, 10 ** (SILENCE_FLOOR_DB / 20)))


def k_weighted_power(samples: np.ndarray, rate: int) -> np.ndarray:
    """Squared K-weighted signal (BS.1770), using pyloudnorm's filter design for any sample rate."""
    import pyloudnorm

    meter = pyloudnorm.Meter(rate)
    filtered = samples.astype(np.float64)
    for stage in meter._filters.values():  # the two K-weighting stages, designed for `rate`
        filtered = stage.apply_filter(filtered)
    return filtered**2


def short_term_loudness(samples: np.ndarray, rate: int, window: float = 3.0, hop: float = 1.0) -> list[LoudnessPoint]:
    power = k_weighted_power(samples, rate)
    win, step = int(window * rate), int(hop * rate)
    if len(power) < win:
        win = len(power)
    points = []
    for start in range(0, max(1, len(power) - win + 1), step):
        mean_square = float(power[start : start + win].mean())
        lufs = -0.691 + 10 * np.log10(mean_square) if mean_square > 0 else SILENCE_FLOOR_DB
        points.append(LoudnessPoint(time=round((start + win / 2) / rate, 3), lufs=round(max(lufs, SILENCE_FLOOR_DB), 2)))
    return points


def loudness_range(points: list[LoudnessPoint]) -> float | None:
    """EBU Tech 3342: absolute gate -70 LUFS, relative gate -20 LU, then the 10th..95th percentile spread."""
    values = np.array([p.lufs for p in points])
    values = values[values > -70.0]
    if len(values) < 2:
        return None
    energy_mean = 10 * np.log10(np.mean(10 ** (values / 10)))
    values = values[values > energy_mean - 20.0]
    if len(values) < 2:
        return None
    return round(float(np.percentile(values, 95) - np.percentile(values, 10)), 2)


def true_peak(samples: np.ndarray) -> float:
    from scipy.signal import resample_poly

    return float(db(np.abs(resample_poly(samples.astype(np.float64), 4, 1)).max(initial=0.0)))


def silent_segments(rms_db: np.ndarray, hop: float, threshold: float, min_seconds: float) -> list[Segment]:
    quiet = np.concatenate([[False], rms_db < threshold, [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    segments = []
    for start, end in zip(edges[::2], edges[1::2]):
        if (end - start) * hop >= min_seconds:
            segments.append(Segment(start=round(start * hop, 3), end=round(end * hop, 3)))
    return segments


BEAT_HOP = 256


def beat_grid(samples: np.ndarray, rate: int, settings: AudioAnalysisSettings) -> tuple[float | None, list[float], float | None]:
    """Tempo from the median beat interval, only when the pulse is clear (see `min_pulse_clarity`)."""
    import librosa

    onsets = librosa.onset.onset_strength(y=samples, sr=rate, hop_length=BEAT_HOP)
    _, beat_frames = librosa.beat.beat_track(onset_envelope=onsets, sr=rate, hop_length=BEAT_HOP)
    if len(beat_frames) < settings.min_beats_for_tempo:
        return None, [], None
    centred = onsets - onsets.mean()
    autocorr = librosa.autocorrelate(centred)
    period = int(round(np.median(np.diff(beat_frames))))
    clarity = round(float(np.clip(autocorr[period] / max(autocorr[0], 1e-12), 0.0, 1.0)), 3)
    if clarity < settings.min_pulse_clarity:
        return None, [], clarity
    times = librosa.frames_to_time(beat_frames, sr=rate, hop_length=BEAT_HOP)
    tempo = 60.0 / float(np.median(np.diff(times)))
    return round(tempo, 2), [round(float(t), 3) for t in times], clarity


class AudioAnalysis(Analyzer):
    name = "audio_analysis"
    needs = Needs(audio=True, optional_upstream=("audio_environment",))
    Result = AudioAnalysisResult
    Settings = AudioAnalysisSettings

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> AudioAnalysisResult:
        import librosa
        import pyloudnorm

        if media.audio is None:
            raise AnalyzerUnavailable("the video has no audio track")
        samples, rate = media.audio.samples, media.audio.sample_rate
        settings = self.settings
        duration = len(samples) / rate

        integrated = None
        if duration >= 0.4:  # BS.1770 needs at least one 400 ms gating block
            value = pyloudnorm.Meter(rate).integrated_loudness(samples.astype(np.float64))
            integrated = round(float(value), 2) if np.isfinite(value) else None
        short_term = short_term_loudness(samples, rate)

        hop = max(1, int(settings.rms_hop_seconds * rate))
        rms = librosa.feature.rms(y=samples, frame_length=2 * hop, hop_length=hop, center=False)[0]
        rms_db = db(rms)
        silence = silent_segments(rms_db, hop / rate, settings.silence_threshold_dbfs, settings.min_silence_seconds)

        tempo, beats, clarity = None, [], None
        if duration >= 2.0 and float(rms_db.max(initial=SILENCE_FLOOR_DB)) > settings.silence_threshold_dbfs:
            tempo, beats, clarity = beat_grid(samples, rate, settings)
        environment = upstream.get("audio_environment")

        return AudioAnalysisResult(
            integrated_lufs=integrated,
            loudness_range_lu=loudness_range(short_term),
            true_peak_dbtp=round(true_peak(samples), 2),
            sample_peak_dbfs=round(float(db(np.abs(samples).max(initial=0.0))), 2),
            short_term_lufs=short_term,
            rms_curve_dbfs=[round(float(v), 2) for v in rms_db],
            rms_hop_seconds=hop / rate,
            silence=silence,
            silence_ratio=round(sum(s.end - s.start for s in silence) / max(duration, 1e-9), 4),
            tempo_bpm=tempo,
            beats=beats,
            pulse_clarity=clarity,
            music_share=getattr(environment, "music_share", None),
            speech_share=getattr(environment, "speech_share", None),
            duration=round(duration, 3),
        )
