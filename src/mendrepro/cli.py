"""The commands of ``python -m mendrepro``: those the Snakemake rules call (or through accelerate launch), the
report commands, and ``edit``, which edits a trained editor's base model from the command line.

Each pipeline command takes ``--exp`` (the experiment as JSON, :func:`mendrepro.config.resolve_experiment`) and
explicit input and output paths, logs to stderr, and writes its outputs atomically.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from pathlib import Path

import torch

from mendrepro import grid_cells
from mendrepro.build import build_editor, build_task, evaluation_editor
from mendrepro.config import Experiment
from mendrepro.data.download import DownloadError
from mendrepro.data.formats import read_jsonl, write_json_atomic
from mendrepro.data.synthetic import WorldConfig, all_world_texts, generate_world, write_world
from mendrepro.data.tokenizer import load_tokenizer, train_word_tokenizer
from mendrepro.data.wikitext import load_self_sample, load_wikitext_raw, write_self_sample
from mendrepro.difficulty import by_difficulty, record_sample, surprise_summary, target_surprise
from mendrepro.editors.base import Editor
from mendrepro.evaluate import aggregate, evaluate_editor, write_records
from mendrepro.forkserver import command_of
from mendrepro.manifest import write_manifest
from mendrepro.memory import start_peak_window
from mendrepro.models import freeze, load_model, save_model
from mendrepro.pretrain import pretrain
from mendrepro.pretrained import fetch_source
from mendrepro.report import TABLE_COMMANDS
from mendrepro.resume import Checkpointing, discard, fingerprint
from mendrepro.sampling import self_sample
from mendrepro.splits import dev_split, validation_batches
from mendrepro.tasks import EditSampler, merge
from mendrepro.train import train_editor

log = logging.getLogger("mendrepro")


def _setup(threads: int | None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if threads:
        torch.set_num_threads(threads)


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
            temperature=opts.get("sample_temperature", 1.0),
        )
        write_self_sample(out, samples)
        log.info("%s: %d self-samples written to %s", split, len(samples), out)


def cmd_target_surprise(args) -> None:
    model, tok = load_model(Path(args.model), args.arch)
    if args.samples:
        summary = surprise_summary(target_surprise(model, tok, load_self_sample(args.samples)))
    else:
        summary = {}
        for path in args.edits:
            records = read_jsonl(path)
            scores = target_surprise(model, tok, [record_sample(r, tok) for r in records])
            summary[path] = by_difficulty(records, {r["id"]: sc for r, sc in zip(records, scores, strict=True)})
    print(json.dumps(summary, indent=1))
    if args.out:
        write_json_atomic(args.out, summary)


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


def validation_requests(exp: Experiment, dev_task, pad_token_id: int) -> list:
    """The requests editor training validates on: the dev edits held out of every evaluation (mendrepro.splits,
    fixed across seeds), ``train.edits_per_step`` per request, each with ``train.n_val_loc`` locality examples
    (``train.n_loc`` when unset)."""
    cfg = exp.train
    _, heldout = dev_split(len(dev_task), exp.eval.seed, _n_heldout(exp))
    vrng = random.Random(exp.eval.seed + 1)
    n_loc = cfg.n_loc if cfg.n_val_loc is None else cfg.n_val_loc
    return [
        merge([dev_task.request(i, vrng, n_loc=n_loc) for i in idx], pad_token_id)
        for idx in validation_batches(heldout, cfg.edits_per_step, cfg.n_val)
    ]


def cmd_train(args) -> None:
    cell = None
    if args.ledger:  # a grid cell: its provenance is recorded, and a ledger cell of the same provenance replays
        cell = grid_cells.provenance(json.loads(args.exp), Path(args.model), _files(args))
        summary, why = grid_cells.replay(Path(args.ledger), cell)
        log.info("ledger: %s", why)
        if summary is not None:
            write_json_atomic(args.metrics, summary)
            return
    exp = Experiment.from_json(args.exp)
    torch.manual_seed(exp.seed)  # the editor's initialisation (MEND's V, KE's heads) follows the config seed
    # The memory figure plots the peak above what the process held before the model was loaded (imports).
    baseline_mb = start_peak_window(_device())
    model, tok = load_model(Path(args.model), exp.model.arch)
    freeze(model)
    files = _files(args)
    train_task, dev_task = build_task(exp, tok, "train", files, model), build_task(exp, tok, "dev", files, model)
    editor = build_editor(exp, model, None)
    cfg = exp.train
    val = validation_requests(exp, dev_task, tok.pad_token_id)
    log.info("validation: %d requests of %d held-out dev edits", len(val), cfg.edits_per_step)
    out = Path(args.out)
    # The resumable state lives beside the output (<out>.resume/) until every output of the job is written.
    inputs = [Path(args.model), *map(Path, files.values())]
    ckpt = Checkpointing.beside(out, args.checkpoint_every, fingerprint(json.loads(args.exp), inputs))
    summary = train_editor(
        editor,
        EditSampler(train_task, cfg.edits_per_step, cfg.n_loc, cfg.sampling),
        val,
        cfg,
        out,
        checkpointing=ckpt,
    )
    summary.update(_editor_keys(exp, editor), profile=exp.profile)
    summary["validation_edits"] = [i for req in val for i in req.id.split("+")]
    summary["memory"]["baseline_mb"] = baseline_mb
    if cell is not None:
        summary["provenance"] = cell
    write_json_atomic(args.metrics, summary)
    if out.name == "editor.pt":  # a run's editor (the learning-rate grid's checkpoints are temporary)
        write_manifest(out.parent, json.loads(args.exp), Path(args.model), files, checkpoint=out)
    discard(ckpt)


def cmd_grid_save(args) -> None:
    counts = grid_cells.save(Path(args.results), Path(args.ledger))
    log.info("ledger %s: %s", args.ledger, counts)
    if counts["skipped"]:
        log.warning(
            "%d cells record no provenance (trained without lr_grid.ledger) and were not saved", counts["skipped"]
        )


def cmd_evaluate(args) -> None:
    exp = Experiment.from_json(args.exp)
    torch.manual_seed(exp.seed)
    model, tok = load_model(Path(args.model), exp.model.arch)
    freeze(model)
    files = _files(args)
    dev_task = build_task(exp, tok, "dev", files, model)
    editor, tuned = evaluation_editor(exp, model, tok, files, Path(args.ckpt) if args.ckpt else None)
    ev = exp.eval
    order, _ = dev_split(len(dev_task), ev.seed, _n_heldout(exp))
    n_edits = min(ev.n_edits, len(order)) // ev.k * ev.k
    if n_edits < ev.n_edits:
        log.warning(
            "evaluating %d edits, not eval.n_edits = %d: the dev split has %d, of which %d are held out for "
            "validation (tasks.%s.n_heldout), in batches of k = %d",
            n_edits, ev.n_edits, len(dev_task), _n_heldout(exp), exp.task, ev.k,
        )  # fmt: skip
    records = evaluate_editor(editor, dev_task, order[:n_edits], ev.k, ev.n_loc, ev.seed, _device(), ev.edit_batch)
    write_records(records, Path(args.records))
    metrics = aggregate(records, exp.model.family)
    metrics.update(
        _editor_keys(exp, editor),
        n_edits=ev.k,
        profile=exp.profile,
        fever_flip_rule=exp.task_options.get("fever_flip_rule", "always"),
        **({"fever_prediction": exp.task_options.get("fever_prediction", "file")} if exp.task == "fever" else {}),
    )
    log.info("metrics: %s", metrics)
    write_json_atomic(args.metrics, metrics)
    if not args.ckpt:
        # An editor without training (FT, FT+KL, the cache): its run directory is described here, with what
        # evaluation tuned; a learned editor's manifest comes from its training job.
        write_manifest(Path(args.metrics).parent.parent, json.loads(args.exp), Path(args.model), files, tuned=tuned)


def cmd_edit(args) -> None:
    from mendrepro.api import load_editor  # the API's imports only for this command

    if len(args.prompt) != len(args.target):
        raise ValueError(f"{len(args.prompt)} --prompt but {len(args.target)} --target: give one target per prompt")
    editor = load_editor(args.run, device=args.device, check_model=not args.no_check)
    exp = editor.exp
    requests = editor.requests(zip(args.prompt, args.target, strict=True))  # checked before any answer is generated
    before = editor.answer(args.prompt, max_new_tokens=args.max_new_tokens)
    result = editor.edit(requests)
    after = editor.answer(args.prompt, result.model, max_new_tokens=args.max_new_tokens)
    print(f"editor {exp.editor} (kind {exp.editor_kind}) on {exp.model.name}, task {exp.task}: {args.run}")
    for info, b, a in zip(result.edits, before, after, strict=True):
        print(f"prompt: {info.prompt}")
        print(f"  target: {info.target}")
        print(f"  before: {b}")
        print(f"  after:  {a}")
        print(f"  success on the prompt: {info.success:.2f}")
    info = result.edits[0]
    print(
        f"one edit of k = {len(requests)}: {info.seconds:.3f} s, peak memory {info.memory['peak_mb']:.0f} MB "
        f"({info.memory['kind']})"
    )


# The commands dispatched to their own parsers before this one parses: the report commands (pandas and matplotlib
# only, never torch) and the memory probe. Listed here for --help; their options are in `<command> --help`.
EXTERNAL = {"memory-probe": "peak memory of one editor training step at the paper's model sizes, random weights"}


def _report_help() -> dict[str, str]:
    """Each report command's one-line help, read from the report parser (the one place it is written)."""
    from mendrepro.report import cli as report_cli

    parser = report_cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a.help for a in sub._choices_actions}


# Steps between resumable training states. On the tiny profile (BART, 2 CPU cores) a save took 0.06-0.09 s against
# 0.12 s per MEND step and 0.16 s per ENN step (whose state holds a copy of the base model): under 0.1% and about
# 0.5% of the training time. A killed paper job redoes at most this many steps.
CHECKPOINT_EVERY = 100

EXP_HELP = (
    "the experiment as JSON: the mapping mendrepro.config.resolve_experiment builds from the config for one task, "
    "model and editor (what the workflow passes as params.exp)"
)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (the usage is in ``--help``), exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} is less than 1")
    return n


def build_parser(with_external: bool = True) -> argparse.ArgumentParser:
    """The one command tree of ``python -m mendrepro``; ``with_external`` lists the report commands and the
    memory probe too (their help needs the report modules imported)."""
    p = OneLineParser(prog="python -m mendrepro", description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    sub = p.add_subparsers(dest="command", required=True, metavar="<command>")

    s = sub.add_parser("world", help="generate the synthetic world and its tokenizer (tiny profile)")
    s.add_argument("--world", required=True, help="mendrepro.data.synthetic.WorldConfig as JSON (config `world`)")
    s.add_argument("--out", required=True, help="the world's directory (its files per task below it)")
    s.add_argument("--tokenizer", required=True, help="the word-level tokenizer's JSON file")
    s.set_defaults(fn=cmd_world)

    s = sub.add_parser("pretrain", help="pre-train a tiny base model on the world (tiny profile)")
    s.add_argument("--exp", required=True, help=EXP_HELP)
    s.add_argument("--world", required=True, help="the world's directory (from `world`)")
    s.add_argument("--tokenizer", required=True, help="the tokenizer's directory")
    s.add_argument("--out", required=True, help="the base model's directory (model, tokenizer, spec.json)")
    s.add_argument("--metrics", required=True, help="pre-training summary (JSON)")
    s.set_defaults(fn=cmd_pretrain)

    s = sub.add_parser("self-sample", help="the Wikitext edit set: 10-token samples of the base LM")
    s.add_argument("--exp", required=True, help=EXP_HELP)
    s.add_argument("--model", required=True, help="the sampling base model's directory")
    s.add_argument("--wiki-train", required=True, help="Wikitext training text (wiki.train.raw)")
    s.add_argument("--wiki-valid", required=True, help="Wikitext validation text (wiki.valid.raw)")
    s.add_argument("--out-train", required=True, help="training edits (JSON)")
    s.add_argument("--out-valid", required=True, help="dev edits (JSON)")
    s.set_defaults(fn=cmd_self_sample)

    s = sub.add_parser("target-surprise", help="how much of each Wikitext edit target the base LM already predicts")
    s.add_argument("--model", required=True, help="the base model's directory")
    s.add_argument("--arch", default="gpt2", help="its architecture (gpt2, gptneo, gptj)")
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--samples", help="a self_sample JSON (the release's layout): the targets' NLL and tokens to change"
    )
    what.add_argument(
        "--edits", nargs="+", help="Wikitext edits.jsonl files: each editor's ES and drawdown by the tokens to change"
    )
    s.add_argument("--out", help="also write the summary here (JSON)")
    s.set_defaults(fn=cmd_target_surprise)

    s = sub.add_parser("fetch-model", help="fetch a pretrained checkpoint (paper profile) and write its manifest")
    s.add_argument("--name", required=True, help="the model's name in the config")
    s.add_argument("--arch", required=True, help="its architecture (bart, t5, bert, gpt2, gptneo, gptj)")
    s.add_argument("--source", required=True, help="the model's `source` config entry as JSON")
    s.add_argument("--out", required=True, help="the model directory (gets source.json)")
    s.add_argument("--mirror", default=None, help="a local mirror directory used instead of the network")
    s.set_defaults(fn=cmd_fetch_model)

    for name, fn, what in (
        ("train", cmd_train, "train a learned editor (MEND and variants, KE, ENN); writes editor.pt and its manifest"),
        ("evaluate", cmd_evaluate, "evaluate an editor on dev edits in batches of k: per-edit records and metrics"),
    ):
        s = sub.add_parser(name, help=what)
        s.add_argument("--exp", required=True, help=EXP_HELP)
        s.add_argument("--model", required=True, help="the base model's directory")
        s.add_argument("--files", required=True, help="JSON mapping of data file keys (zsre_train, ...) to paths")
        s.add_argument("--metrics", required=True, help="training summary or evaluation metrics (JSON)")
        if name == "train":
            s.add_argument("--out", required=True, help="best editor checkpoint (<run>/editor.pt)")
            s.add_argument(
                "--checkpoint-every",
                type=int,
                default=CHECKPOINT_EVERY,
                metavar="N",
                help="save the resumable training state (<out>.resume/) every N steps, rounded up to whole "
                f"optimiser steps; a rerun with the same --out and --exp continues from it; 0: never "
                f"(default: {CHECKPOINT_EVERY})",
            )
            s.add_argument(
                "--ledger",
                default=None,
                metavar="CELL",
                help="a grid cell's file in the ledger (lr_grid.ledger): record the run's provenance in --metrics, "
                "and copy CELL there instead of training when it was recorded with the same provenance",
            )
        else:
            s.add_argument("--ckpt", default=None, help="trained editor checkpoint (learned editors)")
            s.add_argument("--records", required=True, help="raw per-edit JSON lines")
        s.set_defaults(fn=fn)

    s = sub.add_parser(
        "grid-save", help="copy the grid cells of a results tree into the ledger (lr_grid.ledger), for a later run"
    )
    s.add_argument("--results", required=True, help="the results tree (results/<profile>)")
    s.add_argument("--ledger", required=True, help="the ledger folder (lr_grid.ledger)")
    s.set_defaults(fn=cmd_grid_save)

    s = sub.add_parser("edit", help="edit a trained editor's base model; print its answers before and after")
    s.add_argument("--run", required=True, help="a run directory, results/<profile>/seed<s>/<task>/<model>/<editor>")
    s.add_argument("--prompt", required=True, action="append", help="edit input (repeat for k edits at once)")
    s.add_argument(
        "--target", required=True, action="append", help="new target of each prompt (FEVER: SUPPORTS or REFUTES)"
    )
    s.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:N)")
    s.add_argument("--max-new-tokens", type=_positive_int, default=10, help="greedy answer length in tokens")
    s.add_argument("--no-check", action="store_true", help="skip the base model's sha256 check against the manifest")
    s.set_defaults(fn=cmd_edit)

    if with_external:
        for name, what in {**_report_help(), **EXTERNAL}.items():
            sub.add_parser(name, help=f"{what} (options: {name} --help)", add_help=False)
    return p


OWN_COMMANDS = frozenset({"world", "pretrain", "self-sample", "fetch-model", "train", "evaluate", "edit", "grid-save"})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in TABLE_COMMANDS:
        from mendrepro.report import cli as report_cli

        return report_cli.main(argv)
    if argv and argv[0] in EXTERNAL:
        from mendrepro.probe import main as probe_main

        _setup(None)
        return probe_main(argv[1:])
    # The pipeline's own commands skip importing the report modules (only --help and errors list them): about
    # 0.2 s of pandas per job, and the workflow runs over a hundred.
    p = build_parser(with_external=command_of(argv) not in OWN_COMMANDS)
    args = p.parse_args(argv)
    if args.command == "edit":
        # A person's command: a bad run directory, device or request is one line and exit status 2 (as a usage
        # error), never a traceback; the log's INFO lines stay off.
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights: ..." bars would be lines of their own on stderr
        if args.threads:
            torch.set_num_threads(args.threads)
        try:
            args.fn(args)
        except (OSError, ValueError) as e:
            print(f"python -m mendrepro edit: error: {_one_line(e)}", file=sys.stderr)
            return 2
        return 0
    _setup(args.threads)
    try:
        args.fn(args)
    except (FileNotFoundError, ValueError, DownloadError) as e:
        log.error("%s", e)
        return 1
    return 0


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) if str(e).strip() else type(e).__name__
    return text


if __name__ == "__main__":
    sys.exit(main())
