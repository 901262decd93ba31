"""Table 6 of the paper: MEND's ablations on Wikitext/distilGPT-2 and zsRE/BART-base, ours beside the paper's.

Rows are the editors of :data:`mendrepro.report.paper.TABLE6_VARIANTS` (``"mend-no_sharing"``, …, ``"mend"``)
in the paper's order, one edit at a time; besides ES and DD per task, each row gives our editor network's
trainable parameter count on each task (``editor_parameters`` of the metrics file) and the paper's order of
that count (:data:`~mendrepro.report.paper.TABLE6_PARAMETERS`). Command::

    python -m mendrepro table6 --metrics F... --out figures/tiny/table6 --profile tiny
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from mendrepro.report import paper, tables

TABLE6_TASKS = ("wikitext", "zsre")  # the paper's column order
PAPER_PARAMETERS_COLUMN = "Editor Parameters (paper)"

_TABLE6 = tables.OneEditTable(
    number=6,
    groups=tables.task_groups(TABLE6_TASKS),
    editors=paper.TABLE6_EDITORS,
    published=paper.TABLE6,
    labels=paper.TABLE6_VARIANTS,
    beyond=False,
)


def parameter_columns() -> list[str]:
    """Our parameter count per task (``"Wikitext params (ours)"``, ``"zsRE params (ours)"``), then the paper's."""
    return [f"{paper.TABLE4_TASK_LABELS[t]} params (ours)" for t in TABLE6_TASKS] + [PAPER_PARAMETERS_COLUMN]


def table6_columns() -> list[str]:
    """Column names of :func:`table6`: :func:`parameter_columns`, then ES and DD per task, ours beside paper."""
    return parameter_columns() + tables.one_edit_columns(_TABLE6)


def table6_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """The metrics rows that belong in Table 6: its editors on Wikitext/distilGPT-2 and zsRE/BART-base, one edit
    at a time, trained with one edit per step (the task is in column ``group``).

    Raises ValueError when two files give the same cell with the same seed, or a task reports the wrong kind
    of drawdown.
    """
    return tables.one_edit_rows(_TABLE6, metrics)


def table6(metrics: pd.DataFrame, *, include_paper_only: bool = False) -> pd.DataFrame:
    """Table 6 (MEND ablations) with the paper's values beside ours.

    Rows are the paper's variants in its order (No sharing, …, MEND): those with at least one of our results,
    or all with ``include_paper_only``; the index is named ``"Editor"``. Columns are :func:`table6_columns`.
    Cells are strings: ours with 3 decimals (parameter counts as ``"1.19M"``), the paper's exactly as published,
    ``"—"`` where there is no value.
    """
    df = tables.one_edit_table(_TABLE6, metrics, include_paper_only)
    rows = table6_rows(metrics)
    params = {(r["editor"], r["group"]): r.get("editor_parameters") for _, r in rows.iterrows()}
    label_to_id = {label: eid for eid, label in paper.TABLE6_VARIANTS.items()}
    ours_cols, paper_col = parameter_columns()[:-1], parameter_columns()[-1]
    for task, col in zip(TABLE6_TASKS, ours_cols, strict=True):
        df[col] = [tables.format_parameters(params.get((label_to_id[label], task))) for label in df.index]
    df[paper_col] = [paper.TABLE6_PARAMETERS.get(label, tables.MISSING) for label in df.index]
    return df[table6_columns()]


def table6_caption(metrics: pd.DataFrame, profile: str | None = None) -> str:
    """The Table 6 caption: the variants, metric and parameter definitions, the profile and n."""
    rows = table6_rows(metrics)
    profile = tables.caption_profile(metrics, profile)
    tiny_note = tables.tiny_note(profile)
    return (
        f"Table 6 (MEND ablations; {tables.caption_models(_TABLE6)}), one edit at a time; ours: profile {profile}, "
        f"{tables.describe_n(rows['n'].tolist() if not rows.empty else [])}.{tables.seeds_note(rows)}{tiny_note} "
        "No sharing = one editor network per edited layer (MEND shares one per layer shape); No norm = no "
        "normalization of the editor's inputs; No ID init = random instead of identity initialization; "
        "Only u / Only δ / Only smaller = the editor transforms only the layer input u, only the gradient δ at "
        "its output, or only the smaller of the two. "
        f"{tables.ES_DEFINITION} "
        f"ppl DD (Wikitext) = {tables.PPL_DD}. acc DD (zsRE) = locality accuracy before − after. "
        "params (ours) = trainable parameters of our editor network on that task. Editor Parameters (paper) = "
        "the order of the editor's parameter count printed in the paper, with m, n = input and output width of an "
        "edited layer and N = number of edited layers. "
        f"Paper values: {paper.CITATION}, Table 6. {tables.PAPER_ONLY}"
    )


def _run(args: argparse.Namespace) -> list[Path]:
    metrics = tables.load_metrics(args.metrics)
    used = table6_rows(metrics)
    tables.warn_ignored(
        tables.unused_paths(metrics, used),
        "is not a Table 6 result (Wikitext/gpt2 or zsRE/bart, a MEND variant, n_edits == train_k == 1)",
    )
    df = table6(metrics, include_paper_only=args.show_paper_only)
    return tables.write_table(df, args.out, table6_caption(metrics, profile=args.profile))


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``table6`` on the report command line (:func:`mendrepro.report.cli.build_parser`)."""
    p = sub.add_parser("table6", help="Table 6: MEND ablations on Wikitext/distilGPT-2 and zsRE/BART, one edit")
    tables.add_table_arguments(p)
    p.set_defaults(run=_run)
