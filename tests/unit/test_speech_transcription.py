"""speech_transcription: real speech through the video path, scored against exact reference transcripts."""

from __future__ import annotations

import pytest

from analyzers.base import AnalyzerUnavailable
from analyzers.media import decode
from analyzers.speech_rate import SpeechRate
from analyzers.speech_transcription import SpeechTranscription, resolve_model
from tests.synth import still_with_audio
from tests.truth import transcripts, word_error_rate


@pytest.fixture(scope="module")
def tiny_en():
    analyzer = SpeechTranscription({"model": "offline:tiny.en", "cpu_threads": 2})
    analyzer.load("cpu")
    return analyzer


@pytest.fixture(scope="module")
def jfk_bundle(shared_media, tmp_path_factory):
    clip = still_with_audio(shared_media / "audio/whisper_jfk.flac", tmp_path_factory.mktemp("jfk") / "jfk.mp4")
    return decode(clip, set(), want_audio=True)


def test_jfk_muxed_into_a_video_is_transcribed_with_word_times(tiny_en, jfk_bundle):
    result = tiny_en.analyze(jfk_bundle, {})
    wer = word_error_rate(transcripts()["whisper_jfk.flac"], result.text)
    assert wer <= 0.05, (wer, result.text)
    assert result.language == "en"
    words = [w for s in result.segments for w in s.words]
    assert len(words) == result.word_count >= 20
    assert all(a.start <= a.end <= b.start + 0.01 for a, b in zip(words, words[1:]))  # in order, not overlapping
    assert 0.0 <= words[0].start < 1.0 and 9.0 < words[-1].end <= 11.1  # JFK speaks from ~0.3 s to ~10.5 s


def test_speech_rate_from_the_transcript(tiny_en, jfk_bundle):
    transcript = tiny_en.analyze(jfk_bundle, {})
    rate = SpeechRate().analyze(jfk_bundle, {"speech_transcription": transcript})
    assert rate.word_count == transcript.word_count
    # 22 words in ~10 s of measured, pause-rich oratory: between 100 and 160 words per minute.
    assert 100 <= rate.words_per_minute <= 160
    assert rate.pause_count >= 2 and rate.articulation_rate > rate.syllables_per_second


def test_base_model_is_joined_from_its_two_packages_once():
    path = resolve_model("offline:base")
    assert (path.rstrip("/") + "/model.bin") and resolve_model("offline:base") == path


def test_a_public_name_without_network_is_unavailable_not_a_guess():
    analyzer = SpeechTranscription({"model": "large-v3", "allow_download": False})
    with pytest.raises(AnalyzerUnavailable, match="large-v3"):
        analyzer.load("cpu")
