"""Where a DAG run's time went: the Snakemake `benchmark:` files of one results folder, summed per rule.

    .venv/bin/python -m benchmarks.dag_profile results/tiny [seed0]

prints, per rule, the number of jobs, their summed wall time and CPU time, the slowest job, and the largest peak
resident set (`max_rss`), plus the share of each rule in the summed wall time. Where the run forked its jobs from
the fork server, the forked rules' CPU time and max RSS are shown as a dash (they are the waiting client's). A second
argument keeps one folder of benchmarks/ (e.g. `seed0`: one seed's jobs; the memory probe, shared by every seed, is
always kept). Every job of this DAG is single-threaded, so summed wall time / cores is a lower bound of the run's
wall time.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from mendrepro.forkserver import SERVED

# The command each benchmark folder's jobs run, where the folder is not named after it. A local run forks the served
# commands' jobs from the fork server: their benchmark files' CPU time and max RSS are the waiting client's.
_COMMAND = {"lr_grid": "train"}


def load(results: Path, only: str | None = None) -> pd.DataFrame:
    """One row per benchmark file: its rule (the folder under benchmarks/, seed folders skipped), job and numbers."""
    rows = []
    for tsv in sorted((results / "benchmarks").rglob("*.tsv")):
        parts = tsv.relative_to(results / "benchmarks").parts
        if only and parts[0] != only and parts[0].startswith("seed"):
            continue
        parts = [p for p in parts if not p.startswith("seed")]
        rule = parts[0] if len(parts) > 1 else "pretrain" if parts[0].startswith("pretrain") else parts[0]
        df = pd.read_csv(tsv, sep="\t")
        rows.append({"rule": rule, "job": "/".join(parts)[: -len(".tsv")], **df.iloc[-1][["s", "cpu_time", "max_rss"]]})
    if not rows:
        raise SystemExit(f"no benchmark files under {results / 'benchmarks'}")
    return pd.DataFrame(rows)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby("rule")
    out = pd.DataFrame(
        {
            "jobs": g.size(),
            "wall_s": g["s"].sum().round(0),
            "cpu_s": g["cpu_time"].sum(min_count=1).round(0),
            "slowest_s": g["s"].max().round(1),
            "max_rss_mb": g["max_rss"].max().round(0),
        }
    )
    out["share"] = (out["wall_s"] / out["wall_s"].sum()).round(3)
    return out.sort_values("wall_s", ascending=False)


def _markdown(df: pd.DataFrame, **kwargs) -> str:
    """``df`` as a markdown table, a left-out number as a dash (tabulate's missingval applies to None, not NaN)."""
    return df.astype(object).where(df.notna(), None).to_markdown(missingval="—", **kwargs)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    results = Path(argv[0] if argv else "results/tiny")
    df = load(results, argv[1] if len(argv) > 1 else None)
    forked = (results / "logs" / "fork_server.log").exists()
    if forked:
        served = df["rule"].map(lambda rule: _COMMAND.get(rule, rule)).isin(SERVED)
        df.loc[served, ["cpu_time", "max_rss"]] = float("nan")
    table = summary(df)
    print(_markdown(table))
    cpu = "" if forked else f", {df['cpu_time'].sum():.0f} s CPU time"
    print(f"\n{len(df)} jobs, {df['s'].sum():.0f} s summed wall time{cpu}")
    if forked:
        print(
            "jobs of this run were forked from the fork server (mendrepro.forkserver): their wall times are the"
            " jobs'; CPU time and max RSS are left out for them, being the waiting processes'"
            " (re-run with --config fork_server=false for those)"
        )
    slow = df.sort_values("s", ascending=False).head(10)
    print("\nslowest jobs:\n" + _markdown(slow[["job", "s", "max_rss"]], index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
