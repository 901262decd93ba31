"""ENN: Editable Neural Networks (Sinitsin et al., ICLR 2020), as released with MEND.

An edit is ``n_inner_steps`` differentiable SGD steps on the edited matrices, W ← W − s_W · ∇W L_edit, with a
learned step s_W per matrix (init 1e-2). The outer loop meta-trains every base weight and the steps through the
inner step (second order), and adds KL(original ‖ current) on locality examples (unscaled, as released) so the
meta-trained pre-edit model stays close to the original one. ENN therefore changes the pre-edit model: ``base_params``
returns the current, ENN-trained weights of the whole model, not the original ones.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from mendrepro.batches import Batch, forward, scored_forward
from mendrepro.editors.base import Editor, param_key
from mendrepro.editors.options import ENNConfig  # noqa: F401 (re-exported)
from mendrepro.losses import kl_loc, nll


class EditableNetwork(Editor):
    """ENN over one base model: a trainable copy of all its weights plus one learned step per edited matrix.

    The steps are stored plainly (not in log space), as in the release, where they are a trainable vector of
    learning rates handed to the inner SGD; Adam may therefore drive a step through zero or negative.
    """

    changes_base_model = True  # evaluation also scores the untouched original, for drawdown against it

    def __init__(self, model: nn.Module, family: str, param_names: list[str], cfg: ENNConfig):
        super().__init__(model, family, param_names)
        self.cfg = cfg
        # named_parameters drops tied duplicates (GPT-2's lm_head, BART's shared embeddings); batches.forward
        # re-ties them, so one copy per distinct tensor is what ENN trains.
        self.names = [n for n, _ in model.named_parameters()]
        self.weights = nn.ParameterDict(
            {param_key(n): nn.Parameter(p.detach().clone(), requires_grad=True) for n, p in model.named_parameters()}
        )
        self.steps = nn.ParameterDict(
            {param_key(n): nn.Parameter(torch.tensor(float(cfg.step_init))) for n in param_names}
        )

    def base_params(self) -> dict[str, torch.Tensor]:
        """The current (ENN-trained) values of ALL the model's parameters: ENN's pre-edit model."""
        return {n: self.weights[param_key(n)] for n in self.names}

    def original_params(self) -> dict[str, torch.Tensor]:
        """The untouched original model's parameters (detached), for drawdown against the original base model."""
        return {n: p.detach() for n, p in self.model.named_parameters()}

    def step_size(self, name: str) -> torch.Tensor:
        return self.steps[param_key(name)]

    def edit(self, inner: Batch) -> dict[str, torch.Tensor]:
        """All parameters after ``n_inner_steps`` SGD steps of the edited matrices on the mean edit loss.

        The loss is the release's edit loss, the token-weighted mean NLL over the whole batch (binary: the batch
        mean; eric-mitchell/mend algs/enn.py:53, ``edit_loss_fn(output, labels)["nll"]``). With grad mode on, the
        step is differentiable: ``create_graph`` keeps ∇W's dependence on every ENN weight (second order) unless
        ``cfg.first_order``. Under ``torch.no_grad`` (evaluation) only the inner gradient is computed and the
        result is detached.
        """
        outer_grad = torch.is_grad_enabled()
        create_graph = outer_grad and not self.cfg.first_order
        params = self.base_params()
        if not outer_grad:
            # No outer backward: keep the inner graph off the non-edited weights.
            params = {n: p.detach() for n, p in params.items()}
        for _ in range(self.cfg.n_inner_steps):
            # The fused attention kernels have no double backward; the math kernel is plain differentiable ops.
            kernels = sdpa_kernel(SDPBackend.MATH) if create_graph else nullcontext()
            with torch.enable_grad(), kernels:
                ws = [
                    params[n] if params[n].requires_grad else params[n].detach().requires_grad_(True)
                    for n in self.param_names
                ]
                call = {**params, **dict(zip(self.param_names, ws, strict=True))}
                logits, labels = scored_forward(self.model, self.family, inner, call)
                loss = nll(self.family, logits, labels)
                grads = torch.autograd.grad(loss, ws, create_graph=create_graph)
            # Outside enable_grad: in evaluation the update is a plain tensor, in training it joins the graph.
            for n, w, g in zip(self.param_names, ws, grads, strict=True):
                params[n] = w - self.step_size(n).to(w.dtype) * g
        if not outer_grad:
            params = {n: p.detach() for n, p in params.items()}
        return params

    def extra_loss(self, loc: Batch) -> torch.Tensor | None:
        """KL(original ‖ current) on the locality batch, unscaled; None when c_base is 0.

        As released, l_base is back-propagated as it is (eric-mitchell/mend trainer.py:264-265,
        ``safe_backward(l_base, ...)``) and c_base enters only the logged total ``l_total_edit + cbase * l_base``
        (trainer.py:274), so c_base here only switches the term on (> 0) or off (0).
        """
        if self.cfg.c_base == 0:
            return None
        with torch.no_grad():
            original = forward(self.model, loc)
        current = forward(self.model, loc, self.base_params())
        return kl_loc(self.family, original, current, loc["labels"])
