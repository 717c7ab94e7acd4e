"""Synthetic clips whose truth is exact by construction, made with ffmpeg (and espeak-ng for speech).

Every function writes into a directory the caller owns (a pytest tmp_path) and returns the file path.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_MEDIA = (REPO / ".." / "shared" / "media").resolve()


def ffmpeg(*args: str) -> None:
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args]
    subprocess.run(cmd, check=True, timeout=300)


def have(tool: str) -> bool:
    return shutil.which(tool) is not None


def solid_clip(path: Path, colors: list[str], seconds_each: float = 1.0, size: str = "320x240", fps: int = 25,
               audio: str | None = None) -> Path:
    """Back-to-back shots of solid colours: hard cuts at exact multiples of `seconds_each * fps` frames."""
    inputs, filters = [], []
    for i, color in enumerate(colors):
        inputs += ["-f", "lavfi", "-i", f"color=c={color}:s={size}:r={fps}:d={seconds_each}"]
        filters.append(f"[{i}:v]")
    graph = "".join(filters) + f"concat=n={len(colors)}:v=1:a=0[v]"
    args = [*inputs]
    maps = ["-map", "[v]"]
    if audio:
        args += ["-f", "lavfi", "-i", audio]
        maps += ["-map", f"{len(colors)}:a", "-shortest"]
    ffmpeg(*args, "-filter_complex", graph, *maps, "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "250",
           "-c:a", "aac", str(path))
    return path


def tone_wav(path: Path, seconds: float, frequency: float = 440.0, volume_db: float = -20.0, rate: int = 16000) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"sine=frequency={frequency}:sample_rate={rate}:duration={seconds}",
           "-af", f"volume={volume_db}dB", str(path))
    return path


def mux(video: Path, audio: Path, out: Path) -> Path:
    """Put `audio` under `video`, cut to the shorter of the two."""
    ffmpeg("-i", str(video), "-i", str(audio), "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac",
           "-shortest", str(out))
    return out


def still_with_audio(audio: Path, out: Path, size: str = "320x240", color: str = "gray") -> Path:
    """A still-picture video as long as `audio` (for feeding real speech through the video path)."""
    ffmpeg("-f", "lavfi", "-i", f"color=c={color}:s={size}:r=25", "-i", str(audio), "-map", "0:v", "-map", "1:a",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(out))
    return out


def espeak(text: str, out: Path, words_per_minute: int = 160) -> Path:
    subprocess.run(["espeak-ng", "-s", str(words_per_minute), "-w", str(out), text], check=True, timeout=60)
    return out
