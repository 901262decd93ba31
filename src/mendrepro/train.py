"""The training loop shared by the learned editors (MEND and its variants; KE and ENN use it too).

One step: sample k edits, apply them with the editor, and score the edited model:
L = c_edit · NLL(new target | equivalence example) + c_loc · KL(p_pre ‖ p_post) on locality examples.
Gradients accumulate over ``accumulate`` steps; the norm is clipped; a non-finite gradient skips the update.
Validation every ``val_every`` steps on a fixed set of dev edits; the best editor is saved; training stops after
``patience`` steps without improvement. Runs on CPU as is and on GPUs through ``accelerate launch``.
"""

from __future__ import annotations

import logging
import math
import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm import tqdm

from mendrepro.batches import forward, to_device
from mendrepro.config import TrainConfig
from mendrepro.editors.base import Editor
from mendrepro.losses import accuracy_per_example, kl_loc, nll
from mendrepro.memory import peak_memory_mb, reset_peak
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


def save_atomic(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def train_editor(
    editor: Editor,
    sample: Callable[[random.Random], EditRequest],
    val_requests: list[EditRequest],
    cfg: TrainConfig,
    out_path: Path,
    accelerator: Accelerator | None = None,
) -> dict:
    """Train ``editor`` and save its best state to ``out_path``; returns the training summary."""
    accelerator = accelerator or Accelerator(cpu=not torch.cuda.is_available())
    device = accelerator.device
    reset_peak(device)
    editor.model.to(device)
    params = editor.trainable_parameters()
    opt = torch.optim.Adam(params, lr=cfg.lr)
    editor, opt = accelerator.prepare(editor, opt)
    core: Editor = accelerator.unwrap_model(editor)
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)

    def validate() -> dict:
        core.eval()
        tot = {"edit": 0.0, "loc": 0.0, "es": 0.0}
        with torch.no_grad():
            for req in val_requests:
                with torch.enable_grad():  # the editor needs the base model's gradient on the edit example
                    parts = edit_losses(core, req, device)
                for k in tot:
                    tot[k] += float(parts[k]) / len(val_requests)
        tot["loss"] = cfg.c_edit * tot["edit"] + cfg.c_loc * tot["loc"]
        core.train()
        return tot

    best, best_step, history, skipped, stopped_early = math.inf, 0, [], 0, False
    t0 = time.time()
    core.train()
    bar = tqdm(range(1, cfg.steps + 1), desc="train editor", mininterval=5, disable=not accelerator.is_main_process)
    running = {"edit": 0.0, "loc": 0.0, "es": 0.0}
    step = 0
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
                skipped += 1
            opt.zero_grad()
        if step % cfg.val_every == 0 or step == cfg.steps:
            val = validate()
            history.append({"step": step, **val, **{f"train_{k}": v for k, v in running.items()}})
            log.info("step %d val %s train(ema) %s", step, val, running)
            bar.set_postfix(val_es=round(val["es"], 3), val_loss=round(val["loss"], 4))
            if val["loss"] < best:
                best, best_step = val["loss"], step
                if accelerator.is_main_process:
                    save_atomic(core.state_dict(), out_path)
            elif step - best_step >= cfg.patience:
                log.info("early stop at step %d (best %.4f at step %d)", step, best, best_step)
                stopped_early = True
                break
    if not stopped_early:
        log.warning("training hit its step cap (%d steps) before validation loss stopped improving", cfg.steps)
    return {
        "steps": step,
        "best_step": best_step,
        "best_val_loss": best,
        "hit_step_cap": not stopped_early,
        "skipped_updates": skipped,
        "seconds": time.time() - t0,
        "history": history,
        "train_config": asdict(cfg),
        "memory": peak_memory_mb(device),
    }
