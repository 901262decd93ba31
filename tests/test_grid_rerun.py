"""benchmarks/grid_rerun: the ledger's cells against the committed grid, per editor; a choice only for an editor
whose cells are all in."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from benchmarks import grid_rerun
from mendrepro.report import lr_grid

LRS, C_EDITS = [1e-4, 1e-3], [0.1, 1.0]
TOL = lr_grid.Tolerance()


def _cell(editor: str, lr: float, c: float, es: float, dd: float) -> dict:
    return {
        "task": "zsre",
        "model": "bart",
        "editor": editor,
        "train_config": {"lr": lr, "c_edit": c, "accumulate": 1},
        "best_step": 200,
        "best_val_loss": 0.1,
        "steps": 400,
        "history": [{"step": 200, "es": es, "dd": dd, "acc_original": 0.9}],
    }


def _ledger(tmp_path: Path, cells: list[dict]) -> Path:
    ledger = tmp_path / "cells" / "tiny"
    for c in cells:
        lr, ce = c["train_config"]["lr"], c["train_config"]["c_edit"]
        path = ledger / f"seed0/zsre/bart/{c['editor']}/lr_grid/lr{lr:g}_c{ce:g}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(c))
    return ledger


def _grid(tmp_path: Path, cells: list[dict]) -> Path:
    df = lr_grid.select(
        pd.DataFrame.from_records(
            [{**lr_grid._cell(c), "key": f"zsre/bart/{c['editor']}"} for c in cells]  # noqa: SLF001
        ),
        TOL,
    )
    path = tmp_path / "grid.csv"
    df.to_csv(path, index=False)
    return path


def test_a_complete_editor_gets_its_new_choice_and_an_incomplete_one_only_its_count(tmp_path):
    # Then: MEND chose 1e-4 / 0.1 (the only cell within 0.02); now its cells cost more and none is within, so the
    # rule takes the lowest drawdown, 1e-4 / 1.0.
    then = [
        _cell("mend", lr, c, 0.5 + lr * 100 + c / 10, 0.01 if (lr, c) == (1e-4, 0.1) else 0.05)
        for lr in LRS
        for c in C_EDITS
    ]
    then += [_cell("enn", lr, c, 0.4, 0.0) for lr in LRS for c in C_EDITS]
    now = [_cell("mend", lr, c, 0.6, 0.03 if (lr, c) == (1e-4, 1.0) else 0.08) for lr in LRS for c in C_EDITS]
    now += [_cell("enn", 1e-4, 0.1, 0.5, 0.0)]
    df = grid_rerun.compare(_ledger(tmp_path, now), _grid(tmp_path, then), TOL, n_cells=4)
    mend = df.set_index("editor").loc["zsre/bart/mend"]
    assert (mend["cells"], mend["within_then"], mend["within_now"]) == (4, 1, 0)
    assert (mend["choice_then"], mend["choice_now"]) == ("0.0001 / 0.1", "0.0001 / 1")
    assert mend["dd_now"] == 0.03
    enn = df.set_index("editor").loc["zsre/bart/enn"]
    assert enn["cells"] == 1 and pd.isna(enn["choice_now"]) and pd.isna(enn["within_now"])
    text = grid_rerun.render(df, n_total=8, n_cells=4)
    assert "The ledger holds 5 of the grid's 8 cells: 1 editors complete (4 cells each), whose choice" in text
    assert "moved for 1." in text
    assert "| zsre/bart/enn | 1 | 4 |  | 0.0001 / 0.1 |  | 0.400 |  | 0.0000 |  |" in text
