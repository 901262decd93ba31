"""The Python API and `mendrepro edit`, on micro run directories written by the pipeline's own commands."""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from mendrepro import cli
from mendrepro.api import Request, load_editor
from mendrepro.batches import forward
from mendrepro.config import Experiment, base_model_experiment, resolve_experiment
from mendrepro.data.synthetic import all_world_texts, generate_world, world_config, write_world
from mendrepro.data.tokenizer import train_word_tokenizer
from mendrepro.data.zsre import load_zsre
from mendrepro.editors.registry import KINDS as REGISTRY
from mendrepro.manifest import MANIFEST, ManifestError
from mendrepro.models import build_model, save_model

ROOT = Path(__file__).resolve().parents[1]
TINY = yaml.safe_load((ROOT / "config/tiny.yaml").read_text())
KINDS = tuple(REGISTRY)  # every kind of the registry: a new editor is loaded and edits through the API too
FILES = ("zsre_train", "zsre_dev", "nq_train", "nq_dev")


def _micro_config() -> dict:
    """The micro profile, with two training steps and two evaluated edits per run."""
    config = yaml.safe_load((ROOT / "tests/fixtures/micro.yaml").read_text())
    config["train"].update(steps=2, val_every=2, n_val=1, accumulate=1)
    config["eval"].update(n_edits=2)
    return config


def _write_world(config: dict):
    """The micro world and its tokenizer where the workflow writes them (in the working directory)."""
    world = generate_world(world_config(config["world"]))
    write_world(world, Path("results/micro/world"))
    return train_word_tokenizer(all_world_texts(world), Path("results/micro/tokenizer"))


def _write_run(config: dict, task: str, model: str, kind: str, files: str, learned: bool) -> None:
    """One run directory as its jobs write it: `train` (learned editors), then `evaluate`."""
    run, model_dir = f"results/micro/seed0/{task}/{model}/{kind}", f"results/micro/seed0/models/{model}"
    exp = json.dumps(resolve_experiment(config, task, model, kind, 0), sort_keys=True)
    common = ["--exp", exp, "--model", model_dir, "--files", files]
    ckpt = []
    if learned:
        train = ["train", *common, "--out", f"{run}/editor.pt", "--metrics", f"{run}/train.json"]
        assert cli.main(["--threads", "1", *train]) == 0
        ckpt = ["--ckpt", f"{run}/editor.pt"]
    evaluate = ["evaluate", *common, *ckpt, "--records", f"{run}/eval_k1/edits.jsonl"]
    assert cli.main(["--threads", "1", *evaluate, "--metrics", f"{run}/eval_k1/metrics.json"]) == 0


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The micro profile's zsRE/BART runs of every editor kind, as the workflow's jobs write them (paths relative
    to the workflow directory): a world, a random base model, each learned editor trained for two steps, and
    each editor evaluated on two dev edits (the editors that are not trained get their manifest there)."""
    root = tmp_path_factory.mktemp("api")
    cwd = Path.cwd()
    os.chdir(root)
    try:
        config = _micro_config()
        # FT able to fit three facts into a random model within its step cap: the docs example's edits must take.
        config["editors"]["ft"]["options"].update(lr=0.003, max_steps=300)
        config["models"]["bart"].update(d_model=64, d_ffn=128)
        # The tiny profile's world (generated in a fraction of a second): docs/api.md's facts are its facts.
        config["world"] = TINY["world"]
        tok = _write_world(config)
        files = json.dumps({k: config["data"][k] for k in FILES})
        model_dir = "results/micro/seed0/models/bart"
        spec = Experiment.from_dict(resolve_experiment(config, "zsre", "bart")).model
        save_model(build_model(spec, tok, 0), tok, spec, Path(model_dir))
        for kind in KINDS:
            _write_run(config, "zsre", "bart", kind, files, learned=REGISTRY[kind].learned)
        records = load_zsre(config["data"]["zsre_dev"])
        yield root, records
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def fever_wiki_runs(tmp_path_factory):
    """MEND (trained two steps) and FT run directories of the micro profile's FEVER/BERT and Wikitext/GPT-2
    experiments, written by the pipeline's commands as in :func:`runs` (Wikitext's edits self-sampled from the
    random GPT-2 by the `self-sample` command)."""
    root = tmp_path_factory.mktemp("api_fever_wiki")
    cwd = Path.cwd()
    os.chdir(root)
    try:
        config = _micro_config()
        tok = _write_world(config)
        data = {k: v.replace("{seed}", "0") for k, v in config["data"].items()}
        for task, model, keys in (
            ("fever", "bert", ("fever_train", "fever_dev")),
            ("wikitext", "gpt2", ("wiki_train", "wiki_dev", "self_sample_train", "self_sample_dev")),
        ):
            model_dir = f"results/micro/seed0/models/{model}"
            spec = Experiment.from_dict(resolve_experiment(config, task, model)).model
            save_model(build_model(spec, tok, 0), tok, spec, Path(model_dir))
            if task == "wikitext":
                sampler = json.dumps(base_model_experiment(config, model, 0), sort_keys=True)
                inputs = ["--wiki-train", data["wiki_train"], "--wiki-valid", data["wiki_dev"]]
                outputs = ["--out-train", data["self_sample_train"], "--out-valid", data["self_sample_dev"]]
                sample = ["self-sample", "--exp", sampler, "--model", model_dir, *inputs, *outputs]
                assert cli.main(["--threads", "1", *sample]) == 0
            files = json.dumps({k: data[k] for k in keys})
            for kind in ("mend", "ft"):
                _write_run(config, task, model, kind, files, learned=kind == "mend")
        yield root, data
    finally:
        os.chdir(cwd)


@pytest.mark.parametrize("kind", ["mend", "ft"])
def test_fever_edits_are_a_claim_and_its_new_label(fever_wiki_runs, kind):
    root, data = fever_wiki_runs
    editor = load_editor(root / f"results/micro/seed0/fever/bert/{kind}")
    state = {n: p.clone() for n, p in editor.model.state_dict().items()}
    claims = [json.loads(x)["input"] for x in Path(root / data["fever_dev"]).read_text().splitlines()[:2]]
    before = editor.answer(claims)
    assert set(before) <= {"SUPPORTS", "REFUTES"}
    flipped = {"SUPPORTS": False, "REFUTES": True}
    result = editor.edit([{"claim": c, "label": flipped[b]} for c, b in zip(claims, before, strict=True)])
    assert [e.target for e in result.edits] == ["REFUTES" if b == "SUPPORTS" else "SUPPORTS" for b in before]
    assert all(0 <= e.success <= 1 and e.seconds > 0 for e in result.edits)
    # Success is the edited model's own answer: the label it now gives is the target exactly where it succeeded.
    after = editor.answer(claims, result.model)
    assert [float(a == e.target) for a, e in zip(after, result.edits, strict=True)] == [e.success for e in result.edits]
    assert all(p.equal(state[n]) for n, p in editor.model.state_dict().items())
    with pytest.raises(ValueError, match="FEVER targets are labels"):
        editor.edit([(claims[0], "MAYBE")])


@pytest.mark.parametrize("kind", ["mend", "ft"])
def test_wikitext_edits_are_a_passage_and_its_new_continuation(fever_wiki_runs, kind):
    root, data = fever_wiki_runs
    editor = load_editor(root / f"results/micro/seed0/wikitext/gpt2/{kind}")
    assert editor.exp.task == "wikitext" and editor.exp.model.arch == "gpt2"
    state = {n: p.clone() for n, p in editor.model.state_dict().items()}
    sample = json.loads(Path(root / data["self_sample_dev"]).read_text())
    passage, continuation = sample["original"][0], sample["completions"][0]
    result = editor.edit([(passage, continuation)])
    assert isinstance(result.model, nn.Module) and result.model is not editor.model
    assert (result.edits[0].prompt, result.edits[0].target) == (passage, continuation)
    assert 0 <= result.edits[0].success <= 1 and result.edits[0].seconds > 0
    if kind == "mend":  # MEND changes exactly its edited matrices
        changed = {n for n, p in result.model.state_dict().items() if not p.equal(state[n])}
        assert changed and changed <= set(editor.editor.param_names)
    assert len(editor.answer([passage], result.model)) == 1
    assert all(p.equal(state[n]) for n, p in editor.model.state_dict().items())


def _facts(records, n=3):
    """n edits of different subjects: each question with one of its alternative answers."""
    return [(r.src, r.alternatives[0]) for r in records[:n]]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_loads_and_edits_without_touching_the_base_model(runs, kind):
    root, records = runs
    editor = load_editor(root / f"results/micro/seed0/zsre/bart/{kind}")
    assert editor.exp.editor_kind == kind
    state = {n: p.clone() for n, p in editor.model.state_dict().items()}
    facts = _facts(records)
    result = editor.edit(facts)
    assert isinstance(result.model, nn.Module) and result.model is not editor.model
    assert [(e.prompt, e.target) for e in result.edits] == facts
    assert all(0 <= e.success <= 1 and e.seconds > 0 and e.memory["peak_mb"] > 0 for e in result.edits)
    assert all(p.equal(state[n]) for n, p in editor.model.state_dict().items())
    # The edited model is the editor's edit: its own forward gives the logits evaluation scores.
    batch = editor.batch([Request(*f) for f in facts])
    expected = editor.editor.edited_logits(batch, result.state)
    got = result.model(**{k: batch[k] for k in ("input_ids", "attention_mask", "labels")})
    got = got if isinstance(got, torch.Tensor) else forward(result.model, batch)
    assert torch.allclose(got, expected, atol=1e-5)
    assert len(editor.answer([facts[0][0]], result.model)) == 1


def test_a_learned_editor_loads_its_trained_weights(runs):
    root, _ = runs
    run = root / "results/micro/seed0/zsre/bart/mend"
    saved = torch.load(run / "editor.pt", weights_only=True)
    loaded = load_editor(run).editor.state_dict()
    assert saved.keys() == loaded.keys() and all(saved[k].equal(loaded[k]) for k in saved)


def test_the_cache_keeps_its_tuned_threshold(runs):
    root, _ = runs
    run = root / "results/micro/seed0/zsre/bart/cache"
    tuned = json.loads((run / MANIFEST).read_text())["tuned"]["threshold"]
    assert load_editor(run).editor.threshold == pytest.approx(tuned)


def test_manifest_describes_the_run(runs):
    root, _ = runs
    m = json.loads((root / "results/micro/seed0/zsre/bart/mend" / MANIFEST).read_text())
    assert m["experiment"]["editor_options"]["rank"] == 8 and m["checkpoint"] == "editor.pt"
    assert m["base_model"]["path"] == "results/micro/seed0/models/bart" and len(m["base_model"]["sha256"]) == 64
    assert m["versions"]["torch"] in (torch.__version__, torch.__version__.split("+")[0])
    assert m["run_dir"] == "results/micro/seed0/zsre/bart/mend"


def _docs_block(lang: str, after: str = "") -> str:
    text = (ROOT / "docs/api.md").read_text(encoding="utf-8")
    return re.search(rf"{after}.*?```{lang}\n(.*?)```", text, re.S).group(1)


def test_docs_example_runs_and_the_edits_take(runs):
    """docs/api.md's example as written, its run directory the fixture's FT run (a micro MEND trained in seconds
    edits nothing; on the tiny run MEND edits these facts): every edit succeeds, and the facts are dev questions
    of the tiny profile's world with one of their alternative answers."""
    root, records = runs
    code = _docs_block("python")
    tiny_run = 'run_dir = "results/tiny/seed0/zsre/bart/mend"'
    assert code.count(tiny_run) == 1
    code = code.replace(tiny_run, f'run_dir = "{root}/results/micro/seed0/zsre/bart/ft"')
    printed: list[tuple] = []
    ns: dict = {"print": lambda *args: printed.append(args)}
    exec(compile(code, "docs/api.md", "exec"), ns)
    facts = ns["facts"]
    dev = {r.src: r.alternatives for r in records}
    assert all(prompt in dev and target in dev[prompt] for prompt, target in facts), facts
    # Per fact: "prompt [before] -> [after]", then "target success seconds peak_mb".
    assert [p[1] for p in printed[1::2]] == [1.0] * len(facts), printed
    assert [p[3] for p in printed[0::2]] == [[t] for _, t in facts], printed


def test_edit_command_prints_answers_before_and_after(runs, capsys):
    """docs/api.md's command as written, its --run the fixture's FT run."""
    root, _ = runs
    argv = shlex.split(_docs_block("", after="## Command line").replace("\\\n", " "))
    assert argv[:3] == ["python", "-m", "mendrepro"]
    argv = argv[3:]
    argv[argv.index("--run") + 1] = str(root / "results/micro/seed0/zsre/bart/ft")
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    prompt, target = argv[argv.index("--prompt") + 1], argv[argv.index("--target") + 1]
    assert f"prompt: {prompt}" in out and "before:" in out and f"after:  {target}" in out
    assert "success on the prompt: 1.00" in out


def test_a_run_without_manifest_is_refused_with_what_to_do(tmp_path):
    run = tmp_path / "results/tiny/seed0/zsre/bart/mend"
    run.mkdir(parents=True)
    (run / "editor.pt").write_bytes(b"")
    with pytest.raises(ManifestError, match="no manifest.json.*snakemake --cores all --force"):
        load_editor(run)


def test_a_changed_base_model_is_refused(runs, tmp_path):
    root, _ = runs
    run = root / "results/micro/seed0/zsre/bart/ft"
    original = (run / MANIFEST).read_text()
    m = json.loads(original)
    m["base_model"]["sha256"] = "0" * 64
    try:
        (run / MANIFEST).write_text(json.dumps(m))
        with pytest.raises(ValueError, match="changed since"):
            load_editor(run)
        assert load_editor(run, check_model=False).exp.editor == "ft"
    finally:
        (run / MANIFEST).write_text(original)


def test_cli_lists_every_command_and_every_option_has_help():
    import argparse

    from mendrepro.report import TABLE_COMMANDS

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    assert set(TABLE_COMMANDS) | {"memory-probe", "edit", "train", "evaluate"} <= set(helps)
    assert all(helps.values())
    for name, p in sub.choices.items():
        for action in p._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"{name} {action.option_strings} has no help"
    assert "JSON" in sub.choices["train"]._option_string_actions["--exp"].help
