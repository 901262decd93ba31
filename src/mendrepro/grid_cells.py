"""The lr × c_edit grid's cells carried across sessions (``lr_grid.ledger``).

The grid is hours of CPU (tiny profile: 492 cells), more than one session or one cluster allocation gives, and its
cells' training summaries are small. Each grid cell's summary records its provenance: the experiment it ran, the
sha256 of its base model and of each data file, torch's version and the CPU floating-point path. ``save`` copies
the cells of a results tree into a ledger folder (committed with the project); a later job of the same cell copies
its summary back from the ledger instead of training, but only when the provenance it would record is the recorded
one, field for field (the base model is the same bits, the config the same experiment); otherwise it trains and
says which field differed.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

from mendrepro.data.formats import write_json_atomic
from mendrepro.manifest import directory_sha256, file_sha256
from mendrepro.numerics import cpu_numerics

#: The folder of a run's grid cells, below its run directory (results/<profile>/seed<s>/<task>/<model>/<editor>).
CELL_DIR = "lr_grid"
#: The key a replayed summary carries: the ledger file it came from (never saved back).
REPLAYED = "replayed_from"
RETRAIN = "delete it to train the cell anew"


def provenance(experiment: dict, model_dir: Path, files: dict[str, str]) -> dict:
    """What makes a cell's numbers these numbers: the experiment, the base model's and data files' bytes, torch's
    version and the CPU path. The CPU's name is left out: the pin (:mod:`mendrepro.numerics`) is meant to give every
    CPU of a family one path, and a base model pre-trained on another path has other bytes anyway."""
    numerics = cpu_numerics()
    return {
        "experiment": experiment,
        "base_model_sha256": directory_sha256(Path(model_dir)),
        "data_sha256": {key: file_sha256(Path(path)) for key, path in sorted(files.items())},
        "torch": importlib.metadata.version("torch"),
        "cpu_path": {k: numerics[k] for k in ("torch_cpu_capability", "mkl_cbwr")},
    }


def difference(recorded: dict, current: dict) -> str | None:
    """The first provenance field (dotted) in which ``recorded`` and ``current`` differ; None when they agree."""
    for key in sorted(set(recorded) | set(current)):
        a, b = recorded.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = difference(a, b)
            if inner is not None:
                return f"{key}.{inner}"
        elif a != b:
            return key
    return None


def read_cell(path: Path) -> dict:
    """A ledger cell's summary; a ValueError naming the file (and line) when it is not one."""
    try:
        cell = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 (byte {e.start}); {RETRAIN}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg}); {RETRAIN}") from None
    if not isinstance(cell, dict) or not isinstance(cell.get("provenance"), dict):
        raise ValueError(f"{path}: not a grid cell's summary (no provenance object); {RETRAIN}")
    return cell


def replay(ledger_cell: Path, current: dict) -> tuple[dict | None, str]:
    """(the recorded summary, why) when ``ledger_cell`` exists with provenance ``current``; (None, why not)."""
    if not Path(ledger_cell).is_file():
        return None, f"{ledger_cell}: not in the ledger"
    cell = read_cell(ledger_cell)
    field = difference(cell["provenance"], current)
    if field is not None:
        return None, f"{ledger_cell}: recorded with another {field}"
    return {**cell, REPLAYED: Path(ledger_cell).as_posix()}, f"{ledger_cell}: same provenance"


def cells(results: Path) -> list[Path]:
    """The grid cells' summaries below a results tree (results/<profile>)."""
    return sorted(p for p in Path(results).glob(f"seed*/*/*/*/{CELL_DIR}/lr*_c*.json") if p.is_file())


def save(results: Path, ledger: Path) -> dict[str, int]:
    """Copy every grid cell of ``results`` (results/<profile>) that records its provenance into the ledger at
    ``ledger``/<profile>/ and the same path below it as below ``results``; a replayed cell is saved without its
    ``replayed_from``. Returns counts: new, changed, same, skipped (no provenance: trained without a ledger)."""
    counts = {"new": 0, "changed": 0, "same": 0, "skipped": 0}
    for path in cells(results):
        cell = json.loads(path.read_text(encoding="utf-8"))
        if "provenance" not in cell:
            counts["skipped"] += 1
            continue
        cell.pop(REPLAYED, None)
        dest = Path(ledger) / Path(results).resolve().name / path.relative_to(results)
        if dest.is_file():
            same = json.loads(dest.read_text(encoding="utf-8")) == cell
            counts["same" if same else "changed"] += 1
            if same:
                continue
        else:
            counts["new"] += 1
        write_json_atomic(dest, cell)
    return counts
