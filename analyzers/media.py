"""Decode a video once into a `MediaBundle`: metadata, frame sets at the requested specs, 16 kHz mono audio.

Why one sequential pass: decord's `get_batch` with sparse indices decodes again from the previous keyframe
for every sample, so many seeks cost more than walking the stream once and keeping only the frames that
some spec asks for. Where cores are free, the walk is split at keyframes into parts walked at once (one seek
each), with the same frames. Each kept frame is scaled down right away, so memory grows with the sampling
(frames kept x their small size), never with a full-resolution copy of the video.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, Field

from analyzers.base import FrameSpec

AUDIO_SAMPLE_RATE = 16_000


class MediaError(ValueError):
    """The file is not a decodable video (the ingress turns this into a 415)."""


class VideoMetadata(BaseModel):
    duration: float = Field(..., description="Seconds.")
    fps: float
    frame_count: int
    width: int = Field(..., description="Display width, after rotation.")
    height: int = Field(..., description="Display height, after rotation.")
    rotation: int = Field(0, description="Display rotation applied to the frames, degrees counter-clockwise.")
    codec: str
    has_audio: bool
    audio_codec: str | None = None
    bitrate: int | None = Field(None, description="Container bit rate, bits per second.")
    audio_offset: float = Field(0.0, description="Audio stream start minus video stream start, seconds (encoder priming).")
    size_bytes: int
    container: str


@dataclass
class FrameSet:
    """Frames of one spec: `frames` is (N, H, W, 3) uint8 RGB, upright; `timestamps` in seconds; `indices` in the source.

    `stride` > 1 says the declared rate was thinned to every stride-th sample to stay within the decode's
    memory budget (long videos); use `timestamps`, not the declared fps, for times."""

    spec: FrameSpec
    frames: np.ndarray
    timestamps: np.ndarray
    indices: np.ndarray
    stride: int = 1

    def __len__(self) -> int:
        return len(self.frames)


@dataclass
class AudioTrack:
    samples: np.ndarray  # float32 mono in [-1, 1]
    sample_rate: int = AUDIO_SAMPLE_RATE

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass
class MediaBundle:
    metadata: VideoMetadata
    frame_sets: dict[FrameSpec, FrameSet] = field(default_factory=dict)
    audio: AudioTrack | None = None

    def frames(self, spec: FrameSpec) -> FrameSet:
        try:
            return self.frame_sets[spec]
        except KeyError:
            raise KeyError(f"frames at {spec.key} were not decoded for this request") from None


def probe(path: str | Path) -> VideoMetadata:
    """Read container metadata with ffprobe (decord reports neither rotation nor whether audio exists)."""
    path = Path(path)
    cmd = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=30, check=False)
    except subprocess.TimeoutExpired as exc:
        raise MediaError("probing the file took too long") from exc
    except FileNotFoundError:  # a machine without ffprobe (e.g. a bare GPU box) can still serve, less precisely
        return _probe_with_decord(path)
    if out.returncode != 0:
        raise MediaError("not a readable media file")
    info = json.loads(out.stdout or b"{}")
    streams = info.get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video" and not _is_cover_art(s)), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None:
        raise MediaError("the file has no video stream")
    fmt = info.get("format", {})
    width, height = int(video.get("width") or 0), int(video.get("height") or 0)
    if width <= 0 or height <= 0:
        raise MediaError("the video stream declares no frame size")
    rotation = _rotation(video)
    if rotation % 180:
        width, height = height, width
    fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate")) or 0.0
    duration = _float(video.get("duration")) or _float(fmt.get("duration")) or 0.0
    frames = int(video.get("nb_frames") or 0) or int(round(duration * fps))
    return VideoMetadata(
        duration=duration,
        fps=fps,
        frame_count=frames,
        width=width,
        height=height,
        rotation=rotation,
        codec=str(video.get("codec_name", "unknown")),
        has_audio=audio is not None,
        audio_codec=audio.get("codec_name") if audio else None,
        bitrate=int(fmt["bit_rate"]) if str(fmt.get("bit_rate", "")).isdigit() else None,
        audio_offset=_start(audio) - _start(video) if audio else 0.0,
        size_bytes=path.stat().st_size,
        container=str(fmt.get("format_name", "unknown")),
    )


def _probe_with_decord(path: Path) -> VideoMetadata:
    """Fallback when ffprobe is not installed. decord reports no rotation (taken as 0: a rotated phone video
    then comes out sideways), no codec, bit rate or audio offset, and has no cheap audio check: whether a
    track exists is learned by decoding it, so this costs one extra audio decode per probe."""
    import decord

    try:
        reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        n = len(reader)
        height, width = reader[0].shape[:2] if n else (0, 0)
        fps = float(reader.get_avg_fps() or 0.0)
        duration = float(reader.get_frame_timestamp(n - 1)[1]) if n else 0.0
        del reader
    except Exception as exc:
        raise MediaError(f"not a readable media file: {_first_line(exc)}") from exc
    if n == 0 or width <= 0 or height <= 0:
        raise MediaError("the file has no video stream")
    try:
        has_audio = len(decord.AudioReader(str(path), ctx=decord.cpu(0), sample_rate=AUDIO_SAMPLE_RATE, mono=True)) > 0
    except Exception:
        has_audio = False
    return VideoMetadata(duration=duration, fps=fps, frame_count=n, width=int(width), height=int(height), rotation=0,
                         codec="unknown (no ffprobe)", has_audio=has_audio, size_bytes=path.stat().st_size,
                         container=path.suffix.lstrip(".") or "unknown")


def sample_indices(timestamps: np.ndarray, spec: FrameSpec, duration: float) -> np.ndarray:
    """Source frame indices for `spec`: every frame, `count` evenly spread, or the frame shown at each tick of a `spec.fps` clock."""
    n = len(timestamps)
    if spec.count is not None:
        # centre of each of `count` equal slices, so the first and last frames are not over-represented
        return np.unique(np.clip(((np.arange(spec.count) + 0.5) * n / spec.count).astype(np.int64), 0, n - 1))
    if spec.fps is None or n == 0:
        return np.arange(n)
    ticks = np.arange(0.0, max(duration, timestamps[-1] + 1e-6), 1.0 / spec.fps)
    idx = np.searchsorted(timestamps, ticks + 1e-6, side="right") - 1
    return np.unique(np.clip(idx, 0, n - 1))


Decoder = Literal["cpu", "nvdec"]


def decode(path: str | Path, specs: set[FrameSpec], want_audio: bool, metadata: VideoMetadata | None = None,
           max_frame_bytes: int | None = None, threads: int = 1, segments: int = 1, decoder: Decoder = "cpu") -> MediaBundle:
    """Decode `path` once: frames for every spec in `specs`, and audio when `want_audio` and the file has it.

    `max_frame_bytes` bounds the memory of all kept frames together: when the declared rates would exceed it
    (a 10-minute clip at 2 fps and 960 px is 1.9 GB for one spec), rate-based specs are thinned evenly.
    `threads` are FFmpeg's decoder threads per reader (0: one per core). `segments` > 1 splits the stream at
    keyframes into that many parts decoded at once, each by its own reader on its own thread (decord's calls
    release the GIL, and so do the resizes): the frames are identical, the wall time shorter where cores are
    free. 1 thread and 1 segment suit a 2-core machine where analyzers need the other core; a 1080x1920 clip
    on a 16-core GPU host decodes several times faster with more. `decoder="nvdec"` walks the same frames on the
    GPU's video decoders instead (analyzers/_nvdec.py; `segments` decoders at once, `threads` unused); the audio
    is always decoded on the CPU."""
    metadata = metadata or probe(path)
    bundle = MediaBundle(metadata=metadata)
    if specs:
        bundle.frame_sets = _decode_frames(str(path), specs, metadata, max_frame_bytes, threads, segments, decoder)
    if want_audio and metadata.has_audio:
        bundle.audio = _decode_audio(path, metadata.audio_offset)
    return bundle


def _open_video(path: str, threads: int):
    import decord  # imported here so the contract and metadata stay usable without decord

    try:
        return decord.VideoReader(path, ctx=decord.cpu(0), num_threads=threads)
    except Exception as exc:  # decord raises its own DECORDError for anything it cannot open
        raise MediaError(f"could not decode the video stream: {_first_line(exc)}") from exc


def _decode_frames(path: str, specs: set[FrameSpec], metadata: VideoMetadata, max_frame_bytes: int | None = None,
                   threads: int = 1, segments: int = 1, decoder: Decoder = "cpu") -> dict[FrameSpec, FrameSet]:
    reader = _open_video(path, threads)  # on either decoder, decord's index gives the timestamps and keyframes
    n = len(reader)
    if n == 0:
        raise MediaError("the video stream has no frames")
    timestamps = reader.get_frame_timestamp(np.arange(n))[:, 0].astype(np.float64)
    # The duration limit is checked on the declared duration before decoding; a header that understates the
    # stream must not let hours of frames through (memory grows with every kept frame).
    if metadata.duration > 0 and timestamps[-1] > metadata.duration * 1.5 + 2.0:
        raise MediaError(f"the video stream runs {timestamps[-1]:.0f} s but its header declares {metadata.duration:.0f} s")
    duration = metadata.duration or float(timestamps[-1])
    wanted = {spec: sample_indices(timestamps, spec, duration) for spec in specs}
    stride = _stride_for_budget(wanted, metadata, max_frame_bytes)
    for spec in specs:
        if spec.count is None and stride > 1:
            wanted[spec] = wanted[spec][::stride]
    # Where each source frame goes: (spec, row of that spec's array). Rows are fixed up front, so the parts
    # decoded at once can write into the same arrays without coordinating.
    rows_by_index: dict[int, list[tuple[FrameSpec, int]]] = {}
    for spec, indices in wanted.items():
        for row, i in enumerate(indices.tolist()):
            rows_by_index.setdefault(i, []).append((spec, row))
    order = sorted(rows_by_index)
    if decoder == "nvdec":
        return _frame_sets(_decode_frames_nvdec(path, order, rows_by_index, wanted, reader, n, metadata, segments),
                           wanted, timestamps, stride)

    # The first kept frame decides the rotation (some decord builds rotate already, some don't) and the shape of
    # every spec's array. Arrays are filled in place: no list-then-stack copy, so the peak is the kept frames once.
    first = _read_frame(reader, 0, order[0])  # a fresh reader is at frame 0; fixed-count specs start later
    rotation = 0 if first.shape[:2] == (metadata.height, metadata.width) else metadata.rotation
    upright_shape = _upright(first, rotation).shape[:2]
    kept = {spec: np.empty((len(wanted[spec]), *_scaled_shape(upright_shape, spec.max_side), 3), dtype=np.uint8)
            for spec in specs}

    def store(index: int, frame: np.ndarray) -> None:
        targets = rows_by_index[index]
        scaled = _scaled_copies(_upright(frame, rotation), {spec.max_side for spec, _ in targets})
        for spec, row in targets:
            kept[spec][row] = scaled[spec.max_side]

    def walk(part_reader, position: int, indices: list[int]) -> None:
        for index in indices:
            store(index, _read_frame(part_reader, position, index))
            position = index + 1

    store(order[0], first)
    parts = keyframe_parts(order[1:], reader.get_key_indices() if segments > 1 else [], n, segments)
    if len(parts) <= 1:
        walk(reader, order[0] + 1, order[1:])
    else:
        def walk_from_keyframe(keyframe: int, indices: list[int]) -> None:
            part_reader = _open_video(path, threads)
            # To the part's first kept frame, not to its keyframe: decord's skip_frames right after seek_accurate
            # lands on the wrong frame once it crosses a keyframe (seen with decord 0.6.0: seek_accurate(224) then
            # skip_frames(57) gave a frame 36 levels off frame 281; after a next() the same skip is exact).
            part_reader.seek_accurate(indices[0])
            walk(part_reader, indices[0], indices)

        with ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix="decode-part") as pool:
            jobs = [pool.submit(walk, reader, order[0] + 1, parts[0][1])]
            jobs += [pool.submit(walk_from_keyframe, start, indices) for start, indices in parts[1:]]
            for job in jobs:
                job.result()  # re-raises a part's MediaError
    return _frame_sets(kept, wanted, timestamps, stride)


def _decode_frames_nvdec(path: str, order: list[int], rows_by_index: dict, wanted: dict[FrameSpec, np.ndarray],
                         reader, frame_count: int, metadata: VideoMetadata, segments: int) -> dict[FrameSpec, np.ndarray]:
    """The frames of `order` from NVDEC, upright at the display size the probe read, which every spec's shape
    follows from."""
    from analyzers import _nvdec

    upright_shape = (metadata.height, metadata.width)
    kept = {spec: np.empty((len(indices), *_scaled_shape(upright_shape, spec.max_side), 3), dtype=np.uint8)
            for spec, indices in wanted.items()}
    parts = keyframe_parts(order, reader.get_key_indices() if segments > 1 else [], frame_count, segments)
    _nvdec.decode_into(path, parts, rows_by_index, kept, upright_shape, metadata.rotation, MediaError)
    return kept


def _frame_sets(kept: dict[FrameSpec, np.ndarray], wanted: dict[FrameSpec, np.ndarray], timestamps: np.ndarray,
                stride: int) -> dict[FrameSpec, FrameSet]:
    return {
        spec: FrameSet(
            spec=spec,
            frames=kept[spec],
            timestamps=timestamps[wanted[spec]],
            indices=wanted[spec].astype(np.int64),
            stride=stride if spec.count is None else 1,
        )
        for spec in wanted
    }


def keyframe_parts(indices: list[int], keyframes, frame_count: int, parts: int) -> list[tuple[int, list[int]]]:
    """Split the sorted frame `indices` into up to `parts` runs of about equal stream length, each starting at a
    keyframe, as (keyframe to start decoding from, indices of the run). Decoding cost follows the frames walked,
    not the frames kept, so the split is by stream position; a stream with one keyframe stays one run."""
    if not indices:
        return []
    starts = sorted({max((k for k in keyframes if k <= frame_count * p // parts), default=0) for p in range(parts)})
    runs = []
    for start, end in zip(starts, [*starts[1:], frame_count]):
        run = [i for i in indices if start <= i < end]
        if run:
            runs.append((start, run))
    return runs


def _read_frame(reader, position: int, index: int) -> np.ndarray:
    """Frame `index` as RGB rows, from a reader whose next frame is `position` (<= index)."""
    try:
        if index > position:
            reader.skip_frames(index - position)
        return _rgb_rows(reader.next().asnumpy())
    except Exception as exc:
        raise MediaError(f"the video stream is damaged near frame {index}: {_first_line(exc)}") from exc


def _stride_for_budget(wanted: dict[FrameSpec, np.ndarray], metadata: VideoMetadata, max_bytes: int | None) -> int:
    """Every how-many-th sample to keep so that all frame sets fit in `max_bytes` (1: all of them)."""
    if not max_bytes:
        return 1
    def frame_bytes(spec: FrameSpec) -> int:
        scale = min(1.0, spec.max_side / max(metadata.width, metadata.height, 1))
        return max(1, round(metadata.width * scale)) * max(1, round(metadata.height * scale)) * 3
    fixed = sum(len(i) * frame_bytes(s) for s, i in wanted.items() if s.count is not None)
    rated = sum(len(i) * frame_bytes(s) for s, i in wanted.items() if s.count is None)
    if rated + fixed <= max_bytes or rated == 0:
        return 1
    return max(1, math.ceil(rated / max(max_bytes - fixed, 1)))


def _decode_audio(path: str | Path, offset: float) -> AudioTrack | None:
    """Audio aligned to the video clock: an AAC stream that starts before the picture (priming samples, seen
    as 64 ms in MKV) is trimmed, one that starts later is padded, so sound events line up with frames."""
    import decord

    try:
        reader = decord.AudioReader(str(path), ctx=decord.cpu(0), sample_rate=AUDIO_SAMPLE_RATE, mono=True)
        samples = reader[:].asnumpy()
    except Exception as exc:
        raise MediaError(f"could not decode the audio stream: {_first_line(exc)}") from exc
    samples = np.ascontiguousarray(samples.reshape(-1), dtype=np.float32)
    shift = int(round(offset * AUDIO_SAMPLE_RATE))
    if shift < 0:
        samples = samples[-shift:]
    elif shift > 0:
        samples = np.concatenate([np.zeros(shift, np.float32), samples])
    return AudioTrack(samples=samples)


def _fitted_size(shape: tuple[int, int], max_side: int) -> tuple[int, int] | None:
    """(width, height) of a frame of `shape` scaled so its longer side is `max_side`; None: no downscale."""
    h, w = shape
    scale = max_side / max(h, w)
    if scale >= 1.0:
        return None
    return max(1, round(w * scale)), max(1, round(h * scale))


def _scaled_shape(shape: tuple[int, int], max_side: int) -> tuple[int, int]:
    """(height, width) of a frame of `shape` once fitted to `max_side`, as `_scaled_copies` makes it."""
    size = _fitted_size(shape, max_side)
    return tuple(shape) if size is None else (size[1], size[0])


def _scaled_copies(frame: np.ndarray, max_sides: set[int]) -> dict[int, np.ndarray]:
    """The frame at each wanted size, largest first, each made from the previous (smaller) one rather than from
    the full frame: area-resizing a 720x1280 frame by a non-integer factor costs ~3 ms, from an already reduced
    copy a fraction of that (3.5 s of a 30 s clip's decode went to full-frame resizes). Each size is computed
    from the full frame's shape, so a spec gets the same shape on every frame whatever intermediate it came from."""
    out: dict[int, np.ndarray] = {}
    source = frame
    for side in sorted(max_sides, reverse=True):
        size = _fitted_size(frame.shape[:2], side)
        if size is None:
            out[side] = np.ascontiguousarray(frame)
            continue
        out[side] = source = cv2.resize(_integer_reduced(source, side), size, interpolation=cv2.INTER_AREA)
    return out


def _integer_reduced(frame: np.ndarray, max_side: int) -> np.ndarray:
    """The frame reduced by the largest whole factor that keeps its longer side >= max_side, when the factor
    divides both sides: OpenCV's area resize by a whole factor is a fast box filter (0.15 ms vs 1.7 ms for
    720x1280 -> 480 px directly), and the last, small step from there is cheap."""
    h, w = frame.shape[:2]
    factor = whole_reduction_factor(h, w, max_side)
    if factor == 1:
        return frame
    return cv2.resize(frame, (w // factor, h // factor), interpolation=cv2.INTER_AREA)


def whole_reduction_factor(height: int, width: int, max_side: int) -> int:
    """The largest whole factor that keeps the longer side >= max_side and divides both sides (1: none). Shared with
    the GPU decoder's resizes (analyzers/_nvdec.py), so both make each size through the same intermediate."""
    factor = max(height, width) // max_side
    return 1 if factor < 2 or height % factor or width % factor else factor


def _rgb_rows(frame: np.ndarray) -> np.ndarray:
    """decord hands frames narrower than 32 px as (H, W, padded_row_bytes / W): the first W*3 bytes of each
    row are the pixels (checked against ffmpeg's rgb24 output for 1x1 to 24x24)."""
    if frame.ndim == 3 and frame.shape[2] != 3 and frame.shape[1] * frame.shape[2] % 3 == 0:
        return frame.reshape(frame.shape[0], -1, 3)[:, : frame.shape[1]]
    return frame


def _upright(frame: np.ndarray, rotation: int) -> np.ndarray:
    """Turn a frame as players do for display-matrix `rotation` (counter-clockwise degrees, as ffprobe reports)."""
    k = (rotation // 90) % 4
    return np.rot90(frame, k=k) if k else frame


def _rotation(stream: dict) -> int:
    for side in stream.get("side_data_list", []) or []:
        if "rotation" in side:
            return int(round(float(side["rotation"]))) % 360
    tag = (stream.get("tags") or {}).get("rotate")
    # The legacy "rotate" tag is clockwise; side data is counter-clockwise.
    return (-int(tag)) % 360 if tag and tag.lstrip("-").isdigit() else 0


def _start(stream: dict) -> float:
    try:
        value = float(stream.get("start_time", 0.0))
    except (TypeError, ValueError):
        return 0.0
    return value if math.isfinite(value) else 0.0


def _is_cover_art(stream: dict) -> bool:
    return bool((stream.get("disposition") or {}).get("attached_pic"))


def _rate(text: str | None) -> float | None:
    if not text or text in ("0/0", "0"):
        return None
    num, _, den = text.partition("/")
    value = float(num) / float(den or 1)
    return value if math.isfinite(value) and value > 0 else None


def _float(text) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


# decord's messages carry its build paths, the file's path on this server and ffmpeg log prefixes; the
# message goes back to the uploader, so keep only the words.
_NOISE = re.compile(r"\[\d\d:\d\d:\d\d\]\s*|\S+\.(?:cc|cpp|c|h):\d+:\s*|\[[^\]]*(?:/|@ 0x)[^\]]*\]\s*|Error:\s*")
_PATH = re.compile(r"(?:/[^\s/:\]\[]+){2,}")


def _first_line(exc: BaseException) -> str:
    text = [_PATH.sub("<file>", _NOISE.sub("", line)).strip() for line in str(exc).strip().splitlines()]
    text = [line for line in text if line]
    return text[0][:200] if text else type(exc).__name__
