"""The (learning rate × edit weight) grid's result: one selection rule, in validation ES and drawdown, for every
learned editor.

Each grid run is an ordinary training summary (``train.json`` layout) of one editor at one (lr, c_edit); its
checkpoint was selected within the run by its own validation loss, and its score is the validation ES and drawdown
(against the original base model) of that checkpoint, on held-out dev edits that no table reports. Losses at
different c_edit are not comparable, so they choose nothing across cells. Command::

    python -m mendrepro lr-grid --runs F... --out figures/tiny/lr_grid --profile tiny

writes ``STEM.csv`` (every cell, the chosen one marked) and ``STEM.md`` (the choices as the config's ``train_lr`` and
``train_c_edit`` blocks, then every cell).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mendrepro import atomic
from mendrepro.report import tables

COLUMNS = (
    "key",
    "task",
    "model",
    "editor",
    "lr",
    "c_edit",
    "accumulate",
    "val_es",
    "val_dd",
    "dd_kind",
    "dd_original",
    "dd_allowed",
    "best_val_loss",
    "best_step",
    "steps",
    "chosen",
)
# The release's edit weight; a grid of the old format (lr only, chosen by loss) was run at it.
RELEASE_C_EDIT = 0.1


@dataclass(frozen=True)
class Tolerance:
    """How much validation drawdown a cell may cost: absolute for accuracy, a fraction of the original model's
    validation perplexity for perplexity (a fixed number of ppl points would mean different things per model)."""

    accuracy: float = 0.02
    perplexity: float = 0.02

    def allowed(self, kind: str, original: float) -> float:
        if kind == "accuracy":
            return self.accuracy
        if kind == "perplexity":
            return self.perplexity * original
        raise ValueError(f"drawdown kind must be accuracy or perplexity, not {kind!r}")


def run_key(task: str, model: str, editor: str) -> str:
    """The config's ``train_lr`` / ``train_c_edit`` key of one trained editor."""
    return f"{task}/{model}/{editor}"


def best_entry(summary: dict) -> dict:
    """The validation history entry of the run's selected checkpoint (``best_step``)."""
    for h in summary.get("history", []):
        if int(h["step"]) == int(summary["best_step"]):
            return h
    raise KeyError(f"no validation history entry at best_step {summary['best_step']}")


def _cell(r: dict) -> dict:
    h = best_entry(r)
    kind = "perplexity" if "ppl_original" in h else "accuracy"
    return {
        "task": r["task"],
        "model": r["model"],
        "editor": r["editor"],
        "lr": float(r["train_config"]["lr"]),
        "c_edit": float(r["train_config"]["c_edit"]),
        # Batches per optimiser step: the grid's choices hold only for the protocol they were run with.
        "accumulate": int(r["train_config"].get("accumulate", 1)),
        "val_es": float(h["es"]),
        "val_dd": float(h["dd"]),
        "dd_kind": kind,
        "dd_original": float(h["ppl_original" if kind == "perplexity" else "acc_original"]),
        "best_val_loss": float(r["best_val_loss"]),
        "best_step": int(r["best_step"]),
        "steps": int(r["steps"]),
    }


def choose(cells: pd.DataFrame, tol: Tolerance) -> int | None:
    """The index of the chosen cell of one editor (the rule of docs/method.md): among the cells whose validation
    drawdown is within tolerance, the highest validation ES, ties to the lower drawdown, then the lower c_edit, then
    the lower lr; if none is within tolerance, the lowest drawdown (ties: higher ES, lower c_edit, lower lr). A cell
    whose ES or drawdown is not finite is never chosen; None when no cell is finite."""
    ok = cells[cells["val_es"].map(math.isfinite) & cells["val_dd"].map(math.isfinite)]
    if ok.empty:
        return None
    allowed = [tol.allowed(k, o) for k, o in zip(ok["dd_kind"], ok["dd_original"], strict=True)]
    within = ok[ok["val_dd"].to_numpy() <= allowed]
    if not within.empty:
        ranked = within.assign(neg_es=-within["val_es"]).sort_values(["neg_es", "val_dd", "c_edit", "lr"])
    else:
        ranked = ok.assign(neg_es=-ok["val_es"]).sort_values(["val_dd", "neg_es", "c_edit", "lr"])
    return int(ranked.index[0])


def select(df: pd.DataFrame, tol: Tolerance) -> pd.DataFrame:
    """``df`` with ``dd_allowed`` and ``chosen`` (one per editor) set, sorted by editor, c_edit, lr."""
    df = df.copy()
    df["dd_allowed"] = [tol.allowed(k, o) for k, o in zip(df["dd_kind"], df["dd_original"], strict=True)]
    chosen = {choose(g, tol) for _, g in df.groupby("key", sort=False)}
    df["chosen"] = [i in chosen for i in df.index]
    return df.sort_values(["task", "model", "editor", "c_edit", "lr"]).reset_index(drop=True)[list(COLUMNS)]


def load_runs(paths: list[Path], tol: Tolerance = Tolerance()) -> pd.DataFrame:
    """One row per grid cell, ``chosen`` by the selection rule."""
    rows = []
    for path in paths:
        r = tables.read_json_object(path, what="training summary", rule="lr_grid_train")
        try:
            row = _cell(r)
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(
                f"{path}: not a training summary with train_config.lr/c_edit, best_step and a validation history "
                f"entry (es, dd, acc_original or ppl_original) at best_step ({e})"
            ) from e
        row["key"] = run_key(row["task"], row["model"], row["editor"])
        rows.append(row)
    df = pd.DataFrame.from_records(rows)
    if df.empty:
        raise ValueError("no grid runs given")
    dup = df.duplicated(["key", "lr", "c_edit"], keep=False)
    if dup.any():
        raise ValueError(f"two grid runs of the same editor, rate and c_edit: {sorted(set(df.loc[dup, 'key']))}")
    return select(df, tol)


def read_grid(path: Path) -> tuple[pd.DataFrame, bool]:
    """A committed grid CSV and whether it is of the old format: learning rate only, every run at the release's
    c_edit 0.1, chosen by the lowest best validation loss (no validation ES or drawdown recorded)."""
    df = pd.read_csv(path)
    legacy = "c_edit" not in df.columns
    if legacy:
        df["c_edit"] = RELEASE_C_EDIT
    return df, legacy


def choices(df: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """``{task/model/editor: (chosen lr, chosen c_edit)}``."""
    return {r.key: (float(r.lr), float(r.c_edit)) for r in df[df["chosen"]].itertuples()}


def config_block(df: pd.DataFrame) -> str:
    """The choices as the config's ``train_lr`` and ``train_c_edit`` mappings (YAML)."""
    chosen = sorted(choices(df).items())
    lines = ["train_lr:", *(f"  {key}: {lr:.1e}" for key, (lr, _) in chosen)]
    lines += ["train_c_edit:", *(f"  {key}: {c:g}" for key, (_, c) in chosen)]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> list[Path]:
    tol = Tolerance(accuracy=args.tol_accuracy, perplexity=args.tol_perplexity)
    df = load_runs(args.runs, tol)
    csv_path, md_path = tables.stem_path(args.out, "csv"), tables.stem_path(args.out, "md")
    atomic.write_text(csv_path, df.to_csv(index=False))
    lrs, cs = sorted(set(df["lr"])), sorted(set(df["c_edit"]))
    profile = f" ({args.profile} profile)" if args.profile else ""
    body = [
        f"# Learning-rate × edit-weight grid{profile}",
        "",
        f"Rates {', '.join(f'{lr:g}' for lr in lrs)}; c_edit {', '.join(f'{c:g}' for c in cs)}. Each cell's "
        "checkpoint is the one with its own lowest validation loss; its score is that checkpoint's validation ES "
        "and drawdown against the original model (held-out dev edits, never reported ones). Chosen per editor: "
        f"among the cells with drawdown within tolerance (accuracy {tol.accuracy:g} absolute; perplexity "
        f"{tol.perplexity:g} × the original model's validation perplexity), the highest ES; ties to the lower "
        "drawdown, then the lower c_edit, then the lower lr; if none is within tolerance, the lowest drawdown "
        "(docs/method.md). The choices, as the config's blocks:",
        "",
        "```yaml",
        config_block(df).rstrip(),
        "```",
        "",
        "| editor | lr | c_edit | val ES | val DD | DD allowed | best step | chosen |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in df.itertuples():
        mark = "**yes**" if r.chosen else ""
        body.append(
            f"| {r.key} | {r.lr:g} | {r.c_edit:g} | {r.val_es:.3f} | {r.val_dd:.4f} | {r.dd_allowed:.4f} "
            f"({r.dd_kind}) | {r.best_step} | {mark} |"
        )
    atomic.write_text(md_path, "\n".join(body) + "\n")
    return [md_path, csv_path]


def add_command(sub) -> None:
    p = sub.add_parser("lr-grid", help="the lr × c_edit grid: each learned editor's choice by validation ES and DD")
    p.add_argument("--runs", nargs="+", required=True, type=Path, help="grid runs' training summaries (JSON)")
    p.add_argument("--out", required=True, type=Path, help="output stem: writes STEM.md and STEM.csv")
    p.add_argument("--profile", default=None, help="profile named in the heading")
    p.add_argument("--tol-accuracy", type=float, default=Tolerance.accuracy, help="accuracy drawdown allowed")
    p.add_argument(
        "--tol-perplexity", type=float, default=Tolerance.perplexity, help="ppl drawdown allowed, × original ppl"
    )
    p.set_defaults(run=run)
