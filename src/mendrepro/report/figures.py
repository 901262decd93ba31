"""Memory reports: the paper's memory figure from the training summaries, and the memory-probe table and chart.

``figure3-memory`` plots the peak memory of each editor-training process (``train.json``: ``memory.peak_mb``
less ``memory.baseline_mb``, the memory in use before the model was loaded), one panel per task, x = model,
hue = editor. ``memory-probe-report`` tabulates and plots the memory probe (one JSON file per model size: one
training step of each editor on a randomly initialised model of that size). Commands::

    python -m mendrepro figure3-memory --train-metrics F... --out figures/tiny/figure3_memory --profile tiny
    python -m mendrepro memory-probe-report --probe F... --out figures/tiny/memory_probe --profile tiny

Figures are written as PNG and PDF (and the plotted numbers as CSV), each atomically. matplotlib and seaborn
are imported only when a figure is drawn, with the Agg backend.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import textwrap
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mendrepro import atomic
from mendrepro.report import paper, tables

FIGURE_FORMATS = ("png", "pdf")
TASK_ORDER = paper.TABLE4_TASKS  # FEVER, zsRE, Wikitext: the paper's panel order
EDITOR_ORDER = ("mend", "ke", "enn", "ft", "ftkl", "cache")  # bars within a group (hue), then others by name

# `memory.kind` of a training summary -> the y-axis label, when the pre-model baseline was subtracted.
TRAIN_MEMORY_LABELS = {
    "cpu_peak_rss": "peak RSS above the pre-model baseline (MiB), CPU",
    "cuda_max_allocated": "CUDA max allocated (MiB)",
}
# `memory_kind` of a memory probe -> the y-axis label (the probe measures from before the model is built).
PROBE_MEMORY_LABELS = {
    "cpu_peak_rss_delta": "peak RSS above the pre-model baseline (MiB), CPU",
    "cuda_max_allocated_delta": "CUDA max allocated above the pre-model baseline (MiB)",
    # where the CPU peak cannot be reset: how much the process's lifetime peak grew (a lower bound of the peak)
    "cpu_maxrss_growth": "growth of the process's lifetime peak RSS (MiB), CPU",
}


# ----------------------------------------------------------------------------------------------------------
# Shared
# ----------------------------------------------------------------------------------------------------------
def _number(path: Path, where: str, value: Any, *, integer: bool = False) -> float:
    if not tables.is_number(value) or value < 0 or (integer and value != int(value)):
        kind = "a non-negative integer" if integer else "a non-negative number"
        raise tables.MetricsError(f"{path}: {where} must be {kind}, got {value!r}")
    return int(value) if integer else float(value)


def _string(path: Path, where: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise tables.MetricsError(f"{path}: {where} must be a non-empty string, got {value!r}")
    return value


def _single_kind(df: pd.DataFrame, what: str) -> str:
    """The one memory kind of ``df``; ValueError naming the files of each kind when they mix kinds."""
    kinds = df.groupby("memory_kind")["path"].apply(lambda ps: sorted(set(ps))).to_dict()
    if len(kinds) > 1:
        detail = "; ".join(f"{k}: {ps}" for k, ps in kinds.items())
        raise ValueError(f"{what} mix memory kinds, which one axis cannot show: {detail}")
    return next(iter(kinds))


def _ordered(values: Iterable[str], order: Sequence[str]) -> list[str]:
    return sorted(set(values), key=lambda v: tables.editor_order(v, order))


def _palette(labels: Sequence[str]) -> dict[str, Any]:
    import seaborn as sns

    return dict(zip(labels, sns.color_palette("colorblind", n_colors=max(len(labels), 1)), strict=False))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display; before pyplot is imported
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf``, each atomically (rendered in memory, then a temporary file renamed)."""
    written = []
    for fmt in FIGURE_FORMATS:
        buf = io.BytesIO()
        # No timestamps or version strings in the files: the same data give the same bytes.
        metadata = {"Software": None} if fmt == "png" else {"CreationDate": None, "Producer": None}
        fig.savefig(buf, format=fmt, dpi=150, bbox_inches="tight", metadata=metadata)
        path = tables.stem_path(stem, fmt)
        atomic.write_bytes(path, buf.getvalue())
        written.append(path)
    return written


def _bar_panel(ax: Any, data: pd.DataFrame, x: str, order: Sequence[str], hue_order: Sequence[str], palette) -> None:
    import seaborn as sns

    sns.barplot(
        data=data,
        x=x,
        y="plotted_mb",
        hue="editor_label",
        order=order,
        hue_order=hue_order,
        palette=palette,
        errorbar=None,
        saturation=1.0,  # the colours of the figure legend's patches
        ax=ax,
    )
    for container in ax.containers:
        ax.bar_label(container, fmt="%.0f", fontsize=7, padding=1)
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    ax.margins(y=0.12)


def _axis_label(text: str) -> str:
    """A long axis label on two or three lines, so that it fits beside the axes."""
    return "\n".join(textwrap.wrap(text, width=34))


def _legend(fig: Any, labels: Sequence[str], palette: dict[str, Any]) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=palette[label], label=label) for label in labels]
    fig.legend(handles=handles, title="editor", loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)


# ----------------------------------------------------------------------------------------------------------
# figure3-memory: peak memory while training each editor
# ----------------------------------------------------------------------------------------------------------
def _read_summary(path: Path) -> dict:
    record = tables.read_json_object(path, "training summary", "the editor training rule")
    for key in ("task", "model", "editor"):
        if key not in record:
            raise tables.MetricsError(
                f"{path}: missing required key {key!r} (a training summary needs task, model, editor, memory)"
            )
        _string(path, f"key {key!r}", record[key])
    memory = record.get("memory")
    if not isinstance(memory, dict):
        raise tables.MetricsError(
            f"{path}: key 'memory' must be an object with peak_mb and kind (and baseline_mb), got {memory!r}"
        )
    kind = memory.get("kind")
    if kind not in TRAIN_MEMORY_LABELS:
        raise tables.MetricsError(f"{path}: memory.kind must be one of {list(TRAIN_MEMORY_LABELS)}, got {kind!r}")
    tables.check_editor_keys(path, record)
    baseline = memory.get("baseline_mb")
    return {
        "task": record["task"],
        "model": record["model"],
        "editor": record["editor"],
        "editor_kind": record["editor_kind"],
        "train_k": int(record["train_k"]),
        "editor_parameters": record.get("editor_parameters"),
        "memory_kind": kind,
        "peak_mb": _number(path, "memory.peak_mb", memory.get("peak_mb")),
        "baseline_mb": 0.0 if baseline is None else _number(path, "memory.baseline_mb", baseline),
        "has_baseline": baseline is not None,
        "profile": record.get("profile"),
        "path": str(path),
    }


SUMMARY_COLUMNS = [
    "task",
    "model",
    "editor",
    "editor_kind",
    "train_k",
    "editor_parameters",
    "memory_kind",
    "peak_mb",
    "baseline_mb",
    "has_baseline",
    "profile",
    "path",
]


def load_train_summaries(paths: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """One row per training summary (``train.json``): task, model, editor, editor_kind, train_k,
    editor_parameters, memory_kind, peak_mb, baseline_mb (0 when the file has none), has_baseline, profile,
    path. FileNotFoundError or :class:`~mendrepro.report.tables.MetricsError` (naming the file) on a bad input.
    """
    records = [_read_summary(Path(p)) for p in paths]
    return pd.DataFrame.from_records(records, columns=SUMMARY_COLUMNS)


FIGURE3_COLUMNS = [
    "task",
    "task_label",
    "model",
    "editor",
    "editor_label",
    "memory_kind",
    "peak_mb",
    "baseline_mb",
    "plotted_mb",
    "editor_parameters",
]


def figure3_memory_rows(summaries: pd.DataFrame) -> pd.DataFrame:
    """The summaries that belong in the figure: editors trained with one edit per step, ids without a variant
    suffix (``"mend"``, not ``"mend-no_norm"`` or ``"mend-k5"``). ValueError when two give the same bar."""
    if summaries.empty:
        return summaries
    keep = (summaries["train_k"] == 1) & ~summaries["editor"].str.contains("-", regex=False)
    rows = summaries[keep]
    tables.raise_on_duplicates(
        rows, ["task", "model", "editor"], "training summaries for the same bar (task/model/editor)"
    )
    return rows


def figure3_memory_data(summaries: pd.DataFrame) -> pd.DataFrame:
    """The plotted numbers (:data:`FIGURE3_COLUMNS`), one row per bar, in panel, model and editor order;
    ``plotted_mb`` = ``peak_mb`` − ``baseline_mb``. ValueError when there is nothing to plot or the files mix
    memory kinds."""
    rows = figure3_memory_rows(summaries)
    if rows.empty:
        raise ValueError("no training summary to plot (editors trained with one edit per step, no variants)")
    _single_kind(rows, "the training summaries")
    data = rows.assign(
        task_label=[paper.TABLE4_TASK_LABELS.get(t, t) for t in rows["task"]],
        editor_label=[tables.editor_label(e) for e in rows["editor"]],
        plotted_mb=rows["peak_mb"] - rows["baseline_mb"],
        _task=[tables.editor_order(t, TASK_ORDER) for t in rows["task"]],
        _editor=[tables.editor_order(e, EDITOR_ORDER) for e in rows["editor"]],
    )
    data = data.sort_values(["_task", "model", "_editor"], kind="stable")
    return data[FIGURE3_COLUMNS].reset_index(drop=True)


def figure3_memory_ylabel(rows: pd.DataFrame) -> str:
    """What the y axis shows, exactly: the memory kind, and whether the pre-model baseline was subtracted."""
    kind = _single_kind(rows, "the training summaries")
    if kind == "cpu_peak_rss":
        if rows["has_baseline"].all():
            return TRAIN_MEMORY_LABELS[kind]
        if not rows["has_baseline"].any():  # older summaries: the whole peak RSS of the process
            return "peak RSS (MiB), CPU"
        return "peak RSS (MiB), CPU; pre-model baseline subtracted where recorded"
    if (rows["baseline_mb"] == 0).all():
        return TRAIN_MEMORY_LABELS[kind]
    return "CUDA max allocated above the pre-model baseline (MiB)"


def render_figure3_memory(summaries: pd.DataFrame, stem: Path, profile: str | None = None) -> list[Path]:
    """Draw the memory figure and write ``stem.png``, ``stem.pdf`` and the plotted numbers ``stem.csv``."""
    rows = figure3_memory_rows(summaries)
    data = figure3_memory_data(summaries)
    ylabel = figure3_memory_ylabel(rows)
    profile = tables.caption_profile(summaries, profile)
    plt = _pyplot()

    tasks = list(dict.fromkeys(data["task"]))
    hue_order = [tables.editor_label(e) for e in _ordered(data["editor"], EDITOR_ORDER)]
    palette = _palette(hue_order)
    width = max(4.0, 1.2 + sum(max(2.6, 1.1 * data[data["task"] == t]["model"].nunique()) for t in tasks))
    fig, axes = plt.subplots(1, len(tasks), figsize=(width, 3.8), squeeze=False)
    try:
        for i, (ax, task) in enumerate(zip(axes[0], tasks, strict=True)):
            panel = data[data["task"] == task]
            _bar_panel(ax, panel, "model", list(dict.fromkeys(panel["model"])), hue_order, palette)
            ax.set_title(paper.TABLE4_TASK_LABELS.get(task, task))
            ax.set_xlabel("model")
            ax.set_ylabel(_axis_label(ylabel) if i == 0 else "")
        _legend(fig, hue_order, palette)
        fig.suptitle(f"Peak memory while training each editor (profile {profile})")
        fig.tight_layout()
        written = save_figure(fig, stem)
    finally:
        plt.close(fig)
    csv_path = tables.stem_path(stem, "csv")
    atomic.write_text(csv_path, data.to_csv(index=False, lineterminator="\n"))
    return [*written, csv_path]


def _run_figure3(args: argparse.Namespace) -> list[Path]:
    summaries = load_train_summaries(args.train_metrics)
    used = figure3_memory_rows(summaries)
    tables.warn_ignored(
        set(summaries["path"]) - set(used["path"]),
        "is not in the memory figure (only editors trained with one edit per step, ids without a variant suffix)",
    )
    for path in sorted(used[~used["has_baseline"].astype(bool)]["path"]):
        print(
            f"warning: {path} has no memory.baseline_mb: baseline taken as 0 (its whole peak is plotted)",
            file=sys.stderr,
        )
    return render_figure3_memory(summaries, args.out, args.profile)


# ----------------------------------------------------------------------------------------------------------
# memory-probe-report: one training step of each editor at real model sizes
# ----------------------------------------------------------------------------------------------------------
PROBE_TABLE_COLUMNS = ["Editor", "Peak MiB", "Seconds", "Editor params", "Model params", "Device", "Memory kind"]


def _read_probe(path: Path) -> list[dict]:
    record = tables.read_json_object(path, "memory-probe", "the memory_probe rule")
    for key in ("size", "params", "device", "memory_kind", "editors"):
        if key not in record:
            raise tables.MetricsError(
                f"{path}: missing required key {key!r} "
                "(a memory probe needs size, params, device, memory_kind, editors)"
            )
    size = _string(path, "key 'size'", record["size"])
    device = _string(path, "key 'device'", record["device"])
    params = _number(path, "key 'params'", record["params"], integer=True)
    kind = record["memory_kind"]
    if kind not in PROBE_MEMORY_LABELS:
        raise tables.MetricsError(f"{path}: key 'memory_kind' must be one of {list(PROBE_MEMORY_LABELS)}, got {kind!r}")
    editors = record["editors"]
    if not isinstance(editors, dict) or not editors:
        raise tables.MetricsError(f"{path}: key 'editors' must be a non-empty object (editor -> measurement)")
    rows = []
    for editor, m in editors.items():
        if not isinstance(m, dict):
            raise tables.MetricsError(f"{path}: editors.{editor} must be an object, got {m!r}")
        for key in ("peak_mb", "seconds", "editor_params"):
            if key not in m:
                raise tables.MetricsError(
                    f"{path}: editors.{editor} lacks {key!r} (needs peak_mb, seconds, editor_params)"
                )
        measured = m.get("measured")
        rows.append(
            {
                "size": size,
                "arch": record.get("arch"),
                "family": record.get("family"),
                "params": params,
                "device": device,
                "memory_kind": kind,
                "threads": record.get("threads"),
                "torch": record.get("torch"),
                "editor": editor,
                "peak_mb": _number(path, f"editors.{editor}.peak_mb", m["peak_mb"]),
                "seconds": _number(path, f"editors.{editor}.seconds", m["seconds"]),
                "editor_params": _number(path, f"editors.{editor}.editor_params", m["editor_params"], integer=True),
                "measured": _string(path, f"editors.{editor}.measured", measured) if measured is not None else None,
                "path": str(path),
            }
        )
    return rows


def load_probes(paths: Iterable[str | os.PathLike[str]]) -> pd.DataFrame:
    """One row per (probe file, editor), ordered by model size then editor. ValueError naming the files when
    two files probe the same size; FileNotFoundError or MetricsError (naming the file) on a bad input."""
    records = [r for p in paths for r in _read_probe(Path(p))]
    df = pd.DataFrame.from_records(records)
    if df.empty:
        raise ValueError("no memory-probe file given")
    tables.raise_on_duplicates(df.drop_duplicates("path"), ["size"], "memory-probe files for the same size")
    df = df.assign(_editor=[tables.editor_order(e, EDITOR_ORDER) for e in df["editor"]])
    return df.sort_values(["params", "size", "_editor"], kind="stable").drop(columns="_editor").reset_index(drop=True)


def probe_table(probes: pd.DataFrame) -> pd.DataFrame:
    """The probe table: one row per (size, editor), index ``"Size"``, columns :data:`PROBE_TABLE_COLUMNS`."""
    data = {
        "Editor": [tables.editor_label(e) for e in probes["editor"]],
        "Peak MiB": [f"{v:.1f}" for v in probes["peak_mb"]],
        "Seconds": [f"{v:.2f}" for v in probes["seconds"]],
        "Editor params": [tables.format_parameters(v) for v in probes["editor_params"]],
        "Model params": [tables.format_parameters(v) for v in probes["params"]],
        "Device": list(probes["device"]),
        "Memory kind": list(probes["memory_kind"]),
    }
    return pd.DataFrame(data, index=pd.Index(list(probes["size"]), name="Size"), columns=PROBE_TABLE_COLUMNS)


def _joined(values: Iterable[Any]) -> str:
    present = sorted({str(v) for v in values if v is not None and not (isinstance(v, float) and pd.isna(v))})
    return ", ".join(present) if present else "unknown"


def probe_caption(probes: pd.DataFrame, profile: str | None = None) -> str:
    """The probe caption: what was run and measured, on what device, threads and torch version."""
    kind = _single_kind(probes, "the memory-probe files")
    profile = profile if profile is not None else "unknown"
    measured = probes.dropna(subset=["measured"]).drop_duplicates(["editor", "measured"])
    what = "; ".join(
        f"{tables.editor_label(e)}: {m}" for e, m in zip(measured["editor"], measured["measured"], strict=True)
    )
    return (
        f"Memory probe (profile {profile}): one training step of each editor (FT: one fine-tuning step of an edit) "
        "on a randomly initialised model of each size. "
        f"Peak MiB = {PROBE_MEMORY_LABELS[kind]} ({kind}); Seconds = wall time of what was measured (below); "
        "Editor params = the editor's trainable parameters; Model params = the base model's. "
        f"Device {_joined(probes['device'])}, {_joined(probes['threads'])} CPU thread(s), torch "
        f"{_joined(probes['torch'])}.{' Measured: ' + what + '.' if what else ''}"
    )


def render_probe_chart(probes: pd.DataFrame, stem: Path, profile: str | None = None) -> list[Path]:
    """The probe bar chart: x = size (by parameter count), hue = editor, y = peak MiB; ``stem.png``/``.pdf``."""
    kind = _single_kind(probes, "the memory-probe files")
    plt = _pyplot()
    data = probes.assign(editor_label=[tables.editor_label(e) for e in probes["editor"]], plotted_mb=probes["peak_mb"])
    sizes = list(dict.fromkeys(data["size"]))
    hue_order = [tables.editor_label(e) for e in _ordered(data["editor"], EDITOR_ORDER)]
    palette = _palette(hue_order)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 + 1.4 * len(sizes)), 4.0))
    try:
        _bar_panel(ax, data, "size", sizes, hue_order, palette)
        ax.set_xlabel("model size")
        ax.set_ylabel(_axis_label(PROBE_MEMORY_LABELS[kind]))
        _legend(fig, hue_order, palette)
        device = _joined(data["device"])
        fig.suptitle(f"Memory probe: one editor training step (profile {profile or 'unknown'}, {device})")
        fig.tight_layout()
        return save_figure(fig, stem)
    finally:
        plt.close(fig)


def _run_probe(args: argparse.Namespace) -> list[Path]:
    probes = load_probes(args.probe)
    caption = probe_caption(probes, args.profile)  # checks the memory kinds before anything is written
    written = tables.write_table(probe_table(probes), args.out, caption, formats=("md", "csv"))
    return written + render_probe_chart(probes, args.out, args.profile)


# ----------------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------------
def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``figure3-memory`` and ``memory-probe-report`` (:func:`mendrepro.report.cli.build_parser`)."""
    p = sub.add_parser("figure3-memory", help="memory figure: peak memory while training each editor (png, pdf, csv)")
    p.add_argument("--train-metrics", nargs="+", required=True, type=Path, help="training summaries (train.json)")
    p.add_argument("--out", required=True, type=Path, help="output stem: writes STEM.png, STEM.pdf, STEM.csv")
    p.add_argument("--profile", default=None, help="profile named in the title (default: from the summaries)")
    p.set_defaults(run=_run_figure3)

    p = sub.add_parser("memory-probe-report", help="memory probe at model sizes: table (md, csv) and chart (png, pdf)")
    p.add_argument("--probe", nargs="+", required=True, type=Path, help="memory-probe JSON files, one per size")
    p.add_argument("--out", required=True, type=Path, help="output stem: writes STEM.md, STEM.csv, STEM.png, STEM.pdf")
    p.add_argument("--profile", default=None, help="profile named in the caption and title")
    p.set_defaults(run=_run_probe)
