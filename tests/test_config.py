"""Experiment resolution (config + task + model + editor -> experiment), typed editor options, the registry."""

from __future__ import annotations

import copy
import math
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mendrepro.config import (
    Experiment,
    base_model_experiment,
    check_editors,
    editor_entry,
    resolve_experiment,
    scale_k,
    table5_k_scaling,
    train_lr_key,
)
from mendrepro.editors.base import Editor
from mendrepro.editors.options import OptionError
from mendrepro.editors.registry import KINDS

ROOT = Path(__file__).resolve().parents[1]

CONFIG = {
    "profile": "t",
    "tasks": {"zsre": {"n_heldout": 5}},
    "models": {"bart": {"task": "zsre", "arch": "bart", "edit_params": ["x"], "train": {"steps": 50}}},
    "editors": {
        "mend": {
            "kind": "mend",
            "options": {"rank": 8, "norm": True},
            "train": {"steps": 99, "lr": 0.5},
            "per_model": {"bart": {"train": {"val_every": 7}}},
        },
        "mend-no_norm": {"variant_of": "mend", "options": {"norm": False}},
        "enn": {"kind": "enn", "options": {"c_base": 1.0}, "per_task": {"zsre": {"c_base": 3.0}}},
    },
    "train": {"steps": 10, "lr": 0.1, "val_every": 5, "edits_per_step": 1},
    "eval": {"n_edits": 20, "k": 1},
    "tables": {"table5": {"editors": ["mend"], "batches": [{"k": 1}, {"k": 4, "train": {"steps": 3}}], "n_edits": 8}},
    "train_lr": {"zsre/bart/mend-k4": 0.25},
}


def test_resolution_precedence():
    exp = resolve_experiment(CONFIG, "zsre", "bart", "mend", "2")
    # train: config < editor < model < editor per_model; the seed from the run
    assert exp["train"] == {"steps": 50, "lr": 0.5, "val_every": 7, "edits_per_step": 1, "seed": 2}
    assert exp["editor_kind"] == "mend" and exp["editor_options"] == {"rank": 8, "norm": True}
    assert exp["model"] == {"name": "bart", "arch": "bart", "edit_params": ["x"]} and exp["seed"] == 2
    # Table 5's k-edit editor: its batch budget over the model's, its eval k; the grid's rate over everything.
    k4 = resolve_experiment(CONFIG, "zsre", "bart", "mend-k4")
    assert k4["train"]["steps"] == 3 and k4["train"]["edits_per_step"] == 4 and k4["train"]["lr"] == 0.25
    assert k4["eval"] == {"n_edits": 8, "k": 4}
    # A variant: its base entry with its options on top; per-task options over the editor's.
    assert resolve_experiment(CONFIG, "zsre", "bart", "mend-no_norm")["editor_options"] == {"rank": 8, "norm": False}
    assert resolve_experiment(CONFIG, "zsre", "bart", "enn")["editor_options"] == {"c_base": 3.0}
    # The config itself is never changed by resolving.
    assert CONFIG["train"] == {"steps": 10, "lr": 0.1, "val_every": 5, "edits_per_step": 1}
    base = {"profile", "seed", "task", "model", "pretrain", "task_options"}
    assert set(base_model_experiment(CONFIG, "bart")) == base


def test_resolution_errors():
    with pytest.raises(ValueError, match="configured for task 'zsre', not 'fever'"):
        resolve_experiment(CONFIG, "fever", "bart")
    with pytest.raises(ValueError, match="not in config"):
        editor_entry(CONFIG, "mend-k5")
    bad = copy.deepcopy(CONFIG)
    bad["editors"]["twice"] = {"variant_of": "mend-no_norm"}
    with pytest.raises(ValueError, match="non-variant"):
        editor_entry(bad, "twice")


@pytest.mark.parametrize("path", ["config/tiny.yaml", "config/paper.yaml", "tests/fixtures/micro.yaml"])
def test_configured_editors_check_and_type(path):
    config = yaml.safe_load((ROOT / path).read_text())
    check_editors(config)
    for editor in config["editors"]:
        task = next(iter(config["tasks"]))
        model = next(m for m, e in config["models"].items() if e["task"] == task)
        Experiment.from_dict(resolve_experiment(config, task, model, editor))


@pytest.mark.parametrize(
    "editor,options,message",
    [
        ("mend", {"rnak": 4}, "editor 'mend' (kind mend): unknown option 'rnak'; options: alpha_init,"),
        ("mend", {"rank": "4"}, "option 'rank' = '4' is not allowed; 'rank' takes int >= 1"),
        ("mend", {"mode": "both"}, "'mode' takes one of 'combine', 'only_u', 'only_delta', 'only_smaller'"),
        ("enn", {"c_base": -1.0}, "editor 'enn' (kind enn): option 'c_base' = -1.0 is not allowed"),
        ("enn", {"n_inner_steps": 0}, "'n_inner_steps' takes int >= 1"),
        ("mend-no_norm", {"norm": "no"}, "editor 'mend-no_norm' (kind mend): option 'norm' = 'no'"),
    ],
)
def test_bad_editor_options_fail_in_one_line_naming_editor_key_and_allowed(editor, options, message):
    config = copy.deepcopy(CONFIG)
    config["editors"][editor]["options"].update(options)
    with pytest.raises(OptionError) as err:
        check_editors(config)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_per_task_options_are_checked_too():
    config = copy.deepcopy(CONFIG)
    config["editors"]["enn"]["per_task"]["zsre"]["c_bsae"] = 1.0
    with pytest.raises(OptionError, match=r"editor 'enn' \(kind enn, per_task.zsre\): unknown option 'c_bsae'"):
        check_editors(config)


def test_an_unknown_kind_names_the_kinds():
    config = copy.deepcopy(CONFIG)
    config["editors"]["rome"] = {"kind": "rome"}
    with pytest.raises(ValueError, match="editor 'rome': unknown kind 'rome'; kinds: mend, ft, ftkl, ke, enn, cache"):
        check_editors(config)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_registry_classes_are_editors_taking_their_options(kind):
    entry = KINDS[kind]
    cls = entry.editor_class()
    assert issubclass(cls, Editor)
    assert entry.parse({}) == entry.options(**entry.fixed)


def test_config_imports_without_torch():
    code = "import sys, mendrepro.config; assert 'torch' not in sys.modules, sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_snakemake_dry_run_fails_fast_on_an_option_typo(tmp_path):
    for item in ("Snakefile", "workflow", "config", "envs"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    shutil.copytree(ROOT / "src", tmp_path / "src")  # the workflow reads the package from its checkout
    cfg = yaml.safe_load((ROOT / "tests/fixtures/micro.yaml").read_text())
    cfg["editors"]["mend"]["options"]["rnak"] = 4
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", "run.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0 and time.perf_counter() - t0 < 10
    assert "editor 'mend' (kind mend): unknown option 'rnak'; options: alpha_init" in proc.stdout + proc.stderr


# ----------------------------------------------------------------------------------------------------------------
# Table 5 at matched scale: the width rule (tables.table5.k_scaling) and the scaled editors' borrowed rates
@pytest.mark.parametrize(
    ("k", "width", "rounding", "want"),
    [
        # The tiny profile: d_model 128 against BART-base's 768, k · 128 / 768 = k / 6.
        (1, 128, "ceil", 1),  # 0.17: at least 1
        (5, 128, "ceil", 1),  # 0.83
        (25, 128, "ceil", 5),  # 4.17
        (75, 128, "ceil", 13),  # 12.5
        (125, 128, "ceil", 21),  # 20.83
        (1, 128, "half_up", 1),  # 0.17 rounds to 0: at least 1
        (5, 128, "half_up", 1),  # 0.83
        (25, 128, "half_up", 4),  # 4.17
        (75, 128, "half_up", 13),  # 12.5: the half goes up
        (125, 128, "half_up", 21),  # 20.83
        (6, 128, "ceil", 1),  # exactly 1: no float error rounds it up to 2
        (125, 768, "ceil", 125),  # the paper's own width: the paper's k
        (125, 256, "ceil", 42),  # the width study's BART (41.67)
        (5, 16, "ceil", 1),  # the micro profile
    ],
)
def test_scale_k(k, width, rounding, want):
    assert scale_k(k, width, 768, rounding) == want


def test_scale_k_rejects_bad_input():
    with pytest.raises(ValueError, match="rounding"):
        scale_k(5, 128, 768, "floor")
    with pytest.raises(ValueError, match="positive"):
        scale_k(0, 128, 768)


def _scaled_config(**over) -> dict:
    cfg = copy.deepcopy(CONFIG)
    cfg["models"]["bart"]["d_model"] = 128
    t5 = cfg["tables"]["table5"]
    t5["experiments"] = [{"task": "zsre", "model": "bart"}]
    t5["batches"] = [{"k": 1}, {"k": 4, "train": {"steps": 3}}, {"k": 13}, {"k": 75}]
    t5["k_scaling"] = {"paper_width": 768, "rounding": "ceil", "paper_k": [1, 75], "scaled_k": [1, 13], **over}
    return cfg


def test_k_scaling_is_read_with_the_models_width():
    scaling = table5_k_scaling(_scaled_config())
    assert scaling is not None and scaling.width == 128 and scaling.pairs == {1: 1, 75: 13}
    assert scaling.rule_text() == "ceil(k · 128 / 768), at least 1"
    assert table5_k_scaling(CONFIG) is None  # no rule declared: the paper's k only
    cfg = _scaled_config()
    cfg["tables"]["table5"]["k_scaling"] = None  # an overlay of another width switches it off
    assert table5_k_scaling(cfg) is None


@pytest.mark.parametrize(
    ("over", "batches", "match"),
    [
        ({"scaled_k": [1, 12]}, None, r"scaled_k \[1, 12\] is not ceil\(k · 128 / 768\), at least 1 .* \[1, 13\]"),
        ({"rounding": "half_up", "paper_k": [1, 25], "scaled_k": [1, 5]}, None, r"which is \[1, 4\]"),
        ({"scaled_k": [1]}, None, "differ in length"),
        ({}, [{"k": 1}, {"k": 75}], r"k \[13\] not in tables.table5.batches"),
    ],
)
def test_k_scaling_that_does_not_follow_the_rule_fails(over, batches, match):
    cfg = _scaled_config(**over)
    if batches is not None:
        cfg["tables"]["table5"]["batches"] = batches
    with pytest.raises(ValueError, match=match):
        table5_k_scaling(cfg)


def test_k_scaling_fails_when_the_width_changes_under_it():
    cfg = _scaled_config()
    cfg["models"]["bart"]["d_model"] = 256  # e.g. an overlay widening the model without its own rule
    with pytest.raises(ValueError, match=r"which is \[1, 25\]"):
        table5_k_scaling(cfg)


def test_a_table5_editor_trains_at_its_own_grid_entry_or_the_default():
    cfg = _scaled_config()
    # mend-k13 has no train_lr entry: it keeps the configured default rate, not another k's.
    assert train_lr_key(cfg, "zsre", "bart", "mend-k13") is None
    k13 = resolve_experiment(cfg, "zsre", "bart", "mend-k13")
    assert k13["train"]["lr"] == 0.5 and k13["train"]["edits_per_step"] == 13 and k13["eval"]["k"] == 13
    cfg["train_lr"]["zsre/bart/mend-k13"] = 0.125
    assert train_lr_key(cfg, "zsre", "bart", "mend-k13") == "zsre/bart/mend-k13"
    assert resolve_experiment(cfg, "zsre", "bart", "mend-k13")["train"]["lr"] == 0.125


def test_the_tiny_profile_declares_its_width_rule_and_the_scaled_batches_follow_the_caps_rule():
    cfg = yaml.safe_load((ROOT / "config" / "tiny.yaml").read_text())
    scaling = table5_k_scaling(cfg)
    assert scaling is not None and scaling.pairs == {1: 1, 5: 1, 25: 5, 75: 13, 125: 21}
    batches = {b["k"]: b for b in cfg["tables"]["table5"]["batches"]}
    paper_ks = set(scaling.paper_k)
    for k, b in batches.items():
        # Every k has grid cells and a choice of its own (config/lr_grid/tiny.csv; test_lr_grid.py).
        if k in paper_ks or k == 1:
            continue
        # A scaled k: caps log-linear in k between the neighbouring paper-k entries (steps, val_every), rounded;
        # patience 3 × val_every as in every entry.
        above = min(p for p in paper_ks if p > k)
        below = max(p for p in paper_ks if p < k and p > 1)
        t = math.log(k / below) / math.log(above / below)
        lo, hi = batches[below]["train"], batches[above]["train"]
        for key in ("steps", "val_every"):
            assert b["train"][key] == round(lo[key] * (hi[key] / lo[key]) ** t), (k, key)
        assert b["train"]["patience"] == 3 * b["train"]["val_every"]
        assert b["train"]["n_loc"] == lo["n_loc"] == hi["n_loc"]
    assert all(b["train"]["patience"] == 3 * b["train"]["val_every"] for k, b in batches.items() if k > 1)
