"""OpenWebText-10k: the locality text of the GPT-Neo and GPT-J Wikitext edits (the paper's Table 3).

The file is JSON lines with a ``text`` field per document, as the HF dataset ``stas/openwebtext-10k`` exports it
(``dataset.to_json(path)``); other fields are ignored. Documents are truncated to the model's context (200 tokens
in the release) when batched.
"""

from __future__ import annotations

import os

from mendrepro.data.formats import iter_jsonl, require_str


def load_openwebtext(path: str | os.PathLike[str], min_words: int = 1, ascii_only: bool = True) -> list[str]:
    """The documents of an OpenWebText JSON-lines file with >= ``min_words`` words (and all-ASCII if asked)."""
    docs = []
    for line, obj in iter_jsonl(path):
        text = " ".join(require_str(obj, "text", path, line).split())
        if len(text.split()) < min_words or (ascii_only and not text.isascii()):
            continue
        docs.append(text)
    return docs
