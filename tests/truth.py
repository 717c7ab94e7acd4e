"""Ground truth readers and scoring shared by tests and benchmarks."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from tests.synth import SHARED_MEDIA

ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def _two_digits(n: int) -> list[str]:
    if n < 20:
        return [ONES[n]]
    return [TENS[n // 10]] + ([ONES[n % 10]] if n % 10 else [])


def _spoken_number(digits: str) -> list[str]:
    """How a number is said in the references: years as two pairs (1813: eighteen thirteen), else digit by digit."""
    if len(digits) == 4 and 1100 <= int(digits) <= 1999 and digits[2] != "0":
        return _two_digits(int(digits[:2])) + _two_digits(int(digits[2:]))
    if len(digits) == 2 and digits[0] != "0":
        return _two_digits(int(digits))
    return [ONES[int(d)] for d in digits]


def normalize_words(text: str) -> list[str]:
    """Lower case, no punctuation, numbers as spoken, 'oh' as zero, 'mr' as mister; for word error rates."""
    text = re.sub(r"\(\d+\)", "", text.lower())  # pocketsphinx pronunciation variants: was(2)
    text = re.sub(r"\bmr\b\.?", "mister", text)
    text = re.sub(r"(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])", " ", text)  # f2 -> f 2
    text = re.sub(r"[^a-z0-9' ]+", " ", text.replace("-", " "))
    words: list[str] = []
    for w in text.split():
        if w == "'":
            continue
        words.extend(_spoken_number(w) if w.isdigit() else [w])
    return ["zero" if w == "oh" else w for w in words]


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
