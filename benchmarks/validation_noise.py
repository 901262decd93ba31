"""The same editors validated on two locality counts: which checkpoint each keeps, and what it then edits.

    .venv/bin/python -m benchmarks.validation_noise results/tiny results/tiny-val-loc [--seeds 0,1] \
        [--cells zsre/bart/mend,zsre/bart/enn,...] [--out benchmarks/results/validation_noise.md]

Reads, for each seed and cell, ``train.json`` (validation history, kept step) and ``eval_k1/metrics.json`` (test ES
and drawdown against the original model) of two finished runs that differ only in ``train.n_val_loc``
(config/tiny-val-loc.yaml against config/tiny.yaml). Their trainings see the same stream of edits, so at a given
step both validate the same editor: the difference of their drawdowns there is measurement noise alone. Prints, per
cell, each validated step's ES and drawdown under both counts (the kept step marked), then the kept checkpoints'
test numbers, then the spread of the same-step drawdown differences.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from mendrepro.train import within_budget

CELLS = ["zsre/bart/mend", "zsre/bart/enn", "zsre/bart/ke", "zsre/bart/mend-no_sharing"]


def _answers(exp: dict) -> int:
    t = exp["train"]
    return t["n_val"] * (t.get("n_val_loc") or t["n_loc"]) * t.get("edits_per_step", 1)


def read_cell(run: Path, seed: int, cell: str) -> dict:
    """The training history, kept step and test numbers of one finished cell."""
    d = run / f"seed{seed}" / cell
    for name in ("train.json", "manifest.json", "eval_k1/metrics.json"):
        if not (d / name).is_file():
            raise SystemExit(f"validation_noise: {d / name}: no such file (train and evaluate the cell first)")
    train = json.loads((d / "train.json").read_text())
    exp = json.loads((d / "manifest.json").read_text())["experiment"]
    metrics = json.loads((d / "eval_k1/metrics.json").read_text())
    budget = exp["train"].get("checkpoint_budget")
    return {
        "history": {
            v["step"]: {**{k: v[k] for k in ("es", "dd", "loss")}, "within": within_budget(v, budget)}
            for v in train["history"]
        },
        "kept": train["best_step"],
        "kept_within": train.get("kept_within_budget"),
        "answers": _answers(exp),
        "test_es": metrics["es"],
        "test_dd": metrics.get("dd_original", metrics["dd"]),
    }


def compare(a: dict, b: dict) -> tuple[list[dict], list[float]]:
    """Per step validated by both: the two validations side by side; and their drawdown differences (b − a)."""
    rows, diffs = [], []
    for step in sorted(set(a["history"]) & set(b["history"])):
        va, vb = a["history"][step], b["history"][step]
        rows.append({"step": step, "a": va, "b": vb, "kept_a": step == a["kept"], "kept_b": step == b["kept"]})
        diffs.append(vb["dd"] - va["dd"])
    return rows, diffs


def _mark(v: dict, kept: bool) -> str:
    return f"{v['es']:.3f} / {v['dd']:.3f}{'' if v['within'] else ' (out)'}{' **kept**' if kept else ''}"


def markdown(results: list[tuple[int, str, dict, dict]]) -> str:
    """The study's table: one block of rows per cell, then the kept checkpoints and the noise summary."""
    first = results[0]
    lines = [
        f"Validation on {first[2]['answers']} against {first[3]['answers']} locality answers "
        "(validation ES / drawdown against the original model per validated step; out = outside the budget).",
        "",
        "| seed | cell | step | validation, fewer answers | validation, more answers |",
        "|---|---|---|---|---|",
    ]
    kept, all_diffs = [], []
    for seed, cell, a, b in results:
        rows, diffs = compare(a, b)
        all_diffs += diffs
        for r in rows:
            lines.append(
                f"| {seed} | {cell} | {r['step']} | {_mark(r['a'], r['kept_a'])} | {_mark(r['b'], r['kept_b'])} |"
            )
        kept.append(
            f"| {seed} | {cell} | {a['kept']} ({'within' if a['kept_within'] else 'outside'}) | "
            f"{a['test_es']:.3f} / {a['test_dd']:.3f} | {b['kept']} ({'within' if b['kept_within'] else 'outside'}) | "
            f"{b['test_es']:.3f} / {b['test_dd']:.3f} |"
        )
    lines += [
        "",
        "Kept checkpoints and their test ES / drawdown against the original model:",
        "",
        "| seed | cell | kept step, fewer answers | test | kept step, more answers | test |",
        "|---|---|---|---|---|---|",
        *kept,
        "",
        f"Same step, same editor, two validations: drawdown difference over {len(all_diffs)} steps, "
        f"SD {statistics.pstdev(all_diffs):.4f}, mean {statistics.fmean(all_diffs):.4f}, "
        f"largest |difference| {max(map(abs, all_diffs)):.3f}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.validation_noise", description=__doc__.split("\n")[0])
    p.add_argument("fewer", type=Path, help="the run validating on fewer locality answers (e.g. results/tiny)")
    p.add_argument("more", type=Path, help="the run validating on more (e.g. results/tiny-val-loc)")
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--cells", default=",".join(CELLS))
    p.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = p.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    results = [
        (s, c, read_cell(args.fewer, s, c), read_cell(args.more, s, c)) for s in seeds for c in args.cells.split(",")
    ]
    text = markdown(results)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
