"""Speaking rate from the word timings of speech_transcription: words per minute, syllables, pauses."""

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
    min_pause_seconds: float = Field(0.25, gt=0, description="A gap between words at least this long is a pause.")


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
    needs = Needs(upstream=("speech_transcription",))
    Result = SpeechRateResult
    Settings = SpeechRateSettings

    def analyze(self, media: MediaBundle, upstream: Mapping[str, BaseModel]) -> SpeechRateResult:
        transcript = upstream["speech_transcription"]
        words = [w for segment in transcript.segments for w in segment.words if re.search(r"\w", w.word)]
        return rate_from_words([(w.start, w.end, w.word) for w in words], self.settings.min_pause_seconds)


def rate_from_words(words: list[tuple[float, float, str]], min_pause: float) -> SpeechRateResult:
    """Rates from (start, end, text) word timings; public so it can be checked against aligned truth directly."""
    if not words:
        return SpeechRateResult(
            word_count=0, syllable_count=0, speaking_seconds=0.0, words_per_minute=None, syllables_per_second=None,
            articulation_rate=None, pause_count=0, mean_pause_seconds=None, longest_pause_seconds=None, pauses=[],
        )
    words = sorted(words)
    syllables = sum(count_syllables(text) for _, _, text in words)
    speaking = max(words[-1][1] - words[0][0], 1e-6)
    pauses = [
        Pause(start=round(prev_end, 3), end=round(start, 3), seconds=round(start - prev_end, 3))
        for (_, prev_end, _), (start, _, _) in zip(words[:-1], words[1:])
        if start - prev_end >= min_pause
    ]
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
