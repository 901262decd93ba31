"""The memory probe: micro sizes of every architecture, the paper's ENN-vs-MEND memory claim at distilGPT-2 size,
the GPU-only sizes' architectures (on the meta device: no memory) and their refusal on a CPU; the peak window."""

from __future__ import annotations

import json
import math

import pytest
import torch

from mendrepro import memory, probe
from mendrepro.models import build_model, edited_parameter_names

EDITOR_KEYS = {"peak_mb", "seconds", "editor_params", "measured"}


@pytest.mark.parametrize("size", sorted(probe.MICRO_SIZES))
def test_micro_probe_measures_every_editor_and_writes_the_json(tmp_path, size, capsys):
    out = tmp_path / "probe" / f"{size}.json"
    assert probe.main(["--size", size, "--editors", "mend,ke,enn,ft", "--out", str(out), "--device", "cpu"]) == 0
    data = json.loads(out.read_text())
    spec = probe.MICRO_SIZES[size].spec
    assert list(data) == [
        "size",
        "arch",
        "family",
        "params",
        "vocab",
        "seq_len",
        "device",
        "memory_kind",
        "threads",
        "torch",
        "editors",
    ]
    assert (data["size"], data["arch"], data["family"]) == (size, spec.arch, spec.family)
    assert data["vocab"] == 2048 and data["seq_len"] == 16 and data["device"] == "cpu"
    assert isinstance(data["params"], int) and data["params"] > 0
    assert data["threads"] == torch.get_num_threads() and data["torch"] == torch.__version__
    assert data["memory_kind"] == ("cpu_peak_rss_delta" if memory.can_reset_hwm() else "cpu_maxrss_growth")
    assert list(data["editors"]) == ["mend", "ke", "enn", "ft"]
    for kind, rec in data["editors"].items():
        assert set(rec) == EDITOR_KEYS
        if memory.can_reset_hwm():
            assert math.isfinite(rec["peak_mb"]) and rec["peak_mb"] > 0, (kind, rec)
        assert math.isfinite(rec["seconds"]) and rec["seconds"] > 0
        assert isinstance(rec["editor_params"], int)
        assert (rec["editor_params"] == 0) == (kind == "ft")
        assert rec["measured"] == (
            "model build + one fine-tuning step of an edit"
            if kind == "ft"
            else "model build + one editor training step"
        )
    err = capsys.readouterr().err
    for kind in probe.EDITORS:
        assert f"{size} {kind}: peak " in err


def test_enn_needs_more_memory_than_mend_at_distilgpt2_size():
    """The paper's claim (Figure 3): ENN, which trains a copy of every base weight, needs more memory than MEND."""
    if not memory.can_reset_hwm():
        pytest.skip("the CPU peak cannot be reset here")
    res = probe.probe("distilgpt2", ["mend", "enn"], "cpu")
    mend, enn = res["editors"]["mend"], res["editors"]["enn"]
    assert res["params"] > 80_000_000 and res["vocab"] == 50257
    # Each window holds the base model (~312 MiB of fp32 weights) plus the editor's parameters, gradients, and
    # Adam's two moments: at least that much is resident at the peak.
    for rec in (mend, enn):
        floor_mb = (res["params"] + 4 * rec["editor_params"]) * 4 / 2**20
        assert rec["peak_mb"] > 0.9 * floor_mb, (rec, floor_mb)
    assert enn["editor_params"] > mend["editor_params"]
    assert enn["peak_mb"] > mend["peak_mb"], res["editors"]


# The GPU-only sizes: nominal parameter counts of the released checkpoints. The T5 v1.1 checkpoints have an
# untied LM head; transformers >= 5 always ties T5's, one vocab x d_model matrix fewer (2-3%).
GPU_SIZES = {"gpt-neo-2.7b": 2.65e9, "gpt-j-6b": 6.05e9, "t5-xl": 2.85e9, "t5-xxl": 11.1e9}
EDITED = {"gpt-neo-2.7b": 6, "gpt-j-6b": 6, "t5-xl": 8, "t5-xxl": 8}


@pytest.mark.parametrize("name", sorted(GPU_SIZES))
def test_gpu_only_sizes_have_the_real_architecture(name):
    size = probe.PAPER_SIZES[name]
    assert size.gpu_only and size.ke == probe.PAPER_KE
    tok = probe.synthetic_tokenizer(size.vocab, size.spec.max_len)
    assert len(tok) == size.vocab
    with torch.device("meta"):  # shapes only, no storage
        model = build_model(size.spec, tok, seed=0)
    n = sum(p.numel() for p in model.parameters())
    assert n == probe.param_count(name)
    assert n == pytest.approx(GPU_SIZES[name], rel=0.03)
    names = edited_parameter_names(model, size.spec.edit_params)
    assert len(names) == EDITED[name]
    d, ffn = size.spec.d_model, size.spec.d_ffn
    shapes = {tuple(dict(model.named_parameters())[x].shape) for x in names}
    assert shapes == {(ffn, d), (d, ffn)}


def test_paper_sizes_cover_the_paper_models():
    cpu = {n for n, s in probe.PAPER_SIZES.items() if not s.gpu_only}
    assert cpu == {"distilgpt2", "bart-base", "bert-base"}
    assert set(probe.PAPER_SIZES) - cpu == set(GPU_SIZES)
    assert probe.PAPER_SIZES["gpt-neo-2.7b"].spec.extra == {"window_size": 256}


def test_gpu_only_size_on_a_cpu_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"'gpt-j-6b' \(6\.1B parameters\) needs a GPU; run it where CUDA is "):
        probe.probe("gpt-j-6b", probe.EDITORS, "cpu")
    out = tmp_path / "t5-xxl.json"
    assert probe.main(["--size", "t5-xxl", "--out", str(out), "--device", "cpu"]) == 1
    assert not out.exists()
    assert "drop it from memory_probe.sizes" in capsys.readouterr().err


def test_unknown_size_or_editor_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown size 'gpt-17'"):
        probe.probe("gpt-17", ["mend"], "cpu")
    with pytest.raises(ValueError, match=r"unknown editors \['rome'\]"):
        probe.probe("micro-gpt2", "mend,rome", "cpu")
    assert probe.main(["--size", "micro-gpt2", "--editors", "cache", "--out", str(tmp_path / "x.json")]) == 1
    assert "unknown editors" in capsys.readouterr().err


def test_peak_window_measures_the_block_above_its_start():
    if not memory.can_reset_hwm():
        pytest.skip("the CPU peak cannot be reset here")
    memory.LIBC.pin_mmap_threshold()
    base = memory.start_peak_window("cpu")
    x = torch.ones(64 * 2**20 // 4)  # 64 MiB, every page touched
    del x
    grew = memory.peak_memory_mb("cpu")
    assert grew["kind"] == "cpu_peak_rss"
    assert 60 < grew["peak_mb"] - base < 120
    base = memory.start_peak_window("cpu")  # a new window forgets the old peak
    assert memory.peak_memory_mb("cpu")["peak_mb"] - base < 16
    with memory.PeakMemory(torch.device("cpu")) as pm:
        y = torch.ones(32 * 2**20 // 4)
        del y
    assert 28 < pm.delta_mb < 80
    assert memory.memory_kind("cpu") == "cpu_peak_rss_delta"
