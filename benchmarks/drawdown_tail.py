"""How a language-model cell's perplexity drawdown spreads over its edits, from the raw per-edit records.

    .venv/bin/python -m benchmarks.drawdown_tail results/tiny/seed0/wikitext/gpt2/{ft,ftkl,mend}/eval_k1/edits.jsonl

A cell's perplexity drawdown pools every edit's locality tokens, so a few edits that damage the model can carry it.
For each file: ES, the pooled drawdown against the original model (as the tables compute it), each edit's change of
locality NLL per token (median, 90th percentile, largest), the share of the summed change carried by the tenth of
the edits that change it most, and the ES of that tenth.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from mendrepro.evaluate import aggregate, read_records


def summary(records: list[dict]) -> dict:
    """The cell's ES and pooled drawdown against the original model (the evaluation's own aggregation), and how
    the drawdown's NLL change is spread over the edits."""
    cell = aggregate(records, "lm")
    change = pd.Series([sum(r["locality_after"]["nll"]) - sum(r["locality_original"]["nll"]) for r in records])
    tokens = pd.Series([sum(r["locality_original"]["tokens"]) for r in records])
    es = pd.Series([r["es"] for r in records])
    per_token = change / tokens
    top = per_token.sort_values(ascending=False).index[: max(1, len(records) // 10)]
    return {
        "edits": cell["n"],
        "es": cell["es"],
        "ppl_dd": cell["dd_original"],
        "median": per_token.median(),
        "p90": per_token.quantile(0.9),
        "max": per_token.max(),
        "top_tenth_share": change[top].sum() / change.sum(),
        "top_tenth_es": es[top].mean(),
    }


def main(paths: list[str]) -> None:
    for p in paths:
        if not Path(p).is_file():
            raise SystemExit(f"drawdown_tail: {p}: no such file (an evaluation's edits.jsonl)")
    table = pd.DataFrame([{"cell": p, **summary(read_records(Path(p)))} for p in paths])
    print(table.to_markdown(index=False, floatfmt=".4f"))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__.split("\n\n")[1])
    main(sys.argv[1:])
