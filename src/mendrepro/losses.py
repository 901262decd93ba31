"""Losses and accuracies of the three model families, computed as the authors' release computes them.

Sequence outputs: the language model's labels are shifted by one; padding (-100) is masked; accuracy is exact
match of the teacher-forced argmax on every target token. Binary outputs: one logit per example.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mendrepro.batches import IGNORE


def _aligned(family: str, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if family == "lm":
        return logits[:, :-1], labels[:, 1:]
    return logits, labels


def token_nll(family: str, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token NLL [B, T] (0 where masked) and the float mask of scored tokens."""
    logits, labels = _aligned(family, logits, labels)
    mask = (labels != IGNORE).float()
    logp = logits.float().log_softmax(-1)
    nll = -logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return nll * mask, mask


def nll_per_example(family: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[B]: mean NLL over each example's scored tokens (binary: the BCE of each example)."""
    if family == "binary":
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
    nll, mask = token_nll(family, logits, labels)
    return nll.sum(-1) / mask.sum(-1).clamp(min=1)


def nll(family: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Scalar NLL: token-weighted mean over the whole batch (binary: mean BCE)."""
    if family == "binary":
        return nll_per_example(family, logits, labels).mean()
    tok, mask = token_nll(family, logits, labels)
    return tok.sum() / mask.sum().clamp(min=1)


def accuracy_per_example(family: str, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[B] float: 1 where every target token is the argmax (binary: the sign of the logit is the label)."""
    if family == "binary":
        return ((logits > 0).float() == labels.float()).float()
    logits, labels = _aligned(family, logits, labels)
    mask = labels != IGNORE
    correct = (logits.argmax(-1) == labels) | ~mask
    return correct.all(-1).float()


def kl_loc(family: str, pre_logits: torch.Tensor, post_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """KL(p_pre ‖ p_post), mean over scored tokens (binary: the Bernoulli KL, mean over examples)."""
    if family == "binary":
        p = torch.sigmoid(pre_logits.float())
        lp_pre, lq_pre = F.logsigmoid(pre_logits.float()), F.logsigmoid(-pre_logits.float())
        lp_post, lq_post = F.logsigmoid(post_logits.float()), F.logsigmoid(-post_logits.float())
        return (p * (lp_pre - lp_post) + (1 - p) * (lq_pre - lq_post)).mean()
    pre, _ = _aligned(family, pre_logits, labels)
    post, lab = _aligned(family, post_logits, labels)
    mask = (lab != IGNORE).float()
    lp_pre = pre.float().log_softmax(-1)
    lp_post = post.float().log_softmax(-1)
    kl = (lp_pre.exp() * (lp_pre - lp_post)).sum(-1)
    return (kl * mask).sum() / mask.sum().clamp(min=1)


def nll_sum_and_count(family: str, logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
    """Total NLL and token count, for a perplexity that weights every locality token equally."""
    tok, mask = token_nll(family, logits, labels)
    return float(tok.sum()), int(mask.sum())
