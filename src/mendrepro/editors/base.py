"""The interface every editor implements, and the gradient capture the gradient-based editors share."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from mendrepro.batches import Batch, forward, scored_forward
from mendrepro.losses import nll, nll_per_example
from mendrepro.models import is_transposed, module_of


def param_key(name: str) -> str:
    """A parameter name usable as a ModuleDict/ParameterDict key (those may not contain '.')."""
    return name.replace(".", "__")


class Editor(nn.Module, abc.ABC):
    """Maps a batch of edit requests to new values of the edited parameters.

    The base model is held but not registered as a submodule, so the editor's ``state_dict`` and optimiser see
    only the editor's own parameters; editing is functional, the base model's tensors are never written.
    """

    def __init__(self, model: nn.Module, family: str, param_names: list[str]):
        super().__init__()
        self.__dict__["model"] = model
        self.family = family
        self.param_names = list(param_names)

    #: True for editors that train the base model itself (ENN), whose pre-edit model is not the original.
    changes_base_model = False

    def trainable_parameters(self) -> list[nn.Parameter]:
        """What editor training optimises: the editor's own parameters that require a gradient (none for FT and
        the cache; for ENN, its copy of the base model too)."""
        return [p for p in self.parameters() if p.requires_grad]

    def base_params(self) -> dict[str, torch.Tensor]:
        """The pre-edit values of the edited parameters."""
        # By path rather than through named_parameters(), which walks the whole model (per step, ~2% of a tiny
        # training's time).
        return {n: self.model.get_parameter(n) for n in self.param_names}

    def forward(self, inner: Batch) -> dict[str, torch.Tensor]:
        # Calling the module (not .edit) lets a DDP wrapper synchronise the editor's gradients.
        return self.edit(inner)

    def extra_loss(self, loc: Batch) -> torch.Tensor | None:
        """A training term of the editor's own on locality examples (ENN's KL to the original model)."""
        return None

    def edited_logits(self, batch: Batch, edit: dict[str, torch.Tensor]) -> torch.Tensor:
        """Logits of the edited model on ``batch``; ``edit`` is what :meth:`edit` returned.

        Parameter editors return new parameter values, applied functionally; an editor that does not change
        parameters (the cache) overrides this to answer from its own state.
        """
        return forward(self.model, batch, edit)

    @abc.abstractmethod
    def edit(self, inner: Batch) -> dict[str, torch.Tensor]:
        """New values of the edited parameters after applying every edit in ``inner``."""

    #: Whether independent edits can run side by side (``edit_group``/``group_logits``: FT, FT+KL, FT+L).
    groups_edits = False

    def edit_for(self, inner: Batch, key: str) -> dict[str, torch.Tensor]:
        """:meth:`edit` of the edit named ``key`` (its request id): an editor that draws random examples while it
        edits (FT+KL's locality examples) draws them from that edit's own stream."""
        return self.edit(inner)


@dataclass
class Capture:
    """What one backward pass on the edit examples yields for each edited matrix."""

    loss: torch.Tensor
    grads: dict[str, torch.Tensor]
    inputs: dict[str, torch.Tensor]  # u: [rows, in]
    out_grads: dict[str, torch.Tensor]  # δ: [rows, out]


@contextmanager
def _io_hooks(
    model: nn.Module, names: list[str], store_u: dict, store_d: dict, store_out: dict | None = None
) -> Iterator[None]:
    """Record each edited layer's input u; its output gradient δ by a tensor hook, or (``store_out`` given) keep
    the output itself so the caller can ask autograd for δ directly."""
    handles = []
    for name in names:

        def fwd_hook(_mod, args, output, name=name):
            u = args[0]
            store_u[name] = u.detach().reshape(-1, u.shape[-1]).float()
            if store_out is not None:
                store_out[name] = output
            elif output.requires_grad:

                def grad_hook(g, name=name):
                    store_d[name] = g.detach().reshape(-1, g.shape[-1]).float()

                output.register_hook(grad_hook)

        handles.append(module_of(model, name).register_forward_hook(fwd_hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def capture_edit_gradients(
    model: nn.Module,
    family: str,
    names: list[str],
    batch: Batch,
    params: dict[str, torch.Tensor] | None = None,
    create_graph: bool = False,
    weight_grads: bool = True,
    reduction: str = "mean",
) -> Capture:
    """Backward pass of the edit loss, returning ∇W and each edited layer's inputs u and output gradients δ.

    ``reduction="mean"``: the release's edit loss, the token-weighted mean NLL over the whole batch (binary: the
    batch mean). ``"sum"``: the sum over examples of each example's token-mean NLL, so the update of a batch of k
    edits is exactly the sum of the k single-edit updates. ``params`` (optional) replaces the model's own weights.
    With ``weight_grads=False`` (MEND, which needs only u and δ) autograd is asked for δ directly and the
    matrices ∇W are never formed; ``grads`` is then empty.
    """
    if params is None:
        weights = {n: model.get_parameter(n).detach().requires_grad_(True) for n in names}
    else:
        weights = {n: params[n] if params[n].requires_grad else params[n].detach().requires_grad_(True) for n in names}
    store_u: dict[str, torch.Tensor] = {}
    store_d: dict[str, torch.Tensor] = {}
    store_out: dict[str, torch.Tensor] | None = None if weight_grads else {}
    with torch.enable_grad(), _io_hooks(model, names, store_u, store_d, store_out):
        logits, labels = scored_forward(model, family, batch, weights)
        if reduction == "mean":
            loss = nll(family, logits, labels)
        elif reduction == "sum":
            loss = nll_per_example(family, logits, labels).sum()
        else:
            raise ValueError(f"edit loss reduction must be 'mean' or 'sum', got {reduction!r}")
        if weight_grads:
            grads = torch.autograd.grad(loss, [weights[n] for n in names], create_graph=create_graph)
            grads_by_name = dict(zip(names, grads, strict=True))
        else:
            outs = [store_out[n] for n in names]
            d_outs = torch.autograd.grad(loss, outs, create_graph=create_graph, allow_unused=True)
            for n, o, g in zip(names, outs, d_outs, strict=True):
                g = torch.zeros_like(o) if g is None else g
                store_d[n] = g.detach().reshape(-1, g.shape[-1]).float()
            grads_by_name = {}
    return Capture(loss.detach(), grads_by_name, store_u, store_d)


def outer_product_update(model: nn.Module, name: str, u: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Σ_rows δ uᵀ in the stored layout of parameter ``name`` (Conv1D stores (in, out), Linear (out, in))."""
    delta_w = d.transpose(0, 1) @ u  # [out, in]
    return delta_w.transpose(0, 1) if is_transposed(module_of(model, name)) else delta_w


def edited_weight(
    model: nn.Module, name: str, base: torch.Tensor, u: torch.Tensor, d: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """``base + scale · Σ_rows δ uᵀ`` in the stored layout of parameter ``name``, as one fused multiply-add.

    Same value as adding ``scale *`` :func:`outer_product_update` to ``base``, without the two intermediate
    weight-sized tensors (at distilGPT-2 size, 60 of an edit's 330 ms went to allocating and filling them).
    ``scale`` may carry a gradient (MEND's learned step size); it multiplies the thin factor. A base in another
    dtype than the factors (bfloat16) gets the float32 increment rounded once, as before the fusion.
    """
    left, right = (u.transpose(0, 1), d) if is_transposed(module_of(model, name)) else (d.transpose(0, 1), u)
    if base.dtype != left.dtype:
        return base + (scale * (left @ right)).to(base.dtype)
    return torch.addmm(base, left * scale, right)
