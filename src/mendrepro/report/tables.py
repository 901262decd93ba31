"""Render the paper's tables from raw metrics JSON files, with the published values beside ours.

Each evaluation run writes one metrics JSON object, e.g.::

    {"task": "zsre", "model": "bart", "editor": "mend", "editor_kind": "mend", "editor_parameters": 1190000,
     "train_k": 1, "n_edits": 1, "n": 100, "es": 0.93, "dd": 0.004, "dd_kind": "acc", "loc_before": 0.97,
     "loc_after": 0.966, "profile": "tiny"}

Tables are aggregations of these files only. Each table is written as Markdown, LaTeX and CSV
(:func:`write_table`). This module holds what every report shares (loading, formatting, atomic writing, the
command line) and Tables 3 and 4; Table 5 is :mod:`mendrepro.report.batched`, Table 6
:mod:`mendrepro.report.ablations`, the memory figure and the memory-probe table :mod:`mendrepro.report.figures`.
Command line, as a Snakemake rule calls it::

    python -m mendrepro table4 --metrics a.json b.json ... --out figures/tiny/table4 --profile tiny

and likewise ``table3`` (large models: GPT-Neo, GPT-J on Wikitext; T5-XL, T5-XXL on zsRE), ``table5``,
``table6``, ``figure3-memory``, ``memory-probe-report`` and ``claims`` (:mod:`mendrepro.report.claims`; see
``--help``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mendrepro import atomic
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
    "ftl": "FT+L",  # constrained fine-tuning (Zhu et al. 2020), cited in the paper's related work
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
# What our tables add to the caption when the results come from the tiny profile.
TINY_NOTE = (
    " The tiny profile uses small models of the same classes on a synthetic world, so our numbers are not"
    " expected to equal the paper's."
)


def tiny_note(profile: str | None) -> str:
    """:data:`TINY_NOTE` for the tiny profile and the studies read over it (``tiny-long``, ``tiny-wide``), else
    nothing."""
    return TINY_NOTE if profile is not None and profile.split("-")[0] == "tiny" else ""


class MetricsError(ValueError):
    """A metrics file is unreadable or does not have the expected keys or values (the message names it)."""


# ----------------------------------------------------------------------------------------------------------
# Loading
# ----------------------------------------------------------------------------------------------------------
def read_json_object(path: Path, what: str = "metrics", rule: str = "the evaluation rule") -> dict:
    """The JSON object in ``path``; FileNotFoundError or :class:`MetricsError` naming the file otherwise.

    ``what`` names the kind of file and ``rule`` what writes it, for the messages.
    """
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} file not found: {path} (it is written by {rule}; `snakemake --cores all {path}` makes it)"
        )
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise MetricsError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(record, dict):
        raise MetricsError(f"{path}: expected a JSON object, got {type(record).__name__}")
    return record


def infer_editor_kind(editor: str) -> str:
    """The kind of an editor id: the part before the first ``-`` (``"mend-k5"`` -> ``"mend"``)."""
    return editor.split("-", 1)[0]


def is_number(value: object) -> bool:
    """True for an int or float (a bool is not a number here)."""
    return not isinstance(value, bool) and isinstance(value, int | float)


def check_editor_keys(path: Path, record: dict) -> None:
    """Validate the optional editor keys of a metrics or training-summary record and fill in their defaults.

    ``editor_kind`` defaults to the editor id's prefix (older files lack it), ``train_k`` (edits per training
    step) to 1; ``editor_parameters`` stays missing (None) when absent.
    """
    kind = record.get("editor_kind")
    if kind is None:
        record["editor_kind"] = infer_editor_kind(record["editor"])
    elif not isinstance(kind, str) or not kind:
        raise MetricsError(f"{path}: key 'editor_kind' must be a non-empty string, got {kind!r}")
    train_k = record.get("train_k")
    if train_k is None:
        record["train_k"] = 1
    elif not is_number(train_k) or train_k != int(train_k) or train_k < 1:
        raise MetricsError(f"{path}: key 'train_k' must be a positive integer, got {train_k!r}")
    params = record.get("editor_parameters")
    if params is not None and (not is_number(params) or params != int(params) or params < 0):
        raise MetricsError(f"{path}: key 'editor_parameters' must be a non-negative integer, got {params!r}")


def _read_one(path: Path) -> dict:
    record = read_json_object(path)
    missing = [k for k in REQUIRED_KEYS if k not in record]
    if missing:
        raise MetricsError(f"{path}: missing required key(s) {missing}; required: {list(REQUIRED_KEYS)}")
    for k in _STRING_KEYS:
        if not isinstance(record[k], str) or not record[k]:
            raise MetricsError(f"{path}: key {k!r} must be a non-empty string, got {record[k]!r}")
    for k in _NUMBER_KEYS:
        v = record[k]
        if not is_number(v):
            raise MetricsError(f"{path}: key {k!r} must be a number, got {v!r}")
    for k in ("n_edits", "n"):
        if record[k] != int(record[k]) or record[k] < 0:
            raise MetricsError(f"{path}: key {k!r} must be a non-negative integer, got {record[k]!r}")
    if record["dd_kind"] not in DD_KINDS:
        raise MetricsError(f"{path}: key 'dd_kind' must be one of {list(DD_KINDS)}, got {record['dd_kind']!r}")
    check_editor_keys(path, record)
    return record


def check_seed(path: Path, record: dict) -> int:
    """The run's seed (key ``seed``; files written before seeds were recorded lack it: seed 0), validated."""
    seed = record.get("seed", 0)
    if not is_number(seed) or seed != int(seed):
        raise MetricsError(f"{path}: key 'seed' must be an integer, got {seed!r}")
    record["seed"] = int(seed)
    return int(seed)


def read_metrics_records(paths: Iterable[str | os.PathLike[str]]) -> list[dict]:
    """The validated record of each metrics JSON file (one per file, as :func:`load_metrics` reads them, seed
    defaulted to 0), with its file in key ``path``."""
    records = []
    for p in paths:
        path = Path(p)
        record = _read_one(path)
        check_seed(path, record)
        record["path"] = str(path)
        records.append(record)
    return records


# A table cell: the runs that differ only in their seed.
CELL_KEYS: tuple[str, ...] = ("task", "model", "editor", "n_edits", "train_k")
SEED_COLUMNS: tuple[str, ...] = ("seed", "seeds", "n_seeds", "paths", "es_pm", "dd_pm")
Z95 = 1.96  # the normal quantile of a two-sided 95% interval


def half_width_95(values: Sequence[float]) -> float:
    """Half-width of a 95% interval of the mean of ``values`` (normal approximation: 1.96·sd/√n, sample sd);
    NaN for fewer than two values."""
    vals = [float(v) for v in values]
    if len(vals) < 2:
        return math.nan
    mean = sum(vals) / len(vals)
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / (len(vals) - 1))
    return Z95 * sd / math.sqrt(len(vals))


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _mean_row(rows: list[dict]) -> dict:
    """One record for the runs of one cell with distinct seeds: numbers averaged, anything else the first's."""
    out: dict = {}
    for key in dict.fromkeys(k for r in rows for k in r):
        if key in CELL_KEYS:
            out[key] = rows[0][key]
            continue
        values = [r.get(key) for r in rows]
        present = [v for v in values if not _is_missing(v)]
        if present and all(is_number(v) for v in present):
            out[key] = sum(present) / len(present)
        else:
            out[key] = present[0] if present else None
    out["seeds"] = tuple(sorted(r["seed"] for r in rows))
    out["seed"] = out["seeds"][0]
    out["n_seeds"] = len(rows)
    out["paths"] = tuple(r["path"] for r in rows)
    out["path"] = ", ".join(out["paths"])
    out["es_pm"] = half_width_95([r["es"] for r in rows])
    out["dd_pm"] = half_width_95([r["dd"] for r in rows])
    originals = [r.get("dd_original") for r in rows]
    if all(is_number(v) and not _is_missing(v) for v in originals):
        out["dd_original_pm"] = half_width_95(originals)
    return out


def mean_over_seeds(records: Sequence[dict]) -> list[dict]:
    """One record per table cell (:data:`CELL_KEYS`): the mean over its seeds where a cell has several runs of
    distinct seeds (with ``n_seeds``, ``seeds``, the files in ``paths`` and ``path`` joined by ", ", and the
    95% half-widths over seeds ``es_pm`` and ``dd_pm``), in the order cells first appear.

    A cell with two files of the same seed is left as it is (one record per file), so that the table's
    duplicate check names the files.
    """
    cells: dict[tuple, list[dict]] = {}
    for r in records:
        cells.setdefault(tuple(r[k] for k in CELL_KEYS), []).append(r)
    out = []
    for rows in cells.values():
        seeds = [r["seed"] for r in rows]
        if len(rows) > 1 and len(set(seeds)) == len(seeds):
            out.append(_mean_row(rows))
            continue
        for r in rows:
            single = dict(r)
            single.update(seeds=(r["seed"],), n_seeds=1, paths=(r["path"],), es_pm=math.nan, dd_pm=math.nan)
            out.append(single)
    return out


def load_metrics(paths: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """One row per table cell, with the metrics files' keys as columns and its file in column ``path``.

    A cell is a (task, model, editor, n_edits, train_k) (:data:`CELL_KEYS`); its runs of several seeds (key
    ``seed``, 0 where absent) become one row of their mean (:func:`mean_over_seeds`): ``path`` then joins
    their files and ``paths`` lists them, ``n_seeds`` counts them, ``es_pm``/``dd_pm`` are the 95% half-widths
    over seeds (NaN for one seed).

    Raises FileNotFoundError for a missing file and :class:`MetricsError` for a file that is not a JSON object
    with the required keys (:data:`REQUIRED_KEYS`) and value types; both messages name the file. Columns
    ``editor_kind`` and ``train_k`` are always there (inferred for older files: :func:`check_editor_keys`).
    """
    df = pd.DataFrame.from_records(mean_over_seeds(read_metrics_records(paths)))
    if df.empty:
        df = pd.DataFrame(columns=[*REQUIRED_KEYS, "editor_kind", "train_k", "path", *SEED_COLUMNS])
    return df


def unused_paths(metrics: pd.DataFrame, used: pd.DataFrame) -> set[str]:
    """The files behind the rows of ``metrics`` that are not among the rows ``used`` by a table."""

    def files(df: pd.DataFrame) -> set[str]:
        if "paths" not in df:
            return set(df["path"]) if "path" in df else set()
        return {p for ps, p1 in zip(df["paths"], df["path"], strict=True) for p in (ps if ps else (p1,))}

    return files(metrics) - files(used)


def warn_ignored(paths: Iterable[str], why: str) -> None:
    """Warn on stderr, one line per input file that a report does not use, saying why."""
    for p in sorted(set(paths)):
        print(f"warning: {p} {why}; ignored", file=sys.stderr)


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


def format_mean(value: float | None, pm: float | None = None) -> str:
    """Our mean over seeds: :func:`format_ours`, then ``±`` and the 95% half-width over seeds when there is one
    (``"0.871±0.020"``); with one seed (``pm`` None or NaN) exactly :func:`format_ours`."""
    if value is None or pm is None or not math.isfinite(float(pm)):
        return format_ours(value)
    return f"{format_ours(value)}±{format_ours(pm)}"


def seeds_note(rows: pd.DataFrame) -> str:
    """The caption's note on seeds when a cell shown is a mean over several seeds (else ``""``)."""
    if rows.empty or "n_seeds" not in rows or not (rows["n_seeds"].fillna(1) > 1).any():
        return ""
    seeds = sorted({int(s) for ss in rows["seeds"] for s in ss})
    counts = sorted({int(n) for n in rows["n_seeds"].fillna(1)})
    some = " (cells of one seed have no ±)" if counts[0] == 1 else ""
    return (
        f" Ours: mean over seeds {seeds}, n edits per seed; ± = half-width of a 95% interval over seeds, normal"
        f" approximation 1.96·sd/√n with n = seeds of the cell{some}."
    )


def format_parameters(count: float | None) -> str:
    """A parameter count to 3 significant digits with a K/M/B suffix (1190000 -> ``"1.19M"``); None -> ``"—"``."""
    if count is None or (isinstance(count, float) and math.isnan(count)):
        return MISSING
    count = int(count)
    if count < 1000:
        return str(count)
    rounded = float(f"{count:.3g}")
    for suffix, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if rounded >= scale:
            return f"{rounded / scale:.3g}{suffix}"
    raise AssertionError(count)  # pragma: no cover - count >= 1000 above


def editor_label(editor: str) -> str:
    """The paper's row label for one of our editor ids (unknown ids are shown as they are)."""
    return EDITOR_LABELS.get(editor, editor)


def editor_order(editor: str, order: Sequence[str] = tuple(EDITOR_LABELS)) -> tuple[int, str]:
    """Sort key: the position of ``editor`` in ``order``, unknown editors after them by name."""
    return (list(order).index(editor) if editor in order else len(order), editor)


# ----------------------------------------------------------------------------------------------------------
# One-edit tables (Tables 3, 4 and 6): one column group per (task, model), ES and DD, ours beside the paper's
# ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Group:
    """One column group of a one-edit table: the results of ``model`` edited on ``task``."""

    key: str  # names the cell in error messages: the task (Tables 4, 6) or our model id (Table 3)
    label: str  # the paper's column label, e.g. "zsRE" or "GPT-J 6B"
    task: str
    model: str
    dd_kind: str
    model_label: str


@dataclass(frozen=True)
class OneEditTable:
    """A table of one-edit results: editors (rows) x column groups, each with ES and DD."""

    number: int
    groups: tuple[Group, ...]
    editors: tuple[str, ...]  # the paper's row labels, in its order
    published: Mapping[tuple[str, str], str]  # the paper's values, keyed (row label, "<group label> <ES|DD>")
    labels: Mapping[str, str] = field(default_factory=lambda: EDITOR_LABELS)  # our editor id -> row label
    beyond: bool = True  # also show our editors that are not among the paper's rows (else ignore them)
    # Also show each editor's drawdown against the untouched original model (``dd_original``): ENN trains the base
    # model itself, and a collapsed ENN keeps a small DD against its own pre-edit model.
    original_dd: bool = False


def task_groups(tasks: Sequence[str]) -> tuple[Group, ...]:
    """Column groups of the small-model tables: each task on its Table 4 model."""
    return tuple(
        Group(t, paper.TABLE4_TASK_LABELS[t], t, TABLE4_MODELS[t], TABLE4_DD_KINDS[t], TABLE4_MODEL_LABELS[t])
        for t in tasks
    )


_TABLE3 = OneEditTable(
    number=3,
    groups=tuple(Group(m, label, TABLE3_TASKS[m], m, TABLE3_DD_KINDS[m], label) for m, label in TABLE3_MODELS.items()),
    editors=paper.TABLE3_EDITORS,
    published=paper.TABLE3,
)
_TABLE4 = OneEditTable(
    number=4,
    groups=task_groups(paper.TABLE4_TASKS),
    editors=paper.TABLE4_EDITORS,
    published=paper.TABLE4,
    original_dd=True,
)
ORIGINAL_DD = "DD vs original"  # the column of the drawdown against the original model (ours only)


def one_edit_columns(spec: OneEditTable) -> list[str]:
    """The ES/DD columns of a one-edit table, e.g. ``"zsRE ES (ours)"``, ``"zsRE ES (paper)"``, in order."""
    cols = []
    for group in spec.groups:
        for metric in ("ES", "DD"):
            cols += [f"{group.label} {metric} (ours)", f"{group.label} {metric} (paper)"]
        if spec.original_dd:
            cols.append(f"{group.label} {ORIGINAL_DD} (ours)")
    return cols


def column_or(metrics: pd.DataFrame, name: str, default: object) -> pd.Series:
    """Column ``name`` of ``metrics``, or ``default`` in every row where the frame has no such column."""
    if name in metrics:
        return metrics[name]
    return pd.Series([default] * len(metrics), index=metrics.index, dtype=object)


def _group_keys(spec: OneEditTable, metrics: pd.DataFrame) -> pd.Series:
    """The column group of each metrics row (None for a row that is not in the table), same index.

    A row is in the table when its (task, model) is one of the groups', it applied one edit, its editor was
    trained with one edit per step, and (unless ``spec.beyond``) its editor is one of the table's rows.
    """
    by_pair = {(g.task, g.model): g.key for g in spec.groups}
    keys = [
        by_pair.get((task, model)) if n_edits == 1 and train_k == 1 and (spec.beyond or editor in spec.labels) else None
        for task, model, n_edits, train_k, editor in zip(
            metrics["task"],
            metrics["model"],
            metrics["n_edits"],
            column_or(metrics, "train_k", 1),
            metrics["editor"],
            strict=True,
        )
    ]
    return pd.Series(keys, index=metrics.index, dtype=object)


def raise_on_duplicates(cells: pd.DataFrame, keys: Sequence[str], what: str) -> None:
    """ValueError ``"several <what>: <key>/<key>: [paths]"`` when rows of ``cells`` share the values of ``keys``."""
    dup = cells[cells.duplicated(list(keys), keep=False)]
    if not dup.empty:
        groups = dup.groupby(list(keys))["path"].apply(list).to_dict()
        detail = "; ".join(
            f"{'/'.join(map(str, k if isinstance(k, tuple) else (k,)))}: {ps}" for k, ps in groups.items()
        )
        raise ValueError(f"several {what}: {detail}")


def one_edit_rows(spec: OneEditTable, metrics: pd.DataFrame) -> pd.DataFrame:
    """The metrics rows that belong in a one-edit table (see :func:`_group_keys`), with their group in ``group``.

    Raises ValueError when two files give the same cell with the same seed, or a group reports the wrong kind
    of drawdown.
    """
    if metrics.empty:
        return metrics.assign(group=pd.Series([], dtype=object))
    keys = _group_keys(spec, metrics)
    rows = metrics[keys.notna()].assign(group=keys[keys.notna()])
    want_kind = {g.key: g.dd_kind for g in spec.groups}
    for _, r in rows.iterrows():
        want = want_kind[r["group"]]
        if r["dd_kind"] != want:
            raise MetricsError(
                f"{r['path']}: Table {spec.number} reports {want} drawdown for {r['group']}, got {r['dd_kind']!r}"
            )
    raise_on_duplicates(rows, ["group", "editor"], f"metrics files for the same Table {spec.number} cell")
    return rows


def one_edit_lines(
    spec: OneEditTable, editor_ids: Iterable[str], include_paper_only: bool
) -> list[tuple[str, str | None]]:
    """The rows of a table as (row label, our editor id or None): the paper's rows in its order (those we ran, or
    all with ``include_paper_only``), then our editors beyond them."""
    label_to_id = {label: eid for eid, label in spec.labels.items()}
    ours = sorted(set(editor_ids), key=lambda e: editor_order(e, tuple(spec.labels)))
    lines: list[tuple[str, str | None]] = []
    for label in spec.editors:
        eid = label_to_id.get(label, label.lower())
        if eid in ours or include_paper_only:
            lines.append((label, eid if eid in ours else None))
    for eid in ours:
        if spec.labels.get(eid, eid) not in spec.editors:
            lines.append((f"{spec.labels.get(eid, eid)} (beyond Table {spec.number})", eid))
    return lines


def one_edit_table(spec: OneEditTable, metrics: pd.DataFrame, include_paper_only: bool) -> pd.DataFrame:
    """The ES/DD table of :func:`one_edit_columns`, rows as :func:`one_edit_lines`, index named ``"Editor"``."""
    rows = one_edit_rows(spec, metrics)
    ours: dict[tuple[str, str], dict[str, tuple[float, float | None]]] = {}
    for _, r in rows.iterrows():
        ours[(r["editor"], r["group"])] = {
            "ES": (float(r["es"]), r.get("es_pm")),
            "DD": (float(r["dd"]), r.get("dd_pm")),
        }
        original = r.get("dd_original")
        if original is not None and not _is_missing(original):
            ours[(r["editor"], r["group"])][ORIGINAL_DD] = (float(original), r.get("dd_original_pm"))

    lines = one_edit_lines(spec, (e for e, _ in ours), include_paper_only)
    data = []
    for label, eid in lines:
        cells = []
        for group in spec.groups:
            for metric in ("ES", "DD"):
                value, pm = ours.get((eid, group.key), {}).get(metric, (None, None))
                published = spec.published.get((label, f"{group.label} {metric}"))
                cells += [format_mean(value, pm), published if published is not None else MISSING]
            if spec.original_dd:
                cells.append(format_mean(*ours.get((eid, group.key), {}).get(ORIGINAL_DD, (None, None))))
        data.append(cells)
    index = pd.Index([label for label, _ in lines], name="Editor")
    return pd.DataFrame(data, index=index, columns=one_edit_columns(spec))


def describe_n(values: Sequence[int]) -> str:
    """``"n = 100 edits per cell"`` (or a range) for the ``n`` of the cells shown."""
    values = sorted(set(int(v) for v in values))
    if not values:
        return "no edits evaluated"
    if len(values) == 1:
        return f"n = {values[0]} edits per cell"
    return f"n = {values[0]}–{values[-1]} edits per cell"


def caption_profile(metrics: pd.DataFrame, profile: str | None) -> str:
    """``profile`` if given, else the profiles named in the metrics, else ``"unknown"``."""
    if profile is not None:
        return profile
    profiles = sorted(set(metrics["profile"].dropna())) if "profile" in metrics else []
    return ", ".join(profiles) if profiles else "unknown"


def caption_models(spec: OneEditTable) -> str:
    """``"FEVER/BERT-base, zsRE/BART-base, ..."``: the (task, model) of each column group."""
    return ", ".join(f"{paper.TABLE4_TASK_LABELS[g.task]}/{g.model_label}" for g in spec.groups)


PPL_DD = "perplexity after − before, perplexity = exp(token-weighted mean NLL over all locality tokens)"
ES_DEFINITION = "ES = edit success on equivalence examples (mean over edits)."
PAPER_ONLY = f"{MISSING} = not run."


# ----------------------------------------------------------------------------------------------------------
# Table 3
# ----------------------------------------------------------------------------------------------------------
def table3_columns() -> list[str]:
    """Column names of :func:`table3`, e.g. ``"GPT-Neo 2.7B ES (ours)"``, in order."""
    return one_edit_columns(_TABLE3)


def table3_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """The metrics rows that belong in Table 3: its models (:data:`TABLE3_MODELS`) on their tasks, one edit.

    Raises ValueError when two files give the same cell with the same seed, or a model reports the wrong kind
    of drawdown.
    """
    return one_edit_rows(_TABLE3, metrics)


def table3(metrics: pd.DataFrame, *, include_paper_only: bool = False) -> pd.DataFrame:
    """Table 3 (GPT-Neo 2.7B, GPT-J 6B on Wikitext; T5-XL, T5-XXL on zsRE) with the paper's values beside ours.

    Rows are editors in the paper's order (FT, FT+KL, KE, MEND), then our editors beyond the paper (labelled
    e.g. ``"ENN (beyond Table 3)"``). Columns are :func:`table3_columns`. Cells are strings: ours with 3
    decimals, the paper's exactly as published, ``"—"`` where there is no value. Only rows with at least one of
    our results are shown unless ``include_paper_only``. The index is named ``"Editor"``.
    """
    return one_edit_table(_TABLE3, metrics, include_paper_only)


def table3_caption(metrics: pd.DataFrame, profile: str | None = None) -> str:
    """The Table 3 caption: models, metric definitions, the profile and n."""
    rows = table3_rows(metrics)
    profile = caption_profile(metrics, profile)
    profile_note = (
        " The tiny profile uses tiny stand-ins of the same model classes (GPT-Neo, GPT-J, and two sizes of a"
        " T5 v1.1-style gated encoder-decoder) on a synthetic world, so our numbers are not expected to equal"
        " the paper's."
        if tiny_note(profile)
        else ""
    )
    return (
        f"Table 3 ({caption_models(_TABLE3)}), one edit at a time; ours: profile {profile}, "
        f"{describe_n(rows['n'].tolist() if not rows.empty else [])}.{seeds_note(rows)}{profile_note} "
        f"{ES_DEFINITION} "
        "acc DD (T5-XL, T5-XXL on zsRE) = locality accuracy before − after, on Natural Questions. "
        f"ppl DD (GPT-Neo, GPT-J on Wikitext) = {PPL_DD}. "
        f"Paper values: {paper.CITATION}, Table 3. {PAPER_ONLY}"
    )


# ----------------------------------------------------------------------------------------------------------
# Table 4
# ----------------------------------------------------------------------------------------------------------
def table4_columns() -> list[str]:
    """Column names of :func:`table4`, e.g. ``"FEVER ES (ours)"``, in order."""
    return one_edit_columns(_TABLE4)


def table4_rows(metrics: pd.DataFrame) -> pd.DataFrame:
    """The metrics rows that belong in Table 4: its (task, model) pairs, one edit at a time.

    Raises ValueError when two files give the same cell with the same seed, or a task reports the wrong kind
    of drawdown.
    """
    return one_edit_rows(_TABLE4, metrics)


def table4(metrics: pd.DataFrame, *, include_paper_only: bool = False) -> pd.DataFrame:
    """Table 4 (FEVER/BERT-base, zsRE/BART-base, Wikitext/distilGPT-2) with the paper's values beside ours.

    Rows are editors in the paper's order (FT, FT+KL, ENN, KE, MEND), then our editors beyond the paper
    (labelled e.g. ``"Cache (beyond Table 4)"``). Columns are :func:`table4_columns`. Cells are strings: ours
    with 3 decimals, the paper's exactly as published, ``"—"`` where there is no value. Only rows with at
    least one of our results are shown unless ``include_paper_only``. The index is named ``"Editor"``.
    """
    return one_edit_table(_TABLE4, metrics, include_paper_only)


def flip_es_note(fever: pd.DataFrame) -> str:
    """`` FEVER ES on the edits that flip the prediction: FT 0.500, …`` (n of them), for the FEVER rows whose raw
    lines say which edits flip (the release's coin-flip rule keeps the prediction for about half the edits)."""
    if fever.empty or "es_flip" not in fever:
        return ""
    shown = fever[fever["es_flip"].notna()]
    if shown.empty:
        return ""
    shown = shown.assign(order=[editor_order(e) for e in shown["editor"]]).sort_values("order")
    parts = [f"{editor_label(e)} {format_ours(v)}" for e, v in zip(shown["editor"], shown["es_flip"], strict=True)]
    n = sorted({round(float(v)) for v in shown["n_flip"]})
    counts = f"{n[0]}" if len(n) == 1 else f"{n[0]}–{n[-1]}"
    return f" FEVER ES on the edits that flip the prediction ({counts} of each cell's edits): {', '.join(parts)}."


def table4_caption(metrics: pd.DataFrame, profile: str | None = None) -> str:
    """The Table 4 caption: metric definitions, the profile, the FEVER edit-label rule and n."""
    rows = table4_rows(metrics)
    profile = caption_profile(metrics, profile)
    fever = rows[rows["task"] == "fever"] if not rows.empty else rows
    rules: list[str] = []
    if not fever.empty:
        col = fever["fever_flip_rule"] if "fever_flip_rule" in fever else pd.Series([None] * len(fever))
        rules = sorted({str(v) if isinstance(v, str) and v else DEFAULT_FEVER_FLIP_RULE for v in col})
    flip = ", ".join(rules) if rules else f"{DEFAULT_FEVER_FLIP_RULE} (no FEVER results)"
    profile_note = tiny_note(profile)
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
                f" computes it; against the original base model ({ORIGINAL_DD}, the column the claims use) it is"
                f" {against}. For every other editor the pre-edit model is the original, so the two agree."
            )
    return (
        f"Table 4 ({caption_models(_TABLE4)}), one edit at a time; ours: profile {profile}, "
        f"{describe_n(rows['n'].tolist() if not rows.empty else [])}.{seeds_note(rows)}{profile_note} "
        f"{ES_DEFINITION} "
        "acc DD (FEVER, zsRE) = locality accuracy before − after. "
        f"ppl DD (Wikitext) = {PPL_DD}. FEVER edit label: {flip}.{flip_es_note(fever)}{enn_note} "
        f"Paper values: {paper.CITATION}, Table 4. {PAPER_ONLY}"
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
    "×": r"\ensuremath{\times}",
    "²": r"\ensuremath{^2}",
}


def latex_escape(text: str) -> str:
    """Escape text for LaTeX (special characters, and the few non-ASCII symbols our tables use)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _markdown_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "\\*_`" else ch for ch in text)


def stem_path(stem: Path, ext: str) -> Path:
    """``stem`` with ``.ext`` appended (``figures/tiny/table4`` -> ``figures/tiny/table4.md``)."""
    stem = Path(stem)
    return stem.with_name(f"{stem.name}.{ext}")


TABLE_FORMATS = ("md", "tex", "csv")


def write_table(df: pd.DataFrame, stem: Path, caption: str, formats: Sequence[str] = TABLE_FORMATS) -> list[Path]:
    """Write ``stem.md``, ``stem.tex`` and ``stem.csv`` (those of ``formats``), each atomically; return the paths.

    Markdown: the caption as an italic line, then the table. LaTeX: a ``table`` environment with the caption
    and label ``tab:<stem name>``, every cell escaped. CSV: the table with its index as the first column.
    """
    stem = Path(stem)
    unknown = [f for f in formats if f not in TABLE_FORMATS]
    if unknown:
        raise ValueError(f"unknown table format(s) {unknown}; known: {list(TABLE_FORMATS)}")
    written = []
    for fmt in formats:
        if fmt == "md":
            table = df.to_markdown(stralign="left", numalign="left", disable_numparse=True)
            text = f"*{_markdown_escape(caption)}*\n\n{table}\n"
        elif fmt == "tex":
            tex_df = df.reset_index()  # the index (e.g. "Editor") becomes the first column: one header row
            tex_df.columns = [latex_escape(c) for c in tex_df.columns]
            tex_df = tex_df.map(latex_escape)
            text = tex_df.to_latex(
                index=False,
                escape=False,
                caption=latex_escape(caption),
                label=f"tab:{stem.name}",
                column_format="l" + "r" * len(df.columns),
            )
        else:
            text = df.to_csv(index=True, lineterminator="\n")
        path = stem_path(stem, fmt)
        atomic.write_text(path, text)
        written.append(path)
    return written


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------
def add_table_arguments(p: argparse.ArgumentParser, *, paper_only: bool = True) -> None:
    """The arguments of a table command: --metrics, --out, --profile (and --show-paper-only)."""
    p.add_argument("--metrics", nargs="+", required=True, type=Path, help="metrics JSON files")
    p.add_argument("--out", required=True, type=Path, help="output stem: writes STEM.md, STEM.tex, STEM.csv")
    p.add_argument("--profile", default=None, help="profile named in the caption (default: from the metrics)")
    if paper_only:
        p.add_argument(
            "--show-paper-only", action="store_true", help="also show the paper's editors that we did not run"
        )
