"""config/tiny-val-loc.yaml (the validation-noise study) changes the tiny profile only in its name, its paths and
the number of locality examples each validation edit scores, so that its editors differ from the default run's by
the checkpoint their validation keeps alone."""

from __future__ import annotations

from pathlib import Path

from conftest import load_config_file, tiny_with

from mendrepro.checks import check_config, load_schema
from mendrepro.config import resolve_experiment

ROOT = Path(__file__).resolve().parents[1]
OVERLAY = "tiny-val-loc.yaml"


def test_the_overlay_sets_only_the_profile_paths_and_validation_locality():
    overlay = load_config_file(OVERLAY)
    assert set(overlay) == {"profile", "data", "train"}
    assert overlay["train"] == {"n_val_loc": 10}


def test_everything_but_the_validation_locality_is_the_tiny_profile():
    tiny, study = load_config_file("tiny.yaml"), tiny_with(OVERLAY)
    assert study["profile"] == "tiny-val-loc"
    assert study["data"] == {k: v.replace("results/tiny/", "results/tiny-val-loc/") for k, v in tiny["data"].items()}
    assert "n_val_loc" not in tiny["train"]  # the default run validates on training's count
    assert {k: v for k, v in study["train"].items() if k != "n_val_loc"} == tiny["train"]
    rest = {k: v for k, v in study.items() if k not in ("profile", "data", "train")}
    assert rest == {k: v for k, v in tiny.items() if k not in ("profile", "data", "train")}
    # 60 validation edits × 10 = the 600 locality answers of a reported cell (150 edits × eval.n_loc 4).
    assert study["train"]["n_val"] * study["train"]["n_val_loc"] == tiny["eval"]["n_edits"] * tiny["eval"]["n_loc"]


def test_the_study_editors_train_as_the_default_ones_but_for_validation():
    tiny, study = load_config_file("tiny.yaml"), tiny_with(OVERLAY)
    for editor in ("mend", "enn", "ke", "mend-no_sharing"):
        a, b = resolve_experiment(tiny, "zsre", "bart", editor, 1), resolve_experiment(study, "zsre", "bart", editor, 1)
        assert b["train"].pop("n_val_loc") == 10
        assert a == {**b, "profile": "tiny"}, editor


def test_the_merged_config_passes_the_workflow_checks():
    check_config(tiny_with(OVERLAY), load_schema(ROOT / "config" / "schema.yaml"))
