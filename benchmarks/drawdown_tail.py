"""How a language-model cell's perplexity drawdown spreads over its edits, from the raw per-edit records.

    .venv/bin/python -m benchmarks.drawdown_tail results/tiny/seed0/wikitext/gpt2/{ft,ftkl,mend}/eval_k1/edits.jsonl

A cell's perplexity drawdown pools every edit's locality tokens, so a few edits that damage the model can carry it.
For each file: ES, the pooled drawdown against the original model (as the tables compute it), each edit's change of
locality NLL per token (median, 90th percentile, largest), the share of the summed change carried by the tenth of
the edits that change it most, and the ES of that tenth.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd


def per_edit(path: Path) -> pd.DataFrame:
    """One row per edit record: ES, summed locality NLL and tokens of the original and the edited model."""
    rows = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        before, after = r["locality_original"], r["locality_after"]
        rows.append(
            {
                "es": r["es"],
                "nll_before": sum(before["nll"]),
                "nll_after": sum(after["nll"]),
                "tokens": sum(before["tokens"]),
            }
        )
    return pd.DataFrame(rows)


def summary(edits: pd.DataFrame) -> dict:
    """The cell's ES and pooled drawdown, and how the drawdown's NLL change is spread over the edits."""
    change = (edits["nll_after"] - edits["nll_before"]) / edits["tokens"]
    tokens = edits["tokens"].sum()
    dd = math.exp(edits["nll_after"].sum() / tokens) - math.exp(edits["nll_before"].sum() / tokens)
    top = change.sort_values(ascending=False).index[: max(1, len(edits) // 10)]
    summed = (edits["nll_after"] - edits["nll_before"]).sum()
    return {
        "edits": len(edits),
        "es": edits["es"].mean(),
        "ppl_dd": dd,
        "median": change.median(),
        "p90": change.quantile(0.9),
        "max": change.max(),
        "top_tenth_share": (edits.loc[top, "nll_after"] - edits.loc[top, "nll_before"]).sum() / summed,
        "top_tenth_es": edits.loc[top, "es"].mean(),
    }


def main(paths: list[str]) -> None:
    for p in paths:
        if not Path(p).is_file():
            raise SystemExit(f"drawdown_tail: {p}: no such file (an evaluation's edits.jsonl)")
    table = pd.DataFrame([{"cell": p, **summary(per_edit(Path(p)))} for p in paths])
    print(table.to_markdown(index=False, floatfmt=".4f"))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__.split("\n\n")[1])
    main(sys.argv[1:])
