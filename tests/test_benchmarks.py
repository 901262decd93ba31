"""The benchmark harness's smoke mode (micro models, one repeat) still runs and reports every measurement.

No timing thresholds here: timings belong to ``make bench``, not to ``make test``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is a top-level package of the repository, not of mendrepro
    sys.path.insert(0, str(ROOT))

from benchmarks import bench  # noqa: E402


def _positive(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x > 0


def test_smoke_mode_reports_every_measurement(tmp_path):
    report = bench.main(["--smoke", "--out", str(tmp_path), "--machine", "smoke", "--quiet", "--threads", "1"])
    data = json.loads((tmp_path / "smoke.json").read_text())
    assert data["machine_name"] == "smoke" and data["smoke"] is True
    assert data["machine"]["torch_threads"] == 1 and data["machine"]["cpu_count"] >= 1
    assert [r["size"] for r in data["results"]] == bench.GROUPS["micro"]
    memory = data["machine"]["memory_kind"] != "unavailable"
    for r in data["results"]:
        for k in ("1", "5"):
            floor = r["floor"][k]
            assert _positive(floor["latency_s"]["median"])
            if memory:
                assert _positive(floor["memory_mb"]["median"])
        # The scored floor (output layer only where the loss reads) exists exactly for the language model.
        assert bool(r["floor_scored"]) == (r["family"] == "lm")
        for k, f in r["floor_scored"].items():
            assert _positive(f["latency_s"]["median"]) and k in r["floor"]
        for kind in bench.EDITORS:
            per_k = r["edit"][kind]
            assert "1" in per_k
            for e in per_k.values():
                assert _positive(e["latency_s"]["median"]) and _positive(e["latency_ratio"])
                assert (e["latency_ratio_scored"] is not None) == (r["family"] == "lm")
                if memory:
                    # A micro edit's peak-RSS delta can be 0 when it fits in pages the process already holds (seen
                    # once, in a fresh-clone make test); never negative, and some editor of each size allocates.
                    assert e["memory_mb"]["median"] >= 0 and e["memory_ratio"] >= 0
        if memory:
            assert any(_positive(e["memory_mb"]["median"]) for per_k in r["edit"].values() for e in per_k.values())
        assert set(r["train"]) == set(bench.TRAINED)
        for t in r["train"].values():
            assert _positive(t["steps_per_s"]) and _positive(t["step_s"]["median"])
            if memory:
                assert _positive(t["memory_mb"]["median"]) and _positive(t["memory_ratio"])
    table = (tmp_path / "smoke.md").read_text()
    assert table == bench.markdown(report)
    for kind in bench.EDITORS:
        assert f"| micro-gpt2 | {kind}" in table
    assert "fwd+bwd (floor)" in table and "steps/s" in table
    assert "| micro-gpt2 | fwd+bwd, scored logits |" in table and "| micro-bart | fwd+bwd, scored logits |" not in table


def test_sizes_and_groups_resolve():
    assert bench.resolve_sizes("micro-bert,micro") == ["micro-bert", "micro-gpt2", "micro-bart"]
    assert set(bench.GROUPS["real"]) <= set(bench.resolve_sizes("default"))
    with pytest.raises(SystemExit):
        bench.resolve_sizes("gpt-17")


def test_summary_statistics():
    s = bench.summarize([3.0, 1.0, 2.0, 4.0, 5.0])
    assert s["median"] == 3.0 and s["min"] == 1.0 and s["max"] == 5.0 and s["n"] == 5
    assert s["q1"] == 2.0 and s["q3"] == 4.0 and s["iqr"] == 2.0
    assert bench.summarize([7.0])["iqr"] == 0.0


def test_ft_batch_reports_both_paths_on_the_same_steps(tmp_path):
    """benchmarks/ft_batch.py on micro sizes: edits per second on both paths, their ratio, equal steps."""
    from benchmarks import ft_batch

    rows = ft_batch.main(
        ["--sizes", "micro-bert,micro-gpt2", "--batch", "2", "--steps", "1", "--threads", "1", "--out", str(tmp_path),
         "--machine", "smoke"]
    )  # fmt: skip
    data = json.loads((tmp_path / "smoke-ft-batch.json").read_text())
    assert data["results"] == rows and {(r["size"], r["editor"]) for r in rows} == {
        (s, e) for s in ("micro-bert", "micro-gpt2") for e in ("ft", "ftkl")
    }
    for r in rows:
        assert _positive(r["one_at_a_time_edits_per_s"]) and _positive(r["batched_edits_per_s"])
        assert r["ratio"] == pytest.approx(r["batched_edits_per_s"] / r["one_at_a_time_edits_per_s"])
        assert 0 <= r["mean_steps_taken"] <= r["steps"]
