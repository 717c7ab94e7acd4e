"""Decoding hostile and odd files without Ray: exact pixels for tiny frames, upright phone clips, a header
that understates the duration, and error messages that carry no server path. Truth is ffmpeg's own
decode of the same file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from analyzers.base import FrameSpec
from analyzers.media import MediaError, _first_line, decode, probe
from bench.reliability import ffmpeg, patch_mkv_duration, rotated_clip, x264, y4m_header_only

EVERY_FRAME = FrameSpec(max_side=4096)


def ffmpeg_rgb(path: Path, width: int, height: int) -> np.ndarray:
    """The first frame as ffmpeg decodes (and autorotates) it, RGB."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(height, width, 3)


@pytest.mark.parametrize("width, height", [(1, 1), (2, 2), (8, 6), (24, 24), (31, 9)])
def test_frames_narrower_than_32_px_are_exact(tmp_path, width, height):
    clip = tmp_path / f"{width}x{height}.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=64x64:r=10:d=0.3", "-vf", f"scale={width}:{height}", "-c:v", "libx264",
           "-pix_fmt", "yuv444p", str(clip))
    frames = decode(clip, {EVERY_FRAME}, want_audio=False).frames(EVERY_FRAME).frames
    assert frames.shape[1:] == (height, width, 3)
    assert np.array_equal(frames[0], ffmpeg_rgb(clip, width, height))


def test_rotation_matrix_gives_upright_frames(tmp_path):
    clip = rotated_clip(tmp_path / "rotated.mp4")
    meta = probe(clip)
    assert (meta.width, meta.height, meta.rotation) == (64, 128, 270)
    frame = decode(clip, {EVERY_FRAME}, want_audio=False).frames(EVERY_FRAME).frames[0]
    truth = ffmpeg_rgb(clip, 64, 128)
    assert frame.shape == truth.shape and np.abs(frame.astype(int) - truth.astype(int)).mean() < 2
    assert frame[5, 32, 0] > 200 and frame[-5, 32, 2] > 200  # red on top, blue below


def test_a_header_that_understates_the_duration_is_refused_before_decoding(tmp_path):
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=32x32:r=5:d=60", *x264("-crf", "45"), str(tmp_path / "long.mkv"))
    lying = patch_mkv_duration(tmp_path / "long.mkv", tmp_path / "lying.mkv", 2)
    meta = probe(lying)
    assert meta.duration == pytest.approx(2.0)  # what the limit check sees
    with pytest.raises(MediaError, match="runs 60 s but its header declares 2 s"):
        decode(lying, {EVERY_FRAME}, want_audio=False, metadata=meta)
    honest = patch_mkv_duration(tmp_path / "long.mkv", tmp_path / "honest.mkv", 60)
    assert len(decode(honest, {EVERY_FRAME}, want_audio=False).frames(EVERY_FRAME)) == 300


def test_decoder_errors_name_no_server_path(tmp_path):
    folder = tmp_path / "deep" / "folder"
    folder.mkdir(parents=True)
    broken = y4m_header_only(folder / "clip.mp4", 1920, 1080)
    with pytest.raises(MediaError) as caught:
        decode(broken, {EVERY_FRAME}, want_audio=False)
    message = str(caught.value)
    assert message and str(tmp_path) not in message and ".cc:" not in message and "@ 0x" not in message, message


def test_first_line_keeps_the_words_only():
    text = ("[15:26:03] /github/workspace/src/video/video_reader.cc:270: [/srv/data/uploads/tmpab.upload] Failed to "
            "measure duration/frame-count due to broken metadata.[mov,mp4 @ 0x55b01ee47ec0] partial file")
    assert _first_line(RuntimeError(text)) == "Failed to measure duration/frame-count due to broken metadata.partial file"
    assert _first_line(RuntimeError("cannot open /srv/data/x.mp4 now")) == "cannot open <file> now"
    assert _first_line(RuntimeError("")) == "RuntimeError"
