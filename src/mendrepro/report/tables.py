"""Render the paper's tables from raw metrics JSON files, with the published values beside ours.

Each evaluation run writes one metrics JSON object, e.g.::

    {"task": "zsre", "model": "bart", "editor": "mend", "n_edits": 1, "n": 100,
     "es": 0.93, "dd": 0.004, "dd_kind": "acc", "loc_before": 0.97, "loc_after": 0.966, "profile": "tiny"}

Tables are aggregations of these files only. Each table is written as Markdown, LaTeX and CSV
(:func:`write_table`). Command line, as a Snakemake rule calls it::

    python -m mendrepro.report.tables table4 --metrics a.json b.json ... \\
        --out figures/tiny/table4 --profile tiny
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from mendrepro.report import paper

REQUIRED_KEYS: tuple[str, ...] = ("task", "model", "editor", "n_edits", "n", "es", "dd", "dd_kind")
_STRING_KEYS = ("task", "model", "editor", "dd_kind")
_NUMBER_KEYS = ("n_edits", "n", "es", "dd")
DD_KINDS = ("acc", "ppl")

# Our editor ids -> the row labels printed in the paper, in the paper's row order, then our extra editors.
EDITOR_LABELS: dict[str, str] = {
    "ft": "FT",
    "ftkl": "FT+KL",
    "enn": "ENN",
    "ke": "KE",
    "mend": "MEND",
    "cache": "Cache",
}

# Table 4: which base model each task uses, and the kind of drawdown it reports.
TABLE4_MODELS: dict[str, str] = {"fever": "bert", "zsre": "bart", "wikitext": "gpt2"}
TABLE4_MODEL_LABELS: dict[str, str] = {"fever": "BERT-base", "zsre": "BART-base", "wikitext": "distilGPT-2"}
TABLE4_DD_KINDS: dict[str, str] = {"fever": "acc", "zsre": "acc", "wikitext": "ppl"}
DEFAULT_FEVER_FLIP_RULE = "always flip"
MISSING = "—"


class MetricsError(ValueError):
    """A metrics file is unreadable or does not have the expected keys or values (the message names it)."""


# ----------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------
def _read_one(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(
            f"metrics file not found: {path} (it is written by the evaluation rule; "
            f"`snakemake --cores all {path}` makes it)"
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise MetricsError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(record, dict):
        raise MetricsError(f"{path}: expected a JSON object, got {type(record).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise MetricsError(f"{path}: missing required key(s) {missing}; required: {list(REQUIRED_KEYS)}")
    for k in _STRING_KEYS:
        if not isinstance(record[k], str) or not record[k]:
            raise MetricsError(f"{path}: key {k!r} must be a non-empty string, got {record[k]!r}")
    for k in _NUMBER_KEYS:
        v = record[k]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise MetricsError(f"{path}: key {k!r} must be a number, got {v!r}")
    for k in ("n_edits", "n"):
        if record[k] != int(record[k]) or record[k] < 0:
            raise MetricsError(f"{path}: key {k!r} must be a non-negative integer, got {record[k]!r}")
    if record["dd_kind"] not in DD_KINDS:
        raise MetricsError(f"{path}: key 'dd_kind' must be one of {list(DD_KINDS)}, got {record['dd_kind']!r}")
    return record


def load_metrics(paths: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """One row per metrics JSON file, with its keys as columns and its file in column ``path``.

    Raises FileNotFoundError for a missing file and :class:`MetricsError` for a file that is not a JSON object
    with the required keys (:data:`REQUIRED_KEYS`) and value types; both messages name the file.
    """
    records = []
    for p in paths:
        path = Path(p)
        record = _read_one(path)
        record["path"] = str(path)
        records.append(record)
    df = pd.DataFrame.from_records(records)
    if df.empty:
        df = pd.DataFrame(columns=[*REQUIRED_KEYS, "path"])
    return df


# ----------------------------------------------------------------------------------------------------------
# Formatting
# ----------------------------------------------------------------------------------------------------------
def format_ours(value: float | None) -> str:
    """Our numbers: 3 decimals; a missing value is an em dash, a non-finite one ``n/a``."""
    if value is None:
        return MISSING
    value = float(value)
    if not math.isfinite(value):
        return "n/a"
    text = f"{value:.3f}"
    return "0.000" if text == "-0.000" else text


def editor_label(editor: str) -> str:
    """The paper's row label for one of our editor ids (unknown ids are shown as they are)."""
    return EDITOR_LABELS.get(editor, editor)


def _editor_order(editor: str) -> tuple[int, str]:
    order = list(EDITOR_LABELS)
    return (order.index(editor) if editor in order else len(order), editor)


# ----------------------------------------------------------------------------------------------------------
# Table 4
# ----------------------------------------------------------------------------------------------------------
def table4_columns() -> list[str]:
    """Column names of :func:`table4`, e.g. ``"FEVER ES (ours)"``, in order."""
    cols = []
    for task in paper.TABLE4_TASKS:
        label = paper.TABLE4_TASK_LABELS[task]
        for metric in ("ES", "DD"):
            cols += [f"{label} {metric} (ours)", f"{label} {metric} (paper)"]
    return cols


def table4_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """The metrics rows that belong in Table 4: its (task, model) pairs, one edit at a time.

    Raises ValueError when two files give the same cell, or a task reports the wrong kind of drawdown.
    """
    if metrics.empty:
        return metrics
    expected_model = metrics["task"].map(TABLE4_MODELS)
    rows = metrics[(metrics["model"] == expected_model) & (metrics["n_edits"] == 1)]
    for _, r in rows.iterrows():
        want = TABLE4_DD_KINDS[r["task"]]
        if r["dd_kind"] != want:
            raise MetricsError(f"{r['path']}: Table 4 reports {want} drawdown for {r['task']}, got {r['dd_kind']!r}")
    dup = rows[rows.duplicated(["task", "editor"], keep=False)]
    if not dup.empty:
        groups = dup.groupby(["task", "editor"])["path"].apply(list).to_dict()
        detail = "; ".join(f"{t}/{e}: {ps}" for (t, e), ps in groups.items())
        raise ValueError(f"several metrics files for the same Table 4 cell: {detail}")
    return rows


def table4(metrics: pd.DataFrame, *, include_paper_only: bool = False) -> pd.DataFrame:
    """Table 4 (FEVER/BERT-base, zsRE/BART-base, Wikitext/distilGPT-2) with the paper's values beside ours.

    Rows are editors in the paper's order (FT, FT+KL, ENN, KE, MEND), then our editors beyond the paper
    (labelled e.g. ``"Cache (beyond Table 4)"``). Columns are :func:`table4_columns`. Cells are strings: ours
    with 3 decimals, the paper's exactly as published, ``"—"`` where there is no value. Only rows with at
    least one of our results are shown unless ``include_paper_only``. The index is named ``"Editor"``.
    """
    rows = table4_rows(metrics)
    ours: dict[tuple[str, str], dict[str, float]] = {}
    for _, r in rows.iterrows():
        ours[(r["editor"], r["task"])] = {"ES": float(r["es"]), "DD": float(r["dd"])}

    label_to_id = {editor_label(e): e for e in EDITOR_LABELS}
    editor_ids = sorted({e for e, _ in ours}, key=_editor_order)
    lines: list[tuple[str, str | None]] = []  # (row label, our editor id or None)
    for label in paper.TABLE4_EDITORS:
        eid = label_to_id.get(label, label.lower())
        if eid in editor_ids or include_paper_only:
            lines.append((label, eid if eid in editor_ids else None))
    for eid in editor_ids:
        if editor_label(eid) not in paper.TABLE4_EDITORS:
            lines.append((f"{editor_label(eid)} (beyond Table 4)", eid))

    data = []
    for label, eid in lines:
        cells = []
        for task in paper.TABLE4_TASKS:
            task_label = paper.TABLE4_TASK_LABELS[task]
            for metric in ("ES", "DD"):
                value = ours.get((eid, task), {}).get(metric) if eid is not None else None
                published = paper.TABLE4.get((label, f"{task_label} {metric}"))
                cells += [format_ours(value), published if published is not None else MISSING]
        data.append(cells)
    df = pd.DataFrame(data, index=pd.Index([label for label, _ in lines], name="Editor"), columns=table4_columns())
    return df


def _describe_n(values: Sequence[int]) -> str:
    values = sorted(set(int(v) for v in values))
    if not values:
        return "no edits evaluated"
    if len(values) == 1:
        return f"n = {values[0]} edits per cell"
    return f"n = {values[0]}–{values[-1]} edits per cell"


def table4_caption(metrics: pd.DataFrame, profile: str | None = None) -> str:
    """The Table 4 caption: metric definitions, the profile, the FEVER edit-label rule and n."""
    rows = table4_rows(metrics)
    if profile is None:
        profiles = sorted(set(metrics["profile"].dropna())) if "profile" in metrics else []
        profile = ", ".join(profiles) if profiles else "unknown"
    fever = rows[rows["task"] == "fever"] if not rows.empty else rows
    rules: list[str] = []
    if not fever.empty:
        col = fever["fever_flip_rule"] if "fever_flip_rule" in fever else pd.Series([None] * len(fever))
        rules = sorted({str(v) if isinstance(v, str) and v else DEFAULT_FEVER_FLIP_RULE for v in col})
    flip = ", ".join(rules) if rules else f"{DEFAULT_FEVER_FLIP_RULE} (no FEVER results)"
    models = ", ".join(f"{paper.TABLE4_TASK_LABELS[t]}/{TABLE4_MODEL_LABELS[t]}" for t in paper.TABLE4_TASKS)
    tiny_note = (
        " The tiny profile uses small models of the same classes on a synthetic world, so our numbers are not"
        " expected to equal the paper's."
        if profile == "tiny"
        else ""
    )
    enn_note = ""
    if not rows.empty and "dd_original" in rows:
        enn = rows[(rows["editor"] == "enn") & rows["dd_original"].notna()]
        if not enn.empty:
            against = "; ".join(
                f"{paper.TABLE4_TASK_LABELS[t]} {format_ours(v)}"
                for t, v in zip(enn["task"], enn["dd_original"], strict=True)
            )
            enn_note = (
                " ENN trains the base model itself: its DD is against its own pre-edit model, as the release"
                f" computes it; against the original base model it is {against}."
            )
    return (
        f"Table 4 ({models}), one edit at a time; ours: profile {profile}, "
        f"{_describe_n(rows['n'].tolist() if not rows.empty else [])}.{tiny_note} "
        "ES = edit success on equivalence examples (mean over edits). "
        "acc DD (FEVER, zsRE) = locality accuracy before − after. "
        "ppl DD (Wikitext) = perplexity after − before, perplexity = exp(token-weighted mean NLL over all "
        f"locality tokens). FEVER edit label: {flip}.{enn_note} "
        f"Paper values: {paper.CITATION}, Table 4. {MISSING} = not run."
    )


# ----------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------
_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "−": r"\ensuremath{-}",
    "–": "--",
    "—": "---",
    "δ": r"\ensuremath{\delta}",
}


def latex_escape(text: str) -> str:
    """Escape text for LaTeX (special characters, and the few non-ASCII symbols our tables use)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _markdown_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "\\*_`" else ch for ch in text)


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_table(df: pd.DataFrame, stem: Path, caption: str) -> list[Path]:
    """Write ``stem.md``, ``stem.tex`` and ``stem.csv``, each atomically; return the three paths.

    Markdown: the caption as an italic line, then the table. LaTeX: a ``table`` environment with the caption
    and label ``tab:<stem name>``, every cell escaped. CSV: the table with its index as the first column.
    """
    stem = Path(stem)
    md_path, tex_path, csv_path = (stem.with_name(stem.name + ext) for ext in (".md", ".tex", ".csv"))

    md = f"*{_markdown_escape(caption)}*\n\n{df.to_markdown(stralign='left', numalign='left', disable_numparse=True)}\n"

    tex_df = df.reset_index()  # the index (e.g. "Editor") becomes the first column: one header row
    tex_df.columns = [latex_escape(c) for c in tex_df.columns]
    tex_df = tex_df.map(latex_escape)
    tex = tex_df.to_latex(
        index=False,
        escape=False,
        caption=latex_escape(caption),
        label=f"tab:{stem.name}",
        column_format="l" + "r" * len(df.columns),
    )

    csv = df.to_csv(index=True, lineterminator="\n")

    for path, text in ((md_path, md), (tex_path, tex), (csv_path, csv)):
        _atomic_write_text(path, text)
    return [md_path, tex_path, csv_path]


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------
def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mendrepro.report.tables",
        description="Render a paper table (md, tex, csv) from metrics JSON files.",
    )
    sub = parser.add_subparsers(dest="table", required=True)
    p4 = sub.add_parser("table4", help="Table 4: FEVER/BERT, zsRE/BART, Wikitext/distilGPT-2, one edit")
    p4.add_argument("--metrics", nargs="+", required=True, type=Path, help="metrics JSON files")
    p4.add_argument("--out", required=True, type=Path, help="output stem: writes STEM.md, STEM.tex, STEM.csv")
    p4.add_argument("--profile", default=None, help="profile named in the caption (default: from the metrics)")
    p4.add_argument("--show-paper-only", action="store_true", help="also show the paper's editors that we did not run")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        metrics = load_metrics(args.metrics)
        if args.table == "table4":
            used = table4_rows(metrics)
            ignored = sorted(set(metrics["path"]) - set(used["path"])) if not metrics.empty else []
            for p in ignored:
                print(f"warning: {p} is not a Table 4 result (task/model/n_edits); ignored", file=sys.stderr)
            df = table4(metrics, include_paper_only=args.show_paper_only)
            caption = table4_caption(metrics, profile=args.profile)
        else:  # pragma: no cover - argparse only allows the tables above
            raise AssertionError(args.table)
        written = write_table(df, args.out, caption)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
