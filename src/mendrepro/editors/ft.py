"""FT and FT+KL, as released: fine-tune a zero-initialised residual on each edited matrix.

RMSprop, at most ``max_steps`` steps, stopping as soon as the edit example is predicted exactly (every target
token); FT+KL adds, at each step, the KL to the pre-edit model on a fresh training-set locality example:
loss = KL + ``edit_weight`` · L_edit. Subclasses may bound the residual after every step (:meth:`FineTune.project`;
FT+L, ``editors/ftl.py``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mendrepro.batches import Batch, forward, scored_forward
from mendrepro.editors.base import Editor
from mendrepro.editors.options import FTConfig  # noqa: F401 (re-exported)
from mendrepro.losses import accuracy_per_example, kl_loc, nll


class FineTune(Editor):
    """FT (``cfg.kl`` False) or FT+KL (``cfg.kl`` True, needs ``loc_sampler``)."""

    def __init__(
        self,
        model: nn.Module,
        family: str,
        param_names: list[str],
        cfg: FTConfig,
        loc_sampler: Callable[[], Batch] | None = None,
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
        base = {n: p.detach() for n, p in self.base_params().items()}
        residual = {n: torch.zeros_like(p, requires_grad=True) for n, p in base.items()}
        opt = torch.optim.RMSprop(residual.values(), lr=self.cfg.lr)
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
                    loc = self.loc_sampler()
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


def _residual_hook(transposed: bool, kind: str, store: dict, key: str):
    """Adds each edit's own residual to an edited layer's output: out[rows of e] += x[rows of e] · R_e (weight) or
    + R_e (bias). The base weight stays shared; one small product per edit, so that no weight-sized copy of the
    residuals is gathered or scattered (on CPU, a stacked gather's backward cost more than the products)."""

    def hook(_mod, args, output):
        residuals, sizes = store["residuals"][key], store["sizes"]
        if kind == "bias":
            delta = [r.expand(s, *output.shape[1:]) for r, s in zip(residuals, sizes, strict=True)]
        elif transposed:  # GPT-2's Conv1D: out = x @ W, W stored (in, out)
            delta = [x @ r for x, r in zip(args[0].split(sizes), residuals, strict=True)]
        else:
            delta = [nn.functional.linear(x, r) for x, r in zip(args[0].split(sizes), residuals, strict=True)]
        return output + torch.cat(delta)

    return hook


def edit_many(ft: FineTune, inners: list[Batch], pad_token_id: int = 0) -> list[dict[str, torch.Tensor]]:
    """``[ft.edit(b) for b in inners]`` as one batched fine-tuning: each edit its own residuals, its own RMSprop
    state (RMSprop is elementwise, so one optimiser over every edit's residuals is B independent ones; a finished
    edit's residuals get no gradient and RMSprop skips them), its own gradient clipping (its own norm, as
    ``clip_grad_norm_``) and its own stopping step; a finished edit leaves the batch. The rest of the model runs
    once for the batch. Appends each edit's step count to ``ft.steps_taken`` in order. Values equal the
    one-at-a-time path's up to float rounding (the residual is added to the layer's output rather than to its
    weight, and padding to the batch's widest edit changes reductions). FT and FT+L only: FT+KL's locality
    sampler is one shared stream, whose draws depend on every earlier edit's steps.
    """
    if ft.cfg.kl:
        raise NotImplementedError("batched FT+KL needs a per-edit locality sampler")
    from mendrepro.batches import concat
    from mendrepro.models import is_transposed, module_of

    model, family, cfg = ft.model, ft.family, ft.cfg
    base = {n: p.detach() for n, p in ft.base_params().items()}
    n_edits = len(inners)
    residual = [{n: torch.zeros_like(p, requires_grad=True) for n, p in base.items()} for _ in range(n_edits)]
    opt = torch.optim.RMSprop([r for res in residual for r in res.values()], lr=cfg.lr)
    store: dict = {}
    handles = []
    for n in base:
        mod = module_of(model, n)
        kind = "bias" if n.endswith("bias") else "weight"
        handles.append(mod.register_forward_hook(_residual_hook(is_transposed(mod), kind, store, n)))
    steps = [0] * n_edits
    done = [False] * n_edits
    out: list[dict[str, torch.Tensor] | None] = [None] * n_edits
    try:
        with torch.enable_grad():
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
                losses, still, r0 = [], [], 0
                for i, s in zip(active, sizes, strict=True):
                    sl = slice(r0, r0 + s)
                    r0 += s
                    if bool(ok[sl].all()) or step == cfg.max_steps:
                        done[i], steps[i] = True, step
                        out[i] = {n: (base[n] + residual[i][n]).detach() for n in base}
                        continue
                    still.append(i)
                    losses.append(nll(family, logits[sl], labels[sl]))
                if not still:
                    break
                opt.zero_grad()
                torch.stack(losses).sum().backward()  # edits' losses are independent: each residual gets its own
                for i in still:
                    torch.nn.utils.clip_grad_norm_(residual[i].values(), cfg.grad_clip)
                opt.step()
                for i in still:
                    ft.project(residual[i])
    finally:
        for h in handles:
            h.remove()
    ft.steps_taken.extend(steps)
    return out  # type: ignore[return-value]
