"""Video-LLM description of the whole video: LLaVA-NeXT-Video looks at 8 evenly spread frames and writes JSON.

The prompt, the tolerant JSON parser and the one-repair loop live in `analyzers/_video_description.py` as pure
functions; this file loads the model and feeds them a `generate` function. When even the repaired text is not
valid, the raw text is kept and `parse_status` says "failed". By default the description is decoded under its JSON
schema's grammar (`json_grammar`, analyzers/_json_grammar.py), so it parses at the first attempt unless
`max_new_tokens` cuts it off, and no request pays for a repair generation.

Frames: 8, as the replaced system used (the 7B model was trained with up to 32, and every frame costs 144
prompt tokens after pooling). The count is a class-level need read by the ingress before any instance exists,
so changing it means a subclass or an edit here, not a setting. Vertical social video is padded to a square
(LLaVA's "pad" mode) instead of centre-cropped, so captions at the top and bottom of the screen stay visible.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator

from analyzers._video_description import (  # noqa: F401  (re-exported: the parser is part of this analyzer's API)
    DESCRIPTION_KEYS,
    DescriptionParseError,
    Generation,
    VideoDescription,
    describe,
    describe_instruction,
    description_schema,
    parse_description,
)
from analyzers.base import Analyzer, AnalyzerUnavailable, FrameSpec, Needs

LLAVA_FRAMES = FrameSpec(count=8, max_side=336)
log = logging.getLogger(__name__)
CLIP_MEAN_RGB = (122, 116, 104)  # padding colour: the vision tower's input mean, so the pad reads as "nothing"


class VideoLlavaResult(BaseModel):
    description: VideoDescription | None = Field(..., description="None when parse_status is 'failed'.")
    parse_status: Literal["ok", "repaired", "failed"]
    parse_error: str | None = None
    raw_text: str = Field(..., description="What the model wrote for the description prompt, verbatim.")
    repair_raw_text: str | None = Field(None, description="What it wrote when asked to repair invalid JSON.")
    frames_used: list[float] = Field(..., description="Timestamps (s) of the frames the model saw.")
    json_grammar: bool = Field(False, description="Decoded under the description's JSON schema: every token was "
                               "checked, so 'failed' means max_new_tokens cut the JSON off.")
    attempts: int
    prompt_tokens: int = Field(..., description="Summed over attempts.")
    generated_tokens: int = Field(..., description="Summed over attempts.")
    preprocess_seconds: float
    generate_seconds: float
    model: str


class Answer(BaseModel):
    question: str
    answer: str
    frames_used: list[float]
    prompt_tokens: int
    generated_tokens: int
    preprocess_seconds: float
    generate_seconds: float
    model: str


SLOW_INT8_COMPILE_MODES = ("default", "reduce-overhead")


class VideoLlavaSettings(BaseModel):
    model: str = Field("llava-hf/LLaVA-NeXT-Video-7B-hf", description="Hub name or local directory of the checkpoint.")
    precision: Literal["nf4", "int8", "bf16", "fp16", "fp32"] = Field(
        "nf4", description="nf4: 4-bit bitsandbytes, double quant, fp16 compute on GPU (bf16 on CPU, where it is slow). "
        "int8: the language model's linear layers weight-only int8 per channel, quantized at load, bf16 activations "
        "(fp32 on CPU); vision tower bf16 (analyzers/_int8_weights.py)."
    )
    max_new_tokens: int = Field(300, ge=1, le=4096)
    min_new_tokens: int = Field(0, ge=0, description="Forces output length; for benchmarks only.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="0 means greedy decoding.")
    cache_implementation: Literal["static"] | None = Field(
        None, description="'static' lets transformers compile the decode step on GPU (needs warmup)."
    )
    decode_loop: Literal["generate", "static_greedy"] = Field(
        "generate",
        description="generate: transformers' generate(). static_greedy: our greedy loop over one static KV cache with a "
        "compiled one-token step and no host sync per token (analyzers/_static_decode.py); needs temperature 0.",
    )
    batch_rows: int = Field(
        1, ge=1, le=64,
        description="static_greedy: how many generations of this replica decode together, sharing each step's read of "
        "the weights (requests join and leave the running batch between steps; the group then runs this many calls "
        "at once). Each row holds a cache of the longest prompt + question_tokens + max_new_tokens.",
    )
    question_tokens: int = Field(
        512, ge=0, description="static_greedy: cache room for an /ask question beyond the description prompt's length."
    )
    json_grammar: bool = Field(
        True, description="Decode the description under its JSON schema (xgrammar): each token must keep the text "
        "valid JSON of the schema, so it parses without a repair generation. One host sync per decode step (the "
        "grammar must see each token). False: free text, tolerant parsing and one repair."
    )
    attn_implementation: str | None = Field("sdpa", description="e.g. 'sdpa', 'eager', 'flash_attention_2'.")
    frame_fit: Literal["pad", "crop"] = Field("pad", description="pad: whole frame letterboxed; crop: processor's centre crop.")
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] | None = Field(
        None, description="torch.compile mode for the static-cache decode step; None keeps transformers' default."
    )
    warmup: bool = Field(False, description="Generate once on a dummy video in load(), so no request pays for warm-up/compile.")
    warmup_tokens: int = Field(8, ge=1, description="Decode steps of the warm-up generation.")
    local_files_only: bool = Field(False, description="True on machines that cannot reach the model hub.")

    @field_validator("min_new_tokens")
    @classmethod
    def _min_below_max(cls, value, info):
        if value > info.data.get("max_new_tokens", value):
            raise ValueError("min_new_tokens cannot exceed max_new_tokens")
        return value

    @model_validator(mode="after")
    def _greedy_loop_is_greedy(self):
        if self.decode_loop == "static_greedy" and self.temperature > 0:
            raise ValueError("decode_loop static_greedy decodes greedily: set temperature 0 or decode_loop generate")
        if self.batch_rows > 1 and self.decode_loop != "static_greedy":
            raise ValueError("batch_rows > 1 needs decode_loop static_greedy (generate() decodes one request at a time)")
        if self.batch_rows > 1 and self.attn_implementation not in ("sdpa", "eager"):
            raise ValueError("batch_rows > 1 masks each row's cache with its own attention mask: attn_implementation "
                             "must be sdpa or eager")
        if self.batch_rows > 1 and self.precision == "int8":
            # Measured on an H200 (BENCHMARKS.md, 2026-12-04): with 2-8 rows the int8 step took ~133 ms (150 tokens
            # in 20 s) against ~5 ms in bf16; inductor fuses the dequantization only into the one-row kernel.
            raise ValueError("batch_rows > 1 with precision int8 decodes ~25x slower than bf16 (measured); use bf16")
        if self.precision == "int8" and self.compile_mode in SLOW_INT8_COMPILE_MODES:
            # Measured on an H100 (BENCHMARKS.md, 2026-11-25): 150 tokens in 7.74 s with reduce-overhead vs 0.74 s
            # with max-autotune; only the autotuned kernels fuse the dequantization into the matrix-vector product.
            raise ValueError(f"precision int8 with compile_mode {self.compile_mode} decodes ~10x slower than bf16 "
                             "(measured); use compile_mode max-autotune (or max-autotune-no-cudagraphs), or bf16")
        return self


def pad_to_square(frames: np.ndarray, fill=CLIP_MEAN_RGB) -> np.ndarray:
    n, h, w, _ = frames.shape
    side = max(h, w)
    if h == w:
        return frames
    out = np.empty((n, side, side, 3), dtype=np.uint8)
    out[:] = np.asarray(fill, dtype=np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    out[:, top : top + h, left : left + w] = frames
    return out


def locate_checkpoint(model: str, local_files_only: bool) -> str:
    """The path or hub name to load, or AnalyzerUnavailable when the weights cannot be there."""
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise AnalyzerUnavailable(f"{path} is not a model checkpoint (no config.json)")
        return str(path)
    if model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise AnalyzerUnavailable(f"model directory {model} does not exist")
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model, "config.json"), str):
        return model
    if local_files_only:
        raise AnalyzerUnavailable(
            f"weights for {model} not found locally: this machine cannot reach the model hub "
            f"(local_files_only is set); download them where the hub is reachable (`hf download {model}`) and "
            "copy the Hugging Face cache here, or set `model` to a local checkpoint directory"
        )
    if not _hub_reachable():  # otherwise the hub client retries for minutes before giving up
        raise AnalyzerUnavailable(f"weights for {model} not found locally and the model hub is unreachable from here")
    return model


def _hub_reachable(timeout: float = 3.0) -> bool:
    import os
    import socket
    from urllib.parse import urlparse

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # a direct connection proves nothing behind a proxy; let the hub client try
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
    except OSError:
        return False
    return True


class VideoLlava(Analyzer):
    name = "video_llava"
    needs = Needs(frames=LLAVA_FRAMES)
    Result = VideoLlavaResult
    Settings = VideoLlavaSettings

    def __init__(self, settings=None) -> None:
        super().__init__(settings)
        self._model = None
        self._processor = None
        self._compute_dtype = None
        self._lock = threading.Lock()  # one generate() at a time per replica when there is no decoder thread
        self._decoder = None  # StaticGreedyDecoder when decode_loop is static_greedy: it owns the model's thread
        self._grammar = None  # JsonGrammar of the description schema when settings.json_grammar
        self._fallback_reasons: set[str] = set()

    @property
    def model_in_use(self) -> str | None:
        return f"{self.settings.model} ({self.settings.precision}, {self.device})" if self._model is not None else None

    @property
    def concurrent_calls(self) -> int:
        """The decoder batches up to batch_rows generations, so the group may run that many calls at once."""
        return self.settings.batch_rows if self.settings.decode_loop == "static_greedy" else 1

    @property
    def processor(self):
        """The loaded LlavaNextVideoProcessor (tokenizer, chat template, video processor)."""
        return self._processor

    def load(self, device: str) -> None:
        super().load(device)
        s = self.settings
        source = locate_checkpoint(s.model, s.local_files_only)
        try:
            import torch
            from transformers import LlavaNextVideoForConditionalGeneration, LlavaNextVideoProcessor
        except ImportError as exc:
            raise AnalyzerUnavailable(f"video_llava needs torch, torchvision and transformers: {exc}") from exc

        on_gpu = device.startswith("cuda")
        kwargs: dict = {"local_files_only": s.local_files_only, "device_map": {"": device}}
        if s.attn_implementation:
            kwargs["attn_implementation"] = s.attn_implementation
        if s.precision == "nf4":
            try:
                import bitsandbytes  # noqa: F401
                from transformers import BitsAndBytesConfig
            except ImportError as exc:
                raise AnalyzerUnavailable(f"precision nf4 needs bitsandbytes ({exc}); install it or use bf16") from exc
            # fp16 compute on GPU as the replaced system ran it; CPU kernels have no fast fp16 path
            self._compute_dtype = torch.float16 if on_gpu else torch.bfloat16
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=self._compute_dtype,
            )
        elif s.precision == "int8":
            self._compute_dtype = torch.bfloat16 if on_gpu else torch.float32
        else:
            self._compute_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[s.precision]
        kwargs["dtype"] = self._compute_dtype
        try:
            self._processor = LlavaNextVideoProcessor.from_pretrained(source, local_files_only=s.local_files_only)
            self._model = LlavaNextVideoForConditionalGeneration.from_pretrained(source, **kwargs).eval()
        except OSError as exc:  # missing files, or the hub unreachable when downloads are allowed
            raise AnalyzerUnavailable(f"could not load {s.model}: {str(exc).strip().splitlines()[0][:300]}") from exc
        if s.precision == "int8":
            from analyzers._int8_weights import quantize_linears_int8

            quantize_linears_int8(self._model.model.language_model)
            if on_gpu:
                torch.cuda.empty_cache()  # the bf16 weights just replaced
        if s.json_grammar:
            self._grammar = self._description_grammar()
        self.prepare_decoding()
        if s.warmup:
            self.warm_up()

    def _description_grammar(self):
        from analyzers._json_grammar import JsonGrammar, JsonGrammarUnavailable, eos_token_ids

        eos = eos_token_ids(self._model.generation_config)
        vocab = int(self._model.get_output_embeddings().weight.shape[0])  # the logits' width (past the tokenizer's)
        try:
            return JsonGrammar(self._processor.tokenizer, vocab, description_schema(), eos)
        except JsonGrammarUnavailable as exc:
            raise AnalyzerUnavailable(f"{exc}; install xgrammar or set json_grammar: false") from exc

    def warm_up(self) -> None:
        """Generate on a dummy video, so no request pays for compiling: once alone (a lone request's step) and,
        with batch rows, twice at once (the all-rows step)."""
        dummy = np.full((LLAVA_FRAMES.count, 336, 336, 3), 128, dtype=np.uint8)
        instruction, tokens = describe_instruction(len(dummy)), self.settings.warmup_tokens
        self.generate(dummy, instruction, True, stop_after=tokens, constrained=self._grammar is not None)
        if self._decoder is not None and self._decoder.rows > 1:
            inputs = self.encode(dummy, instruction, True)
            for future in self._decoder.submit_together([inputs, inputs], tokens, tokens):
                future.result()

    def prepare_decoding(self) -> None:
        """Build the static greedy decoder when the settings ask for it (load() calls this; a benchmark that
        changes decode_loop or compile_mode on a loaded model calls it again)."""
        s = self.settings
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None
        if s.decode_loop != "static_greedy":
            return
        from analyzers._static_decode import StaticGreedyDecoder

        # sized once for the longest prompt this replica serves, so the compiled step never sees a new shape
        dummy = np.full((LLAVA_FRAMES.count, 336, 336, 3), 128, dtype=np.uint8)
        described = self._processor(text=self.build_prompt(describe_instruction(len(dummy)), True),
                                    videos=[self.prepare_frames(dummy)], return_tensors="pt")
        longest = int(described["input_ids"].shape[1]) + s.question_tokens + s.max_new_tokens
        self._decoder = StaticGreedyDecoder(self._model, max_cache_len=-(-longest // 64) * 64,
                                            compile_mode=s.compile_mode if self.device.startswith("cuda") else None,
                                            rows=s.batch_rows)

    def build_prompt(self, instruction: str, with_video: bool) -> str:
        content = ([{"type": "video"}] if with_video else []) + [{"type": "text", "text": instruction}]
        if getattr(self._processor, "chat_template", None):
            return self._processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
        return f"USER: {'<video>' + chr(10) if with_video else ''}{instruction} ASSISTANT:"  # the checkpoint's format

    def prepare_frames(self, frames: np.ndarray) -> np.ndarray:
        return pad_to_square(frames) if self.settings.frame_fit == "pad" else frames

    def encode(self, frames: np.ndarray, instruction: str, with_video: bool):
        """The model's inputs for one prompt, on its device."""
        inputs = self._processor(
            text=self.build_prompt(instruction, with_video),
            videos=[self.prepare_frames(frames)] if with_video else None,
            return_tensors="pt",
        ).to(self.device)
        if "pixel_values_videos" in inputs:
            inputs["pixel_values_videos"] = inputs["pixel_values_videos"].to(self._compute_dtype)
        return inputs

    def generate(self, frames: np.ndarray, instruction: str, with_video: bool, stop_after: int | None = None,
                 constrained: bool = False) -> Generation:
        """One generation; `stop_after` ends it early without changing the cache size (used by warm-up);
        `constrained` decodes under the description schema's grammar (min_new_tokens then does not apply)."""
        import torch

        if self._model is None:
            raise AnalyzerUnavailable("video_llava model is not loaded")
        s = self.settings
        started = time.perf_counter()
        inputs = self.encode(frames, instruction, with_video)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        max_new = stop_after or s.max_new_tokens
        if constrained and self._grammar is None:
            raise ValueError("constrained generation needs json_grammar: true")
        min_new = 0 if constrained else min(s.min_new_tokens, max_new)
        if self._decoder is not None:
            reason = self._decoder.unsupported_reason(prompt_tokens, max_new)
            if reason is None:
                prepared = time.perf_counter()
                constraint = self._grammar.constraint() if constrained else None
                new_tokens = self._decoder.generate(inputs, max_new, min_new, constraint)
                return self._finish(new_tokens, prompt_tokens, started, prepared)
            if reason not in self._fallback_reasons:
                self._fallback_reasons.add(reason)
                log.warning("video_llava: generate() instead of the static greedy loop: %s", reason)
        kwargs = {
            "max_new_tokens": s.max_new_tokens,
            "do_sample": s.temperature > 0,
            "pad_token_id": self._processor.tokenizer.pad_token_id,
        }
        if min_new:
            kwargs["min_new_tokens"] = min_new
        if constrained:
            from transformers import LogitsProcessorList

            kwargs["logits_processor"] = LogitsProcessorList([self._grammar.logits_processor()])
        if s.temperature > 0:
            kwargs["temperature"] = s.temperature
        if s.cache_implementation:
            kwargs["cache_implementation"] = s.cache_implementation
            if s.compile_mode:
                from transformers import CompileConfig

                kwargs["compile_config"] = CompileConfig(fullgraph=True, mode=s.compile_mode)
        if stop_after:
            kwargs["stopping_criteria"] = _stop_after(prompt_tokens + stop_after)
        prepared = time.perf_counter()

        def run_generate():
            with torch.inference_mode():
                return self._model.generate(**inputs, **kwargs)

        if self._decoder is not None:  # on the decoder's thread, between its steps: never beside them
            output = self._decoder.call(run_generate)
        else:
            with self._lock:
                output = run_generate()
        return self._finish(output[0, prompt_tokens:], prompt_tokens, started, prepared)

    def _finish(self, new_tokens, prompt_tokens: int, started: float, prepared: float) -> Generation:
        text = self._processor.tokenizer.decode(new_tokens, skip_special_tokens=True).strip()
        finished = time.perf_counter()  # decode() moved the tokens to the CPU, so the GPU work is done
        return Generation(text, prompt_tokens, int(new_tokens.shape[0]), prepared - started, finished - prepared)

    def analyze(self, media, upstream: Mapping[str, BaseModel]) -> VideoLlavaResult:
        frame_set = media.frames(self.needs.frames)
        frames, timestamps = frame_set.frames, frame_set.timestamps
        constrained = self._grammar is not None
        try:
            outcome = describe(lambda text, with_video: self.generate(frames, text, with_video, constrained=constrained),
                               len(frames), constrained=constrained)
        finally:
            self._release_gpu_cache()
        gens = outcome.generations
        return VideoLlavaResult(
            description=outcome.description,
            parse_status=outcome.status,
            parse_error=outcome.error,
            raw_text=gens[0].text,
            repair_raw_text=gens[1].text if len(gens) > 1 else None,
            frames_used=[round(float(t), 3) for t in timestamps],
            json_grammar=constrained,
            attempts=len(gens),
            prompt_tokens=sum(g.prompt_tokens for g in gens),
            generated_tokens=sum(g.generated_tokens for g in gens),
            preprocess_seconds=round(sum(g.preprocess_seconds for g in gens), 4),
            generate_seconds=round(sum(g.generate_seconds for g in gens), 4),
            model=self.model_in_use or self.settings.model,
        )

    def ask(self, media, question: str) -> Answer:
        """Free question about the video, answered by the same model from the same 8 frames."""
        question = question.strip()
        if not question or len(question) > 2000:
            raise ValueError("the question must be 1 to 2000 characters")
        frame_set = media.frames(self.needs.frames)
        try:
            gen = self.generate(frame_set.frames, question, True)
        finally:
            self._release_gpu_cache()
        return Answer(
            question=question,
            answer=gen.text,
            frames_used=[round(float(t), 3) for t in frame_set.timestamps],
            prompt_tokens=gen.prompt_tokens,
            generated_tokens=gen.generated_tokens,
            preprocess_seconds=round(gen.preprocess_seconds, 4),
            generate_seconds=round(gen.generate_seconds, 4),
            model=self.model_in_use or self.settings.model,
        )

    def _release_gpu_cache(self) -> None:
        # the GPU is shared with other groups: give back activation memory between requests (the decoder does it
        # itself when it goes idle: emptying the cache here would stall the other requests' steps)
        if self.device.startswith("cuda") and self._decoder is None:
            import torch

            torch.cuda.empty_cache()


def _stop_after(total_length: int):
    from transformers import StoppingCriteria, StoppingCriteriaList

    class StopAtLength(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            import torch

            done = input_ids.shape[1] >= total_length
            return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopAtLength()])
