"""The rehearsal's measured jobs, extrapolated per rule to the paper's step and edit counts on one GPU.

    python -m mendrepro.rehearsal.estimate --results results/rehearsal --out figures/rehearsal/estimate

Per job, from its Snakemake ``benchmark:`` file (wall seconds, peak RSS) and its own outputs:

* ``train_editor``: the loop's seconds and steps (``train.json``) give the seconds per edit step (a validation edit
  counted as one step); the rest of the wall time is set-up (imports, model and data loading), not scaled.
  Paper scale: ``--train-steps`` steps (default 25,000: the earliest early stop of the paper's protocol, patience
  20,000 after the first validation at 5,000) plus a validation of ``n_val`` edits every ``val_every`` steps.
* ``evaluate``: the edit loop's seconds (its progress bar's elapsed time in the log) per evaluated edit; paper
  scale: ``--eval-edits`` edits per cell (default 10,000, the order of the release's dev files). FT and FT+KL run
  to their step cap on random weights, so their edits are costed from their raw lines (``edits.jsonl``: each edit's
  ``seconds`` and ``steps``): the seconds per step, times the steps an edit takes, plus the loop's scoring around
  the edit. The steps an edit takes are the mean measured by a trained run of the same cell (``--ft-steps``, the
  tiny profile's ``metrics.json`` ``steps_mean``; FT stops at its first success) where one exists, else the
  paper's ``max_steps`` (the column ``ft_steps_from`` says which). A rehearsal evaluated with ``eval.edit_batch``
  > 1 measures the batched path's seconds.
* Other rules (inputs, tables) are seconds and do not grow with the paper's counts.

Times are wall times: run the rehearsal on an otherwise idle machine. (The benchmark's ``cpu_time`` cannot stand in
for a busy machine: under ``accelerate launch`` it counts the launcher, not the job's own process.)
GPU time = set-up + (CPU loop time at paper scale) / S.
The speed-up S is this CPU's measured single-thread fp32 matmul rate (the jobs run with one thread) against an
A100's fp32 peak (19.5 TFLOP/s, the paper's GPU) at an assumed ``--gpu-utilisation`` (default 10%: one edit per
step, 32-200 tokens, far from saturating a GPU). It is an assumption, not a measurement: ``make gpu-check``
measures the same sizes' step times on a GPU (``--speedup`` then replaces it).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import yaml

from mendrepro import atomic

A100_FP32_TFLOPS = 19.5
_ELAPSED = re.compile(r"evaluate k=\d+:\s+100%\|[^|]*\|\s*(\d+)/\d+ \[(?:(\d+):)?(\d+):(\d+)<")


def cpu_gflops(n: int = 1024, seconds: float = 2.0) -> float:
    """This machine's single-thread fp32 matmul rate in GFLOP/s (best of repeated n x n products)."""
    import torch

    torch.set_num_threads(1)
    a, b = torch.randn(n, n), torch.randn(n, n)
    best, t_end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def eval_loop_seconds(log: Path) -> float | None:
    """The elapsed seconds of the finished edit loop, read from its progress bar in the job's log."""
    if not log.is_file():
        return None
    found = _ELAPSED.findall(log.read_text(encoding="utf-8", errors="replace").replace("\r", "\n"))
    if not found:
        return None
    _, h, m, s = found[-1]
    return int(h or 0) * 3600 + int(m) * 60 + int(s)


def _bench(path: Path) -> tuple[float, float, float]:
    """Wall seconds, peak RSS (MB) and the share of the wall time counted as the job's (1: see the module doc)."""
    row = pd.read_csv(path, sep="\t").iloc[-1]
    wall = float(row["s"])
    return wall, float(row["max_rss"]), 1.0  # see the module doc: cpu_time misses the launched process


def _editor_kind(config: dict, editor: str) -> str:
    e = config["editors"][editor]
    return config["editors"][e["variant_of"]]["kind"] if "variant_of" in e else e["kind"]


def _ft_edit_seconds(records: Path) -> tuple[float, float] | None:
    """Mean seconds of the edit itself and mean optimiser steps per edit, from FT's raw lines (None without them)."""
    if not records.is_file():
        return None
    rows = [json.loads(line) for line in records.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not rows or not all("steps" in r and "seconds" in r for r in rows):
        return None
    return sum(r["seconds"] for r in rows) / len(rows), sum(r["steps"] for r in rows) / len(rows)


def ft_per_edit(loop_per_edit: float, edit_s: float, steps: float, paper_steps: float) -> float:
    """Seconds per FT edit at ``paper_steps`` steps: the loop's scoring around the edit (``loop_per_edit`` less the
    edit's own ``edit_s``) plus ``edit_s``'s seconds per step (``steps`` of them) times ``paper_steps``."""
    return max(loop_per_edit - edit_s, 0.0) + edit_s / max(steps, 1.0) * paper_steps


def measured_ft_steps(trained: Path | None, seed: str, task: str, model: str, editor: str) -> float | None:
    """``steps_mean`` of a trained run's FT cell (its ``metrics.json``), if that run has one."""
    if trained is None:
        return None
    path = trained / seed / task / model / editor / "eval_k1" / "metrics.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("steps_mean")


def jobs(
    results: Path, reh: dict, paper: dict, train_steps: int, eval_edits: int, trained: Path | None = None
) -> pd.DataFrame:
    """One row per train_editor and evaluate job: measured wall and peak RSS, set-up, CPU seconds at paper scale."""
    rows = []
    bench = results / "benchmarks"
    tr_p, tr_r = paper["train"], reh["train"]
    for tsv in sorted(bench.glob("seed*/train/*/*/*.tsv")):
        seed, _, task, model, editor = tsv.relative_to(bench).with_suffix("").parts
        wall, rss, busy = _bench(tsv)
        summary = json.loads((results / seed / task / model / editor / "train.json").read_text())
        k = summary["train_config"]["edits_per_step"]
        loop, steps = summary["seconds"], summary["steps"]
        units = steps + len(summary["history"]) * min(tr_r["n_val"], reh["tasks"][task]["n_heldout"] // k) * k
        paper_units = train_steps + (train_steps // tr_p["val_every"]) * tr_p["n_val"] * k
        rows.append(
            dict(rule="train_editor", job=f"{task}/{model}/{editor}", wall_s=wall, cpu_s=wall * busy, max_rss_mb=rss,
                 setup_s=(wall - loop) * busy, unit="step", units=units, s_per_unit=loop * busy / units,
                 paper_units=paper_units)
        )  # fmt: skip
    for tsv in sorted(bench.glob("seed*/evaluate/*/*/*/*.tsv")):
        seed, _, task, model, editor, kk = tsv.relative_to(bench).with_suffix("").parts
        wall, rss, busy = _bench(tsv)
        metrics = json.loads((results / seed / task / model / editor / f"eval_{kk}" / "metrics.json").read_text())
        loop = eval_loop_seconds(results / "logs" / seed / "evaluate" / task / model / editor / f"{kk}.log")
        loop = wall if loop is None else min(loop, wall)  # no progress bar: the whole job counts as the loop
        per_edit = loop * busy / metrics["n"]
        ft_steps, ft_from = None, ""
        if _editor_kind(reh, editor) in ("ft", "ftkl"):  # FT runs to its step cap on random weights
            base = editor if "variant_of" not in reh["editors"][editor] else reh["editors"][editor]["variant_of"]
            cap = paper["editors"][base]["options"]["max_steps"]
            measured = _ft_edit_seconds(results / seed / task / model / editor / f"eval_{kk}" / "edits.jsonl")
            ft_steps = measured_ft_steps(trained, seed, task, model, editor) if kk == "k1" else None
            ft_from = "trained run" if ft_steps is not None else "paper max_steps"
            ft_steps = cap if ft_steps is None else ft_steps
            if measured is None:  # raw lines without steps: the edit loop scaled by the cap, as a whole
                per_edit *= ft_steps / reh["editors"][base]["options"]["max_steps"]
            else:
                per_edit = ft_per_edit(per_edit, measured[0] * busy, measured[1], ft_steps)
        rows.append(
            dict(rule="evaluate", job=f"{task}/{model}/{editor}/{kk}", wall_s=wall, cpu_s=wall * busy, max_rss_mb=rss,
                 setup_s=(wall - loop) * busy, unit="edit", units=metrics["n"], s_per_unit=per_edit,
                 paper_units=eval_edits, ft_steps=ft_steps, ft_steps_from=ft_from)
        )  # fmt: skip
    if not rows:
        raise SystemExit(f"no train_editor or evaluate benchmark files under {bench}")
    return pd.DataFrame(rows)


def extrapolate(df: pd.DataFrame, speedup: float) -> pd.DataFrame:
    df = df.copy()
    df["paper_cpu_h"] = (df["setup_s"] + df["s_per_unit"] * df["paper_units"]) / 3600
    df["paper_gpu_h"] = (df["setup_s"] + df["s_per_unit"] * df["paper_units"] / speedup) / 3600
    return df


def per_rule(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby("rule")
    return pd.DataFrame(
        {
            "jobs": g.size(),
            "rehearsal_wall_s": g["wall_s"].sum().round(0),
            "rehearsal_cpu_s": g["cpu_s"].sum().round(0),
            "max_peak_rss_gb": (g["max_rss_mb"].max() / 1024).round(2),
            "cpu_s_per_unit_median": g["s_per_unit"].median().round(2),
            "paper_units_per_job": g["paper_units"].max(),
            "paper_gpu_h_total": g["paper_gpu_h"].sum().round(1),
            "paper_gpu_h_max_job": g["paper_gpu_h"].max().round(1),
        }
    )


def render(df: pd.DataFrame, rules: pd.DataFrame, speedup: float, gflops: float | None, args) -> str:
    how = (
        f"S = {speedup:.0f}: given (--speedup)"
        if gflops is None
        else f"S = {speedup:.0f} = A100 fp32 {A100_FP32_TFLOPS} TFLOP/s x {args.gpu_utilisation:.0%} utilisation / "
        f"this CPU's measured single-thread fp32 matmul {gflops:.0f} GFLOP/s"
    )
    lines = [
        "# The paper profile's Table 4 on one GPU, extrapolated from the rehearsal",
        "",
        f"Rehearsal: {len(df)} train/evaluate jobs, {df['wall_s'].sum() / 60:.1f} min summed wall time, "
        f"largest peak "
        f"RSS {df['max_rss_mb'].max() / 1024:.2f} GB ({df.loc[df['max_rss_mb'].idxmax(), 'job']}).",
        f"Paper scale: {args.train_steps:,} training steps per learned editor (plus its validations), "
        f"{args.eval_edits:,} evaluated edits per cell. GPU speed-up {how}.",
        "",
        rules.reset_index().to_markdown(index=False),
        "",
        df.round(
            {
                "wall_s": 0,
                "cpu_s": 0,
                "max_rss_mb": 0,
                "setup_s": 0,
                "s_per_unit": 3,
                "paper_cpu_h": 1,
                "paper_gpu_h": 2,
            }
        ).to_markdown(index=False),
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mendrepro.rehearsal.estimate", description=__doc__.split("\n")[0])
    p.add_argument("--results", default="results/rehearsal")
    p.add_argument("--rehearsal", default="config/rehearsal.yaml")
    p.add_argument("--paper", default="config/paper.yaml")
    p.add_argument("--out", default="figures/rehearsal/estimate", help="output stem: .md and .csv")
    p.add_argument("--train-steps", type=int, default=25_000)
    p.add_argument("--eval-edits", type=int, default=10_000)
    p.add_argument("--gpu-utilisation", type=float, default=0.10)
    p.add_argument("--speedup", type=float, default=None, help="a measured GPU/CPU speed-up instead of the estimate")
    p.add_argument(
        "--ft-steps",
        default="results/tiny",
        help="a trained run whose FT/FT+KL metrics.json give the mean steps per edit (default: the tiny profile's)",
    )
    args = p.parse_args(argv)
    reh, paper = (yaml.safe_load(Path(c).read_text(encoding="utf-8")) for c in (args.rehearsal, args.paper))
    trained = Path(args.ft_steps) if args.ft_steps and Path(args.ft_steps).is_dir() else None
    df = jobs(Path(args.results), reh, paper, args.train_steps, args.eval_edits, trained)
    gflops = None if args.speedup else cpu_gflops()
    speedup = args.speedup or A100_FP32_TFLOPS * 1000 * args.gpu_utilisation / gflops
    df = extrapolate(df, speedup)
    rules = per_rule(df)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    atomic.write_text(out.with_suffix(".csv"), df.to_csv(index=False))
    text = render(df, rules, speedup, gflops, args)
    atomic.write_text(out.with_suffix(".md"), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
