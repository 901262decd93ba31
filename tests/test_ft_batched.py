"""Batched FT (``edit_many``) against FT one edit at a time: same steps per edit, same edited weights."""

from __future__ import annotations

import random

import pytest
import torch
from conftest import MICRO_SPECS

from mendrepro.batches import binary_batch, forward, lm_batch, seq2seq_batch
from mendrepro.data.fever import load_fever
from mendrepro.data.nq import load_nq
from mendrepro.data.synthetic import WorldConfig, all_world_texts, generate_world, write_world
from mendrepro.data.tokenizer import train_word_tokenizer
from mendrepro.data.wikitext import SelfSample, load_wikitext_raw
from mendrepro.data.zsre import load_zsre
from mendrepro.editors.ft import FineTune, FTConfig, edit_many
from mendrepro.evaluate import evaluate_editor
from mendrepro.models import build_model, edited_parameter_names
from mendrepro.tasks import FeverTask, WikitextTask, ZsreTask

# Float tolerance: the batched path adds x·R to the layer's output instead of using (W + R)·x, and pads the
# batch to its widest edit; both change rounding only. RMSprop divides each gradient entry by its own running
# magnitude, so an entry whose gradient is near zero can move by up to lr / sqrt(1 - alpha) on rounding alone:
# entries agree to within 1e-2 of the largest residual entry, and the steps per edit agree exactly.
REL = 1e-2
# The evaluation test's FT rate: ten times the tiny profile's (config/tiny.yaml, editors.ft). FT+KL's KL gradient is
# rounding noise at its first step (softmax(post) - p_pre with sum(p_pre) = 1 to float precision); RMSprop scales
# every entry to about lr whatever its size, so entries whose edit gradient is zero move by up to ~lr on noise that
# padding changes. At 1e-2 a T5 FT+KL NLL moved 16% between the two paths; at 1e-3 and 1e-4 both within REL.
LR = 1e-3

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


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    w = generate_world(WorldConfig(n_subjects=12, n_objects_per_type=8, n_dev_facts=10, n_wiki_valid=3))
    paths = write_world(w, root / "world")
    return paths, train_word_tokenizer(all_world_texts(w), root / "tok")


def _task(arch: str, paths, tok, max_len: int):
    """A dev task of the model's family; its training locality stream (FT+KL), drawn per edit key."""
    if arch in ("bart", "t5"):
        recs, nq = load_zsre(paths["zsre_dev"]), load_nq(paths["nq_dev"])
        return ZsreTask(tok, recs, nq), ZsreTask(tok, load_zsre(paths["zsre_train"]), nq)
    if arch == "bert":
        return FeverTask(tok, load_fever(paths["fever_dev"]), "release"), FeverTask(
            tok, load_fever(paths["fever_train"]), "release"
        )
    passages = load_wikitext_raw(paths["wiki_valid"])
    samples = [SelfSample(p, " ".join(p.split()[:20] + passages[0].split()[:6]), 6) for p in passages]
    task = WikitextTask(tok, samples, passages, max_len=max_len, n_equiv=3)
    return task, task


def _streams(train_task):
    def stream(key: str):
        rng = random.Random(f"7:{key}")
        return lambda: train_task.request(rng.randrange(len(train_task)), rng).loc

    return stream


@pytest.mark.parametrize("kl", [False, True], ids=["ft", "ftkl"])
@pytest.mark.parametrize("arch", sorted(MICRO_SPECS))
def test_batched_evaluation_writes_the_one_at_a_time_lines(world, arch, kl):
    """evaluate_editor with edit_batch 4 against 1: every raw line's fields equal (ids, targets, success flags,
    accuracies, token counts exactly; NLLs before the edit to 1e-4 and after it to REL, relative), but its
    measured time and memory."""
    paths, tok = world
    spec = MICRO_SPECS[arch]
    model = build_model(spec, tok, seed=0).eval()
    task, train_task = _task(arch, paths, tok, spec.max_len)
    names = edited_parameter_names(model, spec.edit_params)
    cfg = FTConfig(lr=LR, max_steps=6, kl=kl)
    order = list(range(min(len(task), 6)))
    runs = {}
    for b in (1, 4):  # 4 does not divide 6: the last group is smaller
        ft = FineTune(model, spec.family, names, cfg, loc_sampler=_streams(train_task) if kl else None)
        runs[b] = (evaluate_editor(ft, task, order, k=1, n_loc=2, seed=0, edit_batch=b), ft.steps_taken)
    (one, steps_one), (many, steps_many) = runs[1], runs[4]
    assert steps_one == steps_many and any(s > 0 for s in steps_one)
    for a, b in zip(one, many, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            if key in ("seconds", "memory"):
                continue
            _assert_close(a[key], b[key], key, key)


def _assert_close(a, b, where, field=""):
    """Equal, but for NLLs (float rounding); success flags, accuracies and token counts exactly."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_close(a[k], b[k], f"{where}.{k}", k)
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{where}[{i}]", field)
    elif field == "nll":
        # Before the edit: float rounding (padding to the group's widest). After: the edited weights agree to REL
        # of the largest residual entry (see above), which moves an NLL by up to about 1e-3 of it on the micro
        # models; 1e-2 states the bound.
        after = where.startswith(("equivalence", "locality_after"))
        assert b == pytest.approx(a, rel=REL if after else 1e-4, abs=1e-5), where
    else:
        assert a == b, where
