"""The Wikitext edit targets: the base language model's own 10-token continuation of each passage, and how
surprising each is to that model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm import tqdm

from mendrepro.data.wikitext import SelfSample


@torch.no_grad()
def self_sample(model, tok, passages: list[str], n_tokens: int, prefix_tokens: int, seed: int) -> list[SelfSample]:
    """For each passage, keep its first ``prefix_tokens`` tokens and sample ``n_tokens`` more from ``model``.

    Special tokens are banned from the sample so the completion round-trips through the tokenizer exactly.
    """
    torch.manual_seed(seed)
    model.eval()
    banned = [[i] for i in tok.all_special_ids]
    out = []
    for text in tqdm(passages, desc="self-sample", mininterval=5):
        ids = tok(text, add_special_tokens=False)["input_ids"][:prefix_tokens]
        x = torch.tensor([ids])
        gen = model.generate(
            x,
            attention_mask=torch.ones_like(x),
            do_sample=True,
            top_k=0,
            max_new_tokens=n_tokens,
            min_new_tokens=n_tokens,
            bad_words_ids=banned,
            pad_token_id=tok.pad_token_id,
        )
        original = tok.decode(ids)
        out.append(SelfSample(original=original, completion=tok.decode(gen[0].tolist()), n_tokens=n_tokens))
    return out


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
    quartile = [nll[min(n - 1, int(q * n))] for q in (0.25, 0.5, 0.75)]
    return {
        "n": n,
        "nll_mean": sum(nll) / n,
        "nll_quartiles": quartile,
        "nll_per_token": sum(nll) / sum(x.n_tokens for x in scores),
        "not_argmax_mean": sum(x.not_argmax for x in scores) / n,
        "share_at_most_two_not_argmax": sum(x.not_argmax <= 2 for x in scores) / n,
    }
