"""FT as released: residual fine-tuning of the edited matrices until the edit example is predicted exactly."""

from __future__ import annotations

import torch

from mendrepro.batches import binary_batch, forward, lm_batch, seq2seq_batch
from mendrepro.editors.ft import FineTune, FTConfig
from mendrepro.losses import accuracy_per_example
from mendrepro.models import edited_parameter_names


def _edit_batch(spec, tok):
    if spec.family == "seq2seq":
        return seq2seq_batch(tok, ["where was w1 born"], ["w7 w8"])
    if spec.family == "lm":
        return lm_batch(tok, ["where was w1 born"], ["w7 w8"])
    return binary_batch(tok, ["where was w1 born"], [1])


def test_ft_makes_the_target_the_prediction_and_leaves_the_model_untouched(micro, tok):
    spec, model = micro
    names = edited_parameter_names(model, spec.edit_params)
    batch = _edit_batch(spec, tok)
    if spec.family == "binary":  # ask for the label the model does not predict yet
        with torch.no_grad():  # a random classifier's bias can put one sign out of reach of its tiny weights
            model.classifier.bias.zero_()
        batch["labels"] = (forward(model, batch) <= 0).float()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ft = FineTune(model, spec.family, names, FTConfig(lr=5e-2, max_steps=100))
    new = ft.edit(batch)
    with torch.no_grad():
        assert accuracy_per_example(spec.family, forward(model, batch, new), batch["labels"]).all()
        assert not accuracy_per_example(spec.family, forward(model, batch), batch["labels"]).all()
    assert 0 < ft.steps_taken[-1] <= 100
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert set(new) == set(names)


def test_ft_stops_at_once_when_already_correct(micro, tok):
    spec, model = micro
    if spec.family == "seq2seq":
        return  # BART's decoder inputs come from the labels, so relabelling changes the prediction itself
    names = edited_parameter_names(model, spec.edit_params)
    batch = _edit_batch(spec, tok)
    with torch.no_grad():
        logits = forward(model, batch)
    if spec.family == "binary":
        batch["labels"] = (logits > 0).float()
    else:
        pred = logits.argmax(-1)
        shifted = torch.cat([batch["labels"][:, :1], pred[:, :-1]], 1)
        batch["labels"] = torch.where(batch["labels"] == -100, batch["labels"], shifted)
    ft = FineTune(model, spec.family, names, FTConfig(lr=1e-2, max_steps=100))
    new = ft.edit(batch)
    assert ft.steps_taken == [0]
    base = dict(model.named_parameters())
    assert all(torch.equal(new[n], base[n]) for n in names)


def test_ftkl_requires_a_locality_sampler(micro):
    spec, model = micro
    names = edited_parameter_names(model, spec.edit_params)
    try:
        FineTune(model, spec.family, names, FTConfig(kl=True))
    except ValueError as e:
        assert "locality" in str(e)
    else:
        raise AssertionError("FT+KL without a sampler must fail")
