"""`target_surprise` scores how much of a Wikitext edit target the model already predicts: zero tokens to change for
its own greedy continuation, every token for the least likely continuation, and the NLL summed over the targets;
`by_difficulty` splits an editor's raw lines by that score."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import MICRO_SPECS, WORDS

from mendrepro.data.wikitext import SelfSample
from mendrepro.difficulty import (
    TargetSurprise,
    by_difficulty,
    difficulty_bucket,
    record_sample,
    surprise_summary,
    target_surprise,
)
from mendrepro.models import build_model

N = 4


@pytest.fixture
def gpt2(tok):
    return build_model(MICRO_SPECS["gpt2"], tok, 0).eval()


def _continue(model, tok, prefix: list[int], pick) -> SelfSample:
    """The prefix followed by N tokens, each chosen by ``pick`` from the model's next-token logits."""
    ids = list(prefix)
    with torch.no_grad():
        for _ in range(N):
            logits = model(torch.tensor([ids])).logits[0, -1]
            logits[tok.all_special_ids] = float("nan")  # never a special token: the text must round-trip
            ids.append(pick(logits))
    return SelfSample(tok.decode(prefix), tok.decode(ids), N)


def test_the_models_greedy_continuation_needs_no_token_changed_and_costs_its_log_probabilities(gpt2, tok):
    prefix = tok(" ".join(WORDS[:6]), add_special_tokens=False)["input_ids"]
    sample = _continue(gpt2, tok, prefix, lambda lg: int(torch.nan_to_num(lg, nan=-1e9).argmax()))
    (score,) = target_surprise(gpt2, tok, [sample])
    assert score.not_argmax == 0 and score.n_tokens == N
    ids = torch.tensor([tok(sample.completion, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        logp = torch.log_softmax(gpt2(ids).logits[0, :-1], -1)
    by_hand = -sum(logp[i - 1, ids[0, i]].item() for i in range(ids.shape[1] - N, ids.shape[1]))
    assert score.nll == pytest.approx(by_hand, rel=1e-5)


def test_the_least_likely_continuation_needs_every_token_changed(gpt2, tok):
    prefix = tok(" ".join(WORDS[:6]), add_special_tokens=False)["input_ids"]
    greedy = _continue(gpt2, tok, prefix, lambda lg: int(torch.nan_to_num(lg, nan=-1e9).argmax()))
    worst = _continue(gpt2, tok, prefix, lambda lg: int(torch.nan_to_num(lg, nan=1e9).argmin()))
    (g, w) = target_surprise(gpt2, tok, [greedy, worst])
    assert w.not_argmax == N
    assert w.nll > g.nll


def test_a_completion_without_a_prefix_is_refused(gpt2, tok):
    sample = SelfSample("", " ".join(WORDS[:N]), N)
    with pytest.raises(ValueError, match="no prefix before its 4 targets"):
        target_surprise(gpt2, tok, [sample])


def test_the_summary_reports_means_quartiles_and_the_share_needing_at_most_two_changes():
    scores = [TargetSurprise(nll, k, 10) for nll, k in ((2.0, 0), (4.0, 1), (6.0, 2), (8.0, 5))]
    s = surprise_summary(scores)
    assert s["n"] == 4 and s["nll_mean"] == 5.0 and s["nll_per_token"] == 0.5
    assert s["nll_quartiles"] == [4.0, 6.0, 8.0]
    assert s["not_argmax_mean"] == 2.0 and s["share_at_most_two_not_argmax"] == 0.75


@pytest.mark.parametrize(("not_argmax", "bucket"), [(0, "0-1"), (1, "0-1"), (2, "2"), (3, "3+"), (10, "3+")])
def test_the_buckets_count_the_tokens_to_change(not_argmax, bucket):
    assert difficulty_bucket(TargetSurprise(1.0, not_argmax, 10)) == bucket


def _line(i: str, es: float, before: list[float], after: list[float], steps: int | None = None) -> dict:
    line = {
        "id": i,
        "es": es,
        "seconds": 0.1,
        "memory": {"peak_mb": 1.0, "kind": "cpu_peak_rss"},
        "locality_original": {"nll": before, "tokens": [10] * len(before)},
        "locality_before": {"nll": before, "tokens": [10] * len(before)},
        "locality_after": {"nll": after, "tokens": [10] * len(after)},
    }
    return line if steps is None else {**line, "steps": steps}


def test_by_difficulty_averages_es_and_steps_and_pools_the_perplexity_drawdown():
    """The bucket's perplexity is exp(locality NLL / tokens) over all its edits' passages, as a run's metrics; the
    drawdown is after − original."""
    lines = [
        _line("a", 1.0, [10.0, 10.0], [10.0, 10.0], steps=1),  # ppl e -> e: 0
        _line("b", 0.0, [10.0, 10.0], [20.0, 20.0], steps=3),  # ppl e -> e^2
        _line("c", 1.0, [0.0], [10.0], steps=2),  # ppl 1 -> e
    ]
    scores = {"a": TargetSurprise(1.0, 0, 10), "b": TargetSurprise(9.0, 1, 10), "c": TargetSurprise(20.0, 4, 10)}
    table = by_difficulty(lines, scores)
    assert set(table) == {"0-1", "3+"}
    assert table["0-1"]["edits"] == 2 and table["0-1"]["es"] == 0.5 and table["0-1"]["steps"] == 2.0
    assert table["0-1"]["dd"] == pytest.approx(math.exp(60 / 40) - math.exp(40 / 40))
    assert table["3+"] == pytest.approx({"edits": 1, "es": 1.0, "dd": math.e - 1.0, "steps": 2.0})
    # Lines without optimiser steps (learned editors) report none.
    assert "steps" not in by_difficulty([_line("c", 1.0, [0.0], [10.0])], scores)["3+"]


def test_an_edits_line_is_scored_as_its_passage_then_its_target(tok):
    line = {"edit_input": " ".join(WORDS[:5]), "target": " ".join(WORDS[5:8])}
    sample = record_sample(line, tok)
    assert sample.completion == " ".join(WORDS[:8]) and sample.n_tokens == 3


def test_an_empty_set_of_targets_has_no_summary():
    with pytest.raises(ValueError, match="no edit targets"):
        surprise_summary([])
