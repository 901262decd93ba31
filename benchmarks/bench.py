"""Edit latency, editor training throughput and peak memory, measured against the physical floor.

For every base-model size and every editor this harness measures, after a warm-up run, over repeated runs
(median and interquartile range):

- **edit latency**: wall time of ``editor.edit(batch)`` under ``torch.no_grad()`` (as ``evaluate.py`` calls it)
  for a batch of k edits, and its ratio to the *floor*: one forward + backward pass of the base model on the same
  batch, with gradients w.r.t. the edited weights only (``requires_grad`` on the edited matrices, every other
  weight frozen: the gradient a gradient-based editor needs, no more). For a language model the harness also
  times the *scored floor*, the same pass with the output layer evaluated only at the positions the loss reads
  (``mendrepro.batches.scored_forward``, which the gradient-based editors' edits use): the cheapest gradient
  pass this code knows, and the ratio to it is reported beside the floor's.
  FT is run with a fixed ``FT_STEPS`` optimiser steps (it would otherwise stop at a data-dependent step), so its
  ratio measures that many steps, not a converged fine-tune.
- **editor training throughput**: steps/s of ``mendrepro.train.edit_losses`` + backward + Adam step for MEND, KE
  and ENN on the same sampled requests (one edit per step, one equivalence and one locality example).
- **peak memory** of one edit and of one training step, as a ratio to the peak of a plain forward + backward
  (k = 1). On CUDA: ``torch.cuda.max_memory_allocated`` over the op minus the allocation before it. On the CPU:
  the process's peak resident set (``VmHWM``, reset through ``/proc/self/clear_refs``) over the op minus the
  resident set before it, after ``gc.collect`` and ``malloc_trim``; glibc's mmap threshold is pinned at 64 KiB so
  every large tensor is mapped on allocation and unmapped on free, and freed memory never hides in the heap.
  Memory is measured in two runs of its own, before any timed run (see :func:`measure`): the pinned threshold's
  page faults would otherwise count in the latencies. Each size runs in a fresh process.

Models are randomly initialised (timing and memory do not depend on the weights) over a synthetic word-level
vocabulary of the real model's size (the output layer dominates a language model's cost); inputs are random
token sequences (32 tokens for the seq2seq/binary tasks, 64 for the language model) with a 4-token target.

Torch uses a fixed number of intra-op threads (``--threads``, default: every CPU), recorded in the output.

Usage::

    python -m benchmarks.bench                 # tiny + real sizes, writes benchmarks/results/<host>.{json,md}
    python -m benchmarks.bench --smoke         # micro sizes, one repeat: seconds (used by the tests)
    python -m benchmarks.bench --sizes distilgpt2,tiny-gpt2 --machine mybox
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from mendrepro.batches import Batch, forward, scored_forward
from mendrepro.config import ModelSpec
from mendrepro.editors.base import Editor
from mendrepro.editors.ke import KEConfig
from mendrepro.losses import nll_per_example
from mendrepro.memory import LIBC, PeakMemory, memory_kind
from mendrepro.models import build_model, edited_parameter_names, freeze
from mendrepro.probe import (
    MICRO_SIZES,
    PAPER_SIZES,
    TARGET_LEN,
    BatchMaker,
    ProbeSize,
    make_editor,
    synthetic_tokenizer,
    training_step,
)

RESULTS = Path(__file__).resolve().parent / "results"
EDITORS = ("mend", "ke", "enn", "ft")
TRAINED = ("mend", "ke", "enn")
FT_STEPS = 10


@dataclass(frozen=True)
class Size:
    """One base model to benchmark and how hard to measure it."""

    name: str
    spec: ModelSpec
    vocab: int
    seq_len: int
    ks: tuple[int, ...]
    repeats: int
    train_steps: int
    ke: KEConfig = field(default_factory=KEConfig)
    ft_ks: tuple[int, ...] = (1,)


def _from_probe(size: ProbeSize, ks: tuple[int, ...], repeats: int, train_steps: int) -> Size:
    """A size of :mod:`mendrepro.probe` (architecture, vocabulary, input length, KE's config), measured as given."""
    return Size(size.name, size.spec, size.vocab, size.seq_len, ks, repeats, train_steps, ke=size.ke)


_TINY_KE = KEConfig(lstm_hidden=64, cond_dim=128, head_hidden=128)  # config/tiny.yaml

SIZES: dict[str, Size] = {
    s.name: s
    for s in [
        # Micro models (--smoke): seconds in all, only to keep the harness working.
        *(
            _from_probe(MICRO_SIZES[n], ks=(1, 5), repeats=1, train_steps=1)
            for n in ("micro-gpt2", "micro-bart", "micro-bert")
        ),
        # The tiny profile's models (config/tiny.yaml), over a 2,000-word vocabulary.
        Size(
            "tiny-gpt2",
            ModelSpec("tiny-gpt2", "gpt2", (r"transformer\.h\.[123]\.mlp\.(c_fc|c_proj)\.weight",), 128, 4, 4, 256, 96),
            vocab=2000,
            seq_len=64,
            ks=(1, 5, 25),
            repeats=3,
            train_steps=5,
            ke=_TINY_KE,
        ),
        Size(
            "tiny-bart",
            ModelSpec(
                "tiny-bart", "bart", (r"model\.(encoder|decoder)\.layers\.[01]\.(fc1|fc2)\.weight",), 128, 2, 4, 256, 48
            ),
            vocab=2000,
            seq_len=32,
            ks=(1, 5, 25, 125),
            repeats=3,
            train_steps=5,
            ke=_TINY_KE,
        ),
        Size(
            "tiny-bert",
            ModelSpec(
                "tiny-bert",
                "bert",
                (r"bert\.encoder\.layer\.[123]\.(intermediate|output)\.dense\.weight",),
                128,
                4,
                4,
                256,
                48,
            ),
            vocab=2000,
            seq_len=32,
            ks=(1, 5, 25, 125),
            repeats=3,
            train_steps=5,
            ke=_TINY_KE,
        ),
        # Random-initialised models of the paper's sizes, with the real vocabularies and the paper's edited weights
        # (the CPU-sized ones of mendrepro.probe).
        *(
            _from_probe(PAPER_SIZES[n], ks=(1, 5), repeats=7, train_steps=3)
            for n in ("distilgpt2", "bart-base", "bert-base")
        ),
    ]
}
GROUPS = {
    "micro": [n for n in SIZES if n.startswith("micro-")],
    "tiny": [n for n in SIZES if n.startswith("tiny-")],
    "real": ["distilgpt2", "bart-base", "bert-base"],
}
GROUPS["default"] = GROUPS["tiny"] + GROUPS["real"]


# ----------------------------------------------------------------------------------------------------------------
# Statistics and timing


def summarize(values: list[float]) -> dict:
    xs = sorted(values)
    if len(xs) >= 2:
        q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    else:
        q1 = q3 = xs[0]
    return {
        "median": statistics.median(xs),
        "q1": q1,
        "q3": q3,
        "iqr": q3 - q1,
        "min": xs[0],
        "max": xs[-1],
        "n": len(xs),
    }


@dataclass
class Op:
    """One measured operation of a size: a runner, its number of timed runs, and (after :func:`measure`) the
    summaries of its seconds and peak MiB."""

    fn: Callable[[], None]
    repeats: int
    secs: dict | None = None
    mem: dict | None = None


def measure(ops: list[Op], device: torch.device, warmup: int = 1, mem_repeats: int = 2) -> None:
    """The peak memory of every op, then the time of every op, each after ``warmup`` untimed runs.

    The two are measured in separate passes because the memory bookkeeping changes what a timer sees. For memory
    (first, with glibc's mmap threshold pinned low since the process started, see :func:`_run_size`) the heap is
    trimmed before each run and every large tensor is mapped on allocation and unmapped on free, so the peak is
    the memory actually live. Those page faults are tens of percent of a distilGPT-2 edit, so the timed pass
    then switches to a warm allocator that keeps and reuses freed memory (``Libc.keep_freed_memory``), as a
    caching allocator does (PyTorch's own on a GPU). It comes last because a heap that keeps freed memory would
    inflate any later memory run.
    """
    for op in ops:
        for _ in range(warmup):
            op.fn()
        mems = []
        for _ in range(mem_repeats):
            with PeakMemory(device) as pm:
                op.fn()
            if pm.delta_mb is not None:
                mems.append(pm.delta_mb)
        op.mem = summarize(mems) if mems else None
    LIBC.keep_freed_memory()
    for op in ops:
        for _ in range(warmup):
            op.fn()
        secs = []
        for _ in range(op.repeats):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            op.fn()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            secs.append(time.perf_counter() - t0)
        op.secs = summarize(secs)


# ----------------------------------------------------------------------------------------------------------------
# Models, batches, editors


def fwd_bwd(model: nn.Module, family: str, names: list[str], batch: Batch, scored: bool = False) -> None:
    """The floor: forward + backward of the summed edit loss w.r.t. the edited weights only (``scored``: with the
    output layer only at the positions the loss reads)."""
    named = dict(model.named_parameters())
    weights = {n: named[n].detach().requires_grad_(True) for n in names}
    with torch.enable_grad():
        if scored:
            logits, labels = scored_forward(model, family, batch, weights)
        else:
            logits, labels = forward(model, batch, weights), batch["labels"]
        loss = nll_per_example(family, logits, labels).sum()
        torch.autograd.grad(loss, list(weights.values()))


def _edit_runner(editor: Editor, batch: Batch):
    def run() -> None:
        editor.eval()
        with torch.no_grad():  # as evaluate.py calls it
            editor.edit(batch)

    return run


def _train_runner(editor: Editor, reqs, opt: torch.optim.Optimizer, device: torch.device):
    """One training step of train.py's loop (c_edit 0.1, c_loc 1, plus ENN's own term), without accumulation."""

    def step() -> None:
        editor.train()
        training_step(editor, next(reqs), opt, device, clip=False)

    return step


def _on(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device) for k, v in batch.items()}


# ----------------------------------------------------------------------------------------------------------------
# The benchmark of one size


def bench_size(size: Size, device: torch.device, editors: tuple[str, ...], log) -> dict:
    t_size = time.perf_counter()
    spec = size.spec
    tok = synthetic_tokenizer(size.vocab, spec.max_len)
    model = freeze(build_model(spec, tok, seed=0).eval()).to(device)
    names = edited_parameter_names(model, spec.edit_params)
    named = dict(model.named_parameters())
    maker = BatchMaker(spec.family, tok, size.vocab, size.seq_len)
    batches = {k: _on(maker.batch(k, cond=True), device) for k in size.ks}
    res: dict = {
        "size": size.name,
        "arch": spec.arch,
        "family": spec.family,
        "d_model": spec.d_model,
        "n_layers": spec.n_layers,
        "vocab": size.vocab,
        "seq_len": size.seq_len,
        "target_len": TARGET_LEN,
        "params": sum(p.numel() for p in model.parameters()),
        "edited_params": sum(named[n].numel() for n in names),
        "edited_matrices": len(names),
        "repeats": size.repeats,
        "floor": {},
        "floor_scored": {},
        "edit": {},
        "train": {},
    }
    # Every op of the size first, then one measurement pass (memory, then time) over all of them.
    floor_ops = {k: Op(lambda b=batches[k]: fwd_bwd(model, spec.family, names, b), size.repeats) for k in size.ks}
    scored_ops = {}
    if spec.family == "lm":
        scored_ops = {
            k: Op(lambda b=batches[k]: fwd_bwd(model, spec.family, names, b, scored=True), size.repeats)
            for k in size.ks
        }
    edit_ops: dict[str, dict[int, Op]] = {}
    train_ops: dict[str, tuple[Op, int]] = {}
    for kind in editors:
        editor = make_editor(kind, model, spec.family, names, ke=size.ke, ft_steps=FT_STEPS).to(device)
        ks = [k for k in (size.ft_ks if kind == "ft" else size.ks) if k in batches]
        edit_ops[kind] = {k: Op(_edit_runner(editor, batches[k]), size.repeats) for k in ks}
        if kind in TRAINED:
            # The same requests for every editor. The memory pass's warm-up creates Adam's state, which then
            # counts in the baseline, not in the step's peak.
            params = editor.trainable_parameters()
            opt = torch.optim.Adam(params, lr=1e-5)
            reqs = iter([BatchMaker(spec.family, tok, size.vocab, size.seq_len, seed=1).request(i) for i in range(99)])
            train_ops[kind] = (
                Op(_train_runner(editor, reqs, opt, device), size.train_steps),
                sum(map(torch.numel, params)),
            )
    all_ops = [*floor_ops.values(), *scored_ops.values()]
    for kind in editors:
        all_ops += [*edit_ops[kind].values()] + ([train_ops[kind][0]] if kind in train_ops else [])
    log(f"  {size.name}: measuring {len(all_ops)} operations")
    measure(all_ops, device)

    for k in size.ks:
        res["floor"][str(k)] = {"latency_s": floor_ops[k].secs, "memory_mb": floor_ops[k].mem}
        log(f"  {size.name} floor k={k}: {floor_ops[k].secs['median'] * 1e3:.1f} ms")
        if k in scored_ops:
            res["floor_scored"][str(k)] = {"latency_s": scored_ops[k].secs, "memory_mb": scored_ops[k].mem}
            log(f"  {size.name} scored floor k={k}: {scored_ops[k].secs['median'] * 1e3:.1f} ms")

    def ratio(mem, ref):
        if mem is None or ref is None or ref["median"] <= 0:
            return None
        return mem["median"] / ref["median"]

    for kind in editors:
        out: dict = {}
        for k, op in edit_ops[kind].items():
            lat, floor, scored = op.secs, res["floor"][str(k)], res["floor_scored"].get(str(k))
            out[str(k)] = {
                "latency_s": lat,
                "latency_ratio": lat["median"] / floor["latency_s"]["median"],
                "latency_ratio_scored": lat["median"] / scored["latency_s"]["median"] if scored else None,
                "memory_mb": op.mem,
                "memory_ratio": ratio(op.mem, floor["memory_mb"]),
            }
            log(f"  {size.name} {kind} edit k={k}: {lat['median'] * 1e3:.1f} ms ({out[str(k)]['latency_ratio']:.2f}x)")
        res["edit"][kind] = out
        if kind in train_ops:
            op, n_params = train_ops[kind]
            res["train"][kind] = {
                "step_s": op.secs,
                "steps_per_s": 1.0 / op.secs["median"],
                "memory_mb": op.mem,
                "memory_ratio": ratio(op.mem, res["floor"]["1"]["memory_mb"]),
                "editor_params": n_params,
            }
            log(f"  {size.name} {kind} train: {res['train'][kind]['steps_per_s']:.2f} steps/s")
    res["wall_s"] = time.perf_counter() - t_size
    return res


def _run_size(name: str, device: str, editors: tuple[str, ...], threads: int, quiet: bool) -> dict:
    """:func:`bench_size` in a process of its own (the entry point of each size's worker)."""
    LIBC.pin_mmap_threshold()  # before the model exists: nothing large ever lives in the heap (see measure)
    torch.set_num_threads(threads)

    def log(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    return bench_size(SIZES[name], torch.device(device), editors, log)


# ----------------------------------------------------------------------------------------------------------------
# Output


def machine_info(device: torch.device, threads: int) -> dict:
    info = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": threads,
        "device": str(device),
        "memory_kind": memory_kind(device),
        # Other work on the machine skews every timing: the 1-minute load average when the run ended.
        "loadavg_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _ms(stats: dict | None) -> str:
    if not stats:
        return "–"
    return f"{stats['median'] * 1e3:.1f} ±{stats['iqr'] * 1e3 / 2:.1f}"


def _x(r: float | None) -> str:
    return "–" if r is None else f"{r:.2f}×"


def _mb(stats: dict | None) -> str:
    return "–" if not stats else f"{stats['median']:.1f}"


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        f"# Editor benchmarks: {report['machine_name']}",
        "",
        f"{m['platform']}; {m['cpu_count']} CPUs; torch {m['torch']} with {m['torch_threads']} threads; "
        f"device {m['device']}; memory: {m['memory_kind']}. Harness wall time {report['wall_s']:.0f} s; "
        f"load average at the end {m.get('loadavg_end')} (above {m['torch_threads']}: other work skewed timings).",
        "",
        "Latencies are the median over repeated runs after one warm-up, ± half the interquartile range, in ms;",
        "× is the ratio to the floor, one forward+backward of the base model on the same batch (gradient w.r.t.",
        "the edited weights only). For a language model the second × is the ratio to the scored floor: the same",
        "pass with the output layer only at the positions the loss reads (as the gradient-based editors' edits",
        f"compute it), the cheapest gradient pass here. FT runs a fixed {FT_STEPS} steps. Memory is the peak above",
        "the memory in use before the op, MiB, for k = 1; its × is the ratio to the floor's.",
        "",
        "## Edit latency and memory",
        "",
    ]
    ks = sorted({int(k) for r in report["results"] for k in r["floor"]})
    head = "| size | editor | " + " | ".join(f"k={k}" for k in ks) + " | peak MiB (k=1) | mem × floor |"
    lines += [head, "|" + "---|" * (len(ks) + 4)]
    for r in report["results"]:
        cells = [f"{_ms(r['floor'][str(k)]['latency_s'])}" if str(k) in r["floor"] else "" for k in ks]
        f1 = r["floor"].get("1", {}).get("memory_mb")
        lines.append(f"| {r['size']} | fwd+bwd (floor) | " + " | ".join(cells) + f" | {_mb(f1)} | 1.00× |")
        scored = r.get("floor_scored") or {}
        if scored:
            cells = [_ms(scored[str(k)]["latency_s"]) if str(k) in scored else "" for k in ks]
            s1 = scored.get("1", {}).get("memory_mb")
            lines.append(f"| {r['size']} | fwd+bwd, scored logits | " + " | ".join(cells) + f" | {_mb(s1)} | |")
        for kind, per_k in r["edit"].items():
            cells = []
            for k in ks:
                e = per_k.get(str(k))
                if not e:
                    cells.append("")
                    continue
                ratios = _x(e["latency_ratio"])
                if e.get("latency_ratio_scored") is not None:
                    ratios += f" / {_x(e['latency_ratio_scored'])}"
                cells.append(f"{_ms(e['latency_s'])} ({ratios})")
            e1 = per_k.get("1", {})
            label = f"{kind} ({FT_STEPS} steps)" if kind == "ft" else kind
            lines.append(
                f"| {r['size']} | {label} | "
                + " | ".join(cells)
                + f" | {_mb(e1.get('memory_mb'))} | {_x(e1.get('memory_ratio'))} |"
            )
    lines += [
        "",
        "## Editor training (one edit, one equivalence and one locality example per step; Adam)",
        "",
        "| size | editor | steps/s | step ms | editor params | peak MiB | mem × floor |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        for kind, t in r["train"].items():
            lines.append(
                f"| {r['size']} | {kind} | {t['steps_per_s']:.2f} | {_ms(t['step_s'])} | "
                f"{t['editor_params'] / 1e6:.2f} M | {_mb(t['memory_mb'])} | {_x(t['memory_ratio'])} |"
            )
    aims = report.get("aims")
    if aims:
        lines += ["", "## Aims (distilGPT-2 size)", ""]
        for a in aims:
            val = "–" if a["value"] is None else f"{a['value']:.2f}×"
            if a["limit"] is None:
                lines.append(f"- {a['name']}: {val} (no aim; for comparison)")
                continue
            status = "–" if a["value"] is None else ("met" if a["met"] else "NOT met")
            lines.append(f"- {a['name']}: {val} (aim ≤ {a['limit']}×): {status}")
    return "\n".join(lines) + "\n"


def aims(results: list[dict]) -> list[dict]:
    r = next((r for r in results if r["size"] == "distilgpt2"), None)
    if r is None or "mend" not in r["edit"] or "1" not in r["edit"]["mend"]:
        return []
    e = r["edit"]["mend"]["1"]
    out = []
    for name, value in (
        ("MEND single-edit latency / forward+backward", e["latency_ratio"]),
        ("MEND edit peak memory / forward+backward", e["memory_ratio"]),
    ):
        out.append({"name": name, "value": value, "limit": 1.5, "met": value is not None and value <= 1.5})
    out.append(
        {
            "name": "MEND single-edit latency / forward+backward at the scored positions only",
            "value": e.get("latency_ratio_scored"),
            "limit": None,
            "met": None,
        }
    )
    return out


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def resolve_sizes(spec: str) -> list[str]:
    out: list[str] = []
    for part in filter(None, (s.strip() for s in spec.split(","))):
        for name in GROUPS.get(part, [part]):
            if name not in SIZES:
                raise SystemExit(f"unknown size {name!r}; sizes: {sorted(SIZES)}, groups: {sorted(GROUPS)}")
            if name not in out:
                out.append(name)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="micro models, one repeat (seconds): keeps the harness alive")
    ap.add_argument("--sizes", default=None, help=f"comma list of sizes or groups {sorted(GROUPS)} (default: default)")
    ap.add_argument("--editors", default=",".join(EDITORS), help="comma list of editors (default: all)")
    ap.add_argument("--out", type=Path, default=None, help="results directory (default: benchmarks/results)")
    ap.add_argument("--machine", default=None, help="name of the results files (default: the host name)")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: every CPU)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--quiet", action="store_true", help="do not print progress or the table")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    device = torch.device(args.device)
    names = resolve_sizes(args.sizes or ("micro" if args.smoke else "default"))
    editors = tuple(e for e in args.editors.split(",") if e)
    unknown = set(editors) - set(EDITORS)
    if unknown:
        raise SystemExit(f"unknown editors {sorted(unknown)}; editors: {list(EDITORS)}")

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    results = []
    spawn = multiprocessing.get_context("spawn")
    for name in names:
        log(f"{name} ...")
        # Each size in a fresh process: its memory pass must start from a heap no earlier timed pass has used.
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            results.append(pool.submit(_run_size, name, args.device, editors, threads, args.quiet).result())
    machine = args.machine or socket.gethostname().split(".")[0] or "machine"
    report = {
        "machine_name": machine,
        "machine": machine_info(device, threads),
        "smoke": args.smoke,
        "ft_steps": FT_STEPS,
        "results": results,
        "aims": aims(results),
        "wall_s": time.perf_counter() - t0,
    }
    out = args.out or RESULTS
    write_atomic(out / f"{machine}.json", json.dumps(report, indent=1) + "\n")
    table = markdown(report)
    write_atomic(out / f"{machine}.md", table)
    if not args.quiet:
        print(table)
        print(f"wrote {out / f'{machine}.json'} and {out / f'{machine}.md'}")
    return report


if __name__ == "__main__":
    main()
