"""The learning-rate grid's result: for every learned editor, the rate with the lowest best validation loss.

Each grid run is an ordinary training summary (``train.json`` layout) of one editor at one rate; the validation
loss is c_edit·L_edit + c_loc·L_loc on held-out dev edits that no table reports. Command::

    python -m mendrepro lr-grid --runs F... --out figures/tiny/lr_grid --profile tiny

writes ``STEM.csv`` (every run, the chosen one marked) and ``STEM.md`` (the choices as the config's ``train_lr``
block, then every run).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from mendrepro import atomic
from mendrepro.report import tables

COLUMNS = ("key", "task", "model", "editor", "lr", "accumulate", "best_val_loss", "best_step", "steps", "chosen")


def run_key(task: str, model: str, editor: str) -> str:
    """The config's ``train_lr`` key of one trained editor."""
    return f"{task}/{model}/{editor}"


def load_runs(paths: list[Path]) -> pd.DataFrame:
    """One row per grid run, with ``chosen`` True on each editor's lowest best validation loss (ties: lower lr)."""
    rows = []
    for path in paths:
        r = tables.read_json_object(path, what="training summary", rule="lr_grid_train")
        try:
            lr = float(r["train_config"]["lr"])
            loss = float(r["best_val_loss"])
            row = {
                "task": r["task"],
                "model": r["model"],
                "editor": r["editor"],
                "lr": lr,
                # Batches per optimiser step: the grid's choices hold only for the protocol they were run with.
                "accumulate": int(r["train_config"].get("accumulate", 1)),
                "best_val_loss": loss,
                "best_step": int(r["best_step"]),
                "steps": int(r["steps"]),
            }
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: not a training summary with train_config.lr and best_val_loss ({e})") from e
        row["key"] = run_key(row["task"], row["model"], row["editor"])
        rows.append(row)
    df = pd.DataFrame.from_records(rows, columns=[c for c in COLUMNS if c != "chosen"])
    if df.empty:
        raise ValueError("no grid runs given")
    dup = df.duplicated(["key", "lr"], keep=False)
    if dup.any():
        raise ValueError(f"two grid runs of the same editor and rate: {sorted(set(df.loc[dup, 'key']))}")
    # A run whose validation loss was never finite cannot be chosen.
    finite = df["best_val_loss"].map(math.isfinite)
    ranked = df[finite].sort_values(["key", "best_val_loss", "lr"])
    chosen = set(ranked.groupby("key", sort=False).head(1).index)
    df["chosen"] = [i in chosen for i in df.index]
    return df.sort_values(["task", "model", "editor", "lr"]).reset_index(drop=True)[list(COLUMNS)]


def choices(df: pd.DataFrame) -> dict[str, float]:
    """``{task/model/editor: chosen lr}``."""
    return {r.key: float(r.lr) for r in df[df["chosen"]].itertuples()}


def config_block(df: pd.DataFrame) -> str:
    """The choices as the config's ``train_lr`` mapping (YAML)."""
    lines = ["train_lr:"]
    lines += [f"  {key}: {lr:.1e}" for key, lr in sorted(choices(df).items())]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> list[Path]:
    df = load_runs(args.runs)
    csv_path, md_path = tables.stem_path(args.out, "csv"), tables.stem_path(args.out, "md")
    atomic.write_text(csv_path, df.to_csv(index=False))
    lrs = sorted(set(df["lr"]))
    profile = f" ({args.profile} profile)" if args.profile else ""
    body = [
        f"# Learning-rate grid{profile}",
        "",
        f"Rates {', '.join(f'{lr:g}' for lr in lrs)}; each run's score is its lowest validation loss "
        "(c_edit·L_edit + c_loc·L_loc on the held-out dev edits, never on reported ones). The chosen rate of each "
        "editor, as the config's `train_lr` block:",
        "",
        "```yaml",
        config_block(df).rstrip(),
        "```",
        "",
        "| editor | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |",
        "|---|" + "---|" * len(lrs),
    ]
    for key, g in df.groupby("key", sort=True):
        by_lr = {r.lr: r for r in g.itertuples()}
        cells = []
        for lr in lrs:
            r = by_lr.get(lr)
            if r is None:
                cells.append(tables.MISSING)
            else:
                cell = f"{r.best_val_loss:.4f} (step {r.best_step})"
                cells.append(f"**{cell}**" if r.chosen else cell)
        body.append(f"| {key} | " + " | ".join(cells) + " |")
    atomic.write_text(md_path, "\n".join(body) + "\n")
    return [md_path, csv_path]


def add_command(sub) -> None:
    p = sub.add_parser("lr-grid", help="the learning-rate grid: each learned editor's rate by validation loss")
    p.add_argument("--runs", nargs="+", required=True, type=Path, help="grid runs' training summaries (JSON)")
    p.add_argument("--out", required=True, type=Path, help="output stem: writes STEM.md and STEM.csv")
    p.add_argument("--profile", default=None, help="profile named in the heading")
    p.set_defaults(run=run)
