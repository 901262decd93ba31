"""How hard a Wikitext edit is for the model it edits: how much of the target the model already predicts, and each
editor's edit success and drawdown by that difficulty (from the raw per-edit lines)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from mendrepro.data.wikitext import SelfSample
from mendrepro.evaluate import aggregate


@dataclass(frozen=True)
class TargetSurprise:
    """How much of one Wikitext edit the model already predicts: the target's summed NLL (nats) after the passage,
    and how many target tokens are not the model's teacher-forced argmax (what the edit must change for ES)."""

    nll: float
    not_argmax: int
    n_tokens: int


@torch.no_grad()
def target_surprise(model, tok, samples: list[SelfSample]) -> list[TargetSurprise]:
    """Score each sample's last ``n_tokens`` tokens under ``model``, given the tokens before them.

    A model's own temperature-1 sample costs about its entropy per token, so this says how hard the edits a
    stand-in asks for are next to the real model's (distilGPT-2 on Wikitext: about 3.6 nats per token).
    """
    model.eval()
    out = []
    for s in samples:
        ids = torch.tensor([tok(s.completion, add_special_tokens=False)["input_ids"]])
        if ids.shape[1] <= s.n_tokens:
            raise ValueError(f"a completion of {ids.shape[1]} tokens has no prefix before its {s.n_tokens} targets")
        logits = model(ids, attention_mask=torch.ones_like(ids)).logits[0, :-1][-s.n_tokens :]
        target = ids[0, 1:][-s.n_tokens :]
        nll = torch.nn.functional.cross_entropy(logits.float(), target, reduction="sum").item()
        out.append(TargetSurprise(nll, int((logits.argmax(-1) != target).sum()), s.n_tokens))
    return out


def surprise_summary(scores: list[TargetSurprise]) -> dict:
    """Mean and quartiles of the targets' NLL, NLL per token, mean tokens not argmax, share needing at most two."""
    nll = sorted(x.nll for x in scores)
    n = len(nll)
    if n == 0:
        raise ValueError("no edit targets to summarise")
    quartile = [nll[min(n - 1, int(q * n))] for q in (0.25, 0.5, 0.75)]
    return {
        "n": n,
        "nll_mean": sum(nll) / n,
        "nll_quartiles": quartile,
        "nll_per_token": sum(nll) / sum(x.n_tokens for x in scores),
        "not_argmax_mean": sum(x.not_argmax for x in scores) / n,
        "share_at_most_two_not_argmax": sum(x.not_argmax <= 2 for x in scores) / n,
    }


def difficulty_bucket(score: TargetSurprise) -> str:
    """The bucket of an edit by the target tokens the model must change: 0-1, 2, 3 or more."""
    return "0-1" if score.not_argmax <= 1 else ("2" if score.not_argmax == 2 else "3+")


def record_sample(record: dict, tok) -> SelfSample:
    """A Wikitext edit's raw line as the sample it was drawn as: the passage, then its target after a space."""
    completion = f"{record['edit_input']} {record['target']}"
    n_prefix = len(tok(record["edit_input"], add_special_tokens=False)["input_ids"])
    return SelfSample(
        record["edit_input"], completion, len(tok(completion, add_special_tokens=False)["input_ids"]) - n_prefix
    )


def by_difficulty(records: Iterable[dict], scores: dict[str, TargetSurprise]) -> dict[str, dict]:
    """Per difficulty bucket: edits, ES and perplexity drawdown against the original model as the run's metrics
    compute them (:func:`mendrepro.evaluate.aggregate` over the bucket's lines), and mean optimiser steps where the
    lines have them."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(difficulty_bucket(scores[r["id"]]), []).append(r)
    out = {}
    for bucket in sorted(groups):
        rows = groups[bucket]
        metrics = aggregate(rows, "lm")
        row = {"edits": len(rows), "es": metrics["es"], "dd": metrics["dd_original"]}
        if "steps_mean" in metrics:
            row["steps"] = metrics["steps_mean"]
        out[bucket] = row
    return out
