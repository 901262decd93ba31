"""batches.forward's own untying of tied weights: the same logits as torch.func.functional_call untying them itself,
on every micro family, for edited matrices, tied embeddings and a whole parameter dict (ENN's)."""

from __future__ import annotations

import re

import pytest
import torch
from torch.func import functional_call

from mendrepro.batches import forward, tied_names, untie
from mendrepro.models import build_model
from tests.conftest import MICRO_SPECS

TEXTS = ["where was w1 born", "who plays w2 in the city of w3"]


def _batch(tok, family_model):
    enc = tok(TEXTS, padding=True, return_tensors="pt")
    batch = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    if getattr(family_model.config, "is_encoder_decoder", False):
        batch["labels"] = tok(["w4", "w5 w6"], padding=True, return_tensors="pt")["input_ids"]
    return batch


def _torch_logits(model, batch, params):
    """The reference: functional_call finding the ties itself on this call (its default)."""
    kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
    if getattr(model.config, "use_cache", False):
        kwargs["use_cache"] = False
    if "labels" in batch:
        kwargs["decoder_input_ids"] = model.prepare_decoder_input_ids_from_labels(labels=batch["labels"])
    out = functional_call(model, params, args=(), kwargs=kwargs, strict=False, tie_weights=True)
    return out if isinstance(out, torch.Tensor) else out.logits


def _shifted(params: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {n: p.detach() + 0.1 * torch.randn(p.shape, generator=gen) for n, p in params.items()}


@pytest.mark.parametrize(
    "which",
    ["edited", "first_tied_name", "every_parameter"],
)
def test_forward_equals_functional_call_with_its_own_untying(micro, tok, which):
    spec, model = micro
    named = dict(model.named_parameters())
    if which == "edited":
        names = [n for n in named if any(re.fullmatch(p, n) for p in spec.edit_params)]
    elif which == "first_tied_name":
        names = sorted({group[0] for group in tied_names(model).values()} & set(named))
        if not names:
            pytest.skip(f"{spec.name} ties no weights")
    else:
        names = list(named)
    params = _shifted({n: named[n] for n in names})
    batch = _batch(tok, model)
    ours = forward(model, batch, params)
    assert torch.equal(ours, _torch_logits(model, batch, params))
    assert not torch.equal(ours, forward(model, batch))  # the replaced values were used


def test_tied_names_groups_a_tied_embedding(tok):
    model = build_model(MICRO_SPECS["gpt2"], tok, seed=0)
    groups = tied_names(model)
    assert set(groups["lm_head.weight"]) == {"lm_head.weight", "transformer.wte.weight"}
    assert groups["transformer.wte.weight"] == groups["lm_head.weight"]
    assert "transformer.h.1.mlp.c_fc.weight" not in groups


@pytest.mark.parametrize(
    ("given", "expected_names", "error"),
    [
        ({"transformer.h.1.mlp.c_fc.weight": "a"}, {"transformer.h.1.mlp.c_fc.weight"}, None),
        ({"lm_head.weight": "a"}, {"lm_head.weight", "transformer.wte.weight"}, None),
        ({"lm_head.weight": "a", "transformer.wte.weight": "a"}, {"lm_head.weight", "transformer.wte.weight"}, None),
        ({"lm_head.weight": "a", "transformer.wte.weight": "b"}, None, "tied parameters"),
    ],
)
def test_untie_table(tok, given, expected_names, error):
    model = build_model(MICRO_SPECS["gpt2"], tok, seed=0)
    values = {"a": torch.zeros(1), "b": torch.ones(1)}
    params = {n: values[v] for n, v in given.items()}
    if error:
        with pytest.raises(ValueError, match=error):
            untie(model, params)
        return
    out = untie(model, params)
    assert set(out) == expected_names
    assert all(out[n] is values[given.get(n, next(iter(given.values())))] for n in out)
