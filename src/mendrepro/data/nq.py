"""Natural Questions locality data as the MEND release stores it.

The release's `nq/train.json` and `nq/validation.json` are `{"questions": [...], "answers": [...]}` with one answer
string per question, the shortest short answer (eric-mitchell/mend data_classes/nq.py:34-49). A list of acceptable
answers per question is also read (its first one is taken).
"""

from __future__ import annotations

import json
import os

from mendrepro.data.formats import DataFormatError


def load_nq(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Return (question, first acceptable answer) pairs."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataFormatError(path, f"invalid JSON ({e.msg})", line=e.lineno) from e
    if not isinstance(data, dict) or "questions" not in data or "answers" not in data:
        raise DataFormatError(path, 'expected a JSON object with keys "questions" and "answers"')
    questions, answers = data["questions"], data["answers"]
    if not isinstance(questions, list) or not isinstance(answers, list):
        raise DataFormatError(path, '"questions" and "answers" must be lists')
    if len(questions) != len(answers):
        raise DataFormatError(path, f'"questions" has {len(questions)} entries but "answers" has {len(answers)}')
    pairs = []
    for i, (q, a) in enumerate(zip(questions, answers, strict=True)):
        if not isinstance(q, str):
            raise DataFormatError(path, "question must be a string", record=i)
        if isinstance(a, str):  # the release's layout
            a = [a]
        if not isinstance(a, list) or not a or not isinstance(a[0], str):
            raise DataFormatError(path, "an answer must be a string or a non-empty list of strings", record=i)
        pairs.append((q, a[0]))
    return pairs
