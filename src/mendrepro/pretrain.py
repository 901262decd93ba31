"""Pre-train a tiny base model on the synthetic world until it knows its facts (tiny profile only).

As BART-base and BERT-base, the seq2seq and classifier models learn facts from text and their task from the
task's train examples only: each step mixes ``text_mix`` of the batch from the world's fact sentences (every
fact, dev included; BART/T5 fill the masked object span, BERT predicts its masked tokens through a throwaway
MLM head) with task examples of TRAIN facts (questions; true and false claims). So a dev question or claim is
never a training example, and dev accuracy measures what the model extracts from its pre-training text. GPT-2
and its stand-ins learn the Wikitext-style training corpus (the dev passages are not in it). The metrics
written next to the model say how well each one knows its world.
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path

import torch
from tqdm import tqdm
from transformers.models.bert.modeling_bert import BertOnlyMLMHead

from mendrepro.batches import IGNORE, _ids_many, _pad, binary_batch, forward, lm_batch, seq2seq_batch
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
TEXT = "pretrain/text.jsonl"
MASK = "[MASK]"


def _examples(task: str, world: Path) -> tuple[list, dict[str, list]]:
    """(training examples, {eval-set name: examples}) of ``task``."""
    if task == "zsre":
        train = [(r["question"], r["answer"]) for r in read_jsonl(world / "pretrain/zsre_qa_train.jsonl")]
        evals = {
            "zsre_train_facts": [(r.src, r.answers[0]) for r in load_zsre(world / ZSRE_TRAIN)],
            "zsre_dev_facts": [(r.src, r.answers[0]) for r in load_zsre(world / ZSRE_DEV)],
            "zsre_dev_rephrases": [(q, r.answers[0]) for r in load_zsre(world / ZSRE_DEV) for q in r.rephrases],
            "nq_dev": load_nq(world / "nq/dev.json"),
        }
    elif task == "fever":
        train = [(r["claim"], r["label"]) for r in read_jsonl(world / "pretrain/fever_train.jsonl")]
        evals = {
            "fever_train_claims": [(r.claim, r.label) for r in load_fever(world / FEVER_TRAIN)],
            "fever_dev_claims": [(r.claim, r.label) for r in load_fever(world / FEVER_DEV)],
            "fever_dev_rephrases": [(c, r.label) for r in load_fever(world / FEVER_DEV) for c in r.rephrases],
        }
    elif task == "wikitext":
        train = [(t, None) for t in load_wikitext_raw(world / "wikitext/wiki.train.raw", min_words=1)]
        evals = {"wiki_valid": [(t, None) for t in load_wikitext_raw(world / "wikitext/wiki.valid.raw", min_words=1)]}
    else:
        raise ValueError(f"unknown task {task!r} (zsre, fever, wikitext)")
    return train, evals


def _text_rows(world: Path) -> list[tuple[str, str]]:
    """(sentence with its object span as one [MASK], object) for every fact sentence of the world."""
    return [(r["masked"], r["answer"]) for r in read_jsonl(world / TEXT)]


def mlm_batch(tok, rows: list, max_len: int, rng: random.Random) -> dict:
    """``[CLS] sentence [SEP]`` with the object's tokens to predict (labels; -100 elsewhere).

    BERT's recipe on the object span: 80% of the sentences show ``[MASK]`` there, 10% a random token, 10% the
    object itself, so the model also learns the right object at a position that shows another one.
    """
    special = len(tok.all_special_ids)
    ids, labels = [], []
    texts = []
    for masked, answer in rows:
        left, right = masked.split(MASK)
        texts += [left, right, answer]
    encoded = iter(_ids_many(tok, texts))
    for _ in rows:
        left, right, obj = next(encoded), next(encoded), next(encoded)
        u = rng.random()
        if u < 0.8:
            shown = [tok.mask_token_id] * len(obj)
        elif u < 0.9:
            shown = [rng.randrange(special, len(tok)) for _ in obj]
        else:
            shown = obj
        row = ([tok.cls_token_id] + left + shown + right + [tok.sep_token_id])[:max_len]
        lab = ([IGNORE] * (1 + len(left)) + obj + [IGNORE] * (len(right) + 1))[:max_len]
        ids.append(row)
        labels.append(lab)
    return {
        "input_ids": _pad(ids, tok.pad_token_id),
        "attention_mask": _pad([[1] * len(r) for r in ids], 0),
        "labels": _pad(labels, IGNORE),
    }


class MLMHead(torch.nn.Module):
    """BERT's masked-LM head for pre-training only (not saved: the edited model is the classifier)."""

    def __init__(self, model):
        super().__init__()
        self.head = BertOnlyMLMHead(model.config)
        # Tied to the word embeddings, as BERT's decoder is.
        self.head.predictions.decoder.weight = model.bert.embeddings.word_embeddings.weight
        self.bert = model.bert

    def forward(self, batch: dict) -> torch.Tensor:
        h = self.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        logits = self.head(h)
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.size(-1)), batch["labels"].reshape(-1), ignore_index=IGNORE
        )


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


@torch.no_grad()
def logit_quartiles(model, tok, rows: list, max_len: int, bs: int = 128) -> list[float]:
    """Quartiles of a binary classifier's |logit| on ``rows``: the margin an edit must cross."""
    model.eval()
    out = [
        forward(model, binary_batch(tok, *zip(*rows[i : i + bs], strict=True), max_len)).abs()
        for i in range(0, len(rows), bs)
    ]
    return torch.quantile(torch.cat(out), torch.tensor([0.25, 0.5, 0.75])).tolist()


def pretrain(task: str, spec: ModelSpec, cfg: PretrainConfig, tok, world: Path, seed: int):
    """Train a fresh model of ``spec`` on ``task``'s world data; returns (model, metrics)."""
    model = build_model(spec, tok, seed)
    train, evals = _examples(task, world)
    text = _text_rows(world) if cfg.text_mix > 0 else []
    if text and spec.family == "lm":
        raise ValueError(f"pretrain.text_mix applies to seq2seq and binary models, not {spec.name} ({task})")
    n_text = round(cfg.batch_size * cfg.text_mix) if text else 0
    mlm = MLMHead(model) if n_text and spec.family == "binary" else None
    first_eval = next(iter(evals))
    check = evals[first_eval]
    monitor = dict(list(evals.items())[1:2]) if spec.family != "lm" else {}
    rng = random.Random(seed)
    params = list(model.parameters()) + (
        [p for n, p in mlm.head.named_parameters() if "decoder.weight" not in n] if mlm else []
    )
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(cfg.warmup, 1)))
    t0 = time.time()
    history = []
    bar = tqdm(range(1, cfg.steps + 1), desc=f"pretrain {spec.name}", mininterval=5)
    step = 0
    for step in bar:
        model.train()
        task_rows = rng.sample(train, min(cfg.batch_size - n_text, len(train)))
        text_rows = rng.sample(text, n_text) if n_text else []
        if mlm is not None:  # two objectives, two batches: the claim classifier and the masked LM
            batch = make_batch(spec.family, tok, task_rows, spec.max_len)
            loss = nll(spec.family, forward(model, batch), batch["labels"]) + cfg.mlm_weight * mlm(
                mlm_batch(tok, text_rows, spec.max_len, rng)
            )
        else:  # seq2seq: masked sentence -> object and question -> answer are one objective, one batch
            batch = make_batch(spec.family, tok, task_rows + text_rows, spec.max_len)
            loss = nll(spec.family, forward(model, batch), batch["labels"])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            m = evaluate_base(model, spec.family, tok, check, spec.max_len)
            # The dev set is monitored, never used to stop: early stopping reads the train facts only.
            watch = {
                f"{name}_acc": evaluate_base(model, spec.family, tok, rows, spec.max_len).get("acc")
                for name, rows in monitor.items()
            }
            history.append({"step": step, "loss": float(loss.detach()), **m, **watch})
            log.info("step %d loss %.4f %s %s %s", step, float(loss.detach()), first_eval, m, watch)
            bar.set_postfix(loss=float(loss.detach()), **{k: round(v, 4) for k, v in m.items() if k != "n"})
            if cfg.target_acc is not None and "acc" in m and m["acc"] >= cfg.target_acc:
                break
    model.eval()
    metrics = {
        "task": task,
        "model": spec.name,
        "steps": step,
        "seconds": time.time() - t0,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "text_mix": cfg.text_mix if text else 0.0,
        "mlm_weight": cfg.mlm_weight if mlm else None,
        "eval": {name: evaluate_base(model, spec.family, tok, rows, spec.max_len) for name, rows in evals.items()},
        "history": history,
    }
    if spec.family == "binary":
        for name, rows in evals.items():
            metrics["eval"][name]["abs_logit_quartiles"] = logit_quartiles(model, tok, rows, spec.max_len)
    for name, m in metrics["eval"].items():
        log.info("final %s: %s", name, m)
    return model, metrics
