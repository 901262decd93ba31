"""config/tiny-few-passages.yaml (the Wikitext training-set study) changes the tiny profile only in its name, its
paths, the Wikitext world's number of persons, its grid's scope and MEND's choice; the tiny profile's larger
Wikitext world gives the editors fifteen times the study's Wikitext training passages and the same dev passages."""

from __future__ import annotations

from pathlib import Path

from conftest import load_config_file, tiny_with
from test_model_overlays import plan_documented_commands

from mendrepro.checks import check_config, load_schema
from mendrepro.data.synthetic import WorldConfig, generate_world

ROOT = Path(__file__).resolve().parents[1]
OVERLAY = "tiny-few-passages.yaml"
PROFILE = "tiny-few-passages"
MEND = [f"wikitext/{model}/mend" for model in ("gpt2", "gptneo", "gptj")]


def test_the_overlay_sets_only_the_profile_paths_wikitext_world_size_and_scope():
    overlay = load_config_file(OVERLAY)
    assert set(overlay) <= {"profile", "data", "world", "lr_grid", "train_lr", "train_c_edit"}
    assert overlay["world"] == {"wikitext": {"n_subjects": 300}}
    assert overlay["lr_grid"] == {"editors": MEND}
    for mapping in ("train_lr", "train_c_edit"):
        assert set(overlay.get(mapping, {})) <= set(MEND)


def test_everything_but_the_wikitext_world_size_is_the_tiny_profile():
    tiny, more = load_config_file("tiny.yaml"), tiny_with(OVERLAY)
    assert more["profile"] == PROFILE
    assert more["data"] == {k: v.replace("results/tiny/", f"results/{PROFILE}/") for k, v in tiny["data"].items()}
    # The study's Wikitext world is the main world itself: 300 persons against the tiny profile's 3000.
    assert more["world"].pop("wikitext") == {"n_subjects": 300} and tiny["world"].pop("wikitext") == {
        "n_subjects": 3000
    }
    assert more["world"] == tiny["world"] and tiny["world"]["n_subjects"] == 300
    assert more["lr_grid"].pop("editors") == MEND
    assert more["lr_grid"] == tiny["lr_grid"]
    for mapping in ("train_lr", "train_c_edit"):
        assert {k: v for k, v in more[mapping].items() if k not in MEND} == {
            k: v for k, v in tiny[mapping].items() if k not in MEND
        }
    rest = ("profile", "data", "world", "lr_grid", "train_lr", "train_c_edit")
    assert {k: v for k, v in more.items() if k not in rest} == {k: v for k, v in tiny.items() if k not in rest}


def test_the_merged_config_passes_the_workflow_checks():
    check_config(tiny_with(OVERLAY), load_schema(ROOT / "config" / "schema.yaml"))


def test_ten_times_the_persons_give_fifteen_times_the_training_passages_and_the_same_dev_passages():
    """The Wikitext world of the tiny profile against the study's: the same number of dev articles (60 validate, the
    rest are reported); 2785 training articles instead of 85 and an almanac ten times as long, so 5262 training passages
    of at least 50 words (each one self-sampled Wikitext edit) instead of 347."""
    worlds = {n: generate_world(WorldConfig(n_subjects=n, n_wiki_valid=215)) for n in (300, 3000)}
    assert len(worlds[300].wiki_valid) == len(worlds[3000].wiki_valid) == 215
    assert len(worlds[300].wiki_train) == 86 and len(worlds[3000].wiki_train) == 2786  # persons' articles + almanac
    passages = {n: [p for a in w.wiki_train for p in a.paragraphs if len(p.split()) >= 50] for n, w in worlds.items()}
    assert (len(passages[300]), len(passages[3000])) == (347, 5262)


def test_the_studys_documented_commands_plan_its_grid_and_its_evaluations(tmp_path):
    """The two commands of the overlay's header, as written there: the Wikitext world, the three GPT-class models'
    pre-training, the self-samples and MEND's 12 grid cells on each, then MEND's training and three evaluations on
    each model."""
    grid, evaluation = plan_documented_commands(ROOT / "config" / OVERLAY, tmp_path)
    assert grid["lr_grid_train"] == 36 and grid["self_sample"] == 1 and grid["pretrain"] == 3
    assert evaluation["train_editor"] == 3 and evaluation["evaluate"] == 9
