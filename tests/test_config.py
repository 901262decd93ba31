"""Experiment resolution (config + task + model + editor -> experiment), typed editor options, the registry."""

from __future__ import annotations

import copy
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mendrepro.config import Experiment, base_model_experiment, check_editors, editor_entry, resolve_experiment
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
