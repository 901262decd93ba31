"""zsRE question answering in the KILT format used by the MEND release.

Reads `structured_zeroshot-{train,dev}-new_annotated_final.jsonl` unchanged: fields `id`, `input`,
`output[].answer`, `prediction`, `alternatives`, `filtered_rephrases`; every other field is ignored.
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


def load_zsre(path: str | os.PathLike[str], max_records: int | None = None) -> list[ZsreRecord]:
    """Load zsRE records, keeping (as the release does) those with >= 1 alternative and >= 1 rephrase."""
    records: list[ZsreRecord] = []
    for line, obj in iter_jsonl(path):
        if max_records is not None and len(records) >= max_records:
            break
        alternatives = require_str_list(obj, "alternatives", path, line)
        rephrases = require_str_list(obj, "filtered_rephrases", path, line)
        if not alternatives or not rephrases:
            continue
        records.append(
            ZsreRecord(
                id=record_id(obj, path, line),
                src=require_str(obj, "input", path, line),
                answers=_answers(obj, path, line),
                prediction=require_str(obj, "prediction", path, line),
                alternatives=alternatives,
                rephrases=rephrases,
            )
        )
    return records


def pick_target(record: ZsreRecord, rng: random.Random) -> str:
    """The edit target, as in the release: a uniformly random alternative answer."""
    return rng.choice(record.alternatives)
