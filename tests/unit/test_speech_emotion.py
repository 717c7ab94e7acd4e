"""speech_emotion: the model plumbing with a tiny random wav2vec2 classifier (labels, not words), and prosody
on sounds whose pitch is known by construction (a 220 Hz tone; espeak-ng at two pitch settings)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from analyzers.media import decode
from analyzers.speech_emotion import SpeechEmotion
from tests.synth import still_with_audio, tone_wav

EMOTIONS = ["angry", "happy", "neutral", "sad"]


@pytest.fixture(scope="module")
def tiny_emotion_model(tmp_path_factory) -> Path:
    """A randomly initialised wav2vec2 audio classifier, saved like a real hub model."""
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    folder = tmp_path_factory.mktemp("tiny_ser")
    config = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, vocab_size=10,
        conv_dim=(16, 16, 16), conv_stride=(5, 4, 4), conv_kernel=(10, 8, 8), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, classifier_proj_size=8,
        id2label=dict(enumerate(EMOTIONS)), label2id={label: i for i, label in enumerate(EMOTIONS)},
    )
    Wav2Vec2ForSequenceClassification(config).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def prosody_only() -> SpeechEmotion:
    a = SpeechEmotion({"model": None})
    a.load("cpu")
    return a


def clip(audio: Path, tmp: Path):
    return decode(still_with_audio(audio, tmp / f"{audio.stem}.mp4", size="160x120"), set(), True)


def espeak_at_pitch(pitch: int, out: Path) -> Path:
    text = "The quick brown fox jumps over the lazy dog, and then it runs back home across the field."
    subprocess.run(["espeak-ng", "-p", str(pitch), "-w", str(out), text], check=True, timeout=60)
    return out


def test_tiny_model_plumbing_per_transcribed_segment(tiny_emotion_model, shared_media, tmp_path):
    analyzer = SpeechEmotion({"model": str(tiny_emotion_model), "local_files_only": True})
    analyzer.load("cpu")
    media = clip(shared_media / "audio" / "whisper_jfk.flac", tmp_path)
    transcript = SimpleNamespace(segments=[SimpleNamespace(start=0.3, end=3.0), {"start": 3.5, "end": 10.5}])
    result = analyzer.analyze(media, {"speech_transcription": transcript})
    assert result.emotion_status == "ok" and result.emotion_model == str(tiny_emotion_model)
    assert result.emotion_labels == EMOTIONS
    assert result.segment_source == "speech_transcription"
    # the 7 s segment is split at max_segment_seconds (8) -> stays whole; bounds come from upstream
    assert [(s.start, s.end) for s in result.segments] == [(0.3, 3.0), (3.5, 10.5)]
    for segment in result.segments:
        assert set(segment.scores) == set(EMOTIONS)
        assert abs(sum(segment.scores.values()) - 1.0) < 1e-3
        assert segment.emotion == max(segment.scores, key=segment.scores.get)
    assert result.dominant_emotion in EMOTIONS
    assert abs(sum(result.emotion_shares.values()) - 1.0) < 1e-2


def test_missing_model_leaves_emotion_unavailable_but_delivers_prosody(shared_media, tmp_path):
    analyzer = SpeechEmotion({"model": "nobody/no-such-emotion-model", "local_files_only": True})
    analyzer.load("cpu")
    result = analyzer.analyze(clip(shared_media / "audio" / "pocketsphinx_librivox_sas01-0870.wav", tmp_path), {})
    assert result.emotion_status == "unavailable"
    assert "no-such-emotion-model" in result.emotion_unavailable_reason
    assert result.emotion_model is None and result.dominant_emotion is None
    assert result.segment_source == "energy_vad" and result.segments
    assert all(s.emotion is None and s.scores == {} for s in result.segments)
    assert 70 <= result.prosody.pitch_median_hz <= 300  # an adult reader
    assert 1.5 <= result.prosody.syllable_rate_proxy <= 8.0


def test_energy_vad_finds_the_speech_between_silences(prosody_only, shared_media, tmp_path):
    from tests.synth import ffmpeg

    padded = tmp_path / "padded.wav"
    speech = shared_media / "audio" / "pocketsphinx_librivox_sas01-0880.wav"  # 2.99 s
    ffmpeg("-i", str(speech), "-af", "adelay=2000,apad=pad_dur=2", "-ar", "16000", "-ac", "1", str(padded))
    result = prosody_only.analyze(clip(padded, tmp_path), {})
    assert result.segments
    assert 1.8 <= result.segments[0].start <= 2.6
    assert 4.2 <= result.segments[-1].end <= 5.2


def test_pitch_of_a_220_hz_tone(prosody_only, tmp_path):
    result = prosody_only.analyze(clip(tone_wav(tmp_path / "tone.wav", 3.0, 220.0, -12.0), tmp_path), {})
    assert abs(result.prosody.pitch_median_hz - 220.0) <= 5.0, result.prosody
    assert result.prosody.voiced_fraction >= 0.8
    assert result.prosody.pitch_range_semitones <= 0.5


def test_espeak_pitch_settings_are_ordered(prosody_only, tmp_path):
    low = prosody_only.analyze(clip(espeak_at_pitch(20, tmp_path / "low.wav"), tmp_path), {}).prosody
    high = prosody_only.analyze(clip(espeak_at_pitch(80, tmp_path / "high.wav"), tmp_path), {}).prosody
    assert low.pitch_median_hz * 1.3 < high.pitch_median_hz, (low, high)
