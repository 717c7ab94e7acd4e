"""The ingress's decode alone: FFmpeg threads per reader x keyframe-aligned segments decoded at once.

Decodes one clip at the frame specs of every implemented analyzer (what a full request asks for), for each
(threads, segments) pair, and checks every result is identical to the one-thread one-segment decode (the
baseline, run in the same process). Reports wall seconds (median of --repeats) and the CPU seconds used.

    python bench/bench_decode.py --clip bench/out/clips/social_30s_720x1280.mp4 --grid 1x1,1x2,2x1,2x2
    python bench/bench_decode.py --clip .gpu-carry/graph/social_30s_1080x1920.mp4 --grid 1x1,4x1,1x4,2x4,4x4,2x8   # GPU host
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

from analyzers.media import decode, probe  # noqa: E402
from analyzers.registry import ANALYZER_NAMES, analyzer_class, is_implemented  # noqa: E402


def all_frame_specs() -> set:
    specs = set()
    for name in filter(is_implemented, ANALYZER_NAMES):
        try:
            frames = analyzer_class(name).needs.frames
        except ImportError as exc:  # a host without the analyzer's library (the bare GPU machine): say so
            print(f"skipped {name}: {exc}", file=sys.stderr)
            continue
        if frames is not None:
            specs.add(frames)
    return specs


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", type=Path, required=True)
    ap.add_argument("--grid", default="1x1,1x2,2x1,2x2", help="THREADSxSEGMENTS,...; 1x1 is the baseline and always runs")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    specs = all_frame_specs()
    meta = probe(args.clip)
    pairs = [(1, 1)] + [tuple(int(v) for v in p.split("x")) for p in args.grid.split(",") if p and p != "1x1"]
    reference, rows = None, []
    for threads, segments in pairs:
        walls, cpus = [], []
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter(), cpu_seconds()
            bundle = decode(args.clip, specs, False, meta, threads=threads, segments=segments)
            walls.append(time.perf_counter() - wall)
            cpus.append(cpu_seconds() - cpu)
        if reference is None:
            reference = bundle
        identical = all(np.array_equal(bundle.frames(s).frames, reference.frames(s).frames)
                        and np.array_equal(bundle.frames(s).indices, reference.frames(s).indices) for s in specs)
        rows.append({"threads": threads, "segments": segments, "wall_s": round(statistics.median(walls), 3),
                     "walls_s": [round(w, 3) for w in walls], "cpu_s": round(statistics.median(cpus), 2),
                     "identical_to_1x1": identical})
        print(f"threads {threads} segments {segments}: {rows[-1]['wall_s']:.2f} s wall "
              f"({rows[-1]['cpu_s']:.1f} s CPU) identical={identical}", flush=True)
        del bundle
    kept = sum(reference.frames(s).frames.nbytes for s in specs)
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cores": os.cpu_count(),
              "clip": str(args.clip), "video": meta.model_dump(), "specs": len(specs), "kept_mb": round(kept / 1e6, 1),
              "baseline_s": rows[0]["wall_s"], "rows": rows}
    print(f"\n{meta.width}x{meta.height} {meta.duration:.1f} s, {len(specs)} specs, {result['kept_mb']} MB kept, "
          f"{os.cpu_count()} cores\n\n| threads | segments | wall s | CPU s | vs 1x1 | identical |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['threads']} | {r['segments']} | {r['wall_s']} | {r['cpu_s']} | "
              f"{rows[0]['wall_s'] / r['wall_s']:.2f}x | {r['identical_to_1x1']} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
