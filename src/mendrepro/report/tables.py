"""Render the paper's tables from raw metrics JSON files, with the published values beside ours.

Each evaluation run writes one metrics JSON object, e.g.::

    {"task": "zsre", "model": "bart", "editor": "mend", "n_edits": 1, "n": 100,
     "es": 0.93, "dd": 0.004, "dd_kind": "acc", "loc_before": 0.97, "loc_after": 0.966, "profile": "tiny"}

Tables are aggregations of these files only. Each table is written as Markdown, LaTeX and CSV
(:func:`write_table`). Command line, as a Snakemake rule calls it::

    python -m mendrepro.report.tables table4 --metrics a.json b.json ... \\
        --out figures/tiny/table4 --profile tiny

and likewise ``table3`` (large models: GPT-Neo, GPT-J on Wikitext; T5-XL, T5-XXL on zsRE).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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

# Table 3: our model ids -> the paper's column labels (in the paper's column order), the task each is edited
# on, and the kind of drawdown it reports (taken from the paper's columns).
TABLE3_MODELS: dict[str, str] = {"gptneo": "GPT-Neo 2.7B", "gptj": "GPT-J 6B", "t5xl": "T5-XL", "t5xxl": "T5-XXL"}
TABLE3_TASKS: dict[str, str] = {"gptneo": "wikitext", "gptj": "wikitext", "t5xl": "zsre", "t5xxl": "zsre"}
TABLE3_DD_KINDS: dict[str, str] = {m: paper.TABLE3_DD_KIND[f"{label} DD"] for m, label in TABLE3_MODELS.items()}

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
# One-edit tables (Tables 3 and 4): one column group per (task, model), ES and DD, ours beside the paper's
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Group:
    """One column group of a one-edit table: the results of ``model`` edited on ``task``."""

    key: str  # names the cell in error messages: the task (Table 4) or our model id (Table 3)
    label: str  # the paper's column label, e.g. "zsRE" or "GPT-J 6B"
    task: str
    model: str
    dd_kind: str
    model_label: str


@dataclass(frozen=True)
class _OneEditTable:
    number: int
    groups: tuple[_Group, ...]
    editors: tuple[str, ...]  # the paper's row labels, in its order
    published: Mapping[tuple[str, str], str]  # the paper's values, keyed (row label, "<group label> <ES|DD>")


_TABLE3 = _OneEditTable(
    number=3,
    groups=tuple(_Group(m, label, TABLE3_TASKS[m], m, TABLE3_DD_KINDS[m], label) for m, label in TABLE3_MODELS.items()),
    editors=paper.TABLE3_EDITORS,
    published=paper.TABLE3,
)
_TABLE4 = _OneEditTable(
    number=4,
    groups=tuple(
        _Group(t, paper.TABLE4_TASK_LABELS[t], t, TABLE4_MODELS[t], TABLE4_DD_KINDS[t], TABLE4_MODEL_LABELS[t])
        for t in paper.TABLE4_TASKS
    ),
    editors=paper.TABLE4_EDITORS,
    published=paper.TABLE4,
)


def _columns(spec: _OneEditTable) -> list[str]:
    cols = []
    for group in spec.groups:
        for metric in ("ES", "DD"):
            cols += [f"{group.label} {metric} (ours)", f"{group.label} {metric} (paper)"]
    return cols


def _group_keys(spec: _OneEditTable, metrics: pd.DataFrame) -> pd.Series:
    """The column group of each metrics row (None for a row that is not in the table), same index."""
    by_pair = {(g.task, g.model): g.key for g in spec.groups}
    keys = [
        by_pair.get((task, model)) if n_edits == 1 else None
        for task, model, n_edits in zip(metrics["task"], metrics["model"], metrics["n_edits"], strict=True)
    ]
    return pd.Series(keys, index=metrics.index, dtype=object)


def _rows(spec: _OneEditTable, metrics: pd.DataFrame) -> pd.DataFrame:
    if metrics.empty:
        return metrics
    keys = _group_keys(spec, metrics)
    in_table = keys.notna()
    rows, keys = metrics[in_table], keys[in_table]
    want_kind = {g.key: g.dd_kind for g in spec.groups}
    for (_, r), key in zip(rows.iterrows(), keys, strict=True):
        want = want_kind[key]
        if r["dd_kind"] != want:
            raise MetricsError(
                f"{r['path']}: Table {spec.number} reports {want} drawdown for {key}, got {r['dd_kind']!r}"
            )
    cells = pd.DataFrame({"group": keys, "editor": rows["editor"], "path": rows["path"]})
    dup = cells[cells.duplicated(["group", "editor"], keep=False)]
    if not dup.empty:
        groups = dup.groupby(["group", "editor"])["path"].apply(list).to_dict()
        detail = "; ".join(f"{k}/{e}: {ps}" for (k, e), ps in groups.items())
        raise ValueError(f"several metrics files for the same Table {spec.number} cell: {detail}")
    return rows


def _table(spec: _OneEditTable, metrics: pd.DataFrame, include_paper_only: bool) -> pd.DataFrame:
    rows = _rows(spec, metrics)
    keys = _group_keys(spec, rows) if not rows.empty else pd.Series([], dtype=object)
    ours: dict[tuple[str, str], dict[str, float]] = {}
    for (_, r), key in zip(rows.iterrows(), keys, strict=True):
        ours[(r["editor"], key)] = {"ES": float(r["es"]), "DD": float(r["dd"])}

    label_to_id = {editor_label(e): e for e in EDITOR_LABELS}
    editor_ids = sorted({e for e, _ in ours}, key=_editor_order)
    lines: list[tuple[str, str | None]] = []  # (row label, our editor id or None)
    for label in spec.editors:
        eid = label_to_id.get(label, label.lower())
        if eid in editor_ids or include_paper_only:
            lines.append((label, eid if eid in editor_ids else None))
    for eid in editor_ids:
        if editor_label(eid) not in spec.editors:
            lines.append((f"{editor_label(eid)} (beyond Table {spec.number})", eid))

    data = []
    for label, eid in lines:
        cells = []
        for group in spec.groups:
            for metric in ("ES", "DD"):
                value = ours.get((eid, group.key), {}).get(metric) if eid is not None else None
                published = spec.published.get((label, f"{group.label} {metric}"))
                cells += [format_ours(value), published if published is not None else MISSING]
        data.append(cells)
    return pd.DataFrame(data, index=pd.Index([label for label, _ in lines], name="Editor"), columns=_columns(spec))


def _describe_n(values: Sequence[int]) -> str:
    values = sorted(set(int(v) for v in values))
    if not values:
        return "no edits evaluated"
    if len(values) == 1:
        return f"n = {values[0]} edits per cell"
    return f"n = {values[0]}–{values[-1]} edits per cell"


def _caption_profile(metrics: pd.DataFrame, profile: str | None) -> str:
    """``profile`` if given, else the profiles named in the metrics, else ``"unknown"``."""
    if profile is not None:
        return profile
    profiles = sorted(set(metrics["profile"].dropna())) if "profile" in metrics else []
    return ", ".join(profiles) if profiles else "unknown"


def _caption_models(spec: _OneEditTable) -> str:
    return ", ".join(f"{paper.TABLE4_TASK_LABELS[g.task]}/{g.model_label}" for g in spec.groups)


_PPL_DD = "perplexity after − before, perplexity = exp(token-weighted mean NLL over all locality tokens)"


# ----------------------------------------------------------------------------------------------------------
# Table 3
# ----------------------------------------------------------------------------------------------------------
def table3_columns() -> list[str]:
    """Column names of :func:`table3`, e.g. ``"GPT-Neo 2.7B ES (ours)"``, in order."""
    return _columns(_TABLE3)


def table3_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """The metrics rows that belong in Table 3: its models (:data:`TABLE3_MODELS`) on their tasks, one edit.

    Raises ValueError when two files give the same cell, or a model reports the wrong kind of drawdown.
    """
    return _rows(_TABLE3, metrics)


def table3(metrics: pd.DataFrame, *, include_paper_only: bool = False) -> pd.DataFrame:
    """Table 3 (GPT-Neo 2.7B, GPT-J 6B on Wikitext; T5-XL, T5-XXL on zsRE) with the paper's values beside ours.

    Rows are editors in the paper's order (FT, FT+KL, KE, MEND), then our editors beyond the paper (labelled
    e.g. ``"ENN (beyond Table 3)"``). Columns are :func:`table3_columns`. Cells are strings: ours with 3
    decimals, the paper's exactly as published, ``"—"`` where there is no value. Only rows with at least one of
    our results are shown unless ``include_paper_only``. The index is named ``"Editor"``.
    """
    return _table(_TABLE3, metrics, include_paper_only)


def table3_caption(metrics: pd.DataFrame, profile: str | None = None) -> str:
    """The Table 3 caption: models, metric definitions, the profile and n."""
    rows = table3_rows(metrics)
    profile = _caption_profile(metrics, profile)
    tiny_note = (
        " The tiny profile uses tiny stand-ins of the same model classes (GPT-Neo, GPT-J, and two sizes of a"
        " T5 v1.1-style gated encoder-decoder) on a synthetic world, so our numbers are not expected to equal"
        " the paper's."
        if profile == "tiny"
        else ""
    )
    return (
        f"Table 3 ({_caption_models(_TABLE3)}), one edit at a time; ours: profile {profile}, "
        f"{_describe_n(rows['n'].tolist() if not rows.empty else [])}.{tiny_note} "
        "ES = edit success on equivalence examples (mean over edits). "
        "acc DD (T5-XL, T5-XXL on zsRE) = locality accuracy before − after, on Natural Questions. "
        f"ppl DD (GPT-Neo, GPT-J on Wikitext) = {_PPL_DD}. "
        f"Paper values: {paper.CITATION}, Table 3. {MISSING} = not run."
    )


# ----------------------------------------------------------------------------------------------------------
# Table 4
# ----------------------------------------------------------------------------------------------------------
def table4_columns() -> list[str]:
    """Column names of :func:`table4`, e.g. ``"FEVER ES (ours)"``, in order."""
    return _columns(_TABLE4)


def table4_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """The metrics rows that belong in Table 4: its (task, model) pairs, one edit at a time.

    Raises ValueError when two files give the same cell, or a task reports the wrong kind of drawdown.
    """
    return _rows(_TABLE4, metrics)


def table4(metrics: pd.DataFrame, *, include_paper_only: bool = False) -> pd.DataFrame:
    """Table 4 (FEVER/BERT-base, zsRE/BART-base, Wikitext/distilGPT-2) with the paper's values beside ours.

    Rows are editors in the paper's order (FT, FT+KL, ENN, KE, MEND), then our editors beyond the paper
    (labelled e.g. ``"Cache (beyond Table 4)"``). Columns are :func:`table4_columns`. Cells are strings: ours
    with 3 decimals, the paper's exactly as published, ``"—"`` where there is no value. Only rows with at
    least one of our results are shown unless ``include_paper_only``. The index is named ``"Editor"``.
    """
    return _table(_TABLE4, metrics, include_paper_only)


def table4_caption(metrics: pd.DataFrame, profile: str | None = None) -> str:
    """The Table 4 caption: metric definitions, the profile, the FEVER edit-label rule and n."""
    rows = table4_rows(metrics)
    profile = _caption_profile(metrics, profile)
    fever = rows[rows["task"] == "fever"] if not rows.empty else rows
    rules: list[str] = []
    if not fever.empty:
        col = fever["fever_flip_rule"] if "fever_flip_rule" in fever else pd.Series([None] * len(fever))
        rules = sorted({str(v) if isinstance(v, str) and v else DEFAULT_FEVER_FLIP_RULE for v in col})
    flip = ", ".join(rules) if rules else f"{DEFAULT_FEVER_FLIP_RULE} (no FEVER results)"
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
        f"Table 4 ({_caption_models(_TABLE4)}), one edit at a time; ours: profile {profile}, "
        f"{_describe_n(rows['n'].tolist() if not rows.empty else [])}.{tiny_note} "
        "ES = edit success on equivalence examples (mean over edits). "
        "acc DD (FEVER, zsRE) = locality accuracy before − after. "
        f"ppl DD (Wikitext) = {_PPL_DD}. FEVER edit label: {flip}.{enn_note} "
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
    for name, help_text in (
        ("table3", "Table 3: GPT-Neo 2.7B, GPT-J 6B on Wikitext; T5-XL, T5-XXL on zsRE; one edit"),
        ("table4", "Table 4: FEVER/BERT, zsRE/BART, Wikitext/distilGPT-2, one edit"),
    ):
        p = sub.add_parser(name, help=help_text)
        p.add_argument("--metrics", nargs="+", required=True, type=Path, help="metrics JSON files")
        p.add_argument("--out", required=True, type=Path, help="output stem: writes STEM.md, STEM.tex, STEM.csv")
        p.add_argument("--profile", default=None, help="profile named in the caption (default: from the metrics)")
        p.add_argument(
            "--show-paper-only", action="store_true", help="also show the paper's editors that we did not run"
        )
    return parser


_ONE_EDIT_TABLES = {
    "table3": (table3_rows, table3, table3_caption),
    "table4": (table4_rows, table4, table4_caption),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        metrics = load_metrics(args.metrics)
        if args.table not in _ONE_EDIT_TABLES:  # pragma: no cover - argparse only allows the tables above
            raise AssertionError(args.table)
        rows_fn, table_fn, caption_fn = _ONE_EDIT_TABLES[args.table]
        used = rows_fn(metrics)
        ignored = sorted(set(metrics["path"]) - set(used["path"])) if not metrics.empty else []
        number = args.table.removeprefix("table")
        for p in ignored:
            print(f"warning: {p} is not a Table {number} result (task/model/n_edits); ignored", file=sys.stderr)
        df = table_fn(metrics, include_paper_only=args.show_paper_only)
        caption = caption_fn(metrics, profile=args.profile)
        written = write_table(df, args.out, caption)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
