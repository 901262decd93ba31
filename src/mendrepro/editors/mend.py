"""MEND: Model Editor Networks with Gradient Decomposition (Mitchell et al., ICLR 2022), as released.

For an edited matrix W with layer input u and output gradient δ, the fine-tuning gradient is Σ_rows δ uᵀ.
MEND maps each normalised pair (ū, δ̄) through a small residual low-rank network g to (ũ, δ̃) and edits
W ← W + sign · α_W · Σ_rows δ̃ ũᵀ (``sign`` +1 as released, −1 as the paper writes it).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mendrepro.batches import Batch
from mendrepro.editors.base import (
    Editor,
    capture_edit_gradients,
    edited_weight,
    outer_product_update,
    param_key,
)
from mendrepro.editors.options import EDIT_LOSSES, MODES, MendConfig  # noqa: F401 (re-exported)
from mendrepro.models import is_transposed, module_of


class RunningNorm(nn.Module):
    """Per-coordinate running mean and std over every row ever seen (Welford/Chan, cumulative, no momentum)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(dim, dtype=torch.float64))

    @torch.no_grad()
    def update(self, rows: torch.Tensor) -> None:
        rows = rows.detach().double()
        n_b = rows.shape[0]
        if n_b == 0:
            return
        mean_b = rows.mean(0)
        m2_b = ((rows - mean_b) ** 2).sum(0)
        n = self.count
        total = n + n_b
        delta = mean_b - self.mean
        self.mean += delta * (n_b / total)
        self.m2 += m2_b + delta**2 * (n * n_b / total)
        self.count += n_b

    def std(self) -> torch.Tensor:
        if self.count < 2:
            return torch.ones_like(self.mean)
        return (self.m2 / (self.count - 1)).sqrt()

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        mean, std = self.mean.to(rows.dtype), self.std().to(rows.dtype)
        return (rows - mean) / (std + 1e-7)


class LowRankBlock(nn.Module):
    """x ↦ clamp(scale[mode] ⊙ (U V x + b) + shift[mode], min=0) (+ x when residual).

    Every block is rectified, the last one too: the release's ``IDMLP`` passes ``relu=idx < n_hidden`` to
    ``LRLinear``, but ``LRLinear.__init__`` drops that argument and its ``forward`` always clamps (eric-mitchell/mend
    nn.py:38-81, ``acts = pre_act.clamp(min=0)``). So with Xavier init (no residual) the outputs are non-negative.
    The activation is ``clamp(min=0)``, not ``relu``: with U = 0 every pre-activation is exactly 0 at init, where
    relu's gradient is 0 (the network could never leave the identity) while clamp's is 1, as in the release.
    """

    def __init__(self, dim: int, rank: int, n_modes: int | None, init: str):
        super().__init__()
        self.residual = init == "id"
        self.u = nn.Parameter(torch.empty(dim, rank))
        self.v = nn.Parameter(torch.empty(rank, dim))
        self.b = nn.Parameter(torch.zeros(dim))
        if init == "id":
            nn.init.zeros_(self.u)
            nn.init.normal_(self.v)
        else:
            nn.init.xavier_uniform_(self.u, gain=math.sqrt(2))
            nn.init.xavier_uniform_(self.v, gain=1.0)
        if n_modes is None:
            self.scale = self.shift = None
        else:
            self.scale = nn.Parameter(torch.ones(n_modes, dim))
            self.shift = nn.Parameter(torch.zeros(n_modes, dim))

    def forward(self, x: torch.Tensor, mode: torch.Tensor | None) -> torch.Tensor:
        """``mode``: each row's mode index (the layer it comes from), when the network is shared."""
        pre = (x @ self.v.T) @ self.u.T + self.b
        if self.scale is not None:
            pre = pre * self.scale[mode] + self.shift[mode]
        out = pre.clamp(min=0)
        return out + x if self.residual else out


class MendNet(nn.Module):
    """The editor network g of one group of edited matrices: a stack of low-rank blocks of width ``dim``."""

    def __init__(self, dim: int, cfg: MendConfig, n_modes: int | None):
        super().__init__()
        rank = min(cfg.rank, dim)
        self.blocks = nn.ModuleList(LowRankBlock(dim, rank, n_modes, cfg.init) for _ in range(cfg.n_blocks))

    def forward(self, x: torch.Tensor, mode: torch.Tensor | None) -> torch.Tensor:
        for block in self.blocks:
            x = block(x, mode)
        return x


class MEND(Editor):
    """The MEND editor over the edited matrices of one base model."""

    def __init__(self, model: nn.Module, family: str, param_names: list[str], cfg: MendConfig):
        super().__init__(model, family, param_names)
        self.cfg = cfg
        named = dict(model.named_parameters())
        # (u_dim, δ_dim) of every edited matrix, in the layer's own terms whatever its storage layout.
        self.dims: dict[str, tuple[int, int]] = {}
        for n in param_names:
            rows, cols = named[n].shape
            self.dims[n] = (rows, cols) if is_transposed(module_of(model, n)) else (cols, rows)
        # Group the matrices: by shape when shared, one per matrix otherwise; a mode index keeps layers apart.
        self.group: dict[str, str] = {}
        self.mode_of: dict[str, int | None] = {}
        members: dict[str, list[str]] = {}
        for n in param_names:
            g = f"{self.dims[n][0]}x{self.dims[n][1]}" if cfg.share else param_key(n)
            self.group[n] = g
            members.setdefault(g, []).append(n)
        for _g, ns in members.items():
            for i, n in enumerate(ns):
                self.mode_of[n] = i if cfg.share else None
        self.norms = nn.ModuleDict()
        self.nets = nn.ModuleDict()
        for g, ns in members.items():
            d_u, d_d = self.dims[ns[0]]
            n_modes = len(ns) if cfg.share else None
            self.norms[g] = RunningNorm(d_u + d_d)
            width = self._net_width(d_u, d_d)
            if width:
                self.nets[g] = MendNet(width, cfg, n_modes)
        self.alpha = nn.ParameterDict({param_key(n): nn.Parameter(torch.tensor(cfg.alpha_init)) for n in param_names})

    def _transformed_side(self, d_u: int, d_d: int) -> str:
        if self.cfg.mode == "only_smaller":
            return "only_u" if d_u <= d_d else "only_delta"
        return self.cfg.mode

    def _net_width(self, d_u: int, d_d: int) -> int:
        side = self._transformed_side(d_u, d_d)
        return {"combine": d_u + d_d, "only_u": d_u, "only_delta": d_d}[side]

    def _normalised(self, name: str, u: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """[ū, δ̄] rows of one matrix; in training the group's running statistics first take in these rows, one
        matrix after the other as the release does."""
        z = torch.cat([u, d], dim=1)
        if not self.cfg.norm:
            return z
        norm = self.norms[self.group[name]]
        if self.training:
            norm.update(z)
        return norm(z)

    def transform_all(
        self, rows: dict[str, tuple[torch.Tensor, torch.Tensor]]
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """(u, δ) rows ↦ (ũ, δ̃) rows for every edited matrix in ``rows`` (normalising, and updating the norm if
        training).

        The rows of all matrices that share a network go through it in one call, each row with its matrix's mode:
        the same values as one call per matrix, but each network's weights are read once per edit instead of
        once per matrix (at distilGPT-2 size a call on a few rows is bound by reading those 59 MB).
        """
        z = {n: self._normalised(n, u, d) for n, (u, d) in rows.items()}
        members: dict[str, list[str]] = {}
        for n in rows:
            members.setdefault(self.group[n], []).append(n)
        out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for g, ns in members.items():
            d_u = self.dims[ns[0]][0]
            side = self._transformed_side(*self.dims[ns[0]])
            cols = {"combine": slice(None), "only_u": slice(None, d_u), "only_delta": slice(d_u, None)}[side]
            x = torch.cat([z[n][:, cols] for n in ns])
            modes = None
            if self.cfg.share:
                modes = torch.cat([torch.full((z[n].shape[0],), self.mode_of[n], device=x.device) for n in ns])
            y = self.nets[g](x, modes).split([z[n].shape[0] for n in ns])
            for n, y_n in zip(ns, y, strict=True):
                if side == "only_u":
                    y_n = torch.cat([y_n, z[n][:, d_u:]], 1)
                elif side == "only_delta":
                    y_n = torch.cat([z[n][:, :d_u], y_n], 1)
                out[n] = (y_n[:, :d_u], y_n[:, d_u:])
        return out

    def transform(self, name: str, u: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(u, δ) rows ↦ (ũ, δ̃) rows for edited matrix ``name`` alone."""
        return self.transform_all({name: (u, d)})[name]

    def _transformed_rows(self, inner: Batch) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """(ũ, δ̃) rows of every edited matrix for the edit examples ``inner``."""
        cap = capture_edit_gradients(
            self.model, self.family, self.param_names, inner, weight_grads=False, reduction=self.cfg.edit_loss
        )
        rows = {}
        for n in self.param_names:
            u, d = cap.inputs[n], cap.out_grads[n]
            # Rows with a zero u or δ carry no signal (padding; in a language model's last edited block, every
            # position no loss reads): dropped as the release does, which keeps them out of the statistics too.
            keep = (u != 0).any(1) & (d != 0).any(1)
            rows[n] = (u[keep], d[keep])
        return self.transform_all(rows)

    def updates(self, inner: Batch) -> dict[str, torch.Tensor]:
        """Σ_rows δ̃ ũᵀ for every edited matrix, in its stored layout (before the step size α)."""
        return {n: outer_product_update(self.model, n, u, d) for n, (u, d) in self._transformed_rows(inner).items()}

    def edit(self, inner: Batch) -> dict[str, torch.Tensor]:
        base = self.base_params()
        # Each edited weight is base + sign·α_W·δ̃ᵀũ formed in one multiply-add from the thin factors: an edit holds
        # the new weights and the rows, never a weight-sized update (at distilGPT-2 size, 45 MiB of a 128 MiB
        # peak when every update was held). The increment takes the base weight's dtype (bfloat16 for the
        # largest models), so the edited layer sees one dtype.
        return {
            n: edited_weight(self.model, n, base[n], u, d, self.cfg.sign * self.alpha[param_key(n)])
            for n, (u, d) in self._transformed_rows(inner).items()
        }
