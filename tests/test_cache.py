"""The caching editor: stored edits answered with their targets, everything else left to the base model."""

from __future__ import annotations

import pytest
import torch

from mendrepro.batches import binary_batch, forward, lm_batch, seq2seq_batch
from mendrepro.editors.cache import CacheConfig, CacheEditor
from mendrepro.losses import accuracy_per_example, nll_per_example
from mendrepro.models import edited_parameter_names
from mendrepro.tasks import EditRequest

# (input, sequence target, binary label) of three unrelated edits; the targets differ in length on purpose.
EDITS = [
    ("where was w1 born", "w7 w8", 1),
    ("who plays w2 in the city", "w9", 0),
    ("what is a w3 and w4", "w10 w11 w12", 1),
]
UNRELATED = ("they w30 w31 by w32 at w33 on w34 w35", "w20 w21", 0)


def _batch(family: str, tok, rows) -> dict[str, torch.Tensor]:
    texts, targets, labels = zip(*rows, strict=True)
    if family == "seq2seq":
        return seq2seq_batch(tok, texts, targets)
    if family == "lm":
        return lm_batch(tok, texts, targets)
    return binary_batch(tok, texts, labels)


def _editor(micro, threshold: float | None) -> CacheEditor:
    spec, model = micro
    return CacheEditor(model, spec.family, edited_parameter_names(model, spec.edit_params), CacheConfig(threshold))


def _acc(family, logits, batch) -> torch.Tensor:
    return accuracy_per_example(family, logits, batch["labels"])


@torch.no_grad()
def test_cache_answers_the_edit_and_defers_to_the_base_model_elsewhere(micro, tok):
    spec, model = micro
    inner = _batch(spec.family, tok, EDITS[:1])
    if spec.family == "binary":  # ask for the label the model does not predict
        inner["labels"] = (forward(model, inner) <= 0).float()
    assert not _acc(spec.family, forward(model, inner), inner).any()
    editor = _editor(micro, 1e-6)
    new = editor.edit(inner)
    assert set(new) == {"keys", "labels"} and new["keys"].shape == (1, model.config.hidden_size)
    assert _acc(spec.family, editor.edited_logits(inner, new), inner).all()
    other = _batch(spec.family, tok, [UNRELATED])
    assert torch.equal(editor.edited_logits(other, new), forward(model, other))


@torch.no_grad()
def test_a_batch_of_edits_answers_each_with_its_own_target(micro, tok):
    spec, _ = micro
    editor = _editor(micro, 1e-6)
    new = editor.edit(_batch(spec.family, tok, EDITS))
    assert new["keys"].shape[0] == len(EDITS)
    # Each edit asked alone, and all of them mixed with an unrelated row (re-padded, so in another batch shape).
    for row in EDITS:
        one = _batch(spec.family, tok, [row])
        assert _acc(spec.family, editor.edited_logits(one, new), one).all()
    mixed = _batch(spec.family, tok, [EDITS[2], UNRELATED, EDITS[0], EDITS[1]])
    logits = editor.edited_logits(mixed, new)
    assert _acc(spec.family, logits, mixed)[[0, 2, 3]].all()
    assert torch.equal(logits[1], forward(editor.model, mixed)[1])


@torch.no_grad()
def test_rows_of_another_length_get_the_target_aligned(micro, tok):
    spec, _ = micro
    editor = _editor(micro, 2.0)  # cosine distance is at most 2: every row takes its nearest edit's target
    new = editor.edit(_batch(spec.family, tok, EDITS[:1]))
    # A shorter and a longer input asking for the same target: labels sit at other positions (lm) or batches.
    rephrases = [("w1 born", *EDITS[0][1:]), ("where was he w1 born at the city of w5", *EDITS[0][1:])]
    batch = _batch(spec.family, tok, rephrases)
    assert _acc(spec.family, editor.edited_logits(batch, new), batch).all()


def _requests(family: str, tok) -> list[EditRequest]:
    out = []
    for i in range(4):
        text, target, label = f"where was w{i} born in w{i + 10}", f"w{i + 20}", i % 2
        near = [
            (f"where was w{i} born in w{i + 10} w{i + 10}", target, label),
            (f"where was w{i} born in w{i + 10}", target, label),
        ]
        far = [(f"they and it by the w{j} w{j + 1} at on to for", "w5", 0) for j in (30 + i, 35 - i)]
        out.append(
            EditRequest(
                id=str(i),
                text=text,
                target=target,
                inner=_batch(family, tok, [(text, target, label)]),
                outer=_batch(family, tok, near),
                loc=_batch(family, tok, far),
            )
        )
    return out


@torch.no_grad()
def test_tune_separates_equivalence_from_locality_and_is_saved(micro, tok):
    spec, model = micro
    editor = _editor(micro, None)
    reqs = _requests(spec.family, tok)
    t = editor.tune(reqs)
    assert t == pytest.approx(editor.threshold) and t > 0
    assert float(editor.state_dict()["threshold_value"]) == pytest.approx(t)
    for r in reqs:
        keys = editor.represent(r.inner)
        assert (editor.distances(editor.represent(r.outer), keys) <= t).all()
        assert (editor.distances(editor.represent(r.loc), keys) > t).all()
        new = editor.edit(r.inner)
        assert _acc(spec.family, editor.edited_logits(r.outer, new), r.outer).all()
        assert torch.equal(editor.edited_logits(r.loc, new), forward(model, r.loc))
    # The tuned threshold travels with the state dict.
    fresh = _editor(micro, None)
    fresh.load_state_dict(editor.state_dict())
    assert fresh.threshold == pytest.approx(t)


def test_a_fixed_threshold_is_kept_by_tune(micro, tok):
    spec, _ = micro
    editor = _editor(micro, 0.25)
    assert editor.tune(_requests(spec.family, tok)) == 0.25 and editor.threshold == 0.25


def test_base_model_untouched_and_no_trainable_parameters(micro, tok):
    spec, model = micro
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    editor = _editor(micro, None)
    editor.tune(_requests(spec.family, tok))
    inner = _batch(spec.family, tok, EDITS)
    editor.edited_logits(inner, editor.edit(inner))
    assert list(editor.parameters()) == []
    assert list(editor.state_dict()) == ["threshold_value"]
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_untuned_cache_raises_a_clear_error(micro, tok):
    spec, _ = micro
    editor = _editor(micro, None)
    inner = _batch(spec.family, tok, EDITS[:1])
    new = editor.edit(inner)  # storing needs no threshold
    with pytest.raises(RuntimeError, match="tune"):
        editor.edited_logits(inner, new)


def test_rejects_unknown_metric(micro):
    spec, model = micro
    with pytest.raises(ValueError, match="metric"):
        CacheEditor(model, spec.family, edited_parameter_names(model, spec.edit_params), CacheConfig(0.1, "l2"))


def test_a_wrong_cache_hit_keeps_the_nll_finite(micro, tok):
    """A cached answer is the argmax but leaves the base model some mass, so perplexities stay finite."""
    spec, _ = micro
    if spec.family == "binary":
        return
    editor = _editor(micro, 2.0)  # everything matches
    state = editor.edit(_batch(spec.family, tok, [("where was w1 born", "w7 w8", 1)]))
    other = _batch(spec.family, tok, [("where was w1 born", "w9 w10", 1)])
    nll = nll_per_example(spec.family, editor.edited_logits(other, state), other["labels"])
    assert torch.isfinite(nll).all() and float(nll.detach().max()) < 20
