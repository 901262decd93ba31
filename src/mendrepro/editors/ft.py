"""FT and FT+KL, as released: fine-tune a zero-initialised residual on each edited matrix.

RMSprop, at most ``max_steps`` steps, stopping as soon as the edit example is predicted exactly (every target
token); FT+KL adds, at each step, the KL to the pre-edit model on a fresh training-set locality example:
loss = KL + ``edit_weight`` · L_edit. Subclasses may bound the residual after every step (:meth:`FineTune.project`;
FT+L, ``editors/ftl.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from mendrepro.batches import Batch, forward, scored_forward
from mendrepro.editors.base import Editor
from mendrepro.editors.options import FTConfig  # noqa: F401 (re-exported)
from mendrepro.losses import accuracy_per_example, kl_loc, nll

#: A function of an edit's key giving that edit's own stream of training-set locality batches (FT+KL): an edit's
#: draws then depend on that edit alone, not on how many steps the edits before it took, so edits can run in any
#: order or side by side (:func:`edit_many`) and draw the same examples.
LocStreams = Callable[[str], Callable[[], Batch]]


class FineTune(Editor):
    """FT (``cfg.kl`` False) or FT+KL (``cfg.kl`` True, needs ``loc_sampler``, a :data:`LocStreams`)."""

    #: Independent edits can run side by side (:meth:`edit_group`, :meth:`group_logits`).
    groups_edits = True

    def __init__(
        self,
        model: nn.Module,
        family: str,
        param_names: list[str],
        cfg: FTConfig,
        loc_sampler: LocStreams | None = None,
    ):
        super().__init__(model, family, param_names)
        if cfg.kl and loc_sampler is None:
            raise ValueError("FT+KL needs a sampler of training-set locality examples")
        self.cfg = cfg
        self.loc_sampler = loc_sampler
        self.steps_taken: list[int] = []

    def project(self, residual: dict[str, torch.Tensor]) -> None:
        """Called after every optimiser step with the residuals (edited minus original weights), to change them
        in place; FT leaves them free."""

    def edit(self, inner: Batch) -> dict[str, torch.Tensor]:
        return self.edit_for(inner, "")

    def edit_for(self, inner: Batch, key: str) -> dict[str, torch.Tensor]:
        """One edit, as released: fine-tune until the edit example is predicted or ``max_steps`` steps."""
        base = {n: p.detach() for n, p in self.base_params().items()}
        residual = {n: torch.zeros_like(p, requires_grad=True) for n, p in base.items()}
        opt = torch.optim.RMSprop(residual.values(), lr=self.cfg.lr)
        draw = self.loc_sampler(key) if self.cfg.kl else None
        steps = 0
        with torch.enable_grad():
            for steps in range(self.cfg.max_steps + 1):
                params = {n: base[n] + residual[n] for n in base}
                logits, labels = scored_forward(self.model, self.family, inner, params)
                if bool(accuracy_per_example(self.family, logits, labels).all()):
                    break
                if steps == self.cfg.max_steps:
                    break
                loss = nll(self.family, logits, labels)
                if self.cfg.kl:
                    loc = draw()
                    with torch.no_grad():
                        pre = forward(self.model, loc)
                    loss = kl_loc(self.family, pre, forward(self.model, loc, params), loc["labels"]) + (
                        self.cfg.edit_weight * loss
                    )
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(residual.values(), self.cfg.grad_clip)
                opt.step()
                self.project(residual)
        self.steps_taken.append(steps)
        return {n: (base[n] + residual[n]).detach() for n in base}

    def edit_group(self, inners: list[Batch], keys: list[str], pad_token_id: int) -> list[dict[str, torch.Tensor]]:
        """``[self.edit_for(b, key) ...]`` for independent edits, side by side (:func:`edit_many`)."""
        return edit_many(self, inners, pad_token_id, keys)

    @torch.no_grad()
    def group_logits(self, batch: Batch, sizes: list[int], edits: list[dict[str, torch.Tensor]]) -> torch.Tensor:
        """Logits on ``batch`` whose consecutive row blocks of ``sizes`` each see their own edit of ``edits`` (what
        :meth:`edit_group` returned): ``edited_logits`` of each block, in one forward pass."""
        base = {n: p.detach() for n, p in self.base_params().items()}
        with residuals_on(self.model, list(base)) as store:
            store["sizes"] = sizes
            store["residuals"] = {n: [e[n] - base[n] for e in edits] for n in base}
            return forward(self.model, batch)


def _residual_hook(transposed: bool, kind: str, store: dict, key: str):
    """Adds each edit's own residual to an edited layer's output: out[rows of e] += x[rows of e] · R_e (weight) or
    + R_e (bias). The base weight stays shared; one small product per edit, so that no weight-sized copy of the
    residuals is gathered or scattered (on CPU, a stacked gather's backward cost more than the products). With no
    residuals set, the layer is the base model's."""

    def hook(_mod, args, output):
        if store["residuals"] is None:
            return output
        residuals, sizes = store["residuals"][key], store["sizes"]
        if kind == "bias":
            delta = [r.expand(s, *output.shape[1:]) for r, s in zip(residuals, sizes, strict=True)]
        elif transposed:  # GPT-2's Conv1D: out = x @ W, W stored (in, out)
            delta = [x @ r for x, r in zip(args[0].split(sizes), residuals, strict=True)]
        else:
            delta = [nn.functional.linear(x, r) for x, r in zip(args[0].split(sizes), residuals, strict=True)]
        return output + torch.cat(delta)

    return hook


@contextmanager
def residuals_on(model: nn.Module, names: list[str]) -> Iterator[dict]:
    """Forward hooks on the modules of the edited parameters ``names``; set ``store["residuals"]`` (name -> one
    residual per edit) and ``store["sizes"]`` (rows per edit) to give each row block its own edit."""
    from mendrepro.models import is_transposed, module_of

    store: dict = {"residuals": None, "sizes": None}
    handles = []
    for n in names:
        mod = module_of(model, n)
        kind = "bias" if n.endswith("bias") else "weight"
        handles.append(mod.register_forward_hook(_residual_hook(is_transposed(mod), kind, store, n)))
    try:
        yield store
    finally:
        for h in handles:
            h.remove()


def edit_many(
    ft: FineTune, inners: list[Batch], pad_token_id: int = 0, keys: list[str] | None = None
) -> list[dict[str, torch.Tensor]]:
    """``[ft.edit_for(b, key) for b, key in zip(inners, keys)]`` as one batched fine-tuning: each edit its own
    residuals, its own RMSprop state (RMSprop is elementwise, so one optimiser over every edit's residuals is B
    independent ones; a finished edit's residuals get no gradient and RMSprop skips them), its own gradient
    clipping (its own norm, as ``clip_grad_norm_``), its own stopping step and (FT+KL) its own locality stream,
    drawn at the same steps as alone; a finished edit leaves the batch. The rest of the model runs once for the
    batch. Appends each edit's step count to ``ft.steps_taken`` in order. Values equal the one-at-a-time path's up
    to float rounding (the residual is added to the layer's output rather than to its weight, and padding to the
    batch's widest edit changes reductions).
    """
    from mendrepro.batches import concat

    model, family, cfg = ft.model, ft.family, ft.cfg
    keys = keys if keys is not None else [""] * len(inners)
    base = {n: p.detach() for n, p in ft.base_params().items()}
    n_edits = len(inners)
    residual = [{n: torch.zeros_like(p, requires_grad=True) for n, p in base.items()} for _ in range(n_edits)]
    opt = torch.optim.RMSprop([r for res in residual for r in res.values()], lr=cfg.lr)
    draws = [ft.loc_sampler(key) for key in keys] if cfg.kl else None
    steps = [0] * n_edits
    done = [False] * n_edits
    out: list[dict[str, torch.Tensor] | None] = [None] * n_edits
    with residuals_on(model, list(base)) as store, torch.enable_grad():
        for step in range(cfg.max_steps + 1):
            active = [i for i in range(n_edits) if not done[i]]
            if not active:
                break
            batch = concat([inners[i] for i in active], pad_token_id)
            sizes = [inners[i]["labels"].shape[0] for i in active]
            store["sizes"] = sizes
            store["residuals"] = {n: [residual[i][n] for i in active] for n in base}
            logits, labels = scored_forward(model, family, batch)
            ok = accuracy_per_example(family, logits, labels)
            losses, still, r0 = {}, [], 0
            for i, s in zip(active, sizes, strict=True):
                sl = slice(r0, r0 + s)
                r0 += s
                if bool(ok[sl].all()) or step == cfg.max_steps:
                    done[i], steps[i] = True, step
                    out[i] = {n: (base[n] + residual[i][n]).detach() for n in base}
                    continue
                still.append(i)
                losses[i] = nll(family, logits[sl], labels[sl])
            if not still:
                break
            if cfg.kl:
                # Each edit's locality draw, scored by the base model and by that edit's residuals.
                locs = [draws[i]() for i in still]
                loc = concat(locs, pad_token_id)
                loc_sizes = [b["labels"].shape[0] for b in locs]
                store["residuals"] = None
                with torch.no_grad():
                    pre = forward(model, loc)
                store["sizes"] = loc_sizes
                store["residuals"] = {n: [residual[i][n] for i in still] for n in base}
                post = forward(model, loc)
                r0 = 0
                for i, s in zip(still, loc_sizes, strict=True):
                    sl = slice(r0, r0 + s)
                    r0 += s
                    kl = kl_loc(family, pre[sl], post[sl], loc["labels"][sl])
                    losses[i] = kl + cfg.edit_weight * losses[i]
            opt.zero_grad()
            torch.stack([losses[i] for i in still]).sum().backward()  # independent losses: each its own residual
            for i in still:
                torch.nn.utils.clip_grad_norm_(residual[i].values(), cfg.grad_clip)
            opt.step()
            for i in still:
                ft.project(residual[i])
    ft.steps_taken.extend(steps)
    return out  # type: ignore[return-value]
