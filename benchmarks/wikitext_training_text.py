"""Does the text MEND trains on decide its Wikitext trade? Two diagnostics on a finished tiny run.

    .venv/bin/python -m benchmarks.wikitext_training_text results/tiny-few-passages /tmp/wikitext-training-text

MEND on the run's GPT-2 is trained, 400 steps at the grid's rates 3e-5 and 3e-4 (c_edit 0.1), on other training
text than the run's, and validated on the run's own 60 held-out dev passages. The run is that of
config/tiny-few-passages.yaml (the 300-person world's Wikitext corpus, on which the question arose); any finished
run works, its Wikitext world read where it wrote it:

1. **Article passages.** The small corpus's 347 training passages are 85 persons' articles and 262 paragraphs of
   the world's almanac (short claims in random order), while every dev passage is an article. Here the editor trains
   on the articles only, once with one passage per article (85) and once with a window starting at every sentence
   (266), its locality text the articles too.
2. **Text the base model never trained on.** The tiny GPT-2 pre-trains on the same training text the editors then
   edit and keep, and has partly memorised it. Here a GPT-2 is pre-trained as the tiny one (same steps and rate) on
   the almanac and every other article; MEND then trains on sentence windows of the articles it saw or of the ones
   it did not (locality text likewise), validated on dev passages self-sampled from that model.

Each row is one validation (every 200 steps): ES and perplexity drawdown against the original model on the held-out
passages, the budget (2% of the original perplexity), and the training locality KL (running mean) beside the
validation one. Every job runs `python -m mendrepro train` / `pretrain` as the workflow does, one core each, seeded;
about 12 minutes on two cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mendrepro.data.synthetic import ALMANAC_TITLE, world_folder
from mendrepro.data.wikitext import load_wikitext_raw, write_self_sample
from mendrepro.models import load_model
from mendrepro.sampling import self_sample

_CELLS = ((3e-5, 0.1), (3e-4, 0.1))


def _exp(base: dict, lr: float, c_edit: float) -> dict:
    """The run's own MEND training experiment at another rate and edit weight, and 400 steps."""
    return {**base, "train": {**base["train"], "lr": lr, "c_edit": c_edit, "steps": 400}}


def _articles(raw: str) -> tuple[str, str]:
    """The articles part of a wiki.train.raw and its almanac."""
    i = raw.index(f" = {ALMANAC_TITLE} = ")
    return raw[:i], raw[i:]


def _windows(tok, paragraphs: list[str], min_tokens: int = 50) -> list[str]:
    """Each paragraph from each of its sentences on, while at least ``min_tokens`` tokens remain."""
    out = []
    for p in paragraphs:
        sents = p.split(" . ")
        for j in range(len(sents)):
            w = " . ".join(sents[j:])
            if len(tok(w, add_special_tokens=False)["input_ids"]) >= min_tokens:
                out.append(w)
    return out


def _sample(model_dir: Path, passages: list[str], out: Path, seed: int) -> None:
    model, tok = load_model(model_dir, "gpt2")
    write_self_sample(out, self_sample(model, tok, passages, 10, 40, seed=seed))


def _train(name: str, exp: dict, model: Path, files: dict, out: Path) -> dict:
    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "mendrepro", "--threads", "1", "train", "--exp", json.dumps(exp), "--model",
           str(model), "--files", json.dumps({k: str(v) for k, v in files.items()}), "--out", str(d / "editor.pt"),
           "--metrics", str(d / "train.json")]  # fmt: skip
    with open(d / "train.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT)
    return json.loads((d / "train.json").read_text())


def _wiki_world(run: Path, wiki_train: str) -> tuple[Path, Path]:
    """The run's Wikitext world folder (the one holding the job's ``wiki_train`` file) and the tokenizer its GPT-2
    pre-trained with: the Wikitext world's own (``<run>/tokenizer-wikitext``, config world.wikitext) when it has one."""
    own = run / "tokenizer-wikitext"
    return Path(world_folder(wiki_train)), own if own.is_dir() else run / "tokenizer"


def main(run: Path, out: Path) -> None:
    manifest = run / "seed0/wikitext/gpt2/mend/manifest.json"
    if not manifest.is_file():
        raise SystemExit(f"wikitext_training_text: {manifest}: no such file (a finished tiny run's MEND on GPT-2)")
    written = json.loads(manifest.read_text())
    base = written["experiment"]
    out.mkdir(parents=True, exist_ok=True)
    world_dir, tokenizer = _wiki_world(run, written["data_files"]["wiki_train"])
    seed0, world = run / "seed0", world_dir / "wikitext"
    model = seed0 / "models/gpt2"
    articles, almanac = _articles((world / "wiki.train.raw").read_text())
    (out / "articles.raw").write_text(articles)
    _, tok = load_model(model, "gpt2")
    paragraphs = load_wikitext_raw(out / "articles.raw", 50)
    _sample(model, paragraphs, out / "articles.json", 0)
    _sample(model, _windows(tok, paragraphs), out / "windows.json", 0)

    # The half-split: a GPT-2 pre-trained on the almanac and every other article (each article one heading block).
    blocks = [b for b in articles.split("\n \n = ") if b.strip()]
    blocks = [blocks[0]] + [" = " + b for b in blocks[1:]]
    halves = {"seen": blocks[0::2], "unseen": blocks[1::2]}
    for name, bs in halves.items():
        (out / f"{name}.raw").write_text(" \n" + "\n \n".join(b.strip("\n").lstrip() for b in bs) + "\n \n")
    half_world = out / "half_world"
    (half_world / "wikitext").mkdir(parents=True, exist_ok=True)
    (half_world / "wikitext/wiki.train.raw").write_text((out / "seen.raw").read_text() + almanac)
    (half_world / "wikitext/wiki.valid.raw").write_text((world / "wiki.valid.raw").read_text())
    pre_exp = {k: base[k] for k in ("model", "pretrain", "profile", "seed", "task", "task_options")}
    half_model = out / "half_gpt2"
    with open(out / "half_gpt2.log", "w") as log:
        subprocess.run(
            [sys.executable, "-m", "mendrepro", "--threads", "2", "pretrain", "--exp", json.dumps(pre_exp), "--world",
             str(half_world), "--tokenizer", str(tokenizer), "--out", str(half_model), "--metrics",
             str(out / "half_gpt2.metrics.json")],
            check=True, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    for name in halves:
        _sample(half_model, _windows(tok, load_wikitext_raw(out / f"{name}.raw", 50)), out / f"{name}.json", 0)
    _sample(half_model, load_wikitext_raw(world / "wiki.valid.raw", 50), out / "half_valid.json", 1)

    dev = {"self_sample_dev": seed0 / "self_sample/valid.json", "wiki_dev": world / "wiki.valid.raw"}
    half_dev = {"self_sample_dev": out / "half_valid.json", "wiki_dev": world / "wiki.valid.raw"}
    jobs = []
    for lr, c in _CELLS:
        exp = _exp(base, lr, c)
        tiny = {"self_sample_train": seed0 / "self_sample/train.json", "wiki_train": world / "wiki.train.raw"}
        jobs += [
            (f"tiny passages, lr {lr:g}", exp, model, {**dev, **tiny}),
            (f"articles (85), lr {lr:g}", exp, model, {**dev, "self_sample_train": out / "articles.json",
                                                       "wiki_train": out / "articles.raw"}),
            (f"article windows (266), lr {lr:g}", exp, model, {**dev, "self_sample_train": out / "windows.json",
                                                               "wiki_train": out / "articles.raw"}),
        ]  # fmt: skip
        jobs += [
            (f"half GPT-2, {name} windows, lr {lr:g}", exp, half_model,
             {**half_dev, "self_sample_train": out / f"{name}.json", "wiki_train": out / f"{name}.raw"})
            for name in halves
        ]  # fmt: skip
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda j: _train(j[0].replace(" ", "_").replace(",", ""), *j[1:], out), jobs))
    print("| training text | step | val ES | val DD | allowed | val loc KL | train loc KL |")
    print("|---|---|---|---|---|---|---|")
    budget = base["train"]["checkpoint_budget"]["perplexity"]
    for (label, *_), summary in zip(jobs, done, strict=True):
        for h in summary["history"]:
            print(
                f"| {label} | {h['step']} | {h['es']:.3f} | {h['dd']:.4f} | {budget * h['ppl_original']:.4f} | "
                f"{h['loc']:.4f} | {h['train_loc']:.4f} |"
            )
    half = json.loads((out / "half_gpt2.metrics.json").read_text())
    print(f"\nhalf GPT-2: dev perplexity {half['eval']['wiki_valid']['ppl']:.3f}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__.split("\n\n")[1])
    main(Path(sys.argv[1]), Path(sys.argv[2]))
