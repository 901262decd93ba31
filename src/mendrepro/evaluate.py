"""Evaluate an editor: one raw JSON line per edit, then ES and drawdown aggregated from those lines only.

ES = mean over edits of the edit's success rate on its equivalence examples (every rephrase; Wikitext: several
random prefix drops). acc DD = locality accuracy before − after; ppl DD = perplexity after − before, each
perplexity exp(token-weighted mean NLL over all locality tokens of the run).
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import torch
from tqdm import tqdm

from mendrepro.batches import Batch, forward, to_device
from mendrepro.data.formats import write_json_atomic, write_jsonl_atomic
from mendrepro.editors.base import Editor
from mendrepro.losses import accuracy_per_example, nll_per_example, token_nll
from mendrepro.memory import peak_memory_mb, reset_peak
from mendrepro.tasks import merge


def _locality(family: str, logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """Per locality example: summed token NLL and token count (lm); accuracy and NLL (classifiers, QA)."""
    if family == "lm":
        tok, mask = token_nll(family, logits, labels)
        return {"nll": tok.sum(-1).tolist(), "tokens": mask.sum(-1).int().tolist()}
    return {
        "acc": accuracy_per_example(family, logits, labels).tolist(),
        "nll": nll_per_example(family, logits, labels).tolist(),
    }


def timed_edit(
    editor: Editor, inner: Batch, device="cpu", key: str = ""
) -> tuple[dict[str, torch.Tensor], float, dict]:
    """``editor.edit_for(inner, key)``, its wall time in seconds and its peak memory
    (:func:`mendrepro.memory.peak_memory_mb`): how evaluation and the Python API (:mod:`mendrepro.api`) apply one
    (batched) edit."""
    return _timed(lambda: editor.edit_for(inner, key), device)


def _timed(run, device):
    reset_peak(device)
    t0 = time.perf_counter()
    out = run()
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - t0, peak_memory_mb(device)


def _pre_edit(editor: Editor, outer: Batch, loc: Batch) -> tuple[torch.Tensor, dict, dict]:
    """Equivalence success and locality of the pre-edit model, and locality of the untouched original model."""
    model, family = editor.model, editor.family
    base = editor.base_params()
    pre_outer = accuracy_per_example(family, forward(model, outer, base), outer["labels"])
    pre_loc = _locality(family, forward(model, loc, base), loc["labels"])
    # The untouched original model, for every editor: ENN trains the base model itself (drawdown against the
    # original), and the claims table checks from these lines that no other editor changes the pre-edit model
    # (for those, the pre-edit forward pass above already is the original model's).
    orig_loc = _locality(family, forward(model, loc), loc["labels"]) if editor.changes_base_model else pre_loc
    return pre_outer, pre_loc, orig_loc


@torch.no_grad()
def evaluate_editor(
    editor: Editor, task, order: list[int], k: int, n_loc: int, seed: int, device="cpu", edit_batch: int = 1
) -> list[dict]:
    """Apply the dev edits ``order`` (a whole number of batches of ``k``) and return one record per edit.

    With ``k`` = 1 and ``edit_batch`` B > 1, an editor whose edits can run side by side (``groups_edits``: FT,
    FT+KL, FT+L) applies B independent edits at a time, each to its own copy of the edited weights: the same
    records as one at a time up to float rounding, but for ``seconds`` (the group's time shared equally)."""
    if not order or len(order) % k:
        raise ValueError(f"{len(order)} evaluation edits are not a positive multiple of k = {k}")
    editor.eval()
    model, family = editor.model, editor.family
    model.to(device)
    editor.to(device)
    rng = random.Random(seed)
    n_edits = len(order)
    group = edit_batch if k == 1 and editor.groups_edits else 1
    stride = k if group == 1 else group
    records = []
    for start in tqdm(range(0, n_edits, stride), desc=f"evaluate k={k}", mininterval=5):
        reqs = [task.request(i, rng, n_loc=n_loc, all_equiv=True) for i in order[start : start + stride]]
        req = merge(reqs, task.tok.pad_token_id)
        outer, loc = (to_device(b, device) for b in (req.outer, req.loc))
        pre_outer, pre_loc, orig_loc = _pre_edit(editor, outer, loc)
        n_taken = len(getattr(editor, "steps_taken", ()))
        if group == 1:
            new, seconds, mem = timed_edit(editor, to_device(req.inner, device), device, req.id)
            post_logits = editor.edited_logits(outer, new)
            post_loc_logits = editor.edited_logits(loc, new)
            batches = [start // k] * len(reqs)
        else:
            inners, keys = [to_device(r.inner, device) for r in reqs], [r.id for r in reqs]
            news, seconds, mem = _timed(
                lambda inners=inners, keys=keys: editor.edit_group(inners, keys, task.tok.pad_token_id), device
            )
            seconds /= len(reqs)
            post_logits = editor.group_logits(outer, [r.outer["labels"].shape[0] for r in reqs], news)
            post_loc_logits = editor.group_logits(loc, [r.loc["labels"].shape[0] for r in reqs], news)
            batches = list(range(start, start + len(reqs)))
        # FT's optimiser steps per edit (per batch of k), for the paper-scale cost estimate (make rehearse).
        taken = getattr(editor, "steps_taken", None)
        steps = taken[n_taken:] * (len(reqs) if group == 1 else 1) if taken is not None else None
        post_outer = accuracy_per_example(family, post_logits, outer["labels"])
        post_nll = nll_per_example(family, post_logits, outer["labels"])
        post_loc = _locality(family, post_loc_logits, loc["labels"])
        o = lo = 0
        for j, (r, b) in enumerate(zip(reqs, batches, strict=True)):
            n_o, n_l = r.outer["labels"].shape[0], r.loc["labels"].shape[0]
            sl_o, sl_l = slice(o, o + n_o), slice(lo, lo + n_l)
            records.append(
                {
                    "id": r.id,
                    "batch": b,
                    "k": k,
                    "edit_input": r.text,
                    "target": r.target,
                    "equivalence": [
                        {"text": t, "success": float(s), "success_before": float(sb), "nll": float(n)}
                        for t, s, sb, n in zip(
                            r.outer_texts, post_outer[sl_o], pre_outer[sl_o], post_nll[sl_o], strict=True
                        )
                    ],
                    "es": float(post_outer[sl_o].mean()),
                    "locality_before": {key: v[sl_l] for key, v in pre_loc.items()},
                    "locality_after": {key: v[sl_l] for key, v in post_loc.items()},
                    "locality_original": {key: v[sl_l] for key, v in orig_loc.items()},
                    "seconds": seconds,
                    "memory": mem,
                    **({"steps": steps[j]} if steps is not None else {}),
                    **r.meta,
                }
            )
            o, lo = o + n_o, lo + n_l
    return records


def aggregate(records: list[dict], family: str) -> dict:
    """ES and drawdown of a run, from its raw per-edit records."""
    es = sum(r["es"] for r in records) / len(records)
    out = {"n": len(records), "es": es, "seconds_per_edit": sum(r["seconds"] for r in records) / len(records)}
    if family == "lm":

        def ppl(side: str) -> float:
            nll = sum(sum(r[side]["nll"]) for r in records)
            toks = sum(sum(r[side]["tokens"]) for r in records)
            return math.exp(nll / toks)

        before, after = ppl("locality_before"), ppl("locality_after")
        out.update(dd_kind="ppl", loc_before=before, loc_after=after, dd=after - before)
        if all("locality_original" in r for r in records):
            out.update(loc_original=ppl("locality_original"), dd_original=after - ppl("locality_original"))
    else:

        def acc(side: str) -> float:
            vals = [a for r in records for a in r[side]["acc"]]
            return sum(vals) / len(vals)

        before, after = acc("locality_before"), acc("locality_after")
        out.update(dd_kind="acc", loc_before=before, loc_after=after, dd=before - after)
        if all("locality_original" in r for r in records):
            out.update(loc_original=acc("locality_original"), dd_original=acc("locality_original") - after)
    if all("flip" in r for r in records):
        # FEVER under the release's rule: ES on the edits that flip the prediction, beside the headline over all.
        flips = [r["es"] for r in records if r["flip"]]
        out.update(n_flip=len(flips), es_flip=sum(flips) / len(flips) if flips else None)
    if all("steps" in r for r in records):  # FT: optimiser steps per edit (the paper-scale estimate reads these)
        steps = sorted(r["steps"] for r in records)
        out.update(steps_mean=sum(steps) / len(steps), steps_median=steps[len(steps) // 2], steps_max=steps[-1])
    out["peak_edit_memory_mb"] = max(r["memory"]["peak_mb"] for r in records)
    out["memory_kind"] = records[0]["memory"]["kind"]
    return out


def write_records(records: list[dict], path: Path) -> None:
    """The raw per-edit lines, written atomically."""
    write_jsonl_atomic(path, records)


def write_metrics(metrics: dict, path: Path) -> None:
    write_json_atomic(path, metrics)


def read_records(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
