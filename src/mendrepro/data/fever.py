"""FEVER fact checking in the KILT format used by the MEND release.

Reads `fever-{train,dev}-kilt.jsonl` unchanged: fields `id`, `input` (the claim), `output[0].answer`
(SUPPORTS/REFUTES), `prediction`, `filtered_rephrases`; every other field is ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mendrepro.data.formats import DataFormatError, iter_jsonl, record_id, require_str, require_str_list

LABELS = {"SUPPORTS": True, "REFUTES": False}


@dataclass(frozen=True)
class FeverRecord:
    """One FEVER edit example; `label` is True for SUPPORTS."""

    id: str
    claim: str
    label: bool
    prediction: str | None
    rephrases: tuple[str, ...]


def load_fever(path: str | os.PathLike[str], max_records: int | None = None) -> list[FeverRecord]:
    """Load FEVER records, keeping those with >= 1 filtered rephrase (the release's filter)."""
    records: list[FeverRecord] = []
    for line, obj in iter_jsonl(path):
        if max_records is not None and len(records) >= max_records:
            break
        rephrases = require_str_list(obj, "filtered_rephrases", path, line)
        if not rephrases:
            continue
        output = obj.get("output")
        if not isinstance(output, list) or not output or not isinstance(output[0], dict):
            raise DataFormatError(path, "field 'output' must be a non-empty list of objects", line=line)
        answer = output[0].get("answer")
        if answer not in LABELS:
            raise DataFormatError(
                path, f"label 'output[0].answer' must be SUPPORTS or REFUTES, got {answer!r}", line=line
            )
        prediction = obj.get("prediction")
        if prediction is not None and not isinstance(prediction, str):
            raise DataFormatError(path, "field 'prediction' must be a string", line=line)
        records.append(
            FeverRecord(
                id=record_id(obj, path, line),
                claim=require_str(obj, "input", path, line),
                label=LABELS[answer],
                prediction=prediction,
                rephrases=rephrases,
            )
        )
    return records
