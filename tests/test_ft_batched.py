"""Batched FT (``edit_many``) against FT one edit at a time: same steps per edit, same edited weights."""

from __future__ import annotations

import torch

from mendrepro.batches import binary_batch, forward, lm_batch, seq2seq_batch
from mendrepro.editors.ft import FineTune, FTConfig, edit_many
from mendrepro.models import edited_parameter_names

# Float tolerance: the batched path adds x·R to the layer's output instead of using (W + R)·x, and pads the
# batch to its widest edit; both change rounding only. RMSprop divides each gradient entry by its own running
# magnitude, so an entry whose gradient is near zero can move by up to lr / sqrt(1 - alpha) on rounding alone:
# entries agree to within 1e-2 of the largest residual entry, and the steps per edit agree exactly.
REL = 1e-2

PROMPTS = ["where was w1 born", "w2 lives in", "the capital of w3 w4 is", "w5"]
TARGETS = ["w7 w8", "w9", "w10 w11 w12", "w13"]


def _inners(spec, tok, model):
    if spec.family == "seq2seq":
        return [seq2seq_batch(tok, [p], [t]) for p, t in zip(PROMPTS, TARGETS, strict=True)]
    if spec.family == "lm":
        return [lm_batch(tok, [p], [t]) for p, t in zip(PROMPTS, TARGETS, strict=True)]
    with torch.no_grad():
        model.classifier.bias.zero_()
    out = []
    for p in PROMPTS:
        b = binary_batch(tok, [p], [1])
        with torch.no_grad():
            b["labels"] = (forward(model, b) <= 0).float()  # a label the model does not predict yet
        out.append(b)
    return out


def test_batched_ft_equals_one_at_a_time(micro, tok):
    spec, model = micro
    names = edited_parameter_names(model, spec.edit_params)
    inners = _inners(spec, tok, model)
    cfg = FTConfig(lr=5e-2, max_steps=20)
    one = FineTune(model, spec.family, names, cfg)
    singles = [one.edit(b) for b in inners]
    many = FineTune(model, spec.family, names, cfg)
    batched = edit_many(many, inners, pad_token_id=tok.pad_token_id)
    assert many.steps_taken == one.steps_taken
    assert any(s > 0 for s in one.steps_taken)  # the comparison exercises optimiser steps, not only the stop
    for a, b in zip(singles, batched, strict=True):
        assert set(a) == set(b) == set(names)
        base = dict(model.named_parameters())
        for n in names:
            scale = (a[n] - base[n]).abs().max().item()
            torch.testing.assert_close(b[n], a[n], atol=REL * scale + 1e-6, rtol=0)
