"""speech_rate against the word timings of aligned real speech (truth/*.words.json)."""

from __future__ import annotations

import pytest

from analyzers.speech_rate import count_syllables, rate_from_words
from tests.truth import truth_words


@pytest.mark.parametrize("word, syllables", [
    ("cat", 1), ("make", 1), ("table", 2), ("dashwood", 2), ("consider", 3), ("prudently", 3), ("leisure", 2), ("he", 1),
])
def test_syllables(word, syllables):
    assert count_syllables(word) == syllables


def test_rate_on_aligned_librivox_words_matches_hand_computed_truth():
    words = truth_words("pocketsphinx_librivox_sas01-0880")  # "he was not an ill disposed young man"
    result = rate_from_words(words, min_pause=0.25)
    span = words[-1][1] - words[0][0]
    assert result.word_count == 8
    assert result.speaking_seconds == pytest.approx(span, abs=1e-3)
    assert result.words_per_minute == pytest.approx(8 / span * 60, rel=1e-3)


def test_pauses_are_the_gaps_between_words():
    words = [(0.0, 0.4, "one"), (0.5, 0.9, "two"), (1.6, 2.0, "three"), (2.05, 2.4, "four")]
    result = rate_from_words(words, min_pause=0.25)
    assert [(p.start, p.end) for p in result.pauses] == [(0.9, 1.6)]
    assert result.articulation_rate == pytest.approx(result.syllable_count / (2.4 - 0.7), rel=1e-2)


def test_pauses_in_real_speech_come_from_the_signal(shared_media, tmp_path):
    """Two real utterances with exactly 0.8 s of silence put between them: one pause of 0.8 s (+ the recordings' own edges)."""
    import numpy as np

    from analyzers.media import decode
    from analyzers.speech_rate import quiet_stretches
    from tests.synth import ffmpeg, still_with_audio

    a, b = shared_media / "audio/pocketsphinx_librivox_sas01-0880.wav", shared_media / "audio/lhotse_LJ002-0020.wav"
    joined = tmp_path / "joined.wav"
    ffmpeg("-i", str(a), "-i", str(b), "-filter_complex",
           "[0:a]aresample=16000,apad=pad_dur=0.8[x];[1:a]aresample=16000[y];[x][y]concat=n=2:v=0:a=1", str(joined))
    audio = decode(still_with_audio(joined, tmp_path / "j.mp4"), set(), want_audio=True).audio
    quiet = quiet_stretches(audio.samples, audio.sample_rate, 30.0)
    long = [(s, e) for s, e in quiet if 2.99 - 0.3 < s < 2.99 + 0.1]
    assert long, quiet
    start, end = long[0]
    # The 0.8 s inserted plus the trailing/leading silence inside the two recordings (truth: 0.1 s + LJ's lead-in).
    assert 0.8 <= end - start <= 1.4
    words = [(0.2, 2.8, "he was not an ill disposed young man"), (3.9, 5.2, "in eighteen thirteen")]
    result = rate_from_words(words, 0.25, quiet)
    assert result.pause_count == 1 and result.pauses[0].seconds >= 0.8


def test_espeak_at_two_known_rates_through_the_real_transcriber(tmp_path):
    """espeak-ng at 100 and 200 words per minute: the measured rates keep their order and roughly their ratio."""
    from analyzers.media import decode
    from analyzers.speech_rate import SpeechRate
    from analyzers.speech_transcription import SpeechTranscription
    from tests.synth import espeak, still_with_audio

    text = "the quick brown fox jumps over the lazy dog and then it runs back home to sleep in the warm sun"
    transcriber = SpeechTranscription({"model": "offline:tiny.en", "cpu_threads": 2})
    transcriber.load("cpu")
    rates = {}
    for wpm in (100, 200):
        media = decode(still_with_audio(espeak(text, tmp_path / f"s{wpm}.wav", wpm), tmp_path / f"s{wpm}.mp4"), set(), True)
        rates[wpm] = SpeechRate().analyze(media, {"speech_transcription": transcriber.analyze(media, {})})
    assert rates[100].word_count >= 18 and rates[200].word_count >= 18
    ratio = rates[200].words_per_minute / rates[100].words_per_minute
    assert 1.5 < ratio < 2.5, (rates[100].words_per_minute, rates[200].words_per_minute)
    assert 60 < rates[100].words_per_minute < 160
