"""The ingress's decode alone: FFmpeg threads per reader x keyframe-aligned segments decoded at once, and NVDEC.

Decodes one clip at the frame specs of every implemented analyzer (what a full request asks for), for each
(threads, segments) pair, and checks every result is identical to the one-thread one-segment decode (the
baseline, run in the same process). Reports wall seconds (median of --repeats) and the CPU seconds used.
`nvdec:xS` rows decode on the GPU's video decoders, S at once: their frames are the same frames (indices) but
not the same bytes, so they report the mean and largest per-spec mean absolute difference from the baseline.

    python bench/bench_decode.py --clip bench/out/clips/social_30s_720x1280.mp4 --grid 1x1,1x2,2x1,2x2
    python bench/bench_decode.py --clip .gpu-carry/graph/social_30s_1080x1920.mp4 --grid 2x4,nvdec:x1,nvdec:x4   # GPU host
    python bench/bench_decode.py --clip ... --grid nvdec:x1,nvdec:x4 --analyzers video_llava   # the seek_first pass alone
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analyzers._nvdec import unavailable_reason as nvdec_unavailable_reason  # noqa: E402
from analyzers.media import decode, probe  # noqa: E402
from analyzers.registry import ANALYZER_NAMES, analyzer_class, is_implemented  # noqa: E402


def all_frame_specs(only: list[str] | None = None) -> set:
    specs = set()
    for name in filter(is_implemented, only or ANALYZER_NAMES):
        try:
            frames = analyzer_class(name).needs.frames
        except ImportError as exc:  # a host without the analyzer's library (the bare GPU machine): say so
            print(f"skipped {name}: {exc}", file=sys.stderr)
            continue
        if frames is not None:
            specs.add(frames)
    return specs


def mean_abs_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 frame arrays, in levels (0-255)."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def parse_cell(cell: str) -> tuple[str, int, int]:
    """'2x4' -> ("cpu", 2, 4); 'nvdec:x4' -> ("nvdec", 1, 4)."""
    decoder, _, shape = cell.rpartition(":")
    threads, _, segments = shape.partition("x")
    return decoder or "cpu", int(threads or 1), int(segments)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, required=True)
    ap.add_argument("--grid", default="1x1,1x2,2x1,2x2",
                    help="THREADSxSEGMENTS or nvdec:xSEGMENTS, comma-separated; 1x1 is the baseline and always runs")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--analyzers", default="", help="only these analyzers' frame specs, e.g. video_llava (the ingress's "
                    "seek_first pass); default: every implemented analyzer's, as a full request")
    args = ap.parse_args()

    pairs = [("cpu", 1, 1)] + [parse_cell(p) for p in args.grid.split(",") if p and p != "1x1"]
    if any(decoder == "nvdec" for decoder, _, _ in pairs) and (reason := nvdec_unavailable_reason()):
        raise SystemExit(f"nvdec rows asked for, but: {reason}")  # first, before the analyzers' imports (_nvdec.py)
    specs = all_frame_specs([a for a in args.analyzers.split(",") if a] or None)
    meta = probe(args.clip)
    reference, rows = None, []
    for decoder, threads, segments in pairs:
        walls, cpus = [], []
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter(), cpu_seconds()
            bundle = decode(args.clip, specs, False, meta, threads=threads, segments=segments, decoder=decoder)
            walls.append(time.perf_counter() - wall)
            cpus.append(cpu_seconds() - cpu)
        if reference is None:
            reference = bundle
        identical = all(np.array_equal(bundle.frames(s).frames, reference.frames(s).frames)
                        and np.array_equal(bundle.frames(s).indices, reference.frames(s).indices) for s in specs)
        same_frames = all(np.array_equal(bundle.frames(s).indices, reference.frames(s).indices)
                          and bundle.frames(s).frames.shape == reference.frames(s).frames.shape for s in specs)
        diffs = {s.key: round(mean_abs_difference(bundle.frames(s).frames, reference.frames(s).frames), 3) for s in specs}
        rows.append({"decoder": decoder, "threads": threads, "segments": segments, "wall_s": round(statistics.median(walls), 3),
                     "walls_s": [round(w, 3) for w in walls], "cpu_s": round(statistics.median(cpus), 2),
                     "identical_to_1x1": identical, "same_indices_and_shapes": same_frames,
                     "mean_abs_diff": round(statistics.mean(diffs.values()), 3), "max_spec_mean_abs_diff": max(diffs.values()),
                     "mean_abs_diff_per_spec": diffs})
        print(f"{decoder} threads {threads} segments {segments}: {rows[-1]['wall_s']:.2f} s wall "
              f"({rows[-1]['cpu_s']:.1f} s CPU) identical={identical} same frames={same_frames} "
              f"mean abs diff {rows[-1]['mean_abs_diff']} (worst spec {rows[-1]['max_spec_mean_abs_diff']})", flush=True)
        del bundle
    kept = sum(reference.frames(s).frames.nbytes for s in specs)
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cores": os.cpu_count(),
              "clip": str(args.clip), "video": meta.model_dump(), "specs": len(specs), "kept_mb": round(kept / 1e6, 1),
              "baseline_s": rows[0]["wall_s"], "rows": rows}
    print(f"\n{meta.width}x{meta.height} {meta.duration:.1f} s, {len(specs)} specs, {result['kept_mb']} MB kept, "
          f"{os.cpu_count()} cores\n\n| decoder | threads | segments | wall s | CPU s | vs 1x1 | identical | mean abs diff (worst spec) |"
          f"\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['decoder']} | {r['threads']} | {r['segments']} | {r['wall_s']} | {r['cpu_s']} | "
              f"{rows[0]['wall_s'] / r['wall_s']:.2f}x | {r['identical_to_1x1']} | {r['mean_abs_diff']} ({r['max_spec_mean_abs_diff']}) |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
