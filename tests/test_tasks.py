"""Edit requests built from the loaders' records: targets, equivalence neighbourhoods, locality, batching."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
import torch

from mendrepro.batches import IGNORE
from mendrepro.data.fever import load_fever
from mendrepro.data.nq import load_nq
from mendrepro.data.synthetic import WorldConfig, all_world_texts, generate_world, write_world
from mendrepro.data.tokenizer import train_word_tokenizer
from mendrepro.data.wikitext import SelfSample, load_wikitext_raw
from mendrepro.data.zsre import load_zsre
from mendrepro.tasks import FeverTask, WikitextTask, ZsreTask, merge, with_model_predictions


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    w = generate_world(WorldConfig(n_subjects=12, n_objects_per_type=8, n_dev_facts=10, n_wiki_valid=3))
    paths = write_world(w, root / "world")
    tok = train_word_tokenizer(all_world_texts(w), root / "tok")
    return paths, tok


def test_zsre_request(world):
    paths, tok = world
    recs = load_zsre(paths["zsre_dev"])
    task = ZsreTask(tok, recs, load_nq(paths["nq_dev"]))
    req = task.request(0, random.Random(0), n_loc=3, all_equiv=True)
    assert req.target in recs[0].alternatives and req.target not in recs[0].answers
    assert req.outer_texts == list(recs[0].rephrases)
    assert req.outer["input_ids"].shape[0] == len(recs[0].rephrases) and req.loc["input_ids"].shape[0] == 3
    target_ids = tok(req.target, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert req.inner["labels"][0].tolist() == target_ids
    # every equivalence row asks for the same target
    for row in req.outer["labels"]:
        assert [t for t in row.tolist() if t != IGNORE] == target_ids


@pytest.mark.parametrize("rule", ["always", "release"])
def test_fever_request_flips_or_coin_flips(world, rule):
    paths, tok = world
    recs = load_fever(paths["fever_dev"])
    task = FeverTask(tok, recs, rule)
    rng = random.Random(0)
    flips = [
        task.request(i % len(recs), rng).target != ("SUPPORTS" if recs[i % len(recs)].label else "REFUTES")
        for i in range(40)
    ]
    if rule == "always":
        assert all(flips)
    else:
        assert 0 < sum(flips) < 40
    # The raw line's flag says which edits flip: replay the same draws.
    rng = random.Random(0)
    metas = [task.request(i % len(recs), rng).meta["flip"] for i in range(40)]
    assert metas == flips


class _SignOfFirstToken(torch.nn.Module):
    """A stand-in classifier whose logit is +1 or -1 by the parity of the claim's first token id."""

    config = SimpleNamespace()

    def forward(self, input_ids, attention_mask=None, **_):
        return (input_ids[:, 1] % 2).float() * 2 - 1


def test_model_predictions_replace_the_files_and_decide_keep_or_flip(world):
    paths, tok = world
    recs = load_fever(paths["fever_dev"])
    model = _SignOfFirstToken()
    predicted = with_model_predictions(recs, model, tok, max_len=48, bs=3)
    expected = [
        "SUPPORTS" if tok(r.claim, add_special_tokens=False)["input_ids"][0] % 2 else "REFUTES" for r in recs
    ]  # the claim's first token after [CLS]
    assert [r.prediction for r in predicted] == expected and model.training  # training mode restored
    task = FeverTask(tok, predicted, "release")
    rng = random.Random(1)
    for i in range(20):
        req = task.request(i % len(recs), rng)
        kept = req.target == expected[i % len(recs)]
        assert req.meta["flip"] is (not kept)


def test_wikitext_request_scores_only_the_sampled_tokens(world):
    paths, tok = world
    passages = load_wikitext_raw(paths["wiki_valid"])
    sample = SelfSample(passages[0], " ".join(passages[0].split()[:20] + passages[1].split()[:10]), 10)
    task = WikitextTask(tok, [sample], passages, max_len=128, n_equiv=3)
    req = task.request(0, random.Random(0), n_loc=2, all_equiv=True)
    labels = req.inner["labels"][0]
    assert (labels != IGNORE).sum() == 10
    assert torch.equal(labels[-10:], req.inner["input_ids"][0, -10:])
    assert req.outer["input_ids"].shape[0] == 3
    for row, lab in zip(req.outer["input_ids"], req.outer["labels"], strict=True):
        n = int((row != tok.pad_token_id).sum())
        assert n >= 10 + (len(req.inner["input_ids"][0]) - 10 + 1) // 2  # at most half the passage dropped
        assert (lab != IGNORE).sum() == 10
    assert (req.loc["labels"] != IGNORE).any()


def test_merge_stacks_k_requests(world):
    paths, tok = world
    task = ZsreTask(tok, load_zsre(paths["zsre_dev"]), load_nq(paths["nq_dev"]))
    rng = random.Random(0)
    reqs = [task.request(i, rng, n_loc=2) for i in range(4)]
    m = merge(reqs, tok.pad_token_id)
    assert m.inner["input_ids"].shape[0] == 4 and m.loc["input_ids"].shape[0] == 8
    assert m.id.count("+") == 3


def test_aggregate_gives_es_on_the_flip_edits():
    from mendrepro.evaluate import aggregate

    def line(es, flip):
        return {
            "es": es,
            "flip": flip,
            "seconds": 0.0,
            "memory": {"peak_mb": 1.0, "kind": "rss"},
            "locality_before": {"acc": [1.0]},
            "locality_after": {"acc": [1.0]},
        }

    out = aggregate([line(1.0, False), line(0.5, True), line(0.0, True), line(1.0, False)], "binary")
    assert out["es"] == pytest.approx(0.625) and out["n_flip"] == 2 and out["es_flip"] == pytest.approx(0.25)
    no_flags = [{k: v for k, v in line(1.0, False).items() if k != "flip"}]
    assert "es_flip" not in aggregate(no_flags, "binary")  # zsRE and Wikitext lines carry no flag
