"""The ingress's decode alone: FFmpeg threads per reader x keyframe-aligned segments decoded at once, and NVDEC.

Decodes one clip at the frame specs of every implemented analyzer (what a full request asks for), for each
(threads, segments) pair, and checks every result is identical to the one-thread one-segment decode (the
baseline, run in the same process). Reports wall seconds (median of --repeats) and the CPU seconds used.
`nvdec:xS` rows decode on the GPU's video decoders, S at once: their frames are the same frames (indices) but
not the same bytes, so they report the mean and largest per-spec mean absolute difference from the baseline.

    python bench/bench_decode.py --clip bench/out/clips/social_30s_720x1280.mp4 --grid 1x1,1x2,2x1,2x2
    python bench/bench_decode.py --clip .gpu-carry/graph/social_30s_1080x1920.mp4 --grid 2x4,nvdec:x1,nvdec:x4   # GPU host
    python bench/bench_decode.py --clip ... --grid nvdec:x1,nvdec:x4 --analyzers video_llava   # the seek_first pass alone
    python bench/bench_decode.py --clip ... --grid nvdec:x4,nvdec@old:x4 --nvdec-file old=/tmp/old_nvdec.py --busy-gpu

`nvdec@NAME:xS` rows decode with another version of analyzers/_nvdec.py (`--nvdec-file NAME=PATH`, e.g. from
`git show REV:analyzers/_nvdec.py`), in the same process and lease as the current one. `--busy-gpu` runs every
GPU row a second time while another process keeps the card busy the way Video-LLaVA's decode loop does (a 7B
model's weights read once per step, one host wait per step): in the graph the decode always shares the card, and
processes share it by time slices, so what a decode costs alone is not what it costs there.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager, nullcontext
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
    """'2x4' -> ("cpu", 2, 4); 'nvdec:x4' -> ("nvdec", 1, 4); 'nvdec@old:x4' -> ("nvdec@old", 1, 4)."""
    decoder, _, shape = cell.rpartition(":")
    threads, _, segments = shape.partition("x")
    return decoder or "cpu", int(threads or 1), int(segments)


# A 7B decode step's memory traffic: 14 GB of bf16 weights read by matrix-vector products, the token read back.
BUSY_GPU_LOOP = """
import torch
weights = [torch.randn(4096, 53248, dtype=torch.bfloat16, device="cuda") for _ in range(32)]
x = torch.randn(1, 4096, dtype=torch.bfloat16, device="cuda")
print("ready", flush=True)
while True:
    for w in weights:
        y = x @ w
    y[0, 0].item()
"""


@contextmanager
def busy_gpu():
    """Another process keeping the card busy for the duration (see the module's docstring)."""
    loop = subprocess.Popen([sys.executable, "-c", BUSY_GPU_LOOP], stdout=subprocess.PIPE, text=True)
    try:
        if loop.stdout.readline().strip() != "ready":
            raise SystemExit("the busy-GPU process did not start")
        time.sleep(1.0)  # into its steady loop
        yield
    finally:
        loop.kill()
        loop.wait()


@contextmanager
def nvdec_module(path: Path | None):
    """analyzers._nvdec replaced by the file at `path` for the duration (media.py imports it at each decode)."""
    if path is None:
        yield
        return
    import importlib.util

    import analyzers

    spec = importlib.util.spec_from_file_location(f"analyzers._nvdec_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = analyzers._nvdec
    analyzers._nvdec = module
    try:
        yield
    finally:
        analyzers._nvdec = current


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
    ap.add_argument("--nvdec-file", action="append", default=[], metavar="NAME=PATH",
                    help="another analyzers/_nvdec.py, for nvdec@NAME rows (repeatable)")
    ap.add_argument("--busy-gpu", action="store_true", help="run every GPU row again beside a busy-GPU process")
    args = ap.parse_args()

    cells = [("cpu", 1, 1)] + [parse_cell(p) for p in args.grid.split(",") if p and p != "1x1"]
    nvdec_files = {name: Path(path) for name, _, path in (item.partition("=") for item in args.nvdec_file)}
    if missing := {d.partition("@")[2] for d, _, _ in cells if "@" in d} - set(nvdec_files):
        raise SystemExit(f"no --nvdec-file for {sorted(missing)}")
    pairs = [(*cell, False) for cell in cells]
    if args.busy_gpu:
        pairs += [(*cell, True) for cell in cells if cell[0] != "cpu"]
    if any(decoder != "cpu" for decoder, *_ in pairs) and (reason := nvdec_unavailable_reason()):
        raise SystemExit(f"nvdec rows asked for, but: {reason}")  # first, before the analyzers' imports (_nvdec.py)
    specs = all_frame_specs([a for a in args.analyzers.split(",") if a] or None)
    meta = probe(args.clip)
    reference, rows = None, []
    for decoder, threads, segments, busy in pairs:
        walls, cpus = [], []
        with (busy_gpu() if busy else nullcontext()), nvdec_module(nvdec_files.get(decoder.partition("@")[2])):
            for _ in range(args.repeats):
                wall, cpu = time.perf_counter(), cpu_seconds()
                bundle = decode(args.clip, specs, False, meta, threads=threads, segments=segments,
                                decoder="cpu" if decoder == "cpu" else "nvdec")
                walls.append(time.perf_counter() - wall)
                cpus.append(cpu_seconds() - cpu)
        if reference is None:
            reference = bundle
        identical = all(np.array_equal(bundle.frames(s).frames, reference.frames(s).frames)
                        and np.array_equal(bundle.frames(s).indices, reference.frames(s).indices) for s in specs)
        same_frames = all(np.array_equal(bundle.frames(s).indices, reference.frames(s).indices)
                          and bundle.frames(s).frames.shape == reference.frames(s).frames.shape for s in specs)
        diffs = {s.key: round(mean_abs_difference(bundle.frames(s).frames, reference.frames(s).frames), 3) for s in specs}
        rows.append({"decoder": decoder, "threads": threads, "segments": segments, "busy_gpu": busy,
                     "wall_s": round(statistics.median(walls), 3),
                     "walls_s": [round(w, 3) for w in walls], "cpu_s": round(statistics.median(cpus), 2),
                     "identical_to_1x1": identical, "same_indices_and_shapes": same_frames,
                     "mean_abs_diff": round(statistics.mean(diffs.values()), 3), "max_spec_mean_abs_diff": max(diffs.values()),
                     "mean_abs_diff_per_spec": diffs})
        print(f"{decoder} threads {threads} segments {segments}{' busy GPU' if busy else ''}: {rows[-1]['wall_s']:.2f} s wall "
              f"({rows[-1]['cpu_s']:.1f} s CPU) identical={identical} same frames={same_frames} "
              f"mean abs diff {rows[-1]['mean_abs_diff']} (worst spec {rows[-1]['max_spec_mean_abs_diff']})", flush=True)
        del bundle
    kept = sum(reference.frames(s).frames.nbytes for s in specs)
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cores": os.cpu_count(),
              "clip": str(args.clip), "video": meta.model_dump(), "specs": len(specs), "kept_mb": round(kept / 1e6, 1),
              "baseline_s": rows[0]["wall_s"], "rows": rows}
    if any(decoder != "cpu" for decoder, *_ in pairs):
        import torch

        from analyzers import _nvdec

        free, total = torch.cuda.mem_get_info()  # the card as a whole: the kept decoders are not torch's memory
        result["nvdec"] = {"decoders_built": _nvdec._POOL.built, "card_used_mb_at_end": round((total - free) / 2**20),
                           "torch_reserved_mb_at_end": round(torch.cuda.memory_reserved() / 2**20)}
        print(f"NVDEC decoders built: {_nvdec._POOL.built}; card memory in use at the end {result['nvdec']['card_used_mb_at_end']} MiB")
    print(f"\n{meta.width}x{meta.height} {meta.duration:.1f} s, {len(specs)} specs, {result['kept_mb']} MB kept, "
          f"{os.cpu_count()} cores\n\n| decoder | threads | segments | GPU busy | wall s | walls s | CPU s | vs 1x1 | identical | mean abs diff (worst spec) |"
          f"\n|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['decoder']} | {r['threads']} | {r['segments']} | {r['busy_gpu']} | {r['wall_s']} | {r['walls_s']} | {r['cpu_s']} | "
              f"{rows[0]['wall_s'] / r['wall_s']:.2f}x | {r['identical_to_1x1']} | {r['mean_abs_diff']} ({r['max_spec_mean_abs_diff']}) |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
