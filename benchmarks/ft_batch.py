"""FT evaluation throughput, one edit at a time against B edits at once (:func:`mendrepro.editors.ft.edit_many`).

    python -m benchmarks.ft_batch --sizes bert-base,bart-base,distilgpt2 --batch 16 --steps 3

Randomly initialised models of the probe's sizes (:mod:`mendrepro.probe`); random-token edits, which a random
model never predicts, so every edit runs ``--steps`` steps on both paths: the ratio is the per-step throughput
of the two paths, measured in one run (edits per second, one-at-a-time vs batched). Not asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from mendrepro.editors.ft import FineTune, FTConfig, edit_many
from mendrepro.models import edited_parameter_names
from mendrepro.probe import BatchMaker, _build, get_size, synthetic_tokenizer


def measure_size(name: str, batch: int, steps: int, seed: int = 0) -> dict:
    """Edits per second of FT on ``name``, one at a time and ``batch`` at once, on the same ``batch`` edits."""
    size = get_size(name)
    tok = synthetic_tokenizer(size.vocab, size.spec.max_len)
    model = _build(size, tok, torch.device("cpu"), seed)
    names = edited_parameter_names(model, size.spec.edit_params)
    maker = BatchMaker(size.spec.family, tok, size.vocab, size.seq_len, seed)
    inners = [maker.batch(1) for _ in range(batch)]
    cfg = FTConfig(lr=1e-6, max_steps=steps)  # a tiny lr: no random edit succeeds early on either path
    ft = FineTune(model, size.spec.family, names, cfg)
    ft.edit(inners[0])  # warm-up
    t0 = time.perf_counter()
    for b in inners:
        ft.edit(b)
    one = time.perf_counter() - t0
    edit_many(ft, inners[:2], tok.pad_token_id)  # warm-up
    t0 = time.perf_counter()
    edit_many(ft, inners, tok.pad_token_id)
    many = time.perf_counter() - t0
    return {
        "size": name,
        "batch": batch,
        "steps": steps,
        "one_at_a_time_edits_per_s": batch / one,
        "batched_edits_per_s": batch / many,
        "ratio": one / many,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ft_batch", description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="bert-base,bart-base,distilgpt2")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = []
    for name in args.sizes.split(","):
        row = measure_size(name, args.batch, args.steps)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


if __name__ == "__main__":
    main()
