"""The mathematics of MEND: gradient decomposition, identity init, normalisation, batching, ablations."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from mendrepro.batches import IGNORE, binary_batch, concat, forward, lm_batch, scored_forward, seq2seq_batch
from mendrepro.editors.base import capture_edit_gradients, edited_weight, outer_product_update, param_key
from mendrepro.editors.mend import MEND, MendConfig, RunningNorm
from mendrepro.losses import accuracy_per_example, kl_loc, nll, nll_per_example
from mendrepro.models import edited_parameter_names

TEXTS = ["where was w1 born", "who plays w2 w3 in the city", "what is w4", "he was born in w5 w6 w7"]
TARGETS = ["w8 w9", "w10", "w11 w12 w13", "w14"]


def make_batch(spec, tok, idx):
    texts, targets = [TEXTS[i] for i in idx], [TARGETS[i] for i in idx]
    if spec.family == "seq2seq":
        return seq2seq_batch(tok, texts, targets)
    if spec.family == "lm":
        return lm_batch(tok, texts, targets)
    return binary_batch(tok, texts, [i % 2 for i in idx])


def autograd_grads(model, spec, names, batch, reduction="mean"):
    """∇W of the edit loss: the release's token-weighted batch mean ("mean") or the per-example sum ("sum")."""
    named = dict(model.named_parameters())
    w = {n: named[n].detach().clone().requires_grad_(True) for n in names}
    logits = forward(model, batch, w)
    if reduction == "mean":
        loss = nll(spec.family, logits, batch["labels"])
    else:
        loss = nll_per_example(spec.family, logits, batch["labels"]).sum()
    return dict(zip(names, torch.autograd.grad(loss, list(w.values())), strict=True))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_rank1_decomposition_equals_gradient(micro, tok, reduction):
    spec, model = micro
    names = edited_parameter_names(model, spec.edit_params)
    batch = make_batch(spec, tok, [0, 1])
    cap = capture_edit_gradients(model, spec.family, names, batch, reduction=reduction)
    truth = autograd_grads(model, spec, names, batch, reduction)
    for n in names:
        u, d = cap.inputs[n], cap.out_grads[n]
        assert torch.allclose(outer_product_update(model, n, u, d), truth[n], atol=1e-6, rtol=1e-4), n
        assert torch.allclose(cap.grads[n], truth[n], atol=1e-6, rtol=1e-4), n
        # One token's contribution is the rank-1 matrix δ_t u_tᵀ.
        t = int(d.norm(dim=1).argmax())
        one = outer_product_update(model, n, u[t : t + 1], d[t : t + 1])
        assert torch.linalg.matrix_rank(one).item() == 1


@pytest.mark.parametrize("sign", [1, -1])
def test_untrained_mend_without_norm_is_gradient_step(micro, tok, sign):
    spec, model = micro
    names = edited_parameter_names(model, spec.edit_params)
    mend = MEND(model, spec.family, names, MendConfig(rank=8, norm=False, sign=sign, alpha_init=1e-3)).eval()
    with torch.no_grad():
        for i, n in enumerate(names):
            mend.alpha[param_key(n)].fill_(1e-3 * (i + 1))
    batch = make_batch(spec, tok, [2])
    new = mend.edit(batch)
    truth = autograd_grads(model, spec, names, batch)
    base = dict(model.named_parameters())
    for i, n in enumerate(names):
        step = (new[n] - base[n]).detach()
        assert torch.allclose(step, sign * 1e-3 * (i + 1) * truth[n], atol=1e-7, rtol=1e-3), n
        assert truth[n].abs().max() > 0


def test_untrained_mend_with_norm_sums_normalised_pairs(micro, tok):
    spec, model = micro
    names = edited_parameter_names(model, spec.edit_params)
    mend = MEND(model, spec.family, names, MendConfig(rank=8, norm=True)).eval()
    cap = capture_edit_gradients(model, spec.family, names, make_batch(spec, tok, [0, 1, 3]))
    for n in names:  # give every norm non-trivial statistics
        mend.norms[mend.group[n]].update(torch.cat([cap.inputs[n], cap.out_grads[n]], 1) * 3 + 1)
    batch = make_batch(spec, tok, [1])
    upd = mend.updates(batch)
    cap = capture_edit_gradients(model, spec.family, names, batch)
    for n in names:
        u, d = cap.inputs[n], cap.out_grads[n]
        keep = (u != 0).any(1) & (d != 0).any(1)
        norm = mend.norms[mend.group[n]]
        z = (torch.cat([u, d], 1)[keep] - norm.mean.float()) / (norm.std().float() + 1e-7)
        expect = outer_product_update(model, n, z[:, : u.shape[1]], z[:, u.shape[1] :])
        assert torch.allclose(upd[n], expect, atol=1e-4, rtol=1e-4), n


def test_batch_of_k_edits_is_sum_of_single_updates_under_the_sum_loss(micro, tok):
    """With ``edit_loss: sum`` (not the release's) a batch's update is the sum of its single-edit updates."""
    spec, model = micro
    names = edited_parameter_names(model, spec.edit_params)
    torch.manual_seed(1)
    mend = MEND(model, spec.family, names, MendConfig(rank=8, edit_loss="sum")).eval()
    with torch.no_grad():
        for p in mend.nets.parameters():
            p.add_(0.1 * torch.randn_like(p))  # a non-identity editor network
    singles = [mend.updates(make_batch(spec, tok, [i])) for i in range(4)]
    batched = mend.updates(concat([make_batch(spec, tok, [i]) for i in range(4)], tok.pad_token_id))
    for n in names:
        total = sum(s[n] for s in singles)
        assert torch.allclose(batched[n], total, atol=1e-4, rtol=1e-3), n


def test_welford_matches_numpy():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(3.0, 2.0, size=(k, 5)) for k in (1, 7, 30, 2)]
    norm = RunningNorm(5)
    for c in chunks:
        norm.update(torch.tensor(c))
    allrows = np.concatenate(chunks)
    assert np.allclose(norm.mean.numpy(), allrows.mean(0))
    assert np.allclose(norm.std().numpy(), allrows.std(0, ddof=1))
    assert int(norm.count) == len(allrows)


def test_norm_statistics_update_only_in_training(micro, tok):
    spec, model = micro
    names = edited_parameter_names(model, spec.edit_params)
    mend = MEND(model, spec.family, names, MendConfig(rank=8))
    batch = make_batch(spec, tok, [0])
    mend.train()
    mend.edit(batch)
    counts = {g: float(nm.count) for g, nm in mend.norms.items()}
    assert all(c > 0 for c in counts.values())
    mend.eval()
    mend.edit(batch)
    assert counts == {g: float(nm.count) for g, nm in mend.norms.items()}


def test_shared_networks_group_by_shape(micro, tok):
    spec, model = micro
    names = edited_parameter_names(model, spec.edit_params)
    shared = MEND(model, spec.family, names, MendConfig(rank=8))
    separate = MEND(model, spec.family, names, MendConfig(rank=8, share=False))
    assert len(separate.nets) == len(names)
    assert len(shared.nets) == len({shared.dims[n] for n in names}) < len(names)
    assert all(b.scale is None for net in separate.nets.values() for b in net.blocks)


def test_edit_leaves_base_model_untouched(micro, tok):
    spec, model = micro
    names = edited_parameter_names(model, spec.edit_params)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    mend = MEND(model, spec.family, names, MendConfig(rank=8, alpha_init=1.0))
    new = mend.edit(make_batch(spec, tok, [0]))
    assert any(not torch.equal(new[n], before[n]) for n in names)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_forward_with_edited_weights_equals_the_model_holding_them(micro, tok):
    """batches.forward swaps edited weights in functionally: the logits must be those of the model with the
    weights written into it."""
    spec, model = micro
    names = edited_parameter_names(model, spec.edit_params)
    gen = torch.Generator().manual_seed(0)
    new = {n: p.detach() + 0.1 * torch.randn(p.shape, generator=gen) for n, p in model.named_parameters() if n in names}
    batch = make_batch(spec, tok, [0, 1])
    swapped = forward(model, batch, new)
    written = copy.deepcopy(model)
    with torch.no_grad():
        for n, w in new.items():
            written.get_parameter(n).copy_(w)
    assert torch.equal(swapped, forward(written, batch))
    assert not torch.equal(swapped, forward(model, batch))


def test_identity_init_network_is_trainable(micro, tok):
    """At U = 0 every pre-activation is 0: the editor must still receive a gradient in every block."""
    spec, model = micro
    names = edited_parameter_names(model, spec.edit_params)
    mend = MEND(model, spec.family, names, MendConfig(rank=8)).train()
    new = mend.edit(make_batch(spec, tok, [0, 1]))
    sum((new[n] ** 2).sum() for n in names).backward()
    for g, net in mend.nets.items():
        for i, block in enumerate(net.blocks):
            assert block.u.grad is not None and block.u.grad.abs().sum() > 0, (g, i)
            assert block.b.grad.abs().sum() > 0, (g, i)


def test_mend_edits_a_bfloat16_base_model_with_a_float32_editor(micro, tok):
    """The paper profile loads GPT-J and T5-XXL in bfloat16: the edit keeps the base dtype, the editor float32."""
    spec, model = micro
    model = model.to(torch.bfloat16)
    names = edited_parameter_names(model, spec.edit_params)
    mend = MEND(model, spec.family, names, MendConfig(rank=8, alpha_init=1e-2))
    assert all(p.dtype == torch.float32 for p in mend.parameters())
    batch = make_batch(spec, tok, [0, 1])
    new = mend.edit(batch)
    named = dict(model.named_parameters())
    assert all(new[n].dtype == torch.bfloat16 and not torch.equal(new[n], named[n]) for n in names)
    logits = mend.edited_logits(batch, new)
    assert torch.isfinite(logits.float()).all()
    # Training reaches the float32 editor through the bfloat16 forward pass.
    nll_per_example(spec.family, logits, batch["labels"]).float().mean().backward()
    assert all(mend.alpha[param_key(n)].grad is not None for n in names)


def test_capture_without_weight_gradients_gives_the_same_u_and_delta(micro, tok):
    """MEND asks autograd for δ directly (no ∇W matrices); u and δ must equal the tensor-hook path's."""
    spec, model = micro
    names = edited_parameter_names(model, spec.edit_params)
    batch = make_batch(spec, tok, [0, 1, 2])
    full = capture_edit_gradients(model, spec.family, names, batch)
    lean = capture_edit_gradients(model, spec.family, names, batch, weight_grads=False)
    assert lean.grads == {} and torch.equal(full.loss, lean.loss)
    for n in names:
        assert torch.equal(full.inputs[n], lean.inputs[n])
        assert torch.allclose(full.out_grads[n], lean.out_grads[n], atol=1e-7), n


# ---- Table 6 ablations: each flag really changes the network -------------------------------------------------
def _rows(mend, model, spec, tok, names):
    """(name, u rows, δ rows, normalised u, normalised δ) of one edit for every edited matrix (norm statistics
    made non-trivial first)."""
    cap = capture_edit_gradients(model, spec.family, names, make_batch(spec, tok, [0, 1, 3]))
    for n in names:
        mend.norms[mend.group[n]].update(torch.cat([cap.inputs[n], cap.out_grads[n]], 1) * 2 - 1)
    cap = capture_edit_gradients(model, spec.family, names, make_batch(spec, tok, [2]))
    out = []
    for n in names:
        u, d = cap.inputs[n], cap.out_grads[n]
        keep = (u != 0).any(1) & (d != 0).any(1)
        u, d = u[keep], d[keep]
        norm = mend.norms[mend.group[n]]
        z = (torch.cat([u, d], 1) - norm.mean.float()) / (norm.std().float() + 1e-7)
        out.append((n, u, d, z[:, : u.shape[1]], z[:, u.shape[1] :]))
    return out


def _perturb(mend):
    with torch.no_grad():
        for p in mend.nets.parameters():
            p.add_(0.1 * torch.randn_like(p))


def test_id_init_editor_is_identity_and_xavier_init_is_not(micro, tok):
    spec, model = micro
    names = edited_parameter_names(model, spec.edit_params)
    torch.manual_seed(0)
    for init, identity in (("id", True), ("xavier", False)):
        mend = MEND(model, spec.family, names, MendConfig(rank=8, init=init)).eval()
        assert all(b.residual == identity for net in mend.nets.values() for b in net.blocks)
        for n, _, _, u_bar, d_bar in _rows(mend, model, spec, tok, names):
            u_t, d_t = mend.transform(n, *_denormalise(mend, n, u_bar, d_bar))
            same = torch.allclose(u_t, u_bar, atol=1e-4) and torch.allclose(d_t, d_bar, atol=1e-4)
            assert same == identity, (init, n)


def _denormalise(mend, n, u_bar, d_bar):
    """The raw rows whose normalisation is (u_bar, d_bar)."""
    norm = mend.norms[mend.group[n]]
    z = torch.cat([u_bar, d_bar], 1) * (norm.std().float() + 1e-7) + norm.mean.float()
    return z[:, : u_bar.shape[1]], z[:, u_bar.shape[1] :]


@pytest.mark.parametrize("mode", ["only_u", "only_delta", "only_smaller"])
def test_one_sided_modes_leave_the_other_side_normalised_but_untouched(micro, tok, mode):
    spec, model = micro
    names = edited_parameter_names(model, spec.edit_params)
    torch.manual_seed(0)
    mend = MEND(model, spec.family, names, MendConfig(rank=8, mode=mode)).eval()
    _perturb(mend)  # a trained-looking network: the transformed side changes
    for n, u, d, u_bar, d_bar in _rows(mend, model, spec, tok, names):
        u_t, d_t = mend.transform(n, u, d)
        d_u, d_d = mend.dims[n]
        side = mode if mode != "only_smaller" else ("only_u" if d_u <= d_d else "only_delta")
        kept, changed = ((d_t, d_bar), (u_t, u_bar)) if side == "only_u" else ((u_t, u_bar), (d_t, d_bar))
        assert torch.allclose(kept[0], kept[1], atol=1e-5), (mode, n)
        assert not torch.allclose(changed[0], changed[1], atol=1e-3), (mode, n)
        # The network is only as wide as the side it transforms.
        width = d_u if side == "only_u" else d_d
        assert mend.nets[mend.group[n]].blocks[0].u.shape[0] == width, (mode, n)


def test_no_norm_feeds_raw_rows(micro, tok):
    spec, model = micro
    names = edited_parameter_names(model, spec.edit_params)
    mend = MEND(model, spec.family, names, MendConfig(rank=8, norm=False)).train()
    for n, u, d, _, _ in _rows(mend, model, spec, tok, names):
        u_t, d_t = mend.transform(n, u, d)  # identity init, no normalisation: the raw rows come back
        assert torch.allclose(u_t, u) and torch.allclose(d_t, d), n
    assert all(float(nm.count) > 0 for nm in mend.norms.values())  # _rows fed them; transform never reads them


def test_ablations_change_the_parameter_count(micro, tok):
    spec, model = micro
    names = edited_parameter_names(model, spec.edit_params)

    def count(**kw):
        return sum(p.numel() for p in MEND(model, spec.family, names, MendConfig(rank=8, **kw)).parameters())

    full = count()
    assert count(share=False) > full  # one network per matrix
    assert count(mode="only_u") < full and count(mode="only_delta") < full and count(mode="only_smaller") < full
    assert count(norm=False) == full == count(init="xavier")


def test_scored_forward_gives_the_full_forwards_losses(micro, tok):
    """Logits only where a loss reads them: the same NLL, accuracy and KL as the whole output, on every family."""
    spec, model = micro
    # Examples of different lengths, so the scored positions differ per row and padding is scored nowhere.
    batch = concat([make_batch(spec, tok, [i]) for i in range(4)], tok.pad_token_id)
    full = forward(model, batch)
    labels = batch["labels"].clone()
    if spec.family == "lm":
        # Make two examples right (their labels the output's argmax), so accuracy is not trivially 0. (A
        # language model's input does not depend on its labels; a seq2seq decoder's does.)
        pred = full.argmax(-1)[:, :-1]
        for i in (0, 2):
            labels[i, 1:] = torch.where(labels[i, 1:] != IGNORE, pred[i], labels[i, 1:])
    batch = {**batch, "labels": labels}
    logits, kept = scored_forward(model, spec.family, batch)
    if spec.family == "lm":
        n_scored = int((labels[:, 1:] != IGNORE).any(0).sum())
        assert logits.shape[1] == n_scored + 1 < full.shape[1]
    else:
        assert torch.equal(logits, full) and kept is batch["labels"]
    assert torch.allclose(nll_per_example(spec.family, logits, kept), nll_per_example(spec.family, full, labels))
    acc = accuracy_per_example(spec.family, logits, kept)
    assert torch.equal(acc, accuracy_per_example(spec.family, full, labels))
    if spec.family == "lm":
        assert acc[0] == 1 and acc[2] == 1
    shifted = scored_forward(model, spec.family, batch, {n: p + 0.01 for n, p in model.named_parameters()})[0]
    full_shifted = forward(model, batch, {n: p + 0.01 for n, p in model.named_parameters()})
    assert torch.allclose(kl_loc(spec.family, logits, shifted, kept), kl_loc(spec.family, full, full_shifted, labels))


def _perturbed_mend(model, spec, names, **cfg):
    torch.manual_seed(3)
    mend = MEND(model, spec.family, names, MendConfig(rank=8, **cfg))
    with torch.no_grad():
        for p in mend.nets.parameters():
            p.add_(0.1 * torch.randn_like(p))  # non-identity networks, per-mode scales and shifts
    return mend


@pytest.mark.parametrize("mode", ["combine", "only_smaller"])
@pytest.mark.parametrize("training", [False, True])
def test_one_network_call_per_group_equals_one_call_per_matrix(micro, tok, mode, training):
    """transform_all batches the matrices sharing a network; each row keeps its own mode, and in training the
    running statistics take in the matrices one after the other, as separate calls do."""
    spec, model = micro
    names = edited_parameter_names(model, spec.edit_params)
    cap = capture_edit_gradients(model, spec.family, names, make_batch(spec, tok, [0, 1]))
    rows = {n: (cap.inputs[n], cap.out_grads[n]) for n in names}
    batched = _perturbed_mend(model, spec, names, mode=mode).train(training)
    single = copy.deepcopy(batched)
    assert any(len([m for m in names if batched.group[m] == batched.group[n]]) > 1 for n in names)
    together = batched.transform_all(rows)
    for n in names:
        alone = single.transform(n, *rows[n])
        for a, b in zip(together[n], alone, strict=True):
            assert torch.allclose(a, b, atol=1e-6, rtol=1e-5), n
    for g in batched.norms:
        for key in ("count", "mean", "m2"):
            assert torch.equal(getattr(batched.norms[g], key), getattr(single.norms[g], key))


def test_edited_weight_is_base_plus_scaled_outer_product(micro):
    """The fused multiply-add MEND edits with: base + scale · Σ δ uᵀ in either storage layout, with the gradient
    reaching the learned scale, and a bfloat16 base getting the float32 increment rounded once."""
    spec, model = micro
    names = edited_parameter_names(model, spec.edit_params)
    dims = MEND(model, spec.family, names, MendConfig(rank=4)).dims
    named = dict(model.named_parameters())
    torch.manual_seed(0)
    for n in names:
        base = named[n].detach()
        u, d = torch.randn(5, dims[n][0]), torch.randn(5, dims[n][1])
        scale = torch.tensor(0.3, requires_grad=True)
        new = edited_weight(model, n, base, u, d, scale)
        outer = outer_product_update(model, n, u, d)
        assert torch.allclose(new, base + 0.3 * outer, atol=1e-6), n
        (g,) = torch.autograd.grad(new.sum(), scale)
        assert torch.allclose(g, outer.sum(), rtol=1e-4), n
        low = edited_weight(model, n, base.bfloat16(), u, d, scale.detach())
        assert low.dtype == torch.bfloat16
        assert torch.equal(low, base.bfloat16() + (0.3 * outer).bfloat16()), n
