"""Build a LLaVA-NeXT-Video checkpoint with random weights, offline, and save it like a hub snapshot.

Tests use `build_tiny_llava` (a CLIP tower of hidden 32, a 2-layer Llama of hidden 64) to run the production
loading and generation code on the CPU in seconds; the GPU benchmark uses the same tokenizer/processor
builders with the real 7B configuration. The weights are random: whatever such a model writes is noise and
must never be reported as analysis.

Why a tokenizer is trained here: no tokenizer can be downloaded on these machines, and the processor needs a
real one that knows `<video>`/`<image>` at the ids the model config expects. A byte-level BPE can encode any
text; ids between the trained vocabulary and the special tokens are filled with unreachable placeholders so
that `<video>` and `<image>` land exactly on `video_token_index`/`image_token_index`.
"""

from __future__ import annotations

import json
from pathlib import Path

# The chat template of llava-hf/LLaVA-NeXT-Video-7B-hf (Vicuna style): "USER: <video>\n<text> ASSISTANT:".
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' ' }}{% endfor %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

_CORPUS = [
    "A woman in a red jacket talks to the camera in a bright kitchen and holds up a jar of coffee.",
    "Text on screen says SALE 50% OFF. Follow for more tips! #coffee #morning #recipe",
    "Describe this video. Answer only with a JSON object with the keys summary, setting, people_and_actions,",
    "objects_and_products, on_screen_text, mood, hook, call_to_action, topics, hashtags.",
    '{"summary": "A man rides a bike through a park.", "setting": "outdoor park", "mood": "upbeat"}',
    "The first seconds show a close-up of pancakes; then a person pours syrup and smiles.",
    "USER: ASSISTANT: What happens in the video? Who is in it, and what do they say or show?",
    "0123456789 [] {} () , . : ; ' \" ! ? - _ / \\ @ # $ % & * + = < > | ~ `",
]


def stdlib_prose() -> list[str]:
    """English text that every Python ships: the docstrings of some standard-library modules (about 0.7 MB)."""
    import ast
    import importlib
    import inspect

    texts = []
    for name in ("argparse", "collections", "json", "typing", "email.message", "http.client", "unittest.case",
                 "logging", "subprocess", "pathlib", "datetime", "decimal", "inspect", "textwrap", "difflib", "csv",
                 "zipfile", "tarfile", "functools", "os", "re", "socket", "threading", "random", "statistics",
                 "calendar", "shutil", "tempfile", "pickle", "doctest", "configparser", "optparse", "smtplib",
                 "imaplib", "heapq", "enum", "dataclasses", "contextlib", "traceback", "warnings", "ast", "codecs",
                 "locale", "ssl", "queue", "uuid", "hashlib", "base64", "struct", "weakref", "copy", "types", "math"):
        try:
            tree = ast.parse(inspect.getsource(importlib.import_module(name)))
        except (ImportError, OSError, TypeError, SyntaxError):
            continue
        texts += [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and len(n.value) > 40]
    return texts


def build_tokenizer(base_vocab: int, seed_vocab: int = 400, english: bool = False):
    """A byte-level BPE fast tokenizer: `<unk>`, `<s>`, `</s>` at 0-2 (as Llama), trained merges, placeholders up to
    `base_vocab`, then `<video>` = base_vocab, `<image>` = base_vocab + 1, `<pad>` = base_vocab + 2.

    `english` trains on standard-library docstrings too, so English prompts split into about as many tokens as
    with Llama's tokenizer (the describe prompt: ~200 vs ~175) and prompt lengths in benchmarks are realistic."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=min(seed_vocab, base_vocab),
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 4 + (stdlib_prose() if english else []), trainer=trainer)

    spec = json.loads(tokenizer.to_str())
    vocab = spec["model"]["vocab"]
    if len(vocab) > base_vocab:
        raise ValueError(f"trained vocabulary ({len(vocab)}) is larger than base_vocab={base_vocab}")
    for i in range(len(vocab), base_vocab):
        vocab[f"<unused{i}>"] = i
    tokenizer = Tokenizer.from_str(json.dumps(spec))
    tokenizer.add_special_tokens(["<video>", "<image>", "<pad>"])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )
    assert fast.convert_tokens_to_ids("<video>") == base_vocab and fast.convert_tokens_to_ids("<image>") == base_vocab + 1
    return fast


def build_processor(tokenizer, frame_size: int, patch_size: int):
    """LlavaNextVideoProcessor whose video and image processors resize/crop to `frame_size` (336 in the real model)."""
    from transformers import LlavaNextImageProcessor, LlavaNextVideoProcessor, LlavaNextVideoVideoProcessor

    square = {"height": frame_size, "width": frame_size}
    video_processor = LlavaNextVideoVideoProcessor(size={"shortest_edge": frame_size}, crop_size=square)
    image_processor = LlavaNextImageProcessor(
        size={"shortest_edge": frame_size},
        crop_size=square,
        image_grid_pinpoints=[[frame_size, 2 * frame_size], [2 * frame_size, frame_size], [2 * frame_size, 2 * frame_size]],
    )
    return LlavaNextVideoProcessor(
        video_processor=video_processor,
        image_processor=image_processor,
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
    )


def llava_config(*, vocab_size: int, base_vocab: int, text: dict, vision: dict):
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaNextVideoConfig

    return LlavaNextVideoConfig(
        vision_config=CLIPVisionConfig(**vision),
        text_config=LlamaConfig(vocab_size=vocab_size, pad_token_id=0, bos_token_id=1, eos_token_id=2, **text),
        video_token_index=base_vocab,
        image_token_index=base_vocab + 1,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        spatial_pool_mode="average",
        spatial_pool_stride=2,  # the processor counts video tokens as patches // 4, i.e. stride 2
        projector_hidden_act="gelu",
        tie_word_embeddings=False,
        image_grid_pinpoints=[[vision["image_size"], 2 * vision["image_size"]]],
    )


TINY_FRAME_SIZE = 64
TINY_PATCH = 8
TINY_BASE_VOCAB = 512
TINY_VOCAB = 576  # padded past the special tokens, as the real 32064 is past 32002


def tiny_config():
    return llava_config(
        vocab_size=TINY_VOCAB,
        base_vocab=TINY_BASE_VOCAB,
        text=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=4, max_position_embeddings=4096),
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                    patch_size=TINY_PATCH, image_size=TINY_FRAME_SIZE, projection_dim=32),
    )


def save_random_model(config, processor, out_dir: Path, *, dtype=None, device: str = "cpu", seed: int = 0) -> Path:
    """Instantiate `config` with random weights (directly on `device`, in `dtype`) and save it with the processor."""
    import torch
    from transformers import GenerationConfig, LlavaNextVideoForConditionalGeneration

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    with torch.device(device):
        model = LlavaNextVideoForConditionalGeneration._from_config(config, dtype=dtype or torch.float32)
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=0)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    del model
    return out_dir


def build_tiny_llava(out_dir: Path, seed: int = 0) -> Path:
    """A complete tiny checkpoint (config, safetensors, tokenizer, processor, chat template) in `out_dir`."""
    tokenizer = build_tokenizer(TINY_BASE_VOCAB)
    processor = build_processor(tokenizer, TINY_FRAME_SIZE, TINY_PATCH)
    return save_random_model(tiny_config(), processor, out_dir, seed=seed)


if __name__ == "__main__":
    import sys

    print(build_tiny_llava(Path(sys.argv[1] if len(sys.argv) > 1 else "var/tiny_llava")))
