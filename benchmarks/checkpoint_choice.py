"""Which of a training's checkpoints the run kept, and what the others would have edited. A diagnostic of one
finished accuracy cell (zsRE, FEVER) of a tiny run.

    .venv/bin/python -m benchmarks.checkpoint_choice results/tiny/seed0/zsre/bart/mend /tmp/checkpoint-choice

A training validates every ``val_every`` steps and keeps one checkpoint (docs/method.md): the lowest validation loss
within the drawdown budget. Here each validated step S is rebuilt by training the cell's own experiment for S steps
with one validation at S (the same seeded stream of training edits, so the editor is the run's step-S one; its
validation must equal the run's history row, or this stops) and evaluated on the cell's test edits as the pipeline
evaluates it. Each row: the step's validation ES, drawdown and loss, whether it is within the budget and kept, its
test ES and drawdown against the original model, and the standard error of a drawdown measured on as many edits as
the validation has (the test edits' per-edit spread / sqrt(n_val)): how noisy the number the budget is applied to
is. Jobs run `python -m mendrepro train` / `evaluate` as the workflow does, one core each. On two cores the
zsRE No sharing cell (five checkpoints, up to 1000 steps) took about 8 minutes, FEVER's MEND (four) 2.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mendrepro.evaluate import read_records
from mendrepro.train import within_budget


def exp_at(base: dict, step: int) -> dict:
    """The cell's experiment stopped at ``step`` with its only validation there (no early stop before it)."""
    return {**base, "train": {**base["train"], "steps": step, "val_every": step, "patience": step + 1}}


def edit_drawdowns(records: list[dict]) -> list[float]:
    """Each edit's locality accuracy drawdown against the original model (before the edit where no original)."""
    out = []
    for r in records:
        ref = r.get("locality_original") or r["locality_before"]
        out.append(statistics.fmean(ref["acc"]) - statistics.fmean(r["locality_after"]["acc"]))
    return out


def row(val: dict, budget: dict | None, kept: bool, metrics: dict, records: list[dict], n_val: int) -> dict:
    """One validated step: validation and test numbers side by side."""
    dds = edit_drawdowns(records)
    return {
        "step": val["step"],
        "val_es": val["es"],
        "val_dd": val["dd"],
        "val_loss": val["loss"],
        "within_budget": within_budget(val, budget),
        "kept": kept,
        "test_es": metrics["es"],
        "test_dd": metrics.get("dd_original", metrics["dd"]),
        "n_test": len(records),
        "se_val_dd": statistics.pstdev(dds) / math.sqrt(n_val),
    }


def markdown(cell: str, rows: list[dict], budget: dict | None) -> str:
    lines = [
        f"Checkpoints of {cell} (budget: accuracy drawdown ≤ {budget['accuracy'] if budget else '—'}; "
        f"test n = {rows[0]['n_test']})",
        "",
        "| step | val ES | val DD | val loss | within budget | kept | test ES | test DD vs original | SE of a val DD |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['step']} | {r['val_es']:.3f} | {r['val_dd']:.3f} | {r['val_loss']:.4f} | "
            f"{'yes' if r['within_budget'] else 'no'} | {'kept' if r['kept'] else ''} | {r['test_es']:.3f} | "
            f"{r['test_dd']:.3f} | {r['se_val_dd']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def _run(args: list[str], log: Path) -> None:
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-m", "mendrepro", "--threads", "1", *args], check=True, stdout=f,
                       stderr=subprocess.STDOUT)  # fmt: skip


def _step(cell_exp: dict, model: str, files: str, val: dict, out: Path) -> tuple[dict, list[dict]]:
    d = out / f"step-{val['step']}"
    d.mkdir(parents=True, exist_ok=True)
    exp = json.dumps(exp_at(cell_exp, val["step"]))
    common = ["--exp", exp, "--model", model, "--files", files]
    if not (d / "train.json").is_file():
        _run(["train", *common, "--out", str(d / "editor.pt"), "--metrics", str(d / "train.json")], d / "train.log")
    again = json.loads((d / "train.json").read_text())["history"][-1]
    if any(abs(again[k] - val[k]) > 1e-6 for k in ("es", "dd", "loss")):
        raise SystemExit(f"checkpoint_choice: step {val['step']} rebuilt gives validation {again}, the run {val}")
    if not (d / "metrics.json").is_file():
        _run(["evaluate", *common, "--ckpt", str(d / "editor.pt"), "--records", str(d / "edits.jsonl"),
              "--metrics", str(d / "metrics.json")], d / "evaluate.log")  # fmt: skip
    return json.loads((d / "metrics.json").read_text()), read_records(d / "edits.jsonl")


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: python -m benchmarks.checkpoint_choice <run cell folder> <out folder>")
    cell, out = Path(argv[0]), Path(argv[1])
    for name in ("manifest.json", "train.json"):
        if not (cell / name).is_file():
            raise SystemExit(f"checkpoint_choice: {cell / name}: no such file (a finished cell of a tiny run)")
    manifest = json.loads((cell / "manifest.json").read_text())
    train = json.loads((cell / "train.json").read_text())
    exp = manifest["experiment"]
    if train["history"] and "acc_original" not in train["history"][0]:
        raise SystemExit(f"checkpoint_choice: {cell}: a perplexity cell; this diagnostic reads accuracy drawdowns")
    model, files = manifest["base_model"]["path"], json.dumps(manifest["data_files"])
    budget, n_val = exp["train"].get("checkpoint_budget"), exp["train"]["n_val"]
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda v: _step(exp, model, files, v, out), train["history"]))
    rows = [
        row(v, budget, v["step"] == train["best_step"], m, recs, n_val)
        for v, (m, recs) in zip(train["history"], done, strict=True)
    ]
    (out / "checkpoint_choice.json").write_text(json.dumps(rows, indent=1))
    text = markdown(str(cell), rows, budget)
    (out / "checkpoint_choice.md").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main(sys.argv[1:])
