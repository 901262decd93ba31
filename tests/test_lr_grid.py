"""The lr × c_edit grid: its selection rule (validation ES within a drawdown tolerance), its report, its plumbing
into each training job, a micro cell end to end, and the tiny config's values are exactly the committed grid's."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_workflow import _job_counts, _planned_runs, _snakemake, _workdir

from mendrepro import grid_cells
from mendrepro.config import resolve_experiment, train_lr_key
from mendrepro.report import lr_grid

ROOT = Path(__file__).resolve().parents[1]
TOL = lr_grid.Tolerance(accuracy=0.02, perplexity=0.02)


def _cells(rows: list[tuple]) -> pd.DataFrame:
    """Cells of one editor: (lr, c_edit, val ES, val DD, kind, original)."""
    cols = ["lr", "c_edit", "val_es", "val_dd", "dd_kind", "dd_original"]
    return pd.DataFrame.from_records(rows, columns=cols).assign(key="t/m/e")


# Each case: the cells, then the (lr, c_edit) the rule must choose.
CASES = {
    "highest ES within accuracy tolerance": (
        [
            (1e-4, 0.1, 0.50, 0.00, "accuracy", 0.98),
            (1e-4, 1.0, 0.95, 0.40, "accuracy", 0.98),
            (3e-4, 0.3, 0.80, 0.02, "accuracy", 0.98),
        ],
        (3e-4, 0.3),
    ),
    "ES tie goes to the lower drawdown": (
        [(1e-4, 0.1, 0.80, 0.010, "accuracy", 0.98), (3e-4, 0.3, 0.80, 0.005, "accuracy", 0.98)],
        (3e-4, 0.3),
    ),
    "ES and drawdown tie go to the lower c_edit, then the lower lr": (
        [
            (1e-3, 0.3, 0.80, 0.01, "accuracy", 0.98),
            (3e-4, 0.1, 0.80, 0.01, "accuracy", 0.98),
            (1e-4, 0.1, 0.80, 0.01, "accuracy", 0.98),
        ],
        (1e-4, 0.1),
    ),
    "none within tolerance: the lowest drawdown, not the highest ES": (
        [(1e-4, 0.1, 0.30, 0.05, "accuracy", 0.98), (1e-4, 1.0, 0.99, 0.40, "accuracy", 0.98)],
        (1e-4, 0.1),
    ),
    "perplexity tolerance is 2% of the original perplexity (60 -> 1.2 points)": (
        [
            (1e-4, 0.1, 0.43, 0.8, "perplexity", 60.0),
            (1e-4, 0.3, 0.77, 1.1, "perplexity", 60.0),
            (1e-4, 1.0, 0.87, 2.4, "perplexity", 60.0),
        ],
        (1e-4, 0.3),
    ),
    "the same drawdown number is out of tolerance on a lower original perplexity": (
        [(1e-4, 0.1, 0.43, 0.8, "perplexity", 30.0), (1e-4, 0.3, 0.77, 1.1, "perplexity", 30.0)],
        (1e-4, 0.1),
    ),
    "a non-finite cell is never chosen": (
        [(1e-4, 0.1, math.nan, 0.0, "accuracy", 0.98), (3e-4, 0.1, 0.2, 0.01, "accuracy", 0.98)],
        (3e-4, 0.1),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_selection_rule(case):
    rows, want = CASES[case]
    df = _cells(rows)
    i = lr_grid.choose(df, TOL)
    assert (df.loc[i, "lr"], df.loc[i, "c_edit"]) == want


def test_no_finite_cell_chooses_nothing():
    assert lr_grid.choose(_cells([(1e-4, 0.1, math.inf, 0.0, "accuracy", 0.9)]), TOL) is None


def test_an_unknown_drawdown_kind_is_an_error():
    with pytest.raises(ValueError, match="accuracy or perplexity"):
        TOL.allowed("bleu", 1.0)


def _run(tmp_path: Path, editor: str, lr: float, c_edit: float, es: float, dd: float, name: str = "") -> Path:
    """A grid cell's training summary; its history has a worse entry than the best step's, which must be ignored."""
    path = tmp_path / f"{editor}-{lr}-{c_edit}{name}.json"
    best = {"step": 250, "es": es, "dd": dd, "acc_original": 0.98, "loss": 0.1}
    other = {"step": 500, "es": 0.0, "dd": 0.9, "acc_original": 0.98, "loss": 0.2}
    summary = {
        "task": "fever",
        "model": "bert",
        "editor": editor,
        "train_config": {"lr": lr, "c_edit": c_edit, "accumulate": 1},
        "best_val_loss": 0.1,
        "best_step": 250,
        "steps": 750,
        "history": [best, other],
    }
    path.write_text(json.dumps(summary))
    return path


def test_cells_are_scored_at_their_selected_checkpoint(tmp_path):
    paths = [
        _run(tmp_path, "mend", 1e-4, 0.1, 0.50, 0.00),
        _run(tmp_path, "mend", 1e-4, 1.0, 0.98, 0.48),
        _run(tmp_path, "mend", 3e-4, 0.3, 0.80, 0.01),
        _run(tmp_path, "ke", 1e-4, 0.1, 0.40, 0.00),
    ]
    df = lr_grid.load_runs(paths, TOL)
    assert lr_grid.choices(df) == {"fever/bert/mend": (3e-4, 0.3), "fever/bert/ke": (1e-4, 0.1)}
    assert set(df["val_dd"]) == {0.0, 0.48, 0.01}  # the best step's, not the later entry's 0.9
    block = lr_grid.config_block(df)
    assert (
        "  fever/bert/mend: 3.0e-04" in block and "train_c_edit:\n  fever/bert/ke: 0.1\n  fever/bert/mend: 0.3" in block
    )


def test_two_runs_of_one_cell_are_an_error(tmp_path):
    paths = [_run(tmp_path, "mend", 1e-4, 0.1, 0.5, 0.0), _run(tmp_path, "mend", 1e-4, 0.1, 0.6, 0.0, name="-copy")]
    with pytest.raises(ValueError, match="same editor, rate and c_edit"):
        lr_grid.load_runs(paths)


def test_the_report_writes_md_and_csv(tmp_path):
    paths = [_run(tmp_path, "mend", 1e-4, 0.1, 0.5, 0.0), _run(tmp_path, "mend", 1e-4, 1.0, 0.9, 0.3)]
    ns = argparse.Namespace(runs=paths, out=tmp_path / "grid", profile="tiny", tol_accuracy=0.02, tol_perplexity=0.02)
    written = lr_grid.run(ns)
    assert [p.name for p in written] == ["grid.md", "grid.csv"]
    md = (tmp_path / "grid.md").read_text()
    assert "| fever/bert/mend | 0.0001 | 0.1 | 0.500 | 0.0000 | 0.0200 (accuracy) | 250 | **yes** |" in md
    csv = pd.read_csv(tmp_path / "grid.csv")
    assert list(csv.columns) == list(lr_grid.COLUMNS) and csv["chosen"].tolist() == [True, False]


def test_each_training_job_uses_its_editors_c_edit():
    cfg = yaml.safe_load((ROOT / "tests/fixtures/micro.yaml").read_text())
    _, learned = _planned_runs(cfg)
    task, model, editor = sorted(learned)[0]
    assert resolve_experiment(cfg, task, model, editor)["train"]["c_edit"] == cfg["train"]["c_edit"]
    cfg["train_c_edit"] = {f"{task}/{model}/{editor}": 0.7}
    assert resolve_experiment(cfg, task, model, editor)["train"]["c_edit"] == 0.7


@pytest.mark.slow
def test_micro_grid_plans_every_cell_and_one_cell_runs_end_to_end(tmp_path):
    """The micro grid is (lr × c_edit) jobs per learned editor; one cell trains at its own c_edit and the report
    scores it by validation ES and drawdown. With a ledger (lr_grid.ledger, mendrepro.grid_cells) the cell records
    its provenance and is saved; a later job of it copies the saved summary, and trains again (to the same history)
    when the ledger recorded another provenance."""
    cfg = yaml.safe_load((ROOT / "tests/fixtures/micro.yaml").read_text())
    wd = _workdir(tmp_path, "tests/fixtures/micro.yaml")
    run = yaml.safe_load((wd / "run.yaml").read_text())
    run["lr_grid"]["ledger"] = "cells"
    (wd / "run.yaml").write_text(yaml.safe_dump(run))
    counts = _job_counts(_snakemake(wd, "-n", "--cores", "1", "lr_grid").stdout)
    _, learned = _planned_runs(cfg)
    g = cfg["lr_grid"]
    assert counts["lr_grid_train"] == len(learned) * len(g["lrs"]) * len(g["c_edits"])
    task, model, editor = sorted(learned)[0]
    cell = f"results/micro/seed0/{task}/{model}/{editor}/lr_grid/lr0.01_c1.json"
    _snakemake(wd, "--cores", "2", cell)
    summary = json.loads((wd / cell).read_text())
    assert summary["train_config"]["c_edit"] == 1.0 and summary["train_config"]["lr"] == 0.01
    out = tmp_path / "grid"
    cmd = [sys.executable, "-m", "mendrepro", "lr-grid", "--runs", str(wd / cell), "--out", str(out)]
    subprocess.run(cmd, check=True, cwd=wd)
    row = pd.read_csv(out.with_suffix(".csv")).iloc[0]
    best = lr_grid.best_entry(summary)
    assert (row["val_es"], row["val_dd"], bool(row["chosen"])) == (
        pytest.approx(best["es"]),
        pytest.approx(best["dd"]),
        True,
    )
    _check_ledger(wd, cell, summary)


def _check_ledger(wd: Path, cell: str, trained: dict) -> None:
    """The trained micro cell ``cell`` saved to the ledger, replayed, then retrained against a tampered record."""
    assert set(trained["provenance"]) == {"experiment", "base_model_sha256", "data_sha256", "torch", "cpu_path"}
    assert trained["provenance"]["experiment"]["train"]["lr"] == trained["train_config"]["lr"]
    assert not (wd / cell).with_suffix(".pt").exists()  # only the summary is the grid's
    save = [sys.executable, "-m", "mendrepro", "grid-save", "--results", "results/micro", "--ledger", "cells"]
    subprocess.run(save, cwd=wd, check=True, capture_output=True)
    ledger_cell = wd / "cells" / Path(cell).relative_to("results")
    assert json.loads(ledger_cell.read_text()) == trained
    (log_file,) = (wd / "results/micro/logs/seed0/lr_grid").glob("**/*.log")  # the one cell's

    # A later job of the same cell (its summary gone, as in a fresh clone) copies the ledger's.
    (wd / cell).unlink()
    _snakemake(wd, "--cores", "1", cell)
    replayed = json.loads((wd / cell).read_text())
    assert replayed == {**trained, grid_cells.REPLAYED: ledger_cell.relative_to(wd).as_posix()}
    log = log_file.read_text()
    assert "same provenance" in log and "train editor" not in log

    # Recorded at another rate: the job trains and records its own provenance.
    tampered = json.loads(ledger_cell.read_text())
    tampered["provenance"]["experiment"]["train"]["lr"] *= 2
    ledger_cell.write_text(json.dumps(tampered))
    (wd / cell).unlink()
    _snakemake(wd, "--cores", "1", cell)
    again = json.loads((wd / cell).read_text())
    assert grid_cells.REPLAYED not in again and again["provenance"] == trained["provenance"]
    assert again["history"] == trained["history"]  # the same training, bit for bit
    assert "recorded with another experiment.train.lr" in log_file.read_text()


@pytest.mark.parametrize("profile", ["tiny"])
def test_config_values_are_the_committed_grid_choices(profile):
    """No hand-set rate or edit weight: every learned editor's train_lr and train_c_edit are what the grid
    (config/lr_grid/<profile>.csv, of the lr x c_edit format) chose, and the grid tried every cell for every editor."""
    cfg = yaml.safe_load((ROOT / f"config/{profile}.yaml").read_text())
    grid, legacy = lr_grid.read_grid(ROOT / f"config/lr_grid/{profile}.csv")
    assert not legacy, "the committed grid is of the old lr-only format"
    chosen = grid[grid["chosen"]]
    assert {k: float(v) for k, v in cfg["train_lr"].items()} == pytest.approx(
        dict(zip(chosen["key"], chosen["lr"], strict=True))
    )
    assert {k: float(v) for k, v in cfg["train_c_edit"].items()} == pytest.approx(
        dict(zip(chosen["key"], chosen["c_edit"], strict=True))
    )
    _, learned = _planned_runs(cfg)
    # Every learned editor trains at a grid rate of its own.
    keys = {(t, m, e): train_lr_key(cfg, t, m, e) for t, m, e in learned}
    assert None not in keys.values(), keys
    assert {key for (t, m, e), key in keys.items() if key == f"{t}/{m}/{e}"} == set(chosen["key"])
    # Each editor was tried at every cell of the config's grid, the release's c_edit 0.1 among them.
    assert 0.1 in cfg["lr_grid"]["c_edits"]
    cells = {(float(lr), float(c)) for lr in cfg["lr_grid"]["lrs"] for c in cfg["lr_grid"]["c_edits"]}
    assert set(zip(grid["lr"], grid["c_edit"], strict=True)) == cells
    assert set(grid["accumulate"]) == {cfg["train"]["accumulate"]}
    assert grid.groupby("key").size().eq(len(cells)).all()


@pytest.mark.parametrize("profile", ["tiny"])
def test_the_committed_choices_follow_the_rule_at_the_configs_tolerance(profile):
    """The committed grid's chosen cells are what the rule picks from its own validation ES and drawdown, at the
    tolerance the config states; no choice was edited by hand after the grid wrote it."""
    cfg = yaml.safe_load((ROOT / f"config/{profile}.yaml").read_text())
    grid, _ = lr_grid.read_grid(ROOT / f"config/lr_grid/{profile}.csv")
    tol = lr_grid.Tolerance(**cfg["lr_grid"]["tolerance"])
    again = lr_grid.select(grid.drop(columns=["chosen", "dd_allowed"]), tol)
    want = grid.sort_values(["task", "model", "editor", "c_edit", "lr"]).reset_index(drop=True)
    assert again["key"].tolist() == want["key"].tolist()
    assert again["chosen"].tolist() == want["chosen"].astype(bool).tolist()
    assert again["dd_allowed"].to_numpy() == pytest.approx(want["dd_allowed"].to_numpy())


def test_accumulation_choice_is_what_the_two_grids_say():
    """config/tiny.yaml's accumulation (1) is the one with the lower best validation loss, over the rates both grids
    ran (1e-4, 3e-4, 1e-3), for most of the learned editors: the comment there cites 24 of 37."""
    cfg = yaml.safe_load((ROOT / "config/tiny.yaml").read_text())
    one = pd.read_csv(ROOT / "config/lr_grid/tiny-world100.csv")
    ten = pd.read_csv(ROOT / "config/lr_grid/tiny-world100-accumulate10.csv")
    shared = set(ten["lr"])
    best_one = one[one["lr"].isin(shared)].groupby("key")["best_val_loss"].min()
    best_ten = ten.groupby("key")["best_val_loss"].min()
    assert set(best_one.index) == set(best_ten.index)
    wins = int((best_one < best_ten.loc[best_one.index]).sum())
    assert (wins, len(best_one)) == (24, 37)
    assert cfg["train"]["accumulate"] == (1 if wins > len(best_one) / 2 else 10)
