"""Wikitext-103 raw text (locality data and edit passages) and the self-sampled Wikitext edit targets.

`self_sample/{train,valid}.json` (the release's Wikitext edits) is a JSON list of
`{"original": passage, "completions": [passage + sampled continuation, ...], "n_tokens": 10}`.
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


def load_self_sample(path: str | os.PathLike[str]) -> list[SelfSample]:
    """Read a self_sample json (a list of records); the first completion of each record is the edit."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataFormatError(path, f"invalid JSON ({e.msg})", line=e.lineno) from e
    if not isinstance(data, list):
        raise DataFormatError(path, f"expected a JSON list of records, got {type(data).__name__}")
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


def write_self_sample(path: str | os.PathLike[str], samples: Iterable[SelfSample]) -> None:
    """Write samples in the release's self_sample layout, atomically."""
    rows = [{"original": s.original, "completions": [s.completion], "n_tokens": s.n_tokens} for s in samples]
    write_json_atomic(path, rows, indent=None)
