"""NVDEC decoding (analyzers/_nvdec.py) against the CPU decode of the same clips: the same frames, the same times
and shapes, pixels within a few levels. Needs a CUDA device with NVDEC and PyNvVideoCodec: `pytest -m gpu`.

The clips are made with ffmpeg. A GPU host without ffmpeg reads them from $REELSCOPE_GPU_CLIPS, made beforehand by
`python -m tests.gpu.test_nvdec DIR` on a machine that has it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from analyzers.base import FrameSpec
from analyzers.media import decode

pytestmark = pytest.mark.gpu

SPECS = {FrameSpec(max_side=160), FrameSpec(max_side=64), FrameSpec(fps=3, max_side=96), FrameSpec(count=8, max_side=160)}
EVERY_FRAME = FrameSpec(max_side=160)  # full size for these clips: NVDEC's colour conversion alone, no resize


def make_clips(folder: Path) -> dict[str, Path]:
    """Moving noise (every frame differs from its neighbours) with a keyframe every 10 frames and B-frames, as
    recorded (landscape), tagged rotate=90 as phones do, and at twice the size; and a colour test card."""
    from tests.synth import ffmpeg

    folder.mkdir(parents=True, exist_ok=True)
    names = ("noise_gop10", "noise_gop10_rotated", "noise_gop10_320x192", "testcard")
    clips = {name: folder / f"{name}.mp4" for name in names}

    def noise(size: str, out: Path, *quality: str) -> None:
        ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={size}:r=25:d=4", "-vf", "noise=alls=40:allf=t", "-c:v", "libx264",
               *quality, "-pix_fmt", "yuv420p", "-g", "10", "-bf", "2", str(out))

    if not clips["noise_gop10"].exists():
        noise("160x96", clips["noise_gop10"])
        ffmpeg("-i", str(clips["noise_gop10"]), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(clips["noise_gop10_rotated"]))
        ffmpeg("-f", "lavfi", "-i", "smptehdbars=s=160x96:r=25:d=2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
               str(clips["testcard"]))
    if not clips["noise_gop10_320x192"].exists():
        noise("320x192", clips["noise_gop10_320x192"], "-crf", "36")  # small enough to carry to a GPU host
    return clips


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    from analyzers._nvdec import unavailable_reason
    from tests.synth import have

    reason = unavailable_reason()
    if reason:
        pytest.skip(f"NVDEC: {reason}")
    if os.environ.get("REELSCOPE_GPU_CLIPS"):
        return make_clips(Path(os.environ["REELSCOPE_GPU_CLIPS"]))  # made beforehand: nothing to build
    if not have("ffmpeg"):
        pytest.skip("no ffmpeg to make the clips, and REELSCOPE_GPU_CLIPS is not set")
    return make_clips(tmp_path_factory.mktemp("nvdec"))


@pytest.mark.parametrize("name", ["noise_gop10", "noise_gop10_rotated", "testcard"])
@pytest.mark.parametrize("segments", [1, 3])
def test_nvdec_gives_the_cpu_decodes_frames_within_a_few_levels(clips, name, segments):
    from tests.synth import have

    if "rotated" in name and not have("ffprobe"):
        pytest.skip("without ffprobe the probe reads no rotation (media._probe_with_decord), so nothing to compare")
    cpu = decode(clips[name], SPECS, False)
    gpu = decode(clips[name], SPECS, False, segments=segments, decoder="nvdec")
    for spec in SPECS:
        a, b = cpu.frames(spec), gpu.frames(spec)
        assert np.array_equal(a.indices, b.indices) and np.array_equal(a.timestamps, b.timestamps)
        assert a.frames.shape == b.frames.shape, spec  # upright: rotated clips come out 96 wide, 160 high
        difference = np.abs(a.frames.astype(np.int16) - b.frames.astype(np.int16))
        # NVDEC's YUV->RGB conversion only: the resizes are the CPU's (tests/unit/test_media.py)
        assert difference.mean() < 3.0, (spec.key, float(difference.mean()))
        assert np.percentile(difference, 99) <= 16, (spec.key, float(np.percentile(difference, 99)))


def test_nvdec_frame_k_is_the_cpu_decodes_frame_k_not_a_neighbour(clips):
    """Every frame of the noise clip differs from its neighbours, so a one-frame shift (B-frame reordering,
    an off-by-one seek in a part) shows as a difference far larger than the colour conversion's."""
    cpu = decode(clips["noise_gop10"], {EVERY_FRAME}, False).frames(EVERY_FRAME).frames.astype(np.int16)
    gpu = decode(clips["noise_gop10"], {EVERY_FRAME}, False, segments=3, decoder="nvdec").frames(EVERY_FRAME).frames
    assert len(gpu) == 100
    for k in range(len(gpu)):
        own = np.abs(cpu[k] - gpu[k]).mean()
        neighbours = [np.abs(cpu[j] - gpu[k]).mean() for j in (k - 1, k + 1) if 0 <= j < len(cpu)]
        assert own * 3 < min(neighbours), (k, own, neighbours)


@pytest.mark.parametrize("segments", [1, 4])
def test_the_seek_first_pass_alone_gives_the_full_passs_frames(clips, segments):
    """The ingress's seek_first pass decodes video_llava's 8 frames alone (NVDEC seeks to them): frame k must be
    frame k of the CPU's full decode, in 1 part and in 4 at once, as production runs it."""
    eight = FrameSpec(count=8, max_side=160)
    cpu = decode(clips["noise_gop10"], {EVERY_FRAME}, False).frames(EVERY_FRAME)
    alone = decode(clips["noise_gop10"], {eight}, False, segments=segments, decoder="nvdec").frames(eight)
    assert alone.indices.tolist() == [6, 18, 31, 43, 56, 68, 81, 93]  # slice centres of 100 frames: none at a keyframe
    for row, k in enumerate(alone.indices.tolist()):
        own = np.abs(cpu.frames[k].astype(np.int16) - alone.frames[row]).mean()
        neighbours = [np.abs(cpu.frames[j].astype(np.int16) - alone.frames[row]).mean() for j in (k - 1, k + 1)]
        assert own < 3.0 and own * 3 < min(neighbours), (k, own, neighbours)


def test_kept_decoders_give_each_next_file_its_own_frames_whatever_its_size(clips):
    """The decoders are kept between decodes and pointed at the next file (analyzers._nvdec._DecoderPool): a clip of
    another size, a clip of other content, then the first clip again must each give their own frames k, and after
    the first decode no decoder is built again."""
    from analyzers import _nvdec

    built_before = _nvdec._POOL.built
    for name in ("noise_gop10", "noise_gop10_320x192", "testcard", "noise_gop10"):
        cpu = decode(clips[name], {EVERY_FRAME}, False).frames(EVERY_FRAME).frames.astype(np.int16)
        gpu = decode(clips[name], {EVERY_FRAME}, False, segments=2, decoder="nvdec").frames(EVERY_FRAME).frames
        assert gpu.shape == cpu.shape, name
        for k in range(len(gpu)):
            own = np.abs(cpu[k] - gpu[k]).mean()
            assert own < 3.0, (name, k, own)
            if name != "testcard":  # the card does not move, so its neighbours are alike
                neighbours = [np.abs(cpu[j] - gpu[k]).mean() for j in (k - 1, k + 1) if 0 <= j < len(cpu)]
                assert own * 3 < min(neighbours), (name, k, own, neighbours)
    assert _nvdec._POOL.built - built_before <= 2  # at most the first decode's two parts found none idle


if __name__ == "__main__":  # make the clips for a GPU host without ffmpeg
    print(make_clips(Path(sys.argv[1])))
