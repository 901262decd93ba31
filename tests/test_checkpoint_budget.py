"""The checkpoint a training keeps under ``train.checkpoint_budget``: the lowest validation loss among the
checkpoints whose drawdown against the original model is within the budget, the lowest overall when none is, and the
release's lowest-loss rule without a budget; grid cells keep the release's rule."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_resume import _exp, _train, inputs  # noqa: F401 (the micro world and BART fixture)

from mendrepro.train import LoopState, within_budget

ROOT = Path(__file__).resolve().parents[1]
BUDGET = {"accuracy": 0.02, "perplexity": 0.02}


def _acc(loss: float, dd: float) -> dict:
    return {"loss": loss, "dd": dd, "acc_original": 0.9}


def _ppl(loss: float, dd: float, original: float = 10.0) -> dict:
    return {"loss": loss, "dd": dd, "ppl_original": original}


# Each case: the validations in order (steps 1, 2, ...), the budget, then the kept step and whether it is within.
CASES = {
    "no budget: lowest loss, as released": ([_acc(0.5, 0.0), _acc(0.3, 0.5), _acc(0.4, 0.0)], None, (2, False)),
    "lowest loss within the budget": ([_acc(0.5, 0.0), _acc(0.3, 0.5), _acc(0.4, 0.01)], BUDGET, (3, True)),
    "within beats a lower loss outside": ([_acc(0.2, 0.03), _acc(0.9, 0.02)], BUDGET, (2, True)),
    "none within: lowest loss overall": ([_acc(0.5, 0.1), _acc(0.3, 0.2), _acc(0.4, 0.05)], BUDGET, (2, False)),
    "outside never replaces within": ([_acc(0.5, 0.0), _acc(0.1, 0.3)], BUDGET, (1, True)),
    "perplexity: a fraction of the original": ([_ppl(0.5, 0.19), _ppl(0.4, 0.21)], BUDGET, (1, True)),
    "perplexity budget scales with the original": ([_ppl(0.5, 0.3, 20.0), _ppl(0.4, 0.41, 20.0)], BUDGET, (1, True)),
    "a non-finite drawdown is outside": ([_acc(0.5, 0.0), _acc(0.1, float("nan"))], BUDGET, (1, True)),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_the_kept_checkpoint(case):
    vals, budget, expected = CASES[case]
    state = LoopState(random.Random(0), None)
    for step, val in enumerate(vals, start=1):
        state.keep(val, step, budget)
    assert (state.kept_step, state.kept_within) == expected
    assert state.kept == vals[expected[0] - 1]["loss"]


def test_within_budget_reads_the_drawdown_kind():
    assert within_budget(_acc(0, 0.02), BUDGET) and not within_budget(_acc(0, 0.0201), BUDGET)
    assert within_budget(_ppl(0, 0.2), BUDGET) and not within_budget(_ppl(0, 0.201), BUDGET)
    assert not within_budget(_acc(0, -1.0), None)


def _run(inputs, tmp: Path, name: str, budget) -> tuple[bytes, dict]:  # noqa: F811
    out = tmp / name
    _train(inputs, out, _exp(checkpoint_budget=budget), every=0)
    return (out / "editor.pt").read_bytes(), json.loads((out / "train.json").read_text())


@pytest.mark.slow
def test_a_budget_every_or_no_checkpoint_meets_keeps_the_releases_checkpoint(inputs, tmp_path):  # noqa: F811
    """At trained weights: a budget every checkpoint meets, and one none meets (the fallback), keep the very
    checkpoint the release's rule keeps; the summary says which case it was."""
    ref, ref_summary = _run(inputs, tmp_path, "release", None)
    assert ref_summary["kept_within_budget"] is None
    assert ref_summary["best_step"] == ref_summary["lowest_loss_step"]
    for name, budget, within in (
        ("all", {"accuracy": 1.0, "perplexity": 1e9}, True),
        ("none", {"accuracy": -2.0, "perplexity": -1.0}, False),
    ):
        kept, summary = _run(inputs, tmp_path, name, budget)
        assert kept == ref, name
        assert summary["kept_within_budget"] is within
        for key in ("best_step", "best_val_loss", "history"):
            assert summary[key] == ref_summary[key], (name, key)


def test_the_tiny_budget_is_the_grids_tolerance_and_the_paper_keeps_the_releases_rule():
    tiny = yaml.safe_load((ROOT / "config/tiny.yaml").read_text())
    paper = yaml.safe_load((ROOT / "config/paper.yaml").read_text())
    assert tiny["train"]["checkpoint_budget"] == tiny["lr_grid"]["tolerance"]
    assert paper["train"].get("checkpoint_budget") is None


def test_grid_cells_keep_the_releases_checkpoint_while_trainings_use_the_budget(tmp_path):
    for item in ("Snakefile", "workflow", "config", "envs"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    cfg = yaml.safe_load((ROOT / "tests/fixtures/micro.yaml").read_text())
    cfg["train"]["checkpoint_budget"] = BUDGET
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    run = "results/micro/seed0/zsre/bart/mend"
    targets = [f"{run}/editor.pt", f"{run}/lr_grid/lr0.01_c1.json"]
    cmd = [sys.executable, "-m", "snakemake", *targets, "-n", "-p", "--cores", "1", "--configfile", "run.yaml"]
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    budgets = {}
    for line in out.stdout.splitlines():
        if " train --exp '" in line:
            exp = json.loads(line.split(" --exp '", 1)[1].split("' --", 1)[0])
            budgets["grid" if "--out" in line and "lr_grid" in line else "train"] = exp["train"]["checkpoint_budget"]
    assert budgets == {"train": BUDGET, "grid": None}
