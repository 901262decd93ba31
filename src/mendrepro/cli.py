"""The commands the Snakemake rules call: ``python -m mendrepro <command> ...`` (or through accelerate launch).

Each command takes ``--exp`` (the experiment as JSON, composed by the workflow from the config) and explicit
input and output paths, logs to stderr, and writes its outputs atomically.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from pathlib import Path

import torch

from mendrepro.config import Experiment, from_dict
from mendrepro.data.download import DownloadError
from mendrepro.data.fever import load_fever
from mendrepro.data.formats import write_json_atomic
from mendrepro.data.nq import load_nq
from mendrepro.data.openwebtext import load_openwebtext
from mendrepro.data.synthetic import WorldConfig, all_world_texts, generate_world, write_world
from mendrepro.data.tokenizer import load_tokenizer, train_word_tokenizer
from mendrepro.data.wikitext import load_self_sample, load_wikitext_raw, write_self_sample
from mendrepro.data.zsre import load_zsre
from mendrepro.editors.base import Editor
from mendrepro.editors.cache import CacheConfig, CacheEditor
from mendrepro.editors.enn import EditableNetwork, ENNConfig
from mendrepro.editors.ft import FineTune, FTConfig
from mendrepro.editors.ke import KEConfig, KnowledgeEditor
from mendrepro.editors.mend import MEND, MendConfig
from mendrepro.evaluate import aggregate, evaluate_editor, write_records
from mendrepro.memory import start_peak_window
from mendrepro.models import edited_parameter_names, freeze, load_model, save_model
from mendrepro.pretrain import pretrain
from mendrepro.pretrained import fetch_source
from mendrepro.report import TABLE_COMMANDS, tables
from mendrepro.sampling import self_sample
from mendrepro.splits import dev_split, validation_batches
from mendrepro.tasks import EditSampler, FeverTask, WikitextTask, ZsreTask, merge
from mendrepro.train import train_editor

log = logging.getLogger("mendrepro")


def _setup(threads: int | None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if threads:
        torch.set_num_threads(threads)


def build_task(exp: Experiment, tok, split: str, files: dict[str, str]):
    """The edit task of ``exp`` on ``split`` ("train" or "dev") from the data files named in ``files``."""
    opts = exp.task_options
    max_len = exp.model.max_len
    if exp.task == "zsre":
        records = load_zsre(files[f"zsre_{split}"])
        if split == "train" and opts.get("train_locality", "nq") == "zsre":
            # As released (data_classes/zsre.py: NQ only for a split path without "train"): while training, the
            # locality examples are other zsRE training questions with their gold answers.
            return ZsreTask(tok, records, [(r.src, r.answers[0]) for r in records], max_len)
        return ZsreTask(tok, records, load_nq(files[f"nq_{split}"]), max_len)
    if exp.task == "fever":
        return FeverTask(tok, load_fever(files[f"fever_{split}"]), opts.get("fever_flip_rule", "always"), max_len)
    if exp.task == "wikitext":
        # Locality text: Wikitext-103 (distilGPT-2), or OpenWebText when the workflow hands its files (GPT-Neo/J).
        if f"owt_{split}" in files:
            loc = load_openwebtext(files[f"owt_{split}"])
        else:
            loc = load_wikitext_raw(files[f"wiki_{split}"], min_words=opts.get("loc_min_words", 50))
        return WikitextTask(tok, load_self_sample(files[f"self_sample_{split}"]), loc, max_len)
    raise ValueError(f"unknown task {exp.task!r}")


def build_editor(exp: Experiment, model, ckpt: Path | None, loc_sampler=None) -> Editor:
    """The editor named by ``exp`` over ``model``, with trained weights from ``ckpt`` if it has any."""
    names = edited_parameter_names(model, exp.model.edit_params)
    family = exp.model.family
    if exp.editor_kind == "mend":
        editor = MEND(model, family, names, from_dict(MendConfig, exp.editor_options, "editors.mend.options"))
    elif exp.editor_kind in ("ft", "ftkl"):
        opts = dict(exp.editor_options, kl=exp.editor_kind == "ftkl")
        editor = FineTune(model, family, names, FTConfig(**opts), loc_sampler=loc_sampler)
    elif exp.editor_kind == "ke":
        editor = KnowledgeEditor(model, family, names, from_dict(KEConfig, exp.editor_options, "editors.ke.options"))
    elif exp.editor_kind == "enn":
        editor = EditableNetwork(model, family, names, from_dict(ENNConfig, exp.editor_options, "editors.enn.options"))
    elif exp.editor_kind == "cache":
        editor = CacheEditor(model, family, names, from_dict(CacheConfig, exp.editor_options, "editors.cache.options"))
    else:
        raise ValueError(f"unknown editor kind {exp.editor_kind!r} for editor '{exp.editor}'")
    if ckpt is not None:
        editor.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
    return editor


def cmd_world(args) -> None:
    cfg = WorldConfig(**json.loads(args.world))
    world = generate_world(cfg)
    paths = write_world(world, Path(args.out))
    train_word_tokenizer(all_world_texts(world), Path(args.tokenizer))
    log.info("world written: %s", {k: str(v) for k, v in paths.items()})


def cmd_pretrain(args) -> None:
    exp = Experiment.from_json(args.exp)
    tok = load_tokenizer(args.tokenizer)
    model, metrics = pretrain(exp.task, exp.model, exp.pretrain, tok, Path(args.world), exp.seed)
    save_model(model, tok, exp.model, Path(args.out))
    write_json_atomic(args.metrics, metrics)


def cmd_self_sample(args) -> None:
    exp = Experiment.from_json(args.exp)
    model, tok = load_model(Path(args.model), exp.model.arch)
    opts = exp.task_options
    for split, src, out in (
        ("train", args.wiki_train, args.out_train),
        ("valid", args.wiki_valid, args.out_valid),
    ):
        passages = load_wikitext_raw(src, min_words=opts.get("edit_min_words", 50))
        samples = self_sample(
            model,
            tok,
            passages,
            n_tokens=opts.get("n_sample_tokens", 10),
            prefix_tokens=opts.get("edit_prefix_tokens", 40),
            seed=exp.seed + (split == "valid"),
        )
        write_self_sample(out, samples)
        log.info("%s: %d self-samples written to %s", split, len(samples), out)


def cmd_fetch_model(args) -> None:
    source = json.loads(args.source)
    path = fetch_source(Path(args.out), name=args.name, arch=args.arch, source=source, mirror=args.mirror)
    log.info("%s: manifest written to %s", args.name, path)


def _device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def _files(args) -> dict[str, str]:
    return json.loads(args.files)


def _n_heldout(exp: Experiment) -> int:
    """How many dev edits of the task are held out of evaluation to validate editor training."""
    n = exp.task_options.get("n_heldout")
    if n is None:
        raise ValueError(f"tasks.{exp.task}.n_heldout is not set: how many dev edits validate editor training")
    return n


def _editor_keys(exp: Experiment, editor: Editor) -> dict:
    """What a training summary or metrics file says about its editor: id, kind, trained parameters (the editor
    network's own, never the frozen base model's), and how many edits it was trained with at once."""
    return {
        "task": exp.task,
        "model": exp.model.name,
        "editor": exp.editor,
        "editor_kind": exp.editor_kind,
        "editor_parameters": sum(p.numel() for p in editor.trainable_parameters()),
        "train_k": exp.train.edits_per_step,
        "seed": exp.seed,
    }


def cmd_train(args) -> None:
    exp = Experiment.from_json(args.exp)
    torch.manual_seed(exp.seed)  # the editor's initialisation (MEND's V, KE's heads) follows the config seed
    # The memory figure plots the peak above what the process held before the model was loaded (imports).
    baseline_mb = start_peak_window(_device())
    model, tok = load_model(Path(args.model), exp.model.arch)
    freeze(model)
    files = _files(args)
    train_task, dev_task = build_task(exp, tok, "train", files), build_task(exp, tok, "dev", files)
    editor = build_editor(exp, model, None)
    cfg = exp.train
    # Validation edits: the dev edits held out of every evaluation (mendrepro.splits), fixed across seeds.
    _, heldout = dev_split(len(dev_task), exp.eval.seed, _n_heldout(exp))
    vrng = random.Random(exp.eval.seed + 1)
    val = [
        merge([dev_task.request(i, vrng, n_loc=cfg.n_loc) for i in idx], tok.pad_token_id)
        for idx in validation_batches(heldout, cfg.edits_per_step, cfg.n_val)
    ]
    log.info("validation: %d requests of %d held-out dev edits", len(val), cfg.edits_per_step)
    summary = train_editor(
        editor,
        EditSampler(train_task, cfg.edits_per_step, cfg.n_loc, cfg.sampling),
        val,
        cfg,
        Path(args.out),
    )
    summary.update(_editor_keys(exp, editor), profile=exp.profile)
    summary["validation_edits"] = [i for req in val for i in req.id.split("+")]
    summary["memory"]["baseline_mb"] = baseline_mb
    write_json_atomic(args.metrics, summary)


def cmd_evaluate(args) -> None:
    exp = Experiment.from_json(args.exp)
    torch.manual_seed(exp.seed)
    model, tok = load_model(Path(args.model), exp.model.arch)
    freeze(model)
    files = _files(args)
    dev_task = build_task(exp, tok, "dev", files)
    loc_sampler = None
    if exp.editor_kind == "ftkl":
        train_task = build_task(exp, tok, "train", files)
        lrng = random.Random(exp.seed + 7)
        loc_sampler = lambda: train_task.request(lrng.randrange(len(train_task)), lrng).loc  # noqa: E731
    editor = build_editor(exp, model, Path(args.ckpt) if args.ckpt else None, loc_sampler)
    if exp.editor_kind == "cache":
        # The cache's distance threshold is tuned on training edits (never on the dev edits it is scored on).
        train_task = build_task(exp, tok, "train", files)
        trng = random.Random(exp.seed + 11)
        n_tune = min(len(train_task), 200)
        idx = trng.sample(range(len(train_task)), n_tune)
        threshold = editor.tune([train_task.request(i, trng, n_loc=exp.eval.n_loc, all_equiv=True) for i in idx])
        log.info("cache threshold tuned on %d training edits: %.4f", n_tune, threshold)
    ev = exp.eval
    order, _ = dev_split(len(dev_task), ev.seed, _n_heldout(exp))
    n_edits = min(ev.n_edits, len(order)) // ev.k * ev.k
    if n_edits < ev.n_edits:
        log.warning(
            "evaluating %d edits, not eval.n_edits = %d: the dev split has %d, of which %d are held out for "
            "validation (tasks.%s.n_heldout), in batches of k = %d",
            n_edits, ev.n_edits, len(dev_task), _n_heldout(exp), exp.task, ev.k,
        )  # fmt: skip
    records = evaluate_editor(editor, dev_task, order[:n_edits], ev.k, ev.n_loc, ev.seed, _device())
    write_records(records, Path(args.records))
    metrics = aggregate(records, exp.model.family)
    metrics.update(
        _editor_keys(exp, editor),
        n_edits=ev.k,
        profile=exp.profile,
        fever_flip_rule=exp.task_options.get("fever_flip_rule", "always"),
    )
    log.info("metrics: %s", metrics)
    write_json_atomic(args.metrics, metrics)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in TABLE_COMMANDS:
        return tables.main(argv)
    if argv and argv[0] == "memory-probe":
        from mendrepro.probe import main as probe_main

        _setup(None)
        return probe_main(argv[1:])
    p = argparse.ArgumentParser(prog="mendrepro", description=__doc__)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("world", help="generate the synthetic world and its tokenizer (tiny profile)")
    s.add_argument("--world", required=True, help="WorldConfig as JSON")
    s.add_argument("--out", required=True)
    s.add_argument("--tokenizer", required=True)
    s.set_defaults(fn=cmd_world)

    s = sub.add_parser("pretrain", help="pre-train a tiny base model on the world (tiny profile)")
    s.add_argument("--exp", required=True)
    s.add_argument("--world", required=True)
    s.add_argument("--tokenizer", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--metrics", required=True)
    s.set_defaults(fn=cmd_pretrain)

    s = sub.add_parser("self-sample", help="the Wikitext edit set: 10-token samples of the base LM")
    s.add_argument("--exp", required=True)
    s.add_argument("--model", required=True)
    s.add_argument("--wiki-train", required=True)
    s.add_argument("--wiki-valid", required=True)
    s.add_argument("--out-train", required=True)
    s.add_argument("--out-valid", required=True)
    s.set_defaults(fn=cmd_self_sample)

    s = sub.add_parser("fetch-model", help="fetch a pretrained checkpoint (paper profile) and write its manifest")
    s.add_argument("--name", required=True)
    s.add_argument("--arch", required=True)
    s.add_argument("--source", required=True, help="the model's `source` config entry as JSON")
    s.add_argument("--out", required=True, help="the model directory (gets source.json)")
    s.add_argument("--mirror", default=None, help="a local mirror directory used instead of the network")
    s.set_defaults(fn=cmd_fetch_model)

    for name, fn in (("train", cmd_train), ("evaluate", cmd_evaluate)):
        s = sub.add_parser(name, help=f"{name} an editor")
        s.add_argument("--exp", required=True)
        s.add_argument("--model", required=True)
        s.add_argument("--files", required=True, help="JSON mapping of data file keys to paths")
        s.add_argument("--metrics", required=True)
        if name == "train":
            s.add_argument("--out", required=True, help="best editor checkpoint")
        else:
            s.add_argument("--ckpt", default=None, help="trained editor checkpoint (learned editors)")
            s.add_argument("--records", required=True, help="raw per-edit JSON lines")
        s.set_defaults(fn=fn)

    args = p.parse_args(argv)
    _setup(args.threads)
    try:
        args.fn(args)
    except (FileNotFoundError, ValueError, DownloadError) as e:
        log.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
