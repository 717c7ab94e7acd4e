"""The description's JSON grammar (analyzers/_json_grammar.py) without a model: whatever a model's logits say, text
decoded under the mask is a description that parses, within the schema's bounds.

The "model" here is random logits (several seeds), which is harder than any trained model: it never wants to
close a string or a list, so only the grammar's bounds can end the JSON."""

from __future__ import annotations

import json

import pytest
import torch

from analyzers._json_grammar import JsonGrammar, mask_logits, required_everywhere
from analyzers._video_description import (
    DESCRIPTION_KEYS,
    GRAMMAR_MAX_CHARS,
    GRAMMAR_MAX_ITEMS,
    description_schema,
    parse_description,
)
from tests.tiny_llava import TINY_BASE_VOCAB, TINY_VOCAB, build_tokenizer

EOS = 2


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(TINY_BASE_VOCAB)


@pytest.fixture(scope="module")
def grammar(tokenizer):
    return JsonGrammar(tokenizer, TINY_VOCAB, description_schema(), [EOS])


def _decode_random(grammar, seed: int, limit: int = 4000) -> list[int]:
    """Greedy decoding of random logits under the grammar, until it accepts the stop token."""
    generator = torch.Generator().manual_seed(seed)
    constraint = grammar.constraint()
    bitmask = torch.full((1, -(-TINY_VOCAB // 32)), -1, dtype=torch.int32)
    tokens = []
    while not constraint.finished:
        assert len(tokens) < limit, "the grammar did not end the JSON"
        constraint.fill_mask(bitmask, 0)
        token = int(mask_logits(torch.randn(1, TINY_VOCAB, generator=generator), bitmask).argmax())
        constraint.accept(token)
        tokens.append(token)
    return tokens


@pytest.mark.parametrize("seed", range(4))
def test_random_logits_under_the_grammar_write_a_complete_description(grammar, tokenizer, seed):
    tokens = _decode_random(grammar, seed)
    assert tokens[-1] == EOS and EOS not in tokens[:-1]  # ends with the stop token, and only there
    text = tokenizer.decode(tokens, skip_special_tokens=True)
    description = parse_description(text)  # would raise on invalid JSON or a schema mismatch
    data = json.loads(text, strict=False)
    assert list(data) == list(DESCRIPTION_KEYS)  # every key, in the schema's order
    assert text.startswith('{"summary": "')  # compact: no whitespace for a model to spend its budget on
    assert 1 <= len(description.summary) <= GRAMMAR_MAX_CHARS["summary"]
    for key in ("people_and_actions", "objects_and_products", "on_screen_text", "topics", "hashtags"):
        items = getattr(description, key)
        assert len(items) <= GRAMMAR_MAX_ITEMS and all(len(item) <= GRAMMAR_MAX_CHARS["item"] for item in items)


def test_a_token_outside_the_grammar_is_refused(grammar, tokenizer):
    constraint = grammar.constraint()
    prose = tokenizer.encode("Sure", add_special_tokens=False)[0]
    with pytest.raises(RuntimeError, match="breaks the JSON grammar"):
        constraint.accept(prose)


def test_mask_logits_matches_xgrammar_on_every_token():
    import xgrammar as xgr

    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 100, generator=generator)
    bitmask = torch.randint(-(2**31), 2**31 - 1, (3, 4), dtype=torch.int32, generator=generator)
    expected = logits.clone()
    xgr.apply_token_bitmask_inplace(expected, bitmask)
    assert torch.equal(mask_logits(logits, bitmask), expected)


def test_every_object_is_closed_and_fully_required():
    schema = required_everywhere({"type": "object", "properties": {
        "a": {"type": "string", "default": ""},
        "b": {"type": "object", "properties": {"c": {"type": "integer", "default": 0}}},
    }})
    assert schema["required"] == ["a", "b"] and schema["additionalProperties"] is False
    assert schema["properties"]["b"]["required"] == ["c"] and schema["properties"]["b"]["additionalProperties"] is False
    described = description_schema()
    assert described["required"] == list(DESCRIPTION_KEYS)
    assert described["properties"]["hashtags"]["maxItems"] == GRAMMAR_MAX_ITEMS
    assert {"type": "null"} in described["properties"]["call_to_action"]["anyOf"]
