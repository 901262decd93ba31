"""Pre-train a tiny base model on the synthetic world until it knows its facts (tiny profile only).

BART learns every world fact as question answering, BERT learns to classify true and false claims, GPT-2
learns the Wikitext-style corpus. The metrics written next to the model say how well each one knows its world.
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path

import torch
from tqdm import tqdm

from mendrepro.batches import binary_batch, forward, lm_batch, seq2seq_batch
from mendrepro.config import ModelSpec, PretrainConfig
from mendrepro.data.fever import load_fever
from mendrepro.data.formats import read_jsonl
from mendrepro.data.nq import load_nq
from mendrepro.data.wikitext import load_wikitext_raw
from mendrepro.data.zsre import load_zsre
from mendrepro.losses import accuracy_per_example, nll, nll_sum_and_count
from mendrepro.models import build_model

log = logging.getLogger(__name__)

ZSRE_TRAIN = "zsre/structured_zeroshot-train-new_annotated_final.jsonl"
ZSRE_DEV = "zsre/structured_zeroshot-dev-new_annotated_final.jsonl"
FEVER_TRAIN = "fever/fever-train-kilt.jsonl"
FEVER_DEV = "fever/fever-dev-kilt.jsonl"


def _examples(task: str, world: Path) -> tuple[list, dict[str, list]]:
    """(training examples, {eval-set name: examples}) of ``task``."""
    if task == "zsre":
        train = [(r["question"], r["answer"]) for r in read_jsonl(world / "pretrain/zsre_qa_train.jsonl")]
        evals = {
            "zsre_train_facts": [(r.src, r.answers[0]) for r in load_zsre(world / ZSRE_TRAIN)],
            "zsre_dev_facts": [(r.src, r.answers[0]) for r in load_zsre(world / ZSRE_DEV)],
            "nq_dev": load_nq(world / "nq/dev.json"),
        }
    elif task == "fever":
        train = [(r["claim"], r["label"]) for r in read_jsonl(world / "pretrain/fever_train.jsonl")]
        evals = {
            "fever_train_claims": [(r.claim, r.label) for r in load_fever(world / FEVER_TRAIN)],
            "fever_dev_claims": [(r.claim, r.label) for r in load_fever(world / FEVER_DEV)],
        }
    elif task == "wikitext":
        train = [(t, None) for t in load_wikitext_raw(world / "wikitext/wiki.train.raw", min_words=1)]
        evals = {"wiki_valid": [(t, None) for t in load_wikitext_raw(world / "wikitext/wiki.valid.raw", min_words=1)]}
    else:
        raise ValueError(f"unknown task {task!r} (zsre, fever, wikitext)")
    return train, evals


def make_batch(family: str, tok, rows: list, max_len: int):
    x = [r[0] for r in rows]
    y = [r[1] for r in rows]
    if family == "seq2seq":
        return seq2seq_batch(tok, x, y, max_len)
    if family == "binary":
        return binary_batch(tok, x, y, max_len)
    return lm_batch(tok, x, y, max_len)


@torch.no_grad()
def evaluate_base(model, family: str, tok, rows: list, max_len: int, bs: int = 128) -> dict:
    """Accuracy (facts, claims) or perplexity (text) of the base model on ``rows``."""
    model.eval()
    correct, total, nll_total, n_tok = 0.0, 0, 0.0, 0
    for i in range(0, len(rows), bs):
        b = make_batch(family, tok, rows[i : i + bs], max_len)
        logits = forward(model, b)
        if family == "lm":
            s, c = nll_sum_and_count(family, logits, b["labels"])
            nll_total, n_tok = nll_total + s, n_tok + c
        else:
            correct += float(accuracy_per_example(family, logits, b["labels"]).sum())
            total += len(rows[i : i + bs])
    if family == "lm":
        return {"ppl": math.exp(nll_total / max(n_tok, 1)), "tokens": n_tok}
    return {"acc": correct / max(total, 1), "n": total}


def pretrain(task: str, spec: ModelSpec, cfg: PretrainConfig, tok, world: Path, seed: int):
    """Train a fresh model of ``spec`` on ``task``'s world data; returns (model, metrics)."""
    model = build_model(spec, tok, seed)
    train, evals = _examples(task, world)
    first_eval = next(iter(evals))
    check = evals[first_eval]
    rng = random.Random(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(cfg.warmup, 1)))
    t0 = time.time()
    history = []
    bar = tqdm(range(1, cfg.steps + 1), desc=f"pretrain {spec.name}", mininterval=5)
    step = 0
    for step in bar:
        model.train()
        batch = make_batch(spec.family, tok, rng.sample(train, min(cfg.batch_size, len(train))), spec.max_len)
        loss = nll(spec.family, forward(model, batch), batch["labels"])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            m = evaluate_base(model, spec.family, tok, check, spec.max_len)
            history.append({"step": step, "loss": float(loss), **m})
            log.info("step %d loss %.4f %s %s", step, float(loss), first_eval, m)
            bar.set_postfix(loss=float(loss), **{k: round(v, 4) for k, v in m.items() if k != "n"})
            if "acc" in m and m["acc"] >= cfg.target_acc:
                break
    model.eval()
    metrics = {
        "task": task,
        "model": spec.name,
        "steps": step,
        "seconds": time.time() - t0,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "eval": {name: evaluate_base(model, spec.family, tok, rows, spec.max_len) for name, rows in evals.items()},
        "history": history,
    }
    for name, m in metrics["eval"].items():
        log.info("final %s: %s", name, m)
    return model, metrics
