"""config/tiny-wide.yaml (the Table 5 width study) changes the tiny profile only in its name, its paths and BART's
width, so that its Table 5 differs from the default run's by the width of the model alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FORMER_PRETRAIN_RULE, load_config_file, tiny_with

from mendrepro.checks import check_config, load_schema
from mendrepro.config import editor_entry

ROOT = Path(__file__).resolve().parents[1]

OVERLAY = "tiny-wide.yaml"


def test_the_overlay_sets_only_the_profile_paths_and_width():
    overlay = load_config_file(OVERLAY)
    assert set(overlay) == {"profile", "data", "models", "tables"}
    assert overlay["models"] == {"bart": {"d_model": 256, "d_ffn": 1024, "pretrain": FORMER_PRETRAIN_RULE}}
    # The tiny profile's width rule for Table 5 is declared for width 128: the study measures the paper's k.
    assert overlay["tables"] == {"table5": {"k_scaling": None}}


def test_everything_but_the_width_is_the_tiny_profile():
    tiny, wide = load_config_file("tiny.yaml"), tiny_with(OVERLAY)
    assert wide["profile"] == "tiny-wide"
    assert wide["data"] == {k: v.replace("results/tiny/", "results/tiny-wide/") for k, v in tiny["data"].items()}
    width = {"d_model", "d_ffn", "pretrain"}
    assert {k: v for k, v in wide["models"]["bart"].items() if k not in width} == {
        k: v for k, v in tiny["models"]["bart"].items() if k not in width
    }
    assert wide["models"]["bart"]["pretrain"] == {**tiny["models"]["bart"]["pretrain"], **FORMER_PRETRAIN_RULE}
    assert wide["models"]["bart"]["d_model"] == 2 * tiny["models"]["bart"]["d_model"]
    assert wide["models"]["bart"]["d_ffn"] == 4 * tiny["models"]["bart"]["d_ffn"]
    assert {m: s for m, s in wide["models"].items() if m != "bart"} == {
        m: s for m, s in tiny["models"].items() if m != "bart"
    }
    rest = ("profile", "data", "models", "tables")
    assert {k: v for k, v in wide.items() if k not in rest} == {k: v for k, v in tiny.items() if k not in rest}
    assert wide["tables"]["table5"].pop("k_scaling") is None and tiny["tables"]["table5"].pop("k_scaling")
    assert wide["tables"] == tiny["tables"]


def test_ft_at_k_edits_is_a_table5_editor():
    entry = editor_entry(tiny_with(OVERLAY), "ft-k25")
    assert entry["kind"] == "ft"
    assert entry["eval"]["k"] == 25
    with pytest.raises(ValueError, match="ke-k25"):
        editor_entry(tiny_with(OVERLAY), "ke-k25")


def test_the_merged_config_passes_the_workflow_checks():
    check_config(tiny_with(OVERLAY), load_schema(ROOT / "config" / "schema.yaml"))
