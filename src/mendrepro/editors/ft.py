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
