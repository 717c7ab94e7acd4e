"""What decoding under the description's JSON grammar costs per token on the host (analyzers/_json_grammar.py).

With the grammar, each decode step of video_llava waits for its token on the host, asks xgrammar for the next
mask and copies it to the device: this host work is what the GPU step then waits for. This bench times it on the
vocabulary the GPU benchmarks use (bench/bench_video_llava_gpu.py: a byte-level BPE of 16,000 trained tokens padded to
LLaVA-NeXT-Video-7B's 32,064 logits), on two texts: a real description (tests' sample, tokenized) and a random walk
under the mask (a model that never wants to close a string: the longest texts).

    .venv/bin/python bench/bench_json_grammar.py [--out bench/results/DATE_cpu_json_grammar.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from analyzers._json_grammar import JsonGrammar, mask_logits, new_bitmask
from analyzers._video_description import description_schema, parse_description
from tests.tiny_llava import build_tokenizer

VOCAB, BASE_VOCAB, EOS = 32064, 32000, 2
SAMPLE = (
    '{"summary": "A woman in a red jacket talks to the camera in a bright kitchen and holds up a jar of coffee, then '
    'pours a cup and smiles.", "setting": "a bright home kitchen", "people_and_actions": ["a woman talks to the camera", '
    '"she pours coffee"], "objects_and_products": ["jar of coffee", "mug"], "on_screen_text": ["SALE 50% OFF", '
    '"Follow for more tips!"], "mood": "upbeat and friendly", "hook": "a close-up of the coffee jar", "call_to_action": '
    '"follow for more tips", "topics": ["coffee", "morning routine"], "hashtags": ["#coffee", "#morning"]}'
)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def time_walk(grammar: JsonGrammar, tokens: list[int] | None, seed: int = 0) -> dict:
    """Per token: fill the mask, apply it to 32,064 logits (CPU), accept the token. `tokens` None: random walk."""
    generator = torch.Generator().manual_seed(seed)
    constraint = grammar.constraint()
    bitmask = new_bitmask(1, VOCAB)
    fill, mask, accept, written = [], [], [], []
    while not constraint.finished:
        t0 = time.perf_counter()
        constraint.fill_mask(bitmask, 0)
        t1 = time.perf_counter()
        logits = mask_logits(torch.randn(1, VOCAB, generator=generator), bitmask)
        t2 = time.perf_counter()
        token = int(logits.argmax()) if tokens is None else tokens[len(written)]
        t3 = time.perf_counter()
        constraint.accept(token)
        t4 = time.perf_counter()
        fill.append(t1 - t0)
        mask.append(t2 - t1)
        accept.append(t4 - t3)
        written.append(token)
    us = lambda xs, f: round(f(xs) * 1e6, 1)  # noqa: E731
    return {
        "tokens": len(written),
        "fill_us_median": us(fill, statistics.median), "fill_us_p95": us(fill, lambda x: _percentile(x, 0.95)),
        "accept_us_median": us(accept, statistics.median),
        "mask_cpu_us_median": us(mask, statistics.median),
        "host_us_per_token_mean": round((sum(fill) + sum(accept)) / len(written) * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    started = time.perf_counter()
    tokenizer = build_tokenizer(BASE_VOCAB, seed_vocab=16000, english=True)
    tokenizer_seconds = time.perf_counter() - started
    started = time.perf_counter()
    grammar = JsonGrammar(tokenizer, VOCAB, description_schema(), [EOS])
    compile_seconds = time.perf_counter() - started
    sample = tokenizer.encode(SAMPLE, add_special_tokens=False) + [EOS]
    parse_description(SAMPLE)  # the sample is a valid description
    rows = {"real description": time_walk(grammar, sample), "random walk": time_walk(grammar, None)}
    report = {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, {platform.processor() or 'cpu'}",
        "vocab": VOCAB, "tokenizer_build_s": round(tokenizer_seconds, 2), "grammar_compile_s": round(compile_seconds, 3),
        "rows": rows,
    }
    print(f"{report['when']} · {report['machine']} · vocab {VOCAB} · grammar compile {compile_seconds:.2f} s\n")
    print("| text | tokens | fill mask us (median / p95) | accept us | host us per token | mask on CPU us |")
    print("|---|---|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['tokens']} | {row['fill_us_median']} / {row['fill_us_p95']} | {row['accept_us_median']} "
              f"| {row['host_us_per_token_mean']} | {row['mask_cpu_us_median']} |")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
