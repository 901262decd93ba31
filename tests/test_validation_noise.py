"""benchmarks/validation_noise.py: two runs' validations of the same editors side by side, kept steps, noise."""

from __future__ import annotations

import json

import pytest

from benchmarks.validation_noise import compare, main, read_cell

BUDGET = {"accuracy": 0.02, "perplexity": 0.02}


def _cell(root, seed, cell, history, kept, n_val_loc=None, es=0.8, dd=0.01):
    d = root / f"seed{seed}" / cell
    (d / "eval_k1").mkdir(parents=True)
    train = {"n_val": 60, "n_loc": 4, "checkpoint_budget": BUDGET}
    if n_val_loc:
        train["n_val_loc"] = n_val_loc
    (d / "manifest.json").write_text(json.dumps({"experiment": {"train": train}}))
    rows = [{"step": s, "es": e, "dd": x, "loss": 0.1, "acc_original": 0.9} for s, e, x in history]
    within = any(r["step"] == kept and r["dd"] <= 0.02 for r in rows)
    (d / "train.json").write_text(json.dumps({"history": rows, "best_step": kept, "kept_within_budget": within}))
    (d / "eval_k1/metrics.json").write_text(json.dumps({"es": es, "dd": 0.5, "dd_original": dd, "n": 150}))


def test_same_steps_side_by_side_with_their_drawdown_differences(tmp_path):
    _cell(tmp_path / "a", 0, "zsre/bart/mend", [(200, 0.9, 0.010), (400, 0.8, 0.030)], kept=200)
    _cell(tmp_path / "b", 0, "zsre/bart/mend", [(200, 0.9, 0.025), (400, 0.85, 0.015)], kept=400, n_val_loc=10)
    a, b = read_cell(tmp_path / "a", 0, "zsre/bart/mend"), read_cell(tmp_path / "b", 0, "zsre/bart/mend")
    assert (a["answers"], b["answers"]) == (240, 600)
    assert a["history"][200]["within"] and not b["history"][200]["within"]
    rows, diffs = compare(a, b)
    assert [r["step"] for r in rows] == [200, 400]
    assert [(r["kept_a"], r["kept_b"]) for r in rows] == [(True, False), (False, True)]
    assert diffs == pytest.approx([0.015, -0.015])


def test_the_table_marks_kept_steps_and_the_budget(tmp_path, capsys):
    for run, kept, n in (("a", 400, None), ("b", 200, 10)):
        _cell(tmp_path / run, 1, "zsre/bart/ke", [(200, 0.6, 0.01), (400, 0.7, 0.04)], kept=kept, n_val_loc=n)
    main([str(tmp_path / "a"), str(tmp_path / "b"), "--seeds", "1", "--cells", "zsre/bart/ke"])
    out = capsys.readouterr().out
    assert "Validation on 240 against 600 locality answers" in out
    assert "| 1 | zsre/bart/ke | 400 | 0.700 / 0.040 (out) **kept** | 0.700 / 0.040 (out) |" in out
    assert "| 1 | zsre/bart/ke | 400 (outside) | 0.800 / 0.010 | 200 (within) | 0.800 / 0.010 |" in out
    assert "SD 0.0000" in out


def test_a_missing_cell_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match=r"validation_noise: .*seed0/zsre/bart/mend/train.json: no such file"):
        main([str(tmp_path), str(tmp_path), "--seeds", "0", "--cells", "zsre/bart/mend"])
