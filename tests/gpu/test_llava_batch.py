"""video_llava's batched decode loop on a CUDA device, compiled with CUDA graphs and on its own stream, against
transformers' `generate()` for each prompt alone (the CPU tests in tests/unit/test_video_llava.py check the same
logic uncompiled). A small random LLaVA-NeXT-Video in fp32, so both sides compute the same numbers up to kernel
order. `pytest -m gpu tests/gpu/test_llava_batch.py`; REELSCOPE_TEST_DEVICE=cpu runs it uncompiled on the CPU
(to check the test itself where there is no GPU)."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

pytestmark = pytest.mark.gpu
DEVICE = os.environ.get("REELSCOPE_TEST_DEVICE", "cuda")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch = pytest.importorskip("torch")
    if DEVICE == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from analyzers.video_llava import VideoLlava
    from tests.tiny_llava import build_tiny_llava

    checkpoint = build_tiny_llava(tmp_path_factory.mktemp("tiny_llava_gpu"))
    settings = {"model": str(checkpoint), "precision": "fp32", "local_files_only": True, "max_new_tokens": 24}
    reference = VideoLlava(settings)
    reference.load(DEVICE)
    return reference


def _prompts(reference):
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 256, (8, 336, 189, 3), dtype=np.uint8) for _ in range(2)]
    return [
        (reference.encode(clips[0], "Describe the video.", True), 20, 20),
        (reference.encode(clips[1], "Describe the video.", True), 12, 0),
        (reference.encode(None, 'Fix this JSON: {"summary": ', False), 24, 24),
        (reference.encode(clips[0], "What colour is the last shot? Answer in one word.", True), 9, 3),
    ]


def _expected(reference, inputs, max_new, min_new):
    out = reference._model.generate(**inputs, max_new_tokens=max_new, min_new_tokens=min_new or None, do_sample=False)
    return out[0, inputs["input_ids"].shape[1]:].tolist()


def test_compiled_batched_rows_write_what_each_prompt_writes_alone(models):
    from analyzers._static_decode import StaticGreedyDecoder

    reference = models
    prompts = _prompts(reference)
    expected = [_expected(reference, *p) for p in prompts]
    longest = max(p[0]["input_ids"].shape[1] for p in prompts) + 24
    decoder = StaticGreedyDecoder(reference._model, -(-longest // 64) * 64, rows=4, check_every=4,
                                  compile_mode="reduce-overhead" if DEVICE == "cuda" else None)
    try:
        alone = decoder.submit(*prompts[0]).result(timeout=300).tolist()  # records the lone-row step
        assert alone == expected[0]
        futures = decoder.submit_together([p[0] for p in prompts[:2]], 20, 0)  # records the all-rows step
        for future in futures:
            future.result(timeout=300)
        # all four at once (different lengths and limits), then one joining a running batch
        futures = [decoder.submit(*p) for p in prompts]
        for future, want in zip(futures, expected):
            assert future.result(timeout=60).tolist() == want
        first = decoder.submit(*prompts[0])
        deadline = time.monotonic() + 30
        steps = decoder.stats["steps"]
        while decoder.stats["steps"] < steps + 3 and time.monotonic() < deadline:
            time.sleep(0.0005)
        joiner = decoder.submit(*prompts[2])
        assert first.result(timeout=60).tolist() == expected[0]
        assert joiner.result(timeout=60).tolist() == expected[2]
        assert decoder.stats["joined_running"] >= 1
    finally:
        decoder.close()


def test_compiled_rows_under_the_json_grammar_write_what_generate_with_its_processor_writes(models):
    """The grammar's mask on the device (pinned host bitmask, copied on the decoder's stream, one read-back per step)
    beside free rows, through the compiled steps. The reference is generate() with our processor (the CPU tests check
    it against xgrammar's own, whose CUDA path needs Triton to build a kernel)."""
    from analyzers._static_decode import StaticGreedyDecoder

    reference = models
    grammar = reference._grammar
    prompts = _prompts(reference)
    constrained = [True, False, True, True]
    expected = []
    for (inputs, max_new, min_new), c in zip(prompts, constrained):
        if c:
            out = reference._model.generate(**inputs, max_new_tokens=max_new, do_sample=False,
                                            logits_processor=[grammar.logits_processor()])
            expected.append(out[0, inputs["input_ids"].shape[1]:].tolist())
        else:
            expected.append(_expected(reference, inputs, max_new, min_new))
    longest = max(p[0]["input_ids"].shape[1] for p in prompts) + 24
    decoder = StaticGreedyDecoder(reference._model, -(-longest // 64) * 64, rows=4, check_every=4,
                                  compile_mode="reduce-overhead" if DEVICE == "cuda" else None)
    try:
        alone = decoder.submit(*prompts[0], grammar.constraint()).result(timeout=300).tolist()
        assert alone == expected[0]
        assert reference.processor.tokenizer.decode(alone).startswith('{"summary": "')
        futures = [decoder.submit(*p, grammar.constraint() if c else None) for p, c in zip(prompts, constrained)]
        for future, want in zip(futures, expected):
            assert future.result(timeout=120).tolist() == want
        assert decoder.stats["constrained_steps"] > 0
    finally:
        decoder.close()
