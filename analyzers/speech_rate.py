"""Speaking rate: words and syllables from speech_transcription, pauses from the audio itself.

Whisper's word timestamps stretch words over the silences between them, so gaps between words miss most
pauses; the pauses are therefore measured in the signal (quiet stretches inside the speaking span).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
from pydantic import BaseModel, Field

from analyzers.base import Analyzer, Needs
from analyzers.media import MediaBundle

VOWEL_GROUPS = re.compile(r"[aeiouy]+")


class Pause(BaseModel):
    start: float
    end: float
    seconds: float


class SpeechRateResult(BaseModel):
    word_count: int
    syllable_count: int
    speaking_seconds: float = Field(..., description="From the first word's start to the last word's end.")
    words_per_minute: float | None
    syllables_per_second: float | None
    articulation_rate: float | None = Field(..., description="Syllables per second with pauses taken out.")
    pause_count: int
    mean_pause_seconds: float | None
    longest_pause_seconds: float | None
    pauses: list[Pause]


class SpeechRateSettings(BaseModel):
    min_pause_seconds: float = Field(0.25, gt=0, description="A quiet stretch at least this long is a pause.")
    quiet_below_peak_db: float = Field(30.0, gt=0, description="Quieter than the loudest speech by this much is silence.")


def count_syllables(word: str) -> int:
    """English syllables by vowel groups, with the silent final 'e' rule; at least one per word with letters.

    An estimate (dictionary-free): exact for most short words, off by one on some long ones."""
    w = re.sub(r"[^a-z]", "", word.lower())
    if not w:
        return 0
    count = len(VOWEL_GROUPS.findall(w))
    if w.endswith("e") and not w.endswith(("le", "ee", "ye")) and count > 1:
        count -= 1
    return max(count, 1)


class SpeechRate(Analyzer):
    name = "speech_rate"
    needs = Needs(audio=True, upstream=("speech_transcription",))
    Result = SpeechRateResult
    Settings = SpeechRateSettings

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> SpeechRateResult:
        transcript = upstream["speech_transcription"]
        words = [(w.start, w.end, w.word) for s in transcript.segments for w in s.words if re.search(r"\w", w.word)]
        quiet = None
        if media.audio is not None and words:
            quiet = quiet_stretches(media.audio.samples, media.audio.sample_rate, self.settings.quiet_below_peak_db)
        return rate_from_words(words, self.settings.min_pause_seconds, quiet)


def quiet_stretches(samples: np.ndarray, rate: int, below_peak_db: float, hop_seconds: float = 0.02) -> list[tuple[float, float]]:
    """(start, end) of stretches quieter than the loudest 20 ms frames by `below_peak_db`."""
    hop = int(rate * hop_seconds)
    frames = samples[: len(samples) // hop * hop].reshape(-1, hop).astype(np.float64)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    quiet = np.concatenate([[False], level < np.percentile(level, 95) - below_peak_db, [False]])
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    stretches: list[tuple[float, float]] = []
    for a, b in zip(edges[::2], edges[1::2]):
        if stretches and a * hop_seconds - stretches[-1][1] <= 3 * hop_seconds:  # a click does not end a pause
            stretches[-1] = (stretches[-1][0], b * hop_seconds)
        else:
            stretches.append((a * hop_seconds, b * hop_seconds))
    return stretches


def rate_from_words(words: list[tuple[float, float, str]], min_pause: float,
                    quiet: list[tuple[float, float]] | None = None) -> SpeechRateResult:
    """Rates from (start, end, text) word timings. Pauses are the `quiet` stretches inside the speaking span
    when the audio was measured, else the gaps between words (exact for aligned truth)."""
    if not words:
        return SpeechRateResult(
            word_count=0, syllable_count=0, speaking_seconds=0.0, words_per_minute=None, syllables_per_second=None,
            articulation_rate=None, pause_count=0, mean_pause_seconds=None, longest_pause_seconds=None, pauses=[],
        )
    words = sorted(words)
    syllables = sum(count_syllables(text) for _, _, text in words)
    first, last = words[0][0], max(end for _, end, _ in words)
    speaking = max(last - first, 1e-6)
    if quiet is None:
        gaps = [(prev_end, start) for (_, prev_end, _), (start, _, _) in zip(words[:-1], words[1:])]
    else:
        gaps = [(max(a, first), min(b, last)) for a, b in quiet if b > first and a < last]
    pauses = [Pause(start=round(a, 3), end=round(b, 3), seconds=round(b - a, 3)) for a, b in gaps if b - a >= min_pause]
    paused = sum(p.seconds for p in pauses)
    lengths = np.array([p.seconds for p in pauses])
    return SpeechRateResult(
        word_count=len(words),
        syllable_count=syllables,
        speaking_seconds=round(speaking, 3),
        words_per_minute=round(len(words) / speaking * 60, 1),
        syllables_per_second=round(syllables / speaking, 2),
        articulation_rate=round(syllables / max(speaking - paused, 1e-6), 2),
        pause_count=len(pauses),
        mean_pause_seconds=round(float(lengths.mean()), 3) if len(pauses) else None,
        longest_pause_seconds=round(float(lengths.max()), 3) if len(pauses) else None,
        pauses=pauses,
    )
