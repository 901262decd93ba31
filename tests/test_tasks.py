"""Edit requests built from the loaders' records: targets, equivalence neighbourhoods, locality, batching."""

from __future__ import annotations

import random

import pytest
import torch

from mendrepro.batches import IGNORE
from mendrepro.data.fever import load_fever
from mendrepro.data.nq import load_nq
from mendrepro.data.synthetic import WorldConfig, all_world_texts, generate_world, write_world
from mendrepro.data.tokenizer import train_word_tokenizer
from mendrepro.data.wikitext import SelfSample, load_wikitext_raw
from mendrepro.data.zsre import load_zsre
from mendrepro.tasks import FeverTask, WikitextTask, ZsreTask, merge


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
