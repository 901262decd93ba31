"""Pre-training on a small synthetic world: the text objective's batches, the metrics, what is saved."""

from __future__ import annotations

import random

import pytest
import torch
from conftest import load_config_file

from mendrepro.batches import IGNORE
from mendrepro.config import ModelSpec, PretrainConfig
from mendrepro.data.synthetic import WorldConfig, all_world_texts, generate_world, write_world
from mendrepro.data.tokenizer import train_word_tokenizer
from mendrepro.models import build_model
from mendrepro.pretrain import mlm_batch, pretrain

SMALL = WorldConfig(seed=1, n_subjects=12, n_objects_per_type=8, n_dev_facts=10, n_wiki_valid=3)
SPECS = {
    "bert": ModelSpec(
        name="bert", arch="bert", edit_params=(), d_model=16, n_layers=2, n_heads=2, d_ffn=32, max_len=48
    ),
    "bart": ModelSpec(
        name="bart", arch="bart", edit_params=(), d_model=16, n_layers=2, n_heads=2, d_ffn=32, max_len=48
    ),
}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    world = generate_world(SMALL)
    write_world(world, root / "world")
    return root / "world", train_word_tokenizer(all_world_texts(world), root / "tok")


def test_mlm_batch_predicts_the_object_span(small):
    _, tok = small
    rows = [("Balo was born in [MASK] .", "Port Kel")] * 200
    b = mlm_batch(tok, rows, 48, random.Random(0))
    obj = tok("Port Kel", add_special_tokens=False)["input_ids"]
    labelled = b["labels"] != IGNORE
    assert (labelled.sum(1) == len(obj)).all()  # exactly the object's tokens are predicted
    assert (b["labels"][labelled].view(len(rows), -1) == torch.tensor(obj)).all()
    shown = b["input_ids"][labelled].view(len(rows), -1)
    masked = (shown == tok.mask_token_id).all(1).float().mean()
    kept = (shown == b["labels"][labelled].view(len(rows), -1)).all(1).float().mean()
    assert 0.7 < masked < 0.9 and 0.03 < kept < 0.2  # BERT's 80 / 10 / 10
    assert b["input_ids"][0, 0] == tok.cls_token_id


@pytest.mark.parametrize("name", ["bert", "bart"])
def test_pretrain_with_text_saves_only_the_base_model(small, name):
    world, tok = small
    task = {"bert": "fever", "bart": "zsre"}[name]
    cfg = PretrainConfig(steps=4, lr=1e-3, batch_size=8, eval_every=2, target_acc=1.1, warmup=1, text_mix=0.5)
    model, metrics = pretrain(task, SPECS[name], cfg, tok, world, seed=0)
    # The MLM head is a pre-training module: the saved classifier has exactly a fresh classifier's weights.
    assert set(model.state_dict()) == set(build_model(SPECS[name], tok, 0).state_dict())
    assert metrics["text_mix"] == 0.5 and metrics["steps"] == 4
    first, dev = list(metrics["eval"])[:2]
    assert "train" in first and "dev" in dev  # early stopping reads train facts, dev is monitored
    assert {h["step"] for h in metrics["history"]} == {2, 4} and f"{dev}_acc" in metrics["history"][0]
    if name == "bert":
        q = metrics["eval"]["fever_dev_claims"]["abs_logit_quartiles"]
        assert len(q) == 3 and 0 <= q[0] <= q[1] <= q[2]


def test_text_mix_rejected_for_language_models(small):
    world, tok = small
    spec = ModelSpec(name="gpt2", arch="gpt2", edit_params=(), d_model=16, n_layers=2, n_heads=2, d_ffn=32)
    with pytest.raises(ValueError, match="text_mix"):
        pretrain("wikitext", spec, PretrainConfig(steps=1, text_mix=0.5), tok, world, seed=0)


@pytest.mark.parametrize(("target", "steps"), [(None, 4), (0.0, 2)])
def test_pretraining_trains_every_step_unless_a_target_is_set(small, target, steps):
    world, tok = small
    cfg = PretrainConfig(steps=4, lr=1e-3, batch_size=8, eval_every=2, target_acc=target, warmup=1, text_mix=0.5)
    _, metrics = pretrain("zsre", SPECS["bart"], cfg, tok, world, seed=0)
    assert metrics["steps"] == steps and [h["step"] for h in metrics["history"]] == list(range(2, steps + 1, 2))


def test_every_tiny_base_model_trains_a_fixed_number_of_steps():
    # One budget for every seed: a target would stop each seed at another point of its learning curve.
    for name, spec in load_config_file("tiny.yaml")["models"].items():
        assert spec["pretrain"].get("target_acc") is None and spec["pretrain"]["steps"] > 0, name
