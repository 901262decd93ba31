"""The learning-rate grid: its choice rule, and the tiny config's rates are exactly the committed grid's choices."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_workflow import _planned_runs

from mendrepro.config import train_lr_key
from mendrepro.report import lr_grid

ROOT = Path(__file__).resolve().parents[1]


def _run(tmp_path: Path, editor: str, lr: float, loss: float, model: str = "bart", name: str = "") -> Path:
    path = tmp_path / f"{editor}-{model}-{lr}{name}.json"
    summary = {
        "task": "zsre",
        "model": model,
        "editor": editor,
        "train_config": {"lr": lr},
        "best_val_loss": loss,
        "best_step": 250,
        "steps": 750,
    }
    path.write_text(json.dumps(summary))
    return path


def test_the_lowest_validation_loss_wins_and_a_tie_takes_the_lower_rate(tmp_path):
    paths = [
        _run(tmp_path, "mend", 1e-4, 0.30),
        _run(tmp_path, "mend", 3e-4, 0.20),
        _run(tmp_path, "mend", 1e-3, math.inf),
        _run(tmp_path, "ke", 1e-4, 0.5),
        _run(tmp_path, "ke", 1e-3, 0.5),
    ]
    df = lr_grid.load_runs(paths)
    assert lr_grid.choices(df) == {"zsre/bart/mend": 3e-4, "zsre/bart/ke": 1e-4}
    assert "  zsre/bart/mend: 3.0e-04" in lr_grid.config_block(df)


def test_two_runs_of_one_rate_are_an_error(tmp_path):
    paths = [_run(tmp_path, "mend", 1e-4, 0.3), _run(tmp_path, "mend", 1e-4, 0.2, name="-copy")]
    with pytest.raises(ValueError, match="same editor and rate"):
        lr_grid.load_runs(paths)


def test_the_report_writes_md_and_csv(tmp_path):
    paths = [_run(tmp_path, "mend", 1e-4, 0.3), _run(tmp_path, "mend", 3e-4, 0.2)]
    written = lr_grid.run(argparse.Namespace(runs=paths, out=tmp_path / "grid", profile="tiny"))
    assert [p.name for p in written] == ["grid.md", "grid.csv"]
    assert "**0.2000 (step 250)**" in (tmp_path / "grid.md").read_text()


@pytest.mark.parametrize("profile", ["tiny"])
def test_config_rates_are_the_committed_grid_choices(profile):
    """No hand-set rate: every learned editor's train_lr is what the grid (config/lr_grid/<profile>.csv) chose."""
    cfg = yaml.safe_load((ROOT / f"config/{profile}.yaml").read_text())
    grid = pd.read_csv(ROOT / f"config/lr_grid/{profile}.csv")
    chosen = {r.key: float(r.lr) for r in grid[grid["chosen"]].itertuples()}
    assert {k: float(v) for k, v in cfg["train_lr"].items()} == pytest.approx(chosen)
    _, learned = _planned_runs(cfg)
    # Every learned editor trains at a grid rate: its own, or (Table 5's width-scaled k, `lr_from`) another k's.
    keys = {(t, m, e): train_lr_key(cfg, t, m, e) for t, m, e in learned}
    assert None not in keys.values(), keys
    assert {key for (t, m, e), key in keys.items() if key == f"{t}/{m}/{e}"} == set(chosen)
    # Each editor was tried at every rate of the config's grid.
    assert set(grid["lr"]) == {float(x) for x in cfg["lr_grid"]["lrs"]}
    assert set(grid["accumulate"]) == {cfg["train"]["accumulate"]}
    assert grid.groupby("key")["lr"].nunique().eq(len(cfg["lr_grid"]["lrs"])).all()


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
