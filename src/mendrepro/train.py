"""The training loop shared by the learned editors (MEND and its variants; KE and ENN use it too).

One step: sample k edits, apply them with the editor, and score the edited model:
L = c_edit · NLL(new target | equivalence example) + c_loc · KL(p_pre ‖ p_post) on locality examples.
Gradients accumulate over ``accumulate`` steps; the norm is clipped; a non-finite gradient skips the update.
Validation every ``val_every`` steps on a fixed set of dev edits; the best editor is saved; training stops after
``patience`` steps without improvement. Runs on CPU as is and on GPUs through ``accelerate launch``. With
``checkpointing``, the loop's whole state is saved every N steps and a restarted job continues from it to the same
result (:mod:`mendrepro.resume`).
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm import tqdm

from mendrepro import atomic
from mendrepro.batches import forward, to_device
from mendrepro.config import TrainConfig
from mendrepro.editors.base import Editor
from mendrepro.losses import accuracy_per_example, kl_loc, nll, nll_sum_and_count
from mendrepro.memory import peak_memory_mb, reset_peak
from mendrepro.resume import Checkpointing, interval, restore, save
from mendrepro.tasks import EditRequest

log = logging.getLogger(__name__)


def edit_losses(editor: Editor, req: EditRequest, device, apply=None) -> dict[str, torch.Tensor]:
    """The training objective's parts for one (batched) edit request, with the editor's graph attached.

    ``apply`` is the (possibly distributed-wrapped) editor module to call; it defaults to ``editor`` itself.
    """
    model, family = editor.model, editor.family
    inner, outer, loc = (to_device(b, device) for b in (req.inner, req.outer, req.loc))
    with torch.no_grad():
        pre_loc = forward(model, loc, editor.base_params())
    new = (apply or editor)(inner)
    post_outer = editor.edited_logits(outer, new)
    post_loc = editor.edited_logits(loc, new)
    parts = {
        "edit": nll(family, post_outer, outer["labels"]),
        "loc": kl_loc(family, pre_loc, post_loc, loc["labels"]),
        "es": accuracy_per_example(family, post_outer, outer["labels"]).mean().detach(),
    }
    extra = editor.extra_loss(loc)
    if extra is not None:
        parts["extra"] = extra
    return parts


def validation_parts(editor: Editor, req: EditRequest, device) -> dict[str, float]:
    """One held-out edit's validation scores, locality measured against the *original* base model.

    For every editor but ENN the original model is its pre-edit model, so the KL is the training term's. ENN trains
    the base model itself; against its own pre-edit model a collapsed ENN (every logit near 0) keeps a KL near 0
    while it has lost the task, so validation compares the edited model with the untouched original instead.
    Besides the loss terms: the edit's success (``es``) and, for the drawdown, the locality scores of the original
    and the edited model (accuracy, or summed token NLL and token count for language models).
    """
    model, family = editor.model, editor.family
    inner, outer, loc = (to_device(b, device) for b in (req.inner, req.outer, req.loc))
    with torch.no_grad():
        original_loc = forward(model, loc)
    with torch.enable_grad():  # the editor needs the base model's gradient on the edit example
        new = editor(inner)
    with torch.no_grad():
        post_outer = editor.edited_logits(outer, new)
        post_loc = editor.edited_logits(loc, new)
        out = {
            "edit": float(nll(family, post_outer, outer["labels"])),
            "loc": float(kl_loc(family, original_loc, post_loc, loc["labels"])),
            "es": float(accuracy_per_example(family, post_outer, outer["labels"]).mean()),
        }
        if family == "lm":
            for side, logits in (("original", original_loc), ("after", post_loc)):
                s, c = nll_sum_and_count(family, logits, loc["labels"])
                out[f"loc_nll_{side}"], out[f"loc_tokens_{side}"] = s, c
        else:
            for side, logits in (("original", original_loc), ("after", post_loc)):
                acc = accuracy_per_example(family, logits, loc["labels"])
                out[f"loc_correct_{side}"], out[f"loc_n_{side}"] = float(acc.sum()), acc.numel()
    return out


def summarise_validation(parts: list[dict[str, float]], cfg: TrainConfig) -> dict[str, float]:
    """Means of the loss terms and ES over the validation edits, the selection loss, and the drawdown against
    the original model: accuracy before − after, or perplexity after − before (token-weighted, as the tables)."""
    n = len(parts)
    out = {k: sum(p[k] for p in parts) / n for k in ("edit", "loc", "es")}
    out["loss"] = cfg.c_edit * out["edit"] + cfg.c_loc * out["loc"]
    if "loc_nll_after" in parts[0]:
        ppl = {
            side: math.exp(
                sum(p[f"loc_nll_{side}"] for p in parts) / max(sum(p[f"loc_tokens_{side}"] for p in parts), 1)
            )
            for side in ("original", "after")
        }
        # The original model's value, recorded: the grid's perplexity tolerance is a fraction of it.
        out["ppl_original"] = ppl["original"]
        out["dd"] = ppl["after"] - ppl["original"]
    else:
        acc = {
            side: sum(p[f"loc_correct_{side}"] for p in parts) / max(sum(p[f"loc_n_{side}"] for p in parts), 1)
            for side in ("original", "after")
        }
        out["acc_original"] = acc["original"]
        out["dd"] = acc["original"] - acc["after"]
    return out


def within_budget(val: dict[str, float], budget: dict | None) -> bool:
    """Whether a validation's drawdown against the original model is within ``budget`` (TrainConfig's
    ``checkpoint_budget``: accuracy absolute, perplexity a fraction of the original model's perplexity)."""
    if budget is None:
        return False
    if "ppl_original" in val:
        return val["dd"] <= budget["perplexity"] * val["ppl_original"]
    return val["dd"] <= budget["accuracy"]


_STATE_KEYS = ("step", "best", "best_step", "kept", "kept_step", "kept_within", "skipped", "seconds")


class LoopState:
    """What the loop itself carries from step to step, beyond what Accelerate saves (editor, optimiser, global
    RNGs): registered with the accelerator so that its checkpoints hold it too. ``best`` is the lowest validation
    loss (early stopping's reference), ``kept`` the loss of the checkpoint kept (the same without a budget)."""

    def __init__(self, rng: random.Random, sample):
        self.rng, self.sample = rng, sample
        self.step, self.best, self.best_step, self.skipped, self.seconds = 0, math.inf, 0, 0, 0.0
        self.kept, self.kept_step, self.kept_within = math.inf, 0, False
        self.history: list[dict] = []
        self.running = {"edit": 0.0, "loc": 0.0, "es": 0.0}

    def keep(self, val: dict[str, float], step: int, budget: dict | None) -> bool:
        """Whether the checkpoint of this validation replaces the kept one (then recorded as kept): the lowest
        validation loss (as released), or with a budget the lowest loss among the checkpoints within it, and the
        lowest overall while none has been."""
        within = within_budget(val, budget)
        if budget is None or within == self.kept_within:
            better = val["loss"] < self.kept
        else:  # a first checkpoint within the budget replaces any outside it; none outside replaces one within
            better = within
        if better:
            self.kept, self.kept_step, self.kept_within = val["loss"], step, within
        return better

    def state_dict(self) -> dict:
        state = {k: getattr(self, k) for k in _STATE_KEYS}
        state.update(rng=self.rng.getstate(), history=self.history, running=self.running)
        if hasattr(self.sample, "state_dict"):  # an epoch sampler's place in its permutation
            state["sampler"] = self.sample.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        for k in (*_STATE_KEYS, "history", "running"):
            setattr(self, k, state[k])
        self.rng.setstate(state["rng"])
        if "sampler" in state:
            self.sample.load_state_dict(state["sampler"])


def train_editor(
    editor: Editor,
    sample: Callable[[random.Random], EditRequest],
    val_requests: list[EditRequest],
    cfg: TrainConfig,
    out_path: Path,
    accelerator: Accelerator | None = None,
    checkpointing: Checkpointing | None = None,
) -> dict:
    """Train ``editor`` and save its best state to ``out_path``; returns the training summary.

    With ``checkpointing``, the best state is kept in the resumable state's folder while training and moved to
    ``out_path`` at the end (an interrupted job leaves no output behind), and training resumes from that folder's
    newest checkpoint if it has one of the same experiment.
    """
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    device = accelerator.device
    reset_peak(device)
    editor.model.to(device)
    params = editor.trainable_parameters()
    # foreach: one call per operation over all tensors instead of a Python loop over them (CPU's default); the
    # same values, bit for bit.
    opt = torch.optim.Adam(params, lr=cfg.lr, foreach=True)
    editor, opt = accelerator.prepare(editor, opt)
    core: Editor = accelerator.unwrap_model(editor)
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    every = interval(checkpointing.every, cfg.accumulate) if checkpointing else 0
    best_path = checkpointing.dir / out_path.name if every else out_path
    state = LoopState(rng, sample)
    if every:
        accelerator.register_for_checkpointing(state)
        restore(accelerator, checkpointing, best_path)

    def validate() -> dict:
        core.eval()
        with torch.no_grad():
            tot = summarise_validation([validation_parts(core, req, device) for req in val_requests], cfg)
        core.train()
        return tot

    stopped_early = False
    t0 = time.time() - state.seconds  # a resumed job's time counts what the interrupted one spent
    core.train()
    running, history, step = state.running, state.history, state.step
    bar = tqdm(
        range(step + 1, cfg.steps + 1),
        desc="train editor",
        mininterval=5,
        initial=step,
        total=cfg.steps,
        disable=not accelerator.is_main_process,
    )
    for step in bar:
        parts = edit_losses(core, sample(rng), device, apply=editor)
        loss = cfg.c_edit * parts["edit"] + cfg.c_loc * parts["loc"] + parts.get("extra", 0.0)
        accelerator.backward(loss / cfg.accumulate)
        for k in running:
            running[k] = 0.98 * running[k] + 0.02 * float(parts[k].detach())
        if step % cfg.accumulate == 0:
            grad_norm = accelerator.clip_grad_norm_(params, cfg.grad_clip)
            if torch.isfinite(torch.as_tensor(grad_norm)):
                opt.step()
            else:
                state.skipped += 1
            opt.zero_grad()
        if step % cfg.val_every == 0 or step == cfg.steps:
            val = validate()
            history.append({"step": step, **val, **{f"train_{k}": v for k, v in running.items()}})
            log.info("step %d val %s train(ema) %s", step, val, running)
            bar.set_postfix(val_es=round(val["es"], 3), val_loss=round(val["loss"], 4))
            if state.keep(val, step, cfg.checkpoint_budget):
                if accelerator.is_main_process:
                    atomic.torch_save(core.state_dict(), best_path)
            if val["loss"] < state.best:
                state.best, state.best_step = val["loss"], step
            elif step - state.best_step >= cfg.patience:
                log.info("early stop at step %d (best %.4f at step %d)", step, state.best, state.best_step)
                stopped_early = True
                break
        if every and step % every == 0 and step < cfg.steps:
            state.step, state.seconds = step, time.time() - t0
            save(accelerator, checkpointing, step, best_path)
    if every and accelerator.is_main_process and best_path.exists():
        os.replace(best_path, out_path)
    if not stopped_early:
        log.warning("training hit its step cap (%d steps) before validation loss stopped improving", cfg.steps)
    return {
        "steps": step,
        # The kept checkpoint's step and validation loss (what the grid and the tables read as "best").
        "best_step": state.kept_step,
        "best_val_loss": state.kept,
        "lowest_loss_step": state.best_step,
        "kept_within_budget": state.kept_within if cfg.checkpoint_budget is not None else None,
        "hit_step_cap": not stopped_early,
        "skipped_updates": state.skipped,
        "seconds": time.time() - t0,
        "history": history,
        "train_config": asdict(cfg),
        "memory": peak_memory_mb(device),
    }
