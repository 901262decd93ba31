"""Memory probe at the paper's model sizes: the peak memory of one editor training step, random weights.

For one base-model size and each editor separately, :func:`probe` starts a fresh peak window
(:func:`mendrepro.memory.start_peak_window`: gc, ``malloc_trim``, peak reset) *before* the base model exists,
builds the model with random weights from its architecture (no download) over a synthetic word-level vocabulary
of the real model's size, builds the editor, and runs

- MEND, KE, ENN: one editor training step as :mod:`mendrepro.train` runs it (``edit_losses``; loss
  ``c_edit·edit + c_loc·loc + extra``; backward; gradient-norm clip; the first ``torch.optim.Adam`` step, which
  creates Adam's state);
- FT: one edit with one fine-tuning step (``FTConfig(lr=1e-4, max_steps=1)``).

It records the window's peak (``VmHWM`` on a Linux CPU, ``torch.cuda.max_memory_allocated`` on a GPU) minus the
memory in use when the window started, so the number covers the base model, the editor and the step together:
what a machine needs to train that editor on that model. The model, the editor and the optimiser are freed
before the next editor's window. Inputs are random token sequences (see :class:`BatchMaker`): one edit, one
equivalence and one locality example per step.

The sizes are the paper's: distilGPT-2, BART-base and BERT-base (CPU-sized), GPT-Neo 2.7B, GPT-J 6B, T5-XL and
T5-XXL (``gpu_only``: tens of GB); micro sizes of every architecture keep the probe testable in seconds.

Usage::

    python -m mendrepro.probe --size distilgpt2 --editors mend,ke,enn,ft --out probe/distilgpt2.json
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from torch import nn

from mendrepro.batches import Batch, forward, to_device
from mendrepro.config import ModelSpec, TrainConfig
from mendrepro.data.formats import write_json_atomic
from mendrepro.data.tokenizer import SPECIAL_TOKENS, wrap_tokenizer
from mendrepro.editors.base import Editor
from mendrepro.editors.options import FTConfig, KEConfig
from mendrepro.editors.registry import KINDS
from mendrepro.memory import LIBC, can_reset_hwm, peak_memory_mb, start_peak_window
from mendrepro.models import build_model, edited_parameter_names, freeze
from mendrepro.tasks import EditRequest
from mendrepro.train import edit_losses

EDITORS = ("mend", "ke", "enn", "ft")
TRAINED = ("mend", "ke", "enn")
TARGET_LEN = 4  # target tokens of every example
COND_LEN = 8  # tokens of KE's condition text

PAPER_KE = KEConfig(lstm_hidden=512, cond_dim=1024, head_hidden=512)  # config/paper.yaml
MICRO_KE = KEConfig(lstm_hidden=16, cond_dim=16, head_hidden=16)

MEASURED = {
    "trained": "model build + one editor training step",
    "ft": "model build + one fine-tuning step of an edit",
}


@dataclass(frozen=True)
class ProbeSize:
    """One base model of a given architecture and size, its vocabulary, and the probe's input length."""

    name: str
    spec: ModelSpec
    vocab: int
    seq_len: int  # input tokens (32 for the seq2seq/binary tasks, 64 for the language model)
    gpu_only: bool = False  # too large for a CPU run (tens of GB): the probe refuses it on a CPU
    ke: KEConfig = PAPER_KE


def micro_size(name: str, arch: str, edit_params: tuple[str, ...], n_layers: int = 3) -> ProbeSize:
    """A micro model (d 16, 2 heads, FFN 24) over 2,048 words: seconds, only to keep the machinery working."""
    spec = ModelSpec(name, arch, edit_params, d_model=16, n_layers=n_layers, n_heads=2, d_ffn=24, max_len=64)
    return ProbeSize(name, spec, vocab=2048, seq_len=16, ke=MICRO_KE)


MICRO_SIZES: dict[str, ProbeSize] = {
    s.name: s
    for s in [
        micro_size("micro-gpt2", "gpt2", (r"transformer\.h\.[12]\.mlp\.(c_fc|c_proj)\.weight",)),
        micro_size("micro-bart", "bart", (r"model\.(encoder|decoder)\.layers\.1\.(fc1|fc2)\.weight",), n_layers=2),
        micro_size("micro-bert", "bert", (r"bert\.encoder\.layer\.[12]\.(intermediate|output)\.dense\.weight",)),
        micro_size(
            "micro-t5",
            "t5",
            (
                r"encoder\.block\.[12]\.layer\.1\.DenseReluDense\.(wi_0|wo)\.weight",
                r"decoder\.block\.[12]\.layer\.2\.DenseReluDense\.(wi_0|wo)\.weight",
            ),
        ),
        micro_size("micro-gptneo", "gptneo", (r"transformer\.h\.[12]\.mlp\.(c_fc|c_proj)\.weight",)),
        micro_size("micro-gptj", "gptj", (r"transformer\.h\.[12]\.mlp\.(fc_in|fc_out)\.weight",)),
    ]
}

_T5_EDIT = (
    r"encoder\.block\.(22|23)\.layer\.1\.DenseReluDense\.(wi_0|wo)\.weight",
    r"decoder\.block\.(22|23)\.layer\.2\.DenseReluDense\.(wi_0|wo)\.weight",
)

# Random-initialised models with the real architecture hyper-parameters and vocabularies, editing the paper's
# weights (ModelSpec fields: name, arch, edit_params, d_model, n_layers, n_heads, d_ffn, max_len).
PAPER_SIZES: dict[str, ProbeSize] = {
    s.name: s
    for s in [
        ProbeSize(
            "distilgpt2",
            ModelSpec(
                "distilgpt2", "gpt2", (r"transformer\.h\.[345]\.mlp\.(c_fc|c_proj)\.weight",), 768, 6, 12, 3072, 1024
            ),
            vocab=50257,
            seq_len=64,
        ),
        ProbeSize(
            "bart-base",
            ModelSpec(
                "bart-base",
                "bart",
                (r"model\.(encoder|decoder)\.layers\.[45]\.(fc1|fc2)\.weight",),
                768,
                6,
                12,
                3072,
                1024,
            ),
            vocab=50265,
            seq_len=32,
        ),
        ProbeSize(
            "bert-base",
            ModelSpec(
                "bert-base",
                "bert",
                (r"bert\.encoder\.layer\.(9|10|11)\.(intermediate|output)\.dense\.weight",),
                768,
                12,
                12,
                3072,
                512,
            ),
            vocab=30522,
            seq_len=32,
        ),
        ProbeSize(
            "gpt-neo-2.7b",
            ModelSpec(
                "gpt-neo-2.7b",
                "gptneo",
                (r"transformer\.h\.(29|30|31)\.mlp\.(c_fc|c_proj)\.weight",),
                2560,
                32,
                20,
                10240,
                2048,
                extra={"window_size": 256},
            ),
            vocab=50257,
            seq_len=64,
            gpu_only=True,
        ),
        ProbeSize(
            "gpt-j-6b",
            ModelSpec(
                "gpt-j-6b",
                "gptj",
                (r"transformer\.h\.(25|26|27)\.mlp\.(fc_in|fc_out)\.weight",),
                4096,
                28,
                16,
                16384,
                2048,
            ),
            vocab=50400,
            seq_len=64,
            gpu_only=True,
        ),
        # T5 v1.1 (gated FFN): d_kv = d_model / n_heads = 64 in both.
        ProbeSize("t5-xl", ModelSpec("t5-xl", "t5", _T5_EDIT, 2048, 24, 32, 5120, 512), 32128, 32, gpu_only=True),
        ProbeSize("t5-xxl", ModelSpec("t5-xxl", "t5", _T5_EDIT, 4096, 24, 64, 10240, 512), 32128, 32, gpu_only=True),
    ]
}

SIZES: dict[str, ProbeSize] = {**MICRO_SIZES, **PAPER_SIZES}


def get_size(name: str) -> ProbeSize:
    """The probe size ``name``; ValueError naming the known ones otherwise."""
    if name not in SIZES:
        raise ValueError(f"unknown size {name!r}; sizes: {sorted(PAPER_SIZES)} (and micro: {sorted(MICRO_SIZES)})")
    return SIZES[name]


# ----------------------------------------------------------------------------------------------------------------
# Synthetic vocabularies, inputs and editors (shared with benchmarks/bench.py)


def synthetic_tokenizer(vocab: int, max_len: int):
    """A word-level tokenizer of exactly ``vocab`` tokens: the project's special tokens, then ``w0``, ``w1``, ..."""
    words = list(SPECIAL_TOKENS) + [f"w{i}" for i in range(vocab - len(SPECIAL_TOKENS))]
    raw = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    return wrap_tokenizer(raw, max_len)


class BatchMaker:
    """Random token batches of one family, shaped as :mod:`mendrepro.batches` builds them."""

    def __init__(self, family: str, tok, vocab: int, seq_len: int, seed: int = 0):
        self.family, self.tok, self.vocab, self.seq_len = family, tok, vocab, seq_len
        self.gen = torch.Generator().manual_seed(seed)
        self.first = len(SPECIAL_TOKENS)

    def _ids(self, k: int, n: int) -> torch.Tensor:
        return torch.randint(self.first, self.vocab, (k, n), generator=self.gen)

    def batch(self, k: int, cond: bool = False) -> Batch:
        tok, n = self.tok, self.seq_len
        if self.family == "lm":  # prompt + target, only the last TARGET_LEN tokens scored
            ids = self._ids(k, n)
            labels = torch.full_like(ids, -100)
            labels[:, -TARGET_LEN:] = ids[:, -TARGET_LEN:]
        elif self.family == "seq2seq":  # <s> source </s> -> target </s>
            ids = self._ids(k, n)
            ids[:, 0], ids[:, -1] = tok.bos_token_id, tok.eos_token_id
            labels = self._ids(k, TARGET_LEN)
            labels[:, -1] = tok.eos_token_id
        else:  # [CLS] text [SEP] -> 0/1
            ids = self._ids(k, n)
            ids[:, 0], ids[:, -1] = tok.cls_token_id, tok.sep_token_id
            labels = torch.randint(0, 2, (k,), generator=self.gen).float()
        out = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
        if cond:  # KE's condition text (the edit's input and target)
            c = self._ids(k, COND_LEN)
            out |= {"cond_input_ids": c, "cond_attention_mask": torch.ones_like(c)}
        return out

    def request(self, i: int) -> EditRequest:
        """One training request: one edit (with KE's condition), one equivalence and one locality example."""
        return EditRequest(
            id=str(i),
            text="",
            target="",
            inner=self.batch(1, cond=True),
            outer=self.batch(1),
            loc=self.batch(1),
        )


def make_editor(
    kind: str, model: nn.Module, family: str, names: list[str], ke: KEConfig = PAPER_KE, ft_steps: int = 1
) -> Editor:
    """The paper's editors at their released sizes, built from the registry: MEND ``MendConfig()``, KE ``ke``,
    ENN ``ENNConfig()``, FT ``FTConfig(lr=1e-4, max_steps=ft_steps)``."""
    if kind not in EDITORS:
        raise ValueError(f"unknown editor {kind!r}; editors: {list(EDITORS)}")
    sizes = {"ke": ke, "ft": FTConfig(lr=1e-4, max_steps=ft_steps)}
    entry = KINDS[kind]
    return entry.editor_class()(model, family, names, sizes.get(kind) or entry.options())


def training_step(
    editor: Editor,
    req: EditRequest,
    opt: torch.optim.Optimizer,
    device: torch.device,
    cfg: TrainConfig | None = None,
    clip: bool = True,
) -> None:
    """One step of :func:`mendrepro.train.train_editor` without accumulation or distribution.

    ``edit_losses``; ``c_edit·edit + c_loc·loc + extra`` backward; gradient norm clipped to ``cfg.grad_clip``
    (``clip``); the optimiser steps unless the norm is not finite; gradients released.
    """
    cfg = cfg or TrainConfig()
    parts = edit_losses(editor, req, device)
    loss = cfg.c_edit * parts["edit"] + cfg.c_loc * parts["loc"] + parts.get("extra", 0.0)
    loss.backward()
    finite = True
    if clip:
        params = [p for group in opt.param_groups for p in group["params"]]
        finite = bool(torch.isfinite(torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)))
    if finite:
        opt.step()
    opt.zero_grad(set_to_none=True)


# ----------------------------------------------------------------------------------------------------------------
# The probe


def resolve_device(device: torch.device | str) -> torch.device:
    """``auto`` is CUDA where available, else the CPU; ValueError for CUDA where there is none."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda requested but CUDA is not available; use --device cpu or auto")
    return device


def param_count(size_name: str) -> int:
    """The base model's parameter count (tied weights once), built on the meta device: no memory, milliseconds."""
    size = get_size(size_name)
    tok = synthetic_tokenizer(size.vocab, size.spec.max_len)
    with torch.device("meta"):
        model = build_model(size.spec, tok, seed=0)
    return sum(p.numel() for p in model.parameters())


# The base model's dtype: float32, or bfloat16 as the paper profile loads GPT-J 6B and T5-XXL (torch_dtype).
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def _build(size: ProbeSize, tok, device: torch.device, seed: int, dtype: str = "float32") -> nn.Module:
    with torch.device(device):  # straight on the device: no host copy of a GPU-sized model
        model = build_model(size.spec, tok, seed=seed)
    return freeze(model.eval()).to(device=device, dtype=DTYPES[dtype])


def _wrong_binary_label(model: nn.Module, inner: Batch) -> Batch:
    """A binary edit whose label is the opposite of the model's prediction, so FT takes its step (it stops
    before the step when the edit is already predicted; a random label is, half the time)."""
    with torch.no_grad():
        pred = (forward(model, inner) > 0).float()
    return {**inner, "labels": 1.0 - pred}


def _probe_editor(
    kind: str, size: ProbeSize, tok, req: EditRequest, device: torch.device, seed: int, dtype: str = "float32"
) -> dict:
    """One editor's window: base model, editor and one step; everything is freed when this returns."""
    cuda = device.type == "cuda"
    baseline = start_peak_window(device)
    t0 = time.perf_counter()
    model = _build(size, tok, device, seed, dtype)
    base_params = sum(p.numel() for p in model.parameters())
    names = edited_parameter_names(model, size.spec.edit_params)
    editor = make_editor(kind, model, size.spec.family, names, ke=size.ke, ft_steps=1).to(device)
    params = editor.trainable_parameters()
    if kind == "ft":
        inner = to_device(req.inner, device)
        if size.spec.family == "binary":
            inner = _wrong_binary_label(model, inner)
        editor.eval()
        with torch.no_grad():  # as evaluation calls it
            editor.edit(inner)
        if editor.steps_taken[-1] != 1:
            raise RuntimeError(f"FT took {editor.steps_taken[-1]} steps on {size.name}, expected one")
    else:
        editor.train()
        opt = torch.optim.Adam(params, lr=TrainConfig().lr)
        training_step(editor, req, opt, device)
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - t0
    peak = max(peak_memory_mb(device)["peak_mb"] - baseline, 0.0)  # a peak is never below the start
    return {
        "peak_mb": peak,
        "seconds": seconds,
        "editor_params": sum(p.numel() for p in params),
        "measured": MEASURED["ft" if kind == "ft" else "trained"],
        "_base_params": base_params,
    }


def _release(device: torch.device) -> None:
    """Return what the last window freed: gc and ``malloc_trim`` (CPU), the caching allocator's blocks (CUDA)."""
    gc.collect()
    LIBC.trim()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def probe(
    size_name: str,
    editors: Iterable[str] | str = EDITORS,
    device: torch.device | str = "cpu",
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    dtype: str = "float32",
) -> dict:
    """Peak memory (MiB above the memory in use before the base model was built) and wall seconds of the base
    model's build plus one training step of each editor (one fine-tuning step of an edit for FT), each editor in
    its own window. ``dtype``: the base model's (``bfloat16`` as the paper profile loads the largest models; the
    editor's own parameters keep their dtype). ``editors``: names or a comma list. ValueError for an unknown size
    or editor, and for a ``gpu_only`` size on a CPU. The result is the JSON document :func:`main` writes."""
    size = get_size(size_name)
    device = resolve_device(device)
    kinds = [e for e in (editors.split(",") if isinstance(editors, str) else editors) if e]
    unknown = [e for e in kinds if e not in EDITORS]
    if unknown or not kinds:
        raise ValueError(f"unknown editors {unknown}; editors: {list(EDITORS)}")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; dtypes: {sorted(DTYPES)}")
    if size.gpu_only and device.type != "cuda":
        billions = param_count(size.name) / 1e9
        raise ValueError(
            f"size {size.name!r} ({billions:.1f}B parameters) needs a GPU; run it where CUDA is available "
            "or drop it from memory_probe.sizes"
        )
    log = log or (lambda _msg: None)
    LIBC.pin_mmap_threshold()  # large tensors mapped on allocation and unmapped on free: no heap residue
    spec = size.spec
    tok = synthetic_tokenizer(size.vocab, spec.max_len)
    req = BatchMaker(spec.family, tok, size.vocab, size.seq_len, seed=seed).request(0)
    if device.type == "cuda":
        kind_name = "cuda_max_allocated_delta"
    else:
        kind_name = "cpu_peak_rss_delta" if can_reset_hwm() else "cpu_maxrss_growth"
    out: dict = {
        "size": size.name,
        "arch": spec.arch,
        "family": spec.family,
        "params": None,
        "vocab": size.vocab,
        "seq_len": size.seq_len,
        "device": str(device),
        "memory_kind": kind_name,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "editors": {},
    }
    if dtype != "float32":  # named only where it is not the default, so float32 probes' files stay as they were
        out["dtype"] = dtype
    for kind in kinds:
        # The model, editor and optimiser die with _probe_editor's frame; the next window starts with gc + trim.
        rec = _probe_editor(kind, size, tok, req, device, seed, dtype)
        if device.type == "cuda":
            torch.cuda.empty_cache()
        out["params"] = rec.pop("_base_params")
        if not math.isfinite(rec["peak_mb"]):
            raise RuntimeError(f"non-finite peak memory for {kind} on {size.name}: {rec['peak_mb']}")
        out["editors"][kind] = rec
        log(
            f"{size.name} {kind}: peak {rec['peak_mb']:.1f} MiB, {rec['seconds']:.2f} s "
            f"({rec['editor_params'] / 1e6:.2f} M editor params)"
        )
    _release(device)
    return out


def main(argv: list[str] | None = None) -> int:
    """``--size NAME --editors mend,ke,enn,ft --out PATH.json [--device auto|cpu|cuda] [--threads N] [--seed 0]``."""
    ap = argparse.ArgumentParser(prog="mendrepro memory-probe", description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", required=True, help=f"one of {sorted(PAPER_SIZES)} (or a micro size, for tests)")
    ap.add_argument("--editors", default=",".join(EDITORS), help="comma list (default: mend,ke,enn,ft)")
    ap.add_argument("--out", required=True, help="output JSON file")
    ap.add_argument("--device", default="auto", help="auto (CUDA where available), cpu or cuda")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", default="float32", help=f"the base model's dtype, one of {sorted(DTYPES)}")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    if args.threads is not None:
        if args.threads < 1:
            log(f"memory-probe: --threads must be at least 1, got {args.threads}")
            return 1
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    try:
        result = probe(args.size, args.editors, args.device, seed=args.seed, log=log, dtype=args.dtype)
    except ValueError as e:
        log(f"memory-probe: {e}")
        return 1
    write_json_atomic(args.out, result)
    log(f"{args.size}: wrote {os.fspath(args.out)} in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
