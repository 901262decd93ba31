"""config/tiny-long.yaml (the convergence study) changes the tiny profile only in its name, its paths and the
training budget, so that its tables differ from the default run's by the budget alone."""

from __future__ import annotations

import copy
from pathlib import Path

from conftest import load_config_file, tiny_with

from mendrepro.checks import check_config, load_schema

ROOT = Path(__file__).resolve().parents[1]

OVERLAY = "tiny-long.yaml"


def test_the_overlay_sets_only_the_profile_paths_and_budget():
    overlay = load_config_file(OVERLAY)
    assert set(overlay) == {"profile", "data", "train", "tables"}
    assert set(overlay["train"]) == {"steps", "patience"}
    assert overlay["tables"] == {"table5": {"batches": overlay["tables"]["table5"]["batches"]}}


def test_everything_but_the_budget_is_the_tiny_profile():
    tiny, long = load_config_file("tiny.yaml"), tiny_with(OVERLAY)
    assert long["profile"] == "tiny-long"
    assert long["data"] == {k: v.replace("results/tiny/", "results/tiny-long/") for k, v in tiny["data"].items()}
    budget = {"steps", "patience"}
    for key in set(tiny["train"]) - budget:
        assert long["train"][key] == tiny["train"][key], key
    assert long["train"]["steps"] == 4 * tiny["train"]["steps"]
    for short, extended in zip(tiny["tables"]["table5"]["batches"], long["tables"]["table5"]["batches"], strict=True):
        assert short["k"] == extended["k"]
        s, e = short.get("train", {}), extended.get("train", {})
        assert set(s) == set(e)
        for key in set(s) - budget:
            assert s[key] == e[key], (short["k"], key)
        if s:
            assert e["steps"] == 4 * s["steps"]
            assert s["patience"] < e["patience"] <= e["steps"] // 3
    rest = {k: v for k, v in long.items() if k not in ("profile", "data", "train", "tables")}
    assert rest == {k: v for k, v in tiny.items() if k not in ("profile", "data", "train", "tables")}
    t5_tiny, t5_long = copy.deepcopy(tiny["tables"]), copy.deepcopy(long["tables"])
    del t5_tiny["table5"]["batches"], t5_long["table5"]["batches"]
    assert t5_long == t5_tiny


def test_the_merged_config_passes_the_workflow_checks():
    check_config(tiny_with(OVERLAY), load_schema(ROOT / "config" / "schema.yaml"))
