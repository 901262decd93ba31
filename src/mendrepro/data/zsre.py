"""zsRE question answering in the KILT format used by the MEND release.

Reads the release's `structured_zeroshot-{train,dev}-new_annotated_final.jsonl` unchanged: fields `id`, `input`,
`output[].answer`, `prediction`, `alternatives`, `filtered_rephrases` (De Cao et al.'s additions to KILT zsRE);
every other field is ignored. As released (eric-mitchell/mend data_classes/zsre.py:27-37), the question itself is
removed from its rephrases, and records left without an alternative or a rephrase are dropped.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any

from mendrepro.data.formats import DataFormatError, iter_jsonl, record_id, require_str, require_str_list


@dataclass(frozen=True)
class ZsreRecord:
    """One zsRE edit example: question, gold answers, the base model's prediction, edit targets, rephrases."""

    id: str
    src: str
    answers: tuple[str, ...]
    prediction: str
    alternatives: tuple[str, ...]
    rephrases: tuple[str, ...]


def _answers(obj: dict[str, Any], path: str | os.PathLike[str], line: int) -> tuple[str, ...]:
    output = obj.get("output")
    if not isinstance(output, list):
        raise DataFormatError(path, "field 'output' must be a list of {'answer': ...} objects", line=line)
    answers = []
    for entry in output:
        if not isinstance(entry, dict):
            raise DataFormatError(path, "field 'output' must be a list of objects", line=line)
        if "answer" in entry:  # KILT output entries may carry only provenance
            if not isinstance(entry["answer"], str):
                raise DataFormatError(path, "'output[].answer' must be a string", line=line)
            answers.append(entry["answer"])
    if not answers:
        raise DataFormatError(path, "field 'output' has no 'answer'", line=line)
    return tuple(answers)


# The fields De Cao et al. added to KILT zsRE, which the release's loader reads (data_classes/zsre.py:28).
RELEASE_FIELDS = ("prediction", "alternatives", "filtered_rephrases")
_RELEASE_FILES = (
    "the MEND release's zsre/structured_zeroshot-{train,dev}-new_annotated_final.jsonl (KILT zsRE with the base "
    "model's prediction, alternatives and filtered rephrases), from its data folder "
    "https://drive.google.com/drive/folders/1jAqBE45jEKR-5pMkwxlVQ0V8eKxqWbxA"
)


def load_zsre(
    path: str | os.PathLike[str], max_records: int | None = None, *, drop_input_rephrase: bool = True
) -> list[ZsreRecord]:
    """Load zsRE records as the release does: the question removed from its rephrases (``drop_input_rephrase``),
    then only records with >= 1 alternative and >= 1 rephrase kept."""
    records: list[ZsreRecord] = []
    for line, obj in iter_jsonl(path):
        if max_records is not None and len(records) >= max_records:
            break
        if not any(k in obj for k in RELEASE_FIELDS):
            raise DataFormatError(
                path,
                f"a plain KILT zsRE record (no {', '.join(RELEASE_FIELDS)}); the paper needs {_RELEASE_FILES}",
                line=line,
            )
        src = require_str(obj, "input", path, line)
        alternatives = require_str_list(obj, "alternatives", path, line)
        rephrases = list(require_str_list(obj, "filtered_rephrases", path, line))
        if drop_input_rephrase and src in rephrases:
            rephrases.remove(src)  # the first occurrence only, as list.remove in data_classes/zsre.py:30
        if not alternatives or not rephrases:
            continue
        records.append(
            ZsreRecord(
                id=record_id(obj, path, line),
                src=src,
                answers=_answers(obj, path, line),
                prediction=require_str(obj, "prediction", path, line),
                alternatives=alternatives,
                rephrases=tuple(rephrases),
            )
        )
    return records


def pick_target(record: ZsreRecord, rng: random.Random) -> str:
    """The edit target, as in the release: a uniformly random alternative answer."""
    return rng.choice(record.alternatives)
