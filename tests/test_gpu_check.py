"""The GPU check's CPU half: probe sizes run in their own processes and land in one JSON file; no CUDA, no run."""

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
        ["--allow-cpu", "--out", str(out), "--sizes", "micro-gpt2,no-such-size", "--dag-target", "none"]
    )
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


def test_a_bfloat16_probe_says_so(tmp_path):
    assert gpu_check.run_probe("micro-gptj", "bfloat16", "cpu", tmp_path, timeout=300)["result"]["dtype"] == "bfloat16"
