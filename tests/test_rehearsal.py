"""The dress rehearsal: config/rehearsal.yaml is config/paper.yaml changed only where it must be, and the staged
mirror holds what the paper profile's input rules and loaders read (at small width: the formats are the real ones)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from mendrepro.rehearsal.stage import REAL_CONFIGS, stage
from mendrepro.rehearsal.tokenizers import BERT_SPECIALS, bert_vocab, bpe_files

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["Ada Lovelace was born in London .", "Who is the father of Ada Lovelace ?"] * 20


def _load(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / name).read_text(encoding="utf-8"))


def _flatten(d, prefix=()):
    if isinstance(d, dict):
        out = {}
        for k, v in d.items():
            out.update(_flatten(v, (*prefix, str(k))))
        return out or {prefix: {}}
    return {prefix: d}


SMALL_COUNTS = {
    ("train", "steps"),
    ("train", "val_every"),
    ("train", "n_val"),
    ("train", "patience"),
    ("eval", "n_edits"),
}


def drift(paper: dict, reh: dict) -> list[str]:
    """Every difference between the two configs that the rehearsal may not make (empty: none)."""
    problems = []
    placed_p, placed_r = paper["data"]["placed"], reh["data"]["placed"]
    # Whole sections the rehearsal replaces: Table 4 only, no memory probe (its GPU sizes are `make gpu-check`).
    if reh.get("tables") != {"table4": paper["tables"]["table4"]}:
        problems.append("tables: must be paper.yaml's table4 alone")
    if "memory_probe" in reh or "memory_probe" in reh.get("resources", {}):
        problems.append("memory_probe: the rehearsal runs no memory probe")
    p = {k: v for k, v in _flatten(paper).items() if k[0] not in ("tables", "memory_probe")}
    p = {k: v for k, v in p.items() if k[:2] != ("resources", "memory_probe")}
    r = {k: v for k, v in _flatten(reh).items() if k[0] != "tables"}
    for key in sorted(set(p) | set(r)):
        name = ".".join(key)
        if key not in p or key not in r:
            problems.append(f"{name}: only in {'paper' if key in p else 'rehearsal'}")
            continue
        a, b = p[key], r[key]
        if key == ("profile",):
            ok = b == "rehearsal"
        elif key == ("launcher",):
            cpu = a.replace("workflow/accelerate/gpu.yaml", "workflow/accelerate/cpu.yaml")
            ok = b == f"HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 {cpu}" and cpu != a
        elif key in (("data", "placed"), ("data", "mirror")):
            ok = b == reh["data"]["mirror"] and b.startswith("build/")
        elif key[0] == "data":
            ok = b == a.replace("results/paper/", "results/rehearsal/", 1)
        elif key[-2:] == ("state_dict", "file"):
            ok = b == str(Path(placed_r) / Path(a).relative_to(placed_p))
        elif key in SMALL_COUNTS or (key[0] == "tasks" and key[-1] == "n_heldout"):
            ok = isinstance(b, int) and 0 < b <= 10 and b <= a
        elif key[0] == "editors" and key[-1] == "max_steps":
            ok = isinstance(b, int) and 0 < b <= 10 and b <= a
        elif key[0] == "resources" and key[-1] == "gpu":
            ok = b == 0
        else:
            ok = a == b
        if not ok:
            problems.append(f"{name}: paper {a!r}, rehearsal {b!r}")
    return problems


def test_rehearsal_differs_from_paper_only_where_it_must():
    assert drift(_load("paper.yaml"), _load("rehearsal.yaml")) == []


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c["editors"]["mend"]["options"].update(rank=64),
        lambda c: c["models"]["bart"].update(max_len=16),
        lambda c: c["train"].update(accumulate=1),
        lambda c: c["tasks"]["fever"].update(fever_flip_rule="always"),
        lambda c: c["train"].update(steps=100),
        lambda c: c.update(launcher="{python} -m mendrepro"),
        lambda c: c["tables"]["table4"]["editors"].pop(),
    ],
)
def test_the_drift_check_catches_a_change(change):
    reh = copy.deepcopy(_load("rehearsal.yaml"))
    change(reh)
    assert drift(_load("paper.yaml"), reh)


def test_bert_vocab_has_the_real_layout():
    vocab = bert_vocab(TEXTS, size=2000)
    assert len(vocab) == 2000 == len(set(vocab))
    assert {t: vocab.index(t) for t in BERT_SPECIALS} == BERT_SPECIALS
    assert vocab[1] == "[unused0]" and vocab[104] == "[unused99]" and "ada" in vocab


def test_bpe_vocab_has_the_specials_where_the_real_ones_are():
    vocab, merges = bpe_files(TEXTS, 1000, ("<s>", "<pad>", "</s>", "<unk>"), ("<mask>",))
    assert len(vocab) == 1000 and sorted(vocab.values()) == list(range(1000))
    assert [vocab[t] for t in ("<s>", "<pad>", "</s>", "<unk>", "<mask>")] == [0, 1, 2, 3, 999]
    assert merges and all(len(m.split(" ")) == 2 for m in merges)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    out = tmp_path_factory.mktemp("rehearsal") / "mirror"
    stage(_load("paper.yaml"), out, small=True)
    return out


def test_staged_files_pass_the_paper_rules_checks(mirror, tmp_path):
    from mendrepro.data.inputs import HubDataset, PlacedFile, export_hub, place

    paper = _load("paper.yaml")
    assert json.loads((mirror / "staged.json").read_text())["models"].keys() == {"bert", "bart", "gpt2"}
    for key, spec in paper["downloads"].items():
        out = tmp_path / "inputs" / key
        if spec["kind"] == "placed":
            pf = PlacedFile(key=key, expected=str(mirror / spec["file"]), source=spec["source"])
            assert place(pf, mirror / spec["file"], out) > 0, key
        else:
            assert export_hub(HubDataset.from_spec({"key": key, **spec}), out, mirror=str(mirror)) > 0, key


def test_staged_models_load_as_the_paper_profile_loads_them(mirror, tmp_path):
    from mendrepro.models import edited_parameter_names, load_model
    from mendrepro.pretrained import fetch_source

    paper = _load("paper.yaml")
    for name in ("bert", "bart", "gpt2"):
        m = paper["models"][name]
        source = copy.deepcopy(m["source"])
        if "state_dict" in source:  # where the rehearsal config points it
            rel = Path(source["state_dict"]["file"]).relative_to(paper["data"]["placed"])
            source["state_dict"]["file"] = str(mirror / rel)
        fetch_source(tmp_path / name, name=name, arch=m["arch"], source=source, mirror=mirror)
        model, tok = load_model(tmp_path / name, m["arch"])
        vocab = REAL_CONFIGS[m["arch"]]["vocab_size"]
        assert len(tok) == vocab + (1 if source.get("add_pad_token") else 0), name
        embeddings = (model.bert if m["arch"] == "bert" else model).get_input_embeddings()
        assert embeddings.weight.shape[0] == len(tok), name
        assert edited_parameter_names(model, tuple(m["edit_params"])), name
        assert tok(["a b", "a"], padding=True)["input_ids"], name  # a pad token, real or added


def _fake_eval(results: Path, editor: str, seconds: float, steps: int, loop_s: int, n: int = 4) -> None:
    """One rehearsal evaluate job's files: benchmark, metrics, log with the finished progress bar, raw lines."""
    cell = results / "seed0/zsre/bart" / editor / "eval_k1"
    cell.mkdir(parents=True)
    (cell / "metrics.json").write_text(json.dumps({"n": n}))
    line = json.dumps({"seconds": seconds, "steps": steps}) + "\n"
    (cell / "edits.jsonl").write_text(line * n)
    bench = results / "benchmarks/seed0/evaluate/zsre/bart" / editor / "k1.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text(f"s\tmax_rss\n{loop_s + 10}\t500\n")
    log = results / "logs/seed0/evaluate/zsre/bart" / editor / "k1.log"
    log.parent.mkdir(parents=True)
    log.write_text(f"evaluate k=1: 100%|##########| {n}/{n} [00:{loop_s:02d}<00:00,  1.00it/s]\n")


def test_ft_edits_are_costed_by_measured_steps_not_the_cap(tmp_path):
    """FT's paper-scale seconds per edit: the scoring around the edit plus the seconds per step times the steps a
    trained run measured (FT stops at its first success), or the paper's cap where no trained run has the cell."""
    from mendrepro.rehearsal.estimate import jobs

    reh, paper = _load("rehearsal.yaml"), _load("paper.yaml")
    results, trained = tmp_path / "rehearsal", tmp_path / "tiny"
    # 4 edits, each 5 steps (the rehearsal's cap) in 2 s; the loop took 12 s: 1 s per edit of scoring.
    _fake_eval(results, "ft", seconds=2.0, steps=reh["editors"]["ft"]["options"]["max_steps"], loop_s=12)
    _fake_eval(results, "ftkl", seconds=2.0, steps=reh["editors"]["ftkl"]["options"]["max_steps"], loop_s=12)
    (trained / "seed0/zsre/bart/ft/eval_k1").mkdir(parents=True)
    (trained / "seed0/zsre/bart/ft/eval_k1/metrics.json").write_text(json.dumps({"steps_mean": 1.5}))
    df = jobs(results, reh, paper, train_steps=10, eval_edits=100, trained=trained).set_index("job")
    per_step = 2.0 / reh["editors"]["ft"]["options"]["max_steps"]
    ft, ftkl = df.loc["zsre/bart/ft/k1"], df.loc["zsre/bart/ftkl/k1"]
    assert ft["ft_steps_from"] == "trained run" and ft["s_per_unit"] == pytest.approx(1.0 + per_step * 1.5)
    cap = paper["editors"]["ftkl"]["options"]["max_steps"]
    assert ftkl["ft_steps_from"] == "paper max_steps" and ftkl["s_per_unit"] == pytest.approx(1.0 + per_step * cap)
