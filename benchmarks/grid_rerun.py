"""The grid re-run on this machine's CPU path, as far as the ledger holds it, against the committed grid.

    .venv/bin/python -m benchmarks.grid_rerun [--ledger config/lr_grid/cells/tiny] \
        [--grid config/lr_grid/tiny.csv] [--config config/tiny.yaml] [--out benchmarks/results/grid_rerun.md]

The committed grid (`config/lr_grid/tiny.csv`, the config's `train_lr` and `train_c_edit`) was run on the earlier
machine's base models; this machine's pre-training gives other ones (docs/running.md, "One floating-point path per
CPU family"). The grid is re-run cell by cell into the ledger (`make grid`, `lr_grid.ledger`) over several
sessions. For each editor whose cells the ledger holds, this prints how many it holds, how many are within the
drawdown tolerance then and now, and, once all of its cells are in, the cell the rule chooses now beside the
committed choice, with their validation ES and drawdown.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import yaml

from mendrepro import grid_cells
from mendrepro.report import lr_grid


def _within(df: pd.DataFrame) -> pd.Series:
    return df["val_dd"] <= df["dd_allowed"]


def compare(ledger: Path, grid: Path, tol: lr_grid.Tolerance, n_cells: int) -> pd.DataFrame:
    """One row per editor the ledger has cells of: cells held, within tolerance then / now, and the choices."""
    now = lr_grid.load_runs(grid_cells.cells(ledger), tol)  # a profile's ledger folder mirrors its results
    then, _ = lr_grid.read_grid(grid)
    rows = []
    for key, cells in now.groupby("key", sort=True):
        old = then[then["key"] == key]
        row = {
            "editor": key,
            "cells": len(cells),
            "within_then": int(_within(old).sum()),
            "within_now": int(_within(cells).sum()) if len(cells) == n_cells else None,
        }
        for when, df in (("then", old), ("now", cells if len(cells) == n_cells else None)):
            pick = df[df["chosen"]].iloc[0] if df is not None and df["chosen"].any() else None
            row[f"choice_{when}"] = None if pick is None else f"{pick.lr:g} / {pick.c_edit:g}"
            row[f"es_{when}"] = None if pick is None else float(pick.val_es)
            row[f"dd_{when}"] = None if pick is None else float(pick.val_dd)
        rows.append(row)
    return pd.DataFrame.from_records(rows)


def render(df: pd.DataFrame, n_total: int, n_cells: int) -> str:
    done = int(df["cells"].sum()) if not df.empty else 0
    complete = int((df["cells"] == n_cells).sum()) if not df.empty else 0
    changed = int((df["choice_now"].notna() & (df["choice_now"] != df["choice_then"])).sum()) if complete else 0

    def num(v, fmt=""):
        return "" if v is None or pd.isna(v) else format(v, fmt)

    lines = [
        "# The grid re-run on this machine's CPU path (ledger) against the committed grid",
        "",
        f"The ledger holds {done} of the grid's {n_total} cells: {complete} editors complete ({n_cells} cells each), "
        f"whose choice by the rule moved for {changed}. Choice = lr / c_edit; ES and DD of the chosen cell on the "
        "validation edits; within = cells whose validation drawdown is within the tolerance (then: the committed "
        "grid's, of the same editor).",
        "",
        "| editor | cells | within then | within now | choice then | choice now | ES then | ES now | DD then "
        "| DD now |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in df.itertuples():
        lines.append(
            f"| {r.editor} | {r.cells} | {r.within_then} | {num(r.within_now, '.0f')} | {num(r.choice_then)} | "
            f"{num(r.choice_now)} | {num(r.es_then, '.3f')} | {num(r.es_now, '.3f')} | {num(r.dd_then, '.4f')} | "
            f"{num(r.dd_now, '.4f')} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks.grid_rerun", description=__doc__.splitlines()[0])
    p.add_argument("--ledger", type=Path, default=Path("config/lr_grid/cells/tiny"))
    p.add_argument("--grid", type=Path, default=Path("config/lr_grid/tiny.csv"))
    p.add_argument("--config", type=Path, default=Path("config/tiny.yaml"))
    p.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = p.parse_args(argv)
    g = yaml.safe_load(args.config.read_text())["lr_grid"]
    tol = lr_grid.Tolerance(**g.get("tolerance", {}))
    n_cells = len(g["lrs"]) * len(g.get("c_edits", [lr_grid.RELEASE_C_EDIT]))
    n_total = len(lr_grid.read_grid(args.grid)[0])
    text = render(compare(args.ledger, args.grid, tol, n_cells), n_total, n_cells)
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
