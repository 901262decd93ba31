"""The grid's cells carried across sessions (mendrepro.grid_cells, lr_grid.ledger): provenance compared field by
field, a ledger file that is not a cell is one line naming it, save copies only cells with provenance. A micro cell
end to end (trained and saved, replayed by a later job of the same provenance, retrained when it differs) is part of
tests/test_lr_grid.py's micro grid test, which pre-trains the micro model once for both."""

from __future__ import annotations

import copy
import json

import pytest

from mendrepro import grid_cells

RECORDED = {
    "experiment": {"editor": "mend", "train": {"lr": 1e-4, "c_edit": 0.1}},
    "base_model_sha256": "a" * 64,
    "data_sha256": {"zsre_dev": "b" * 64, "zsre_train": "c" * 64},
    "torch": "2.13.0",
    "cpu_path": {"torch_cpu_capability": "AVX2", "mkl_cbwr": "AVX2"},
}


def _changed(path: tuple[str, ...], value) -> dict:
    out = copy.deepcopy(RECORDED)
    d = out
    for key in path[:-1]:
        d = d[key]
    d[path[-1]] = value
    return out


# Each case: what differs in the current provenance, and the field the comparison must name.
DIFFERENCES = {
    "the same provenance": (RECORDED, None),
    "another learning rate": (_changed(("experiment", "train", "lr"), 3e-4), "experiment.train.lr"),
    "another base model": (_changed(("base_model_sha256",), "d" * 64), "base_model_sha256"),
    "another data file": (_changed(("data_sha256", "zsre_dev"), "e" * 64), "data_sha256.zsre_dev"),
    "another torch": (_changed(("torch",), "2.14.0"), "torch"),
    "another CPU path": (_changed(("cpu_path", "mkl_cbwr"), "COMPATIBLE"), "cpu_path.mkl_cbwr"),
    "a field the recording lacks": ({**RECORDED, "extra": 1}, "extra"),
}


@pytest.mark.parametrize("case", DIFFERENCES)
def test_difference_names_the_first_field_that_differs(case):
    current, field = DIFFERENCES[case]
    assert grid_cells.difference(RECORDED, current) == field


# Each case: a ledger file's text, and what its one-line error must say (besides the file's path).
BAD_CELLS = {
    "not JSON": ('{"provenance": {}\n  "x": 1}', ":2:3: not valid JSON"),
    "not UTF-8": (b"\xff\xfe{}", "not UTF-8 (byte 0)"),
    "a list": ("[1, 2]", "no provenance object"),
    "no provenance": ('{"history": []}', "no provenance object"),
}


@pytest.mark.parametrize("case", BAD_CELLS)
def test_a_ledger_file_that_is_not_a_cell_is_one_line_naming_it(tmp_path, case):
    text, message = BAD_CELLS[case]
    path = tmp_path / "lr1e-4_c0.1.json"
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    with pytest.raises(ValueError) as err:
        grid_cells.replay(path, RECORDED)
    assert str(path) in str(err.value) and message in str(err.value) and "\n" not in str(err.value)
    assert grid_cells.RETRAIN in str(err.value)


def test_replay_returns_the_recorded_summary_only_for_its_own_provenance(tmp_path):
    path = tmp_path / "cell.json"
    assert grid_cells.replay(path, RECORDED) == (None, f"{path}: not in the ledger")
    cell = {"history": [{"step": 200, "es": 0.5}], "provenance": RECORDED}
    path.write_text(json.dumps(cell))
    summary, why = grid_cells.replay(path, copy.deepcopy(RECORDED))
    assert summary == {**cell, grid_cells.REPLAYED: path.as_posix()} and why.endswith("same provenance")
    summary, why = grid_cells.replay(path, _changed(("torch",), "2.14.0"))
    assert summary is None and why == f"{path}: recorded with another torch"


def test_save_copies_cells_with_provenance_below_the_profiles_folder(tmp_path):
    results = tmp_path / "results" / "tiny"
    cell_dir = results / "seed0/zsre/bart/mend/lr_grid"
    cell_dir.mkdir(parents=True)
    cell = {"history": [], "provenance": RECORDED}
    (cell_dir / "lr0.0001_c0.1.json").write_text(json.dumps(cell))
    (cell_dir / "lr0.0003_c0.1.json").write_text(json.dumps({**cell, grid_cells.REPLAYED: "x"}))
    (cell_dir / "lr0.001_c0.1.json").write_text(json.dumps({"history": []}))  # trained without a ledger
    (results / "seed0/zsre/bart/mend/train.json").write_text("{}")  # a run's summary, not a cell
    ledger = tmp_path / "cells"
    assert grid_cells.save(results, ledger) == {"new": 2, "changed": 0, "same": 0, "skipped": 1}
    saved = ledger / "tiny/seed0/zsre/bart/mend/lr_grid"
    assert sorted(p.name for p in saved.iterdir()) == ["lr0.0001_c0.1.json", "lr0.0003_c0.1.json"]
    assert json.loads((saved / "lr0.0003_c0.1.json").read_text()) == cell  # saved without replayed_from
    (cell_dir / "lr0.0001_c0.1.json").write_text(json.dumps({**cell, "history": [{"step": 1}]}))
    assert grid_cells.save(results, ledger) == {"new": 0, "changed": 1, "same": 1, "skipped": 1}
