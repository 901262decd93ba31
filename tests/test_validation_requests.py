"""The requests editor training validates on: held-out dev edits, with train.n_val_loc locality examples each."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from mendrepro.build import build_task
from mendrepro.cli import validation_requests
from mendrepro.config import Experiment, resolve_experiment
from mendrepro.data.synthetic import WorldConfig, all_world_texts, generate_world, write_world
from mendrepro.data.tokenizer import train_word_tokenizer

ROOT = Path(__file__).resolve().parents[1]
MICRO = yaml.safe_load((ROOT / "tests/fixtures/micro.yaml").read_text())


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    """The micro world's zsRE dev task and its tokenizer's padding id."""
    root = tmp_path_factory.mktemp("world")
    world = generate_world(WorldConfig(**MICRO["world"]))
    paths = write_world(world, root / "world")
    tok = train_word_tokenizer(all_world_texts(world), root / "tok")
    exp = Experiment.from_dict(resolve_experiment(MICRO, "zsre", "bart", "mend", 0))
    files = {k: str(paths[k]) for k in ("zsre_train", "zsre_dev", "nq_train", "nq_dev")}
    return build_task(exp, tok, "dev", files), tok.pad_token_id


def _requests(dev, **train) -> list:
    raw = resolve_experiment(MICRO, "zsre", "bart", "mend", 0)
    raw["train"].update(train)
    task, pad = dev
    return validation_requests(Experiment.from_dict(raw), task, pad)


def _loc_rows(req) -> int:
    return req.loc["input_ids"].shape[0]


@pytest.mark.parametrize(
    ("train", "rows"),
    [
        ({"n_loc": 1}, 1),  # unset: training's count
        ({"n_loc": 1, "n_val_loc": 1}, 1),
        ({"n_loc": 1, "n_val_loc": 6}, 6),
        ({"n_loc": 3, "n_val_loc": 2}, 2),  # may also be fewer than training's
        ({"n_loc": 1, "n_val_loc": 4, "edits_per_step": 2}, 8),  # k edits per request, n_val_loc each
    ],
)
def test_each_validation_edit_scores_n_val_loc_locality_examples(dev, train, rows):
    reqs = _requests(dev, n_val=2, **train)
    assert reqs and all(_loc_rows(r) == rows for r in reqs)


def test_the_count_changes_the_locality_examples_not_the_edits(dev):
    """The same held-out edits and targets whatever the count; unset is exactly training's count."""
    base = _requests(dev, n_loc=2, n_val=3)
    same = _requests(dev, n_loc=2, n_val_loc=2, n_val=3)
    more = _requests(dev, n_loc=2, n_val_loc=5, n_val=3)
    assert [r.id for r in base] == [r.id for r in same] == [r.id for r in more]
    for a, b in zip(base, same, strict=True):
        assert a.target == b.target and torch.equal(a.loc["input_ids"], b.loc["input_ids"])
    assert base[0].target == more[0].target  # the first request's target is drawn before its locality examples
    assert _loc_rows(more[0]) == 5 and _loc_rows(base[0]) == 2
