"""Table 5 of the paper: k edits applied at once on zsRE, ENN and MEND, ours beside the published values.

Cell (row, k) is the metrics file of an editor of that kind (``editor_kind`` "enn" or "mend") on zsRE that
was trained with k edits per step (``train_k``) and evaluated with k edits applied at once (``n_edits``):
at k = 1 the ordinary editor (id ``"mend"`` / ``"enn"``, as in Table 4), at larger k its batched version
(e.g. ``"mend-k25"``). The paper's model is BART-base; ours is taken from the files (one model). FT, fine-tuned
on the k edits at once (``"ft-k25"``), is a row beyond the paper's when its files are given: a reference that needs
no training (``tables.table5.editors`` of config/tiny.yaml).

At matched scale (``tables.table5.k_scaling``, docs/method.md): the paper's k edits on BART-base's 768-wide edited
matrices are also read at the k that loads ours as much (tiny profile: ceil(k · 128 / 768)); each paper-k column
then has a scaled column beside it, ``"ES k=125 (scaled: 21) (ours)"``, where the scaled k differs. Each editor's
drawdown against the untouched original model (``dd_original``; only ENN's differs, as ENN trains the base model)
has its own columns, ``"DD vs original k=25 (ours)"``. Command::

    python -m mendrepro table5 --metrics F... --out figures/tiny/table5 --profile tiny [--k-scaling JSON]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from mendrepro.config import KScaling
from mendrepro.report import paper, tables

TASK = "zsre"
DD_KIND = "acc"
# Our editor kinds -> the paper's row labels, in the paper's row order.
ROW_LABELS: dict[str, str] = {"enn": "ENN", "mend": "MEND"}
# Editor kinds shown after the paper's rows when we ran them; the paper has no values for them.
BEYOND_LABELS: dict[str, str] = {"ft": "FT"}
KINDS = {**ROW_LABELS, **BEYOND_LABELS}
METRICS = ("ES", "DD")
ORIGINAL_DD = tables.ORIGINAL_DD  # "DD vs original": the drawdown against the original model (ours only)


def _criteria(scaling: KScaling | None) -> str:
    ks = sorted(table5_ks(scaling))
    return (
        f"is not a Table 5 result (task zsre, editor kind {'/'.join(KINDS)}, not an ablation, "
        f"n_edits == train_k in {ks}, k = 1 only for the editors {'/'.join(KINDS)})"
    )


def table5_ks(scaling: KScaling | None = None) -> set[int]:
    """The batch sizes Table 5 shows: the paper's, and the width-scaled ones of ``scaling``."""
    return set(paper.TABLE5_BATCH_SIZES) | (set(scaling.scaled_k) if scaling else set())


def scaled_of(scaling: KScaling | None) -> dict[int, int]:
    """paper k -> its scaled k, for the paper's k whose scaled k differs (those get a scaled column)."""
    pairs = scaling.pairs if scaling else {}
    return {k: pairs[k] for k in paper.TABLE5_BATCH_SIZES if k in pairs and pairs[k] != k}


def scaled_name(name: str, scaled: int) -> str:
    """``"ES k=125 (scaled: 21)"``: the paper's column with the scaled k it is read at."""
    return f"{name} (scaled: {scaled})"


def table5_columns(scaling: KScaling | None = None) -> list[str]:
    """Column names of :func:`table5`: per metric (ES, DD) and paper k ``"ES k=1 (ours)"``, ``"ES k=1 (paper)"``
    and, where ``scaling`` gives another k, ``"ES k=25 (scaled: 5) (ours)"``; then ``"DD vs original k=1 (ours)"``
    (and its scaled column) per paper k."""
    scaled = scaled_of(scaling)
    cols = []
    for metric in METRICS:
        for k in paper.TABLE5_BATCH_SIZES:
            name = paper.table5_column(metric, k)  # type: ignore[arg-type]
            cols += [f"{name} (ours)", f"{name} (paper)"]
            if k in scaled:
                cols.append(f"{scaled_name(name, scaled[k])} (ours)")
    for k in paper.TABLE5_BATCH_SIZES:
        name = f"{ORIGINAL_DD} k={k}"
        cols.append(f"{name} (ours)")
        if k in scaled:
            cols.append(f"{scaled_name(name, scaled[k])} (ours)")
    return cols


def _belongs(task: str, kind: str, editor: str, n_edits: int, train_k: int, ks: set[int]) -> bool:
    if task != TASK or kind not in KINDS or n_edits != train_k or n_edits not in ks:
        return False
    if n_edits == 1:
        return editor == kind  # k = 1: the ordinary one-edit editor of Table 4
    return editor not in paper.TABLE6_VARIANTS  # never an ablation of Table 6


def row_label(kind: str) -> str:
    """The row label of an editor kind: the paper's (``"MEND"``) or ours beyond it (``"FT (beyond Table 5)"``)."""
    return ROW_LABELS.get(kind) or f"{BEYOND_LABELS[kind]} (beyond Table 5)"


def table5_rows(metrics: pd.DataFrame, scaling: KScaling | None = None) -> pd.DataFrame:
    """The metrics rows that belong in Table 5 (see the module doc; the scaled k of ``scaling`` too), with the
    batch size in column ``k``.

    A cell's runs of several seeds are one row, their mean (:func:`mendrepro.report.tables.load_metrics`).
    Raises ValueError when two files give the same cell with the same seed, when the files are of more than one
    model, or when a file reports a drawdown other than accuracy.
    """
    if metrics.empty:
        return metrics.assign(k=pd.Series([], dtype=int))
    kinds = tables.column_or(metrics, "editor_kind", None)
    kinds = [
        k if isinstance(k, str) else tables.infer_editor_kind(e) for k, e in zip(kinds, metrics["editor"], strict=True)
    ]
    ks = table5_ks(scaling)
    mask = [
        _belongs(t, kind, e, int(n), int(tk), ks)
        for t, kind, e, n, tk in zip(
            metrics["task"],
            kinds,
            metrics["editor"],
            metrics["n_edits"],
            tables.column_or(metrics, "train_k", 1),
            strict=True,
        )
    ]
    rows = metrics[mask].assign(editor_kind=[k for k, m in zip(kinds, mask, strict=True) if m])
    rows = rows.assign(k=rows["n_edits"].astype(int))
    for _, r in rows.iterrows():
        if r["dd_kind"] != DD_KIND:
            raise tables.MetricsError(f"{r['path']}: Table 5 reports {DD_KIND} drawdown, got {r['dd_kind']!r}")
    models = rows.groupby("model")["path"].apply(list).to_dict()
    if len(models) > 1:
        detail = "; ".join(f"{m}: {ps}" for m, ps in models.items())
        raise ValueError(f"Table 5 has one model, but its files are of {len(models)}: {detail}")
    tables.raise_on_duplicates(rows, ["editor_kind", "k"], "metrics files for the same Table 5 cell (editor kind/k)")
    return rows


def _original(r: pd.Series) -> tuple[float | None, float | None]:
    value = r.get("dd_original")
    if value is None or pd.isna(value):
        return None, None  # an older file: no original-model score
    return float(value), r.get("dd_original_pm")


def table5(metrics: pd.DataFrame, *, include_paper_only: bool = False, scaling: KScaling | None = None) -> pd.DataFrame:
    """Table 5 (batched edits on zsRE) with the paper's values beside ours, and ours at the width-scaled k.

    Rows are ENN and MEND (those with at least one of our results, or both with ``include_paper_only``), then
    FT (beyond Table 5) when we have its results; the index is named ``"Editor"``. Columns are
    :func:`table5_columns`. Cells are strings: ours with 3 decimals, the paper's exactly as published, ``"—"``
    where there is no value.
    """
    rows = table5_rows(metrics, scaling)
    ours = {
        (r["editor_kind"], r["k"]): {
            "ES": (r["es"], r.get("es_pm")),
            "DD": (r["dd"], r.get("dd_pm")),
            ORIGINAL_DD: _original(r),
        }
        for _, r in rows.iterrows()
    }
    ran = {kind for kind, _ in ours}
    kinds = [k for k in ROW_LABELS if include_paper_only or k in ran] + [k for k in BEYOND_LABELS if k in ran]
    scaled = scaled_of(scaling)

    def mean(kind: str, k: int, metric: str) -> str:
        return tables.format_mean(*ours.get((kind, k), {}).get(metric, (None, None)))

    data = []
    for kind in kinds:
        label = ROW_LABELS.get(kind, "")
        cells = []
        for metric in METRICS:
            for k in paper.TABLE5_BATCH_SIZES:
                published = paper.TABLE5.get((label, paper.table5_column(metric, k)))  # type: ignore[arg-type]
                cells += [mean(kind, k, metric), published if published is not None else tables.MISSING]
                if k in scaled:
                    cells.append(mean(kind, scaled[k], metric))
        for k in paper.TABLE5_BATCH_SIZES:
            cells.append(mean(kind, k, ORIGINAL_DD))
            if k in scaled:
                cells.append(mean(kind, scaled[k], ORIGINAL_DD))
        data.append(cells)
    index = pd.Index([row_label(k) for k in kinds], name="Editor")
    return pd.DataFrame(data, index=index, columns=table5_columns(scaling))


def _describe_n_per_k(rows: pd.DataFrame) -> str:
    """``"n per column (edits evaluated at each k, k × batches): k=1: 100; k=25: 250 (10 batches); …"``."""
    if rows.empty:
        return "no edits evaluated"
    parts = []
    for k in sorted(set(rows["k"])):
        at_k = rows[rows["k"] == k]
        by_n: dict[int, list[str]] = {}
        for kind, n in zip(at_k["editor_kind"], at_k["n"], strict=True):
            by_n.setdefault(int(n), []).append(KINDS[kind])
        texts = []
        for n, labels in sorted(by_n.items()):
            batches = f" ({n // k} batches)" if k > 1 and n % k == 0 else ""
            who = f" {'/'.join(sorted(labels))}" if len(by_n) > 1 else ""
            texts.append(f"{n}{batches}{who}")
        parts.append(f"k={k}: {', '.join(texts)}")
    return "n per column (edits evaluated at that k = k × batches): " + "; ".join(parts)


def _scaling_note(scaling: KScaling | None) -> str:
    scaled = scaled_of(scaling)
    if scaling is None or not scaled:
        return ""
    pairs = ", ".join(f"{k} → {s}" for k, s in scaled.items())
    shared = [f"{k} → {s}" for k, s in scaled.items() if s in paper.TABLE5_BATCH_SIZES]
    share = f" A scaled k that is one of the paper's repeats that k's cells ({', '.join(shared)})." if shared else ""
    return (
        f" Matched scale (tables.table5.k_scaling, declared before the run): the paper's k edits at once on"
        f" BART-base's edited matrices ({scaling.paper_width} wide) are also read at {scaling.rule_text()} edits"
        f" on ours ({scaling.width} wide: d_model, the rank of an edited matrix): {pairs}, the"
        f' "(scaled: k)" columns.{share}'
    )


def _original_note(rows: pd.DataFrame) -> str:
    if rows.empty or "dd_original" not in rows:
        return ""
    enn = rows[(rows["editor_kind"] == "enn") & rows["dd_original"].notna()].sort_values("k")
    against = "; ".join(f"k={k} {tables.format_ours(v)}" for k, v in zip(enn["k"], enn["dd_original"], strict=True))
    return (
        f" {ORIGINAL_DD} = locality accuracy of the untouched original model − after the edits: ENN trains the base"
        " model itself, so its DD (against its own pre-edit model, as the release computes it) can hide a model it"
        " has changed" + (f" (ENN against the original: {against})" if against else "") + "; for every other"
        " editor the pre-edit model is the original and the two agree. The claims use it."
    )


def table5_caption(metrics: pd.DataFrame, profile: str | None = None, scaling: KScaling | None = None) -> str:
    """The Table 5 caption: the model, training and evaluation with k edits, metric definitions, the width rule,
    profile, n."""
    rows = table5_rows(metrics, scaling)
    profile = tables.caption_profile(metrics, profile)
    model = rows["model"].iloc[0] if not rows.empty else tables.TABLE4_MODELS[TASK]
    model_label = tables.TABLE4_MODEL_LABELS[TASK] if model == tables.TABLE4_MODELS[TASK] else model
    tiny_note = tables.tiny_note(profile)
    ft_note = (
        " FT (beyond Table 5) = fine-tuning on the k edits at once (no editor to train), a reference."
        if "ft" in set(rows["editor_kind"])
        else ""
    )
    return (
        f"Table 5 (zsRE/{model_label}), k edits at once: each editor is trained with k edits per step and "
        "evaluated with k edits applied at once (k = 1: the one-edit editors of Table 4); "
        f"ours: profile {profile}, {_describe_n_per_k(rows)}.{tables.seeds_note(rows)}{tiny_note} "
        "ES = edit success on equivalence examples, averaged over all k edits of each batch (and over batches). "
        "acc DD = locality accuracy before − after, measured after the whole batch of k edits is applied."
        f"{_original_note(rows)}{_scaling_note(scaling)}{ft_note} Paper values: {paper.CITATION}, Table 5. "
        f"{tables.PAPER_ONLY}"
    )


def parse_k_scaling(text: str | None) -> KScaling | None:
    """The ``--k-scaling`` JSON (:meth:`mendrepro.config.KScaling.to_json`, the workflow's checked rule), or None."""
    if not text:
        return None
    try:
        return KScaling.from_dict(json.loads(text))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ValueError(
            f"--k-scaling: expected the JSON of tables.table5.k_scaling with width, got {text!r} ({e})"
        ) from None


def _run(args: argparse.Namespace) -> list[Path]:
    scaling = parse_k_scaling(args.k_scaling)
    metrics = tables.load_metrics(args.metrics)
    used = table5_rows(metrics, scaling)
    tables.warn_ignored(tables.unused_paths(metrics, used), _criteria(scaling))
    df = table5(metrics, include_paper_only=args.show_paper_only, scaling=scaling)
    return tables.write_table(df, args.out, table5_caption(metrics, profile=args.profile, scaling=scaling))


def add_command(sub: argparse._SubParsersAction) -> None:
    """Register ``table5`` on the report command line (:func:`mendrepro.report.cli.build_parser`)."""
    p = sub.add_parser("table5", help="Table 5: ENN and MEND (FT beyond it) with k = 1…125 edits at once, zsRE/BART")
    tables.add_table_arguments(p)
    p.add_argument(
        "--k-scaling",
        default=None,
        help="Table 5's width rule as JSON (paper_width, width, rounding, paper_k, scaled_k): adds the scaled-k "
        "columns (the workflow passes the config's, checked)",
    )
    p.set_defaults(run=_run)
