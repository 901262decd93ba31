"""benchmarks/drawdown_tail.py: a cell's pooled perplexity drawdown and the share of it its worst tenth carries,
on hand-made per-edit records."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.drawdown_tail import main, summary
from mendrepro.evaluate import read_records


def _record(es: float, before: list[float], after: list[float], tokens: list[int]) -> dict:
    loc = {"nll": before, "tokens": tokens}
    return {
        "es": es,
        "locality_original": loc,
        "locality_before": loc,
        "locality_after": {"nll": after, "tokens": tokens},
        "seconds": 0.1,  # the evaluation's record fields its aggregation reads
        "memory": {"peak_mb": 1.0, "kind": "cpu_peak_rss"},
    }


def test_one_damaging_edit_carries_the_pooled_drawdown(tmp_path):
    # Nine edits that each add 0.1 nats over 20 locality tokens, one failed edit that adds 9.1.
    records = [_record(1.0, [10.0, 10.0], [10.05, 10.05], [10, 10]) for _ in range(9)]
    records.append(_record(0.0, [10.0, 10.0], [14.55, 14.55], [10, 10]))
    path = tmp_path / "edits.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    s = summary(read_records(path))
    assert s["edits"] == 10 and s["es"] == pytest.approx(0.9)
    assert s["ppl_dd"] == pytest.approx(math.exp((200.0 + 10.0) / 200) - math.exp(1.0))
    assert s["median"] == pytest.approx(0.1 / 20) and s["max"] == pytest.approx(9.1 / 20)
    assert s["top_tenth_share"] == pytest.approx(9.1 / 10.0) and s["top_tenth_es"] == 0.0


def test_evenly_spread_damage_gives_the_worst_tenth_a_tenth(tmp_path):
    path = tmp_path / "edits.jsonl"
    path.write_text("".join(json.dumps(_record(0.5, [5.0], [5.5], [10])) + "\n" for _ in range(20)))
    s = summary(read_records(path))
    assert s["top_tenth_share"] == pytest.approx(0.1) and s["median"] == s["p90"] == s["max"] == pytest.approx(0.05)


def test_a_missing_file_is_one_line_naming_it(tmp_path):
    missing = tmp_path / "absent/edits.jsonl"
    with pytest.raises(SystemExit, match=f"drawdown_tail: {missing}: no such file"):
        main([str(missing)])
