"""sound_effects: beeps at known times are found at those times; plain speech gives (almost) no effects."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzers.media import decode
from analyzers.sound_effects import SoundEffects
from tests.synth import ffmpeg, still_with_audio

BEEP_STARTS = (1.0, 3.2, 5.7)
BEEP_SECONDS = 0.3
BEEP_WORDS = ("beep", "tone", "sine", "busy signal", "alarm", "telephone", "buzzer", "ping", "ding")


@pytest.fixture(scope="module")
def analyzer() -> SoundEffects:
    a = SoundEffects()
    a.load("cpu")
    return a


def clip_with_audio(audio: Path, tmp: Path):
    # mp4, not mkv: decord honours the AAC priming edit list there, so sample 0 is time 0
    return decode(still_with_audio(audio, tmp / f"{audio.stem}.mp4", size="160x120"), set(), True)


def test_beeps_between_silence_are_found_at_their_times(analyzer, tmp_path):
    gate = "+".join(f"between(t,{s},{s + BEEP_SECONDS})" for s in BEEP_STARTS)
    wav = tmp_path / "beeps.wav"
    ffmpeg("-f", "lavfi", "-i", f"aevalsrc='0.3*sin(2*PI*1000*t)*({gate})':s=16000:d=7.5", str(wav))
    result = analyzer.analyze(clip_with_audio(wav, tmp_path), {})
    assert result.event_count == len(BEEP_STARTS), result.model_dump()
    for event, start in zip(result.events, BEEP_STARTS):
        names = " ".join([event.label, *event.related_labels]).lower()
        assert any(word in names for word in BEEP_WORDS), event
        assert abs(event.start - start) <= 0.25, (event, start)
        assert abs(event.end - (start + BEEP_SECONDS)) <= 0.35, (event, start)
        assert event.confidence >= 0.3


def test_unsharpened_events_still_cover_the_beeps(tmp_path):
    coarse = SoundEffects({"sharpen": False})
    coarse.load("cpu")
    wav = tmp_path / "beep.wav"
    ffmpeg("-f", "lavfi", "-i", "aevalsrc='0.3*sin(2*PI*1000*t)*between(t,2,2.3)':s=16000:d=5", str(wav))
    events = coarse.analyze(clip_with_audio(wav, tmp_path), {}).events
    assert len(events) == 1 and events[0].start <= 2.0 and events[0].end >= 2.3


@pytest.mark.parametrize("name", ["whisper_jfk.flac", "dlib_librispeech_116-288045-0000.flac", "vosk_test.wav"])
def test_plain_speech_has_few_effect_events(analyzer, shared_media, tmp_path, name):
    result = analyzer.analyze(clip_with_audio(shared_media / "audio" / name, tmp_path), {})
    assert result.event_count <= 1, result.model_dump()


def test_both_yamnet_analyzers_share_one_model_and_score_a_track_once():
    import numpy as np

    from analyzers._yamnet import shared_model
    from analyzers.audio_environment import AudioEnvironment
    from analyzers.sound_effects import SoundEffects

    environment, effects = AudioEnvironment(), SoundEffects({"sharpen": False})
    environment.load("cpu")
    effects.load("cpu")
    assert environment.model is effects.model is shared_model(None, None, environment.settings.threads)
    samples = np.random.default_rng(0).normal(0, 0.1, 16000 * 3).astype(np.float32)
    first = environment.model.scores(samples)
    assert effects.model.scores(samples) is first  # the same track: scored once
    again = effects.model.scores(samples.copy())  # an equal copy is another track: scored anew, same numbers
    assert again is not first and np.allclose(again.probs, first.probs)
