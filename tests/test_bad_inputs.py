"""Issue 26: every bad input a new user can give gets one line naming the field or the file:line, with the exact
text below; nothing is silently accepted, nothing ends in a traceback.

One table per way in (config values, `--config` overrides, config files, data files, the Python API, the `edit`
command), each row a bad input and its exact line. ``{d}`` in a line stands for the case's scratch directory.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from snakemake.cli import parse_config

from mendrepro import cli
from mendrepro.api import EditError, load_editor
from mendrepro.checks import ConfigError, apply_overrides, check_config, load_schema, read_config_file
from mendrepro.config import base_model_experiment
from mendrepro.data.inputs import InputError, check_format
from mendrepro.manifest import MANIFEST, ManifestError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = load_schema(ROOT / "config/schema.yaml")
MICRO = yaml.safe_load((ROOT / "tests/fixtures/micro.yaml").read_text())


def _one_line(text: str) -> str:
    assert "\n" not in text.strip() and "Traceback" not in text, text
    return text.strip()


# ------------------------------------------------------------------------------------------------------------------
# Config values: in a config file, and the same value as a nested `--config` override (Snakemake hands nested
# values over as strings; the Snakefile types them first), with the same line. (key path, bad value, line.)

RANGE = "is less than the minimum of"
VALUE_CASES = [
    ("train.steps", -5, f"train.steps: -5 {RANGE} 1"),
    ("train.steps", 0, f"train.steps: 0 {RANGE} 1"),
    ("train.steps", "many", "train.steps: 'many' is not of type 'integer'"),
    ("train.lr", 0, "train.lr: 0 is less than or equal to the minimum of 0"),
    ("train.lr", -0.1, "train.lr: -0.1 is less than or equal to the minimum of 0"),
    ("train.accumulate", 0, f"train.accumulate: 0 {RANGE} 1"),
    ("train.edits_per_step", 0, f"train.edits_per_step: 0 {RANGE} 1"),
    ("train.grad_clip", 0, "train.grad_clip: 0 is less than or equal to the minimum of 0"),
    ("train.c_edit", -1, f"train.c_edit: -1 {RANGE} 0"),
    ("train.c_loc", -1, f"train.c_loc: -1 {RANGE} 0"),
    ("train.n_loc", 0, f"train.n_loc: 0 {RANGE} 1"),
    ("train.val_every", 0, f"train.val_every: 0 {RANGE} 1"),
    ("train.n_val", 0, f"train.n_val: 0 {RANGE} 1"),
    ("train.n_val_loc", 0, f"train.n_val_loc: 0 {RANGE} 1"),
    ("train.patience", 0, f"train.patience: 0 {RANGE} 1"),
    ("train.seed", 1.5, "train.seed: 1.5 is not of type 'integer'"),
    ("train.sampling", "random", "train.sampling: 'random' is not one of ['independent', 'epoch']"),
    (
        "train.stpes",
        5,
        "train: unknown key 'stpes' (did you mean 'steps'?); keys: steps, lr, accumulate, edits_per_step, "
        "grad_clip, c_edit, c_loc, n_loc, val_every, n_val, n_val_loc, patience, seed, sampling, checkpoint_budget",
    ),  # fmt: skip
    ("eval.k", 0, f"eval.k: 0 {RANGE} 1"),
    (
        "eval.k",
        1000,
        "tables.table3.experiments[0] editor 'ft' (wikitext/gptneo): k = 1000 edits at once is more "
        "than eval.n_edits = 4; n_edits >= k",
    ),  # fmt: skip
    ("eval.n_edits", 0, f"eval.n_edits: 0 {RANGE} 1"),
    ("eval.n_edits", "many", "eval.n_edits: 'many' is not of type 'integer'"),
    ("eval.n_loc", 0, f"eval.n_loc: 0 {RANGE} 1"),
    ("world.n_subjects", 1, f"world.n_subjects: 1 {RANGE} 2"),
    ("world.n_objects_per_type", 7, f"world.n_objects_per_type: 7 {RANGE} 8"),
    ("world.n_dev_facts", 0, f"world.n_dev_facts: 0 {RANGE} 1"),
    ("world.n_wiki_valid", 0, f"world.n_wiki_valid: 0 {RANGE} 1"),
    (
        "world.n_persons",
        3,
        "world: unknown key 'n_persons'; keys: seed, n_subjects, n_objects_per_type, n_dev_facts, n_wiki_valid, "
        "wikitext",
    ),  # fmt: skip
    ("world.wikitext.n_subjects", 1, f"world.wikitext.n_subjects: 1 {RANGE} 2"),
    (
        "world.wikitext.n_wiki_valid",
        40,
        "world.wikitext: WorldConfig.n_wiki_valid must be in [1, n_subjects), got 40",
    ),  # fmt: skip
    (
        "world.wikitext.n_subjects",
        60,
        "data.wiki_train: with world.wikitext the Wikitext corpus has a world of its own, so its files must lie "
        "outside the main world's folder results/micro/world (e.g. results/micro/world-wikitext/wikitext/"
        "wiki.train.raw), got results/micro/world/wikitext/wiki.train.raw",
    ),  # fmt: skip
    ("tasks.zsre.n_heldout", 0, f"tasks.zsre.n_heldout: 0 {RANGE} 1"),
    (
        "tasks.zsre.n_heldout",
        10,
        "tasks.zsre.n_heldout = 10 leaves no evaluation edits: the dev split has 10 "
        "(world.n_dev_facts); n_heldout < 10",
    ),  # fmt: skip
    ("tasks.fever.n_heldout", -1, f"tasks.fever.n_heldout: -1 {RANGE} 1"),
    ("tasks.wikitext.n_sample_tokens", 0, f"tasks.wikitext.n_sample_tokens: 0 {RANGE} 1"),
    (
        "tasks.wikitext.sample_temperature",
        0,
        "tasks.wikitext.sample_temperature: 0 is less than or equal to the minimum of 0",
    ),
    ("tasks.wikitext.edit_prefix_tokens", 0, f"tasks.wikitext.edit_prefix_tokens: 0 {RANGE} 1"),
    ("tasks.wikitext.edit_min_words", -1, f"tasks.wikitext.edit_min_words: -1 {RANGE} 0"),
    ("tasks.wikitext.loc_min_words", -1, f"tasks.wikitext.loc_min_words: -1 {RANGE} 0"),
    ("tasks.zsre.train_locality", "wiki", "tasks.zsre.train_locality: 'wiki' is not one of ['nq', 'zsre']"),
    (
        "tasks.fever.fever_flip_rule",
        "never",
        "tasks.fever.fever_flip_rule: 'never' is not one of ['always', 'release']",
    ),  # fmt: skip
    ("models.bart.d_model", 0, f"models.bart.d_model: 0 {RANGE} 1"),
    ("models.bart.n_layers", 0, f"models.bart.n_layers: 0 {RANGE} 1"),
    ("models.bart.n_heads", 0, f"models.bart.n_heads: 0 {RANGE} 1"),
    ("models.bart.d_ffn", 0, f"models.bart.d_ffn: 0 {RANGE} 1"),
    ("models.bart.max_len", 4, f"models.bart.max_len: 4 {RANGE} 8"),
    ("models.bart.pretrain.steps", 0, f"models.bart.pretrain.steps: 0 {RANGE} 1"),
    ("models.bart.pretrain.lr", 0, "models.bart.pretrain.lr: 0 is less than or equal to the minimum of 0"),
    ("models.bart.pretrain.batch_size", 0, f"models.bart.pretrain.batch_size: 0 {RANGE} 1"),
    ("models.bart.pretrain.eval_every", 0, f"models.bart.pretrain.eval_every: 0 {RANGE} 1"),
    ("models.bart.pretrain.warmup", -1, f"models.bart.pretrain.warmup: -1 {RANGE} 0"),
    (
        "models.bart.arch",
        "bert2",
        "models.bart.arch: 'bert2' is not one of ['bart', 't5', 'bert', 'gpt2', 'gptneo', 'gptj']",
    ),  # fmt: skip
    (
        "models.bart.edit_params",
        [r"model\.(encoder"],
        r"models.bart.edit_params[0]: 'model\\.(encoder' is not a "
        "regular expression (missing ), unterminated subpattern at position 7); entries are Python regular "
        "expressions of parameter names",
    ),  # fmt: skip
    (
        "models.bart.edit_params",
        [r"layers\.[0-"],
        r"models.bart.edit_params[0]: 'layers\\.[0-' is not a regular "
        "expression (unterminated character set at position 8); entries are Python regular expressions of parameter "
        "names",
    ),  # fmt: skip
    ("models.gptneo.train.steps", 0, f"models.gptneo.train.steps: 0 {RANGE} 1"),
    ("editors.mend.train.steps", -3, f"editors.mend.train.steps: -3 {RANGE} 1"),
    ("editors.mend.eval.k", 0, f"editors.mend.eval.k: 0 {RANGE} 1"),
    (
        "editors.mend.options.rank",
        "eight",
        "editor 'mend' (kind mend): option 'rank' = 'eight' is not allowed; 'rank' takes int >= 1",
    ),  # fmt: skip
    ("tables.table5.n_edits", 0, f"tables.table5.n_edits: 0 {RANGE} 1"),
    ("tables.table5.batches[1].train.steps", -1, f"tables.table5.batches[1].train.steps: -1 {RANGE} 1"),
    ("tables.table5.batches[1].k", 0, f"tables.table5.batches[1].k: 0 {RANGE} 1"),
    ("seeds", [-1], f"seeds[0]: -1 {RANGE} 0"),
    ("seeds", [], "seeds: [] should be non-empty"),
    ("lr_grid", {"lrs": [0.1], "steps": 3}, "lr_grid.lrs: [0.1] is too short"),
    ("lr_grid", {"lrs": [0.1, 0.2], "steps": 0}, f"lr_grid.steps: 0 {RANGE} 1"),
    # The release's edit weight must stay on the grid.
    (
        "lr_grid",
        {"lrs": [0.1, 0.2], "c_edits": [0.3, 1.0], "steps": 3},
        "lr_grid.c_edits: [0.3, 1.0] does not contain items matching the given schema",
    ),
    ("train_c_edit", {"zsre/bart/mend": 0}, "train_c_edit.zsre/bart/mend: 0 is less than or equal to the minimum of 0"),
    ("resources", {"train": {"gpu": -1}}, f"resources.train.gpu: -1 {RANGE} 0"),
    ("resources", {"train": {"mem_mb": 0}}, f"resources.train.mem_mb: 0 {RANGE} 1"),
    ("resources", {"evaluate": {"runtime": 0}}, f"resources.evaluate.runtime: 0 {RANGE} 1"),
    (
        "data.zsre_devv",
        "x.jsonl",
        "data: unknown key 'zsre_devv' (did you mean 'zsre_dev'?); keys: zsre_train, "
        "zsre_dev, nq_train, nq_dev, fever_train, fever_dev, wiki_train, wiki_dev, self_sample_train, "
        "self_sample_dev, owt_train, owt_dev, placed, mirror",
    ),  # fmt: skip
    ("data.zsre_dev", 5, "data.zsre_dev: 5 is not of type 'string'"),
    ("profile", "Tiny Run", "profile: 'Tiny Run' does not match '^[a-z0-9_-]+$'"),
]


def _set(cfg: dict, path: str, value) -> None:
    keys = [int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")]
    node = cfg
    for k in keys[:-1]:
        node = node.setdefault(k, {}) if isinstance(node, dict) else node[k]
    node[keys[-1]] = value


def _override(path: str, value) -> str:
    """The `--config` entry that sets ``path`` (no list indices) to ``value``, in Snakemake's syntax."""
    head, *rest = path.split(".")
    text = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    text = text.removesuffix("\n...").removesuffix("...").strip()
    for key in reversed(rest):
        text = f"{{{key}: {text}}}"
    return f"{head}={text}"


def _config_error(cfg: dict) -> str:
    with pytest.raises(ConfigError) as err:
        check_config(cfg, SCHEMA)
    return _one_line(str(err.value))


@pytest.mark.parametrize("path,value,line", VALUE_CASES, ids=[f"{c[0]}={c[1]!r}" for c in VALUE_CASES])
def test_a_bad_config_value_is_one_line_in_a_file(path, value, line):
    cfg = copy.deepcopy(MICRO)
    _set(cfg, path, value)
    assert _config_error(cfg) == line


# On the command line a path is text whatever it looks like (`data={zsre_dev: 5}` names the file "5").
OVERRIDE_CASES = [c for c in VALUE_CASES if "[" not in c[0] and not isinstance(c[1], float) and c[0] != "data.zsre_dev"]


@pytest.mark.parametrize("path,value,line", OVERRIDE_CASES, ids=[_override(c[0], c[1]) for c in OVERRIDE_CASES])
def test_the_same_value_as_a_config_override_gives_the_same_line(path, value, line):
    cfg = copy.deepcopy(MICRO)
    overrides = parse_config([_override(path, value)])  # as Snakemake reads --config: nested values are strings
    from snakemake.utils import update_config

    update_config(cfg, overrides)
    apply_overrides(cfg, overrides, SCHEMA)  # what the Snakefile does before checking
    assert _config_error(cfg) == line


def test_nested_overrides_of_every_number_are_typed():
    """`--config 'train={steps: 500}'` and the like pass where a config file's 500 passes."""
    cfg = copy.deepcopy(MICRO)
    entries = ["train={steps: 500, lr: 0.01, c_loc: 0}", "eval={k: 2, n_edits: 4}", "seeds=[1]",
               "models={bart: {pretrain: {target_acc: 1.5}}}", "data={mirror: null}"]  # fmt: skip
    overrides = parse_config(entries)
    from snakemake.utils import update_config

    update_config(cfg, overrides)
    apply_overrides(cfg, overrides, SCHEMA)
    check_config(cfg, SCHEMA)
    assert (cfg["train"]["steps"], cfg["train"]["lr"], cfg["train"]["c_loc"]) == (500, 0.01, 0)
    assert cfg["eval"]["k"] == 2 and cfg["seeds"] == [1] and cfg["data"]["mirror"] is None
    assert cfg["models"]["bart"]["pretrain"]["target_acc"] == 1.5 and cfg["profile"] == "micro"


# ------------------------------------------------------------------------------------------------------------------
# Through `snakemake -n` on the micro config: the Snakefile types `--config` values and checks everything at DAG
# start. (case, arguments, the line; None: the plan succeeds). Run side by side, on one copy of the workflow.

DAG_CASES = [
    ("nested override of a number", ["--config", "train={steps: 500, lr: 0.01}"], None),
    ("nested override out of range", ["--config", "train={steps: -5}"], f"train.steps: -5 {RANGE} 1"),
    ("nested k 0", ["--config", "eval={k: 0}"], f"eval.k: 0 {RANGE} 1"),
    ("seeds=[-1]", ["--config", "seeds=[-1]"], f"seeds[0]: -1 {RANGE} 0"),
    ("misspelt data key", ["--config", "data={zsre_devv: x.jsonl}"], "data: unknown key 'zsre_devv' (did you mean "
     "'zsre_dev'?); keys: zsre_train, zsre_dev, nq_train, nq_dev, fever_train, fever_dev, wiki_train, wiki_dev, "
     "self_sample_train, self_sample_dev, owt_train, owt_dev, placed, mirror"),
    ("invalid edit_params regex", ["--config", r"models={bart: {edit_params: ['model\.(encoder']}}"],
     r"models.bart.edit_params[0]: 'model\\.(encoder' is not a regular expression (missing ), unterminated "
     "subpattern at position 7); entries are Python regular expressions of parameter names"),
    ("duplicate key in a config file", ["--configfile", "run.yaml", "dup.yaml"],
     "{wd}/dup.yaml:2:1: YAML error: duplicate key 'profile' (first on line 1)"),
]  # fmt: skip


@pytest.fixture(scope="module")
def dag_runs(tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    from concurrent.futures import ThreadPoolExecutor

    wd = tmp_path_factory.mktemp("dag")
    for item in ("Snakefile", "workflow", "profiles", "config", "envs", "src"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, wd / item)
    (wd / "run.yaml").write_text(yaml.safe_dump(MICRO))
    (wd / "dup.yaml").write_text("profile: micro\nprofile: micro2\n")

    def dry_run(case):
        name, args, _ = case
        if args[0] == "--config":
            args = ["--configfile", "run.yaml", *args]
        cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--nolock", *args]
        return name, (wd, subprocess.run(cmd, cwd=wd, capture_output=True, text=True))

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(pool.map(dry_run, DAG_CASES))


@pytest.mark.parametrize("case,args,line", DAG_CASES, ids=[c[0] for c in DAG_CASES])
def test_snakemake_dry_run_gives_the_one_line(dag_runs, case, args, line):
    wd, proc = dag_runs[case]
    if line is None:
        assert proc.returncode == 0, proc.stderr[-2000:]
        return
    out = proc.stderr + proc.stdout
    assert proc.returncode != 0 and "Traceback" not in out
    # Snakemake's header ("Using workflow specific profile ...", "WorkflowError in file ...:"), then the line.
    lines = [line for line in out.splitlines() if not line.startswith("Using workflow specific profile")]
    assert line.format(wd=wd) in lines[:4], lines


# ------------------------------------------------------------------------------------------------------------------
# Config files (what `python -m mendrepro.checks` and the Snakefile read): (case, file name, bytes, line)

FILE_CASES = [
    ("YAML syntax error", "bad.yaml", b"profile: micro\n  seeds: [0\n",
     "{d}/bad.yaml:2:8: YAML error: mapping values are not allowed here"),
    ("unclosed bracket", "open.yaml", b"profile: micro\nseeds: [0\n",
     "{d}/open.yaml:3:1: YAML error: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence)"),
    ("tab indentation", "tab.yaml", b"train:\n\tsteps: 3\n",
     "{d}/tab.yaml:2:1: YAML error: found character '\\t' that cannot start any token (while scanning for the "
     "next token)"),
    ("duplicate key", "dup.yaml", b"profile: micro\nseeds: [0]\nprofile: tiny\n",
     "{d}/dup.yaml:3:1: YAML error: duplicate key 'profile' (first on line 1)"),
    ("duplicate nested key", "dup2.yaml", b"train:\n  steps: 3\n  lr: 0.1\n  steps: 5\n",
     "{d}/dup2.yaml:4:3: YAML error: duplicate key 'steps' (first on line 2)"),
    ("not UTF-8", "latin.yaml", b"profile: micro\nlauncher: caf\xe9\n",
     "{d}/latin.yaml:2:14: byte 0xe9 is not UTF-8; config files are UTF-8 text"),
    ("UTF-16", "utf16.yaml", "profile: micro\n".encode("utf-16"),
     "{d}/utf16.yaml:1:1: byte 0xff is not UTF-8; config files are UTF-8 text"),
    ("empty file", "empty.yaml", b"",
     "{d}/empty.yaml: empty config file; a config file is a mapping of keys (profile, seeds, ...)"),
    ("only comments", "comments.yaml", b"# nothing here\n",
     "{d}/comments.yaml: empty config file; a config file is a mapping of keys (profile, seeds, ...)"),
    ("top-level list", "list.yaml", b"- a\n- b\n",
     "{d}/list.yaml: a config file is a mapping of keys (profile, seeds, ...), got ['a', 'b']"),
    ("top-level scalar", "scalar.yaml", b"tiny\n",
     "{d}/scalar.yaml: a config file is a mapping of keys (profile, seeds, ...), got 'tiny'"),
    ("a directory", "confdir.yaml", "dir", "{d}/confdir.yaml: is a directory, not a config file"),
    ("missing", "absent.yaml", None, "{d}/absent.yaml: no such config file"),
    ("a target read as a config file", "table3.md", None,
     "{d}/table3.md: no such config file; a target after --configfile is read as a config file: end the file "
     "list with -- (or put targets first)"),
]  # fmt: skip


def _write(path: Path, content) -> None:
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)


@pytest.mark.parametrize("case,name,content,line", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_a_bad_config_file_is_one_line_naming_file_line_and_column(tmp_path, case, name, content, line):
    _write(tmp_path / name, content)
    with pytest.raises(ConfigError) as err:
        read_config_file(tmp_path / name)
    assert _one_line(str(err.value)) == line.format(d=tmp_path)


def test_the_makefile_check_names_each_file_before_snakemake_reads_it(tmp_path):
    """What `make reproduce SNAKEMAKE_ARGS='--configfile F'` runs before Snakemake, whose own loader ends in a
    traceback for a missing, non-UTF-8 or directory config file and names no line for a YAML error (python -m
    mendrepro.checks --snakemake ARGS): every case of the table above, in one process per case."""
    from concurrent.futures import ThreadPoolExecutor

    def check(case):
        _, name, content, line = case
        d = tmp_path / case[0].replace(" ", "_")
        d.mkdir()
        _write(d / name, content)
        args = ["--snakemake", "--cores", "all", "--configfile", str(d / name), "--", "figures/x.md"]
        cmd = [sys.executable, "-m", "mendrepro.checks", *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        return proc, "error: " + line.format(d=d)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for proc, expected in pool.map(check, FILE_CASES):
            assert proc.returncode == 1 and proc.stdout == ""
            assert _one_line(proc.stderr) == expected


# ------------------------------------------------------------------------------------------------------------------
# Data files, as the input rules and the jobs read them: (case, data key, bytes, line). A placed path that is a
# directory is checked at DAG start too (mendrepro.checks.check_data_paths).

# One record of each, as the MEND release's files hold them (its prediction, alternatives and rephrases).
ZSRE = {"id": "1", "input": "Where was Ada born ?", "output": [{"answer": "Paris"}], "prediction": "Paris",
        "alternatives": ["Rome"], "filtered_rephrases": ["What is the birthplace of Ada ?"]}  # fmt: skip
FEVER = {"id": "1", "input": "Ada was born in Paris .", "output": [{"answer": "SUPPORTS"}], "prediction": "SUPPORTS",
         "alternatives": ["REFUTES"], "filtered_rephrases": ["Ada is a native of Paris ."]}  # fmt: skip


def _jsonl(*rows) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


DATA_CASES = [
    ("zsRE: non-UTF-8 byte", "zsre_dev", _jsonl(ZSRE) + b'{"id": "2", "input": "caf\xe9"}\n',
     "zsre_dev: {f}:2:26: byte 0xe9 is not UTF-8; data files are UTF-8 text"),
    ("zsRE: invalid JSON", "zsre_dev", _jsonl(ZSRE, '{"id": "2",'),
     "zsre_dev: {f}:2: invalid JSON (Expecting property name enclosed in double quotes at column 12)"),
    ("zsRE: not an object", "zsre_dev", _jsonl(ZSRE, "[1, 2]"), "zsre_dev: {f}:2: expected a JSON object, got list"),
    ("zsRE: missing input", "zsre_dev", _jsonl({k: v for k, v in ZSRE.items() if k != "input"}),
     "zsre_dev: {f}:1: missing field 'input'"),
    ("zsRE: output not a list", "zsre_dev", _jsonl({**ZSRE, "output": "Paris"}),
     "zsre_dev: {f}:1: field 'output' must be a list of {{'answer': ...}} objects"),
    ("zsRE: empty file", "zsre_dev", b"", "zsre_dev: {f} holds no usable records"),
    ("FEVER: non-UTF-8 byte", "fever_dev", b'{"id": "1", "input": "\xff"}\n',
     "fever_dev: {f}:1:23: byte 0xff is not UTF-8; data files are UTF-8 text"),
    ("FEVER: invalid JSON", "fever_dev", _jsonl(FEVER) + b"{\n", "fever_dev: {f}:2: invalid JSON (Expecting "
     "property name enclosed in double quotes at column 2)"),
    ("NQ: not UTF-8", "nq_dev", b'{"questions": ["caf\xe9"], "answers": ["x"]}',
     "nq_dev: {f}:1:20: byte 0xe9 is not UTF-8; data files are UTF-8 text"),
    ("NQ: lists of different lengths", "nq_dev", b'{"questions": ["a", "b"], "answers": ["x"]}',
     'nq_dev: {f}: "questions" has 2 entries but "answers" has 1'),
    ("self-samples: not UTF-8", "self_sample_dev", b'\n\n{"original": ["\xe9"]}',
     "self_sample_dev: {f}:3:16: byte 0xe9 is not UTF-8; data files are UTF-8 text"),
    ("a directory", "zsre_dev", "dir", "zsre_dev: {f}: is a directory; a data path names one file"),
]  # fmt: skip


@pytest.mark.parametrize("case,key,content,line", DATA_CASES, ids=[c[0] for c in DATA_CASES])
def test_a_bad_data_file_is_one_line_naming_file_and_line(tmp_path, case, key, content, line):
    path = tmp_path / "data.jsonl"
    _write(path, content)
    with pytest.raises(InputError) as err:
        check_format(key, path)
    assert _one_line(str(err.value)) == line.format(f=path)


def test_a_directory_at_a_placed_path_is_named_at_dag_start(tmp_path):
    (tmp_path / "zsre").mkdir()
    (tmp_path / "zsre/dev.jsonl").mkdir()
    cfg = copy.deepcopy(MICRO)
    cfg["data"]["placed"] = str(tmp_path)
    cfg["downloads"] = {"zsre_dev": {"kind": "placed", "file": "zsre/dev.jsonl", "source": "the authors' Drive"}}
    assert _config_error(cfg) == (
        f"downloads.zsre_dev.file: {tmp_path}/zsre/dev.jsonl is a directory; place the file itself there (the "
        "authors' Drive)"
    )


def test_a_directory_at_a_placed_path_is_named_by_its_input_rule(tmp_path):
    from mendrepro.data.inputs import PlacedFile, place

    (tmp_path / "dev.jsonl").mkdir()
    spec = PlacedFile("zsre_dev", str(tmp_path / "dev.jsonl"), "the authors' Drive")
    with pytest.raises(InputError) as err:
        place(spec, None, tmp_path / "out.jsonl")
    assert _one_line(str(err.value)) == (
        f"Cannot get zsre_dev: {tmp_path}/dev.jsonl is a directory; place the file itself there"
    )


def test_a_data_path_that_is_a_directory_is_named_at_dag_start(tmp_path):
    cfg = copy.deepcopy(MICRO)
    cfg["data"]["zsre_dev"] = str(tmp_path)
    assert _config_error(cfg) == f"data.zsre_dev: {tmp_path} is a directory; a data path names one file"


def test_changing_what_only_editors_read_does_not_change_the_base_models_jobs():
    """Pre-training and self-sampling re-run when their params change: those hold only what they read."""
    for model in ("bart", "gpt2"):
        before = base_model_experiment(MICRO, model, 0)
        cfg = copy.deepcopy(MICRO)
        cfg["models"][model]["edit_params"] = [r"model\.encoder\.layers\.0\.fc1\.weight"]
        cfg["models"][model]["loc_source"] = "openwebtext"
        cfg["tasks"]["zsre"]["n_heldout"] = 4
        cfg["tasks"]["wikitext"]["loc_min_words"] = 7
        cfg["train"]["steps"] = 99
        cfg["eval"]["k"] = 2
        assert base_model_experiment(cfg, model, 0) == before
    # What the self-samples are: their job must re-run.
    for key, value in (("n_sample_tokens", 7), ("sample_temperature", 1.55)):
        cfg = copy.deepcopy(MICRO)
        cfg["tasks"]["wikitext"][key] = value
        assert base_model_experiment(cfg, "gpt2", 0) != base_model_experiment(MICRO, "gpt2", 0), key


# ------------------------------------------------------------------------------------------------------------------
# The Python API and `python -m mendrepro edit`, on a micro zsRE/BART run directory (MEND trained two steps, FT),
# written by the pipeline's own commands (tests/test_api.py's helpers).


@pytest.fixture(scope="module")
def run_root(tmp_path_factory):
    from test_api import FILES, _micro_config, _write_run, _write_world

    from mendrepro.config import Experiment, resolve_experiment
    from mendrepro.models import build_model, save_model

    root = tmp_path_factory.mktemp("bad_inputs")
    cwd = Path.cwd()
    os.chdir(root)
    try:
        config = _micro_config()
        tok = _write_world(config)
        spec = Experiment.from_dict(resolve_experiment(config, "zsre", "bart")).model
        save_model(build_model(spec, tok, 0), tok, spec, Path("results/micro/seed0/models/bart"))
        files = json.dumps({k: config["data"][k] for k in FILES})
        for kind in ("mend", "ft"):
            _write_run(config, "zsre", "bart", kind, files, learned=kind == "mend")
    finally:
        os.chdir(cwd)
    return root


MEND = "results/micro/seed0/zsre/bart/mend"
FT = "results/micro/seed0/zsre/bart/ft"
Q = "Where was Tibou born ?"  # a question of the micro world


@pytest.fixture(scope="module")
def editor(run_root):
    return load_editor(run_root / MEND)


def _known_target(editor) -> str:
    words = [w for w in editor.tok.get_vocab() if w.isalpha() and w[0].isupper()]
    return sorted(words)[0]


API_CASES: list[tuple[str, Callable, str]] = [
    ("edit a string", lambda e: e.edit("Where was Tibou born ?"),
     "edit takes a list of requests, got str 'Where was Tibou born ?': edit([(prompt, target)])"),
    ("edit one pair, not a list", lambda e: e.edit((Q, "Paris")),
     "edit takes a list of requests, got tuple ('Where was Tibou born ?', 'Paris'): edit([(prompt, target)])"),
    ("edit one mapping, not a list", lambda e: e.edit({"prompt": Q, "target": "x"}),
     "edit takes a list of requests, got dict {'prompt': 'Where was Tibou born ?', ...: edit([(prompt, target)])"),
    ("no requests", lambda e: e.edit([]), "edit needs at least one request"),
    ("a string as a request", lambda e: e.edit([Q]),
     "request 0: 'Where was Tibou born ?' is not a request; give a (prompt, target) pair, a Request, or a mapping "
     "with prompt and target (FEVER: claim and label)"),
    ("a number as a request", lambda e: e.edit([42]),
     "request 0: 42 is not a request; give a (prompt, target) pair, a Request, or a mapping with prompt and target "
     "(FEVER: claim and label)"),
    ("None as a request", lambda e: e.edit([None]),
     "request 0: None is not a request; give a (prompt, target) pair, a Request, or a mapping with prompt and "
     "target (FEVER: claim and label)"),
    ("a pair of one", lambda e: e.edit([(Q,)]),
     "request 0: a (prompt, target) pair has 2 items, got 1: ('Where was Tibou born ?',)"),
    ("a triple", lambda e: e.edit([(Q, "a", "b")]),
     "request 0: a (prompt, target) pair has 2 items, got 3: ('Where was Tibou born ?', 'a', 'b')"),
    ("target 5", lambda e: e.edit([(Q, 5)]), "request 0: the target must be text (str), got int 5"),
    ("target None", lambda e: e.edit([(Q, None)]), "request 0: the target must be text (str), got NoneType None"),
    ("target a list", lambda e: e.edit([(Q, ["Paris"])]),
     "request 0: the target must be text (str), got list ['Paris']"),
    ("prompt 5", lambda e: e.edit([(5, "Paris")]), "request 0: the prompt must be text (str), got int 5"),
    ("empty target", lambda e: e.edit([(Q, "")]),
     "request 0: empty target; an edit needs a prompt and the new target it should give"),
    ("blank target", lambda e: e.edit([(Q, "   ")]),
     "request 0: empty target; an edit needs a prompt and the new target it should give"),
    ("empty prompt", lambda e: e.edit([("", "Paris")]),
     "request 0: empty prompt; an edit needs a prompt and the new target it should give"),
    ("missing target key", lambda e: e.edit([{"prompt": Q}]),
     "request 0: missing key 'target'; a request mapping has prompt and target (FEVER: claim and label), got keys "
     "['prompt']"),
    ("missing prompt key", lambda e: e.edit([{"target": "x"}]),
     "request 0: missing key 'prompt'; a request mapping has prompt and target (FEVER: claim and label), got keys "
     "['target']"),
    ("misspelt keys", lambda e: e.edit([{"question": Q, "answer": "x"}]),
     "request 0: missing key 'prompt'; a request mapping has prompt and target (FEVER: claim and label), got keys "
     "['answer', 'question']"),
    ("FEVER request to a zsRE editor", lambda e: e.edit([{"claim": "Tibou was born in Paris .", "label": "SUPPORTS"}]),
     "request 0: a FEVER claim and label, but this editor edits zsre (bart): give a prompt and its new target"),
    ("FEVER label only, to a zsRE editor", lambda e: e.edit([{"label": True}]),
     "request 0: a FEVER claim and label, but this editor edits zsre (bart): give a prompt and its new target"),
    ("second request bad", lambda e: e.edit([(Q, _known_target(e)), (Q, 7)]),
     "request 1: the target must be text (str), got int 7"),
    ("unknown target word", lambda e: e.edit([(Q, "Boumish")]),
     "request 0: the model's tokenizer cannot represent 'Boumish' of the target 'Boumish' (each would be edited as "
     "[UNK]); use words it knows, e.g. an answer from the task's data"),
    ("unknown target words", lambda e: e.edit([(Q, "Pilina pipe Boumish")]),
     "request 0: the model's tokenizer cannot represent 'Pilina', 'Boumish' of the target 'Pilina pipe Boumish' "
     "(each would be edited as [UNK]); use words it knows, e.g. an answer from the task's data"),
    ("answer a string", lambda e: e.answer("a string"),
     "answer takes a list of prompts, got the string 'a string': answer([prompt])"),
    ("answer a number", lambda e: e.answer([5]), "prompt 0: must be text (str), got int 5"),
    ("answer zero tokens", lambda e: e.answer([Q], max_new_tokens=0),
     "max_new_tokens must be a whole number >= 1, got 0"),
]  # fmt: skip


@pytest.mark.parametrize("case,call,line", API_CASES, ids=[c[0] for c in API_CASES])
def test_a_bad_api_call_is_one_line(editor, case, call, line):
    state = {n: p.clone() for n, p in editor.model.state_dict().items()}
    with pytest.raises(EditError) as err:
        call(editor)
    assert _one_line(str(err.value)) == line
    assert all(p.equal(state[n]) for n, p in editor.model.state_dict().items())


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _edit_manifest(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(run: Path) -> None:
        m = json.loads((run / MANIFEST).read_text())
        change(m)
        (run / MANIFEST).write_text(json.dumps(m))

    return apply


# (case, what breaks a copy of the run tree: a function of the run directory, load_editor's kwargs, exception, line)
RUN_CASES = [
    ("device banana", None, {"device": "banana"}, EditError,
     "device 'banana' is not a torch device; use cpu, cuda or cuda:N"),
    ("device cpu:x", None, {"device": "cpu:x"}, EditError,
     "device 'cpu:x' is not a torch device; use cpu, cuda or cuda:N"),
    ("no such run directory", lambda run: shutil.rmtree(run), {}, ManifestError,
     "{run} is not a run directory (results/<profile>/seed<s>/<task>/<model>/<editor>)"),
    ("truncated editor.pt", lambda run: _truncate(run / "editor.pt"), {}, EditError,
     "{run}/editor.pt: not a readable editor checkpoint, e.g. truncated ([Errno 22] "
     "Invalid argument); re-run its training: `snakemake --cores all --force {run}/editor.pt`"),
    ("empty editor.pt", lambda run: (run / "editor.pt").write_bytes(b""), {}, EditError,
     "{run}/editor.pt: not a readable editor checkpoint, e.g. truncated (EOFError); re-run its training: "
     "`snakemake --cores all --force {run}/editor.pt`"),
    ("corrupt manifest.json", lambda run: _truncate(run / MANIFEST), {}, ManifestError,
     "{run}/manifest.json:{manifest_line}: not valid JSON ({manifest_error}); re-run the job to write one: "
     "`snakemake --cores all --force <run>/editor.pt` (learned editors) or `snakemake --cores all --force "
     "<run>/eval_k1/metrics.json` (FT, FT+KL, cache)"),
    ("manifest.json a list", lambda run: (run / MANIFEST).write_text("[]"), {}, ManifestError,
     "{run}/manifest.json: a manifest is a JSON object, got list; re-run the job to write one: `snakemake --cores "
     "all --force <run>/editor.pt` (learned editors) or `snakemake --cores all --force <run>/eval_k1/metrics.json` "
     "(FT, FT+KL, cache)"),
    ("manifest.json not UTF-8", lambda run: (run / MANIFEST).write_bytes(b"\xff{}"), {}, ManifestError,
     "{run}/manifest.json: not UTF-8 (byte 0); re-run the job to write one: `snakemake --cores all --force "
     "<run>/editor.pt` (learned editors) or `snakemake --cores all --force <run>/eval_k1/metrics.json` (FT, FT+KL, "
     "cache)"),
    ("manifest without base_model", _edit_manifest(lambda m: m.pop("base_model")), {}, ManifestError,
     "{run}/manifest.json: not a run manifest (KeyError: 'base_model'); re-run the job to write one: `snakemake "
     "--cores all --force <run>/editor.pt` (learned editors) or `snakemake --cores all --force "
     "<run>/eval_k1/metrics.json` (FT, FT+KL, cache)"),
    ("manifest of another format", _edit_manifest(lambda m: m.update(format="x/0")), {}, ManifestError,
     "{run}/manifest.json: format 'x/0', this version reads 'mendrepro-run/1'"),
    ("run copied without its base model", lambda run: shutil.rmtree(run.parents[2] / "models/bart"), {}, EditError,
     "base model {root}/results/micro/seed0/models/bart (the manifest's base_model.path) is not there: copy it "
     "along with the run directory, keeping the tree below the workflow directory (results/<profile>/...)"),
    ("base model changed", lambda run: (run.parents[2] / "models/bart/extra.txt").write_text("x"), {}, EditError,
     "base model {root}/results/micro/seed0/models/bart changed since {run} was written (sha256 {sha}…, the "
     "manifest says {recorded}…); to use it anyway: load_editor(..., check_model=False), or `python -m mendrepro "
     "edit --no-check`"),
]  # fmt: skip
if not torch.cuda.is_available():
    RUN_CASES.append(
        ("device cuda on CPU torch", None, {"device": "cuda"}, EditError,
         f"device 'cuda': this torch ({torch.__version__}) sees no CUDA GPU; use cpu")
    )  # fmt: skip


def _broken_copy(run_root: Path, tmp_path: Path, breaks) -> tuple[Path, Path]:
    root = tmp_path / "tree"
    shutil.copytree(run_root / "results", root / "results")
    run = root / MEND
    if breaks:
        breaks(run)
    return root, run


def _fill(line: str, root: Path, run: Path) -> str:
    extra = {}
    if "{manifest_line}" in line:
        with pytest.raises(json.JSONDecodeError) as e:
            json.loads((run / MANIFEST).read_text())
        extra = {"manifest_line": f"{e.value.lineno}:{e.value.colno}", "manifest_error": e.value.msg}
    if "{sha}" in line:
        from mendrepro.manifest import directory_sha256

        extra = {
            "sha": directory_sha256(root / "results/micro/seed0/models/bart")[:12],
            "recorded": json.loads((run / MANIFEST).read_text())["base_model"]["sha256"][:12],
        }
    return line.format(root=root, run=run, **extra)


@pytest.mark.parametrize("case,breaks,kwargs,error,line", RUN_CASES, ids=[c[0] for c in RUN_CASES])
def test_a_bad_run_directory_or_device_is_one_line(run_root, tmp_path, case, breaks, kwargs, error, line):
    root, run = _broken_copy(run_root, tmp_path, breaks)
    expected = _fill(line, root, run)
    with pytest.raises(error) as err:
        load_editor(run, **kwargs)
    assert _one_line(str(err.value)) == expected


# The edit command: exit status 2, one line on stderr, nothing on stdout. (case, breaks, arguments, line)
EDIT = "python -m mendrepro edit: error: "
USAGE = "python -m mendrepro edit: error: "
CLI_CASES = [
    ("--device banana", None, ["--device", "banana"], EDIT + "device 'banana' is not a torch device; use cpu, cuda "
     "or cuda:N"),
    ("truncated editor.pt", lambda run: _truncate(run / "editor.pt"), [], EDIT + "{run}/editor.pt: not a readable "
     "editor checkpoint, e.g. truncated ([Errno 22] Invalid argument); re-run its training: `snakemake --cores "
     "all --force {run}/editor.pt`"),
    ("corrupt manifest.json", lambda run: _truncate(run / MANIFEST), [], EDIT + "{run}/manifest.json:{manifest_line}"
     ": not valid JSON ({manifest_error}); re-run the job to write one: `snakemake --cores all --force "
     "<run>/editor.pt` (learned editors) or `snakemake --cores all --force <run>/eval_k1/metrics.json` (FT, FT+KL, "
     "cache)"),
    ("run copied without its base model", lambda run: shutil.rmtree(run.parents[2] / "models/bart"), [],
     EDIT + "base model {root}/results/micro/seed0/models/bart (the manifest's base_model.path) is not there: copy "
     "it along with the run directory, keeping the tree below the workflow directory (results/<profile>/...)"),
    ("base model changed: suggests --no-check", lambda run: (run.parents[2] / "models/bart/x.txt").write_text("x"),
     [], EDIT + "base model {root}/results/micro/seed0/models/bart changed since {run} was written (sha256 {sha}…, "
     "the manifest says {recorded}…); to use it anyway: load_editor(..., check_model=False), or `python -m "
     "mendrepro edit --no-check`"),
    ("no such run", lambda run: shutil.rmtree(run), [], EDIT + "{run} is not a run directory "
     "(results/<profile>/seed<s>/<task>/<model>/<editor>)"),
    ("unknown target words", None, ["--target-replace", "Boumish"], EDIT + "request 0: the model's tokenizer cannot "
     "represent 'Boumish' of the target 'Boumish' (each would be edited as [UNK]); use words it knows, e.g. an "
     "answer from the task's data"),
    ("empty target", None, ["--target-replace", ""], EDIT + "request 0: empty target; an edit needs a prompt and the "
     "new target it should give"),
    ("two prompts, one target", None, ["--prompt", Q], EDIT + "2 --prompt but 1 --target: give one target per "
     "prompt"),
    ("--max-new-tokens 0", None, ["--max-new-tokens", "0"], USAGE + "argument --max-new-tokens: 0 is less than 1 "
     "(see python -m mendrepro edit --help)"),
    ("--max-new-tokens ten", None, ["--max-new-tokens", "ten"], USAGE + "argument --max-new-tokens: 'ten' is not a "
     "whole number (see python -m mendrepro edit --help)"),
]  # fmt: skip
if not torch.cuda.is_available():
    CLI_CASES.append(
        ("--device cuda on CPU torch", None, ["--device", "cuda"],
         EDIT + f"device 'cuda': this torch ({torch.__version__}) sees no CUDA GPU; use cpu")
    )  # fmt: skip


@pytest.mark.parametrize("case,breaks,args,line", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_a_bad_edit_command_is_one_line_and_exit_status_2(run_root, tmp_path, capsys, case, breaks, args, line):
    root, run = _broken_copy(run_root, tmp_path, breaks)
    expected = _fill(line, root, run)
    target = "Paris"
    if args[:1] == ["--target-replace"]:
        target, args = args[1], args[2:]
    argv = ["edit", "--run", str(run), "--prompt", Q, "--target", target, *args]
    if "(see python" in line:  # a usage error: argparse exits
        with pytest.raises(SystemExit) as err:
            cli.main(argv)
        code = err.value.code
    else:
        code = cli.main(argv)
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert _one_line(captured.err) == expected


def test_the_edit_command_without_a_target_is_one_usage_line(capsys):
    with pytest.raises(SystemExit) as err:
        cli.main(["edit", "--run", "x", "--prompt", Q])
    assert err.value.code == 2
    assert _one_line(capsys.readouterr().err) == (
        "python -m mendrepro edit: error: the following arguments are required: --target (see python -m mendrepro "
        "edit --help)"
    )


def test_the_table_holds_every_case_of_the_issue():
    n = len(VALUE_CASES) + len(OVERRIDE_CASES) + len(DAG_CASES) + len(FILE_CASES) + len(DATA_CASES) + len(API_CASES)
    # + the placed directory (DAG start, input rule), a data path directory, a missing --target
    n += len(RUN_CASES) + len(CLI_CASES) + 4
    assert n >= 100, n
