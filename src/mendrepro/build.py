"""Build the objects of one experiment: its edit task from the data files, and its editor from the registry.

The pipeline's commands (:mod:`mendrepro.cli`) and the Python API (:mod:`mendrepro.api`) both build through here,
so an editor loaded from a run directory is the very object its evaluation scored.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path

import torch
from torch import nn

from mendrepro.checks import check_data_file
from mendrepro.config import Experiment
from mendrepro.data.fever import load_fever
from mendrepro.data.nq import load_nq
from mendrepro.data.openwebtext import load_openwebtext
from mendrepro.data.wikitext import load_self_sample, load_wikitext_raw
from mendrepro.data.zsre import load_zsre
from mendrepro.editors.base import Editor
from mendrepro.editors.registry import editor_kind
from mendrepro.models import edited_parameter_names
from mendrepro.tasks import FEVER_PREDICTIONS, FeverTask, WikitextTask, ZsreTask, with_model_predictions

log = logging.getLogger(__name__)


def build_task(exp: Experiment, tok, split: str, files: dict[str, str], model: nn.Module | None = None):
    """The edit task of ``exp`` on ``split`` ("train" or "dev") from the data files named in ``files``.

    ``model`` is the original base model; FEVER with ``tasks.fever.fever_prediction: model`` needs it, for the
    classifier's own predictions that the edit label keeps or flips."""
    for key, path in files.items():
        if key.endswith(f"_{split}"):
            check_data_file(path)  # a directory or a non-UTF-8 byte: one line naming the file, not a traceback
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
        records = load_fever(files[f"fever_{split}"])
        source = opts.get("fever_prediction", "file")
        if source not in FEVER_PREDICTIONS:
            raise ValueError(f"tasks.fever.fever_prediction must be one of {FEVER_PREDICTIONS}, got {source!r}")
        if source == "model":
            if model is None:
                raise ValueError("tasks.fever.fever_prediction: model needs the base model to build the FEVER task")
            records = with_model_predictions(records, model, tok, max_len)
        return FeverTask(tok, records, opts.get("fever_flip_rule", "always"), max_len)
    if exp.task == "wikitext":
        # Locality text: Wikitext-103 (distilGPT-2), or OpenWebText when the workflow hands its files (GPT-Neo/J).
        if f"owt_{split}" in files:
            loc = load_openwebtext(files[f"owt_{split}"])
        else:
            loc = load_wikitext_raw(files[f"wiki_{split}"], min_words=opts.get("loc_min_words", 50))
        return WikitextTask(tok, load_self_sample(files[f"self_sample_{split}"]), loc, max_len)
    raise ValueError(f"unknown task {exp.task!r}")


def build_editor(exp: Experiment, model: nn.Module, ckpt: Path | None, loc_sampler=None) -> Editor:
    """The editor named by ``exp`` over ``model`` (its kind's class and typed options from the registry), with
    trained weights from ``ckpt`` if it has any."""
    kind = editor_kind(exp.editor_kind, exp.editor)
    cfg = kind.parse(exp.editor_options, exp.editor)
    extra = {"loc_sampler": loc_sampler} if kind.loc_sampler else {}
    names = edited_parameter_names(model, exp.model.edit_params)
    editor = kind.editor_class()(model, exp.model.family, names, cfg, **extra)
    if ckpt is not None:
        editor.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
    return editor


def evaluation_editor(
    exp: Experiment, model: nn.Module, tok, files: dict[str, str], ckpt: Path | None, tuned: dict | None = None
) -> tuple[Editor, dict]:
    """The editor as evaluation uses it, and what it tuned: FT+KL with its sampler of training-set locality
    examples; the cache with its threshold, tuned on training edits unless configured or given in ``tuned``
    (a run directory's manifest records the tuned value, so a reloaded cache needs no data)."""
    kind = editor_kind(exp.editor_kind, exp.editor)
    loc_sampler = None
    if kind.loc_sampler:
        train_task = build_task(exp, tok, "train", files, model)

        def loc_sampler(key: str):
            # Each edit's own stream (seeded by the run's seed and the edit's id): the same draws whether edits run
            # one at a time or side by side.
            lrng = random.Random(f"{exp.seed + 7}:{key}")
            return lambda: train_task.request(lrng.randrange(len(train_task)), lrng).loc

    editor = build_editor(exp, model, ckpt, loc_sampler)
    tuned = dict(tuned or {})
    if kind.tuned and "threshold" in tuned:
        editor.threshold_value.fill_(float(tuned["threshold"]))
    elif kind.tuned:
        # The cache's distance threshold is tuned on training edits (never on the dev edits it is scored on).
        train_task = build_task(exp, tok, "train", files, model)
        trng = random.Random(exp.seed + 11)
        n_tune = min(len(train_task), 200)
        idx = trng.sample(range(len(train_task)), n_tune)
        threshold = editor.tune([train_task.request(i, trng, n_loc=exp.eval.n_loc, all_equiv=True) for i in idx])
        log.info("cache threshold tuned on %d training edits: %.4f", n_tune, threshold)
        tuned["threshold"] = threshold
    return editor, tuned
