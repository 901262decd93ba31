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
    """Adds each row's own residual to an edited layer's output: out[r] += x[r] · R[edit of r] (weight) or
    + R[edit of r] (bias); the base weight stays shared, so only the residuals are stacked per edit."""

    def hook(_mod, args, output):
        rows = store["rows"][key]  # [rows, *param shape]: each batch row's edit's residual
        if kind == "bias":
            return output + rows.reshape(rows.shape[0], *([1] * (output.dim() - 2)), rows.shape[-1])
        x = args[0]
        eq = "r...i,rio->r...o" if transposed else "r...i,roi->r...o"
        return output + torch.einsum(eq, x, rows)

    return hook


def edit_many(ft: FineTune, inners: list[Batch], pad_token_id: int = 0) -> list[dict[str, torch.Tensor]]:
    """``[ft.edit(b) for b in inners]`` as one batched fine-tuning: every edit its own residual (stacked along a
    new first axis), its own RMSprop state (RMSprop is elementwise, so one optimiser over the stack is B
    independent ones), its own gradient clipping (per-edit norm, as ``clip_grad_norm_``) and its own stopping
    step; a finished edit leaves the batch and its residual is kept as it was. Appends each edit's step count to
    ``ft.steps_taken`` in order. Values equal the one-at-a-time path's up to float rounding (the residual is added
    to the layer's output rather than to its weight, and padding to the batch's widest edit changes reductions).
    FT only: FT+KL's locality sampler is one shared stream, whose draws depend on every earlier edit's steps.
    """
    if ft.cfg.kl:
        raise NotImplementedError("batched FT+KL needs a per-edit locality sampler")
    from mendrepro.batches import concat
    from mendrepro.models import is_transposed, module_of

    model, family, cfg = ft.model, ft.family, ft.cfg
    base = {n: p.detach() for n, p in ft.base_params().items()}
    n_edits = len(inners)
    residual = {
        n: torch.zeros((n_edits, *p.shape), dtype=p.dtype, device=p.device, requires_grad=True) for n, p in base.items()
    }
    opt = torch.optim.RMSprop(residual.values(), lr=cfg.lr)
    store: dict = {"rows": {}}
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
                owner = torch.repeat_interleave(torch.tensor(active), torch.tensor(sizes)).to(batch["labels"].device)
                store["rows"] = {n: residual[n][owner] for n in base}
                logits, labels = scored_forward(model, family, batch)
                ok = accuracy_per_example(family, logits, labels)
                losses = []
                r0 = 0
                still = []
                for i, s in zip(active, sizes, strict=True):
                    sl = slice(r0, r0 + s)
                    r0 += s
                    if bool(ok[sl].all()) or step == cfg.max_steps:
                        done[i], steps[i] = True, step
                        out[i] = {n: (base[n] + residual[n][i]).detach().clone() for n in base}
                        continue
                    still.append(i)
                    losses.append(nll(family, logits[sl], labels[sl]))
                if not still:
                    break
                opt.zero_grad()
                torch.stack(losses).sum().backward()  # edits' losses are independent: each residual gets its own
                with torch.no_grad():
                    grads = [residual[n].grad for n in base]
                    norms = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads]).sum(0).sqrt()
                    coef = (cfg.grad_clip / (norms + 1e-6)).clamp(max=1.0)
                    for g in grads:
                        g.mul_(coef.reshape(-1, *([1] * (g.dim() - 1))))
                opt.step()
                sliced = {n: residual[n].data for n in base}
                for i in still:
                    ft.project({n: sliced[n][i] for n in base})
    finally:
        for h in handles:
            h.remove()
    ft.steps_taken.extend(steps)
    return out  # type: ignore[return-value]
