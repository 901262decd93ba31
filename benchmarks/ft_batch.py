"""FT and FT+KL evaluation throughput, one edit at a time against B edits side by side (``eval.edit_batch``).

    python -m benchmarks.ft_batch --sizes bert-base,bart-base,distilgpt2 --batches 16,64 --steps 1,3 [--device cuda]

Randomly initialised models of the probe's sizes (:mod:`mendrepro.probe`) and random-token edit requests (one
edit example, ``--n-equiv`` equivalence and ``--n-loc`` locality examples, as evaluation scores them) run through
:func:`mendrepro.evaluate.evaluate_editor` itself, so the throughput counts what evaluation does per edit: the
pre-edit scoring, the fine-tuning and the post-edit scoring. A random model rarely predicts a random target, so
edits run up to ``--steps`` steps (a random classifier gets half its labels right at once: ``mean_steps_taken``),
the same steps on both paths; the paper-scale estimate combines these per-step
throughputs with the measured number of steps per edit (``make rehearse``). Edits per second and their ratio,
measured in one run, for each B of ``--batches`` (``--batch B``: one B); written to
benchmarks/results/<machine>-ft-batch.json. ``--device cuda`` runs the model, the edits and FT+KL's locality batches
on the GPU (the clock is read after ``torch.cuda.synchronize()`` at both ends); ``make gpu-check`` runs it so. Not
asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path

import torch

from mendrepro.batches import to_device
from mendrepro.editors.ft import FineTune, FTConfig
from mendrepro.evaluate import evaluate_editor
from mendrepro.models import edited_parameter_names
from mendrepro.probe import BatchMaker, _build, get_size, synthetic_tokenizer
from mendrepro.tasks import EditRequest

RESULTS = Path(__file__).resolve().parent / "results"


class RandomTask:
    """``n`` random-token edit requests of one family, as :func:`evaluate_editor` reads a task."""

    def __init__(self, maker: BatchMaker, tok, n: int, n_equiv: int, n_loc: int):
        self.tok = tok
        self.requests = [
            EditRequest(
                id=f"r{i}",
                text="",
                target="",
                inner=maker.batch(1),
                outer=maker.batch(n_equiv),
                loc=maker.batch(n_loc),
                outer_texts=[""] * n_equiv,
            )
            for i in range(n)
        ]

    def __len__(self) -> int:
        return len(self.requests)

    def request(self, i: int, rng: random.Random, n_loc: int = 1, all_equiv: bool = False) -> EditRequest:
        return self.requests[i]


def _loc_streams(maker_seed: int, family: str, tok, vocab: int, seq_len: int, device: str = "cpu"):
    """FT+KL's per-edit locality streams: random batches seeded by the edit's key, already on ``device``."""

    def stream(key: str):
        maker = BatchMaker(family, tok, vocab, seq_len, seed=maker_seed + int(key[1:]))
        return lambda: to_device(maker.batch(1), device)

    return stream


def _sync(device: str) -> None:
    """Wait for the GPU's queued work, so the clock reads when it is done (nothing to wait for on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    name: str, batch: int, steps: int, kl: bool, n_equiv: int, n_loc: int, seed: int = 0, device: str = "cpu"
) -> dict:
    """Evaluation edits per second of FT (or FT+KL) on ``name``, one at a time and ``batch`` at once, on ``device``."""
    size = get_size(name)
    tok = synthetic_tokenizer(size.vocab, size.spec.max_len)
    model = _build(size, tok, torch.device(device), seed)
    family = size.spec.family
    names = edited_parameter_names(model, size.spec.edit_params)
    maker = BatchMaker(family, tok, size.vocab, size.seq_len, seed)
    n = 2 * batch  # two groups on the batched path
    task = RandomTask(maker, tok, n + batch, n_equiv, n_loc)
    cfg = FTConfig(lr=1e-6, max_steps=steps, kl=kl)  # a tiny rate: no random edit succeeds early on either path
    streams = _loc_streams(seed + 1, family, tok, size.vocab, size.seq_len, device) if kl else None
    rates, taken = {}, {}
    for path, b in (("one_at_a_time", 1), ("batched", batch)):
        ft = FineTune(model, family, names, cfg, loc_sampler=streams)
        evaluate_editor(ft, task, list(range(n, n + batch)), 1, n_loc, seed, device=device, edit_batch=b)  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        evaluate_editor(ft, task, list(range(n)), 1, n_loc, seed, device=device, edit_batch=b)
        _sync(device)
        rates[path] = n / (time.perf_counter() - t0)
        taken[path] = ft.steps_taken[batch:]
    assert taken["one_at_a_time"] == taken["batched"], "the two paths took different steps"
    return {
        "size": name,
        "editor": "ftkl" if kl else "ft",
        "device": device,
        "batch": batch,
        "steps": steps,
        "mean_steps_taken": sum(taken["batched"]) / n,
        "one_at_a_time_edits_per_s": rates["one_at_a_time"],
        "batched_edits_per_s": rates["batched"],
        "ratio": rates["batched"] / rates["one_at_a_time"],
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ft_batch", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="bert-base,bart-base,distilgpt2")
    p.add_argument("--editors", default="ft,ftkl")
    p.add_argument("--batches", default=None, help="comma list: the B of each side-by-side run (default 16)")
    p.add_argument("--batch", type=int, default=None, help="one B (the same as --batches B)")
    p.add_argument("--steps", default="1,3", help="comma list: FT steps every edit takes")
    p.add_argument("--n-equiv", type=int, default=1)
    p.add_argument("--n-loc", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--machine", default=platform.node())
    args = p.parse_args(argv)
    if args.batch is not None and args.batches is not None:
        p.error("--batch and --batches: give one")
    batches = [args.batch] if args.batch is not None else [int(b) for b in (args.batches or "16").split(",")]
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        p.error(f"--device {args.device}: CUDA is not available")
    sizes = args.sizes.split(",")
    for name in sizes:  # an unknown size fails here, before anything is measured
        get_size(name)
    torch.set_num_threads(args.threads)
    rows = []
    for name in sizes:
        for editor in args.editors.split(","):
            for steps in (int(s) for s in args.steps.split(",")):
                for batch in batches:
                    row = measure(name, batch, steps, editor == "ftkl", args.n_equiv, args.n_loc, device=args.device)
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": args.machine,
        "device": args.device,
        "threads": args.threads,
        "torch": torch.__version__,
        "results": rows,
    }
    if torch.device(args.device).type == "cuda":
        report["gpu"] = torch.cuda.get_device_name(torch.device(args.device))
    path = args.out / f"{args.machine}-ft-batch.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(path)
    return rows


if __name__ == "__main__":
    main()
