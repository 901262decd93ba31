"""benchmarks/checkpoint_choice.py: the experiment it rebuilds each step with, and the row it reports, on
hand-made validations and per-edit records."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.checkpoint_choice import edit_drawdowns, exp_at, main, markdown, row

BUDGET = {"accuracy": 0.02, "perplexity": 0.02}


def _record(before: list[float], after: list[float], original: list[float] | None = None) -> dict:
    r = {"locality_before": {"acc": before}, "locality_after": {"acc": after}}
    if original is not None:
        r["locality_original"] = {"acc": original}
    return r


def test_the_rebuilt_experiment_stops_at_the_step_with_one_validation_there():
    base = {"task": "zsre", "train": {"steps": 1000, "val_every": 200, "patience": 400, "lr": 3e-5}}
    e = exp_at(base, 600)
    assert e["train"] == {"steps": 600, "val_every": 600, "patience": 601, "lr": 3e-5}
    assert base["train"]["steps"] == 1000 and e["task"] == "zsre"


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (_record([1, 1, 0, 0], [1, 0, 0, 0]), 0.25),  # one answer of four lost
        (_record([1, 1, 0, 0], [1, 1, 1, 0]), -0.25),  # one gained
        (_record([1, 1, 1, 1], [1, 1, 1, 1], original=[0, 1, 1, 1]), -0.25),  # against the original (ENN)
    ],
)
def test_each_edit_drawdown_is_against_the_original_where_there_is_one(record, expected):
    assert edit_drawdowns([record]) == [pytest.approx(expected)]


def test_a_row_sets_validation_beside_test_and_the_noise_of_a_validation_drawdown():
    val = {"step": 800, "es": 0.9, "dd": 0.025, "loss": 0.0645, "acc_original": 0.83}
    records = [_record([1, 1, 1, 1], [1, 1, 1, 0])] * 2 + [_record([1, 1, 1, 1], [1, 1, 1, 1])] * 2
    r = row(val, BUDGET, False, {"es": 0.877, "dd": 0.007, "dd_original": 0.007}, records, n_val=60)
    assert r["within_budget"] is False and r["kept"] is False and r["n_test"] == 4
    assert (r["val_es"], r["val_dd"], r["test_es"], r["test_dd"]) == (0.9, 0.025, 0.877, 0.007)
    assert r["se_val_dd"] == pytest.approx(0.125 / math.sqrt(60))  # per-edit drawdowns 0.25, 0.25, 0, 0
    within = row({**val, "dd": 0.02}, BUDGET, True, {"es": 0.8, "dd": 0.0}, records, n_val=60)
    assert within["within_budget"] is True and within["test_dd"] == 0.0
    table = markdown("cell", [r, within], BUDGET)
    assert "| 800 | 0.900 | 0.025 | 0.0645 | no |  | 0.877 | 0.007 | 0.016 |" in table
    assert "| yes | kept |" in table


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, r"manifest.json: no such file"),
        ({"manifest.json": {}}, r"train.json: no such file"),
        (
            {"manifest.json": {"experiment": {}}, "train.json": {"history": [{"step": 200, "ppl_original": 2.3}]}},
            r"a perplexity cell",
        ),
    ],
)
def test_bad_cells_are_one_line(tmp_path, files, message):
    for name, content in files.items():
        (tmp_path / name).write_text(json.dumps(content))
    with pytest.raises(SystemExit, match=f"checkpoint_choice: {tmp_path}.*{message}"):
        main([str(tmp_path), str(tmp_path / "out")])
