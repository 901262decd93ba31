"""Every bad input gets one clear line naming its file (and line) or config key path, what is wrong and what is
allowed (mendrepro.checks), at DAG start: a table of cases on the package's checks, and a few through
`snakemake -n` to prove the wiring."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from mendrepro.checks import ConfigError, check_config, check_data_file, load_schema, read_config_file

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = load_schema(ROOT / "config/schema.yaml")
MICRO = yaml.safe_load((ROOT / "tests/fixtures/micro.yaml").read_text())


def _set(path: str, value) -> Callable[[dict], None]:
    """A change of the micro config: the value at a dotted key path (``[i]`` for list items) set to ``value``."""

    def change(cfg: dict) -> None:
        keys = [int(k) if k.isdigit() else k for k in path.replace("[", ".").replace("]", "").split(".")]
        node = cfg
        for k in keys[:-1]:
            node = node.setdefault(k, {}) if isinstance(node, dict) else node[k]
        node[keys[-1]] = value

    return change


def _del(path: str) -> Callable[[dict], None]:
    def change(cfg: dict) -> None:
        *parents, last = path.split(".")
        node = cfg
        for k in parents:
            node = node[k]
        del node[last]

    return change


# (case, change of the micro config, the one line's expected text). The micro world has 10 dev facts; zsRE holds 5
# out for validation (5 evaluation edits), FEVER 3; eval.n_edits is 4 and Table 5 has k = 5.
CONFIG_CASES = [
    (
        "unknown top-level key",
        _set("trian", {"steps": 3}),
        "config: unknown top-level key 'trian' (did you mean 'train'?); keys: profile, seeds",
    ),
    ("missing top-level key", _del("eval"), "config: 'eval' is a required property"),
    ("steps 0", _set("train.steps", 0), "train.steps: 0 is less than the minimum of 1"),
    (
        "editor steps 0",
        _set("editors.mend.train", {"steps": 0}),
        "editors.mend.train.steps: 0 is less than the minimum of 1",
    ),
    (
        "editor steps negative",
        _set("editors.ke.train", {"steps": -3}),
        "editors.ke.train.steps: -3 is less than the minimum of 1",
    ),
    (
        "model steps 0",
        _set("models.gptneo.train.steps", 0),
        "models.gptneo.train.steps: 0 is less than the minimum of 1",
    ),
    (
        "per-model steps 0",
        _set("editors.mend.per_model", {"bart": {"train": {"steps": 0}}}),
        "editors.mend.per_model.bart.train.steps: 0 is less than the minimum of 1",
    ),
    (
        "Table 5 batch steps negative",
        _set("tables.table5.batches[1].train.steps", -1),
        "tables.table5.batches[1].train.steps: -1 is less than the minimum of 1",
    ),
    (
        "pretrain steps 0",
        _set("models.bart.pretrain.steps", 0),
        "models.bart.pretrain.steps: 0 is less than the minimum of 1",
    ),
    (
        "editor train typo",
        _set("editors.mend.train", {"stpes": 5}),
        "editors.mend.train: unknown key 'stpes' (did you mean 'steps'?); keys: steps, lr",
    ),
    ("k 0", _set("eval.k", 0), "eval.k: 0 is less than the minimum of 1"),
    ("editor k 0", _set("editors.ke.eval", {"k": 0}), "editors.ke.eval.k: 0 is less than the minimum of 1"),
    (
        "k above n_edits",
        _set("eval.k", 5),
        "editor 'ft' (wikitext/gptneo): k = 5 edits at once is more than eval.n_edits = 4; n_edits >= k",
    ),
    (
        "k above the dev split",
        _set("eval", {"n_edits": 6, "k": 6, "n_loc": 2, "seed": 0}),
        "tables.table3.experiments[2] editor 'ft' (zsre/t5xl): k = 6 edits at once is more than the 5 evaluation "
        "edits (10 in world.n_dev_facts less tasks.zsre.n_heldout = 5); k <= 5",
    ),
    (
        "n_heldout takes the whole dev split",
        _set("tasks.zsre.n_heldout", 10),
        "tasks.zsre.n_heldout = 10 leaves no evaluation edits: the dev split has 10 (world.n_dev_facts); "
        "n_heldout < 10",
    ),
    (
        "Table 5 k above the validation edits",
        _set("tasks.zsre.n_heldout", 4),
        "editor 'enn-k5' (zsre/bart): tasks.zsre.n_heldout = 4 held-out edits cannot make one validation "
        "request of 5 edits",
    ),
    (
        "rank not an int",
        _set("editors.mend.options.rank", "eight"),
        "editor 'mend' (kind mend): option 'rank' = 'eight' is not allowed; 'rank' takes int >= 1",
    ),
    (
        "unknown editor kind",
        _set("editors.rome", {"kind": "rome"}),
        "editor 'rome': unknown kind 'rome'; kinds: mend, ft, ftkl, ke, enn, cache, ftl",
    ),
    (
        "unknown model in a table",
        _set("tables.table4.experiments[0].model", "bret"),
        "tables.table4.experiments[0].model: unknown model 'bret' (did you mean 'bert'?); models: bart, bert",
    ),
    (
        "unknown task in Table 5",
        _set("tables.table5.experiments[0].task", "zsrE"),
        "tables.table5.experiments[0].task: unknown task 'zsrE' (did you mean 'zsre'?); tasks: zsre, fever, wikitext",
    ),
    (
        "unknown task in Table 3",
        _set("tables.table3.experiments[0].task", "wiki"),
        "tables.table3.experiments[0].task: 'wiki' is not one of ['zsre', 'fever', 'wikitext']",
    ),
    (
        "model of another task",
        _set("tables.table4.experiments[0].task", "zsre"),
        "tables.table4.experiments[0]: model 'bert' is configured for task 'fever' (models.bert.task), not 'zsre'",
    ),
    (
        "task without a section",
        _del("tasks.fever"),
        "tables.table4.experiments[0].task: 'fever' has no tasks.fever section (its n_heldout)",
    ),
    (
        "unknown table editor",
        _set("tables.table4.editors[4]", "mnd"),
        "tables.table4.editors[4]: unknown editor 'mnd' (did you mean 'mend'?); editors: mend, ke",
    ),
    (
        "unknown sampler model",
        _set("tasks.wikitext.sampler_model", "gtp2"),
        "tasks.wikitext.sampler_model: unknown wikitext model 'gtp2' (did you mean 'gpt2'?); "
        "wikitext models: gpt2, gptneo, gptj",
    ),
    (
        "unknown sampling",
        _set("train.sampling", "random"),
        "train.sampling: 'random' is not one of ['independent', 'epoch']",
    ),
    (
        "unknown editor sampling",
        _set("editors.mend.train", {"sampling": "shuffle"}),
        "editors.mend.train.sampling: 'shuffle' is not one of ['independent', 'epoch']",
    ),
    (
        "unknown per-model model",
        _set("editors.mend.per_model", {"bartt": {"train": {"steps": 2}}}),
        "editors.mend.per_model: unknown model 'bartt' (did you mean 'bart'?)",
    ),
    (
        "unknown resources model",
        _set("resources", {"train": {"models": {"gpt3": {"gpu": 1}}}}),
        "resources.train.models: unknown model 'gpt3'",
    ),
    ("schema type, cut to the path", _set("eval.n_edits", "many"), "eval.n_edits: 'many' is not of type 'integer'"),
    ("seeds", _set("seeds", [-1]), "seeds[0]: -1 is less than the minimum of 0"),
    (
        "download entry missing its form's keys",
        _set("downloads", {"zsre_dev": {"kind": "placed", "source": "Drive"}}),
        "downloads.zsre_dev: 'file' is a required property",
    ),
    (
        "editor of neither form",
        _set("editors.x", {"options": {}}),
        "editors.x: {'options': {}} matches none of the allowed forms: 'kind' is a required property | 'variant_of' is",
    ),
]


@pytest.mark.parametrize("case,change,message", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_a_bad_config_fails_in_one_line_naming_the_key(case, change, message):
    cfg = copy.deepcopy(MICRO)
    change(cfg)
    with pytest.raises(ConfigError) as err:
        check_config(cfg, SCHEMA)
    text = str(err.value)
    assert message in text, text
    assert "\n" not in text and len(text) < 400, text


def test_a_data_path_that_is_a_directory(tmp_path):
    cfg = copy.deepcopy(MICRO)
    cfg["data"]["zsre_dev"] = str(tmp_path)
    with pytest.raises(ConfigError, match=rf"^data\.zsre_dev: {tmp_path} is a directory; a data path names one file$"):
        check_config(cfg, SCHEMA)


@pytest.mark.parametrize(
    "change,note",
    [
        (_set("eval.n_edits", 8), "note: zsre evaluates 5 edits, not eval.n_edits = 8 (5 evaluation edits after "),
        (_set("tables.table5.n_edits", 7), "note: zsre evaluates 5 edits, not tables.table5.n_edits = 7 (5 evaluation"),
    ],
    ids=["n_edits beyond the dev split", "n_edits not a multiple of k"],
)
def test_fewer_edits_than_configured_are_said_in_one_note(change, note):
    cfg = copy.deepcopy(MICRO)
    change(cfg)
    notes = check_config(cfg, SCHEMA)
    assert any(n.startswith(note) for n in notes), notes
    assert all("\n" not in n for n in notes)


@pytest.mark.parametrize("path", ["config/tiny.yaml", "config/paper.yaml", "tests/fixtures/micro.yaml"])
def test_the_shipped_configs_pass(path):
    check_config(read_config_file(ROOT / path), SCHEMA)


FILE_CASES = [
    (
        "yaml error",
        "bad.yaml",
        b"profile: micro\n  seeds: [0\n",
        r"bad\.yaml:2:8: YAML error: mapping values are not allowed here",
    ),
    (
        "non-UTF-8 byte",
        "latin.yaml",
        b"profile: micro\nlauncher: caf\xe9\n",
        r"latin\.yaml:2:14: byte 0xe9 is not UTF-8; config files are UTF-8",
    ),
    (
        "not a mapping",
        "list.yaml",
        b"- a\n- b\n",
        r"list\.yaml: a config file is a mapping of keys \(profile, seeds, \.\.\.\), got \['a', 'b'\]",
    ),
    (
        "a target read as a config file",
        "figures/paper/table3.md",
        None,
        r"table3\.md: no such config file; a target after --configfile is read as a config file: "
        r"end the file list with --",
    ),
    ("a directory", "confdir", "dir", r"confdir: is a directory, not a config file"),
]


@pytest.mark.parametrize("case,name,content,pattern", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_a_bad_config_file_fails_in_one_line_naming_file_and_line(tmp_path, case, name, content, pattern):
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        read_config_file(path)
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(str(path)) and re.search(pattern, str(err.value)), str(err.value)


def test_a_bad_data_file_fails_in_one_line_naming_file_and_line(tmp_path):
    path = tmp_path / "dev.jsonl"
    path.write_bytes(b'{"a": "ok"}\n{"a": "\xff"}\n')
    with pytest.raises(ConfigError, match=rf"^{path}:2:8: byte 0xff is not UTF-8; data files are UTF-8 text$"):
        check_data_file(str(path))
    with pytest.raises(ConfigError, match=rf"^{tmp_path}: is a directory; a data path names one file$"):
        check_data_file(str(tmp_path))
    check_data_file(str(tmp_path / "absent.jsonl"))  # a missing file is the input rules' to report


def test_the_command_line_check_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"profile: micro\n  seeds: [0\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mendrepro.checks", str(bad)], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 1 and proc.stderr.splitlines() == [
        f"error: {bad}:2:8: YAML error: mapping values are not allowed here"
    ]
    ok = subprocess.run(
        [sys.executable, "-m", "mendrepro.checks", "tests/fixtures/micro.yaml"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert ok.returncode == 0 and ok.stdout.strip().endswith("ok: tests/fixtures/micro.yaml"), ok.stdout + ok.stderr


# ------------------------------------------------------------------------------------------------------------------
# Through `snakemake -n`: the checks run at DAG start, their line comes first


def _workdir(tmp_path: Path, cfg: dict) -> Path:
    for item in ("Snakefile", "workflow", "config", "envs", "src"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path


def _dry_run(wd: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", "run.yaml", *args]
    return subprocess.run(cmd, cwd=wd, capture_output=True, text=True)


DAG_CASES = [
    ("unknown top-level key", _set("trian", {"steps": 3}), "config: unknown top-level key 'trian'"),
    (
        "Table 5 batch steps negative",
        _set("tables.table5.batches[1].train.steps", -1),
        "tables.table5.batches[1].train.steps: -1 is less than the minimum of 1",
    ),
    (
        "k above the dev split",
        _set("eval", {"n_edits": 6, "k": 6, "n_loc": 2, "seed": 0}),
        "k = 6 edits at once is more than the 5 evaluation edits",
    ),
]


@pytest.mark.parametrize("case,change,message", DAG_CASES, ids=[c[0] for c in DAG_CASES])
def test_snakemake_dry_run_fails_with_the_line_first(tmp_path, case, change, message):
    cfg = copy.deepcopy(MICRO)
    change(cfg)
    proc = _dry_run(_workdir(tmp_path, cfg))
    lines = (proc.stderr + proc.stdout).splitlines()
    assert proc.returncode != 0
    # Snakemake's own header ("Using workflow specific profile ...", "WorkflowError in file ..."), then the line.
    first = [i for i, line in enumerate(lines) if message in line]
    assert first and first[0] <= 3, lines
    assert len(lines) < 10, lines


def test_targets_after_dash_dash_are_not_config_files(tmp_path):
    proc = _dry_run(_workdir(tmp_path, MICRO), "--", "figures/micro/table5.md")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "table5" in proc.stdout and "table4" not in proc.stdout
