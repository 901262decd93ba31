"""The published numbers of the MEND paper, for side-by-side tables.

Source: Eric Mitchell, Charles Lin, Antoine Bosselut, Chelsea Finn, Christopher D. Manning.
*Fast Model Editing at Scale.* ICLR 2022 (arXiv:2110.11309), Section 5, Tables 3, 4, 5 and 6.

These are the only hand-typed results in the artifact. Every value is kept as a string exactly as printed
in the paper ("<0.001", ">0.99", "0.98", "0.195"), because the bounds and the number of printed digits are
part of what was published; :func:`parse_published` turns one into a float where arithmetic is needed.

Each table is a dict keyed by ``(editor, column)``: ``editor`` is the row label as printed (``"FT"``,
``"FT+KL"``, ``"ENN"``, ``"KE"``, ``"MEND"``, or an ablation name in Table 6) and ``column`` is one of the
table's ``*_COLUMNS`` names. ES is edit success (higher is better) and DD drawdown (lower is better); the
``*_DD_KIND`` dicts say whether a column's drawdown is in accuracy (``"acc"``) or perplexity (``"ppl"``).
"""

from __future__ import annotations

from typing import Final, Literal

DDKind = Literal["acc", "ppl"]
Key = tuple[str, str]

CITATION: Final = "Mitchell, Lin, Bosselut, Finn and Manning, Fast Model Editing at Scale, ICLR 2022 (arXiv:2110.11309)"

# --- Table 3: large models (GPT-Neo 2.7B and GPT-J 6B on Wikitext; T5-XL and T5-XXL on zsRE) -------------
TABLE3_EDITORS: Final = ("FT", "FT+KL", "KE", "MEND")
TABLE3_COLUMNS: Final = (
    "GPT-Neo 2.7B ES",
    "GPT-Neo 2.7B DD",
    "GPT-J 6B ES",
    "GPT-J 6B DD",
    "T5-XL ES",
    "T5-XL DD",
    "T5-XXL ES",
    "T5-XXL DD",
)
TABLE3_DD_KIND: Final[dict[str, DDKind]] = {
    "GPT-Neo 2.7B DD": "ppl",
    "GPT-J 6B DD": "ppl",
    "T5-XL DD": "acc",
    "T5-XXL DD": "acc",
}
_TABLE3_ROWS: Final = {
    "FT": ("0.55", "0.195", "0.80", "0.125", "0.58", "<0.001", "0.87", "<0.001"),
    "FT+KL": ("0.40", "0.026", "0.36", "0.109", "0.55", "<0.001", "0.85", "<0.001"),
    "KE": ("0.00", "0.137", "0.01", "0.068", "0.03", "<0.001", "0.04", "<0.001"),
    "MEND": ("0.81", "0.057", "0.88", "0.031", "0.88", "0.001", "0.89", "<0.001"),
}

# --- Table 4: small models (FEVER/BERT-base, zsRE/BART-base, Wikitext/distilGPT-2), one edit at a time -----
TABLE4_EDITORS: Final = ("FT", "FT+KL", "ENN", "KE", "MEND")
TABLE4_TASKS: Final = ("fever", "zsre", "wikitext")
TABLE4_TASK_LABELS: Final = {"fever": "FEVER", "zsre": "zsRE", "wikitext": "Wikitext"}
TABLE4_COLUMNS: Final = ("FEVER ES", "FEVER DD", "zsRE ES", "zsRE DD", "Wikitext ES", "Wikitext DD")
TABLE4_DD_KIND: Final[dict[str, DDKind]] = {"FEVER DD": "acc", "zsRE DD": "acc", "Wikitext DD": "ppl"}
_TABLE4_ROWS: Final = {
    "FT": ("0.76", "<0.001", "0.96", "<0.001", "0.29", "0.938"),
    "FT+KL": ("0.64", "<0.001", "0.89", "<0.001", "0.17", "0.059"),
    "ENN": ("0.99", "0.003", "0.99", "<0.001", "0.93", "0.094"),
    "KE": ("0.95", "0.004", "0.98", "<0.001", "0.25", "0.595"),
    "MEND": (">0.99", "<0.001", "0.98", "0.002", "0.86", "0.225"),
}

# --- Table 5: batched edits, zsRE / BART-base, k edits at once ----------------------------------------------
TABLE5_EDITORS: Final = ("ENN", "MEND")
TABLE5_BATCH_SIZES: Final = (1, 5, 25, 75, 125)


def table5_column(metric: Literal["ES", "DD"], k: int) -> str:
    """The Table 5 column name for a metric at batch size k, e.g. ``"ES k=25"``."""
    if metric not in ("ES", "DD") or k not in TABLE5_BATCH_SIZES:
        raise KeyError(f"Table 5 has no column for metric={metric!r}, k={k!r}")
    return f"{metric} k={k}"


TABLE5_COLUMNS: Final = tuple(table5_column(m, k) for m in ("ES", "DD") for k in TABLE5_BATCH_SIZES)
TABLE5_DD_KIND: Final[dict[str, DDKind]] = {table5_column("DD", k): "acc" for k in TABLE5_BATCH_SIZES}
_TABLE5_ROWS: Final = {
    #       ES k=1,5,25,75,125                  DD k=1,5,25,75,125
    "ENN": ("0.99", "0.94", "0.35", "0.16", "0.11", "<0.001", "0.007", "0.005", "0.005", "0.006"),
    "MEND": ("0.98", "0.97", "0.89", "0.78", "0.67", "0.002", "0.005", "0.011", "0.011", "0.012"),
}

# --- Table 6: MEND ablations (Wikitext/distilGPT-2 and zsRE/BART-base) --------------------------------------
TABLE6_EDITORS: Final = ("No sharing", "No norm", "No ID init", "Only u", "Only δ", "Only smaller", "MEND")
TABLE6_COLUMNS: Final = ("Wikitext ES", "Wikitext DD", "zsRE ES", "zsRE DD")
TABLE6_DD_KIND: Final[dict[str, DDKind]] = {"Wikitext DD": "ppl", "zsRE DD": "acc"}
# Our editor ids (the `editor` wildcard) for the Table 6 rows.
TABLE6_VARIANTS: Final = {
    "mend-no_sharing": "No sharing",
    "mend-no_norm": "No norm",
    "mend-no_id_init": "No ID init",
    "mend-only_u": "Only u",
    "mend-only_delta": "Only δ",
    "mend-only_smaller": "Only smaller",
    "mend": "MEND",
}
_TABLE6_ROWS: Final = {
    "No sharing": ("0.86", "0.195", ">0.99", "0.001"),
    "No norm": ("0.02", "0.370", "0.97", "<0.001"),
    "No ID init": ("0.27", "0.898", "0.94", "<0.001"),
    "Only u": ("0.63", "0.559", "0.98", "0.002"),
    "Only δ": ("0.80", "0.445", "0.99", "0.001"),
    "Only smaller": ("0.80", "0.593", "0.98", "0.002"),
    "MEND": ("0.86", "0.225", ">0.99", "0.001"),
}
# Table 6's "Editor Parameters" column: not counts but the order of the editor network's parameter count, as
# printed in the paper's Table 6. m and n are the input and output width of an edited layer (the sizes of its
# input u and of the gradient δ at its output; ∇W = δuᵀ), N the number of edited layers. Without sharing every
# edited layer has its own network; "Only u" / "Only δ" transform only u / only δ, "Only smaller" the smaller one.
TABLE6_PARAMETERS: Final[dict[str, str]] = {
    "No sharing": "O((m+n)²N)",
    "No norm": "O((m+n)²)",
    "No ID init": "O((m+n)²)",
    "Only u": "O(m²)",
    "Only δ": "O(n²)",
    "Only smaller": "O(min(m,n)²)",
    "MEND": "O((m+n)²)",
}


def _keyed(rows: dict[str, tuple[str, ...]], columns: tuple[str, ...]) -> dict[Key, str]:
    out: dict[Key, str] = {}
    for editor, values in rows.items():
        if len(values) != len(columns):  # pragma: no cover - guards the literals above
            raise AssertionError(f"{editor}: {len(values)} values for {len(columns)} columns")
        out.update({(editor, col): v for col, v in zip(columns, values, strict=True)})
    return out


TABLE3: Final[dict[Key, str]] = _keyed(_TABLE3_ROWS, TABLE3_COLUMNS)
TABLE4: Final[dict[Key, str]] = _keyed(_TABLE4_ROWS, TABLE4_COLUMNS)
TABLE5: Final[dict[Key, str]] = _keyed(_TABLE5_ROWS, TABLE5_COLUMNS)
TABLE6: Final[dict[Key, str]] = _keyed(_TABLE6_ROWS, TABLE6_COLUMNS)

TABLES: Final[dict[int, dict[Key, str]]] = {3: TABLE3, 4: TABLE4, 5: TABLE5, 6: TABLE6}


def paper_value(table: int, editor: str, column: str) -> str | None:
    """The published string for (editor, column) of Table ``table`` (3-6), or None if the paper has none."""
    try:
        return TABLES[table].get((editor, column))
    except KeyError:
        raise KeyError(f"the paper's tables here are {sorted(TABLES)}, not {table!r}") from None


def published_bound(value: str) -> Literal["<", ">", "="]:
    """``"<"`` for an upper bound such as ``"<0.001"``, ``">"`` for ``">0.99"``, else ``"="``."""
    value = value.strip()
    if value[:1] in ("<", ">"):
        return value[0]  # type: ignore[return-value]
    return "="


def parse_published(value: str) -> float:
    """The float of a published value; a bound (``"<0.001"``, ``">0.99"``) gives its bound (0.001, 0.99).

    Use :func:`published_bound` to know whether the number was a bound.
    """
    text = value.strip()
    if text[:1] in ("<", ">"):
        text = text[1:].strip()
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"not a published number: {value!r}") from None
