"""KE (KnowledgeEditor) as released: the rank-1-gated update, a frozen base model, and training with MEND's loop."""

from __future__ import annotations

import pytest
import torch

from mendrepro.batches import binary_batch, forward, lm_batch, seq2seq_batch, with_condition
from mendrepro.config import TrainConfig
from mendrepro.editors.base import capture_edit_gradients
from mendrepro.editors.ke import KEConfig, KnowledgeEditor, input_embedding_matrix
from mendrepro.losses import accuracy_per_example
from mendrepro.models import edited_parameter_names
from mendrepro.tasks import EditRequest
from mendrepro.train import train_editor

SMALL = KEConfig(lstm_hidden=8, cond_dim=12, head_hidden=10)


def _batch(spec, tok, texts, targets):
    if spec.family == "seq2seq":
        return seq2seq_batch(tok, texts, targets)
    if spec.family == "lm":
        return lm_batch(tok, texts, targets)
    return binary_batch(tok, texts, [int(t) for t in targets])


def _target(spec, i: int) -> str:
    return str(i % 2) if spec.family == "binary" else f"w{20 + i} w{30 + i}"


def _request(spec, tok, i: int, target: str | None = None) -> EditRequest:
    text = f"where was w{i} born"
    target = _target(spec, i) if target is None else target
    inner = with_condition(_batch(spec, tok, [text], [target]), tok, [f"w1 >> {target} || {text}"])
    return EditRequest(
        id=str(i),
        text=text,
        target=target,
        inner=inner,
        outer=_batch(spec, tok, [f"who was w{i} born"], [target]),
        loc=_batch(spec, tok, ["what is the city"], [_target(spec, 7)]),
        outer_texts=[f"who was w{i} born"],
    )


def _editor(model, spec, cfg=SMALL, seed=0):
    torch.manual_seed(seed)
    return KnowledgeEditor(model, spec.family, edited_parameter_names(model, spec.edit_params), cfg)


def test_update_is_rank1_gated_gradient(micro, tok):
    spec, model = micro
    ke = _editor(model, spec).eval()
    inner = _request(spec, tok, 1).inner
    new = ke.edit(inner)
    grads = capture_edit_gradients(model, spec.family, ke.param_names, inner).grads
    base = ke.base_params()
    with torch.no_grad():
        cond = ke.condition(inner)
        for n in ke.param_names:
            a, b, gate = ke.head(n)(cond)
            assert a.shape == b.shape == base[n].shape, n
            assert torch.linalg.matrix_rank(a).item() == 1, n
            assert torch.linalg.matrix_rank(b).item() == 1, n
            assert 0 < float(gate) < 1 and gate.dim() == 0
            expect = gate * (grads[n] * a + b)
            assert torch.allclose(new[n] - base[n], expect, atol=1e-6, rtol=1e-4), n
            assert grads[n].abs().max() > 0
    assert set(new) == set(ke.param_names)


def test_batch_uses_mean_condition(micro, tok):
    spec, model = micro
    ke = _editor(model, spec).eval()
    reqs = [_request(spec, tok, i) for i in (1, 2)]
    inner = with_condition(
        _batch(spec, tok, [r.text for r in reqs], [r.target for r in reqs]),
        tok,
        [f"w1 >> {r.target} || {r.text}" for r in reqs],
    )
    with torch.no_grad():
        singles = torch.stack([ke.condition(r.inner) for r in reqs])
        assert torch.allclose(ke.condition(inner), singles.mean(0), atol=1e-6)


def test_base_model_untouched_and_embedding_copied(micro, tok):
    spec, model = micro
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ke = _editor(model, spec).train()
    new = ke.edit(_request(spec, tok, 1).inner)
    sum((w**2).sum() for w in new.values()).backward()
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert all(p.grad is None for p in model.parameters())
    assert any(not torch.equal(new[n], before[n]) for n in ke.param_names)
    emb = input_embedding_matrix(model)
    copy = ke.encoder.embedding.weight
    assert torch.equal(copy.detach(), emb.detach())
    assert copy.data_ptr() != emb.data_ptr() and copy.requires_grad
    assert copy.grad is not None and copy.grad.abs().sum() > 0
    # The editor's own parameters are the encoder and the heads; the base model is not among them.
    base_ids = {id(p) for p in model.parameters()}
    assert not any(id(p) in base_ids for p in ke.parameters())
    n_enc = sum(p.numel() for p in ke.encoder.parameters())
    n_heads = sum(p.numel() for p in ke.heads.parameters())
    assert sum(p.numel() for p in ke.parameters()) == n_enc + n_heads > 0


def test_missing_condition_raises(micro, tok):
    spec, model = micro
    ke = _editor(model, spec)
    inner = {k: v for k, v in _request(spec, tok, 1).inner.items() if k != "cond_attention_mask"}
    with pytest.raises(ValueError, match="cond_attention_mask"):
        ke.edit(inner)
    with pytest.raises(ValueError, match="cond_input_ids"):
        ke.edit(_batch(spec, tok, ["where was w1 born"], [_target(spec, 1)]))


def test_trains_with_the_shared_loop(micro, tok, tmp_path):
    spec, model = micro
    ke = _editor(model, spec)
    reqs = [_request(spec, tok, i) for i in range(4)]
    cfg = TrainConfig(steps=6, accumulate=2, val_every=3, n_val=1, lr=1e-3)
    out = tmp_path / "ke.pt"
    summary = train_editor(ke, lambda rng: rng.choice(reqs), reqs[:1], cfg, out)
    assert out.exists() and summary["steps"] == 6
    assert [h["step"] for h in summary["history"]] == [3, 6]
    state = torch.load(out, weights_only=True)
    assert set(state) == set(ke.state_dict())
    fresh = _editor(model, spec, seed=1)
    fresh.load_state_dict(state)


def test_training_on_one_edit_makes_it_succeed(micro, tok, tmp_path):
    spec, model = micro
    if spec.family == "seq2seq":
        # The random micro BART cannot be edited by any one-shot update of its last fc1/fc2 built from ∇W: even
        # W − η∇W fails for every η in 1..1e4 (FT succeeds only by iterating), so there is nothing for KE to learn.
        pytest.skip("the micro BART's edit is out of reach of a single gradient-shaped update")
    if spec.family == "binary":  # ask for the label the model does not predict yet
        with torch.no_grad():  # a random classifier's bias can put one sign out of reach of its tiny weights
            model.classifier.bias.zero_()
            pred = float(forward(model, _batch(spec, tok, ["where was w3 born"], ["0"]))[0]) > 0
        req = _request(spec, tok, 3, target=str(int(not pred)))
    else:
        req = _request(spec, tok, 3)

    def succeeds(params) -> bool:
        with torch.no_grad():
            return bool(accuracy_per_example(spec.family, forward(model, req.outer, params), req.outer["labels"]).all())

    ke = _editor(model, spec)
    assert not succeeds(None)
    assert not succeeds(ke.eval().edit(req.inner))  # the untrained editor does not make the edit
    # MEND's loss weights (c_edit 0.1, c_loc 1.0); a learning rate far above the paper's 1e-5 keeps this short.
    cfg = TrainConfig(steps=100, accumulate=1, val_every=1000, n_val=1, lr=1e-2)
    train_editor(ke, lambda rng: req, [req], cfg, tmp_path / "ke.pt")
    assert succeeds(ke.eval().edit(req.inner))
