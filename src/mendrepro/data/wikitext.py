"""Wikitext-103 raw text (locality data and edit passages) and the self-sampled Wikitext edit targets.

`self_sample/{train,valid}.json` (the release's Wikitext edits) is one JSON object of columns,
`{"original": [passage, ...], "completions": [passage + sampled continuation, ...], "n_tokens": 10}`, the i-th
completion belonging to the i-th passage (eric-mitchell/mend data_classes/wiki.py:41-50, 73, 104). A JSON list of
per-edit records `{"original": passage, "completions": [completion, ...], "n_tokens": 10}` is also read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass

from mendrepro.data.formats import DataFormatError, write_json_atomic


def _is_heading(line: str) -> bool:
    # Wikitext-103 headings look like " = Title = " or " = = Section = = ".
    return len(line) >= 2 and line.startswith("=") and line.endswith("=")


def load_wikitext_raw(path: str | os.PathLike[str], min_words: int = 50, ascii_only: bool = True) -> list[str]:
    """Paragraph lines of a wikitext-*-raw file with >= `min_words` words (and all-ASCII if asked).

    This is the release's filter; headings and blank lines are dropped and lines are stripped.
    """
    paragraphs = []
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or _is_heading(line):
                continue
            if len(line.split()) < min_words or (ascii_only and not line.isascii()):
                continue
            paragraphs.append(line)
    return paragraphs


@dataclass(frozen=True)
class SelfSample:
    """A Wikitext edit: the passage, the passage followed by the model's sampled continuation, its length."""

    original: str
    completion: str
    n_tokens: int


def _self_sample_columns(path: str | os.PathLike[str], data: dict) -> list[SelfSample]:
    original, completions, n_tokens = data.get("original"), data.get("completions"), data.get("n_tokens")
    if not isinstance(original, list) or not all(isinstance(x, str) for x in original):
        raise DataFormatError(path, "column 'original' must be a list of strings")
    if not isinstance(completions, list) or not all(isinstance(x, str) for x in completions):
        raise DataFormatError(path, "column 'completions' must be a list of strings")
    if len(original) != len(completions):
        raise DataFormatError(
            path, f"column 'original' has {len(original)} entries but 'completions' has {len(completions)}"
        )
    if isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or n_tokens < 1:
        raise DataFormatError(path, "field 'n_tokens' must be a positive integer")
    return [SelfSample(o, c, n_tokens) for o, c in zip(original, completions, strict=True)]


def _self_sample_records(path: str | os.PathLike[str], data: list) -> list[SelfSample]:
    samples = []
    for i, rec in enumerate(data):
        if not isinstance(rec, dict):
            raise DataFormatError(path, "expected an object", record=i)
        original, completions, n_tokens = rec.get("original"), rec.get("completions"), rec.get("n_tokens")
        if not isinstance(original, str):
            raise DataFormatError(path, "field 'original' must be a string", record=i)
        if not isinstance(completions, list) or not completions or not isinstance(completions[0], str):
            raise DataFormatError(path, "field 'completions' must be a non-empty list of strings", record=i)
        if isinstance(n_tokens, bool) or not isinstance(n_tokens, int) or n_tokens < 1:
            raise DataFormatError(path, "field 'n_tokens' must be a positive integer", record=i)
        samples.append(SelfSample(original, completions[0], n_tokens))
    return samples


def load_self_sample(path: str | os.PathLike[str]) -> list[SelfSample]:
    """Read a self_sample json: the release's object of columns, or a list of records (first completion each)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataFormatError(path, f"invalid JSON ({e.msg})", line=e.lineno) from e
    if isinstance(data, dict):
        return _self_sample_columns(path, data)
    if isinstance(data, list):
        return _self_sample_records(path, data)
    raise DataFormatError(
        path,
        f'expected the object {{"original": [...], "completions": [...], "n_tokens": N}}, got {type(data).__name__}',
    )


def write_self_sample(path: str | os.PathLike[str], samples: Iterable[SelfSample]) -> None:
    """Write samples in the release's self_sample layout (one object of columns), atomically."""
    samples = list(samples)
    lengths = sorted({s.n_tokens for s in samples})
    if len(lengths) != 1:
        raise ValueError(f"{path}: the release's layout has one n_tokens per file, the samples have {lengths}")
    columns = {
        "original": [s.original for s in samples],
        "completions": [s.completion for s in samples],
        "n_tokens": lengths[0],
    }
    write_json_atomic(path, columns, indent=None)
