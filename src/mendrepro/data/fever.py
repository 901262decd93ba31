"""FEVER fact checking in the KILT format used by the MEND release.

Reads the release's `fever-{train,dev}-kilt.jsonl` unchanged: fields `id`, `input` (the claim), `output[0].answer`
(SUPPORTS/REFUTES), `prediction`, `alternatives`, `filtered_rephrases` (De Cao et al.'s additions to KILT FEVER);
every other field (`logit`, `meta`, provenance) is ignored. As released (eric-mitchell/mend
data_classes/fever.py:30-33), records without an alternative or a rephrase are dropped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mendrepro.data.formats import DataFormatError, iter_jsonl, record_id, require_str, require_str_list

LABELS = {"SUPPORTS": True, "REFUTES": False}
# The fields De Cao et al. added to KILT FEVER, which the release's loader reads (data_classes/fever.py:26).
RELEASE_FIELDS = ("prediction", "alternatives", "filtered_rephrases")
_RELEASE_FILES = (
    "the MEND release's fever/fever-{train,dev}-kilt.jsonl (KILT FEVER with the base model's prediction, "
    "alternatives and filtered rephrases), from its data folder "
    "https://drive.google.com/drive/folders/1jAqBE45jEKR-5pMkwxlVQ0V8eKxqWbxA"
)


@dataclass(frozen=True)
class FeverRecord:
    """One FEVER edit example; `label` is True for SUPPORTS."""

    id: str
    claim: str
    label: bool
    prediction: str | None
    rephrases: tuple[str, ...]


def load_fever(path: str | os.PathLike[str], max_records: int | None = None) -> list[FeverRecord]:
    """Load FEVER records, keeping (as the release does) those with >= 1 alternative and >= 1 filtered rephrase."""
    records: list[FeverRecord] = []
    for line, obj in iter_jsonl(path):
        if max_records is not None and len(records) >= max_records:
            break
        missing = [k for k in RELEASE_FIELDS if k not in obj]
        if missing:
            what = "a plain KILT FEVER record" if len(missing) == len(RELEASE_FIELDS) else "a FEVER record"
            raise DataFormatError(
                path, f"{what} without {', '.join(map(repr, missing))}; the paper needs {_RELEASE_FILES}", line=line
            )
        alternatives = require_str_list(obj, "alternatives", path, line)
        rephrases = require_str_list(obj, "filtered_rephrases", path, line)
        if not alternatives or not rephrases:
            continue
        output = obj.get("output")
        if not isinstance(output, list) or not output or not isinstance(output[0], dict):
            raise DataFormatError(path, "field 'output' must be a non-empty list of objects", line=line)
        answer = output[0].get("answer")
        if answer not in LABELS:
            raise DataFormatError(
                path, f"label 'output[0].answer' must be SUPPORTS or REFUTES, got {answer!r}", line=line
            )
        prediction = obj["prediction"]
        if prediction not in LABELS:
            raise DataFormatError(
                path, f"field 'prediction' must be SUPPORTS or REFUTES, got {prediction!r}", line=line
            )
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
