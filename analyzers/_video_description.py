"""The description a video-LLM is asked to write, and how its text becomes a validated `VideoDescription`.

Models wrap JSON in prose or code fences, and sometimes break it, so parsing is tolerant
(`parse_description`), and invalid output gets exactly one repair generation that sees the broken text and
the error (`describe`). If that fails too the caller keeps the raw text: a report never holds a description
the model did not write. Everything here is a pure function of a `generate_fn`, so it is tested without a model.

Decoded under `description_schema()`'s grammar (analyzers/_json_grammar.py), the text is always valid JSON of the
schema unless the token budget cut it off; a repair cannot bring back what was cut, so `describe(...,
constrained=True)` asks once and says so instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field, field_validator


class VideoDescription(BaseModel):
    summary: str = Field(..., min_length=1, description="Two or three sentences on what happens.")
    setting: str = ""
    people_and_actions: list[str] = Field(default_factory=list)
    objects_and_products: list[str] = Field(default_factory=list)
    on_screen_text: list[str] = Field(default_factory=list)
    mood: str = ""
    hook: str = Field("", description="What happens in the first seconds to hold the viewer.")
    call_to_action: str | None = None
    topics: list[str] = Field(default_factory=list)
    hashtags: list[str] = Field(default_factory=list)

    @field_validator("people_and_actions", "objects_and_products", "on_screen_text", "topics", "hashtags", mode="before")
    @classmethod
    def _listify(cls, value):  # a lone string or null where a list belongs is the model's shorthand, not an error
        if value is None:
            return []
        return [value] if isinstance(value, str) else value

    @field_validator("setting", "mood", "hook", mode="before")
    @classmethod
    def _null_to_empty(cls, value):
        return "" if value is None else value


DESCRIPTION_KEYS = tuple(VideoDescription.model_fields)

# Bounds the grammar adds to the schema (VideoDescription itself takes any length): greedy decoding of a small
# model can repeat a list item or a phrase until the token budget runs out; a bound ends the field instead.
GRAMMAR_MAX_ITEMS = 10
GRAMMAR_MAX_CHARS = {"summary": 600, "item": 120, "other": 200}


def description_schema() -> dict:
    """The JSON schema a constrained description follows: VideoDescription's keys, all required and in order,
    lists of at most GRAMMAR_MAX_ITEMS strings, strings of bounded length."""
    from analyzers._json_grammar import required_everywhere  # pure JSON handling, no model library

    schema = required_everywhere(VideoDescription.model_json_schema())
    for name, prop in schema["properties"].items():
        if prop.get("type") == "array":
            prop["maxItems"] = GRAMMAR_MAX_ITEMS
            prop["items"] = {"type": "string", "maxLength": GRAMMAR_MAX_CHARS["item"]}
        for option in [prop, *prop.get("anyOf", [])]:
            if option.get("type") == "string":
                option["maxLength"] = GRAMMAR_MAX_CHARS.get(name, GRAMMAR_MAX_CHARS["other"])
    return schema


JSON_SHAPE = (
    '{"summary": "2-3 sentences on what happens", "setting": "where it takes place", '
    '"people_and_actions": ["who is visible and what they do"], "objects_and_products": ["notable objects, products, brands"], '
    '"on_screen_text": ["captions or overlay text you can read"], "mood": "overall tone", '
    '"hook": "what happens in the first seconds", "call_to_action": "what viewers are asked to do, or null", '
    '"topics": ["main topics"], "hashtags": ["#fitting", "#hashtags"]}'
)


def describe_instruction(frame_count: int) -> str:
    return (
        f"These are {frame_count} frames sampled evenly from a short social media video. "
        f"Describe the video as one JSON object with exactly these keys:\n{JSON_SHAPE}\n"
        "Use empty lists when nothing applies and do not invent text you cannot read. Reply with the JSON only."
    )


def repair_instruction(broken: str, error: str) -> str:
    return (
        f"The text below should be one JSON object with the keys {', '.join(DESCRIPTION_KEYS)}, but it is invalid: "
        f"{error}\nRewrite it as one valid JSON object with those keys, keeping its content. Reply with the JSON only.\n\n"
        f"Text:\n{broken[:4000]}"
    )


class DescriptionParseError(ValueError):
    """The generated text holds no JSON object that validates as a VideoDescription."""


def extract_json_object(text: str) -> dict:
    """The first JSON object in `text`, ignoring prose and ``` fences around it. Raw control characters (a literal
    newline or tab) inside strings are accepted: strict JSON forbids them, models write them, and xgrammar's
    length-bounded strings let them through (its plain strings do not), so they are not worth a failed parse."""
    decoder = json.JSONDecoder(strict=False)
    first_error: str | None = None
    start = text.find("{")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            first_error = first_error or f"{exc.msg} at character {exc.pos}"
        else:
            if isinstance(value, dict):
                return value
        start = text.find("{", start + 1)
    raise DescriptionParseError(f"invalid JSON: {first_error}" if first_error else "no JSON object in the text")


def parse_description(text: str) -> VideoDescription:
    data = extract_json_object(text)
    try:
        return VideoDescription.model_validate(data)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
        raise DescriptionParseError(f"JSON does not match the schema: {problems}") from None


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    generated_tokens: int
    preprocess_seconds: float = 0.0
    generate_seconds: float = 0.0


GenerateFn = Callable[[str, bool], Generation]  # (instruction, with_video) -> Generation


@dataclass
class DescribeOutcome:
    description: VideoDescription | None
    status: Literal["ok", "repaired", "failed"]
    error: str | None
    generations: list[Generation] = field(default_factory=list)


def describe(generate_fn: GenerateFn, frame_count: int, constrained: bool = False) -> DescribeOutcome:
    """Ask for the description; on invalid output ask once to repair it (text only: fixing syntax needs no pixels).

    `constrained`: generate_fn decodes under description_schema()'s grammar, so invalid output can only be output
    the token budget cut short; it is reported as such, without a repair."""
    first = generate_fn(describe_instruction(frame_count), True)
    try:
        return DescribeOutcome(parse_description(first.text), "ok", None, [first])
    except DescriptionParseError as exc:
        error = str(exc)
    if constrained:
        return DescribeOutcome(None, "failed", f"{error}: the JSON was cut off after {first.generated_tokens} new tokens "
                               "(decoded under the schema's grammar, so only the token budget can leave it "
                               "incomplete; raise max_new_tokens)", [first])
    second = generate_fn(repair_instruction(first.text, error), False)
    try:
        return DescribeOutcome(parse_description(second.text), "repaired", None, [first, second])
    except DescriptionParseError as exc:
        return DescribeOutcome(None, "failed", f"{error}; after repair: {exc}", [first, second])
