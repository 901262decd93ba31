"""ENN as released: a learned inner SGD step, second order, meta-training every base weight plus a KL anchor."""

from __future__ import annotations

import random

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from mendrepro.batches import binary_batch, forward, lm_batch, seq2seq_batch
from mendrepro.config import TrainConfig, from_dict
from mendrepro.editors.base import param_key
from mendrepro.editors.enn import EditableNetwork, ENNConfig
from mendrepro.losses import accuracy_per_example, kl_loc, nll, nll_per_example
from mendrepro.models import edited_parameter_names
from mendrepro.tasks import EditRequest
from mendrepro.train import train_editor

TEXTS = ["where was w1 born", "who plays w2 w3 in the city", "what is w4", "he was born in w5 w6 w7"]
TARGETS = ["w8 w9", "w10", "w11 w12 w13", "w14"]


def make_batch(spec, tok, idx, targets=None):
    texts = [TEXTS[i] for i in idx]
    targets = targets or [TARGETS[i] for i in idx]
    if spec.family == "seq2seq":
        return seq2seq_batch(tok, texts, targets)
    if spec.family == "lm":
        return lm_batch(tok, texts, targets)
    return binary_batch(tok, texts, [int(t in ("w8 w9", "w11 w12 w13")) for t in targets])


def make_enn(model, spec, **cfg) -> EditableNetwork:
    names = edited_parameter_names(model, spec.edit_params)
    return EditableNetwork(model, spec.family, names, ENNConfig(**cfg))


def set_steps(enn: EditableNetwork, base: float) -> dict[str, float]:
    """Distinct steps per matrix, so a mix-up between matrices would show."""
    steps = {n: base * (i + 1) for i, n in enumerate(enn.param_names)}
    with torch.no_grad():
        for n, s in steps.items():
            enn.steps[param_key(n)].fill_(s)
    return steps


@pytest.mark.parametrize("grad_mode", [False, True])
def test_inner_step_is_sgd_on_the_mean_edit_loss(micro, tok, grad_mode):
    spec, model = micro
    enn = make_enn(model, spec)
    steps = set_steps(enn, 0.3)
    batch = make_batch(spec, tok, [0, 1])
    with torch.set_grad_enabled(grad_mode):
        new = enn.edit(batch)
    named = dict(model.named_parameters())
    w = {n: named[n].detach().clone().requires_grad_(True) for n in enn.param_names}
    # The release's edit loss: token-weighted mean NLL over the batch (eric-mitchell/mend algs/enn.py:53).
    loss = nll(spec.family, forward(model, batch, w), batch["labels"])
    grads = dict(zip(enn.param_names, torch.autograd.grad(loss, list(w.values())), strict=True))
    assert set(new) == {n for n, _ in model.named_parameters()}
    for n, p in named.items():
        if n in grads:
            assert grads[n].abs().max() > 0
            assert torch.allclose(new[n], p - steps[n] * grads[n], atol=1e-6, rtol=1e-5), n
        else:
            assert torch.equal(new[n], p), n
    assert all(t.requires_grad == grad_mode for n, t in new.items() if n in grads)


def test_step_is_second_order(micro, tok):
    """The outer gradient equals a torch.func reference through the inner gradient, and differs from first order."""
    spec, model = micro
    inner, outer = make_batch(spec, tok, [0]), make_batch(spec, tok, [2])
    s = 20.0  # large, so the Hessian term stands well above rounding at a random init

    def outer_grads(first_order: bool) -> dict[str, torch.Tensor]:
        enn = make_enn(model, spec, step_init=s, first_order=first_order)
        loss = nll(spec.family, forward(model, outer, enn.edit(inner)), outer["labels"])
        weights = enn.base_params()
        grads = torch.autograd.grad(loss, list(weights.values()), allow_unused=True)
        return {n: torch.zeros_like(weights[n]) if g is None else g for n, g in zip(weights, grads, strict=True)}

    names = edited_parameter_names(model, spec.edit_params)

    def inner_loss(w: dict, rest: dict) -> torch.Tensor:
        logits = forward(model, inner, {**rest, **w})
        return nll_per_example(spec.family, logits, inner["labels"]).mean()

    def outer_loss(theta: dict) -> torch.Tensor:
        w = {n: theta[n] for n in names}
        g = torch.func.grad(inner_loss)(w, theta)
        new = {**theta, **{n: w[n] - s * g[n] for n in names}}
        return nll(spec.family, forward(model, outer, new), outer["labels"])

    theta = {n: p.detach() for n, p in model.named_parameters()}
    with sdpa_kernel(SDPBackend.MATH):  # fused attention kernels have no double backward
        ref = torch.func.grad(outer_loss)(theta)
    second, first = outer_grads(False), outer_grads(True)
    rest = [n for n in theta if n not in names]
    for n in theta:
        assert torch.allclose(second[n], ref[n], atol=1e-5, rtol=1e-3), (n, float((second[n] - ref[n]).abs().max()))
    # The Hessian path reaches the non-edited weights (and only it separates the two orders there).
    gap = sum(float((second[n] - first[n]).norm()) for n in rest)
    assert gap > 1e-3 * sum(float(second[n].norm()) for n in rest)


def test_training_moves_enn_weights_not_the_original(micro, tok):
    spec, model = micro
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    enn = make_enn(model, spec)
    assert all(torch.equal(enn.base_params()[n], before[n]) for n in before)
    assert all(torch.equal(enn.original_params()[n], before[n]) for n in before)
    assert enn.changes_base_model
    opt = torch.optim.Adam(enn.parameters(), lr=1e-2)
    inner, outer, loc = make_batch(spec, tok, [0]), make_batch(spec, tok, [0]), make_batch(spec, tok, [3])
    for _ in range(3):
        new = enn(inner)
        loss = nll(spec.family, forward(model, outer, new), outer["labels"]) + enn.extra_loss(loc)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert all(p.grad is None for p in model.parameters())
    moved = [n for n in before if not torch.equal(enn.base_params()[n], before[n])]
    assert set(enn.param_names) <= set(moved) and len(moved) > len(enn.param_names)
    assert all(not torch.equal(enn.step_size(n).detach(), torch.tensor(1e-2)) for n in enn.param_names)


def test_extra_loss_is_the_unscaled_kl_to_the_original_model(micro, tok):
    spec, model = micro
    enn = make_enn(model, spec, c_base=10.0)
    loc = make_batch(spec, tok, [1, 3])
    assert abs(float(enn.extra_loss(loc).detach())) < 1e-6
    torch.manual_seed(0)
    with torch.no_grad():
        for p in enn.weights.values():
            p.add_(0.05 * torch.randn_like(p))
    kl = enn.extra_loss(loc)
    assert float(kl.detach()) > 1e-4 and kl.requires_grad
    # Unscaled whatever c_base > 0 is, as released (trainer.py:264-265 back-propagates l_base itself; c_base only
    # weighs the logged total, trainer.py:274).
    other = make_enn(model, spec, c_base=1.0)
    other.load_state_dict(enn.state_dict())
    expected = kl_loc(spec.family, forward(model, loc), forward(model, loc, enn.base_params()), loc["labels"])
    assert torch.allclose(kl, expected) and torch.allclose(other.extra_loss(loc), expected)
    assert make_enn(model, spec, c_base=0.0).extra_loss(loc) is None


def test_trains_with_the_shared_loop(micro, tok, tmp_path):
    spec, model = micro

    def sample(rng: random.Random) -> EditRequest:
        i, j = rng.randrange(4), rng.randrange(4)
        b = make_batch(spec, tok, [i])
        return EditRequest(str(i), TEXTS[i], TARGETS[i], b, b, make_batch(spec, tok, [j]))

    enn = make_enn(model, spec)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = TrainConfig(steps=6, accumulate=2, val_every=3, n_val=1, lr=1e-3)
    out = tmp_path / "enn.pt"
    summary = train_editor(enn, sample, [sample(random.Random(1))], cfg, out)
    assert summary["steps"] == 6 and len(summary["history"]) == 2 and summary["skipped_updates"] == 0
    assert out.exists()
    fresh = make_enn(model, spec)
    fresh.load_state_dict(torch.load(out))
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_meta_training_makes_one_step_edits_succeed(micro, tok):
    """Two conflicting targets for one prompt: no single pre-edit model predicts both, yet after brief ENN
    training one inner step reaches either from the same pre-edit model."""
    spec, model = micro
    enn = make_enn(model, spec, step_init=1.0)
    edits = [make_batch(spec, tok, [0], ["w8 w9"]), make_batch(spec, tok, [0], ["w10"])]
    opt = torch.optim.Adam(enn.parameters(), lr=3e-2)

    def successes() -> list[bool]:
        with torch.no_grad():
            return [
                bool(accuracy_per_example(spec.family, forward(model, b, enn.edit(b)), b["labels"]).all())
                for b in edits
            ]

    for step in range(60):
        if all(successes()):
            break
        b = edits[step % 2]
        loss = nll(spec.family, forward(model, b, enn(b)), b["labels"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert all(successes()), step
    with torch.no_grad():
        base = enn.base_params()
        pre = [bool(accuracy_per_example(spec.family, forward(model, b, base), b["labels"]).all()) for b in edits]
    assert not all(pre)


def test_config_rejects_unknown_keys():
    assert from_dict(ENNConfig, {"c_base": 10.0}, "enn").c_base == 10.0
    with pytest.raises(ValueError, match="unknown key"):
        from_dict(ENNConfig, {"lr": 1.0}, "enn")
    with pytest.raises(ValueError):
        ENNConfig(n_inner_steps=0)
