"""Tokenise text into model batches, one convention per model family.

Every batch is a dict with ``input_ids``, ``attention_mask`` and ``labels``:
- ``seq2seq``: labels are the target tokens + eos (-100 on padding); the model shifts them into decoder inputs.
- ``lm``: labels equal ``input_ids`` on the tokens that are scored and -100 elsewhere (shifted in the loss).
- ``binary``: labels are floats 0/1, one per example.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from itertools import chain

import torch
from torch import nn
from torch.func import functional_call
from transformers import PreTrainedTokenizerFast

IGNORE = -100
Batch = dict[str, torch.Tensor]


def _ids_many(tok: PreTrainedTokenizerFast, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text, no special tokens, in one tokenizer call: the same ids as one call per text without
    that call's Python overhead per text (a tenth of a tiny BERT's pre-training time when it encoded one at a
    time)."""
    return tok(list(texts), add_special_tokens=False)["input_ids"] if texts else []


def _pad(rows: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([list(r) + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def _mask(rows: Sequence[Sequence[int]]) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], dtype=torch.long)


def seq2seq_batch(tok, sources: Sequence[str], targets: Sequence[str], max_len: int = 64) -> Batch:
    """Encoder input ``<s> source </s>`` (T5's tokenizer has no ``<s>``: ``source </s>``); labels ``target </s>``."""
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    src = [(bos + ids + [tok.eos_token_id])[:max_len] for ids in _ids_many(tok, sources)]
    tgt = [(ids + [tok.eos_token_id])[:max_len] for ids in _ids_many(tok, targets)]
    return {
        "input_ids": _pad(src, tok.pad_token_id),
        "attention_mask": _mask(src),
        "labels": _pad(tgt, IGNORE),
    }


def lm_batch(tok, prompts: Sequence[str], targets: Sequence[str | None], max_len: int = 64) -> Batch:
    """``prompt target``, scoring only the target tokens (all tokens when target is None).

    Long inputs are cut from the left so the scored target always survives truncation.
    """
    rows, labels = [], []
    encoded = iter(_ids_many(tok, [*prompts, *(t for t in targets if t is not None)]))
    p_all = [next(encoded) for _ in prompts]
    for p_ids, t in zip(p_all, targets, strict=True):
        if t is None:
            ids, lab = p_ids, list(p_ids)
        else:
            t_ids = next(encoded)
            ids, lab = p_ids + t_ids, [IGNORE] * len(p_ids) + t_ids
        rows.append(ids[-max_len:])
        labels.append(lab[-max_len:])
    return {
        "input_ids": _pad(rows, tok.pad_token_id),
        "attention_mask": _mask(rows),
        "labels": _pad(labels, IGNORE),
    }


def binary_batch(tok, texts: Sequence[str], labels: Sequence[bool | int], max_len: int = 64) -> Batch:
    """``[CLS] text [SEP]`` with a float 0/1 label."""
    rows = [([tok.cls_token_id] + ids + [tok.sep_token_id])[:max_len] for ids in _ids_many(tok, texts)]
    return {
        "input_ids": _pad(rows, tok.pad_token_id),
        "attention_mask": _mask(rows),
        "labels": torch.tensor([float(y) for y in labels]),
    }


def with_condition(batch: Batch, tok, conditions: Sequence[str], max_len: int = 64) -> Batch:
    """``batch`` plus the tokenised condition text of each example (``cond_input_ids``, ``cond_attention_mask``),
    which editors conditioned on the edit (KE) read; the model's forward pass ignores them."""
    rows = [ids[:max_len] or [tok.unk_token_id] for ids in _ids_many(tok, conditions)]
    return {**batch, "cond_input_ids": _pad(rows, tok.pad_token_id), "cond_attention_mask": _mask(rows)}


def concat(batches: Sequence[Batch], pad_token_id: int) -> Batch:
    """Stack batches of one family along the batch axis, re-padding to the widest."""
    out: Batch = {}
    for key in batches[0]:
        parts = [b[key] for b in batches]
        if parts[0].dim() == 1:
            out[key] = torch.cat(parts)
            continue
        width = max(p.shape[1] for p in parts)
        fill = {
            "input_ids": pad_token_id,
            "attention_mask": 0,
            "labels": IGNORE,
            "cond_input_ids": pad_token_id,
            "cond_attention_mask": 0,
        }[key]
        out[key] = torch.cat([nn.functional.pad(p, (0, width - p.shape[1]), value=fill) for p in parts])
    return out


def to_device(batch: Batch, device: torch.device | str) -> Batch:
    return {k: v.to(device) for k, v in batch.items()}


# Each model's tied names, found once: torch.func.functional_call finds them itself on every call by walking every
# module and parameter, which was a tenth of a tiny editor's training step. Tie structure is fixed when a model is
# built (tie_weights) and nothing in the project re-ties a model afterwards.
_TIED_NAMES: weakref.WeakKeyDictionary[nn.Module, dict[str, tuple[str, ...]]] = weakref.WeakKeyDictionary()


def tied_names(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """For every parameter or buffer name whose tensor the model holds under more than one name, all its names."""
    groups = _TIED_NAMES.get(model)
    if groups is None:
        names: dict[int, list[str]] = {}
        for name, tensor in chain(
            model.named_parameters(remove_duplicate=False), model.named_buffers(remove_duplicate=False)
        ):
            names.setdefault(id(tensor), []).append(name)
        groups = {n: tuple(group) for group in names.values() if len(group) > 1 for n in group}
        _TIED_NAMES[model] = groups
    return groups


def untie(model: nn.Module, params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``params`` with each given tensor also under the other names of a tied one, as functional_call's own
    untying makes it (a tied tensor given two different values is an error there and here)."""
    groups = tied_names(model)
    if not any(name in groups for name in params):
        return params
    out = dict(params)
    for name, value in params.items():
        for other in groups.get(name, ()):
            if other in params and params[other] is not value:
                raise ValueError(f"tied parameters {name!r} and {other!r} were given different values")
            out[other] = value
    return out


def forward(
    model: nn.Module,
    batch: Batch,
    params: dict[str, torch.Tensor] | None = None,
    logits_to_keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Logits of ``model`` on ``batch``; with ``params``, those tensors replace the model's own (functionally).

    ``logits_to_keep`` (a language model's positions) computes the output layer at those positions only.
    """
    kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if logits_to_keep is not None:
        kwargs["logits_to_keep"] = logits_to_keep
    if getattr(model.config, "use_cache", False):
        # No key/value cache: nothing is generated here, and building one costs ~15% of a tiny model's step.
        kwargs["use_cache"] = False
    if "labels" in batch and batch["labels"].dim() == 2 and getattr(model.config, "is_encoder_decoder", False):
        # Decoder inputs from the labels without passing labels, so the model does not compute a loss we discard.
        kwargs["decoder_input_ids"] = model.prepare_decoder_input_ids_from_labels(labels=batch["labels"])
    if params:
        out = functional_call(model, untie(model, params), args=(), kwargs=kwargs, strict=False, tie_weights=False)
    else:
        out = model(**kwargs)
    return out if isinstance(out, torch.Tensor) else out.logits


def scored_forward(
    model: nn.Module, family: str, batch: Batch, params: dict[str, torch.Tensor] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, labels) for a loss or an accuracy on ``batch``, the same values as ``forward`` and the batch's labels.

    A language model's loss reads the logits of the positions that predict a scored token only; an edit prompt
    has far more positions than target tokens, and the output layer (vocabulary × width) is a large share of a
    forward+backward, so only those positions go through it. The returned pair still follows the ``lm``
    convention (the loss shifts labels by one): the kept positions, then the last position, which no label
    follows, standing in for the logit the shift drops; the labels are those the kept positions predict, after an
    unscored first column. Other families are returned whole.
    """
    labels = batch["labels"]
    if family != "lm":
        return forward(model, batch, params), labels
    read = (labels[:, 1:] != IGNORE).any(0).nonzero().squeeze(1)
    keep = torch.cat([read, read.new_tensor([labels.shape[1] - 1])])
    kept_labels = torch.full((labels.shape[0], keep.numel()), IGNORE, dtype=labels.dtype, device=labels.device)
    kept_labels[:, 1:] = labels[:, read + 1]
    return forward(model, batch, params, logits_to_keep=keep), kept_labels
