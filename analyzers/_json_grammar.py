"""Schema-constrained decoding: at every step the model may only pick a token that keeps its text a prefix of JSON
that validates against a schema, so a finished generation always parses.

Why: a 7B video-LLM asked for JSON sometimes writes prose, trailing commas or unclosed strings, and the repair then
costs a second full generation (on one H100 that was 1.2 of the 3.5 s a request took, BENCHMARKS.md). Under the
grammar the first generation is valid JSON of the schema; its text can only be incomplete when `max_new_tokens`
cuts it off, and then the caller says so.

The grammar work is xgrammar's (the structured-output engine of vLLM, SGLang and TensorRT-LLM): it compiles the
schema against the tokenizer once, and per step a matcher fills a bitmask of the allowed tokens (microseconds on
the CPU). The mask is applied to the logits on the model's device before argmax.

The JSON is compact (no free whitespace between tokens of structure) and every key of the schema is required, in
its order: a model under a grammar that allows unbounded whitespace or optional keys can spend its whole token
budget on spaces, and a random-weight model (tests, benchmarks) does exactly that.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where masks are made, so the schema helpers load without it
    import torch


def eos_token_ids(generation_config) -> list[int]:
    """The end-of-sequence ids of a model's generation_config (an int, a list or None), as a list."""
    eos = generation_config.eos_token_id
    return [] if eos is None else [eos] if isinstance(eos, int) else list(eos)


def new_bitmask(rows: int, vocab: int, pin_memory: bool = False) -> torch.Tensor:
    """An int32 CPU bitmask of `rows` x `vocab` tokens, every token allowed (xgrammar's layout: bit j of word i is
    token 32 i + j). `pin_memory` lets a copy to the GPU run without waiting."""
    import torch

    return torch.full((rows, -(-vocab // 32)), -1, dtype=torch.int32, pin_memory=pin_memory)


class JsonGrammarUnavailable(RuntimeError):
    """xgrammar is missing or cannot compile the schema for this tokenizer."""


class TokenConstraint:
    """One generation's grammar state: which tokens may come next, and what was written so far."""

    def __init__(self, matcher) -> None:
        self._matcher = matcher

    @property
    def finished(self) -> bool:
        """The JSON is complete and a stop token was accepted: nothing more may be written."""
        return self._matcher.is_terminated()

    def fill_mask(self, bitmask: torch.Tensor, row: int) -> None:
        """Write the allowed next tokens into row `row` of an int32 CPU bitmask (bit set = allowed)."""
        if self.finished:  # whatever comes after the stop token is cut off; leave every token allowed
            bitmask[row].fill_(-1)
        else:
            self._matcher.fill_next_token_bitmask(bitmask, row)

    def accept(self, token: int) -> None:
        if not self.finished and not self._matcher.accept_token(token):
            # only possible when the mask was not applied to the logits this token came from
            raise RuntimeError(f"token {token} breaks the JSON grammar")


class JsonGrammar:
    """A JSON schema compiled against one tokenizer; `constraint()` makes the state of one generation."""

    def __init__(self, tokenizer, vocab_size: int, schema: dict[str, Any], stop_token_ids: Sequence[int]) -> None:
        try:
            import xgrammar as xgr
        except ImportError as exc:
            raise JsonGrammarUnavailable(f"constrained JSON decoding needs xgrammar ({exc})") from exc
        self._xgr = xgr
        info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size, stop_token_ids=list(stop_token_ids))
        try:
            self._compiled = xgr.GrammarCompiler(info).compile_json_schema(
                json.dumps(schema), any_whitespace=False, strict_mode=True
            )
        except Exception as exc:  # xgrammar raises its own error types for unsupported schema features
            raise JsonGrammarUnavailable(f"xgrammar cannot compile the schema: {exc}") from exc

    @property
    def compiled(self):
        """xgrammar's CompiledGrammar (tests compare against xgrammar's own logits processor with it)."""
        return self._compiled

    def constraint(self) -> TokenConstraint:
        return TokenConstraint(self._xgr.GrammarMatcher(self._compiled))

    def logits_processor(self):
        """For transformers' `generate()`, one generation of one sequence. Ours rather than xgrammar's (which masks
        CUDA logits with a Triton kernel compiled at first use): the same mask_logits as the static loop."""
        from transformers import LogitsProcessor

        constraint = self.constraint()

        class GrammarLogitsProcessor(LogitsProcessor):
            started = False

            def __call__(self, input_ids, scores):
                if self.started:  # the token sampled from the previous call's scores
                    constraint.accept(int(input_ids[0, -1]))
                self.started = True
                bitmask = new_bitmask(1, scores.shape[-1])
                constraint.fill_mask(bitmask, 0)
                return mask_logits(scores, bitmask.to(scores.device))

        return GrammarLogitsProcessor()


def mask_logits(logits: torch.Tensor, bitmask: torch.Tensor) -> torch.Tensor:
    """`logits` (rows, vocab) with every token whose bit is clear in `bitmask` (rows, ceil(vocab / 32), int32, same
    device) set to -inf. Plain tensor operations, so it runs on any device and inside any stream without a kernel
    of its own to build."""
    import torch

    vocab = logits.shape[-1]
    shifts = torch.arange(32, dtype=torch.int32, device=bitmask.device)
    allowed = ((bitmask[:, :, None] >> shifts) & 1).flatten(1)[:, :vocab].bool()
    return logits.masked_fill(~allowed, float("-inf"))


def required_everywhere(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with every object's properties required (pydantic leaves fields with defaults optional), so the model
    writes every key, in order, and cannot skip or end early by omission."""
    schema = json.loads(json.dumps(schema))

    def visit(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node:
                node["required"] = list(node["properties"])
                node["additionalProperties"] = False
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    return schema
