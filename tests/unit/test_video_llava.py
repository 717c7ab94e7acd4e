"""video_llava: frame sampling, the JSON parser and repair loop, and the real load/generate path on a tiny random model.

The tiny model (tests/tiny_llava.py) has random weights, so its text is noise: tests check the machinery (prompt,
video tokens, determinism, forced lengths, the "failed" path keeping raw text), never the words.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import pytest

from analyzers.base import AnalyzerUnavailable
from analyzers.media import decode
from analyzers._video_description import DESCRIPTION_KEYS, DescriptionParseError, Generation, describe, parse_description
from analyzers.video_llava import CLIP_MEAN_RGB, LLAVA_FRAMES, VideoLlava, VideoLlavaResult, pad_to_square
from tests.synth import solid_clip
from tests.tiny_llava import TINY_FRAME_SIZE, TINY_PATCH, build_tiny_llava

GOOD = (
    '{"summary": "A person pours syrup on pancakes.", "setting": "kitchen", "people_and_actions": ["a cook pours syrup"], '
    '"objects_and_products": ["pancakes", "syrup"], "on_screen_text": ["Sunday brunch"], "mood": "cosy", '
    '"hook": "close-up of a pancake stack", "call_to_action": null, "topics": ["food"], "hashtags": ["#brunch"]}'
)


# ---------- parser: (text, expected summary or None for a parse error) ----------
@dataclass(frozen=True)
class ParseCase:
    name: str
    text: str
    summary: str | None
    error_contains: str = ""


PARSE_CASES = [
    ParseCase("bare", GOOD, "A person pours syrup on pancakes."),
    ParseCase("fenced", f"```json\n{GOOD}\n```", "A person pours syrup on pancakes."),
    ParseCase("prose around", f"Sure! Here is the JSON:\n{GOOD}\nHope this helps {{not json}}", "A person pours syrup on pancakes."),
    ParseCase("brace in string", '{"summary": "a sign reads {OPEN}", "topics": "signs"}', "a sign reads {OPEN}"),
    ParseCase("stray brace first", 'Keys {summary...}: {"summary": "ok"}', "ok"),
    ParseCase("trailing comma", '{"summary": "x", "mood": "calm",}', None, "invalid JSON"),
    ParseCase("truncated", '{"summary": "A man rides a bike thro', None, "invalid JSON"),
    ParseCase("no json", "The video shows a bike ride.", None, "no JSON object"),
    ParseCase("missing summary", '{"setting": "park"}', None, "summary"),
    ParseCase("wrong type", '{"summary": "x", "hashtags": {"a": 1}}', None, "hashtags"),
    ParseCase("array not object", '["summary", "x"]', None, "no JSON object"),
]


@pytest.mark.parametrize("case", PARSE_CASES, ids=lambda c: c.name)
def test_parse_description(case: ParseCase):
    if case.summary is None:
        with pytest.raises(DescriptionParseError, match=case.error_contains):
            parse_description(case.text)
    else:
        assert parse_description(case.text).summary == case.summary


def test_parse_normalises_shorthand():
    d = parse_description('{"summary": "x", "topics": "cooking", "hashtags": null, "mood": null}')
    assert d.topics == ["cooking"] and d.hashtags == [] and d.mood == "" and d.call_to_action is None
    full = parse_description(GOOD)
    assert full.on_screen_text == ["Sunday brunch"] and full.objects_and_products == ["pancakes", "syrup"]


# ---------- describe loop with a generate function injected at the seam ----------
class ScriptedGenerate:
    def __init__(self, *texts: str):
        self.texts = list(texts)
        self.calls: list[tuple[str, bool]] = []

    def __call__(self, instruction: str, with_video: bool) -> Generation:
        self.calls.append((instruction, with_video))
        return Generation(self.texts.pop(0), prompt_tokens=100, generated_tokens=10)


def test_describe_ok_first_time():
    gen = ScriptedGenerate(f"```json\n{GOOD}\n```")
    outcome = describe(gen, frame_count=8)
    assert outcome.status == "ok" and outcome.description.setting == "kitchen"
    assert len(gen.calls) == 1 and gen.calls[0][1] is True
    assert "8 frames" in gen.calls[0][0] and all(key in gen.calls[0][0] for key in DESCRIPTION_KEYS)


def test_describe_repairs_once_with_the_broken_text_and_error():
    broken = '{"summary": "A dog runs", "mood": "happy",}'
    gen = ScriptedGenerate(broken, '{"summary": "A dog runs", "mood": "happy"}')
    outcome = describe(gen, frame_count=8)
    assert outcome.status == "repaired" and outcome.description.mood == "happy"
    repair_prompt, with_video = gen.calls[1]
    assert with_video is False and broken in repair_prompt and "invalid JSON" in repair_prompt
    assert len(outcome.generations) == 2


def test_describe_gives_up_after_one_repair_and_keeps_both_texts():
    gen = ScriptedGenerate("no json here", "still {not json")
    outcome = describe(gen, frame_count=8)
    assert outcome.status == "failed" and outcome.description is None
    assert [g.text for g in outcome.generations] == ["no json here", "still {not json"]
    assert "no JSON object" in outcome.error and "after repair: invalid JSON" in outcome.error
    assert len(gen.calls) == 2


def test_describe_under_the_grammar_asks_once_and_blames_the_token_budget():
    gen = ScriptedGenerate('{"summary": "A dog runs thro')
    outcome = describe(gen, frame_count=8, constrained=True)
    assert outcome.status == "failed" and outcome.description is None and len(gen.calls) == 1
    assert "invalid JSON" in outcome.error and "cut off after 10 new tokens" in outcome.error
    assert describe(ScriptedGenerate(GOOD), frame_count=8, constrained=True).status == "ok"


# ---------- frames ----------
COLOURS = {"red": (255, 0, 0), "lime": (0, 255, 0), "blue": (0, 0, 255), "yellow": (255, 255, 0),
           "cyan": (0, 255, 255), "magenta": (255, 0, 255), "white": (255, 255, 255), "black": (0, 0, 0)}


@pytest.fixture(scope="module")
def eight_colour_clip(tmp_path_factory):
    """Vertical 360x640, 25 fps: eight 12-frame shots of known colours, so frame k of 8 must come from shot k."""
    path = tmp_path_factory.mktemp("llava_media") / "eight.mp4"
    return solid_clip(path, list(COLOURS), seconds_each=0.48, size="360x640", fps=25)


@pytest.fixture(scope="module")
def media(eight_colour_clip):
    return decode(eight_colour_clip, {LLAVA_FRAMES}, want_audio=False)


def test_eight_frames_evenly_spread_with_timestamps(media):
    fs = media.frames(LLAVA_FRAMES)
    assert fs.frames.shape == (8, 336, 189, 3)  # longest side 336, aspect kept
    expected_idx = ((np.arange(8) + 0.5) * 96 / 8).astype(int)  # centre of each eighth of 96 frames
    assert fs.indices.tolist() == expected_idx.tolist()
    assert np.allclose(fs.timestamps, expected_idx / 25.0, atol=1e-3)
    for frame, rgb in zip(fs.frames, COLOURS.values()):  # each sample lands in its own shot
        assert np.abs(frame.reshape(-1, 3).mean(axis=0) - rgb).max() < 30


def test_pad_to_square_keeps_the_whole_frame_centred(media):
    frames = media.frames(LLAVA_FRAMES).frames
    square = pad_to_square(frames)
    assert square.shape == (8, 336, 336, 3)
    left = (336 - 189) // 2
    assert np.array_equal(square[:, :, left : left + 189], frames)
    assert (square[:, :, :left] == CLIP_MEAN_RGB).all() and (square[:, :, left + 189 :] == CLIP_MEAN_RGB).all()


# ---------- loading ----------
def test_missing_model_dir_is_unavailable(tmp_path):
    with pytest.raises(AnalyzerUnavailable, match="does not exist"):
        VideoLlava({"model": str(tmp_path / "nope"), "precision": "fp32"}).load("cpu")
    with pytest.raises(AnalyzerUnavailable, match="no config.json"):
        VideoLlava({"model": str(tmp_path), "precision": "fp32"}).load("cpu")


def test_hub_model_not_cached_is_unavailable_offline():
    analyzer = VideoLlava({"model": "llava-hf/LLaVA-NeXT-Video-7B-hf", "local_files_only": True})
    with pytest.raises(AnalyzerUnavailable, match="not found locally: this machine cannot reach the model hub"):
        analyzer.load("cpu")
    assert analyzer.model_in_use is None


def test_uncached_model_with_unreachable_hub_fails_fast(monkeypatch):
    """Downloads allowed but nothing listens at the hub: unavailable at once, not after minutes of retries."""
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused
    with pytest.raises(AnalyzerUnavailable, match="hub is unreachable"):
        VideoLlava({"model": "llava-hf/LLaVA-NeXT-Video-7B-hf", "local_files_only": False}).load("cpu")


def test_settings_reject_min_above_max():
    with pytest.raises(ValueError):
        VideoLlava({"max_new_tokens": 10, "min_new_tokens": 20})


def test_module_import_pulls_no_model_library():
    code = "import sys, analyzers.video_llava; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------- the real code path on a tiny random LLaVA-NeXT-Video ----------
@pytest.fixture(scope="session")
def tiny_llava_dir(tmp_path_factory):
    return build_tiny_llava(tmp_path_factory.mktemp("tiny_llava"))


@pytest.fixture(scope="module")
def tiny(tiny_llava_dir):
    analyzer = VideoLlava({"model": str(tiny_llava_dir), "precision": "fp32", "max_new_tokens": 24, "local_files_only": True})
    analyzer.load("cpu")
    return analyzer


def test_prompt_carries_the_video_tokens(tiny, media):
    prompt = tiny.build_prompt("What happens?", with_video=True)
    assert prompt.startswith("USER: <video>\n") and prompt.rstrip().endswith("ASSISTANT:")
    frames = tiny.prepare_frames(media.frames(LLAVA_FRAMES).frames)
    inputs = tiny.processor(text=prompt, videos=[frames], return_tensors="pt")
    per_frame = (TINY_FRAME_SIZE // TINY_PATCH) ** 2 // 4  # patches after the stride-2 spatial pooling
    assert int((inputs["input_ids"] == tiny.processor.video_token_id).sum()) == 8 * per_frame
    assert tuple(inputs["pixel_values_videos"].shape) == (1, 8, 3, TINY_FRAME_SIZE, TINY_FRAME_SIZE)
    assert "<video>" not in tiny.build_prompt("What happens?", with_video=False)


@pytest.fixture(scope="module")
def tiny_free_text(tiny_llava_dir):
    """Without the JSON grammar: free text, tolerant parsing and one repair."""
    analyzer = VideoLlava({"model": str(tiny_llava_dir), "precision": "fp32", "max_new_tokens": 24,
                           "local_files_only": True, "json_grammar": False})
    analyzer.load("cpu")
    return analyzer


def test_end_to_end_random_weights_fail_to_parse_and_keep_raw_text(tiny_free_text, media):
    tiny = tiny_free_text
    result = tiny.analyze(media, {})
    assert isinstance(result, VideoLlavaResult)
    assert result.parse_status == "failed" and result.description is None and result.attempts == 2
    assert result.json_grammar is False and not result.raw_text.startswith('{"summary": "')
    assert result.raw_text and result.repair_raw_text is not None
    assert result.frames_used == [round(t, 3) for t in media.frames(LLAVA_FRAMES).timestamps.tolist()]
    assert 0 < result.generated_tokens <= 2 * 24
    assert result.prompt_tokens > 8 * 16 and result.generate_seconds > 0 and result.preprocess_seconds > 0
    assert result.model == f"{tiny.settings.model} (fp32, cpu)"
    # greedy decoding: the same request writes the same text
    assert tiny.analyze(media, {}).raw_text == result.raw_text


# ---------- the description under its JSON schema's grammar (the default) ----------
def test_under_the_grammar_a_cut_off_description_is_one_attempt_that_says_why(tiny, media):
    result = tiny.analyze(media, {})
    assert result.json_grammar is True and result.attempts == 1 and result.repair_raw_text is None
    assert result.parse_status == "failed" and result.generated_tokens == 24
    assert result.raw_text.startswith('{"summary": "')  # random weights write JSON only because of the mask
    assert "cut off after 24 new tokens" in result.parse_error and "raise max_new_tokens" in result.parse_error


@pytest.mark.parametrize("decode_loop", ["generate", "static_greedy"])
def test_under_the_grammar_random_weights_write_a_description_that_parses(tiny_llava_dir, media, decode_loop):
    """Given the tokens it needs, even a random model's text is a complete, valid description at the first attempt,
    and our loop writes exactly what generate() with xgrammar's logits processor writes."""
    settings = {"model": str(tiny_llava_dir), "precision": "fp32", "local_files_only": True, "max_new_tokens": 4000,
                "min_new_tokens": 50}  # min_new_tokens must not apply under the grammar: it decides the end
    analyzer = VideoLlava(settings | {"decode_loop": decode_loop})
    analyzer.load("cpu")
    result = analyzer.analyze(media, {})
    assert result.parse_status == "ok" and result.attempts == 1 and result.parse_error is None
    assert result.description == parse_description(result.raw_text) and result.description.summary
    assert result.generated_tokens < 4000
    reference = VideoLlava(settings | {"decode_loop": "generate"})
    reference.load("cpu")
    assert reference.analyze(media, {}).raw_text == result.raw_text


def test_ask_answers_from_the_same_frames(tiny, media):
    answer = tiny.ask(media, "  What colour is the last shot?  ")
    assert answer.question == "What colour is the last shot?"
    assert answer.answer and answer.generated_tokens > 0 and len(answer.frames_used) == 8
    with pytest.raises(ValueError):
        tiny.ask(media, "   ")


def test_min_new_tokens_forces_length_and_static_cache_matches_dynamic(tiny_llava_dir, media):
    common = {"model": str(tiny_llava_dir), "precision": "fp32", "max_new_tokens": 16, "min_new_tokens": 16,
              "local_files_only": True}
    frames = media.frames(LLAVA_FRAMES).frames
    dynamic = VideoLlava(common)
    dynamic.load("cpu")
    static = VideoLlava({**common, "cache_implementation": "static", "warmup": True})
    static.load("cpu")
    a = dynamic.generate(frames, "Describe the video.", True)
    b = static.generate(frames, "Describe the video.", True)
    assert a.generated_tokens == b.generated_tokens == 16
    assert a.text == b.text


# ---------- the static greedy loop: token for token what greedy generate() writes ----------
def _pair(tiny_llava_dir, **settings):
    common = {"model": str(tiny_llava_dir), "precision": "fp32", "local_files_only": True} | settings
    reference, loop = VideoLlava(common), VideoLlava(common | {"decode_loop": "static_greedy"})
    reference.load("cpu")
    loop.load("cpu")
    return reference, loop


def test_static_greedy_loop_writes_what_generate_writes(tiny_llava_dir, media):
    reference, loop = _pair(tiny_llava_dir, max_new_tokens=20, min_new_tokens=20)
    frames = media.frames(LLAVA_FRAMES).frames
    for instruction, with_video in (("Describe the video.", True), ("Fix this JSON: {", False)):
        a, b = reference.generate(frames, instruction, with_video), loop.generate(frames, instruction, with_video)
        assert b.generated_tokens == a.generated_tokens == 20 and b.text == a.text and b.prompt_tokens == a.prompt_tokens
    assert loop._decoder is not None and not loop._fallback_reasons  # the loop served both, nothing fell back


@pytest.mark.parametrize("check_every", [1, 3, 8, 64])
def test_static_greedy_loop_stops_after_the_first_end_token(tiny_llava_dir, media, check_every):
    reference, loop = _pair(tiny_llava_dir, max_new_tokens=16)
    frames = media.frames(LLAVA_FRAMES).frames
    inputs = reference.processor(text=reference.build_prompt("Describe.", True), videos=[reference.prepare_frames(frames)],
                                 return_tensors="pt")
    forced = loop._decoder.generate(inputs, 16, 16).tolist()
    # make a token the random model writes at step 5 (its first occurrence) the end token, for both paths
    end = forced[5]
    first = forced.index(end)
    for model in (reference._model, loop._model):
        model.generation_config.eos_token_id = end
    loop._decoder = type(loop._decoder)(loop._model, loop._decoder.max_cache_len, check_every=check_every)
    got = loop._decoder.generate(inputs, 16).tolist()
    assert got == forced[: first + 1]  # stops right after the first end token, which it keeps
    assert reference.generate(frames, "Describe.", True).text == loop.generate(frames, "Describe.", True).text
    # min_new_tokens masks the end token (the output changes from step 5 on), exactly as generate() does
    masked = loop._decoder.generate(inputs, 16, 16).tolist()
    expected = reference._model.generate(**inputs, max_new_tokens=16, min_new_tokens=16, do_sample=False)
    assert len(masked) == 16 and end not in masked and masked == expected[0, inputs["input_ids"].shape[1]:].tolist()


def test_static_greedy_loop_falls_back_when_the_prompt_outgrows_its_cache(tiny_llava_dir, media):
    reference, loop = _pair(tiny_llava_dir, max_new_tokens=8, question_tokens=0)
    frames = media.frames(LLAVA_FRAMES).frames
    long_question = "Describe every frame in detail. " * 40
    assert loop.generate(frames, long_question, True).text == reference.generate(frames, long_question, True).text
    assert any("exceed the static cache" in r for r in loop._fallback_reasons)


# ---------- the batched loop: several requests share each step, and each gets what it would get alone ----------
def _prompts(reference, media):
    """Prompts of different lengths and contents: two videos (the clip, and its frames reversed), a repair-like
    text-only prompt and a question, each with its own length limits (max_new, min_new)."""
    frames = media.frames(LLAVA_FRAMES).frames

    def encode(instruction, video):
        return reference.processor(text=reference.build_prompt(instruction, video is not None),
                                   videos=None if video is None else [reference.prepare_frames(video)], return_tensors="pt")

    return [
        (encode("Describe the video.", frames), 18, 18),
        (encode("Describe the video.", frames[::-1].copy()), 11, 0),
        (encode('Fix this JSON: {"summary": ', None), 24, 24),
        (encode("What colour is the last shot? Answer in one word.", frames), 7, 3),
    ]


def _expected(reference, inputs, max_new, min_new):
    out = reference._model.generate(**inputs, max_new_tokens=max_new, min_new_tokens=min_new or None, do_sample=False)
    return out[0, inputs["input_ids"].shape[1]:].tolist()


@pytest.mark.parametrize("rows", [2, 4])
def test_batched_rows_write_what_each_request_writes_alone(tiny_llava_dir, media, rows):
    from analyzers._static_decode import StaticGreedyDecoder

    reference, loop = _pair(tiny_llava_dir, max_new_tokens=24)
    prompts = _prompts(reference, media)
    decoder = StaticGreedyDecoder(loop._model, loop._decoder.max_cache_len, check_every=3, rows=rows)
    try:
        futures = [decoder.submit(inputs, n, m) for inputs, n, m in prompts]  # all at once: rows fill, others wait
        for (inputs, n, m), future in zip(prompts, futures):
            assert future.result(timeout=60).tolist() == _expected(reference, inputs, n, m)
        assert decoder.stats["row_steps"] > decoder.stats["steps"]  # steps really were shared
    finally:
        decoder.close()


def test_a_request_joins_the_running_batch_and_a_longer_prompt_waits_for_it_to_drain(tiny_llava_dir, media):
    import time

    from analyzers._static_decode import StaticGreedyDecoder

    reference, loop = _pair(tiny_llava_dir, max_new_tokens=24)
    video, _, text, question = _prompts(reference, media)
    decoder = StaticGreedyDecoder(loop._model, loop._decoder.max_cache_len, check_every=4, rows=4)
    try:
        first = decoder.submit(video[0], 24, 24)
        deadline = time.monotonic() + 30
        while decoder.stats["steps"] < 4 and time.monotonic() < deadline:
            time.sleep(0.001)
        joiner = decoder.submit(text[0], 12, 0)  # shorter than the running prompt: joins between two steps
        assert first.result(timeout=60).tolist() == _expected(reference, video[0], 24, 24)
        assert joiner.result(timeout=60).tolist() == _expected(reference, text[0], 12, 0)
        assert decoder.stats["joined_running"] == 1 and decoder.stats["fresh_batches"] == 1

        base = decoder.stats["steps"]
        short = decoder.submit(text[0], 24, 24)  # a text prompt far shorter than the video prompt below
        while decoder.stats["steps"] < base + 4 and time.monotonic() < deadline:
            time.sleep(0.001)
        longer = decoder.submit(question[0], 7, 3)  # does not fit below the running slot: waits, then starts afresh
        assert not short.done()  # (20 more steps to go)
        assert short.result(timeout=60).tolist() == _expected(reference, text[0], 24, 24)
        assert longer.result(timeout=60).tolist() == _expected(reference, question[0], 7, 3)
        assert decoder.stats["fresh_batches"] == 3 and decoder.stats["joined_running"] == 1
    finally:
        decoder.close()


def test_batched_rows_stop_each_at_its_own_first_end_token(tiny_llava_dir, media):
    from analyzers._static_decode import StaticGreedyDecoder

    reference, loop = _pair(tiny_llava_dir, max_new_tokens=24)
    prompts = _prompts(reference, media)[:3]
    forced = _expected(reference, prompts[0][0], 16, 16)
    end = forced[5]  # a token the first prompt writes, first at step forced.index(end)
    for model in (reference._model, loop._model):
        model.generation_config.eos_token_id = end
    decoder = StaticGreedyDecoder(loop._model, loop._decoder.max_cache_len, check_every=5, rows=3)
    try:
        futures = [decoder.submit(inputs, 16, 0) for inputs, _, _ in prompts]
        results = [f.result(timeout=60).tolist() for f in futures]
        assert results[0] == forced[: forced.index(end) + 1]
        for (inputs, _, _), got in zip(prompts, results):
            assert got == _expected(reference, inputs, 16, 0)
    finally:
        decoder.close()


def test_batched_rows_under_the_grammar_and_free_rows_each_write_what_they_write_alone(tiny_llava_dir, media):
    """A constrained row masks only its own logits: free rows beside it (an /ask) are untouched, and each constrained
    row follows its own grammar state, token for token what generate() with xgrammar's processor writes."""
    from xgrammar.contrib.hf import LogitsProcessor as XgrammarProcessor

    from analyzers._static_decode import StaticGreedyDecoder

    reference, loop = _pair(tiny_llava_dir, max_new_tokens=24)
    grammar = loop._grammar
    prompts = _prompts(reference, media)
    constrained = [True, False, True, False]
    decoder = StaticGreedyDecoder(loop._model, loop._decoder.max_cache_len, check_every=3, rows=4)
    try:
        futures = [decoder.submit(inputs, n, m, grammar.constraint() if c else None)
                   for (inputs, n, m), c in zip(prompts, constrained)]
        for (inputs, n, m), c, future in zip(prompts, constrained, futures):
            if c:
                out = reference._model.generate(**inputs, max_new_tokens=n, do_sample=False,
                                                logits_processor=[XgrammarProcessor(grammar.compiled)])
                expected = out[0, inputs["input_ids"].shape[1]:].tolist()
                assert reference.processor.tokenizer.decode(expected).startswith('{"summary": "')
                ours = reference._model.generate(**inputs, max_new_tokens=n, do_sample=False,
                                                 logits_processor=[grammar.logits_processor()])
                assert ours.tolist() == out.tolist()  # generate()'s path (our processor) masks as xgrammar's does
            else:
                expected = _expected(reference, inputs, n, m)
            assert future.result(timeout=60).tolist() == expected
        assert decoder.stats["constrained_steps"] > 0 and decoder.stats["row_steps"] > decoder.stats["steps"]
    finally:
        decoder.close()


def test_the_decoder_refuses_what_does_not_fit_and_fails_what_waits_when_closed(tiny_llava_dir, media):
    from analyzers._static_decode import StaticGreedyDecoder

    reference, loop = _pair(tiny_llava_dir, max_new_tokens=8)
    inputs = _prompts(reference, media)[0][0]
    decoder = StaticGreedyDecoder(loop._model, 64, rows=2)
    with pytest.raises(ValueError, match="exceed the static cache"):
        decoder.submit(inputs, 8)
    decoder.close()
    with pytest.raises(RuntimeError, match="closed"):
        decoder.submit(_prompts(reference, media)[2][0], 8)


def test_batch_rows_let_the_group_run_that_many_video_llava_calls_at_once(tiny_llava_dir, media):
    from concurrent.futures import wait

    from deployments.group import load_slot

    settings = {"model": str(tiny_llava_dir), "precision": "fp32", "local_files_only": True, "max_new_tokens": 12,
                "decode_loop": "static_greedy", "batch_rows": 3}
    slot = load_slot("video_llava", settings, "cpu")
    alone = load_slot("video_llava", settings | {"batch_rows": 1}, "cpu")
    assert slot.thread._max_workers == 3 and alone.thread._max_workers == 1
    questions = ["What colour is the first shot?", "How many shots are there?", "Is there any text?"]
    futures = [slot.thread.submit(slot.analyzer.ask, media, q) for q in questions]
    wait(futures, timeout=120)
    for question, future in zip(questions, futures):
        assert future.result().answer == alone.analyzer.ask(media, question).answer
    assert slot.analyzer._decoder.stats["row_steps"] > slot.analyzer._decoder.stats["steps"]


def test_warm_up_runs_the_lone_row_step_and_the_all_rows_step(tiny_llava_dir):
    settings = {"model": str(tiny_llava_dir), "precision": "fp32", "local_files_only": True, "max_new_tokens": 12,
                "decode_loop": "static_greedy", "batch_rows": 4, "warmup": True, "warmup_tokens": 5}
    analyzer = VideoLlava(settings)
    analyzer.load("cpu")
    stats = analyzer._decoder.stats
    # alone: 4 steps on one row, under the description's grammar as a request's are; together: 4 steps on two rows
    # (each prompt's first token comes from its prefill)
    assert stats == {"steps": 8, "row_steps": 12, "fresh_batches": 2, "joined_running": 0, "constrained_steps": 4}


def test_batch_rows_need_the_static_greedy_loop_and_a_maskable_attention():
    with pytest.raises(ValueError, match="static_greedy"):
        VideoLlava({"batch_rows": 4})
    with pytest.raises(ValueError, match="sdpa or eager"):
        VideoLlava({"batch_rows": 4, "decode_loop": "static_greedy", "attn_implementation": "flash_attention_2"})
    with pytest.raises(ValueError, match="int8 decodes ~25x slower"):
        VideoLlava({"batch_rows": 4, "decode_loop": "static_greedy", "precision": "int8", "compile_mode": "max-autotune"})
    assert VideoLlava({"batch_rows": 4, "decode_loop": "static_greedy"}).concurrent_calls == 4
    assert VideoLlava({"batch_rows": 1, "decode_loop": "static_greedy"}).concurrent_calls == 1


def test_static_greedy_loop_refuses_sampling():
    with pytest.raises(ValueError, match="temperature 0"):
        VideoLlava({"decode_loop": "static_greedy", "temperature": 0.7})


# ---------- int8 weight-only language model ----------
def test_int8_linear_is_close_to_the_float_layer():
    import torch

    from analyzers._int8_weights import Int8WeightOnlyLinear

    torch.manual_seed(0)
    linear = torch.nn.Linear(256, 128)
    x = torch.randn(4, 256)
    q = Int8WeightOnlyLinear(linear)
    assert q.weight.dtype == torch.int8 and q.scales.shape == (128,)
    exact, approx = linear(x), q(x)
    assert (approx - exact).norm() / exact.norm() < 0.01  # per-channel int8: well under 1 % error
    assert not torch.equal(approx, exact)  # it really is quantized


def test_int8_quantizes_the_language_model_only_and_keeps_its_predictions(tiny_llava_dir, media):
    import torch

    from analyzers._int8_weights import Int8WeightOnlyLinear

    common = {"model": str(tiny_llava_dir), "local_files_only": True, "max_new_tokens": 8}
    exact, int8 = VideoLlava(common | {"precision": "fp32"}), VideoLlava(common | {"precision": "int8"})
    exact.load("cpu")
    int8.load("cpu")
    language = int8._model.model.language_model
    assert not any(isinstance(m, torch.nn.Linear) for m in language.modules())
    assert sum(isinstance(m, Int8WeightOnlyLinear) for m in language.modules()) == 14
    assert any(isinstance(m, torch.nn.Linear) for m in int8._model.model.vision_tower.modules())  # vision untouched
    frames = media.frames(LLAVA_FRAMES).frames
    inputs = exact.processor(text=exact.build_prompt("Describe.", True), videos=[exact.prepare_frames(frames)], return_tensors="pt")
    with torch.inference_mode():
        a, b = exact._model(**inputs).logits[0, -1], int8._model(**inputs).logits[0, -1]
    assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.999
    assert int8.generate(frames, "Describe.", True).generated_tokens > 0 and int8.model_in_use.endswith("(int8, cpu)")


def test_int8_refuses_the_compile_modes_measured_ten_times_slower():
    from analyzers.video_llava import VideoLlavaSettings

    for mode in ("reduce-overhead", "default"):
        with pytest.raises(ValueError, match="max-autotune"):
            VideoLlavaSettings(precision="int8", compile_mode=mode)
    assert VideoLlavaSettings(precision="int8", compile_mode="max-autotune").compile_mode == "max-autotune"
    assert VideoLlavaSettings(precision="bf16", compile_mode="reduce-overhead").precision == "bf16"
