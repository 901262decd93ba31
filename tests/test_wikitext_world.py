"""The Wikitext corpus's own world (config `world.wikitext`): its fields over the world's, its own rule and
tokenizer, the GPT-class models pre-trained on it and every other model on the main world, and one line for a
layout that would let the two world rules claim the same file."""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mendrepro.checks import ConfigError, check_config, load_schema
from mendrepro.data.synthetic import WorldConfig, world_config, world_fields

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = load_schema(ROOT / "config/schema.yaml")
MICRO = yaml.safe_load((ROOT / "tests/fixtures/micro.yaml").read_text())
OWN = {
    "world": {"wikitext": {"n_subjects": 30, "n_wiki_valid": 5}},
    "data": {
        "wiki_train": "results/micro/world-wikitext/wikitext/wiki.train.raw",
        "wiki_dev": "results/micro/world-wikitext/wikitext/wiki.valid.raw",
    },
}


def _with_own_world() -> dict:
    cfg = copy.deepcopy(MICRO)
    cfg["world"].update(OWN["world"])
    cfg["data"].update(OWN["data"])
    return cfg


def test_the_wikitext_world_is_its_fields_over_the_worlds():
    main = {"seed": 2, "n_subjects": 12, "n_dev_facts": 10, "n_wiki_valid": 3}
    section = {**main, "wikitext": {"n_subjects": 30}}
    assert world_config(section) == WorldConfig(**main)
    assert world_config(section, "wikitext") == WorldConfig(**{**main, "n_subjects": 30})
    # Without an entry the Wikitext corpus is the world's own.
    assert world_config(main, "wikitext") == world_config(main) == WorldConfig(**main)
    # The fields as written, for the world rules' commands: no defaults filled in.
    assert world_fields(section) == main and world_fields(section, "wikitext") == {**main, "n_subjects": 30}


def test_a_config_with_its_own_wikitext_world_passes_the_checks():
    check_config(_with_own_world(), SCHEMA)


def test_the_two_wikitext_files_must_share_their_world():
    cfg = _with_own_world()
    cfg["data"]["wiki_dev"] = MICRO["data"]["wiki_dev"]
    with pytest.raises(ConfigError) as e:
        check_config(cfg, SCHEMA)
    assert str(e.value) == (
        "data.wiki_dev: with world.wikitext both Wikitext files come from one world, so it must lie in "
        "results/micro/world-wikitext as data.wiki_train does, got results/micro/world/wikitext/wiki.valid.raw"
    )


def _commands(dry_run: str) -> dict[str, list[str]]:
    """rule -> the shell commands `snakemake -n -p` printed for it."""
    out: dict[str, list[str]] = {}
    rule = None
    lines = dry_run.splitlines()
    for i, line in enumerate(lines):
        if m := re.match(r"(?:local)?rule (\w+):", line):
            rule = m.group(1)
        elif line.startswith("Shell command:") or (rule and lines[i - 1].strip() == "" and "-m mendrepro" in line):
            out.setdefault(rule, []).append(line.removeprefix("Shell command:").strip())
    return out


def test_the_gpt_class_models_pre_train_on_the_wikitext_world_and_the_others_on_the_main_one(tmp_path):
    shutil.copy(ROOT / "Snakefile", tmp_path)
    for item in ("workflow", "config", "envs"):
        shutil.copytree(ROOT / item, tmp_path / item)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(_with_own_world()))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-p", "--cores", "1", "--configfile", "run.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    commands = _commands(proc.stdout)
    (main,) = commands["world"]
    (wiki,) = commands["world_wikitext"]

    def world_json(command: str) -> dict:
        words = shlex.split(command)
        return json.loads(words[words.index("--world") + 1])

    assert world_json(main) == {k: v for k, v in MICRO["world"].items()}
    assert world_json(wiki) == {**MICRO["world"], "n_subjects": 30, "n_wiki_valid": 5}
    assert (
        "--out results/micro/world " in main and "--tokenizer $(dirname results/micro/tokenizer/tokenizer.json)" in main
    )
    assert "--out results/micro/world-wikitext " in wiki
    assert "$(dirname results/micro/tokenizer-wikitext/tokenizer.json)" in wiki
    pretrain = {re.search(r"--out results/micro/seed0/models/(\w+)", c).group(1): c for c in commands["pretrain"]}
    lm = {m for m, spec in MICRO["models"].items() if spec["task"] == "wikitext"}
    assert lm and lm < set(pretrain)
    for model, command in pretrain.items():
        own = model in lm
        assert ("--world results/micro/world-wikitext " in command) == own, command
        assert ("tokenizer-wikitext" in command) == own, command
        assert own or "--world results/micro/world " in command
