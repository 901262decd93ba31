"""The model overlays change the tiny profile only in their name, their paths, one model's depth and edited blocks
or its width, and their grid's and studies' scope; their learned editors train at the choices their own grid made
by the tiny profile's rule. config/tiny-shallow.yaml keeps the BART the tiny profile had before it took BART-base's
edited share (2+2 blocks, both edited); config/tiny-deep.yaml gives GPT-2 distilGPT-2's depth (6 blocks, the last 3
edited); config/tiny-wide-gpt2.yaml makes GPT-2 twice as wide. The workflow plumbing they use (`lr_grid.editors`,
`studies`) is planned on the micro config."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import FORMER_PRETRAIN_RULE, load_config_file, tiny_with
from test_workflow import _job_counts, _snakemake, _workdir

from mendrepro.checks import check_config, load_schema
from mendrepro.config import ModelSpec
from mendrepro.models import build_model, edited_parameter_names
from mendrepro.report import lr_grid

ROOT = Path(__file__).resolve().parents[1]
ABLATIONS = ["no_sharing", "no_norm", "no_id_init", "only_u", "only_delta", "only_smaller"]
ZSRE_BART = sorted(
    ["zsre/bart/enn", "zsre/bart/ke", "zsre/bart/mend"]
    + [f"zsre/bart/mend-{a}" for a in ABLATIONS]
    + [f"zsre/bart/{e}-k{k}" for e in ("enn", "mend") for k in (5, 13, 21, 25, 75, 125)]
)
WIKITEXT_GPT2 = ["wikitext/gpt2/enn", "wikitext/gpt2/ke", "wikitext/gpt2/mend"]
# overlay: (model it changes, the keys it sets on that model, its edited blocks per stack there, the grid's editors,
# its studies)
DEPTH = {"n_layers", "edit_params"}
OVERLAYS = {
    "tiny-shallow": (
        "bart",
        DEPTH,
        {"encoder": {0, 1}, "decoder": {0, 1}},
        ZSRE_BART,
        {
            "shallow_table4": {"table": "table4", "experiments": [{"task": "zsre", "model": "bart"}]},
            "shallow_table6": {"table": "table6", "experiments": [{"task": "zsre", "model": "bart"}]},
        },
    ),
    "tiny-deep": (
        "gpt2",
        DEPTH,
        {"h": {3, 4, 5}},
        WIKITEXT_GPT2,
        {"depth_table4": {"table": "table4", "experiments": [{"task": "wikitext", "model": "gpt2"}]}},
    ),
    "tiny-wide-gpt2": (
        "gpt2",
        {"d_model", "d_ffn"},
        {"h": {1, 2, 3}},
        ["wikitext/gpt2/mend"],
        {},
    ),
}
# The overlays that pre-train their model otherwise: the shallow BART's grid was run before the tiny profile trained its
# base models a fixed number of steps and keeps that rule; the wide GPT-2 trains to the tiny GPT-2's held-out
# perplexity (300 steps, config/tiny-wide-gpt2.yaml).
PRETRAIN = {"tiny-shallow": FORMER_PRETRAIN_RULE, "tiny-wide-gpt2": {"steps": 300}}
# The GPT-2 studies keep the Wikitext corpus they were run on, the 300-person world's (config/tiny-few-passages.yaml).
SMALL_WIKI_WORLD = {"wikitext": {"n_subjects": 300}}
WORLD = {"tiny-deep": SMALL_WIKI_WORLD, "tiny-wide-gpt2": SMALL_WIKI_WORLD}
EACH = pytest.mark.parametrize("name", sorted(OVERLAYS))


@EACH
def test_the_overlay_sets_only_the_profile_paths_model_and_scope(name):
    model, changed, _, keys, studies = OVERLAYS[name]
    overlay = load_config_file(f"{name}.yaml")
    assert set(overlay) <= {"profile", "data", "world", "models", "lr_grid", "studies", "train_lr", "train_c_edit"}
    assert overlay.get("world") == WORLD.get(name)
    assert set(overlay["models"]) == {model}
    assert set(overlay["models"][model]) == changed | ({"pretrain"} if name in PRETRAIN else set())
    assert overlay["models"][model].get("pretrain") == PRETRAIN.get(name)
    assert sorted(overlay["lr_grid"]["editors"]) == sorted(keys) and set(overlay["lr_grid"]) == {"editors"}
    assert overlay.get("studies", {}) == studies
    # Only the study's editors have choices of their own; every other editor keeps the tiny profile's.
    for mapping in ("train_lr", "train_c_edit"):
        assert set(overlay.get(mapping, {})) <= set(keys)


@EACH
def test_everything_but_the_model_change_is_the_tiny_profile(name):
    model, changed, _, keys, _ = OVERLAYS[name]
    tiny, other = load_config_file("tiny.yaml"), tiny_with(f"{name}.yaml")
    assert other["profile"] == name
    assert other["data"] == {k: v.replace("results/tiny/", f"results/{name}/") for k, v in tiny["data"].items()}
    own = changed | {"pretrain"}
    assert other["models"][model]["pretrain"] == {**tiny["models"][model]["pretrain"], **PRETRAIN.get(name, {})}
    assert {k: v for k, v in other["models"][model].items() if k not in own} == {
        k: v for k, v in tiny["models"][model].items() if k not in own
    }
    assert {m: s for m, s in other["models"].items() if m != model} == {
        m: s for m, s in tiny["models"].items() if m != model
    }
    assert sorted(other["lr_grid"].pop("editors")) == sorted(keys)
    assert other["lr_grid"] == tiny["lr_grid"]
    assert other["world"] == {**tiny["world"], **WORLD.get(name, {})}
    rest = ("profile", "data", "world", "models", "lr_grid", "studies", "train_lr", "train_c_edit")
    assert {k: v for k, v in other.items() if k not in rest} == {k: v for k, v in tiny.items() if k not in rest}
    for mapping in ("train_lr", "train_c_edit"):
        assert {k: v for k, v in other[mapping].items() if k not in keys} == {
            k: v for k, v in tiny[mapping].items() if k not in keys
        }


def _edited(cfg: dict, name: str, tok):
    """The config's model ``name``, built, and the names of the parameters its edit_params select."""
    spec = cfg["models"][name]
    sizes = {k: spec[k] for k in ("d_model", "n_layers", "n_heads", "d_ffn", "max_len")}
    model = build_model(
        ModelSpec(name=name, arch=spec["arch"], edit_params=tuple(spec["edit_params"]), **sizes), tok, 0
    )
    return model, edited_parameter_names(model, tuple(spec["edit_params"]))


def _edited_blocks(cfg: dict, name: str, tok) -> dict[str, set[int]]:
    """Which blocks of each stack of the config's model ``name`` its edit_params select, on the model it builds."""
    blocks: dict[str, set[int]] = {}
    for param in _edited(cfg, name, tok)[1]:
        stack, index = re.search(r"(encoder|decoder|h)\.(?:layers\.)?(\d+)\.", param).groups()
        blocks.setdefault(stack, set()).add(int(index))
    return blocks


def test_the_tiny_models_edit_the_real_models_share_of_blocks(tok):
    """BART-base has 6 blocks per stack and the release edits the MLPs of the last 2: the tiny BART has 4 and edits
    blocks 2 and 3, half of its blocks (2 of 2 would edit the whole model). distilGPT-2 has 6 blocks
    and the release edits the last 3: the tiny GPT-2 has 4 and edits 3 of them."""
    tiny = load_config_file("tiny.yaml")
    assert tiny["models"]["bart"]["n_layers"] == 4
    assert _edited_blocks(tiny, "bart", tok) == {"encoder": {2, 3}, "decoder": {2, 3}}
    assert _edited_blocks(tiny, "gpt2", tok) == {"h": {1, 2, 3}}


@EACH
def test_the_overlays_models_edit_their_blocks(name, tok):
    model, _, blocks, _, _ = OVERLAYS[name]
    cfg = tiny_with(f"{name}.yaml")
    assert _edited_blocks(cfg, model, tok) == blocks
    assert cfg["models"][model]["n_layers"] == max(max(b) for b in blocks.values()) + 1


def test_the_wide_gpt2_doubles_the_width_and_keeps_gpt2s_mlp_ratio(tok):
    """The width overlay's GPT-2 is twice the tiny one's width, with distilGPT-2's MLP ratio (3072 = 4 x 768) and
    heads of 64 dimensions; its edited Conv1D matrices (stored (in, out)) are 256 x 1024 and 1024 x 256."""
    cfg = tiny_with("tiny-wide-gpt2.yaml")
    tiny, wide = load_config_file("tiny.yaml")["models"]["gpt2"], cfg["models"]["gpt2"]
    assert wide["d_model"] == 2 * tiny["d_model"] and wide["d_ffn"] == 4 * wide["d_model"]
    assert wide["d_model"] // wide["n_heads"] == 64
    model, names = _edited(cfg, "gpt2", tok)
    params = dict(model.named_parameters())
    shapes = {tuple(params[n].shape) for n in names}
    assert shapes == {(256, 1024), (1024, 256)}


@EACH
def test_the_merged_config_passes_the_workflow_checks(name):
    check_config(tiny_with(f"{name}.yaml"), load_schema(ROOT / "config" / "schema.yaml"))


# Every overlay with a grid of its own: the editors it covers (the model overlays', the edit-difficulty study's and
# the Wikitext training-set study's).
GRIDS = {name: spec[3] for name, spec in OVERLAYS.items()} | {
    "tiny-hard-edits": ["wikitext/gpt2/mend"],
    "tiny-few-passages": [f"wikitext/{model}/mend" for model in ("gpt2", "gptneo", "gptj")],
}


@pytest.mark.parametrize("name", sorted(GRIDS))
def test_the_study_choices_are_its_own_grids_by_the_rule(name):
    """The overlay's train_lr and train_c_edit are its committed grid's choices (config/lr_grid/<name>.csv), which
    the tiny profile's rule re-applied at its tolerance picks again."""
    keys = GRIDS[name]
    overlay = load_config_file(f"{name}.yaml")
    grid, legacy = lr_grid.read_grid(ROOT / f"config/lr_grid/{name}.csv")
    assert not legacy and sorted(set(grid["key"])) == sorted(keys)
    chosen = grid[grid["chosen"]]
    assert {k: float(v) for k, v in overlay["train_lr"].items()} == pytest.approx(
        dict(zip(chosen["key"], chosen["lr"], strict=True))
    )
    assert {k: float(v) for k, v in overlay["train_c_edit"].items()} == pytest.approx(
        dict(zip(chosen["key"], chosen["c_edit"], strict=True))
    )
    cfg = tiny_with(f"{name}.yaml")
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


def _documented_commands(overlay: Path) -> list[list[str]]:
    """The `snakemake ...` commands of an overlay's header comment, continuation lines joined and braces expanded."""
    lines = [line.removeprefix("#").strip() for line in overlay.read_text().splitlines() if line.startswith("#   ")]
    commands, current = [], ""
    for line in lines:
        current = f"{current} {line}".strip()
        if current.endswith("\\"):
            current = current.removesuffix("\\").strip()
            continue
        commands.append(current)
        current = ""
    words = []
    for command in commands:
        argv = []
        for word in command.split():
            argv += _expand_braces(word)
        words.append(argv)
    return words


def _expand_braces(word: str) -> list[str]:
    """A word's brace expansion as bash does it, every group in turn (`a/{b,c}/{d,e}` gives four words)."""
    braces = re.search(r"\{([^{}]*,[^{}]*)\}", word)
    if not braces:
        return [word]
    head, tail = word[: braces.start()], word[braces.end() :]
    return [w for x in braces[1].split(",") for w in _expand_braces(f"{head}{x}{tail}")]


def plan_documented_commands(overlay: Path, tmp_path: Path) -> list[dict[str, int]]:
    """Each documented command of an overlay, dry-run as written on a fresh copy of the workflow: its job counts."""
    for item in ("Snakefile", "workflow", "profiles", "config", "envs"):
        (shutil.copytree if (ROOT / item).is_dir() else shutil.copy)(ROOT / item, tmp_path / item)
    planned = []
    for argv in _documented_commands(overlay):
        assert argv[0] == "snakemake"
        proc = subprocess.run(
            [sys.executable, "-m", "snakemake", "-n", *argv[1:]], cwd=tmp_path, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        planned.append(_job_counts(proc.stdout))
    return planned


def test_the_width_studys_documented_commands_plan_its_grid_and_its_evaluations(tmp_path):
    """The two commands of config/tiny-wide-gpt2.yaml's header, as written there (targets before --configfile),
    plan MEND's 12 grid cells, then MEND's training and the three evaluations, on a fresh copy of the workflow."""
    grid, evaluation = plan_documented_commands(ROOT / "config/tiny-wide-gpt2.yaml", tmp_path)
    assert grid["lr_grid_train"] == 12 and grid["lr_grid"] == 1
    assert evaluation["train_editor"] == 1 and evaluation["evaluate"] == 3 and "lr_grid_train" not in evaluation


@pytest.mark.parametrize(
    ("word", "words"),
    [
        ("results/a.json", ["results/a.json"]),
        ("r/{b,c}/x", ["r/b/x", "r/c/x"]),
        ("r/{b,c}/{d,e}/x", ["r/b/d/x", "r/b/e/x", "r/c/d/x", "r/c/e/x"]),
        ("r/{b}/x", ["r/{b}/x"]),  # no comma: bash leaves it as it is
    ],
)
def test_documented_words_expand_their_braces_as_bash_does(word, words):
    assert _expand_braces(word) == words
