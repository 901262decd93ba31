"""config/tiny-deep.yaml (the BART depth study) changes the tiny profile only in its name, its paths, BART's depth
and edited blocks, and its grid's and study's scope; its learned editors train at the choices its own grid made by
the tiny profile's rule. The workflow plumbing it uses (`lr_grid.editors`, `studies`) is planned on the micro
config."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import load_config_file, tiny_with
from test_workflow import _job_counts, _snakemake, _workdir

from mendrepro.checks import check_config, load_schema
from mendrepro.config import ModelSpec
from mendrepro.models import build_model, edited_parameter_names
from mendrepro.report import lr_grid

ROOT = Path(__file__).resolve().parents[1]
OVERLAY = "tiny-deep.yaml"
ABLATIONS = ["no_sharing", "no_norm", "no_id_init", "only_u", "only_delta", "only_smaller"]
STUDY_KEYS = (
    ["zsre/bart/enn", "zsre/bart/ke", "zsre/bart/mend"]
    + [f"zsre/bart/mend-{a}" for a in ABLATIONS]
    + ["wikitext/gpt2/enn", "wikitext/gpt2/ke", "wikitext/gpt2/mend"]
)
STUDIES = {
    "depth_table4": {
        "table": "table4",
        "experiments": [{"task": "zsre", "model": "bart"}, {"task": "wikitext", "model": "gpt2"}],
    },
    "depth_table6": {"table": "table6", "experiments": [{"task": "zsre", "model": "bart"}]},
}


def test_the_overlay_sets_only_the_profile_paths_depth_and_scope():
    overlay = load_config_file(OVERLAY)
    assert set(overlay) <= {"profile", "data", "models", "lr_grid", "studies", "train_lr", "train_c_edit"}
    assert set(overlay["models"]) == {"bart", "gpt2"}
    assert all(set(spec) == {"n_layers", "edit_params"} for spec in overlay["models"].values())
    assert overlay["lr_grid"] == {"editors": STUDY_KEYS}
    assert overlay["studies"] == STUDIES
    # Only the study's editors have choices of their own; every other editor keeps the tiny profile's.
    for mapping in ("train_lr", "train_c_edit"):
        assert set(overlay.get(mapping, {})) <= set(STUDY_KEYS)


def test_everything_but_the_depth_is_the_tiny_profile():
    tiny, deep = load_config_file("tiny.yaml"), tiny_with(OVERLAY)
    assert deep["profile"] == "tiny-deep"
    assert deep["data"] == {k: v.replace("results/tiny/", "results/tiny-deep/") for k, v in tiny["data"].items()}
    depth = {"n_layers", "edit_params"}
    for name in ("bart", "gpt2"):
        assert {k: v for k, v in deep["models"][name].items() if k not in depth} == {
            k: v for k, v in tiny["models"][name].items() if k not in depth
        }
    assert {m: s for m, s in deep["models"].items() if m not in ("bart", "gpt2")} == {
        m: s for m, s in tiny["models"].items() if m not in ("bart", "gpt2")
    }
    assert deep["lr_grid"].pop("editors") == STUDY_KEYS
    assert deep["lr_grid"] == tiny["lr_grid"]
    rest = ("profile", "data", "models", "lr_grid", "studies", "train_lr", "train_c_edit")
    assert {k: v for k, v in deep.items() if k not in rest} == {k: v for k, v in tiny.items() if k not in rest}
    for mapping in ("train_lr", "train_c_edit"):
        assert {k: v for k, v in deep[mapping].items() if k not in STUDY_KEYS} == {
            k: v for k, v in tiny[mapping].items() if k not in STUDY_KEYS
        }


def _edited_blocks(cfg: dict, name: str, tok) -> dict[str, set[int]]:
    """Which blocks of each stack of the config's model ``name`` its edit_params select, on the model it builds."""
    spec = cfg["models"][name]
    sizes = {k: spec[k] for k in ("d_model", "n_layers", "n_heads", "d_ffn", "max_len")}
    model = build_model(
        ModelSpec(name=name, arch=spec["arch"], edit_params=tuple(spec["edit_params"]), **sizes), tok, 0
    )
    blocks: dict[str, set[int]] = {}
    for param in edited_parameter_names(model, tuple(spec["edit_params"])):
        stack, index = re.search(r"(encoder|decoder|h)\.(?:layers\.)?(\d+)\.", param).groups()
        blocks.setdefault(stack, set()).add(int(index))
    return blocks


def test_the_deep_models_edit_the_real_models_blocks(tok):
    """BART-base has 6 blocks per stack and the release edits the MLPs of the last 2: the tiny BART has 2 and edits
    both, the deep one 4 and edits blocks 2 and 3. distilGPT-2 has 6 blocks and the release edits the last 3: the
    tiny GPT-2 has 4 and edits 3 of them, the deep one 6 and edits blocks 3, 4 and 5, as distilGPT-2."""
    tiny, deep = load_config_file("tiny.yaml"), tiny_with(OVERLAY)
    assert _edited_blocks(tiny, "bart", tok) == {"encoder": {0, 1}, "decoder": {0, 1}}
    assert _edited_blocks(deep, "bart", tok) == {"encoder": {2, 3}, "decoder": {2, 3}}
    assert deep["models"]["bart"]["n_layers"] == 4
    assert _edited_blocks(tiny, "gpt2", tok) == {"h": {1, 2, 3}}
    assert _edited_blocks(deep, "gpt2", tok) == {"h": {3, 4, 5}}
    assert deep["models"]["gpt2"]["n_layers"] == 6


def test_the_merged_config_passes_the_workflow_checks():
    check_config(tiny_with(OVERLAY), load_schema(ROOT / "config" / "schema.yaml"))


def test_the_study_choices_are_its_own_grids_by_the_rule():
    """Once its grid has run (config/lr_grid/tiny-deep.csv), the overlay's train_lr and train_c_edit are that grid's
    choices, which the tiny profile's rule re-applied at its tolerance picks again."""
    grid_csv = ROOT / "config/lr_grid/tiny-deep.csv"
    overlay = load_config_file(OVERLAY)
    if not grid_csv.exists():
        assert "train_lr" not in overlay and "train_c_edit" not in overlay
        pytest.skip("the study's grid has not been committed")
    grid, legacy = lr_grid.read_grid(grid_csv)
    assert not legacy and sorted(set(grid["key"])) == sorted(STUDY_KEYS)
    chosen = grid[grid["chosen"]]
    assert {k: float(v) for k, v in overlay["train_lr"].items()} == pytest.approx(
        dict(zip(chosen["key"], chosen["lr"], strict=True))
    )
    assert {k: float(v) for k, v in overlay["train_c_edit"].items()} == pytest.approx(
        dict(zip(chosen["key"], chosen["c_edit"], strict=True))
    )
    cfg = tiny_with(OVERLAY)
    again = lr_grid.select(
        grid.drop(columns=["chosen", "dd_allowed"]), lr_grid.Tolerance(**cfg["lr_grid"]["tolerance"])
    )
    want = grid.sort_values(["task", "model", "editor", "c_edit", "lr"]).reset_index(drop=True)
    assert again["chosen"].tolist() == want["chosen"].astype(bool).tolist()
    cells = {(float(lr), float(c)) for lr in cfg["lr_grid"]["lrs"] for c in cfg["lr_grid"]["c_edits"]}
    assert grid.groupby("key").size().eq(len(cells)).all()


def _micro_with(tmp_path: Path, **extra) -> Path:
    wd = _workdir(tmp_path, "tests/fixtures/micro.yaml")
    cfg = yaml.safe_load((wd / "run.yaml").read_text())
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key].update(value)
        else:
            cfg[key] = value
    (wd / "run.yaml").write_text(yaml.safe_dump(cfg))
    return wd


def test_a_grid_restricted_to_some_editors_plans_only_their_cells(tmp_path):
    wd = _micro_with(tmp_path, lr_grid={"editors": ["zsre/bart/mend"]})
    counts = _job_counts(_snakemake(wd, "-n", "--cores", "1", "lr_grid").stdout)
    cfg = yaml.safe_load((ROOT / "tests/fixtures/micro.yaml").read_text())
    assert counts["lr_grid_train"] == len(cfg["lr_grid"]["lrs"]) * len(cfg["lr_grid"]["c_edits"])


def test_a_grid_naming_an_editor_no_table_trains_fails_in_one_line(tmp_path):
    wd = _micro_with(tmp_path, lr_grid={"editors": ["zsre/bart/mend-k99"]})
    proc = _snakemake(wd, "-n", "--cores", "1", "lr_grid", check=False)
    assert proc.returncode != 0
    assert (
        "lr_grid.editors: ['zsre/bart/mend-k99'] name no learned editor of the configured tables"
        in proc.stdout + proc.stderr
    )


def test_a_study_renders_one_tables_columns_from_their_runs_only(tmp_path):
    wd = _micro_with(
        tmp_path, studies={"depth": {"table": "table4", "experiments": [{"task": "zsre", "model": "bart"}]}}
    )
    out = _snakemake(wd, "-n", "--cores", "1", "depth_study").stdout
    counts = _job_counts(out)
    cfg = yaml.safe_load((ROOT / "tests/fixtures/micro.yaml").read_text())
    assert counts["depth_study"] == 1
    assert counts["evaluate"] == len(cfg["tables"]["table4"]["editors"])
    assert "figures/micro/depth.md" in out and "figures/micro/depth_claims.md" in out
    block = out.split("rule depth_study")[1]
    inputs = next(line for line in block.splitlines() if line.strip().startswith("input:"))
    assert "results/micro/seed0/zsre/bart/mend/eval_k1/metrics.json" in inputs and "fever" not in inputs
