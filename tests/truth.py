"""Ground truth readers and scoring shared by tests and benchmarks."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from tests.synth import SHARED_MEDIA

NUMBER_WORDS = {"13": "thirteen", "18": "eighteen"}


def normalize_words(text: str) -> list[str]:
    text = re.sub(r"\(\d+\)", "", text.lower())  # pocketsphinx pronunciation variants: was(2)
    text = re.sub(r"[^a-z0-9' ]+", " ", text.replace("-", " "))
    return [NUMBER_WORDS.get(w, w) for w in text.split() if w != "'"]


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Levenshtein distance over normalized words / reference length."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(len(ref), 1)


def transcripts() -> dict[str, str]:
    with (SHARED_MEDIA / "truth" / "transcripts.tsv").open() as f:
        return {row["file"]: row["transcript"] for row in csv.DictReader(f, delimiter="\t")}


def truth_words(name: str) -> list[tuple[float, float, str]]:
    """(start, end, word) from a pocketsphinx words.json, silences and fillers dropped."""
    data = json.loads((SHARED_MEDIA / "truth" / f"{name}.words.json").read_text())
    words = []
    for w in data["w"]:
        token = re.sub(r"\(\d+\)", "", w["t"])
        if token.startswith("<") or token.startswith("[") or token.startswith("+"):
            continue
        words.append((float(w["b"]), float(w["b"]) + float(w["d"]), token))
    return words


def shared(path: str) -> Path:
    return SHARED_MEDIA / path
