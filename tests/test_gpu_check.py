"""The GPU check's CPU half: probe sizes and FT/FT+KL throughput run in their own processes and land in one JSON
file; no CUDA, no run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is a top-level package of the repository, not of mendrepro
    sys.path.insert(0, str(ROOT))
from benchmarks import gpu_check  # noqa: E402


def test_probe_dtypes_follow_the_paper_profile():
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    by_size = {"gpt-neo-2.7b": "gptneo", "gpt-j-6b": "gptj", "t5-xl": "t5xl", "t5-xxl": "t5xxl", "distilgpt2": "gpt2"}
    for size, model in by_size.items():
        assert gpu_check.SIZES[size] == paper["models"][model]["source"].get("torch_dtype", "float32"), size


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_refuses_to_run_without_cuda(tmp_path):
    assert gpu_check.main(["--out", str(tmp_path / "g.json"), "--sizes", "micro-gpt2", "--dag-target", "none"]) == 2
    assert not (tmp_path / "g.json").exists()


def test_cpu_half_writes_one_file(tmp_path):
    out = tmp_path / "g.json"
    rc = gpu_check.main(
        ["--allow-cpu", "--out", str(out), "--sizes", "micro-gpt2,no-such-size", "--dag-target", "none",
         "--ft-batch-sizes", "micro-bert", "--ft-batch-batches", "2", "--ft-batch-steps", "1"]
    )  # fmt: skip
    doc = json.loads(out.read_text())
    assert rc == 1  # the unknown size failed, and is recorded; the other was still probed
    assert doc["probe"]["micro-gpt2"]["ok"] and set(doc["probe"]["micro-gpt2"]["result"]["editors"]) == {
        "mend",
        "ke",
        "enn",
        "ft",
    }
    assert not doc["probe"]["no-such-size"]["ok"] and "unknown size" in doc["probe"]["no-such-size"]["error"]
    assert doc["environment"]["torch"] == torch.__version__ and doc["dag"] is None
    ftb = doc["ft_batch"]
    assert ftb["ok"] and {(r["size"], r["editor"], r["batch"], r["steps"]) for r in ftb["rows"]} == {
        ("micro-bert", "ft", 2, 1),
        ("micro-bert", "ftkl", 2, 1),
    }
    for r in ftb["rows"]:
        assert r["device"] == "cpu" and r["one_at_a_time_edits_per_s"] > 0 and r["batched_edits_per_s"] > 0
        assert r["ratio"] == pytest.approx(r["batched_edits_per_s"] / r["one_at_a_time_edits_per_s"])


def test_a_failed_ft_batch_is_recorded_and_the_check_goes_on(tmp_path, monkeypatch):
    dag_targets = []

    def fake_dag(target, cores, timeout):  # the step after ft_batch, without running snakemake
        dag_targets.append(target)
        return {"ok": True, "target": target, "wall_s": 0.0}

    monkeypatch.setattr(gpu_check, "run_dag", fake_dag)
    out = tmp_path / "g.json"
    rc = gpu_check.main(
        ["--allow-cpu", "--out", str(out), "--sizes", "", "--dag-target", "tiny",
         "--ft-batch-sizes", "no-such-size", "--ft-batch-batches", "2", "--ft-batch-steps", "1"]
    )  # fmt: skip
    doc = json.loads(out.read_text())
    assert rc == 1 and dag_targets == ["tiny"] and doc["dag"]["ok"]
    assert not doc["ft_batch"]["ok"] and "unknown size" in doc["ft_batch"]["error"] and doc["ft_batch"]["rows"] == []


def test_ft_batch_none_skips_it(tmp_path):
    out = tmp_path / "g.json"
    args = ["--allow-cpu", "--out", str(out), "--sizes", "", "--dag-target", "none", "--ft-batch-sizes", "none"]
    assert gpu_check.main(args) == 0
    assert json.loads(out.read_text())["ft_batch"] is None


def test_a_timed_out_ft_batch_keeps_the_rows_it_printed():
    printed = b'{"size": "micro-bert", "ratio": 1.5}\n{"size": "micro-b'  # the second line cut by the kill
    assert gpu_check._rows(printed) == [{"size": "micro-bert", "ratio": 1.5}]


def test_a_bfloat16_probe_says_so(tmp_path):
    assert gpu_check.run_probe("micro-gptj", "bfloat16", "cpu", tmp_path, timeout=300)["result"]["dtype"] == "bfloat16"
