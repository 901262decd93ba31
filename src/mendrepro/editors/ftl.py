"""FT+L: constrained fine-tuning (Zhu et al. 2020, "Modifying Memories in Transformer Models", arXiv:2012.00363).

FT (``editors/ft.py``: same optimiser, step cap and stopping rule) with the change of each edited matrix kept in
the L∞ ball of radius ``eps`` around its original weights: after every optimiser step each entry of the residual
is clipped to [−eps, eps], the projection onto that ball. Cited in MEND's related work, not in its tables.
Zhu et al. use Adam; we keep FT's RMSprop so that the constraint is the only difference from our FT row.
"""

from __future__ import annotations

import torch

from mendrepro.editors.ft import FineTune
from mendrepro.editors.options import FTLConfig  # noqa: F401 (re-exported)


class ConstrainedFineTune(FineTune):
    """FT whose residual (edited minus original weights) stays within ``cfg.eps`` in every entry."""

    def project(self, residual: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for r in residual.values():
                r.clamp_(-self.cfg.eps, self.cfg.eps)
