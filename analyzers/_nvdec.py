"""The frame walk on the GPU's video decoders (NVDEC, through PyNvVideoCodec): same plan, other hardware.

Why: on a GPU host the CPU decode is what bounds throughput. A 30 s 1080x1920 clip costs ~18 CPU-seconds to
decode and scale with FFmpeg and OpenCV, so eight requests at once need >= 9 s of a 16-core host before any
analyzer starts. NVDEC decodes on its own engines and converts to RGB there; the scaling runs as CUDA kernels and
only the small kept copies travel to host memory (seen on an H200, 2026-12-04: the clip's 900 frames in 1.44 s on
one decoder, 0.6 s on four decoders at once, with next to no CPU).

media.py keeps the plan (which source frames, which rows of which spec, thinning for long videos; decord's
index gives the timestamps and keyframes) and this module only fills the same arrays, so a report's frame sets
have the same frames, times and shapes whichever decoder ran. The pixels are not bit-identical to the CPU path:
NVDEC's YUV->RGB conversion differs from FFmpeg's by a few levels; the resizes are OpenCV's area resampling done
as box means and matrix products, in the same order as on the CPU (tests/gpu/test_nvdec.py bounds the difference).

Decoders are kept across decodes (`_DecoderPool`): building one (parser, decoder session, surface pool) is the
costly part of a short decode, and a kept one is pointed at the next file with `reconfigure_decoder`. Each kept
decoder has a CUDA stream of its own, which its colour conversion and our resizes and copies share: parts decoded
at once then neither wait for each other's work nor for the process's legacy default stream.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

# Frames per decoder call: a batch of full-size frames is converted to float once for resizing
# (16 x 1080x1920x3 x 4 bytes = 0.4 GB of GPU memory per part decoded at once, plus the smaller copies).
BATCH = 16


def unavailable_reason() -> str | None:
    """Why NVDEC cannot decode here (no CUDA device, no PyNvVideoCodec, no driver video library), or None.

    Call it when the process starts, before anything decodes on the CPU: PyNvVideoCodec must be loaded before
    decord. decord loads its FFmpeg 4 into the process's global symbol scope, and a PyNvVideoCodec imported after
    it (after decord, transformers or ultralytics were imported) crashed in its first SimpleDecoder with a
    segmentation fault, every time, on the H200 (2026-12-04); imported first, it decodes beside decord."""
    try:
        import torch  # before PyNvVideoCodec is fine (seen); it loads no FFmpeg
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA device is visible to this process (give the ingress a GPU share: ray_actor_options.num_gpus)"
    if "PyNvVideoCodec" not in sys.modules:
        if importlib.util.find_spec("PyNvVideoCodec") is None:
            return "PyNvVideoCodec is not installed (pip install pynvvideocodec)"
        if "decord" in sys.modules:
            return ("decord was loaded before PyNvVideoCodec in this process (its FFmpeg then crashes NVDEC): "
                    "call analyzers._nvdec.unavailable_reason() at process start")
    try:
        import PyNvVideoCodec  # noqa: F401  (its import checks the driver's libnvcuvid / libnvidia-encode)
    except Exception as exc:  # ImportError, or its RuntimeError when the driver's video libraries are missing
        return f"PyNvVideoCodec cannot be used: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return None


def decode_into(path: str, parts: list[tuple[int, list[int]]], rows_by_index: dict, kept: dict,
                display_shape: tuple[int, int], rotation: int, error: type[Exception]) -> None:
    """Decode the source frames of `parts` (each (keyframe, sorted indices), one decoder each, at once) and write
    every one, upright and scaled, into the rows `rows_by_index` names in `kept` (spec -> (N, H, W, 3) uint8).
    `display_shape` is (height, width) as shown, after `rotation` (counter-clockwise degrees)."""
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(f"NVDEC decoding is not available: {reason}")
    import torch

    device = torch.device("cuda", torch.cuda.current_device())

    def walk(indices: list[int]) -> None:
        with _POOL.lease(path, device.index, error) as (decoder, stream), torch.cuda.device(device), \
                torch.cuda.stream(stream), torch.inference_mode():
            for start in range(0, len(indices), BATCH):
                batch = indices[start:start + BATCH]
                try:
                    frames = decoder.get_batch_frames_by_index(batch)
                except Exception as exc:
                    raise error(f"the video stream is damaged near frame {batch[0]}: {str(exc).splitlines()[0][:200]}") from exc
                if len(frames) != len(batch):
                    raise error(f"NVDEC returned {len(frames)} of {len(batch)} frames from frame {batch[0]} on")
                # The frames point into the decoder's surfaces: copy them (stack) and drop them before the next
                # call reuses those surfaces, and before the decoder is freed (a frame that outlives its decoder
                # reads freed memory: seen as CUDA_ERROR_CONTEXT_IS_DESTROYED and a segfault on the H200).
                rgb = torch.stack([torch.from_dlpack(frame) for frame in frames])
                del frames
                _store(batch, _upright(rgb, display_shape, rotation, error), rows_by_index, kept)

    runs = [indices for _, indices in parts]
    if len(runs) == 1:
        walk(runs[0])
        return
    with ThreadPoolExecutor(max_workers=len(runs), thread_name_prefix="nvdec-part") as pool:
        for job in [pool.submit(walk, run) for run in runs]:
            job.result()


class _DecoderPool:
    """Idle SimpleDecoders of this process, each with its CUDA stream, lent to one part of one decode at a time.

    A decoder is built once (0.3 s is the cost others measured for cuvidCreateDecoder plus its surfaces; we built
    `segments` of them per request) and then pointed at each next file by `reconfigure_decoder`, which keeps the
    session when the stream fits it and builds what it must when not. The pool never holds more decoders than
    were in use at once, which the ingress bounds (max_concurrent_decodes x decode_segments). A decoder whose
    file failed is dropped, not returned: its state after a damaged stream is unknown. A kept decoder's demuxer
    may keep its last file open until its next decode (not checked), so a deleted upload's disk space can stay
    taken until then: at most one file per kept decoder."""

    def __init__(self, build=None) -> None:
        self._build = build or _new_decoder  # (path, device index) -> (decoder, stream); tests pass their own
        self._idle: list[tuple[object, object, int]] = []  # (decoder, torch stream, device index)
        self._lock = threading.Lock()
        self.built = 0  # decoders built so far (tests and benchmarks read it)

    @contextmanager
    def lease(self, path: str, device_index: int, error: type[Exception]):
        with self._lock:
            kept = next((entry for entry in self._idle if entry[2] == device_index), None)
            if kept:
                self._idle.remove(kept)
        try:
            if kept:
                decoder, stream, _ = kept
                decoder.reconfigure_decoder(path)
            else:
                decoder, stream = self._build(path, device_index)
                with self._lock:
                    self.built += 1
        except Exception as exc:
            raise error(f"NVDEC could not open the video stream: {str(exc).splitlines()[0][:200]}") from exc
        yield decoder, stream  # an exception from the part propagates from here, and the decoder is dropped
        stream.synchronize()  # nothing of this part may still run on the stream when the next lease starts
        with self._lock:
            self._idle.append((decoder, stream, device_index))

    def idle(self) -> int:
        with self._lock:
            return len(self._idle)


def _new_decoder(path: str, device_index: int):
    import PyNvVideoCodec as nvc
    import torch

    stream = torch.cuda.Stream(device=device_index)
    # one session per decoder: its internal cache of sessions for other stream shapes would hold surfaces for
    # every shape it ever met, times the pool's size
    decoder = nvc.SimpleDecoder(path, gpu_id=device_index, cuda_stream=stream.cuda_stream, use_device_memory=True,
                                output_color_type=nvc.OutputColorType.RGB, decoder_cache_size=1)
    return decoder, stream


_POOL = _DecoderPool()


def _upright(rgb, display_shape: tuple[int, int], rotation: int, error: type[Exception]):
    """PyNvVideoCodec's demuxer applies a 90/270 display rotation itself (seen on the H200: a rotate=90 clip came
    out portrait); a frame of the display shape is taken as upright, as media.py does for decord's frames."""
    import torch

    if tuple(rgb.shape[1:3]) != display_shape:
        k = (rotation // 90) % 4
        rgb = torch.rot90(rgb, k, dims=(1, 2)) if k else rgb  # counter-clockwise, like np.rot90 in media._upright
    if tuple(rgb.shape[1:3]) != display_shape:
        raise error(f"NVDEC frames are {tuple(rgb.shape[1:3])} but the video displays at {display_shape}")
    return rgb


def _store(batch: list[int], rgb, rows_by_index: dict, kept: dict) -> None:
    """Scale one upright batch (B, H, W, 3 on the GPU) to every size its frames are wanted at, the way media.py's
    `_scaled_copies` does on the CPU (each frame's sizes largest first, each from the previous, a whole-factor box
    reduction first, OpenCV's area resampling, uint8 rounding at each step), and copy the results to host rows."""
    import torch

    targets: dict[int, list[tuple[object, int]]] = {p: rows_by_index[index] for p, index in enumerate(batch)}
    # Frames wanted at the same sizes go through the same chain of resizes together.
    chains: dict[tuple[tuple[int, int], ...], list[int]] = {}
    for position, rows in targets.items():
        shapes = sorted({kept[spec].shape[1:3] for spec, _ in rows}, key=max, reverse=True)
        chains.setdefault(tuple(shapes), []).append(position)
    full = tuple(rgb.shape[1:3])
    frames = rgb.permute(0, 3, 1, 2).float()  # (B, 3, H, W), values 0..255
    for shapes, positions in chains.items():
        source = frames[positions]
        for shape in shapes:
            if shape != full:
                source = _integer_reduced(source, max(shape))
                if tuple(source.shape[2:]) != shape:  # the box reduction often lands on the size itself
                    source = _area_resize(source, shape)
            host = source.to(torch.uint8).permute(0, 2, 3, 1).contiguous().cpu().numpy()
            for k, position in enumerate(positions):
                for spec, row in targets[position]:
                    if kept[spec].shape[1:3] == shape:
                        kept[spec][row] = host[k]


def _integer_reduced(frames, max_side: int):
    """media._integer_reduced on the GPU: a box reduction by the largest whole factor keeping the longer side.
    A box mean, not a matrix product: at full size the product spent ~2 * H * W * h FLOPs per channel on weights
    that are zero outside each box (~5 TFLOP per 30 s 1080x1920 clip), the mean reads each pixel once."""
    import torch

    from analyzers.media import whole_reduction_factor

    h, w = frames.shape[2:]
    factor = whole_reduction_factor(h, w, max_side)
    if factor == 1:
        return frames
    return torch.nn.functional.avg_pool2d(frames, factor).add_(0.5).floor_()  # uint8 rounding, as OpenCV's


def _area_resize(frames, shape: tuple[int, int]):
    """OpenCV's INTER_AREA downscale as two matrix products (it is separable and linear), rounded to whole levels
    half up, as OpenCV's whole-factor path does ((a + b + c + d + 2) >> 2 for 2x2)."""
    rows = _area_weights(frames.shape[2], shape[0], frames.device)
    cols = _area_weights(frames.shape[3], shape[1], frames.device)
    return (rows @ frames @ cols.T).add_(0.5).floor_().clamp_(0, 255)


@functools.lru_cache(maxsize=64)
def _area_weights(size_in: int, size_out: int, device):
    """(size_out, size_in): output pixel i averages the input over [i * s, (i + 1) * s), s = size_in / size_out,
    each input pixel weighted by how much of it that window covers (cv2's area table for downscaling). Cached:
    built per batch, the tables cost more CPU than the decode (34 CPU-s for one 30 s clip on the H200)."""
    import torch

    scale = size_in / size_out
    starts = torch.arange(size_out, dtype=torch.float64) * scale
    left = torch.arange(size_in, dtype=torch.float64)
    overlap = (torch.minimum(starts[:, None] + scale, left[None, :] + 1) - torch.maximum(starts[:, None], left[None, :]))
    return (overlap.clamp_(min=0) / scale).to(device=device, dtype=torch.float32)

