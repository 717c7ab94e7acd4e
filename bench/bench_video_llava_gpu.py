"""GPU timing of video_llava's production path on the real LLaVA-NeXT-Video-7B architecture with RANDOM weights.

No machine of this project can download llava-hf/LLaVA-NeXT-Video-7B-hf, so this builds the same architecture
(CLIP ViT-L/14-336 tower, 32-layer Llama-2-7B-sized text model, vocab 32064, <video>=32000, <image>=32001) with
random weights, saves it as safetensors, and loads it through `analyzers.video_llava.VideoLlava.load` exactly as
production does (nf4 via bitsandbytes, bf16 without quantization). Timings and memory are those of the real
architecture; the generated text is noise, so nothing here says anything about description quality.

Per precision: load time and memory; then for each cache (dynamic, static) and each length (150, 300 new tokens,
forced with min_new_tokens): preprocessing (CPU processor + copy), prefill (generation of 1 token: vision tower,
projector, prompt prefill), total, decode tokens/s and peak GPU memory. The 8 input frames are 336x189 (a vertical
video after the ingress scaled it), padded to 336x336 as in production.

    python bench/bench_video_llava_gpu.py --out $OUT/llava.json            # H100: ~6-8 min
    python bench/bench_video_llava_gpu.py --out $OUT/llava.json --precisions bf16 --weights-dir /tmp/llava7b
    python bench/bench_video_llava_gpu.py --smoke --out /tmp/llava_smoke.json   # CPU, small model, <1 min

Needs torch, torchvision (the LLaVA-NeXT-Video video processor uses it), transformers, tokenizers, safetensors,
numpy, pydantic, and bitsandbytes for nf4. No Ray, no network.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything is local; never wait on a hub the machine cannot reach

import numpy as np  # noqa: E402

NOTE = "RANDOM WEIGHTS: real LLaVA-NeXT-Video-7B architecture, timings and memory only; generated text is meaningless."


def real_7b_config():
    """llava-hf/LLaVA-NeXT-Video-7B-hf's config.json, field for field where it shapes compute or memory."""
    from tests.tiny_llava import llava_config

    cfg = llava_config(
        vocab_size=32064,
        base_vocab=32000,  # -> video_token_index 32000, image_token_index 32001, as in the real config
        text=dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-5, hidden_act="silu"),
        vision=dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                    patch_size=14, image_size=336, projection_dim=768, hidden_act="quick_gelu", layer_norm_eps=1e-5),
    )
    cfg.image_grid_pinpoints = [[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]]
    cfg.image_seq_length, cfg.video_seq_length = 576, 288
    return cfg, 336, 14, 32000


def smoke_config():
    """Small enough for the CPU, wide enough (>= 64) for bitsandbytes' 4-bit blocks."""
    from tests.tiny_llava import TINY_BASE_VOCAB, TINY_VOCAB, llava_config

    cfg = llava_config(
        vocab_size=TINY_VOCAB,
        base_vocab=TINY_BASE_VOCAB,
        text=dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=4, max_position_embeddings=4096),
        vision=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                    patch_size=8, image_size=64, projection_dim=64),
    )
    return cfg, 64, 8, TINY_BASE_VOCAB


def build_checkpoint(out_dir: Path, smoke: bool, device: str) -> dict:
    from tests.tiny_llava import build_processor, build_tokenizer, save_random_model

    if (out_dir / "config.json").is_file() and any(out_dir.glob("*.safetensors")):
        return {"built": False, "seconds": 0.0}
    import torch

    config, frame_size, patch, base_vocab = smoke_config() if smoke else real_7b_config()
    started = time.perf_counter()
    tokenizer = build_tokenizer(base_vocab, seed_vocab=400 if smoke else 16000, english=not smoke)
    processor = build_processor(tokenizer, frame_size, patch)
    dtype = torch.float32 if smoke else torch.bfloat16
    save_random_model(config, processor, out_dir, dtype=dtype, device=device)
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    size = sum(f.stat().st_size for f in out_dir.glob("*.safetensors"))
    return {"built": True, "seconds": round(time.perf_counter() - started, 1), "safetensors_gb": round(size / 1e9, 2)}


def test_frames() -> np.ndarray:
    """8 vertical frames (336x189) with structure, so the vision tower sees ordinary pixel statistics."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:336, 0:189]
    frames = []
    for k in range(8):
        base = np.stack([(x * 255 // 188 + 30 * k) % 256, (y * 255 // 335) % 256, np.full_like(x, 40 * k % 256)], -1)
        frames.append(np.clip(base + rng.integers(-20, 21, base.shape), 0, 255).astype(np.uint8))
    return np.stack(frames)


def dynamo_graphs() -> int:
    try:
        from torch._dynamo.utils import counters

        return int(counters["stats"].get("unique_graphs", 0))
    except Exception:
        return -1


class Recorder:
    def __init__(self, out: Path, env: dict):
        self.out, self.doc = out, {"note": NOTE, "env": env, "runs": []}
        out.parent.mkdir(parents=True, exist_ok=True)
        self.flush()

    def add(self, row: dict) -> None:
        row = {"note": "random weights", **row}
        self.doc["runs"].append(row)
        print(json.dumps(row), flush=True)
        self.flush()  # a run cut short by a time limit still leaves what it measured

    def flush(self) -> None:
        self.out.write_text(json.dumps(self.doc, indent=1))


def bench_precision(precision: str, args, ckpt: Path, device: str, rec: Recorder) -> None:
    import torch

    from analyzers.video_llava import VideoLlava, describe_instruction

    cuda = device.startswith("cuda")
    top = max(args.tokens)
    # min = max = the longest length; shorter runs stop early via stop_after, so the (static) cache keeps one
    # shape and a compiled decode step is reused instead of recompiled per length
    settings = {"model": str(ckpt), "precision": precision, "max_new_tokens": top, "min_new_tokens": top,
                "attn_implementation": args.attn, "local_files_only": True, "warmup": False}
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    analyzer = VideoLlava(settings)
    analyzer.load(device)
    if cuda:
        torch.cuda.synchronize()
    load = {"precision": precision, "phase": "load", "seconds": round(time.perf_counter() - started, 2),
            "model_in_use": analyzer.model_in_use}
    if cuda:
        load["weights_gb"] = round(torch.cuda.memory_allocated() / 2**30, 2)
        load["peak_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    rec.add(load)

    # cache "static_greedy" = our own loop (analyzers/_static_decode.py) over a static cache; "static" and
    # "dynamic" = transformers' generate() with that cache
    variants = [(cache, mode, count) for cache in args.caches for count in args.frame_counts
                for mode in (args.compile_modes if cache != "dynamic" else [None])]
    for cache, mode, count in variants:
        frames = test_frames()[np.linspace(0, 7, count).round().astype(int)]
        instruction = describe_instruction(count)
        # model_copy does not validate: the bench can measure what the settings refuse in a deployment
        # (int8 with reduce-overhead, the figure behind that refusal)
        analyzer.settings = analyzer.settings.model_copy(
            update={"cache_implementation": "static" if cache == "static" else None, "compile_mode": mode,
                    "decode_loop": "static_greedy" if cache == "static_greedy" else "generate"}
        )
        analyzer.prepare_decoding()
        graphs_before = dynamo_graphs()
        started = time.perf_counter()
        for _ in range(args.warmups):  # full length: on a compiling path this records every decode-step graph
            analyzer.generate(frames, instruction, True, stop_after=top)
        warm_s = round(time.perf_counter() - started, 2)
        compiled = dynamo_graphs() > graphs_before
        for n in args.tokens:
            prefill, total, rate, pre, whole, peaks, gen_tokens, prompt_tokens = [], [], [], [], [], [], 0, 0
            for _ in range(args.repeats):
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                first = analyzer.generate(frames, instruction, True, stop_after=1)
                full = analyzer.generate(frames, instruction, True, stop_after=n)
                prefill.append(first.generate_seconds)
                total.append(full.generate_seconds)
                decode_s = full.generate_seconds - first.generate_seconds
                if decode_s > 0:
                    rate.append((full.generated_tokens - 1) / decode_s)
                pre.append(full.preprocess_seconds)
                whole.append(full.preprocess_seconds + full.generate_seconds)
                gen_tokens, prompt_tokens = full.generated_tokens, full.prompt_tokens
                if cuda:
                    peaks.append(torch.cuda.max_memory_allocated() / 2**30)
            p, t = statistics.median(prefill), statistics.median(total)
            row = {
                "precision": precision, "phase": "generate", "cache": cache, "compiled_decode": compiled,
                "compile_mode": mode or "transformers default", "attn": args.attn, "frames": count, "prompt_tokens": prompt_tokens, "new_tokens": gen_tokens,
                "warmup_s": warm_s, "preprocess_s": round(statistics.median(pre), 4), "prefill_s": round(p, 4),
                "total_s": round(t, 3), "analyzer_s": round(statistics.median(whole), 3), "decode_tok_per_s": round(statistics.median(rate), 1) if rate else None,
                "repeats": args.repeats,
            }
            if peaks:
                row["peak_gb"] = round(max(peaks), 2)
            rec.add(row)
    for rows in args.batch_rows:
        bench_batching(analyzer, precision, rows, args, device, rec)
    del analyzer
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    try:
        torch._dynamo.reset()
    except Exception:
        pass


def bench_batching(analyzer, precision: str, rows: int, args, device: str, rec: "Recorder") -> None:
    """The static greedy loop with `rows` batch rows: c describe prompts handed to it at once (c = each of
    args.concurrency), all forced to n new tokens. Wall until the last one is done, against c x the lone request.
    With --json-grammar, each (n, c) again with every prompt under the description's JSON grammar (one host read-back
    per step; min_new_tokens does not apply there, so rows count the tokens written)."""
    import torch

    from analyzers.video_llava import describe_instruction

    cuda = device.startswith("cuda")
    mode = args.compile_modes[0]
    analyzer.settings = analyzer.settings.model_copy(
        update={"decode_loop": "static_greedy", "batch_rows": rows, "compile_mode": mode, "cache_implementation": None})
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    analyzer.prepare_decoding()
    analyzer.warm_up()  # records the lone-row step and, with rows > 1, the all-rows step
    warm_s = round(time.perf_counter() - started, 2)
    decoder = analyzer._decoder
    frames = test_frames()
    inputs = analyzer.encode(frames, describe_instruction(len(frames)), True)
    for n, c, grammar in [(n, c, g) for n in args.tokens for c in args.concurrency
                          for g in ([False, True] if args.json_grammar else [False])]:
        walls, written, before = [], 0, dict(decoder.stats)
        for _ in range(args.repeats):
            constraints = [analyzer._grammar.constraint() for _ in range(c)] if grammar else None
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for future in decoder.submit_together([inputs] * c, n, n, constraints):
                written = max(written, len(future.result()))
            walls.append(time.perf_counter() - t0)
        steps = decoder.stats["steps"] - before["steps"]
        row_steps = decoder.stats["row_steps"] - before["row_steps"]
        wall = statistics.median(walls)
        row = {"precision": precision, "phase": "batch", "batch_rows": rows, "concurrency": c, "new_tokens": written,
               "json_grammar": grammar,
               "compile_mode": mode or "none", "warmup_s": warm_s, "prompt_tokens": int(inputs["input_ids"].shape[1]),
               "cache_slots": decoder.max_cache_len, "wall_s": round(wall, 3),
               "tokens_per_s": round(c * written / wall, 1), "mean_rows_per_step": round(row_steps / max(steps, 1), 2),
               "repeats": args.repeats}
        if cuda:
            row["peak_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        rec.add(row)
    decoder.close()
    analyzer._decoder = None


def markdown(doc: dict) -> str:
    env = doc["env"]
    lines = [f"**{NOTE}**", "", f"{env.get('device')} · torch {env.get('torch')} · transformers {env.get('transformers')} · "
             f"bitsandbytes {env.get('bitsandbytes')}", "",
             "| precision | cache | compile mode | frames | compiled | new tokens | prompt tokens | preprocess s | prefill s | total s | preprocess + total s | decode tok/s | peak GB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    loads, batches = [], []
    for r in doc["runs"]:
        if r["phase"] == "load":
            loads.append(f"- load {r['precision']}: {r['seconds']} s, weights {r.get('weights_gb', '-')} GB, peak {r.get('peak_gb', '-')} GB")
        elif r["phase"] == "batch":
            batches.append(f"| {r['precision']} | {r['batch_rows']} | {r['concurrency']} | {r.get('json_grammar', False)} | {r['new_tokens']} | {r['wall_s']} | "
                           f"{r['tokens_per_s']} | {r['mean_rows_per_step']} | {r.get('peak_gb', '-')} |")
        elif r["phase"] == "generate":
            lines.append(f"| {r['precision']} | {r['cache']} | {r.get('compile_mode', '-')} | {r.get('frames', 8)} | {r['compiled_decode']} | {r['new_tokens']} | {r['prompt_tokens']} | "
                         f"{r['preprocess_s']} | {r['prefill_s']} | {r['total_s']} | {r.get('analyzer_s', '-')} | {r['decode_tok_per_s']} | {r.get('peak_gb', '-')} |")
    build = doc["env"].get("build", {})
    if batches:
        batches = ["", "| precision | batch rows | prompts at once | JSON grammar | new tokens each | wall s | tokens/s | rows per step | peak GB |",
                   "|---|---|---|---|---|---|---|---|---|", *batches]
    return "\n".join([*lines, *batches, "", *loads, f"- checkpoint build: {build}", ""])


def environment(device: str) -> dict:
    import torch
    import transformers

    env = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
           "device": torch.cuda.get_device_name(0) if device.startswith("cuda") else f"cpu ({platform.processor() or 'cpu'})"}
    try:
        import bitsandbytes

        env["bitsandbytes"] = bitsandbytes.__version__
    except ImportError:
        env["bitsandbytes"] = None
    return env


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON results; a .md table is written next to it")
    ap.add_argument("--smoke", action="store_true", help="CPU, small random model, short lengths: checks the script")
    ap.add_argument("--device", default=None, help="default: cuda (cpu with --smoke)")
    ap.add_argument("--weights-dir", type=Path, default=None, help="checkpoint dir; reused if it already holds one")
    ap.add_argument("--precisions", default="nf4,bf16")
    ap.add_argument("--caches", default="dynamic,static", help="dynamic, static (generate) and/or static_greedy (our loop)")
    ap.add_argument("--tokens", default=None, help="new-token lengths, default 150,300 (8,16 with --smoke)")
    ap.add_argument("--attn", default="sdpa")
    ap.add_argument("--compile-modes", default="", help="static cache: torch.compile modes to try, comma-separated ('' = default)")
    ap.add_argument("--frame-counts", default="8", help="frames per video to try (fewer frames = fewer visual tokens)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--warmups", type=int, default=1)
    ap.add_argument("--batch-rows", default="", help="static greedy loop with these batch_rows (e.g. 8): c prompts at once")
    ap.add_argument("--concurrency", default="1,2,4,8", help="with --batch-rows: how many prompts at once")
    ap.add_argument("--json-grammar", action="store_true",
                    help="with --batch-rows: each row again under the description's JSON grammar, same decoder")
    args = ap.parse_args(argv)
    args.batch_rows = [int(r) for r in args.batch_rows.split(",") if r]
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c]
    args.precisions = [p for p in args.precisions.split(",") if p]
    args.caches = [c for c in args.caches.split(",") if c]
    args.compile_modes = [m for m in args.compile_modes.split(",") if m] or [None]
    args.frame_counts = [int(c) for c in args.frame_counts.split(",") if c]
    args.tokens = sorted(int(t) for t in (args.tokens or ("8,16" if args.smoke else "150,300")).split(","))
    device = args.device or ("cpu" if args.smoke else "cuda")
    ckpt = args.weights_dir or Path("/tmp/llava_next_video_smoke" if args.smoke else "/tmp/llava_next_video_7b_random")

    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device: run with --smoke for the CPU check", file=sys.stderr)
        return 2
    env = environment(device)
    print(NOTE, flush=True)
    env["build"] = build_checkpoint(ckpt, args.smoke, device)
    env["checkpoint"] = str(ckpt)
    rec = Recorder(args.out, env)
    print(json.dumps({"env": env}), flush=True)
    for precision in args.precisions:
        try:
            bench_precision(precision, args, ckpt, device, rec)
        except Exception as exc:  # one precision failing (e.g. bitsandbytes missing) must not lose the other
            rec.add({"precision": precision, "phase": "error", "error": f"{type(exc).__name__}: {exc}"[:500]})
    table = markdown(rec.doc)
    args.out.with_suffix(".md").write_text(table)
    print(table)
    return 0 if not any(r["phase"] == "error" for r in rec.doc["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
