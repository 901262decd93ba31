"""config/tiny-hard-edits.yaml (the Wikitext edit-difficulty study) changes the tiny profile only in its name, its
paths, the self-samples' temperature, its grid's scope and MEND's choice; the temperature makes targets harder for
the model that samples them."""

from __future__ import annotations

from pathlib import Path

import torch
from conftest import MICRO_SPECS, WORDS, load_config_file, tiny_with
from test_model_overlays import plan_documented_commands

from mendrepro.checks import check_config, load_schema
from mendrepro.difficulty import surprise_summary, target_surprise
from mendrepro.models import build_model
from mendrepro.sampling import self_sample

ROOT = Path(__file__).resolve().parents[1]
OVERLAY = "tiny-hard-edits.yaml"


def test_the_overlay_sets_only_the_profile_paths_temperature_and_scope():
    overlay = load_config_file(OVERLAY)
    assert set(overlay) <= {"profile", "data", "world", "tasks", "lr_grid", "train_lr", "train_c_edit"}
    assert overlay["world"] == {"wikitext": {"n_subjects": 300}}  # the corpus it was run on (tiny-few-passages)
    assert overlay["tasks"] == {"wikitext": {"sample_temperature": 1.55}}
    assert overlay["lr_grid"] == {"editors": ["wikitext/gpt2/mend"]}
    for mapping in ("train_lr", "train_c_edit"):
        assert set(overlay.get(mapping, {})) <= {"wikitext/gpt2/mend"}


def test_everything_but_the_temperature_is_the_tiny_profile():
    tiny, hard = load_config_file("tiny.yaml"), tiny_with(OVERLAY)
    assert hard["profile"] == "tiny-hard-edits"
    assert hard["data"] == {k: v.replace("results/tiny/", "results/tiny-hard-edits/") for k, v in tiny["data"].items()}
    assert hard["tasks"]["wikitext"].pop("sample_temperature") == 1.55
    assert "sample_temperature" not in tiny["tasks"]["wikitext"]
    assert hard["tasks"] == tiny["tasks"] and hard["models"] == tiny["models"]
    assert hard["lr_grid"].pop("editors") == ["wikitext/gpt2/mend"]
    assert hard["lr_grid"] == tiny["lr_grid"]
    for mapping in ("train_lr", "train_c_edit"):
        assert {k: v for k, v in hard[mapping].items() if k != "wikitext/gpt2/mend"} == {
            k: v for k, v in tiny[mapping].items() if k != "wikitext/gpt2/mend"
        }
    assert hard["world"] == {**tiny["world"], "wikitext": {"n_subjects": 300}}
    rest = ("profile", "data", "world", "tasks", "lr_grid", "train_lr", "train_c_edit")
    assert {k: v for k, v in hard.items() if k not in rest} == {k: v for k, v in tiny.items() if k not in rest}


def test_the_merged_config_passes_the_workflow_checks():
    check_config(tiny_with(OVERLAY), load_schema(ROOT / "config" / "schema.yaml"))


def test_a_higher_temperature_draws_targets_the_model_predicts_less(tok):
    """On a model with peaked next-token distributions, temperature 1 mostly draws its argmax; temperature 3 draws
    targets with more tokens to change and a higher NLL under the same model."""
    model = build_model(MICRO_SPECS["gpt2"], tok, 0).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(20.0)  # peaked distributions: the argmax carries most of the mass
    passages = [" ".join(WORDS[i : i + 8]) for i in range(0, 40, 4)]
    summaries = {
        t: surprise_summary(target_surprise(model, tok, self_sample(model, tok, passages, 6, 8, seed=0, temperature=t)))
        for t in (1.0, 3.0)
    }
    assert summaries[3.0]["not_argmax_mean"] > summaries[1.0]["not_argmax_mean"]
    assert summaries[3.0]["nll_mean"] > summaries[1.0]["nll_mean"]


def test_the_studys_documented_commands_plan_its_grid_and_its_evaluations(tmp_path):
    """The two commands of the overlay's header, as written there: the new self-samples and MEND's 12 grid cells,
    then MEND's training and the three evaluations."""
    grid, evaluation = plan_documented_commands(ROOT / "config" / OVERLAY, tmp_path)
    assert grid["lr_grid_train"] == 12 and grid["self_sample"] == 1
    assert evaluation["train_editor"] == 1 and evaluation["evaluate"] == 3
